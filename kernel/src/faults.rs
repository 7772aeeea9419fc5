//! The faults, each made by the kernel: what a scenario sets up, what it does at the fault time,
//! and how it heals.

use std::time::Duration;

use crate::topo::{run, Topo, CLIENT_IP};

/// One fault.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// `ip link set eth0 down` on the client's veth, then up after `hold`.
    CableDown { hold: Duration },
    /// iptables DROP of everything from the client at the server (and, `both_ways`, from the
    /// server at the client) for `hold`: nothing is refused, everything vanishes.
    Blackhole { both_ways: bool, hold: Duration },
    /// iptables `REJECT --reject-with tcp-reset` at the server for `hold`: every segment from the
    /// client draws a reset (established connections and new SYNs alike).
    RejectReset { hold: Duration },
    /// `ss -K dst <client>` in the server namespace, twice, a second apart: the kernel destroys the
    /// server's sockets and sends a reset.
    SsKill,
    /// iptables `statistic --mode random` DROP of `percent`% of the packets arriving at each side,
    /// for `hold`.
    Loss { percent: u32, hold: Duration },
    /// Accept-queue overflow: listen backlog 1, an accept loop stalled for the first 1.5 s, a burst
    /// of short connections; sysctls set in the server namespace only.
    Backlog { syncookies: bool, abort_on_overflow: bool },
    /// The server processes are killed (SIGKILL) and started again after `down`.
    ServerRestart { down: Duration },
    /// The service address moves from the first server host to the second; with `garp`, the new
    /// owner announces it with a gratuitous ARP (`arping -U`).
    Failover { garp: bool },
}

/// A named fault run with both modes.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Short name (table row, `--only`).
    pub name: &'static str,
    /// The fault.
    pub fault: Fault,
    /// tether must notice the fault within `idle_timeout` on every side that holds a session.
    pub must_notice: bool,
}

const fn sc(name: &'static str, fault: Fault, must_notice: bool) -> Scenario {
    Scenario { name, fault, must_notice }
}

/// Every scenario, in table order.
pub fn all() -> Vec<Scenario> {
    use Fault::*;
    let s = Duration::from_millis;
    vec![
        sc("cable-pulled-1s", CableDown { hold: s(1000) }, false),
        sc("cable-pulled-4s", CableDown { hold: s(4000) }, true),
        sc("blackhole-both-4s", Blackhole { both_ways: true, hold: s(4000) }, true),
        sc("blackhole-c2s-4s", Blackhole { both_ways: false, hold: s(4000) }, true),
        sc("reject-tcp-reset", RejectReset { hold: s(500) }, true),
        sc("ss-K-server-socket", SsKill, true),
        sc("random-loss-10pct", Loss { percent: 10, hold: s(4000) }, false),
        sc("backlog-cookies", Backlog { syncookies: true, abort_on_overflow: true }, false),
        sc(
            "backlog-cookies-no-abort",
            Backlog { syncookies: true, abort_on_overflow: false },
            false,
        ),
        sc("backlog-no-cookies", Backlog { syncookies: false, abort_on_overflow: true }, false),
        sc("server-restart", ServerRestart { down: s(1000) }, true),
        sc("vip-failover-garp", Failover { garp: true }, true),
        sc("vip-failover-no-garp", Failover { garp: false }, true),
    ]
}

impl Fault {
    /// Whether the workload is the burst of short connections.
    pub fn is_burst(&self) -> bool {
        matches!(self, Fault::Backlog { .. })
    }

    /// Settings made before the servers start.
    pub fn prepare(&self, t: &Topo) -> Result<(), String> {
        if let Fault::Failover { garp: false } = *self {
            // Without a gratuitous ARP the client keeps the old server's MAC until its neighbour
            // entry expires: 15-45 s reachable (base 30 s, randomised), 5 s delay, 3 probes. The
            // client namespace's timers are shortened (4 s base, 1 s delay) to fit the CI budget.
            Topo::sysctl(&t.client, "net.ipv4.neigh.eth0.base_reachable_time_ms=4000")?;
            Topo::sysctl(&t.client, "net.ipv4.neigh.eth0.delay_first_probe_time=1")?;
        }
        if let Fault::Backlog { syncookies, abort_on_overflow } = *self {
            Topo::sysctl(&t.server, &format!("net.ipv4.tcp_syncookies={}", u8::from(syncookies)))?;
            let abort = u8::from(abort_on_overflow);
            Topo::sysctl(&t.server, &format!("net.ipv4.tcp_abort_on_overflow={abort}"))?;
        }
        Ok(())
    }

    /// Injects the fault (blocking for its duration) and heals it. Server restarts are done by
    /// the orchestrator, which owns the processes.
    pub fn inject(&self, t: &Topo) -> Result<(), String> {
        match *self {
            Fault::CableDown { hold } => {
                run(&["ip", "-n", &t.client, "link", "set", "eth0", "down"])?;
                std::thread::sleep(hold);
                run(&["ip", "-n", &t.client, "link", "set", "eth0", "up"]).map(drop)
            }
            Fault::Blackhole { both_ways, hold } => {
                let mut rules =
                    vec![(t.server.as_str(), vec!["INPUT", "-s", CLIENT_IP, "-j", "DROP"])];
                if both_ways {
                    rules.push((&t.client, vec!["INPUT", "-s", t.service_ip, "-j", "DROP"]));
                }
                with_rules(&rules, hold)
            }
            Fault::RejectReset { hold } => {
                let rule = vec!["INPUT", "-p", "tcp", "-s", CLIENT_IP, "-j", "REJECT"];
                let rule = [rule, vec!["--reject-with", "tcp-reset"]].concat();
                with_rules(&[(&t.server, rule)], hold)
            }
            Fault::SsKill => {
                ss_kill(&t.server)?;
                std::thread::sleep(Duration::from_secs(1));
                ss_kill(&t.server)
            }
            Fault::Loss { percent, hold } => {
                let p = format!("{:.2}", f64::from(percent) / 100.0);
                let rule = vec!["INPUT", "-m", "statistic", "--mode", "random", "--probability"];
                let rule = [rule, vec![&p, "-j", "DROP"]].concat();
                with_rules(&[(&t.server, rule.clone()), (&t.client, rule)], hold)
            }
            Fault::Failover { garp } => failover(t, garp),
            Fault::Backlog { .. } | Fault::ServerRestart { .. } => Ok(()),
        }
    }
}

fn iptables(ns: &str, op: &str, rule: &[&str]) -> Result<(), String> {
    let mut args = vec!["ip", "netns", "exec", ns, "iptables", "-w", op];
    args.extend_from_slice(rule);
    run(&args).map(drop)
}

/// Inserts `rules` (namespace, rule), waits `hold`, deletes them (all of them, even if one fails).
fn with_rules(rules: &[(&str, Vec<&str>)], hold: Duration) -> Result<(), String> {
    let mut added = Vec::new();
    let mut result = Ok(());
    for (ns, rule) in rules {
        match iptables(ns, "-I", rule) {
            Ok(()) => added.push((ns, rule)),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        std::thread::sleep(hold);
    }
    for (ns, rule) in added {
        if let Err(e) = iptables(ns, "-D", rule) {
            result = result.and(Err(e));
        }
    }
    result
}

fn ss_kill(ns: &str) -> Result<(), String> {
    run(&["ip", "netns", "exec", ns, "ss", "-K", "dst", CLIENT_IP]).map(drop)
}

fn failover(t: &Topo, garp: bool) -> Result<(), String> {
    let s2 = t.server2.as_deref().ok_or("failover needs a second server host")?;
    let vip = format!("{}/24", t.service_ip);
    run(&["ip", "-n", &t.server, "addr", "del", &vip, "dev", "eth0"])?;
    run(&["ip", "-n", s2, "addr", "add", &vip, "dev", "eth0"])?;
    if garp {
        run(&[
            "ip",
            "netns",
            "exec",
            s2,
            "arping",
            "-q",
            "-U",
            "-c",
            "1",
            "-I",
            "eth0",
            t.service_ip,
        ])?;
    }
    Ok(())
}
