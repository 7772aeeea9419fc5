//! No file descriptor leaks: hundreds of faulted, refused and junk connections, then everything is
//! closed, and the process has exactly the descriptors it had before. Linux only (/proc/self/fd).
//!
//! The count is the whole process's: run these bodies in a test binary of their own
//! (`runtime_tests!(harness, block_on, [fds])`), where no other test opens sockets meanwhile.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use tether_async::End;

use crate::proxy::Proxy;
use crate::support::config;
use crate::Harness;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// 200 faulted reconnects through the proxy and 100 junk connections straight at the server;
/// once everything is closed, no descriptor is left over.
pub async fn hundreds_of_faulted_connections_leak_no_descriptor<H: Harness>(h: H) {
    h.clone()
        .within(90, async move {
            // Let the runtime open whatever it opens lazily, then take the baseline.
            h.sleep(Duration::from_millis(50)).await;
            let before = open_fds();
            {
                let server = h.bind(config().into()).await.unwrap();
                let addr = server.local_addr().unwrap();
                let proxy = Proxy::start(addr).unwrap();
                let client = h.connect(proxy.addr(), config().into()).await.unwrap();
                let session = server.accept().await.unwrap();
                let echo = h.spawn(async move {
                    while let Some(m) = session.recv().await {
                        let _ = session.send(m.payload).await;
                    }
                });
                // 200 resets while messages flow: 200 reconnects, each a faulted connection.
                let mut faults = 0;
                for i in 0..200u32 {
                    client.send(Bytes::from(i.to_string())).await.unwrap();
                    let m = client.recv().await.unwrap();
                    assert_eq!(m.payload, Bytes::from(i.to_string()));
                    if i % 3 == 0 {
                        faults += proxy.cut_all_after(u64::from(i % 50));
                    } else {
                        faults += proxy.reset_all();
                    }
                }
                assert!(faults >= 150, "only {faults} faults landed");
                // Junk straight at the server: garbage, silence, and immediate hang-ups (plain
                // blocking sockets: a loopback connect completes at once).
                let mut junk = Vec::new();
                for i in 0..100 {
                    let mut s = TcpStream::connect(addr).unwrap();
                    match i % 3 {
                        0 => drop(s.write_all(b"GET / HTTP/1.1\r\n\r\n")),
                        1 => {}
                        _ => {
                            drop(s);
                            continue;
                        }
                    }
                    junk.push(s);
                }
                assert_eq!(client.close().await, End::Closed);
                echo.await;
                drop(junk);
                drop(client);
                drop(server);
                drop(proxy);
            }
            // Drivers finish and lingering closes end within a couple of seconds.
            let mut now = open_fds();
            for _ in 0..100 {
                if now <= before {
                    break;
                }
                h.sleep(Duration::from_millis(50)).await;
                now = open_fds();
            }
            assert_eq!(now, before, "descriptors leaked: {before} before, {now} after");
        })
        .await;
}
