//! `endpoint`: one [`Endpoint`](tether_core::Endpoint) holding honest sessions (clients over
//! perfect links, exchanging messages) while the fuzzer opens many raw connections with arbitrary
//! first frames (new and resume hellos naming real session ids, with the secrets it learned from
//! its own sessions or made up) and hostile follow-ups, closes them, and lets time pass.
//!
//! Properties:
//! - nothing panics; the handshake, session and detached-session limits hold at every step;
//! - after every step the endpoint holds no connection beyond one per session plus its handshakes
//!   (no leaked connections), and never writes to a connection it closed or that ended;
//! - the honest sessions are unaffected: no `Disconnected`, no `Lost`, every message delivered in
//!   order and intact, and at the end they close cleanly on both sides.

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use tether_core::wire::{Frame, Hello, HelloKind, Positions, PROTOCOL_VERSION};
use tether_core::{ConnId, Duration};

use tether_sim::harness::{self, check_direction, App, Net};

use crate::gen::{self, Anchors, ConfigChoice, Ident, Wire};

/// The fuzz input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    config: ConfigChoice,
    seed: u64,
    honest: u8,
    ops: Vec<Op>,
}

/// One step; connection numbers index the open hostile connections (modulo their count).
#[derive(Arbitrary, Debug)]
enum Op {
    /// A new hostile connection.
    Open,
    /// Bytes on a hostile connection.
    Write {
        conn: u8,
        wires: Vec<Wire>,
        chunks: Vec<u8>,
    },
    /// A well-formed `Hello` on a hostile connection.
    Hello {
        conn: u8,
        resume: bool,
        id: Ident<u64>,
        secret: Ident<[u8; 16]>,
        received: u8,
    },
    /// The hostile side closes a connection.
    Close {
        conn: u8,
    },
    /// Let this many milliseconds pass (modulo 3,000).
    Run(u16),
    /// Honest traffic.
    HonestSend {
        client: u8,
        n: u8,
        size: u16,
    },
    ServerSend {
        client: u8,
        n: u8,
        size: u16,
    },
    /// `handle_timeout` with nothing due.
    Spurious,
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

const MAX_MESSAGES: usize = 100;

/// Runs one input, panicking on any property violation.
pub fn run(input: &Input) {
    let honest = 1 + usize::from(input.honest % 3);
    let mut config = input.config.config();
    config.max_sessions = config.max_sessions.max(honest as u32);
    // Honest clients wait out hostile connections that hold every handshake slot.
    config.first_connect = tether_core::FirstConnect::Retry;
    let mut net = crate::net(config.clone(), honest, input.seed);
    net.latency = Duration::from_millis(2);
    let connected =
        net.run_until(Duration::from_secs(2), |n| n.clients.iter().all(|c| c.app.connected));
    assert!(connected, "honest clients could not connect to an idle endpoint");

    let start = net.now;
    for op in input.ops.iter().take(128) {
        if net.now - start > Duration::from_secs(60) {
            break;
        }
        step(&mut net, op, honest);
        net.pump();
        net.check_no_leaked_connections();
        check_undisturbed(&net);
    }

    // Let honest traffic finish, then close every honest session from the client side.
    net.run_until(Duration::from_secs(2), honest_traffic_done);
    check_undisturbed(&net);
    let now = net.now;
    for c in &mut net.clients {
        c.session.close(now).expect("honest session still open");
    }
    let ended = net.run_until(Duration::from_secs(30), |n| {
        n.clients.iter().all(|c| {
            c.app.ended()
                && c.session
                    .id()
                    .is_some_and(|id| n.server_apps.get(&(0, id)).is_some_and(|a| a.ended()))
        })
    });
    assert!(ended, "honest sessions did not finish closing");
    for (i, c) in net.clients.iter().enumerate() {
        let server = honest_server(&net, i);
        assert!(c.app.closed(), "honest client {i} ended {:?}", c.app.lost_reason());
        assert!(server.closed(), "honest server session {i} ended {:?}", server.lost_reason());
        check_direction(&format!("honest client {i} -> server"), &c.app, Some(server));
        check_direction(&format!("server -> honest client {i}"), server, Some(&c.app));
    }
    net.check_no_leaked_connections();
}

/// After every step: no honest session was disturbed, and neither side confirmed more than its
/// peer delivered. Counts only; the payloads are compared once, at the end (`check_direction`):
/// what was delivered and sent only grows, so a wrong payload is still there to find then.
fn check_undisturbed(net: &Net) {
    for (i, c) in net.clients.iter().enumerate() {
        assert!(c.app.disconnects == 0 && !c.app.ended(), "honest client {i} was disturbed");
        let server = honest_server(net, i);
        assert!(server.disconnects == 0 && !server.ended(), "honest session {i} was disturbed");
        let (up, down) = (c.app.confirmed_count(), server.confirmed_count());
        assert!(up <= server.delivered.len(), "honest client {i}: confirmed {up}, undelivered");
        assert!(down <= c.app.delivered.len(), "server -> honest client {i}: confirmed {down}");
    }
}

/// Every honest message sent and confirmed, both ways.
fn honest_traffic_done(net: &Net) -> bool {
    let done = |a: &App| a.outbox.is_empty() && a.confirmed_count() == a.sent.len();
    (0..net.clients.len()).all(|i| done(&net.clients[i].app) && done(honest_server(net, i)))
}

/// The server side of honest client `i`.
fn honest_server(net: &Net, i: usize) -> &App {
    let id = net.clients[i].session.id().expect("connected");
    net.server_apps.get(&(0, id)).expect("accepted")
}

fn pick(net: &Net, k: u8) -> Option<ConnId> {
    let open = net.hostile_open();
    (!open.is_empty()).then(|| open[usize::from(k) % open.len()])
}

/// What the fuzzer knows: honest session ids (not their secrets), and everything the server told
/// its hostile connections.
fn anchors(net: &Net, conn: ConnId) -> Anchors {
    let mut a = Anchors { positions: vec![0, 1, u64::MAX], ..Anchors::default() };
    a.session_ids.extend(net.clients.iter().filter_map(|c| c.session.id()).map(|id| id.0));
    for rx in net.hostile.values() {
        for f in &rx.frames {
            if let Frame::Welcome(w) = f {
                a.session_ids.push(w.session_id);
                a.secrets.push(w.secret);
            }
        }
    }
    if let Some(rx) = net.hostile.get(&conn) {
        for f in &rx.frames {
            match f {
                Frame::Welcome(w) => a.positions.extend([w.positions.received, w.positions.acked]),
                Frame::Ack(p) => a.positions.extend([p.received, p.acked, p.max_seq]),
                Frame::Data { seq, ack, .. } => a.positions.extend([*seq, *ack]),
                Frame::Ping { token } => a.positions.push(*token),
                _ => {}
            }
        }
    }
    a
}

fn step(net: &mut Net, op: &Op, honest: usize) {
    match op {
        Op::Open => {
            net.hostile_connect();
        }
        Op::Write { conn, wires, chunks } => {
            let Some(conn) = pick(net, *conn) else { return };
            let bytes = gen::encode_all(wires, &anchors(net, conn));
            for piece in gen::chunk(bytes, chunks).into_iter().take(64) {
                net.hostile_write(conn, piece);
            }
        }
        Op::Hello { conn, resume, id, secret, received } => {
            let Some(conn) = pick(net, *conn) else { return };
            let a = anchors(net, conn);
            let ids = Anchors { positions: vec![], ..a.clone() };
            let mut b = BytesMut::new();
            let r = u64::from(*received % 4);
            let frame = Frame::Hello(Hello {
                min_version: PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                kind: if *resume { HelloKind::Resume } else { HelloKind::New },
                session_id: if *resume { ident_u64(*id, &ids) } else { 0 },
                secret: if *resume { ident_secret(*secret, &ids) } else { [0; 16] },
                positions: Positions {
                    received: if *resume { r } else { 0 },
                    acked: if *resume { r } else { 0 },
                    max_seq: 1 << 20,
                    max_bytes: 1 << 40,
                },
                max_message_size: 1 << 16,
            });
            frame.encode(&mut b);
            net.hostile_write(conn, b.freeze());
        }
        Op::Close { conn } => {
            if let Some(conn) = pick(net, *conn) {
                net.hostile_close(conn);
            }
        }
        // Up to 3 s: past the handshake and idle timeouts; longer idle spans only repeat
        // heartbeats (see `pair`).
        Op::Run(ms) => net.run_for(Duration::from_millis(u64::from(*ms % 3_000))),
        Op::HonestSend { client, n, size } => {
            let i = usize::from(*client) % honest;
            let max = net.config.max_message_size as usize;
            let app = &mut net.clients[i].app;
            for _ in 0..(*n % 16) {
                let k = app.sent.len() + app.outbox.len();
                if k < MAX_MESSAGES {
                    app.outbox.push_back(harness::payload(
                        &format!("h{i}-{k}"),
                        usize::from(*size) % (max + 1),
                    ));
                }
            }
        }
        Op::ServerSend { client, n, size } => {
            let i = usize::from(*client) % honest;
            let max = net.config.max_message_size as usize;
            if let Some(app) = net.server_app_mut(i) {
                for _ in 0..(*n % 16) {
                    let k = app.sent.len() + app.outbox.len();
                    if k < MAX_MESSAGES {
                        app.outbox.push_back(harness::payload(
                            &format!("s{i}-{k}"),
                            usize::from(*size) % (max + 1),
                        ));
                    }
                }
            }
        }
        Op::Spurious => {
            let now = net.now;
            net.server.handle_timeout(now);
        }
    }
}

fn ident_u64(i: Ident<u64>, a: &Anchors) -> u64 {
    match i {
        Ident::Exact(v) => v,
        Ident::Known(k) if !a.session_ids.is_empty() => {
            a.session_ids[usize::from(k) % a.session_ids.len()]
        }
        Ident::Known(_) => 0,
    }
}

fn ident_secret(i: Ident<[u8; 16]>, a: &Anchors) -> [u8; 16] {
    match i {
        Ident::Exact(v) => v,
        Ident::Known(k) if !a.secrets.is_empty() => a.secrets[usize::from(k) % a.secrets.len()],
        Ident::Known(_) => [0; 16],
    }
}
