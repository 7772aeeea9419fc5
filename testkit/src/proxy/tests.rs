//! The proxy's faults, seen from plain blocking std sockets on both sides.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::{Proxy, Side};

/// Reads and writes that hang fail the test after this long instead.
const PATIENCE: Duration = Duration::from_secs(5);

/// An upstream listener and a proxy in front of it.
fn setup() -> (TcpListener, Proxy) {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = Proxy::start(upstream.local_addr().unwrap()).unwrap();
    (upstream, proxy)
}

fn patient(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// A client connected through `proxy` and the upstream's end of that connection, with one
/// byte sent each way so that the proxy is known to forward it.
fn pair(upstream: &TcpListener, proxy: &Proxy) -> (TcpStream, TcpStream) {
    let mut client = patient(TcpStream::connect(proxy.addr()).unwrap());
    let (server, _) = upstream.accept().unwrap();
    let mut server = patient(server);
    client.write_all(b"c").unwrap();
    server.write_all(b"s").unwrap();
    assert_eq!(read_n(&mut server, 1), b"c");
    assert_eq!(read_n(&mut client, 1), b"s");
    (client, server)
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Reads until the stream ends; returns what arrived and how it ended (`None`: EOF).
fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

/// Asserts that nothing arrives on `s` within `wait` (and that it is not closed either).
fn assert_silent(s: &mut TcpStream, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0; 64];
    match s.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    s.set_read_timeout(Some(PATIENCE)).unwrap();
}

/// Waits until `cond` holds (it is about the proxy's threads, which act asynchronously).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn forwards_both_ways_and_counts() {
    let (upstream, proxy) = setup();
    let (mut client, mut server) = pair(&upstream, &proxy);
    let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let writer = std::thread::spawn({
        let (mut c, big) = (client.try_clone().unwrap(), big.clone());
        move || c.write_all(&big).unwrap()
    });
    assert_eq!(read_n(&mut server, big.len()), big);
    writer.join().unwrap();
    server.write_all(b"back").unwrap();
    assert_eq!(read_n(&mut client, 4), b"back");
    let forwarded = 2 + big.len() as u64 + 4;
    eventually("the counts are up to date", || proxy.stats().bytes_forwarded == forwarded);
    let stats = proxy.stats();
    assert_eq!((stats.connections, stats.open), (1, 1));
    assert_eq!(stats.bytes_dropped, 0);
    // A FIN is passed on; the other direction still flows until it ends too.
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut server), (vec![], None));
    server.write_all(b"after").unwrap();
    drop(server);
    assert_eq!(read_to_end(&mut client), (b"after".to_vec(), None));
    eventually("the connection is forgotten", || proxy.stats().open == 0);
}

#[test]
fn reset_sends_an_rst_to_both_sides() {
    let (upstream, proxy) = setup();
    let (mut client, mut server) = pair(&upstream, &proxy);
    assert_eq!(proxy.reset_all(), 1);
    assert_eq!(read_to_end(&mut client), (vec![], Some(ErrorKind::ConnectionReset)));
    assert_eq!(read_to_end(&mut server), (vec![], Some(ErrorKind::ConnectionReset)));
    assert_eq!(proxy.reset_all(), 0, "a reset connection is not counted again");
    let stats = proxy.stats();
    assert_eq!((stats.resets, stats.open), (1, 0));
}

#[test]
fn blackhole_forwards_nothing_while_writes_succeed() {
    let (upstream, proxy) = setup();
    let (mut client, mut server) = pair(&upstream, &proxy);
    assert_eq!(proxy.blackhole_all(), 1);
    client.write_all(&[1; 1000]).unwrap();
    server.write_all(&[2; 500]).unwrap();
    assert_silent(&mut server, Duration::from_millis(300));
    assert_silent(&mut client, Duration::from_millis(10));
    // Both sockets stay open, and the proxy keeps reading (so writes keep succeeding).
    client.write_all(&[3; 200_000]).unwrap();
    eventually("everything written was read and dropped", || {
        proxy.stats().bytes_dropped == 1000 + 500 + 200_000
    });
    let stats = proxy.stats();
    assert_eq!((stats.blackholes, stats.open, stats.bytes_forwarded), (1, 1, 2));
    // A blackholed connection can still be reset.
    assert_eq!(proxy.reset_all(), 1);
    assert_eq!(read_to_end(&mut client), (vec![], Some(ErrorKind::ConnectionReset)));
}

#[test]
fn cut_forwards_exactly_n_bytes_each_way_then_resets() {
    let (upstream, proxy) = setup();
    let (mut client, mut server) = pair(&upstream, &proxy);
    assert_eq!(proxy.cut_all_after(100), 1);
    // Under the limit, one way: forwarded as usual.
    server.write_all(&[9; 60]).unwrap();
    assert_eq!(read_n(&mut client, 60), [9; 60]);
    // Over it, the other way: exactly 100 bytes arrive, then both sides are reset.
    client.write_all(&[7; 1000]).unwrap();
    let (got, end) = read_to_end(&mut server);
    assert_eq!(got, [7; 100]);
    assert_eq!(end, Some(ErrorKind::ConnectionReset));
    assert_eq!(read_to_end(&mut client), (vec![], Some(ErrorKind::ConnectionReset)));
    let stats = proxy.stats();
    assert_eq!((stats.cuts, stats.resets, stats.open), (1, 1, 0));
    assert_eq!(stats.bytes_forwarded, 2 + 60 + 100);
    assert_eq!(stats.bytes_dropped, 900);
}

#[test]
fn cut_after_zero_resets_at_the_next_byte() {
    let (upstream, proxy) = setup();
    let (mut client, mut server) = pair(&upstream, &proxy);
    assert_eq!(proxy.cut_all_after(0), 1);
    client.write_all(b"x").unwrap();
    assert_eq!(read_to_end(&mut server), (vec![], Some(ErrorKind::ConnectionReset)));
    assert_eq!(read_to_end(&mut client), (vec![], Some(ErrorKind::ConnectionReset)));
}

#[test]
fn half_close_ends_one_side_while_the_other_direction_flows() {
    for side in [Side::Client, Side::Server] {
        let (upstream, proxy) = setup();
        let (client, server) = pair(&upstream, &proxy);
        let (mut closed, mut open) = match side {
            Side::Client => (client, server),
            Side::Server => (server, client),
        };
        assert_eq!(proxy.half_close_all(side), 1);
        // `side` got a FIN...
        assert_eq!(read_to_end(&mut closed), (vec![], None), "{side:?}");
        // ...what it sends is still forwarded...
        closed.write_all(b"still flowing").unwrap();
        assert_eq!(read_n(&mut open, 13), b"still flowing");
        // ...and what the other side sends it is dropped.
        open.write_all(b"lost").unwrap();
        eventually("the bytes towards the closed side are dropped", || {
            proxy.stats().bytes_dropped == 4
        });
        let stats = proxy.stats();
        assert_eq!((stats.half_closes, stats.open), (1, 1));
    }
}

#[test]
fn refuse_for_refuses_connects_then_listens_again_on_the_same_port() {
    let (upstream, proxy) = setup();
    let (mut client, mut server) = pair(&upstream, &proxy);
    let start = Instant::now();
    proxy.refuse_for(Duration::from_millis(300));
    let refused = TcpStream::connect(proxy.addr()).map(|_| ());
    assert_eq!(refused.map_err(|e| e.kind()), Err(ErrorKind::ConnectionRefused));
    // Connections already proxied are not affected.
    client.write_all(b"on").unwrap();
    assert_eq!(read_n(&mut server, 2), b"on");
    let mut accepted = loop {
        match TcpStream::connect(proxy.addr()) {
            Ok(s) => break patient(s),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
                assert!(start.elapsed() < PATIENCE, "still refused");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert!(start.elapsed() >= Duration::from_millis(290), "reopened after {:?}", start.elapsed());
    let (mut second, _) = upstream.accept().unwrap();
    accepted.write_all(b"again").unwrap();
    assert_eq!(read_n(&mut second, 5), b"again");
    assert_eq!((proxy.stats().refusals, proxy.stats().connections), (1, 2));
}

#[test]
fn delay_holds_every_chunk() {
    let (upstream, proxy) = setup();
    let (mut client, mut server) = pair(&upstream, &proxy);
    proxy.set_delay(Duration::from_millis(100));
    let start = Instant::now();
    client.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut server, 4), b"ping");
    server.write_all(b"pong").unwrap();
    assert_eq!(read_n(&mut client, 4), b"pong");
    assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    proxy.set_delay(Duration::ZERO);
}

#[test]
fn new_connections_go_to_the_new_upstream() {
    let (upstream, proxy) = setup();
    let (mut old_client, mut old_server) = pair(&upstream, &proxy);
    let new_upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_upstream(new_upstream.local_addr().unwrap());
    let (mut client, mut server) = pair(&new_upstream, &proxy);
    client.write_all(b"new").unwrap();
    assert_eq!(read_n(&mut server, 3), b"new");
    old_client.write_all(b"old").unwrap();
    assert_eq!(read_n(&mut old_server, 3), b"old");
}

#[test]
fn a_client_whose_upstream_is_down_is_reset() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let mut client = patient(TcpStream::connect(proxy.addr()).unwrap());
    assert_eq!(read_to_end(&mut client), (vec![], Some(ErrorKind::ConnectionReset)));
}

/// The proxy's threads (named `proxy-PORT`), from /proc.
#[cfg(target_os = "linux")]
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[test]
fn dropping_the_proxy_stops_its_threads_and_closes_its_sockets() {
    let (upstream, proxy) = setup();
    let addr = proxy.addr();
    let mut conns: Vec<_> = (0..3).map(|_| pair(&upstream, &proxy)).collect();
    // One of them is blocked writing to a client that does not read.
    proxy.set_delay(Duration::from_millis(1));
    let flood = vec![0u8; 8 << 20];
    let writer = std::thread::spawn({
        let mut s = conns[0].1.try_clone().unwrap();
        move || {
            let _ = s.write_all(&flood);
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    #[cfg(target_os = "linux")]
    {
        let name = format!("proxy-{}", addr.port());
        // The acceptor, and two per connection.
        assert_eq!(threads_named(&name), 1 + 2 * conns.len());
        // Dropping must not wait for the blocked writer: a drop that hangs fails here (the bound
        // is a hang detector, far above what a loaded machine needs, not a timing target).
        let (done, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(proxy);
            let _ = done.send(());
        });
        dropped.recv_timeout(Duration::from_secs(30)).expect("dropping the proxy hangs");
        assert_eq!(threads_named(&name), 0, "threads still running");
    }
    #[cfg(not(target_os = "linux"))]
    drop(proxy);
    for (client, server) in &mut conns[1..] {
        assert_eq!(read_to_end(client), (vec![], None));
        assert_eq!(read_to_end(server), (vec![], None));
    }
    drop(conns);
    writer.join().unwrap();
    let refused = TcpStream::connect(addr).map(|_| ());
    assert_eq!(refused.map_err(|e| e.kind()), Err(ErrorKind::ConnectionRefused));
}
