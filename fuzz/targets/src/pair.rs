//! `pair`: an endpoint and one or two clients exchanging messages over links whose faults (resets,
//! silent deaths, one-way silence, suffix loss, bit corruption, half-open connections, partitions,
//! server restarts), timing, chunking and application behaviour (stalls, closes, aborts) the
//! fuzzer chooses.
//!
//! Properties (DESIGN.md section 6), checked as events arrive and at the end:
//! - nothing panics, every limit holds, nobody writes to a connection after closing it;
//! - per direction, delivered is a gap-free, duplicate-free, byte-identical prefix of sent;
//! - every sent message is confirmed or handed back by `Lost`, which holds exactly the
//!   unconfirmed suffix; nothing is confirmed that the peer has not delivered;
//! - after the faults stop, a requested close ends every session on both sides within its
//!   timeouts; and if the run had no restart, no abort and no partition near the session timeout,
//!   every session ends `Closed` on both sides with everything delivered.

use arbitrary::{Arbitrary, Unstructured};
use tether_core::{AckMode, Config, Duration};

use tether_sim::harness::{self, check_direction, Net};

use crate::gen::test_timers;

/// The fuzz input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    manual_ack: bool,
    two_clients: bool,
    seed: u64,
    /// Small receive windows and send buffers, in messages (else the defaults).
    window: Option<u8>,
    ops: Vec<Op>,
}

/// One step of the schedule; client numbers are taken modulo the number of clients.
#[derive(Arbitrary, Debug)]
enum Op {
    ClientSend {
        client: u8,
        n: u8,
        size: u16,
    },
    ServerSend {
        client: u8,
        n: u8,
        size: u16,
    },
    /// Let this many milliseconds of virtual time pass (modulo 3,000).
    Run(u16),
    Reset(u8),
    Blackhole(u8),
    BlackholeToServer(u8),
    Corrupt(u8, u16, u8),
    HalfOpen(u8),
    LoseSuffix(u8, u8),
    /// A partition of this many tens of milliseconds.
    Partition(u16),
    RestartServer,
    StallServer(bool),
    StallClient(u8, bool),
    SplitReads(bool),
    Latency(u8),
    SpuriousTimeouts(bool),
    ClientClose(u8),
    ServerClose(u8),
    ClientAbort(u8),
    ServerAbort(u8),
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

/// Most messages one application sends in a run (keeps executions fast: with 300, the inputs
/// that sent that many were a third of the fuzzing time).
const MAX_MESSAGES: usize = 100;
/// Most virtual time the schedule itself may take.
const MAX_SCHEDULE: Duration = Duration::from_secs(60);

/// Runs one input, panicking on any property violation.
pub fn run(input: &Input) {
    let mut config = Config {
        ack_mode: if input.manual_ack { AckMode::Manual } else { AckMode::OnDelivery },
        max_message_size: 1024,
        max_frame_size: 1024 + 64,
        max_sessions: 64,
        max_detached_sessions: 64,
        max_handshakes: 64,
        ..test_timers()
    };
    if let Some(w) = input.window {
        let w = 1 + u32::from(w % 32);
        config.receive_window_messages = w;
        config.max_unconfirmed_messages = w;
        config.receive_window_bytes = u64::from(w.max(2) * 1024);
        config.max_unconfirmed_bytes = u64::from(w.max(2) * 1024);
    }
    let clients = if input.two_clients { 2 } else { 1 };
    let mut net = crate::net(config.clone(), clients, input.seed);
    // A clean close is promised only if the run had no restart or abort, its partitions add up to
    // well under the session timeout, and no close (asked for by either side) had to run through
    // a fault: close_timeout bounds a close, faults can legitimately outlast it.
    let mut benign = true;
    let mut closing = false;
    let mut partitioned = Duration::ZERO;
    let start = net.now;
    for op in input.ops.iter().take(128) {
        if net.now - start > MAX_SCHEDULE {
            break;
        }
        let disturbed = net.partitioned_until.is_some()
            || net.server_stalled
            || net.clients.iter().any(|c| c.app.stalled);
        match step(&mut net, op, clients, &mut partitioned) {
            Kind::Neutral => {}
            Kind::Fault => benign &= !closing,
            Kind::Close => {
                closing = true;
                benign &= !disturbed;
            }
            Kind::Destructive => benign = false,
        }
        net.pump();
    }
    benign &= partitioned < config.session_timeout / 2;

    // Heal: no new faults, every application reads; once the partition is over and the clients
    // had time to reconnect, every client asks for a clean close (whose timeout runs from then).
    net.server_stalled = false;
    for c in &mut net.clients {
        c.app.stalled = false;
    }
    if let Some(until) = net.partitioned_until {
        net.run_for(until - net.now);
    }
    net.run_for(Duration::from_secs(1));
    for i in 0..clients {
        let now = net.now;
        let c = &mut net.clients[i];
        if c.session.close(now).is_ok() {
            c.app.close_requested = true;
        }
    }
    let generation = net.generation;
    let ended = net.run_until(Duration::from_secs(120), |n| {
        n.clients.iter().all(|c| c.app.ended())
            && n.server_apps.iter().filter(|((g, _), _)| *g == generation).all(|(_, a)| a.ended())
    });
    assert!(ended, "sessions still running long after the faults stopped");
    net.check_no_leaked_connections();

    for (i, c) in net.clients.iter().enumerate() {
        let server = c
            .session
            .id()
            .and_then(|id| net.server_apps.iter().find(|((_, sid), _)| *sid == id).map(|(_, a)| a));
        check_direction(&format!("client {i} -> server"), &c.app, server);
        if let Some(s) = server {
            check_direction(&format!("server -> client {i}"), s, Some(&c.app));
        }
        if benign {
            assert!(c.app.closed(), "client {i} ended {:?} in a benign run", c.app.lost_reason());
            let s = server.expect("a session that closed has a server side");
            assert!(s.closed(), "client {i}'s server session ended {:?}", s.lost_reason());
        }
    }
}

/// What an op does to the promise of a clean close.
enum Kind {
    /// Nothing.
    Neutral,
    /// A fault the sessions recover from, given time.
    Fault,
    /// A close was asked for.
    Close,
    /// A restart or an abort: sessions end `Lost`.
    Destructive,
}

/// Applies one op.
fn step(net: &mut Net, op: &Op, clients: usize, partitioned: &mut Duration) -> Kind {
    let c = |k: &u8| usize::from(*k) % clients;
    match op {
        Op::ClientSend { client, n, size } => {
            let i = c(client);
            let app = &mut net.clients[i].app;
            for _ in 0..(*n % 32) {
                let k = app.sent.len() + app.outbox.len();
                if k < MAX_MESSAGES {
                    app.outbox.push_back(harness::payload(
                        &format!("c{i}-{k}"),
                        usize::from(*size) % 1025,
                    ));
                }
            }
        }
        Op::ServerSend { client, n, size } => {
            let i = c(client);
            if let Some(app) = net.server_app_mut(i) {
                for _ in 0..(*n % 32) {
                    let k = app.sent.len() + app.outbox.len();
                    if k < MAX_MESSAGES {
                        app.outbox.push_back(harness::payload(
                            &format!("s{i}-{k}"),
                            usize::from(*size) % 1025,
                        ));
                    }
                }
            }
        }
        // Up to 3 s: past the idle timeout and several reconnect backoffs; longer idle spans only
        // repeat heartbeats (partitions reach the session timeout).
        Op::Run(ms) => net.run_for(Duration::from_millis(u64::from(*ms % 3_000))),
        Op::Reset(k) => {
            net.reset(c(k));
            return Kind::Fault;
        }
        Op::Blackhole(k) => {
            net.blackhole(c(k));
            return Kind::Fault;
        }
        Op::BlackholeToServer(k) => {
            net.blackhole_to_server(c(k));
            return Kind::Fault;
        }
        Op::Corrupt(k, at, mask) => {
            net.corrupt_at(c(k), *at, *mask);
            return Kind::Fault;
        }
        Op::HalfOpen(k) => {
            net.half_open(c(k));
            return Kind::Fault;
        }
        Op::LoseSuffix(k, keep) => {
            net.lose_suffix_keeping(c(k), usize::from(*keep));
            return Kind::Fault;
        }
        Op::Partition(tens) => {
            let d = Duration::from_millis(10 * u64::from(*tens % 2_000));
            *partitioned += d;
            net.partition(d);
            return Kind::Fault;
        }
        Op::RestartServer => {
            net.restart_server();
            return Kind::Destructive;
        }
        Op::StallServer(on) => {
            net.server_stalled = *on;
            return if *on { Kind::Fault } else { Kind::Neutral };
        }
        Op::StallClient(k, on) => {
            net.clients[c(k)].app.stalled = *on;
            return if *on { Kind::Fault } else { Kind::Neutral };
        }
        Op::SplitReads(on) => net.split_reads = *on,
        Op::Latency(ms) => net.latency = Duration::from_millis(1 + u64::from(*ms % 100)),
        Op::SpuriousTimeouts(on) => net.spurious_timeouts = *on,
        Op::ClientClose(k) => {
            let now = net.now;
            let cl = &mut net.clients[c(k)];
            if cl.session.close(now).is_ok() {
                cl.app.close_requested = true;
            }
            return Kind::Close;
        }
        Op::ServerClose(k) => {
            let i = c(k);
            let now = net.now;
            if let Some(id) = net.clients[i].session.id() {
                if let Some(s) = net.server.session_mut(id) {
                    let _ = s.close(now);
                }
            }
            return Kind::Close;
        }
        Op::ClientAbort(k) => {
            let now = net.now;
            net.clients[c(k)].session.abort(now);
            return Kind::Destructive;
        }
        Op::ServerAbort(k) => {
            let i = c(k);
            let now = net.now;
            if let Some(id) = net.clients[i].session.id() {
                if let Some(s) = net.server.session_mut(id) {
                    s.abort(now);
                    return Kind::Destructive;
                }
            }
        }
    }
    Kind::Neutral
}
