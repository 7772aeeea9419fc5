//! The application model on each end of a session: what it sends, how it reads and acks, when it
//! closes, and a record of everything it did and saw, which the checker reads afterwards.

use std::collections::VecDeque;

use bytes::Bytes;
use tether_core::{Duration, Event, Instant, Reason, SendError, Session, UnconfirmedMessage};

/// How an application consumes events.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum ReadPolicy {
    /// Reads everything as soon as it is there.
    #[default]
    Eager,
    /// Reads at most `per_tick` events every `interval` (a slow consumer).
    Slow {
        /// Events per tick.
        per_tick: u32,
        /// Time between ticks.
        interval: Duration,
    },
    /// Reads nothing between `from` and `until`, eagerly otherwise (a stalled consumer).
    Stopped {
        /// Stops reading at.
        from: Instant,
        /// Reads again from.
        until: Instant,
    },
}

impl ReadPolicy {
    /// How many events an application reading this way reads now (`u32::MAX` for all). `budget`
    /// is its slow-read tick (events left in it, when the next one starts), updated here.
    pub fn allowance(&self, budget: &mut (u32, Instant), now: Instant) -> u32 {
        match self {
            ReadPolicy::Eager => u32::MAX,
            ReadPolicy::Stopped { from, until } => {
                if now >= *from && now < *until {
                    0
                } else {
                    u32::MAX
                }
            }
            ReadPolicy::Slow { per_tick, interval } => {
                if now >= budget.1 {
                    *budget = (*per_tick, now + *interval);
                }
                budget.0
            }
        }
    }
}

/// Which side starts the clean close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseBy {
    /// The client application.
    Client,
    /// The server application.
    Server,
    /// Both at about the same time (a close race).
    Both,
    /// Nobody: the session is left to end on its own (timeouts, refused resume) or the run ends.
    Nobody,
}

/// Deliberate bugs in the application model, to prove the checker catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AppPlant {
    /// None: a correct application record.
    #[default]
    None,
    /// The record drops the delivered message with this sequence number (a receiver that skips one).
    SkipDelivery(u64),
    /// The record drops the last message handed back by `Lost` (a session that forgets one).
    ForgetUnconfirmed,
}

/// How one application end behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    /// How it reads.
    pub read: ReadPolicy,
    /// In manual-ack mode, how long after delivery it acks.
    pub ack_lag: Duration,
    /// Close (if this side closes) not before this time.
    pub close_at: Instant,
    /// Close at this time even if the exchange is incomplete.
    pub close_deadline: Instant,
    /// Planted bug.
    pub plant: AppPlant,
    /// Time between two messages becoming ready to send (zero: all at once).
    pub send_interval: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            read: ReadPolicy::Eager,
            ack_lag: Duration::ZERO,
            close_at: Instant::ZERO,
            close_deadline: Instant::from_nanos(u64::MAX),
            plant: AppPlant::None,
            send_interval: Duration::ZERO,
        }
    }
}

/// How a session ended, as its application saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// `Closed`.
    Closed,
    /// `Lost`, with the reason and the sequence numbers and payloads handed back.
    Lost(Reason, Vec<UnconfirmedMessage>),
}

/// Everything one application end did and saw.
#[derive(Debug, Default)]
pub struct App {
    /// Messages waiting to be sent (retried after backpressure).
    pub outbox: VecDeque<Bytes>,
    /// Messages not yet ready, with the time they become ready (moved to `outbox` then).
    pub later: VecDeque<(Instant, Bytes)>,
    /// Messages accepted by `send`, with their sequence numbers.
    pub sent: Vec<(u64, Bytes)>,
    /// Messages delivered by `poll_event`, in order.
    pub delivered: Vec<(u64, Bytes)>,
    /// Highest `Confirmed { up_to }` seen.
    pub confirmed: Option<u64>,
    /// The terminal event, once seen.
    pub terminal: Option<Terminal>,
    /// `Connected` events.
    pub connected: u32,
    /// `Resumed` events.
    pub resumed: u32,
    /// `Disconnected` events.
    pub disconnected: u32,
    /// Times `send` reported backpressure.
    pub backpressure: u64,
    /// The application asked for a close.
    pub close_requested: bool,
    /// Messages the peer application will send (known from the plan; used to decide when to close).
    pub expect_from_peer: u64,
    /// Contract violations seen while the run went on (event after the end, confirm going back).
    pub violations: Vec<String>,
    /// Manual acks waiting for their time.
    pub pending_acks: VecDeque<(Instant, u64)>,
    /// Events left in the current slow-read tick, and when the next tick starts.
    pub read_budget: (u32, Instant),
}

impl App {
    /// Records one event (with the planted bug, if any).
    pub fn record(&mut self, e: Event, plant: AppPlant) {
        if self.terminal.is_some() {
            self.violations.push(format!("event {} after the session ended", event_name(&e)));
            return;
        }
        match e {
            Event::Messages(d) => {
                let skip = |m: &(u64, bytes::Bytes)| plant == AppPlant::SkipDelivery(m.0);
                self.delivered.extend(d.filter(|m| !skip(m)));
            }
            Event::Confirmed { up_to } => {
                if self.confirmed.is_some_and(|c| c >= up_to) {
                    self.violations.push(format!(
                        "Confirmed went backwards or repeated: {:?} then {up_to}",
                        self.confirmed
                    ));
                }
                self.confirmed = Some(up_to);
            }
            Event::Connected => self.connected += 1,
            Event::Resumed => self.resumed += 1,
            Event::Disconnected { .. } => self.disconnected += 1,
            Event::Closed => self.terminal = Some(Terminal::Closed),
            Event::Lost { reason, mut unconfirmed } => {
                if plant == AppPlant::ForgetUnconfirmed {
                    unconfirmed.pop();
                }
                self.terminal = Some(Terminal::Lost(reason, unconfirmed));
            }
        }
    }

    /// Queues `msgs` for sending, spaced by `interval` from `start`.
    pub fn schedule_sends(&mut self, msgs: Vec<Bytes>, start: Instant, interval: Duration) {
        if interval.is_zero() {
            self.outbox.extend(msgs);
        } else {
            let mut t = start;
            for m in msgs {
                self.later.push_back((t, m));
                t = t + interval;
            }
        }
    }

    /// Whether the session has ended for this application.
    pub fn ended(&self) -> bool {
        self.terminal.is_some()
    }

    /// Whether it ended with a clean close.
    pub fn closed(&self) -> bool {
        matches!(self.terminal, Some(Terminal::Closed))
    }

    /// Sends from the outbox until backpressure or refusal. Returns whether anything was sent.
    pub fn feed(&mut self, session: &mut Session, now: Instant) -> bool {
        while self.later.front().is_some_and(|(at, _)| *at <= now) {
            let (_, p) = self.later.pop_front().expect("checked");
            self.outbox.push_back(p);
        }
        send_queued(&mut self.outbox, &mut self.sent, &mut self.backpressure, session, now)
    }

    /// Whether this side's part of the exchange is finished (all sent, all expected received).
    pub fn exchange_done(&self) -> bool {
        self.outbox.is_empty()
            && self.later.is_empty()
            && self.delivered.len() as u64 >= self.expect_from_peer
    }

    /// Whether a close is due now for a side that closes.
    pub fn close_due(&self, b: &Behaviour, now: Instant) -> bool {
        !self.close_requested
            && !self.ended()
            && ((now >= b.close_at && self.exchange_done()) || now >= b.close_deadline)
    }

    /// How many events the application reads now (`u32::MAX` for all); updates the tick budget.
    pub fn read_allowance(&mut self, b: &Behaviour, now: Instant) -> u32 {
        b.read.allowance(&mut self.read_budget, now)
    }

    /// When the application next wants to act on its own (read tick, manual ack, close).
    pub fn wakeup(&self, b: &Behaviour, closes: bool, now: Instant) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| {
            if x > now {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.ended() {
            return None;
        }
        if let Some((at, _)) = self.pending_acks.front() {
            consider(*at);
        }
        if let Some((at, _)) = self.later.front() {
            consider(*at);
        }
        match &b.read {
            ReadPolicy::Slow { .. } if self.read_budget.0 == 0 => consider(self.read_budget.1),
            ReadPolicy::Stopped { until, .. } => consider(*until),
            _ => {}
        }
        if closes && !self.close_requested {
            consider(b.close_deadline);
            if self.exchange_done() {
                consider(b.close_at);
            }
        }
        t
    }
}

/// Sends `outbox` from the front until the session refuses a message, which stays at the front;
/// accepted messages go to `sent` with their sequence numbers, and each refusal for backpressure
/// counts in `backpressure`. Returns whether anything was sent. Shared by this application model
/// and the pair harness's ([`crate::harness::App`]).
pub fn send_queued(
    outbox: &mut VecDeque<Bytes>,
    sent: &mut Vec<(u64, Bytes)>,
    backpressure: &mut u64,
    session: &mut Session,
    now: Instant,
) -> bool {
    let mut moved = false;
    while let Some(p) = outbox.pop_front() {
        // Keep a copy only of a message `send` will accept: a refused one comes back in the
        // error. (`send` is still called: the session sees the same calls either way.)
        let kept = session.can_send(p.len()).then(|| p.clone());
        match session.send(now, p) {
            Ok(seq) => {
                moved = true;
                let p = kept.expect("send accepted a message can_send refused");
                sent.push((seq, p));
            }
            Err(SendError::Backpressure(p)) => {
                *backpressure += 1;
                outbox.push_front(p);
                break;
            }
            Err(e) => {
                outbox.push_front(e.into_payload());
                break;
            }
        }
    }
    moved
}

/// A short name of an event for messages.
pub fn event_name(e: &Event) -> String {
    match e {
        Event::Messages(d) => format!("Messages({}..+{})", d.next_seq(), d.len()),
        Event::Lost { reason, .. } => format!("Lost({reason:?})"),
        other => format!("{other:?}"),
    }
}

/// A unique, recognisable payload: `tag`, `|`, then filler up to `size` bytes.
///
/// The filler byte at offset `n` is `b'a' + x % 26` with the state `x = n + 7 * (steps since
/// the filler began)` (mod 256), i.e. the state starts at the filler's offset and advances by 7 per
/// byte. Since 7 is odd the states form one cycle of 256, so the filler is copied from
/// [`FILL_CYCLE`] in slices rather than computed byte by byte (the bytes are the same).
pub fn payload(tag: &str, size: usize) -> Bytes {
    payload_tagged(size, |v| v.extend_from_slice(tag.as_bytes()))
}

/// [`payload`] with the tag written by `write_tag` straight into the payload (no `String` to
/// format first; see [`push_decimal`] and [`push_hex`]).
pub fn payload_tagged(size: usize, write_tag: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut v = Vec::with_capacity(size.max(32));
    push_payload(&mut v, size, write_tag);
    Bytes::from(v)
}

/// `n` payloads built in one allocation, each a slice of it: payload `k` is
/// `payload_tagged(size(k), |v| write_tag(v, k))`. One buffer instead of one per message: fewer
/// allocations, and a run's messages lie together in memory.
pub fn payloads(
    n: u64,
    size: impl Fn(u64) -> usize,
    write_tag: impl Fn(&mut Vec<u8>, u64),
) -> Vec<Bytes> {
    /// Room for a typical tag, so that short payloads rarely make the buffer grow.
    const TAG_ROOM: usize = 24;
    let capacity = (0..n).map(|k| size(k).max(TAG_ROOM)).sum();
    let mut all = Vec::with_capacity(capacity);
    let mut ends = Vec::with_capacity(n as usize);
    for k in 0..n {
        push_payload(&mut all, size(k), |v| write_tag(v, k));
        ends.push(all.len());
    }
    let all = Bytes::from(all);
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let p = all.slice(start..end);
            start = end;
            p
        })
        .collect()
}

/// Appends one payload of `size` bytes (at least its tag and `|`) to `v`.
fn push_payload(v: &mut Vec<u8>, size: usize, write_tag: impl FnOnce(&mut Vec<u8>)) {
    let start = v.len();
    write_tag(v);
    v.push(b'|');
    let mut pos = usize::from(((v.len() - start) as u8).wrapping_mul(FILL_STEP_INVERSE));
    while v.len() - start < size {
        let n = (size - (v.len() - start)).min(FILL_PERIOD);
        v.extend_from_slice(&FILL_CYCLE[pos..pos + n]);
        pos = (pos + n) % FILL_PERIOD;
    }
}

/// Appends `n` in decimal, as `format!("{n}")` writes it.
pub fn push_decimal(v: &mut Vec<u8>, n: u64) {
    push_digits(v, n, 10);
}

/// Appends `n` in lower-case hexadecimal, as `format!("{n:x}")` writes it.
pub fn push_hex(v: &mut Vec<u8>, n: u64) {
    push_digits(v, n, 16);
}

fn push_digits(v: &mut Vec<u8>, mut n: u64, radix: u64) {
    let mut digits = [0u8; 64];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b"0123456789abcdef"[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    v.extend_from_slice(&digits[start..]);
}

/// The filler state advances by this much (mod 256) per byte.
const FILL_STEP: u8 = 7;
/// The inverse of [`FILL_STEP`] mod 256: state `x` is at position `x * FILL_STEP_INVERSE` of the
/// cycle.
const FILL_STEP_INVERSE: u8 = 183;
/// Length of the filler cycle.
const FILL_PERIOD: usize = 256;
/// Two periods of the filler, from state 0, so that any `FILL_PERIOD` bytes of it are contiguous.
static FILL_CYCLE: [u8; 2 * FILL_PERIOD] = fill_cycle();

const fn fill_cycle() -> [u8; 2 * FILL_PERIOD] {
    let mut cycle = [0u8; 2 * FILL_PERIOD];
    let mut k = 0;
    while k < cycle.len() {
        let state = (k as u8).wrapping_mul(FILL_STEP);
        cycle[k] = b'a' + state % 26;
        k += 1;
    }
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-by-byte definition the cycle table replaces.
    fn payload_reference(tag: &str, size: usize) -> Vec<u8> {
        let mut v = tag.as_bytes().to_vec();
        v.push(b'|');
        let mut x = v.len() as u8;
        while v.len() < size {
            v.push(b'a' + x % 26);
            x = x.wrapping_add(FILL_STEP);
        }
        v
    }

    #[test]
    fn digits_match_format() {
        for n in [0, 1, 9, 10, 15, 16, 255, 1000, 123_456_789, u64::MAX] {
            let (mut d, mut h) = (Vec::new(), Vec::new());
            push_decimal(&mut d, n);
            push_hex(&mut h, n);
            assert_eq!(d, format!("{n}").into_bytes());
            assert_eq!(h, format!("{n:x}").into_bytes());
        }
    }

    #[test]
    fn batched_payloads_are_the_single_ones() {
        let size = |k: u64| [0, 1, 5, 300, 4096][k as usize % 5];
        let tag = |v: &mut Vec<u8>, k: u64| {
            v.extend_from_slice(b"t");
            push_decimal(v, k * 1_000_003);
        };
        let batch = payloads(12, size, tag);
        assert_eq!(batch.len(), 12);
        for (k, p) in batch.iter().enumerate() {
            let k = k as u64;
            assert_eq!(p, &payload_tagged(size(k), |v| tag(v, k)), "{k}");
        }
    }

    #[test]
    fn step_inverse_is_an_inverse() {
        assert_eq!(FILL_STEP.wrapping_mul(FILL_STEP_INVERSE), 1);
    }

    #[test]
    fn payload_matches_the_byte_by_byte_definition() {
        let tags = ["", "c0-1", "s1-9f3a2b-117", &"x".repeat(300)];
        for tag in tags {
            for size in (0..1200).chain([4095, 4096, 70_000]) {
                assert_eq!(&payload(tag, size)[..], &payload_reference(tag, size)[..], "{size}");
            }
        }
    }
}
