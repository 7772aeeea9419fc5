//! The wire module's public sizes are what the encoder writes (docs/PROTOCOL.md, "Frames" and
//! 13.1): adapters size their buffers and check their limits with them, and `FrameSink`'s
//! provided methods behave as documented for a sink that only counts its bytes.

mod common;

use bytes::{Bytes, BytesMut};
use common::raw;
use tether_core::wire::{
    Frame, FrameSink, HelloKind, Positions, Welcome, DATA_FRAME_LEN, DATA_HEADER_LEN,
    DATA_OVERHEAD, FRAME_OVERHEAD, HANDSHAKE_FRAME_LIMIT, MAX_CONTROL_FRAME_LEN, MAX_LENGTH_PREFIX,
    PROTOCOL_VERSION,
};
use tether_core::Reason;

fn encode(f: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    f.encode(&mut b);
    b.to_vec()
}

/// The frame's `len` field (type byte and body).
fn len_field(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[..4].try_into().unwrap())
}

fn positions() -> Positions {
    Positions { received: 1, acked: 1, max_seq: 9, max_bytes: 99 }
}

#[test]
fn control_frames_are_their_body_plus_frame_overhead_and_hello_is_the_largest() {
    // PROTOCOL.md: "len: u32 | type: u8 | body | crc: u32"; `max_frame_size >= ... 66`.
    assert_eq!(FRAME_OVERHEAD, 9);
    assert_eq!(MAX_CONTROL_FRAME_LEN, 66);
    // PROTOCOL.md: a first frame at the server is limited to 128 bytes, room for a `Hello`.
    assert_eq!(HANDSHAKE_FRAME_LIMIT, 128);
    const { assert!(HANDSHAKE_FRAME_LIMIT >= MAX_CONTROL_FRAME_LEN) };
    // Every field is fixed-width: the values do not change the size.
    let v = PROTOCOL_VERSION;
    let hello = Frame::Hello(raw::new_hello(HelloKind::Resume, v, v));
    let welcome = Frame::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        resumed: true,
        session_id: 7,
        secret: [3; 16],
        positions: positions(),
        max_message_size: 1000,
    });
    let frames = [
        (hello, 65),
        (welcome, 63),
        (Frame::Reject { reason: Reason::ServerBusy, min_version: 2, max_version: 2 }, 5),
        (Frame::Ack(positions()), 32),
        (Frame::Ping { token: 5 }, 8),
        (Frame::Pong { token: 5 }, 8),
        (Frame::Close { final_seq: 3 }, 8),
        (Frame::CloseAck { final_seq: 3 }, 8),
        (Frame::CloseDone, 0),
        (Frame::Abort { reason: Reason::ApplicationAbort }, 1),
        (Frame::ConnClose { reason: Reason::IdleTimeout }, 1),
    ];
    for (frame, body) in frames {
        let bytes = encode(&frame);
        assert_eq!(bytes.len(), body + FRAME_OVERHEAD, "{frame:?}");
        assert_eq!(len_field(&bytes) as usize, 1 + body, "{frame:?}");
        assert!(len_field(&bytes) <= MAX_CONTROL_FRAME_LEN, "{frame:?}");
    }
}

#[test]
fn a_data_frame_is_its_run_plus_data_overhead_and_one_fits_its_size_plus_data_frame_len() {
    // PROTOCOL.md: "`len` 17 + r, frame 25 + r bytes"; `max_frame_size >= max_message_size + 22`.
    assert_eq!(DATA_HEADER_LEN, 17);
    assert_eq!(DATA_OVERHEAD, 25);
    assert_eq!(DATA_FRAME_LEN, 22);
    assert_eq!(MAX_LENGTH_PREFIX, 5);
    for (size, prefix) in [(0, 1), (1, 1), (127, 1), (128, 2), (200, 2), (16_383, 2), (16_384, 3)] {
        let payload = Bytes::from(vec![0x5a; size]);
        let bytes = encode(&Frame::data(4, 2, &[payload]));
        let run = prefix + size;
        assert_eq!(bytes.len(), run + DATA_OVERHEAD, "one message of {size} bytes");
        assert_eq!(len_field(&bytes), DATA_HEADER_LEN + run as u32, "{size} bytes");
        assert!(len_field(&bytes) <= size as u32 + DATA_FRAME_LEN, "{size} bytes");
    }
    let run = [Bytes::from_static(b"hi"), Bytes::new(), Bytes::from(vec![1; 300])];
    let bytes = encode(&Frame::data(0, 0, &run));
    assert_eq!(bytes.len(), (1 + 2) + 1 + (2 + 300) + DATA_OVERHEAD);
}

/// A sink that keeps every piece and implements only what it must.
#[derive(Default)]
struct Counting {
    taken: usize,
    current: BytesMut,
}

impl FrameSink for Counting {
    fn bytes(&mut self) -> &mut BytesMut {
        &mut self.current
    }

    fn len(&self) -> usize {
        self.current.len() - self.taken
    }
}

#[test]
fn a_sink_is_empty_exactly_when_it_holds_nothing() {
    let mut sink = Counting::default();
    assert!(sink.is_empty());
    Frame::CloseDone.encode(&mut sink);
    assert_eq!(sink.len(), FRAME_OVERHEAD);
    assert!(!sink.is_empty(), "a sink holding a frame is not empty");
    // The provided `put_payload` copies into `bytes`.
    let big = Bytes::from(vec![7; 1000]);
    Frame::data(0, 0, std::slice::from_ref(&big)).encode(&mut sink);
    assert_eq!(&sink.current[sink.current.len() - 4 - 1000..sink.current.len() - 4], &big[..]);
    sink.taken = sink.current.len(); // written out
    assert!(sink.is_empty(), "a sink whose bytes were all written out is empty");

    let mut b = BytesMut::new();
    assert!(FrameSink::is_empty(&b));
    Frame::Ping { token: 1 }.encode(&mut b);
    assert!(!FrameSink::is_empty(&b));
    assert_eq!(FrameSink::len(&b), 17);
}
