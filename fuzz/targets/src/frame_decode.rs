//! `frame_decode`: bytes (frames, damaged frames, junk) fed to the incremental [`Decoder`] in
//! arbitrary chunkings.
//!
//! Properties:
//! - it never panics;
//! - after each push is drained it holds exactly the bytes not yet returned as frames, fewer than
//!   one frame of the largest configured size, and nothing at all once it has failed (bytes pushed
//!   into a failed decoder included);
//! - every frame it returns re-encodes to exactly the bytes it was decoded from;
//! - every error is justified by those bytes (a zero or oversized length prefix, a checksum that
//!   does not match, or a well-checksummed frame whose body does not parse), and a failed decoder
//!   stays failed with the same error;
//! - the chunking changes nothing: frames and error equal those of one push of the whole stream;
//! - decoding in place (`next_frame_in`, each piece appended to one `BytesMut`) gives exactly the
//!   frames and error of the pushes; the buffer then holds the bytes not yet returned as frames,
//!   fewer than one frame of the largest configured size, nothing once failed, and `missing` is
//!   zero exactly when it is empty.

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use tether_core::wire::{tests_support, DecodeError, Decoder, Frame, FRAME_OVERHEAD};
use tether_core::Reason;

use crate::gen::{self, Anchors, Wire};

/// The fuzz input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    limit: u16,
    pieces: Vec<Wire>,
    chunks: Vec<u8>,
    /// After this many pushes, raise (or lower) the limit, as the endpoint does after a handshake.
    change_limit: Option<(u8, u16)>,
}

/// The structured input raw fuzzer bytes decode to, for reading a finding.
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", Input::arbitrary_take_rest(Unstructured::new(data)))
}

/// Entry point for raw fuzzer bytes.
pub fn fuzz(data: &[u8]) {
    if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        run(&input);
    }
}

/// What a decoder made of a stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    error: Option<DecodeError>,
}

/// Runs one input, panicking on any property violation.
pub fn run(input: &Input) {
    let anchors = Anchors { positions: vec![0, 1, u64::MAX], ..Anchors::default() };
    let stream = gen::encode_all(&input.pieces, &anchors);
    let limit = u32::from(input.limit).max(1);
    let pieces = gen::chunk(stream.clone(), &input.chunks);

    let mut d = Decoder::new(limit);
    let mut largest_limit = limit;
    let mut pushed = 0usize;
    let mut cursor = 0usize;
    let mut out = Outcome { frames: Vec::new(), error: None };
    for (k, piece) in pieces.iter().enumerate() {
        change_limit(input, k, &mut d, &mut largest_limit);
        pushed += piece.len();
        d.push(piece.clone());
        loop {
            match d.next_frame() {
                Ok(Some(frame)) => {
                    let mut enc = BytesMut::new();
                    frame.encode(&mut enc);
                    let end = cursor + enc.len();
                    assert!(end <= pushed, "frame {frame:?} decoded from bytes not pushed yet");
                    assert!(end <= stream.len(), "frame {frame:?} longer than the stream");
                    check_reencoding(&frame, &stream[cursor..end], &enc);
                    cursor = end;
                    out.frames.push(frame);
                }
                Ok(None) => {
                    assert_eq!(d.buffered(), pushed - cursor, "decoder lost or invented bytes");
                    break;
                }
                Err(e) => {
                    match &out.error {
                        None => check_error(&e, &stream[cursor..], largest_limit),
                        Some(first) => assert_eq!(&e, first, "a failed decoder changed its error"),
                    }
                    out.error = Some(e);
                    break;
                }
            }
        }
        let bound = largest_limit as usize + FRAME_OVERHEAD;
        if out.error.is_some() && crate::tolerated("F1") {
            break;
        }
        assert!(
            d.buffered() < bound,
            "decoder buffers {} bytes, limit {largest_limit} (failed: {:?})",
            d.buffered(),
            out.error
        );
        if out.error.is_some() && !crate::tolerated("F1") {
            // F1 (fuzz/FOUND.md): `push` keeps bytes given to a failed decoder.
            assert_eq!(d.buffered(), 0, "a failed decoder keeps bytes");
        }
    }

    let in_place = run_in_place(input, &pieces, limit);
    assert_eq!(in_place, out, "decoding in place differs from decoding pushed pieces");

    if input.change_limit.is_none() {
        let mut whole = Decoder::new(limit);
        whole.push(stream.clone());
        let mut reference = Outcome { frames: Vec::new(), error: None };
        loop {
            match whole.next_frame() {
                Ok(Some(f)) => reference.frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    reference.error = Some(e);
                    break;
                }
            }
        }
        assert_eq!(out, reference, "chunking changed the decoding");
    }
}

/// Before piece `k`: the decoder's limit changes if the input says so (`largest` keeps the
/// largest limit set so far).
fn change_limit(input: &Input, k: usize, d: &mut Decoder, largest: &mut u32) {
    if let Some((at, new)) = input.change_limit {
        if usize::from(at) == k {
            let new = u32::from(new).max(1);
            d.set_max_frame_size(new);
            *largest = (*largest).max(new);
        }
    }
}

/// The same pieces appended to one buffer and decoded in place.
fn run_in_place(input: &Input, pieces: &[bytes::Bytes], limit: u32) -> Outcome {
    let mut d = Decoder::new(limit);
    let mut largest_limit = limit;
    let mut buf = BytesMut::new();
    let mut out = Outcome { frames: Vec::new(), error: None };
    for (k, piece) in pieces.iter().enumerate() {
        change_limit(input, k, &mut d, &mut largest_limit);
        buf.extend_from_slice(piece);
        loop {
            match d.next_frame_in(&mut buf) {
                Ok(Some(frame)) => out.frames.push(frame),
                Ok(None) => {
                    assert_eq!(
                        d.missing(&buf) == 0,
                        buf.is_empty(),
                        "missing {:?}",
                        d.missing(&buf)
                    );
                    break;
                }
                Err(e) => {
                    assert!(buf.is_empty(), "a failed in-place decode keeps bytes");
                    if out.error.is_none() {
                        out.error = Some(e);
                    }
                    break;
                }
            }
        }
        assert_eq!(d.buffered(), 0, "decoding in place copies nothing into the decoder");
        assert!(
            buf.len() < largest_limit as usize + FRAME_OVERHEAD,
            "in-place buffer keeps {} bytes, limit {largest_limit}",
            buf.len()
        );
    }
    out
}

/// `enc`, the re-encoding of `frame`, equals `orig`, the bytes it was decoded from, except where the
/// protocol normalises on purpose: a reason code this version does not know decodes to
/// [`Reason::Unknown`] (docs/PROTOCOL.md, reason.rs), which encodes as 255.
fn check_reencoding(frame: &Frame, orig: &[u8], enc: &[u8]) {
    if orig == enc {
        return;
    }
    let reason = match frame {
        Frame::Reject { reason, .. } | Frame::Abort { reason } | Frame::ConnClose { reason } => {
            Some(*reason)
        }
        _ => None,
    };
    let n = orig.len();
    let normalised = reason == Some(Reason::Unknown)
        && n == enc.len()
        && n > 9
        && orig[..5] == enc[..5]
        && orig[6..n - 4] == enc[6..n - 4]
        && Reason::from_code(orig[5]) == Reason::Unknown;
    assert!(normalised, "accepted frame {frame:?} does not re-encode to its bytes {orig:02x?}");
}

/// The bytes at the failing frame justify the error.
fn check_error(e: &DecodeError, rest: &[u8], limit: u32) {
    let prefix = rest.get(..4).map(|p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
    match e {
        DecodeError::EmptyFrame => assert_eq!(prefix, Some(0), "EmptyFrame without a zero length"),
        DecodeError::FrameTooLarge { len, max } => {
            assert_eq!(prefix, Some(*len), "FrameTooLarge names another length");
            assert!(len > max && *max <= limit, "FrameTooLarge for {len} <= {max}");
        }
        _ => {
            let len = prefix.expect("error before a whole length prefix") as usize;
            let total = len + FRAME_OVERHEAD - 1;
            assert!(rest.len() >= total, "{e:?} before the whole frame arrived");
            let frame = &rest[..total];
            let mut rebuilt = BytesMut::new();
            tests_support::raw_frame(&mut rebuilt, frame[4], &frame[5..total - 4]);
            let crc_ok = rebuilt[..] == frame[..];
            if *e == DecodeError::ChecksumMismatch {
                assert!(!crc_ok, "ChecksumMismatch on a frame whose checksum is right");
            } else {
                assert!(crc_ok, "{e:?} reported for a frame whose checksum is wrong");
            }
        }
    }
}
