//! `session`: one client [`Session`] driven by an arbitrary sequence of API calls (send, ack,
//! close, abort, timeouts with arbitrary time jumps, connect, connect failure, disconnect),
//! interleaved with input the fuzzer writes as the server: well-formed frames with fields anchored
//! to what the session said, damaged frames, junk, on the current or on stale connections.
//!
//! Properties, checked after every step:
//! - it never panics, and stays within its configured limits;
//! - its events are consistent ([`App::record`], the pair harness's application model): messages in order without gap or duplicate,
//!   `Confirmed` strictly increasing and never beyond what was sent, `Connected` once then
//!   alternating `Disconnected`/`Resumed`, nothing after `Closed`/`Lost`, `Lost` handing back
//!   exactly the unconfirmed suffix, `Closed` only with everything confirmed;
//! - against what the input really contained: every delivered message is a payload some `Data`
//!   frame carried for that sequence number, `Confirmed` never exceeds an ack the server gave nor
//!   what the session wrote, `Closed` only after a close handshake happened;
//! - it writes only to its current connection, never to one it closed or that was reported gone;
//! - after `handle_timeout(now)` and draining, `poll_timeout` is later than `now` (no busy loop);
//! - finally, with the network gone and time running, it ends (`Lost` or `Closed`) within its
//!   timeouts.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};
use tether_core::wire::{Decoder, Frame, Positions, Welcome, PROTOCOL_VERSION};
use tether_core::{AckMode, Config, ConnId, Duration, Event, Instant, Reason, Session, Transmit};

use tether_sim::harness::{payload, App, Side};

use crate::gen::{self, Anchors, ConfigChoice, Wire};

/// The fuzz input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    config: ConfigChoice,
    seed: u64,
    /// The session id and secret the fuzzer, as the server, hands out.
    id: u64,
    secret: [u8; 16],
    ops: Vec<Op>,
}

/// One step.
#[derive(Arbitrary, Debug)]
enum Op {
    /// `send` `n` messages of `len` bytes (modulo the message size).
    Send {
        len: u16,
        n: u8,
    },
    /// Manual ack of the message delivered `back` before the last one.
    Ack(u8),
    /// Manual ack of any sequence number.
    AckAny(u64),
    Close,
    Abort,
    /// Time jumps by this many milliseconds, then `handle_timeout`.
    Advance(u16),
    /// Time jumps to `poll_timeout`, then `handle_timeout`.
    Fire,
    /// `handle_timeout` with nothing due.
    Spurious,
    /// Asks `poll_connect`; when it says so, connects (or reports a failed attempt).
    Connect {
        fail: bool,
    },
    /// The transport of the current connection (`stale == 0`) or an older one ends.
    Disconnect {
        stale: u8,
    },
    /// Bytes from the server on the current (`stale == 0`) or an older connection.
    Input {
        stale: u8,
        wires: Vec<Wire>,
        chunks: Vec<u8>,
    },
    /// A correct `Welcome` on the current connection.
    Welcome,
    /// A correct next `Data` frame: a run of `1 + n % 4` messages of `len` bytes each, on the
    /// current connection.
    Data {
        len: u16,
        n: u8,
    },
    /// A correct `Ack` of everything the session wrote, with a wide window.
    AckAll,
    /// The application stops or resumes reading events.
    Read(bool),
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

/// What the frames the session received and sent allow it to report.
#[derive(Debug, Default)]
struct Oracle {
    /// Payloads carried by `Data` frames fed to the session, by sequence number.
    data: BTreeMap<u64, Vec<Bytes>>,
    /// Largest ack position any received frame stated.
    max_ack: u64,
    /// The server sent `Close`, `CloseAck`, `CloseDone`, or `Reject(SessionClosed)`.
    got_close: bool,
    got_close_ack: bool,
    got_close_done: bool,
    got_reject_closed: bool,
    /// One past the highest `Data` sequence number the session wrote.
    wrote_high: u64,
    /// The session wrote `CloseAck`.
    wrote_close_ack: bool,
    /// The session's last stated receive position.
    client_received: u64,
}

impl Oracle {
    fn saw_input(&mut self, f: &Frame) {
        match f {
            Frame::Data { seq, ack, messages } => {
                // A run whose sequence numbers would wrap is refused by the decoder.
                let seqs = (0..).map_while(|i| seq.checked_add(i));
                for (seq, payload) in seqs.zip(messages.iter()) {
                    let v = self.data.entry(seq).or_default();
                    if v.len() < 64 && !v.contains(&payload) {
                        v.push(payload);
                    }
                }
                self.max_ack = self.max_ack.max(*ack);
            }
            Frame::Ack(p) => self.max_ack = self.max_ack.max(p.acked),
            Frame::Welcome(w) => self.max_ack = self.max_ack.max(w.positions.acked),
            Frame::Close { .. } => self.got_close = true,
            Frame::CloseAck { .. } => self.got_close_ack = true,
            Frame::CloseDone => self.got_close_done = true,
            Frame::Reject { reason: Reason::SessionClosed, .. } => self.got_reject_closed = true,
            _ => {}
        }
    }

    fn saw_output(&mut self, f: &Frame) {
        match f {
            Frame::Data { seq, messages, .. } => {
                self.wrote_high = self.wrote_high.max(seq + messages.count() as u64)
            }
            Frame::CloseAck { .. } => self.wrote_close_ack = true,
            Frame::Hello(h) => self.client_received = h.positions.received,
            Frame::Ack(p) => self.client_received = p.received,
            _ => {}
        }
    }
}

struct Harness {
    config: Config,
    s: Session,
    app: App,
    now: Instant,
    /// Connections opened, in order; the last one is current unless it ended.
    conns: Vec<ConnId>,
    current: Option<ConnId>,
    /// Connections the session closed or that were reported gone.
    dead: BTreeSet<ConnId>,
    /// Per connection: decoders of what was fed in and what came out.
    rx: BTreeMap<ConnId, Decoder>,
    tx: BTreeMap<ConnId, Decoder>,
    oracle: Oracle,
    id: u64,
    secret: [u8; 16],
    buf: BytesMut,
}

/// Runs one input, panicking on any property violation.
pub fn run(input: &Input) {
    let config = input.config.config();
    let now = Instant::from_millis(1_000);
    let s = Session::client(config.clone(), input.seed, now).expect("valid config");
    let mut h = Harness {
        config,
        s,
        app: App::default(),
        now,
        conns: Vec::new(),
        current: None,
        dead: BTreeSet::new(),
        rx: BTreeMap::new(),
        tx: BTreeMap::new(),
        oracle: Oracle::default(),
        id: input.id,
        secret: input.secret,
        buf: BytesMut::new(),
    };
    for op in input.ops.iter().take(256) {
        h.step(op);
        h.drain();
        h.check_limits();
    }
    h.run_out();
}

impl Harness {
    fn step(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Send { len, n } => {
                let size = usize::from(*len) % (self.config.max_message_size as usize + 1);
                for _ in 0..(*n % 16) {
                    let k = self.app.sent.len() + self.app.outbox.len();
                    self.app.outbox.push_back(payload(&format!("m{k}"), size));
                }
                self.app.feed(&mut self.s, now);
                self.app.outbox.clear();
            }
            Op::Ack(back) => {
                if let Some(seq) =
                    (self.app.delivered.len() as u64).checked_sub(1 + u64::from(*back))
                {
                    let r = self.s.ack(seq);
                    if self.config.ack_mode == AckMode::Manual {
                        assert_eq!(r, Ok(()), "ack of delivered message {seq} refused");
                    }
                }
            }
            Op::AckAny(seq) => {
                let _ = self.s.ack(*seq);
            }
            Op::Close => {
                let _ = self.s.close(now);
                self.app.close_requested = true;
            }
            Op::Abort => self.s.abort(now),
            Op::Advance(ms) => {
                self.now = self.now + Duration::from_millis(u64::from(*ms));
                self.s.handle_timeout(self.now);
            }
            Op::Fire => self.fire(false),
            Op::Spurious => self.s.handle_timeout(now),
            Op::Connect { fail } => self.connect(*fail),
            Op::Disconnect { stale } => {
                if let Some(conn) = self.pick_conn(*stale) {
                    self.s.handle_disconnected(now, conn);
                    self.dead.insert(conn);
                    if self.current == Some(conn) {
                        self.current = None;
                    }
                }
            }
            Op::Input { stale, wires, chunks } => {
                if let Some(conn) = self.pick_conn(*stale) {
                    let bytes = gen::encode_all(wires, &self.anchors());
                    for piece in gen::chunk(bytes, chunks).into_iter().take(64) {
                        self.input(conn, piece);
                    }
                }
            }
            Op::Welcome => {
                let p = self.app.confirmed_count() as u64;
                let frame = Frame::Welcome(Welcome {
                    version: PROTOCOL_VERSION,
                    resumed: self.s.id().is_some(),
                    session_id: self.id,
                    secret: self.secret,
                    positions: Positions {
                        received: p,
                        acked: p,
                        max_seq: u64::MAX,
                        max_bytes: u64::MAX,
                    },
                    max_message_size: self.config.max_message_size,
                });
                self.input_frame(frame);
            }
            Op::Data { len, n } => {
                let size = usize::from(*len) % (self.config.max_message_size as usize + 1);
                let seq = self.s.stats().messages_received;
                let ack = self.oracle.wrote_high.max(self.app.confirmed_count() as u64);
                let run: Vec<Bytes> = (seq..seq + 1 + u64::from(*n % 4))
                    .map(|s| payload(&format!("s{s}"), size))
                    .collect();
                self.input_frame(Frame::data(seq, ack, &run));
            }
            Op::AckAll => {
                let high = self.oracle.wrote_high.max(self.app.confirmed_count() as u64);
                let p = Positions {
                    received: high,
                    acked: high,
                    max_seq: u64::MAX,
                    max_bytes: u64::MAX,
                };
                self.input_frame(Frame::Ack(p));
            }
            Op::Read(on) => self.app.stalled = !on,
        }
    }

    /// Jumps to the next deadline and fires it; then nothing may be due any more.
    fn fire(&mut self, fail_connects: bool) {
        if let Some(t) = self.s.poll_timeout() {
            self.now = self.now.max(t);
        }
        let now = self.now;
        self.s.handle_timeout(now);
        self.drain();
        self.connect(fail_connects);
        self.drain();
        if let Some(t) = self.s.poll_timeout() {
            assert!(t > now, "poll_timeout {t:?} is not after now {now:?} once handled: busy loop");
        }
    }

    fn connect(&mut self, fail: bool) {
        if !self.s.poll_connect(self.now) {
            return;
        }
        if fail {
            self.s.handle_connect_failed(self.now);
            return;
        }
        let conn = ConnId(self.conns.len() as u64 + 1);
        self.conns.push(conn);
        self.current = Some(conn);
        self.s.handle_connected(self.now, conn);
    }

    fn pick_conn(&self, stale: u8) -> Option<ConnId> {
        if stale == 0 {
            return self.current;
        }
        let n = self.conns.len();
        (n > 0).then(|| self.conns[n - 1 - usize::from(stale - 1) % n])
    }

    fn anchors(&self) -> Anchors {
        let st = self.s.stats();
        Anchors {
            positions: vec![
                0,
                st.messages_received,
                self.oracle.wrote_high,
                self.app.confirmed_count() as u64,
                self.app.sent.len() as u64,
                self.app.delivered.len() as u64,
                self.oracle.client_received,
                u64::MAX,
            ],
            session_ids: vec![self.id, self.s.id().map_or(0, |i| i.0)],
            secrets: vec![self.secret],
        }
    }

    fn input_frame(&mut self, frame: Frame) {
        if let Some(conn) = self.current {
            let mut b = BytesMut::new();
            frame.encode(&mut b);
            self.input(conn, b.freeze());
        }
    }

    fn input(&mut self, conn: ConnId, bytes: Bytes) {
        let max = self.config.max_frame_size;
        let d = self.rx.entry(conn).or_insert_with(|| Decoder::new(max));
        d.push(bytes.clone());
        while let Ok(Some(f)) = d.next_frame() {
            self.oracle.saw_input(&f);
        }
        self.s.handle_input(self.now, conn, bytes);
    }

    /// Drains transmits and (unless stalled) events, checking each.
    fn drain(&mut self) {
        loop {
            self.buf.clear();
            let Some(t) = self.s.poll_transmit(self.now, &mut self.buf) else { break };
            let bytes = self.buf.split().freeze();
            let conn = match t {
                Transmit::Write(c) => {
                    assert!(!self.dead.contains(&c), "wrote to {c:?} after it closed or ended");
                    assert_eq!(Some(c), self.current, "wrote to {c:?}, not the current connection");
                    assert!(!bytes.is_empty(), "Write with no bytes");
                    c
                }
                Transmit::Close(c) => {
                    self.dead.insert(c);
                    if self.current == Some(c) {
                        self.current = None;
                    }
                    c
                }
            };
            let max = u32::MAX;
            let d = self.tx.entry(conn).or_insert_with(|| Decoder::new(max));
            d.push(bytes);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => self.oracle.saw_output(&f),
                    Ok(None) => break,
                    Err(e) => panic!("the session wrote undecodable bytes: {e:?}"),
                }
            }
        }
        if self.app.stalled {
            return;
        }
        while let Some(e) = self.s.poll_event() {
            self.check_event(&e);
            let manual = match (self.config.ack_mode, &e) {
                (AckMode::Manual, Event::Messages(d)) => Some(d.clone()),
                _ => None,
            };
            self.app.record(Side::Client(0), e, false, true);
            if let Some(d) = manual {
                // Ack some deliveries' messages one by one, some in one go, some not yet.
                for (seq, _) in d {
                    if (self.app.delivered.len() + seq as usize) % 3 != 1 {
                        self.s.ack(seq).expect("ack of a delivered message");
                    }
                }
            }
        }
    }

    /// Checks an event against what the session really received and sent.
    fn check_event(&self, e: &Event) {
        let o = &self.oracle;
        match e {
            Event::Messages(d) => {
                for (seq, payload) in d.clone() {
                    let seen = o.data.get(&seq).is_some_and(|v| v.contains(&payload));
                    assert!(seen, "message {seq} delivered with a payload no Data frame carried");
                }
            }
            Event::Confirmed { up_to } => {
                assert!(
                    *up_to < o.max_ack,
                    "Confirmed {up_to} but the server acked only {}",
                    o.max_ack
                );
                assert!(
                    *up_to < o.wrote_high,
                    "Confirmed {up_to} but only {} written",
                    o.wrote_high
                );
            }
            Event::Closed => {
                assert!(
                    self.app.close_requested || o.got_close,
                    "Closed without a close requested by either side"
                );
                assert!(
                    o.got_close_ack || o.got_close_done || o.got_reject_closed || o.wrote_close_ack,
                    "Closed without a close handshake"
                );
            }
            _ => {}
        }
    }

    fn check_limits(&self) {
        let st = self.s.stats();
        let c = &self.config;
        assert!(st.unconfirmed_messages <= u64::from(c.max_unconfirmed_messages));
        assert!(st.unconfirmed_bytes <= c.max_unconfirmed_bytes);
        assert!(st.buffered_receive_messages <= u64::from(c.receive_window_messages));
        assert!(st.buffered_receive_bytes <= c.receive_window_bytes);
    }

    /// The network is gone: every connect fails, time runs; the session must end.
    fn run_out(&mut self) {
        self.app.stalled = false;
        self.drain();
        for _ in 0..10_000 {
            if self.app.ended() {
                break;
            }
            self.fire(true);
            self.drain();
            self.check_limits();
        }
        assert!(self.app.ended(), "the session did not end with the network gone");
        assert!(self.s.poll_timeout().is_none(), "an ended session still arms a timer");
    }
}
