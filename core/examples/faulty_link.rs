//! A walkthrough of the sans-IO driving contract: a client `Session` and a server `Endpoint`
//! exchange 20,000 messages each way over an in-memory stream link that is reset, blackholed and
//! truncated on a schedule. Everything runs on a virtual clock, so the run is deterministic.
//!
//! Run: `cargo run --release -p tether-core --example faulty_link [SEED]`

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tether_core::{Config, ConnId, Duration, Endpoint, Event, Instant, Session, Transmit};

const MESSAGES: u64 = 20_000;
/// The applications send up to `BURST` messages each `TICK`: 20,000 messages take about 1 s.
const BURST: u32 = 20;
const TICK: Duration = Duration::from_millis(1);

/// One direction of the current connection: chunks with their arrival time.
type Pipe = VecDeque<(Instant, Bytes)>;

struct Link {
    conn: Option<ConnId>,
    to_server: Pipe,
    to_client: Pipe,
    blackholed: bool,
    /// One side closed the connection: the other learns of it when the bytes before it arrived.
    fin_at: Option<Instant>,
}

impl Link {
    fn new(conn: Option<ConnId>) -> Link {
        Link {
            conn,
            to_server: Pipe::new(),
            to_client: Pipe::new(),
            blackholed: false,
            fin_at: None,
        }
    }

    /// Carries what a side wrote; a `Close` ends the connection once the bytes have arrived.
    fn carry(&mut self, from_client: bool, t: Transmit, bytes: Bytes, at: Instant) {
        let (Transmit::Write(conn) | Transmit::Close(conn)) = t;
        if Some(conn) != self.conn || self.blackholed {
            return;
        }
        if !bytes.is_empty() {
            let pipe = if from_client { &mut self.to_server } else { &mut self.to_client };
            pipe.push_back((at, bytes));
        }
        if matches!(t, Transmit::Close(_)) {
            self.fin_at = Some(at);
        }
    }
}

#[derive(Default)]
struct Tally {
    sent: u64,
    delivered: u64,
    duplicates: u64,
    out_of_order: u64,
    corrupted: u64,
    confirmed: u64,
}

impl Tally {
    fn on_message(&mut self, seq: u64, payload: &Bytes) {
        if seq < self.delivered {
            self.duplicates += 1;
        } else if seq > self.delivered {
            self.out_of_order += 1;
        }
        if payload[..] != body(seq)[..] {
            self.corrupted += 1;
        }
        self.delivered = self.delivered.max(seq + 1);
    }
}

fn body(seq: u64) -> Bytes {
    Bytes::from(format!("message {seq:>8} {}", "·".repeat((seq % 50) as usize)))
}

struct Faults {
    resets: u32,
    blackholes: u32,
    suffix_losses: u32,
}

fn main() {
    let seed: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(7);
    let config = Config {
        idle_timeout: Duration::from_millis(800),
        heartbeat_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let wall = std::time::Instant::now();
    let mut now = Instant::ZERO;
    let mut rng = seed | 1;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut client = Session::client(config.clone(), seed, now).expect("valid config");
    let mut server = Endpoint::new(config, [seed as u8; 32], now).expect("valid config");
    let mut server_session = None;
    let mut link = Link::new(None);
    let (mut up, mut down) = (Tally::default(), Tally::default());
    let mut faults = Faults { resets: 0, blackholes: 0, suffix_losses: 0 };
    let mut next_conn = 0;
    let mut next_fault = now + Duration::from_millis(40);
    let latency = Duration::from_micros(200);
    let mut buf = BytesMut::new();
    let mut closing = false;
    let mut next_tick = now;
    let (mut client_end, mut server_end) = (None, None);

    while client_end.is_none() || server_end.is_none() {
        // Inputs: deliver what has arrived; report timeouts.
        while link.to_server.front().is_some_and(|(t, _)| *t <= now) {
            let (_, bytes) = link.to_server.pop_front().unwrap();
            server.handle_input(now, link.conn.unwrap(), bytes);
        }
        while link.to_client.front().is_some_and(|(t, _)| *t <= now) {
            let (_, bytes) = link.to_client.pop_front().unwrap();
            client.handle_input(now, link.conn.unwrap(), bytes);
        }
        if link.fin_at.is_some_and(|t| t <= now) {
            reset(&mut link, &mut client, &mut server, now);
        }
        client.handle_timeout(now);
        server.handle_timeout(now);

        // The application: every tick it sends a few messages while the session takes them;
        // it closes once everything is delivered.
        let mut budget = if now >= next_tick { BURST } else { 0 };
        if budget > 0 {
            next_tick = now + TICK;
        }
        let mut server_budget = budget;
        while up.sent < MESSAGES && budget > 0 && client.can_send(64) {
            budget -= 1;
            client.send(now, body(up.sent)).expect("can_send said yes");
            up.sent += 1;
        }
        if let Some(id) = server_session {
            if let Some(s) = server.session_mut(id) {
                while down.sent < MESSAGES && server_budget > 0 && s.can_send(64) {
                    server_budget -= 1;
                    s.send(now, body(down.sent)).expect("can_send said yes");
                    down.sent += 1;
                }
            }
        }
        if !closing && up.confirmed == MESSAGES && down.delivered == MESSAGES {
            closing = client.close(now).is_ok();
        }

        // Outputs: connect when asked, write what the sessions produce, read their events.
        if client.poll_connect(now) {
            next_conn += 1;
            let conn = ConnId(next_conn);
            link = Link::new(Some(conn));
            client.handle_connected(now, conn);
            server.handle_connected(now, conn);
        }
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            link.carry(true, t, buf.split().freeze(), now + latency);
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            link.carry(false, t, buf.split().freeze(), now + latency);
        }
        while let Some(e) = client.poll_event() {
            match e {
                Event::Messages(d) => d.for_each(|(seq, payload)| down.on_message(seq, &payload)),
                Event::Confirmed { up_to } => up.confirmed = up_to + 1,
                Event::Closed | Event::Lost { .. } => client_end = Some(e),
                _ => {}
            }
        }
        while let Some((id, e)) = server.poll_event() {
            match e {
                Event::Connected => server_session = Some(id),
                Event::Messages(d) => d.for_each(|(seq, payload)| up.on_message(seq, &payload)),
                Event::Confirmed { up_to } => down.confirmed = up_to + 1,
                Event::Closed | Event::Lost { .. } => server_end = Some(e),
                _ => {}
            }
        }

        // Faults on a schedule, until the close starts (postponed while no connection is up).
        if now >= next_fault && (link.conn.is_none() || link.blackholed) {
            next_fault = now + Duration::from_millis(10);
        }
        if now >= next_fault && !closing {
            match rand() % 3 {
                0 => {
                    faults.resets += 1;
                    reset(&mut link, &mut client, &mut server, now);
                }
                1 => {
                    faults.blackholes += 1;
                    link.blackholed = true;
                    link.to_server.clear();
                    link.to_client.clear();
                }
                _ => {
                    faults.suffix_losses += 1;
                    let keep = (rand() as usize) % (link.to_server.len() + 1);
                    link.to_server.truncate(keep);
                    reset(&mut link, &mut client, &mut server, now);
                }
            }
            next_fault = now + Duration::from_millis(30 + rand() % 120);
        }

        // Time: jump to the next thing that can happen.
        let next = [
            client.poll_timeout(),
            server.poll_timeout(),
            link.to_server.front().map(|x| x.0),
            link.to_client.front().map(|x| x.0),
            link.fin_at,
            Some(next_fault).filter(|_| !closing),
            Some(next_tick).filter(|_| up.sent < MESSAGES || down.sent < MESSAGES),
        ]
        .into_iter()
        .flatten()
        .min();
        now = match next {
            Some(t) => t.max(now),
            None => break,
        };
    }

    println!("tether-core over an in-memory link with scheduled faults (seed {seed})\n");
    println!("{:<28}{:>14}{:>14}", "", "client→server", "server→client");
    for (name, a, b) in [
        ("messages sent", up.sent, down.sent),
        ("delivered", up.delivered, down.delivered),
        ("confirmed to sender", up.confirmed, down.confirmed),
        ("duplicates", up.duplicates, down.duplicates),
        ("out of order", up.out_of_order, down.out_of_order),
        ("corrupted", up.corrupted, down.corrupted),
        ("lost", up.sent - up.delivered, down.sent - down.delivered),
    ] {
        println!("{name:<28}{a:>14}{b:>14}");
    }
    let stats = client.stats();
    println!();
    println!(
        "faults injected       {} resets, {} blackholes, {} suffix losses",
        faults.resets, faults.blackholes, faults.suffix_losses
    );
    println!(
        "connections           {} (resumed {} times, {} messages replayed by the client)",
        next_conn, stats.reconnects, stats.replayed_messages
    );
    println!(
        "ending                client: {}, server: {}",
        describe(&client_end),
        describe(&server_end)
    );
    println!(
        "virtual time          {:.2} s   (wall clock {:.2} s)",
        now.as_nanos() as f64 / 1e9,
        wall.elapsed().as_secs_f64()
    );
    let clean = up.delivered == MESSAGES
        && down.delivered == MESSAGES
        && up.duplicates
            + down.duplicates
            + up.out_of_order
            + down.out_of_order
            + up.corrupted
            + down.corrupted
            == 0
        && matches!((&client_end, &server_end), (Some(Event::Closed), Some(Event::Closed)));
    println!(
        "\n{}",
        if clean {
            "every message arrived exactly once, in order; both sides closed cleanly"
        } else {
            "CONTRACT VIOLATED"
        }
    );
    std::process::exit(if clean { 0 } else { 1 });
}

fn describe(e: &Option<Event>) -> String {
    match e {
        Some(Event::Closed) => "closed cleanly".into(),
        Some(Event::Lost { reason, unconfirmed }) => {
            format!("lost ({reason}, {} unconfirmed)", unconfirmed.len())
        }
        _ => "did not end".into(),
    }
}

/// Both ends learn the connection died; bytes in flight are gone.
fn reset(link: &mut Link, client: &mut Session, server: &mut Endpoint, now: Instant) {
    if let Some(conn) = link.conn.take() {
        client.handle_disconnected(now, conn);
        server.handle_disconnected(now, conn);
    }
    *link = Link::new(None);
}
