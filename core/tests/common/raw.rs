//! A client session driven by hand-written server frames: what it writes, and how it ends a
//! connection on bad input.

use bytes::BytesMut;
use tether_core::wire::{Decoder, Frame, Hello, HelloKind, Positions, Welcome};
use tether_core::{Config, ConnId, Event, Instant, Reason, Session, Transmit};

/// A client session and its one connection, played by hand.
pub struct Raw {
    pub s: Session,
    pub now: Instant,
    pub conn: ConnId,
}

impl Raw {
    /// A client whose `Hello` is written and whose server has not answered yet.
    pub fn handshaking(config: Config) -> Raw {
        let now = Instant::from_millis(10);
        let mut s = Session::client(config, 1, now).unwrap();
        assert!(s.poll_connect(now));
        let conn = ConnId(1);
        s.handle_connected(now, conn);
        let mut raw = Raw { s, now, conn };
        let out = raw.drain();
        assert!(matches!(out.first(), Some(Frame::Hello(_))));
        raw
    }

    /// A client whose handshake was answered with a Welcome advertising `window` messages.
    pub fn new(config: Config, window: u64) -> Raw {
        let mut raw = Raw::handshaking(config);
        raw.feed(&[welcome(Positions {
            received: 0,
            acked: 0,
            max_seq: window,
            max_bytes: 1 << 30,
        })]);
        assert_eq!(raw.s.poll_event(), Some(Event::Connected));
        raw
    }

    pub fn feed(&mut self, frames: &[Frame]) {
        let mut b = BytesMut::new();
        for f in frames {
            f.encode(&mut b);
        }
        self.s.handle_input(self.now, self.conn, b.freeze());
    }

    /// Every frame the client writes now; a `Close` transmit is recorded as `None`.
    pub fn drain_all(&mut self) -> Vec<Option<Frame>> {
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        while let Some(t) = self.s.poll_transmit(self.now, &mut buf) {
            let mut d = Decoder::new(1 << 20);
            d.push(buf.split().freeze());
            while let Some(f) = d.next_frame().unwrap() {
                out.push(Some(f));
            }
            if matches!(t, Transmit::Close(_)) {
                out.push(None);
            }
        }
        out
    }

    pub fn drain(&mut self) -> Vec<Frame> {
        self.drain_all().into_iter().flatten().collect()
    }

    /// The session's events available now (no time passes).
    pub fn events(&mut self) -> Vec<Event> {
        core::iter::from_fn(|| self.s.poll_event()).collect()
    }

    /// The connection dies; the session reconnects (time jumps to its backoff) on the next
    /// connection id, whose first write must be a `Hello`. Returns what it wrote.
    pub fn reconnect(&mut self) -> Vec<Frame> {
        self.s.handle_disconnected(self.now, self.conn);
        for _ in 0..1000 {
            if self.s.poll_connect(self.now) {
                break;
            }
            self.now = self.s.poll_timeout().expect("a reconnect is scheduled");
            self.s.handle_timeout(self.now);
        }
        self.conn = ConnId(self.conn.0 + 1);
        self.s.handle_connected(self.now, self.conn);
        let out = self.drain();
        assert!(matches!(out.first(), Some(Frame::Hello(_))), "{out:?}");
        out
    }

    pub fn conn_closed_with(&mut self) -> Option<Reason> {
        let out = self.drain_all();
        assert_eq!(out.last(), Some(&None), "connection should be closed: {out:?}");
        out.iter().flatten().find_map(|f| match f {
            Frame::ConnClose { reason } => Some(*reason),
            _ => None,
        })
    }
}

/// A client's new-session `Hello` offering versions `min..=max`.
pub fn new_hello(kind: HelloKind, min: u16, max: u16) -> Hello {
    Hello {
        min_version: min,
        max_version: max,
        kind,
        session_id: 0,
        secret: [0; 16],
        positions: Positions::default(),
        max_message_size: 1 << 20,
    }
}

/// A new-session `Welcome` from the hand-played server with the given positions.
pub fn welcome(positions: Positions) -> Frame {
    welcome_of(false, positions, 1 << 20)
}

/// Like [`welcome`], from a server that accepts messages of at most `max_message_size` bytes.
pub fn welcome_limiting(positions: Positions, max_message_size: u32) -> Frame {
    welcome_of(false, positions, max_message_size)
}

/// The `Welcome` that accepts a resume of the session `welcome` created.
pub fn resume_welcome(positions: Positions) -> Frame {
    welcome_of(true, positions, 1 << 20)
}

fn welcome_of(resumed: bool, positions: Positions, max_message_size: u32) -> Frame {
    Frame::Welcome(Welcome {
        version: tether_core::wire::PROTOCOL_VERSION,
        resumed,
        session_id: 7,
        secret: [3; 16],
        positions,
        max_message_size,
    })
}
