//! The message run of a data frame: consecutive messages, each a length prefix then its bytes.
//!
//! A length is an unsigned LEB128 varint (7 bits per byte, low group first, high bit set on every
//! byte but the last): 1 byte below 128, 2 below 16 384, at most 5 for a `u32`. The decoder accepts
//! only the shortest encoding of a value that fits a `u32`, so every run has exactly one encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Most bytes a message's length prefix takes (a `u32` in LEB128).
pub const MAX_LENGTH_PREFIX: usize = 5;

/// The messages of one data frame, as they are on the wire: at least one, in sequence order.
///
/// Built by the decoder after checking the whole run (every prefix canonical, no length running
/// past the frame, at least one message), or by [`Messages::from_payloads`] for tests and tools.
/// Iterating hands out zero-copy slices of the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Messages {
    run: Bytes,
    count: usize,
}

/// Why a message run is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RunError {
    /// A length prefix is not the shortest LEB128 encoding of a `u32`.
    BadPrefix,
    /// A length runs past the end of the frame, or the frame holds no message.
    BadLength,
}

impl Messages {
    /// Encodes `payloads` into a run, as a sender would put them in one frame (for tests and
    /// tools; the decoder builds its runs with its checks).
    ///
    /// # Panics
    /// If `payloads` is empty: a data frame carries at least one message.
    pub fn from_payloads<'a>(payloads: impl IntoIterator<Item = &'a Bytes>) -> Messages {
        let mut run = BytesMut::new();
        let mut count = 0;
        for p in payloads {
            // A payload is bounded by max_message_size (a u32).
            put_length(&mut run, p.len() as u32);
            run.put_slice(p);
            count += 1;
        }
        assert!(count > 0, "a data frame carries at least one message");
        Messages { run: run.freeze(), count }
    }

    /// Checks `run` (a data frame's bytes after its header) and counts its messages.
    pub(super) fn parse(run: Bytes) -> Result<Messages, RunError> {
        let mut at = 0;
        let mut count = 0;
        while at < run.len() {
            let (len, prefix) = get_length(&run[at..])?;
            at += prefix;
            if len as usize > run.len() - at {
                return Err(RunError::BadLength);
            }
            at += len as usize;
            count += 1;
        }
        if count == 0 {
            return Err(RunError::BadLength);
        }
        Ok(Messages { run, count })
    }

    /// Number of messages (at least one).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The run's bytes as on the wire (prefixes and payloads).
    pub fn as_wire(&self) -> &Bytes {
        &self.run
    }

    /// The payloads in order, as zero-copy slices of the frame.
    pub fn iter(&self) -> MessagesIter<'_> {
        MessagesIter { run: &self.run, at: 0 }
    }

    /// Where each message lies in [`as_wire`](Self::as_wire), in order, without slicing it.
    pub(crate) fn spans(&self) -> impl Iterator<Item = Span> + '_ {
        spans(&self.run)
    }
}

/// One message's place in a run: its prefix starts at `start`, its payload is `payload..end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) payload: usize,
    pub(crate) end: usize,
}

impl Span {
    /// The payload's length.
    pub(crate) fn len(&self) -> usize {
        self.end - self.payload
    }
}

/// Where each message of a checked run (or the rest of one) lies, in order.
pub(crate) fn spans(run: &[u8]) -> impl Iterator<Item = Span> + '_ {
    let mut at = 0;
    core::iter::from_fn(move || {
        let span = span_at(run, at)?;
        at = span.end;
        Some(span)
    })
}

/// The message whose prefix starts at `at` of a checked run; `None` at its end. (A run was
/// checked when it was built: every prefix decodes and every length fits.)
fn span_at(run: &[u8], at: usize) -> Option<Span> {
    let (len, prefix) = get_length(run.get(at..)?).ok()?;
    Some(Span { start: at, payload: at + prefix, end: at + prefix + len as usize })
}

/// Splits the first message off `run` (the rest of a checked run) and returns its payload, a
/// zero-copy slice; `None` if `run` is empty.
#[inline]
pub(crate) fn take_first(run: &mut Bytes) -> Option<Bytes> {
    let (len, prefix) = get_length(run).ok()?;
    run.advance(prefix);
    let len = (len as usize).min(run.len());
    if len == run.len() {
        // The last message takes the run itself: no reference-count traffic.
        return Some(core::mem::take(run));
    }
    Some(run.split_to(len))
}

/// Iterator over a [`Messages`] run's payloads.
#[derive(Debug)]
pub struct MessagesIter<'a> {
    run: &'a Bytes,
    at: usize,
}

impl Iterator for MessagesIter<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let span = span_at(self.run, self.at)?;
        self.at = span.end;
        Some(self.run.slice(span.payload..span.end))
    }
}

/// Bytes the length prefix of a `len`-byte message takes.
#[inline]
pub(crate) fn prefix_len(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        0x20_0000..=0xFFF_FFFF => 4,
        _ => 5,
    }
}

/// Appends `len` as a LEB128 varint.
#[inline]
pub(crate) fn put_length(out: &mut BytesMut, mut len: u32) {
    while len >= 0x80 {
        out.put_u8((len as u8) | 0x80);
        len >>= 7;
    }
    out.put_u8(len as u8);
}

/// Decodes the length prefix at the start of `b`: the length and the prefix's size. Refuses a
/// prefix that is cut off, longer than needed, or above `u32::MAX`.
#[inline]
fn get_length(b: &[u8]) -> Result<(u32, usize), RunError> {
    if let Some(&byte) = b.first().filter(|&&byte| byte < 0x80) {
        return Ok((u32::from(byte), 1)); // the common case: a message under 128 bytes
    }
    let mut value: u32 = 0;
    for (i, &byte) in b.iter().take(MAX_LENGTH_PREFIX).enumerate() {
        let group = u32::from(byte & 0x7F);
        if i == MAX_LENGTH_PREFIX - 1 && group > 0x0F {
            return Err(RunError::BadPrefix); // above u32::MAX
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 {
                // A trailing zero group: not the shortest form. (A first byte below 0x80 took the
                // fast path above, so this is never the first byte.)
                return Err(RunError::BadPrefix);
            }
            return Ok((value, i + 1));
        }
    }
    // Cut off by the frame's end (a length running past it), or more than five bytes.
    Err(if b.len() < MAX_LENGTH_PREFIX { RunError::BadLength } else { RunError::BadPrefix })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn lengths_round_trip_in_their_shortest_form() {
        for len in [0u32, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1F_FFFF, 0x20_0000, u32::MAX] {
            let mut b = BytesMut::new();
            put_length(&mut b, len);
            assert_eq!(b.len(), prefix_len(len as usize), "len {len}");
            assert_eq!(get_length(&b), Ok((len, b.len())), "len {len}");
        }
    }

    #[test]
    fn bad_prefixes_are_refused() {
        assert_eq!(get_length(&[0x80, 0x00]), Err(RunError::BadPrefix), "overlong zero");
        assert_eq!(get_length(&[0xFF, 0x00]), Err(RunError::BadPrefix), "overlong 127");
        assert_eq!(get_length(&[0xFF, 0xFF, 0xFF, 0xFF, 0x10]), Err(RunError::BadPrefix));
        assert_eq!(get_length(&[0x80, 0x80, 0x80, 0x80, 0x80]), Err(RunError::BadPrefix));
        assert_eq!(get_length(&[0x80]), Err(RunError::BadLength), "cut off");
        assert_eq!(get_length(&[]), Err(RunError::BadLength));
    }

    #[test]
    fn runs_parse_and_iterate_to_their_payloads() {
        let payloads: Vec<Bytes> =
            [&b""[..], b"a", &[7u8; 200][..]].iter().map(|p| Bytes::copy_from_slice(p)).collect();
        let m = Messages::from_payloads(&payloads);
        assert_eq!(m.as_wire().len(), 1 + (1 + 1) + (2 + 200));
        let parsed = Messages::parse(m.as_wire().clone()).unwrap();
        assert_eq!(parsed, m);
        assert_eq!(parsed.count(), 3);
        assert_eq!(parsed.iter().collect::<Vec<_>>(), payloads);
    }

    #[test]
    fn lying_runs_are_refused() {
        assert_eq!(Messages::parse(Bytes::new()), Err(RunError::BadLength), "no message");
        assert_eq!(Messages::parse(Bytes::from_static(&[3, 1, 2])), Err(RunError::BadLength));
        assert_eq!(Messages::parse(Bytes::from_static(&[1, 9, 2, 1])), Err(RunError::BadLength));
        assert_eq!(Messages::parse(Bytes::from_static(&[0x81, 0])), Err(RunError::BadPrefix));
    }
}
