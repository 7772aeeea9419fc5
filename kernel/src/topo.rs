//! Network namespaces for one scenario, created with `ip` and deleted on drop.
//!
//! Every namespace is named `<prefix>-<scenario>-<host>`; every interface is created directly
//! inside one of them (never in the caller's namespace) and every address is from 10.77.0.0/24,
//! which exists only inside them. Deleting a namespace deletes its interfaces, its iptables rules
//! and its sysctls, so dropping the [`Topo`] (or the run script's trap, by prefix) undoes
//! everything.

use std::process::Command;

/// The client's address.
pub const CLIENT_IP: &str = "10.77.0.2";
/// The server's address in the two-host topology.
pub const SERVER_IP: &str = "10.77.0.1";
/// The floating service address in the failover topology.
pub const VIP: &str = "10.77.0.100";

/// Runs a command; the error names it and carries its stderr.
pub fn run(args: &[&str]) -> Result<String, String> {
    let (cmd, rest) = args.split_first().ok_or("empty command")?;
    let out =
        Command::new(cmd).args(rest).output().map_err(|e| format!("`{}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces of one scenario.
#[derive(Debug)]
pub struct Topo {
    /// The client host.
    pub client: String,
    /// The (first) server host.
    pub server: String,
    /// The failover server host (failover topology only).
    pub server2: Option<String>,
    /// The address clients connect to.
    pub service_ip: &'static str,
    created: Vec<String>,
}

impl Topo {
    fn add_ns(&mut self, name: &str) -> Result<(), String> {
        run(&["ip", "netns", "add", name])?;
        self.created.push(name.to_string());
        run(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Client and server joined by one veth pair (`eth0` on both sides).
    pub fn two_hosts(name: &str) -> Result<Topo, String> {
        let mut t = Topo {
            client: format!("{name}-c"),
            server: format!("{name}-s"),
            server2: None,
            service_ip: SERVER_IP,
            created: Vec::new(),
        };
        let (c, s) = (t.client.clone(), t.server.clone());
        t.add_ns(&c)?;
        t.add_ns(&s)?;
        veth(&c, "eth0", &s, "eth0")?;
        host_addr(&c, CLIENT_IP)?;
        host_addr(&s, SERVER_IP)?;
        Ok(t)
    }

    /// Client, two servers and a switch namespace with a bridge; the VIP starts on the first server.
    pub fn failover(name: &str) -> Result<Topo, String> {
        let mut t = Topo {
            client: format!("{name}-c"),
            server: format!("{name}-s1"),
            server2: Some(format!("{name}-s2")),
            service_ip: VIP,
            created: Vec::new(),
        };
        let (c, s1, s2, w) =
            (t.client.clone(), t.server.clone(), format!("{name}-s2"), format!("{name}-w"));
        for ns in [&c, &s1, &s2, &w] {
            t.add_ns(ns)?;
        }
        run(&["ip", "-n", &w, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &w, "link", "set", "br0", "up"])?;
        for (ns, port, ip) in
            [(&c, "pc", CLIENT_IP), (&s1, "p1", "10.77.0.11"), (&s2, "p2", "10.77.0.12")]
        {
            veth(ns, "eth0", &w, port)?;
            run(&["ip", "-n", &w, "link", "set", port, "master", "br0"])?;
            host_addr(ns, ip)?;
        }
        run(&["ip", "-n", &s1, "addr", "add", &format!("{VIP}/24"), "dev", "eth0"])?;
        Ok(t)
    }

    /// Sets a sysctl inside namespace `ns` only.
    pub fn sysctl(ns: &str, key_value: &str) -> Result<(), String> {
        run(&["ip", "netns", "exec", ns, "sysctl", "-qw", key_value]).map(drop)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A veth pair with one end in each namespace, both up.
fn veth(ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> Result<(), String> {
    run(&[
        "ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns",
        ns_b,
    ])?;
    run(&["ip", "-n", ns_a, "link", "set", if_a, "up"])?;
    run(&["ip", "-n", ns_b, "link", "set", if_b, "up"])?;
    Ok(())
}

fn host_addr(ns: &str, ip: &str) -> Result<(), String> {
    run(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]).map(drop)
}
