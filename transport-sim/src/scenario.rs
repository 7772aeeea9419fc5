//! Scenarios: one per incident of DESIGN.md section 1 (each with a naive baseline over the same
//! faulty network), plus partitions, restarts and random mixes of every fault class.
//!
//! A scenario turns a seed into a [`Plan`] (config, clients, links, application behaviour, a
//! timed fault schedule and what the run promises), then [`run_tether`] or [`run_naive`] executes
//! it. Everything random is drawn from one [`SimRng`] seeded from the seed and the scenario name.

use tether_core::{AckMode, Config, Duration, Endpoint, FirstConnect, Instant, Session};

use crate::app::{AppPlant, Behaviour, CloseBy, ReadPolicy, Terminal};
use crate::check::{check_run, Expect, Violation};
use crate::link::{DirSpec, LinkSpec, StreamElement};
use crate::naive::{BaselineReport, NaiveClient, NaiveServer};
use crate::node::{client_payloads, ClientNode, ServerNode, TetherClient, TetherServer};
use crate::rng::SimRng;
use crate::sim::{ConnectSpec, Dirs, FaultClass, Side, Sim, SimStats};
use crate::trace::Fnv;

/// Every scenario, in table order. The first six are the incidents.
pub const SCENARIOS: &[&str] = &[
    "rst-after-fin",
    "unplugged-cable",
    "vip-failover",
    "half-close",
    "half-open-leak",
    "slow-receiver",
    "partition",
    "restart",
    "mix",
];

/// Whether `name` is an incident scenario (has a naive baseline).
pub fn is_incident(name: &str) -> bool {
    SCENARIOS[..6].contains(&name)
}

/// How big runs are: `Ci` keeps message counts small so thousands of seeds run in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Small message counts (test suite).
    Ci,
    /// Full message counts (command line).
    Full,
}

/// A timed fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Reset client `i`'s connection.
    Reset(usize),
    /// Silent death of client `i`'s connection.
    Blackhole(usize, Dirs),
    /// Loss of an unknown suffix, then reset.
    SuffixLoss(usize),
    /// Half-open: the given side forgets.
    HalfOpen(usize, Side),
    /// Partition of one client (or all) for a length.
    Partition(Option<usize>, Duration),
    /// A bit flip in flight on client `i`'s connection.
    Corrupt(usize),
    /// Server process restart.
    Restart,
    /// VIP failover.
    Failover,
}

/// Everything one run does, drawn from the seed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Session and endpoint configuration.
    pub config: Config,
    /// Messages each client sends; messages each server session sends; payload size range.
    pub traffic: (u64, u64, usize, usize),
    /// Per-client link behaviour.
    pub links: Vec<LinkSpec>,
    /// Connect behaviour.
    pub connect: ConnectSpec,
    /// Per-client application behaviour.
    pub clients: Vec<Behaviour>,
    /// Server application behaviour.
    pub server: Behaviour,
    /// Who closes.
    pub close_by: CloseBy,
    /// Timed faults.
    pub faults: Vec<(Instant, Fault)>,
    /// What the run promises.
    pub expect: Expect,
    /// Hard end of the run.
    pub limit: Instant,
    /// Naive baseline: resend on noticed errors; one-shot clients; server closes after sending;
    /// bounded application queue.
    pub naive: (bool, bool, bool, Option<usize>),
    /// Application-level faults to count (slow/stopped readers, late acks).
    pub app_faults: Vec<FaultClass>,
    /// The RNG state after drawing the plan: the run continues from it.
    pub rng: SimRng,
}

/// The start of every run's traffic.
pub const T0: Instant = Instant::from_millis(1_000);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(d: Duration) -> Instant {
    T0 + d
}

/// The simulator's base config: short timers so faults resolve in little virtual time, small
/// windows so flow control and backpressure are exercised. Randomised within valid ranges.
pub fn base_config(rng: &mut SimRng) -> Config {
    let max_message_size = 4096;
    let c = Config {
        max_message_size,
        max_frame_size: max_message_size + 64,
        max_unconfirmed_messages: [16, 64, 512][rng.index(3)],
        max_unconfirmed_bytes: [8192, 65_536, 1 << 20][rng.index(3)],
        receive_window_messages: [8, 32, 256][rng.index(3)],
        receive_window_bytes: [4096, 32_768, 1 << 20][rng.index(3)],
        ack_mode: if rng.chance(0.2) { AckMode::Manual } else { AckMode::OnDelivery },
        ack_delay: ms(rng.range(1, 10)),
        ack_every: [1, 4, 32][rng.index(3)],
        heartbeat_interval: ms(100),
        idle_timeout: ms(500),
        ack_timeout: ms(1000),
        handshake_timeout: ms(500),
        session_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(10),
        reconnect_backoff_initial: ms(20),
        reconnect_backoff_max: ms(400),
        // Faults hit the first connection as much as any other: the client rides them out.
        first_connect: FirstConnect::Retry,
        transmit_batch_bytes: [1024, 8192, 65_536][rng.index(3)],
        max_sessions: 1000,
        max_detached_sessions: 1000,
        max_handshakes: 256,
    };
    c.validate().expect("sim config is valid");
    c
}

/// A random link: delay, jitter, maybe a bandwidth limit, split and merged reads.
pub fn random_dir(rng: &mut SimRng, delay: (u64, u64), corrupt: f64) -> DirSpec {
    let mut elements = vec![StreamElement::Delay {
        base: ms(rng.range(delay.0, delay.1)),
        jitter: Duration::from_micros(rng.range(0, 3000)),
    }];
    if rng.chance(0.3) {
        elements.push(StreamElement::Bandwidth { bytes_per_sec: rng.range(500_000, 20_000_000) });
    }
    if corrupt > 0.0 {
        elements.push(StreamElement::Corrupt { probability: corrupt });
    }
    DirSpec {
        elements,
        split_reads: rng.chance(0.6),
        coalesce: Duration::from_micros(rng.range(0, 2000)),
    }
}

fn random_link(rng: &mut SimRng, delay: (u64, u64), corrupt: f64) -> LinkSpec {
    LinkSpec { up: random_dir(rng, delay, corrupt), down: random_dir(rng, delay, corrupt) }
}

fn scale(s: Scale, lo: u64, hi: u64, rng: &mut SimRng) -> u64 {
    let n = rng.range(lo, hi);
    match s {
        Scale::Ci => n.div_ceil(5),
        Scale::Full => n,
    }
}

/// Draws the plan of `scenario` for `seed`.
pub fn plan(scenario: &str, seed: u64, s: Scale) -> Option<Plan> {
    let mut h = Fnv::default();
    h.bytes(scenario.as_bytes());
    h.u64(seed);
    let mut rng = SimRng::new(h.finish());
    let config = base_config(&mut rng);
    let mut p = Plan {
        scenario: scenario.to_string(),
        seed,
        config,
        traffic: (0, 0, 1, 256),
        links: Vec::new(),
        connect: ConnectSpec::default(),
        clients: Vec::new(),
        server: Behaviour::default(),
        close_by: CloseBy::Client,
        faults: Vec::new(),
        expect: Expect { complete: true },
        limit: at(Duration::from_secs(120)),
        naive: (true, false, false, None),
        app_faults: Vec::new(),
        rng: SimRng::new(0),
    };
    let r = &mut rng;
    let n_clients;
    // When faults are over; closes come after it.
    let mut quiet_after = at(Duration::from_secs(1));
    match scenario {
        "rst-after-fin" => {
            // A loaded server accepts late; short connections are reset after the client wrote
            // (and, in the naive version, closed).
            n_clients = r.range(6, 24) as usize;
            p.traffic = (r.range(1, 8), r.range(0, 2), 16, 2048);
            p.connect.accept_delay = (ms(0), ms(r.range(50, 400)));
            p.close_by = CloseBy::Client;
            p.naive = (false, true, false, None);
            for i in 0..n_clients {
                if r.chance(0.5) {
                    let t = at(ms(r.range(0, 300)));
                    let f = if r.chance(0.7) { Fault::SuffixLoss(i) } else { Fault::Reset(i) };
                    p.faults.push((t, f));
                }
            }
        }
        "unplugged-cable" => {
            // The cable is unplugged: the connection goes silent (writes succeed, nothing
            // arrives), connects fail until it is plugged back in.
            n_clients = r.range(2, 6) as usize;
            p.traffic = (scale(s, 50, 300, r), scale(s, 20, 200, r), 16, 1024);
            for i in 0..n_clients {
                p.clients
                    .push(Behaviour { send_interval: ms(r.range(5, 20)), ..Behaviour::default() });
                let _ = i;
            }
            p.server.send_interval = ms(r.range(5, 20));
            let victims = r.range(1, n_clients as u64) as usize;
            for i in 0..victims {
                let t = at(ms(r.range(100, 1500)));
                let len = match r.index(3) {
                    0 => ms(r.range(50, 400)),
                    1 => ms(r.range(600, 5000)),
                    _ => ms(r.range(11_000, 14_000)),
                };
                if len > p.config.session_timeout {
                    p.expect.complete = false;
                }
                p.faults.push((t, Fault::Blackhole(i, Dirs::Both)));
                p.faults.push((t, Fault::Partition(Some(i), len)));
                quiet_after = quiet_after.max(t + len);
            }
        }
        "vip-failover" => {
            n_clients = r.range(3, 10) as usize;
            p.traffic = (scale(s, 30, 200, r), scale(s, 30, 200, r), 16, 1024);
            for _ in 0..n_clients {
                p.clients
                    .push(Behaviour { send_interval: ms(r.range(5, 20)), ..Behaviour::default() });
            }
            p.server.send_interval = ms(r.range(5, 20));
            let t = at(ms(r.range(200, 1500)));
            p.faults.push((t, Fault::Failover));
            p.expect.complete = false;
            quiet_after = t;
        }
        "half-close" => {
            // A request, a large response over a long slow link, the server closes; the
            // connection is reset before the tail arrives.
            n_clients = r.range(1, 3) as usize;
            p.traffic = (r.range(1, 3), scale(s, 50, 400, r), 512, 4096);
            p.close_by = CloseBy::Server;
            p.naive = (false, false, true, None);
            // The response must be able to flow: windows of a real bulk transfer.
            p.config.receive_window_messages = 256;
            p.config.receive_window_bytes = 1 << 20;
            p.config.max_unconfirmed_messages = 512;
            p.config.max_unconfirmed_bytes = 1 << 20;
            p.config.close_timeout = Duration::from_secs(60);
            for _ in 0..n_clients {
                let mut l = random_link(r, (30, 80), 0.0);
                l.down
                    .elements
                    .push(StreamElement::Bandwidth { bytes_per_sec: r.range(200_000, 1_000_000) });
                p.links.push(l);
            }
            for i in 0..n_clients {
                let t = at(ms(r.range(100, 800)));
                p.faults.push((t, Fault::SuffixLoss(i)));
            }
        }
        "half-open-leak" => {
            n_clients = r.range(4, 10) as usize;
            p.traffic = (scale(s, 50, 200, r), scale(s, 50, 200, r), 16, 512);
            for _ in 0..n_clients {
                p.clients
                    .push(Behaviour { send_interval: ms(r.range(5, 15)), ..Behaviour::default() });
            }
            p.server.send_interval = ms(r.range(5, 15));
            let k = r.range(n_clients as u64, 3 * n_clients as u64);
            for _ in 0..k {
                let i = r.index(n_clients);
                let t = at(ms(r.range(50, 2500)));
                let side = if r.chance(0.75) { Side::Client } else { Side::Server };
                p.faults.push((t, Fault::HalfOpen(i, side)));
                quiet_after = quiet_after.max(t);
            }
        }
        "slow-receiver" => {
            n_clients = r.range(2, 6) as usize;
            p.traffic = (scale(s, 100, 600, r), r.range(0, 5), 64, 2048);
            p.config.receive_window_messages = [4, 8, 32][r.index(3)];
            // The server reads as little as one message per 5 ms for all clients together (up to
            // 6 x 600 messages): the close must be given time to drain that.
            p.config.close_timeout = Duration::from_secs(60);
            let stop_until = at(ms(r.range(500, 4000)));
            p.server.read = if r.chance(0.5) {
                p.app_faults.push(FaultClass::SlowReader);
                ReadPolicy::Slow { per_tick: r.range(1, 4) as u32, interval: ms(r.range(1, 5)) }
            } else {
                p.app_faults.push(FaultClass::StoppedReader);
                quiet_after = quiet_after.max(stop_until);
                ReadPolicy::Stopped { from: at(ms(r.range(0, 200))), until: stop_until }
            };
            p.naive = (false, false, false, Some(p.config.receive_window_messages as usize));
            if r.chance(0.3) {
                let i = r.index(n_clients);
                p.faults.push((at(ms(r.range(100, 1000))), Fault::Reset(i)));
            }
        }
        "partition" => {
            n_clients = r.range(2, 8) as usize;
            p.traffic = (scale(s, 50, 200, r), scale(s, 50, 200, r), 16, 1024);
            for _ in 0..n_clients {
                p.clients
                    .push(Behaviour { send_interval: ms(r.range(2, 10)), ..Behaviour::default() });
            }
            p.server.send_interval = ms(r.range(2, 10));
            let t = at(ms(r.range(100, 800)));
            let len = match r.index(3) {
                0 => ms(r.range(50, 450)),
                1 => ms(r.range(600, 6000)),
                _ => ms(r.range(10_500, 14_000)),
            };
            if len >= p.config.session_timeout {
                p.expect.complete = false;
            }
            let who = if r.chance(0.5) { None } else { Some(r.index(n_clients)) };
            p.faults.push((t, Fault::Partition(who, len)));
            quiet_after = t + len;
        }
        "restart" => {
            n_clients = r.range(2, 8) as usize;
            p.traffic = (scale(s, 30, 150, r), scale(s, 30, 150, r), 16, 1024);
            for _ in 0..n_clients {
                p.clients
                    .push(Behaviour { send_interval: ms(r.range(2, 10)), ..Behaviour::default() });
            }
            let t = at(ms(r.range(50, 1000)));
            p.faults.push((t, Fault::Restart));
            p.expect.complete = false;
            quiet_after = t;
        }
        "mix" => {
            n_clients = r.range(1, 12) as usize;
            p.traffic = (scale(s, 10, 200, r), scale(s, 0, 200, r), 1, 4096);
            p.close_by = [CloseBy::Client, CloseBy::Server, CloseBy::Both][r.index(3)];
            if r.chance(0.3) {
                p.connect.refuse = 0.2;
            }
            if r.chance(0.3) {
                p.connect.timeout_p = 0.1;
            }
            if r.chance(0.3) {
                p.connect.slow_p = 0.3;
            }
            if r.chance(0.3) {
                p.connect.accept_delay = (ms(0), ms(200));
            }
            let corrupt = if r.chance(0.25) { 0.002 } else { 0.0 };
            for _ in 0..n_clients {
                p.links.push(random_link(r, (1, 30), corrupt));
                let mut b = Behaviour {
                    send_interval: if r.chance(0.5) { ms(r.range(1, 10)) } else { Duration::ZERO },
                    ..Behaviour::default()
                };
                if r.chance(0.15) {
                    b.read = ReadPolicy::Slow {
                        per_tick: r.range(1, 8) as u32,
                        interval: ms(r.range(1, 10)),
                    };
                    p.app_faults.push(FaultClass::SlowReader);
                }
                if p.config.ack_mode == AckMode::Manual && r.chance(0.5) {
                    b.ack_lag = ms(r.range(1, 100));
                    p.app_faults.push(FaultClass::LateAck);
                }
                p.clients.push(b);
            }
            if r.chance(0.2) {
                let until = at(ms(r.range(300, 3000)));
                p.server.read = ReadPolicy::Stopped { from: at(ms(r.range(0, 300))), until };
                p.app_faults.push(FaultClass::StoppedReader);
                quiet_after = quiet_after.max(until);
            }
            if p.config.ack_mode == AckMode::Manual && r.chance(0.5) {
                p.server.ack_lag = ms(r.range(1, 100));
                p.app_faults.push(FaultClass::LateAck);
            }
            if p.app_faults.contains(&FaultClass::LateAck) {
                // Messages taken but not yet acked count against the receive window: a late
                // acker needs room for several messages, or the transfer cannot finish within
                // close_timeout however healthy the network.
                let c = &mut p.config;
                c.receive_window_messages = c.receive_window_messages.max(8);
                c.receive_window_bytes =
                    c.receive_window_bytes.max(8 * u64::from(c.max_message_size));
            }
            p.server.send_interval =
                if r.chance(0.5) { ms(r.range(1, 10)) } else { Duration::ZERO };
            let k = r.range(1, 8);
            for _ in 0..k {
                let i = r.index(n_clients);
                let t = at(ms(r.range(0, 2500)));
                let f = match r.index(10) {
                    0 | 1 => Fault::Reset(i),
                    2 => Fault::Blackhole(i, [Dirs::Up, Dirs::Down, Dirs::Both][r.index(3)]),
                    3 | 4 => Fault::SuffixLoss(i),
                    5 => {
                        Fault::HalfOpen(i, if r.chance(0.5) { Side::Client } else { Side::Server })
                    }
                    6 => Fault::Partition(
                        if r.chance(0.5) { None } else { Some(i) },
                        ms(r.range(50, 3000)),
                    ),
                    7 | 8 => Fault::Corrupt(i),
                    _ => {
                        if r.chance(0.3) {
                            p.expect.complete = false;
                            if r.chance(0.5) {
                                Fault::Restart
                            } else {
                                Fault::Failover
                            }
                        } else {
                            Fault::Reset(i)
                        }
                    }
                };
                let end = match &f {
                    Fault::Partition(_, d) => t + *d,
                    _ => t,
                };
                quiet_after = quiet_after.max(end);
                p.faults.push((t, f));
            }
        }
        _ => return None,
    }
    p.faults.sort_by_key(|f| f.0);
    while p.links.len() < n_clients {
        p.links.push(random_link(r, (1, 20), 0.0));
    }
    while p.clients.len() < n_clients {
        p.clients.push(Behaviour::default());
    }
    p.connect.faults_until = quiet_after;
    // Close once the faults are over and the sessions had time to recover.
    let close_at = quiet_after + Duration::from_secs(2);
    let deadline = close_at + Duration::from_secs(60);
    for b in p.clients.iter_mut() {
        b.close_at = close_at;
        b.close_deadline = deadline;
    }
    p.server.close_at = close_at;
    p.server.close_deadline = deadline;
    p.limit =
        deadline + p.config.close_timeout + p.config.session_timeout + Duration::from_secs(20);
    p.rng = rng;
    Some(p)
}

/// The result of one tether run.
#[derive(Debug)]
pub struct TetherRun {
    /// The world at the end (inspect nodes, trace).
    pub sim: Sim<TetherClient, TetherServer>,
    /// Broken invariants (empty: the run passed).
    pub violations: Vec<Violation>,
    /// Summary numbers.
    pub outcome: Outcome,
}

/// Numbers of one run, summed in sweeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Messages delivered to applications.
    pub delivered: u64,
    /// Messages accepted by `send`.
    pub sent: u64,
    /// Messages handed back by `Lost` (noticed: the application can retry them).
    pub returned: u64,
    /// Messages neither confirmed nor returned (must be 0).
    pub unnoticed: u64,
    /// Connection attempts after the first, per client.
    pub reconnects: u64,
    /// `Resumed` events (client side).
    pub resumes: u64,
    /// Sessions that ended `Closed` / `Lost` (client side).
    pub closed: u64,
    /// See `closed`.
    pub lost: u64,
    /// Sockets left open at the end.
    pub leaked_sockets: u64,
    /// Engine counters.
    pub stats: SimStats,
    /// Hash of the run's trace.
    pub trace_hash: u64,
    /// Virtual time at the end.
    pub end: Instant,
}

fn apply<C: ClientNode, S: ServerNode>(
    sim: &mut Sim<C, S>,
    f: &Fault,
    fresh: &mut dyn FnMut(&mut SimRng, u32) -> S,
) {
    match f {
        Fault::Reset(i) => {
            sim.reset(*i);
        }
        Fault::Blackhole(i, d) => {
            sim.blackhole(*i, *d);
        }
        Fault::SuffixLoss(i) => {
            sim.lose_suffix_then_reset(*i);
        }
        Fault::HalfOpen(i, side) => {
            sim.half_open(*i, *side);
        }
        Fault::Partition(who, d) => sim.partition(*who, *d),
        Fault::Corrupt(i) => {
            sim.corrupt_in_flight(*i);
        }
        Fault::Restart => {
            let g = sim.servers.len() as u32;
            let s = fresh(&mut sim.rng, g);
            sim.restart_server(s);
        }
        Fault::Failover => {
            let g = sim.servers.len() as u32;
            let s = fresh(&mut sim.rng, g);
            sim.failover(s);
        }
    }
}

/// Drives a built world through the plan's fault schedule to its end, then lets closes drain.
fn drive<C: ClientNode, S: ServerNode>(
    sim: &mut Sim<C, S>,
    plan: &Plan,
    fresh: &mut dyn FnMut(&mut SimRng, u32) -> S,
) {
    for c in &plan.app_faults {
        sim.stats.fault(*c);
    }
    for (t, f) in &plan.faults {
        sim.run_until(*t, |_| false);
        if sim.stalled {
            return;
        }
        apply(sim, f, fresh);
        sim.touch_all();
    }
    sim.run_until(plan.limit, |s| s.all_finished());
    // Let FINs and resets propagate, and detection timers run, before looking for leaks.
    let drain = sim.now + plan.config.idle_timeout * 4 + Duration::from_secs(1);
    sim.run_until(drain.min(plan.limit.max(sim.now)), |s| {
        s.all_finished() && s.open_sides().is_empty()
    });
}

fn server_behaviour(plan: &Plan) -> (bool, bool) {
    let client_closes = matches!(plan.close_by, CloseBy::Client | CloseBy::Both);
    let server_closes = matches!(plan.close_by, CloseBy::Server | CloseBy::Both);
    (client_closes, server_closes)
}

/// Runs the plan over tether and checks it.
pub fn run_tether(plan: &Plan, trace: bool) -> TetherRun {
    run_tether_with(plan, trace, |_| {})
}

/// Like [`run_tether`], letting `tweak` change the built world first (planted bugs in tests).
pub fn run_tether_with(
    plan: &Plan,
    trace: bool,
    tweak: impl FnOnce(&mut Sim<TetherClient, TetherServer>),
) -> TetherRun {
    let mut rng = plan.rng.clone();
    let (client_closes, server_closes) = server_behaviour(plan);
    let (cm, sm, lo, hi) = plan.traffic;
    let clients: Vec<TetherClient> = plan
        .clients
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let session = Session::client(plan.config.clone(), rng.next_u64(), T0).expect("valid");
            let msgs = client_payloads(i, cm, lo, hi);
            TetherClient::new(i, session, msgs, sm, b.clone(), client_closes, T0)
        })
        .collect();
    let config = plan.config.clone();
    let server_b = plan.server.clone();
    let mut fresh = move |rng: &mut SimRng, g: u32| {
        let ep = Endpoint::new(config.clone(), rng.key(), T0).expect("valid");
        TetherServer::new(g, ep, server_b.clone(), server_closes, (sm, lo, hi), cm)
    };
    let server = fresh(&mut rng, 0);
    let mut sim = Sim::new(rng, T0, clients, plan.links.clone(), server, plan.connect.clone());
    sim.trace.enabled = trace;
    sim.decode_frames = true;
    tweak(&mut sim);
    drive(&mut sim, plan, &mut fresh);
    let violations = check_run(&sim, plan.expect);
    let outcome = tether_outcome(&sim);
    TetherRun { sim, violations, outcome }
}

fn tether_outcome(sim: &Sim<TetherClient, TetherServer>) -> Outcome {
    let mut o = Outcome::default();
    let mut count = |app: &crate::app::App| {
        o.sent += app.sent.len() as u64;
        o.delivered += app.delivered.len() as u64;
        let confirmed = app.confirmed.map_or(0, |c| c + 1);
        match &app.terminal {
            Some(Terminal::Lost(_, u)) => {
                o.returned += u.len() as u64;
                o.unnoticed += (app.sent.len() as u64).saturating_sub(confirmed + u.len() as u64);
            }
            Some(Terminal::Closed) => {
                o.unnoticed += (app.sent.len() as u64).saturating_sub(confirmed);
            }
            None => {}
        }
    };
    for c in &sim.clients {
        count(&c.app);
    }
    for s in &sim.servers {
        for a in s.apps.values() {
            count(a);
        }
    }
    for c in &sim.clients {
        o.resumes += u64::from(c.app.resumed);
        match &c.app.terminal {
            Some(Terminal::Closed) => o.closed += 1,
            Some(Terminal::Lost(..)) => o.lost += 1,
            None => {}
        }
    }
    o.reconnects = sim.stats.connects.saturating_sub(sim.clients.len() as u64);
    o.leaked_sockets = sim.open_sides().len() as u64;
    o.stats = sim.stats.clone();
    o.trace_hash = sim.trace.hash.finish();
    o.end = sim.now;
    o
}

/// Runs the plan's network and faults with the naive write-and-forget baseline.
pub fn run_naive(plan: &Plan) -> BaselineReport {
    let mut rng = plan.rng.clone();
    let (cm, sm, _, _) = plan.traffic;
    let (resend, one_shot, close_after_send, queue_limit) = plan.naive;
    let clients: Vec<NaiveClient> = plan
        .clients
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let _ = rng.next_u64();
            let ids = (0..cm).map(|k| (i as u64) << 32 | k).collect();
            let mut c = NaiveClient::new(i, ids, T0, b.send_interval);
            c.resend_on_error = resend;
            c.one_shot = one_shot;
            c
        })
        .collect();
    let server_read = plan.server.read.clone();
    let mut fresh = move |_: &mut SimRng, g: u32| {
        let mut s = NaiveServer::default();
        s.generation = g;
        s.per_client = sm;
        s.resend_on_error = resend;
        s.close_after_send = close_after_send;
        s.queue_limit = queue_limit;
        s.read = server_read.clone();
        s
    };
    let server = fresh(&mut rng, 0);
    let mut sim = Sim::new(rng, T0, clients, plan.links.clone(), server, plan.connect.clone());
    drive(&mut sim, plan, &mut fresh);
    let mut r = BaselineReport::default();
    for (i, c) in sim.clients.iter().enumerate() {
        let received: Vec<u64> = sim
            .servers
            .iter()
            .flat_map(|s| s.received.get(&i).cloned().unwrap_or_default())
            .collect();
        r.tally(&c.written, &received);
        let written: Vec<u64> = sim
            .servers
            .iter()
            .flat_map(|s| s.written.get(&i).cloned().unwrap_or_default())
            .collect();
        r.tally(&written, &c.received);
    }
    r.leaked_sockets = sim.half_open_sides().len() as u64;
    r
}

/// One line that replays a run.
pub fn replay_command(scenario: &str, seed: u64, scale: Scale) -> String {
    let sc = match scale {
        Scale::Ci => " --scale ci",
        Scale::Full => "",
    };
    format!(
        "cargo run --release -p tether-sim -- replay --seed {seed} --scenario {scenario}{sc} --trace"
    )
}

/// Plants an application bug in every client of a plan (tests of the checker).
pub fn plant_clients(plan: &mut Plan, plant: AppPlant) {
    for b in &mut plan.clients {
        b.plant = plant;
    }
}
