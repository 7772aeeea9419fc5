//! Protocol version 2's data frame: a run of consecutive messages under one header and one CRC.
//! How a sender packs runs (window, batch, the peer's frame limit, replay after a resume) and how a
//! receiver checks every message of a run (duplicates, gaps, window, size, close).

mod common;

use bytes::Bytes;
use common::raw::{welcome, Raw};
use common::*;
use tether_core::wire::{
    Frame, Positions, Welcome, DATA_FRAME_LEN, DATA_OVERHEAD, PACKED_RUN_MAX, PROTOCOL_VERSION,
};
use tether_core::{Config, ConnId, Duration, Event, Reason};

const LIMIT: Duration = Duration::from_secs(120);

fn open_window() -> Positions {
    Positions { received: 0, acked: 0, max_seq: 1 << 20, max_bytes: 1 << 40 }
}

fn msg(i: usize, len: usize) -> Bytes {
    (0..len).map(|k| (i * 7 + k) as u8).collect()
}

/// The data frames in `frames`: `(first seq, payloads)`.
fn data_frames(frames: &[Frame]) -> Vec<(u64, Vec<Bytes>)> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Data { seq, messages, .. } => Some((*seq, messages.iter().collect())),
            _ => None,
        })
        .collect()
}

/// Sequence numbers written, in order, across all frames.
fn seqs(frames: &[(u64, Vec<Bytes>)]) -> Vec<u64> {
    frames.iter().flat_map(|(s, m)| *s..*s + m.len() as u64).collect()
}

#[test]
fn small_messages_share_frames_and_cost_at_most_4_bytes_each() {
    let mut raw = Raw::new(test_config(), 1 << 20);
    let sent: Vec<Bytes> = (0..2000).map(|i| msg(i, 64)).collect();
    for m in &sent {
        raw.s.send(raw.now, m.clone()).unwrap();
    }
    let frames = raw.drain();
    let data = data_frames(&frames);
    assert_eq!(seqs(&data), (0..2000).collect::<Vec<_>>());
    assert_eq!(data.iter().flat_map(|(_, m)| m.clone()).collect::<Vec<_>>(), sent);
    // A full frame: as many 65-byte (prefix + payload) messages as PACKED_RUN_MAX holds.
    let full = PACKED_RUN_MAX / 65;
    assert_eq!(data[0].1.len(), full, "the first frame is full");
    let wire: usize = data.iter().map(|(_, m)| DATA_OVERHEAD + m.len() * 65).sum();
    let overhead = (wire - 2000 * 64) as f64 / 2000.0;
    assert!(overhead <= 4.0, "{overhead} bytes of overhead per 64 B message");
    let full_frame = (DATA_OVERHEAD + full * 65 - full * 64) as f64 / full as f64;
    assert!(full_frame < 1.2, "{full_frame} bytes per message in a full frame");
}

#[test]
fn a_run_stops_at_the_peers_window_and_goes_on_when_it_opens() {
    let mut raw = Raw::new(test_config(), 10);
    for i in 0..25 {
        raw.s.send(raw.now, msg(i, 8)).unwrap();
    }
    let data = data_frames(&raw.drain());
    assert_eq!(data.len(), 1, "one frame for what the window allows");
    assert_eq!(seqs(&data), (0..10).collect::<Vec<_>>());
    raw.feed(&[Frame::Ack(Positions { received: 10, acked: 10, max_seq: 22, max_bytes: 1 << 30 })]);
    let data = data_frames(&raw.drain());
    assert_eq!(seqs(&data), (10..22).collect::<Vec<_>>());
}

#[test]
fn a_run_stops_at_the_peers_byte_window() {
    let mut raw = Raw::handshaking(test_config());
    raw.feed(&[welcome(Positions { received: 0, acked: 0, max_seq: 100, max_bytes: 30 })]);
    for i in 0..10 {
        raw.s.send(raw.now, msg(i, 10)).unwrap();
    }
    assert_eq!(seqs(&data_frames(&raw.drain())), [0, 1, 2], "exactly 30 of 30 bytes");
}

/// A peer with a small `max_message_size` has a small `max_frame_size` too: runs stay within its
/// `max_message_size` plus one prefix, and a largest message goes alone.
#[test]
fn runs_fit_the_frame_limit_of_a_peer_with_small_messages() {
    let mut raw = Raw::handshaking(test_config());
    raw.feed(&[Frame::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        resumed: false,
        session_id: 7,
        secret: [3; 16],
        positions: open_window(),
        max_message_size: 100,
    })]);
    assert_eq!(raw.s.poll_event(), Some(Event::Connected));
    for i in 0..40 {
        raw.s.send(raw.now, msg(i, if i == 20 { 100 } else { 34 })).unwrap();
    }
    let data = data_frames(&raw.drain());
    assert_eq!(seqs(&data), (0..40).collect::<Vec<_>>());
    for (seq, m) in &data {
        let run: usize = m.iter().map(|p| 1 + p.len()).sum();
        assert!(run <= 100 + 5, "frame at {seq}: run of {run} bytes");
        let len = DATA_FRAME_LEN as usize - 5 + run;
        assert!(len <= 100 + DATA_FRAME_LEN as usize);
    }
    assert!(data.iter().any(|(s, m)| *s == 20 && m.len() == 1), "the 100 B message goes alone");
    assert!(data.iter().any(|(_, m)| m.len() == 3), "34 B messages go three to a frame: 105 B");
    assert!(data.iter().all(|(_, m)| m.len() <= 3));
}

#[test]
fn a_resume_replays_from_the_peers_position_in_runs_of_its_own() {
    let mut raw = Raw::new(test_config(), 1 << 20);
    for i in 0..10 {
        raw.s.send(raw.now, msg(i, 16)).unwrap();
    }
    assert_eq!(data_frames(&raw.drain()).len(), 1, "all ten in one frame");
    // The connection dies; the peer had received four of them.
    raw.s.handle_disconnected(raw.now, raw.conn);
    while !raw.s.poll_connect(raw.now) {
        raw.now = raw.s.poll_timeout().expect("a reconnect is scheduled");
        raw.s.handle_timeout(raw.now);
    }
    raw.conn = ConnId(2);
    raw.s.handle_connected(raw.now, raw.conn);
    assert!(matches!(raw.drain().first(), Some(Frame::Hello(_))));
    raw.feed(&[Frame::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        resumed: true,
        session_id: 7,
        secret: [3; 16],
        positions: Positions { received: 4, acked: 4, max_seq: 1 << 20, max_bytes: 1 << 40 },
        max_message_size: 1 << 20,
    })]);
    let data = data_frames(&raw.drain());
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].0, 4);
    assert_eq!(data[0].1, (4..10).map(|i| msg(i, 16)).collect::<Vec<_>>());
    assert_eq!(raw.s.stats().replayed_messages, 6);
}

/// Messages delivered by the session under test, in order.
fn delivered(raw: &mut Raw) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    while let Some(e) = raw.s.poll_event() {
        if let Event::Messages(d) = e {
            out.extend(d);
        }
    }
    out
}

fn run(seq: u64, from: usize, to: usize) -> Frame {
    let payloads: Vec<Bytes> = (from..to).map(|i| msg(i, 5)).collect();
    Frame::data(seq, 0, &payloads)
}

#[test]
fn a_run_overlapping_what_arrived_delivers_only_the_new_messages() {
    let mut raw = Raw::new(test_config(), 100);
    raw.feed(&[run(0, 0, 3), run(1, 1, 5), run(2, 2, 4)]);
    let got = delivered(&mut raw);
    assert_eq!(got, (0..5).map(|i| (i as u64, msg(i, 5))).collect::<Vec<_>>());
    assert!(raw.drain().iter().all(|f| !matches!(f, Frame::ConnClose { .. })));
}

#[test]
fn a_run_past_a_gap_ends_the_connection() {
    let mut raw = Raw::new(test_config(), 100);
    raw.feed(&[run(0, 0, 2), run(3, 3, 5)]);
    assert_eq!(delivered(&mut raw).len(), 2);
    assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidSequence));
}

/// Messages of a run are checked one by one: those inside the window are kept, the first past
/// it ends the connection, and a resume goes on from there.
#[test]
fn a_run_past_the_receive_window_ends_the_connection_after_what_fits() {
    let config = Config { receive_window_messages: 4, ..test_config() };
    let mut raw = Raw::new(config, 100);
    // Nothing is taken by the application (no poll_event) so the window stays at 4.
    raw.feed(&[run(0, 0, 6)]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::FlowControlViolation));
    assert_eq!(delivered(&mut raw).iter().map(|m| m.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
}

#[test]
fn an_oversized_message_inside_a_run_ends_the_connection() {
    let config = Config { max_message_size: 8, max_frame_size: 200, ..test_config() };
    let mut raw = Raw::new(config, 100);
    let payloads = [msg(0, 8), msg(1, 9)];
    raw.feed(&[Frame::data(0, 0, &payloads)]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::MessageTooLarge));
    assert_eq!(delivered(&mut raw), [(0, msg(0, 8))], "a message of exactly the limit is taken");
}

/// The byte window counts every payload byte received and not acked, in the queue and (manual
/// mode) taken by the application: a run is taken up to exactly `receive_window_bytes`.
#[test]
fn a_run_past_the_byte_window_ends_the_connection_after_what_fits() {
    let sizes = |raw: &mut Raw, seq: u64, sizes: &[usize]| {
        let payloads: Vec<Bytes> = sizes.iter().map(|&n| msg(n, n)).collect();
        raw.feed(&[Frame::data(seq, 0, &payloads)]);
    };
    let config = Config {
        max_message_size: 50,
        max_frame_size: 200,
        receive_window_bytes: 100,
        ..test_config()
    };
    let mut raw = Raw::new(config.clone(), 100);
    sizes(&mut raw, 0, &[40, 40, 20]);
    assert!(raw.drain().iter().all(|f| !matches!(f, Frame::ConnClose { .. })), "100 of 100 fit");
    sizes(&mut raw, 3, &[1]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::FlowControlViolation));
    assert_eq!(delivered(&mut raw).len(), 3);

    // Manual mode: taken but not acked still counts.
    let manual = Config { ack_mode: tether_core::AckMode::Manual, ..config };
    let mut raw = Raw::new(manual.clone(), 100);
    sizes(&mut raw, 0, &[40, 40]);
    assert_eq!(delivered(&mut raw).len(), 2, "taken, not acked");
    sizes(&mut raw, 2, &[20, 1]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::FlowControlViolation));
    assert_eq!(delivered(&mut raw).len(), 1, "the 20 fit, the 1 did not");

    // Acking gives back exactly the acked messages' bytes.
    let mut raw = Raw::new(manual, 100);
    sizes(&mut raw, 0, &[40, 40]);
    assert_eq!(delivered(&mut raw).len(), 2);
    raw.s.ack(0).unwrap(); // 40 of the 80 bytes are acked: 60 fit now, 61 would not
    sizes(&mut raw, 2, &[30, 30]);
    assert!(raw.drain().iter().all(|f| !matches!(f, Frame::ConnClose { .. })), "100 of 100 fit");
    sizes(&mut raw, 4, &[1]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::FlowControlViolation));
}

#[test]
fn a_run_reaching_past_the_peers_final_sequence_ends_the_connection() {
    let mut raw = Raw::new(test_config(), 100);
    raw.feed(&[run(0, 0, 2), Frame::Close { final_seq: 3 }, run(2, 2, 4)]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidSequence));
    assert_eq!(delivered(&mut raw).len(), 3, "seq 2 was below final_seq");
}

#[test]
fn a_run_is_handed_to_the_application_as_zero_copy_slices() {
    let mut raw = Raw::new(test_config(), 100);
    let mut bytes = bytes::BytesMut::new();
    run(0, 0, 3).encode(&mut bytes);
    let bytes = bytes.freeze();
    let range = bytes.as_ptr_range();
    raw.s.handle_input(raw.now, raw.conn, bytes);
    let got = delivered(&mut raw);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|(_, p)| range.contains(&p.as_ptr())), "payloads point into the read");
}

/// Both directions pack runs and survive losing an unknown suffix of them: exactly once, in
/// order, nothing lost, over many seeds.
#[test]
fn packed_runs_survive_resets_in_both_directions() {
    let mut replayed = 0;
    for seed in 0..30 {
        let mut net = Net::connected(test_config(), seed);
        net.client_sends(0, 3000, 48);
        net.server_sends(0, 3000, 48);
        for _ in 0..3 {
            let pause = Duration::from_micros(300 + net.rand() % 2000);
            net.run_for(pause);
            net.lose_suffix_then_reset(0);
        }
        assert!(net.run_until(LIMIT, |n| {
            n.clients[0].app.delivered.len() == 3000
                && n.server_app(0).is_some_and(|a| a.delivered.len() == 3000)
        }));
        check_contract(&net);
        replayed += net.clients[0].session.stats().replayed_messages;
    }
    assert!(replayed > 0, "the resets cost frames in flight");
}

/// A run that lies about its lengths never reaches the session: the connection ends with
/// `MalformedFrame` and nothing of the frame is delivered.
#[test]
fn a_lying_run_ends_the_connection_as_malformed() {
    let lies: [&[u8]; 4] = [&[3, 1, 2], &[1, 9, 0x80], &[0x80, 0x00], &[]];
    for run in lies {
        let mut raw = Raw::new(test_config(), 100);
        let mut body = vec![0u8; 16];
        body.extend_from_slice(run);
        let mut bytes = bytes::BytesMut::new();
        tether_core::wire::tests_support::raw_frame(&mut bytes, 0x04, &body);
        raw.s.handle_input(raw.now, raw.conn, bytes.freeze());
        assert_eq!(raw.conn_closed_with(), Some(Reason::MalformedFrame), "run {run:?}");
        assert!(delivered(&mut raw).is_empty(), "run {run:?}");
    }
}

/// One `poll_transmit` adds frames until the batch is reached, and a frame's run stops at what is
/// left of it: with a 1,000-byte batch, 15 messages of 64 B (a 975-byte run, a 1,000-byte frame).
/// The batch counts only what this call adds to the sink, not what it already held.
#[test]
fn a_transmit_stops_at_the_batch_and_a_run_at_what_is_left_of_it() {
    for already in [0, 10_000] {
        let mut raw = Raw::new(Config { transmit_batch_bytes: 1000, ..test_config() }, 1 << 20);
        for i in 0..40 {
            raw.s.send(raw.now, msg(i, 64)).unwrap();
        }
        let mut buf = bytes::BytesMut::from(&vec![0u8; already][..]);
        assert!(raw.s.poll_transmit(raw.now, &mut buf).is_some());
        let written = buf.split_off(already).freeze();
        assert_eq!(written.len(), 1000, "a sink holding {already} bytes");
        let mut d = tether_core::wire::Decoder::new(1 << 20);
        d.push(written);
        let Ok(Some(Frame::Data { seq: 0, messages, .. })) = d.next_frame() else { panic!() };
        assert_eq!(messages.count(), 15);
        assert_eq!(d.next_frame(), Ok(None), "one frame filled the batch");
    }
}

/// The ack timeout counts from when data is first written after an idle spell, not from the last
/// progress before it: a session idle for longer than `ack_timeout` that sends again is not
/// declared dead at once.
#[test]
fn the_ack_timeout_starts_when_data_is_written_after_an_idle_spell() {
    let config = test_config();
    let mut raw = Raw::new(config.clone(), 100);
    let alive = |raw: &mut Raw| {
        let p = Positions { received: 0, acked: 0, max_seq: 100, max_bytes: 1 << 30 };
        raw.feed(&[Frame::Ack(p)]); // any valid frame counts as life
        raw.s.handle_timeout(raw.now);
        raw.drain();
    };
    let step = Duration::from_millis(100);
    // Counted steps, so that a broken clock fails the test instead of spinning it.
    let steps = |d: Duration| d.as_nanos() / step.as_nanos();
    let start = raw.now;
    for _ in 0..steps(config.ack_timeout * 3) {
        raw.now = raw.now + step;
        alive(&mut raw);
    }
    assert!(raw.now - start >= config.ack_timeout * 3, "idle for three ack timeouts");
    raw.s.send(raw.now, msg(0, 8)).unwrap();
    raw.drain();
    let sent = raw.now;
    for _ in 0..steps(config.ack_timeout - step) {
        raw.now = raw.now + step;
        alive(&mut raw);
        assert!(
            std::iter::from_fn(|| raw.s.poll_event())
                .all(|e| !matches!(e, Event::Disconnected { .. })),
            "disconnected {:?} after the send",
            raw.now - sent
        );
    }
    raw.now = sent + config.ack_timeout + step;
    raw.s.handle_timeout(raw.now);
    let events: Vec<Event> = std::iter::from_fn(|| raw.s.poll_event()).collect();
    assert!(events.contains(&Event::Disconnected { reason: Reason::AckTimeout }), "{events:?}");
}

/// The second frame of a transmit gets only what the first left of the batch: with a 20,000-byte
/// batch, a full 16 KiB run of 252 messages (16,405 bytes), then 55 more (a 3,575-byte run).
#[test]
fn a_later_frame_of_a_transmit_gets_what_is_left_of_the_batch() {
    let mut raw = Raw::new(Config { transmit_batch_bytes: 20_000, ..test_config() }, 1 << 20);
    for i in 0..400 {
        raw.s.send(raw.now, msg(i, 64)).unwrap();
    }
    let mut buf = bytes::BytesMut::new();
    assert!(raw.s.poll_transmit(raw.now, &mut buf).is_some());
    let mut d = tether_core::wire::Decoder::new(1 << 20);
    d.push(buf.freeze());
    let mut counts = Vec::new();
    while let Ok(Some(Frame::Data { messages, .. })) = d.next_frame() {
        counts.push(messages.count());
    }
    assert_eq!(counts, [252, 55]);
}

/// A message larger than the transmit batch (but within `max_message_size`) still goes, alone.
#[test]
fn a_message_larger_than_the_batch_goes_alone() {
    let mut raw = Raw::new(Config { transmit_batch_bytes: 1000, ..test_config() }, 1 << 20);
    for (i, len) in [2000, 10, 3000].into_iter().enumerate() {
        raw.s.send(raw.now, msg(i, len)).unwrap();
    }
    let data = data_frames(&raw.drain());
    let lens: Vec<Vec<usize>> =
        data.iter().map(|(_, m)| m.iter().map(|p| p.len()).collect()).collect();
    assert_eq!(lens, [vec![2000], vec![10], vec![3000]]);
}

/// A run numbered at the very top of the sequence space is a gap, refused without a panic.
#[test]
fn a_run_at_the_top_of_the_sequence_space_is_a_gap() {
    for (seq, n) in [(u64::MAX - 1, 1), (u64::MAX - 3, 3)] {
        let mut raw = Raw::new(test_config(), 100);
        raw.feed(&[run(seq, 0, n)]);
        assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidSequence), "seq {seq}");
    }
}
