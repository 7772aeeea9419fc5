//! The orchestrator: for each scenario, builds the namespaces, starts the plain and the tether
//! server and client side by side (same fault, same moment), injects the fault, collects every
//! role's lines, and hands them to [`report`](crate::report).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{now_ms, Args, PLAIN_PORT, TETHER_PORT};
use crate::faults::{self, Fault, Scenario};
use crate::report::{self, Observed, Row};
use crate::topo::Topo;

/// Clients start this long before the fault.
const FAULT_AT: Duration = Duration::from_millis(1500);
/// Messages per streaming workload, and how long their sending is spread over.
const COUNT: u64 = 3000;
const RUN_MS: u64 = 6000;
/// Short connections in the accept-overflow burst.
const BURST: u64 = 200;
/// A client reports and exits this long after its start, finished or not.
const CLIENT_DEADLINE_MS: u64 = 40_000;
/// The same for the accept-overflow burst: a connect stuck in SYN retries is reported, not awaited.
const BURST_DEADLINE_MS: u64 = 15_000;

/// Writes every role's lines to `dir/<scenario>.<mode>.<process>.log` (`--logs DIR`).
fn save_logs(
    dir: &str,
    scenario: &str,
    clients: &[Vec<String>],
    servers: &[Vec<Vec<String>>],
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
    for (m, mode) in ["plain", "tether"].iter().enumerate() {
        let mut files = vec![("client".to_string(), &clients[m])];
        files.extend(servers[m].iter().enumerate().map(|(i, l)| (format!("server{i}"), l)));
        for (who, lines) in files {
            let path = format!("{dir}/{scenario}.{mode}.{who}.log");
            std::fs::write(&path, lines.join("\n")).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    Ok(())
}

/// `run --prefix P [--only a,b] [--table FILE] [--logs DIR]`: runs the scenarios, prints the table (and writes
/// it to FILE); `Ok(false)` if tether broke its contract anywhere.
pub fn main(args: &[String]) -> Result<bool, String> {
    let a = Args::parse(args)?;
    let prefix = a.str("prefix")?.to_string();
    let only: Option<Vec<&str>> = a.opt("only").map(|s| s.split(',').collect());
    let logs = a.opt("logs");
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let exe = exe.to_str().ok_or("own path is not UTF-8")?.to_string();
    let started = Instant::now();
    let mut rows = Vec::new();
    for (i, sc) in faults::all().into_iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&sc.name)) {
            continue;
        }
        eprintln!("--- {} ...", sc.name);
        let name = format!("{prefix}-{i}");
        let t = Instant::now();
        let new_rows = run_scenario(&exe, &name, sc, logs)?;
        for r in &new_rows {
            eprintln!("{}", report::one_line(r));
        }
        eprintln!("    ({:.1} s)", t.elapsed().as_secs_f64());
        rows.extend(new_rows);
    }
    let table = report::table(&rows);
    println!("{table}");
    let ok = rows.iter().all(|r| r.violations.is_empty());
    println!(
        "{} scenarios in {:.0} s; tether {}",
        rows.len() / 2,
        started.elapsed().as_secs_f64(),
        if ok { "held its contract on every fault" } else { "BROKE ITS CONTRACT (see above)" }
    );
    if let Some(path) = a.opt("table") {
        std::fs::write(path, &table).map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(ok)
}

/// A role process inside a namespace, its stdout lines collected by a thread.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Proc {
    fn spawn(exe: &str, ns: &str, args: &[String]) -> Result<Proc, String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, exe])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {args:?} in {ns}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Ok(Proc { stdin: child.stdin.take(), child, lines, reader: Some(reader) })
    }

    fn has_line(&self, word: &str) -> bool {
        self.lines.lock().is_ok_and(|l| l.iter().any(|x| x.split(' ').nth(1) == Some(word)))
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let until = Instant::now() + timeout;
        while !self.has_line("ready") {
            if Instant::now() > until {
                return Err("a server did not report ready within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Waits for the process to exit by itself until `timeout`, then kills it.
    fn wait_or_kill(&mut self, timeout: Duration) {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks a server to stop (EOF on its stdin), then collects its lines.
    fn stop(mut self) -> Vec<String> {
        self.stdin = None;
        self.wait_or_kill(Duration::from_secs(5));
        self.collect()
    }

    fn collect(mut self) -> Vec<String> {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Proc {
    /// A role never outlives the orchestrator's interest in it (an error path included).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

fn server_args(mode: &str, fault: Fault) -> Vec<String> {
    let port = if mode == "plain" { PLAIN_PORT } else { TETHER_PORT };
    let mut a =
        vec!["server".into(), "--mode".into(), mode.into(), "--port".into(), port.to_string()];
    if fault.is_burst() {
        a.extend(["--backlog", "1", "--pause-ms", "1500"].map(String::from));
    }
    a
}

fn client_args(mode: &str, fault: Fault, ip: &str) -> Vec<String> {
    let port = if mode == "plain" { PLAIN_PORT } else { TETHER_PORT };
    let (role, count, deadline) = if fault.is_burst() {
        ("burst", BURST, BURST_DEADLINE_MS)
    } else {
        ("client", COUNT, CLIENT_DEADLINE_MS)
    };
    [role, "--mode", mode, "--addr", &format!("{ip}:{port}"), "--count", &count.to_string()]
        .into_iter()
        .map(String::from)
        .chain(["--run-ms".into(), RUN_MS.to_string()])
        .chain(["--deadline-ms".into(), deadline.to_string()])
        .collect()
}

/// The servers of one host, plain and tether.
fn start_servers(exe: &str, ns: &str, fault: Fault) -> Result<Vec<Proc>, String> {
    let procs = ["plain", "tether"]
        .iter()
        .map(|m| Proc::spawn(exe, ns, &server_args(m, fault)))
        .collect::<Result<Vec<_>, _>>()?;
    for p in &procs {
        p.wait_ready(Duration::from_secs(5))?;
    }
    Ok(procs)
}

/// Runs one scenario; returns its plain and tether rows.
fn run_scenario(
    exe: &str,
    name: &str,
    sc: Scenario,
    logs: Option<&str>,
) -> Result<Vec<Row>, String> {
    let topo = match sc.fault {
        Fault::Failover { .. } => Topo::failover(name)?,
        _ => Topo::two_hosts(name)?,
    };
    sc.fault.prepare(&topo)?;
    // servers[host] = [plain, tether]; a restart adds a host entry for the new processes.
    let mut servers = vec![start_servers(exe, &topo.server, sc.fault)?];
    if let Some(s2) = &topo.server2 {
        servers.push(start_servers(exe, s2, sc.fault)?);
    }
    let mut clients = ["plain", "tether"]
        .iter()
        .map(|m| Proc::spawn(exe, &topo.client, &client_args(m, sc.fault, topo.service_ip)))
        .collect::<Result<Vec<_>, _>>()?;
    let start = now_ms();
    std::thread::sleep(FAULT_AT);
    let fault_at = now_ms();
    let mut killed = false;
    if let Fault::ServerRestart { down } = sc.fault {
        for p in &mut servers[0] {
            p.kill();
        }
        killed = true;
        std::thread::sleep(down);
        servers.push(start_servers(exe, &topo.server, sc.fault)?);
    } else {
        sc.fault.inject(&topo)?;
    }
    let healed_at = now_ms();
    eprintln!("    fault at {fault_at} (clients started {start}), healed at {healed_at}");
    let deadline = Duration::from_millis(CLIENT_DEADLINE_MS + 5000);
    for c in &mut clients {
        c.wait_or_kill(deadline);
    }
    let client_lines: Vec<Vec<String>> = clients.into_iter().map(Proc::collect).collect();
    // server_lines[mode] = one list of lines per server process of that mode.
    let mut server_lines = vec![Vec::new(), Vec::new()];
    for host in servers {
        for (mode, p) in host.into_iter().enumerate() {
            server_lines[mode].push(p.stop());
        }
    }
    drop(topo);
    if let Some(dir) = logs {
        save_logs(dir, sc.name, &client_lines, &server_lines)?;
    }
    let rows = ["plain", "tether"]
        .iter()
        .enumerate()
        .map(|(m, mode)| {
            report::evaluate(&Observed {
                scenario: sc,
                mode,
                start,
                fault_at,
                healed_at,
                first_server_killed: killed,
                client: &client_lines[m],
                servers: &server_lines[m],
            })
        })
        .collect();
    Ok(rows)
}
