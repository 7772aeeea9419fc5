//! Where a client connects: an owned address the driver can resolve again on every attempt.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};

/// The address a client connects to: a socket address, or a host name with its port.
///
/// Every `connect` takes `impl Into<Address>`, so a `SocketAddr`, `"host:port"` (borrowed or
/// owned), `(host, port)` or `(ip, port)` all work without a `'static` bound: the address is
/// copied once. A host name is resolved again on every connection attempt, so a failover that
/// moves the name to a new address is followed; every address it resolves to is tried in turn.
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// # use tether_async::Address;
///
/// let ip = SocketAddr::from((Ipv4Addr::LOCALHOST, 7000));
/// assert_eq!(Address::from("127.0.0.1:7000"), Address::Socket(ip)); // a literal: no resolution
/// assert_eq!(Address::from(("127.0.0.1", 7000)), Address::Socket(ip));
/// let name = String::from("db.internal:7000");
/// assert_eq!(Address::from(&name), Address::Host(name.clone())); // resolved on every attempt
/// assert_eq!(Address::from(("db.internal", 7000)).to_string(), "db.internal:7000");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A socket address: no resolution.
    Socket(SocketAddr),
    /// `host:port`, resolved on every attempt (`[v6-literal]:port` for IPv6 literals).
    Host(String),
}

impl Address {
    /// A host name (or IP literal) and a port.
    pub fn host(host: &str, port: u16) -> Address {
        match host.parse::<IpAddr>() {
            Ok(ip) => Address::Socket(SocketAddr::new(ip, port)),
            Err(_) => Address::Host(format!("{host}:{port}")),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Socket(a) => a.fmt(f),
            Address::Host(h) => f.write_str(h),
        }
    }
}

/// Resolves a host name with the OS resolver (blocking: a runtime calls it off its executor).
impl ToSocketAddrs for Address {
    type Iter = std::vec::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
        match self {
            Address::Socket(a) => Ok(vec![*a].into_iter()),
            Address::Host(h) => Ok(h.to_socket_addrs()?.collect::<Vec<_>>().into_iter()),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Socket(a)
    }
}

impl From<&SocketAddr> for Address {
    fn from(a: &SocketAddr) -> Address {
        Address::Socket(*a)
    }
}

impl From<SocketAddrV4> for Address {
    fn from(a: SocketAddrV4) -> Address {
        Address::Socket(a.into())
    }
}

impl From<SocketAddrV6> for Address {
    fn from(a: SocketAddrV6) -> Address {
        Address::Socket(a.into())
    }
}

impl From<(IpAddr, u16)> for Address {
    fn from((ip, port): (IpAddr, u16)) -> Address {
        Address::Socket(SocketAddr::new(ip, port))
    }
}

impl From<(Ipv4Addr, u16)> for Address {
    fn from((ip, port): (Ipv4Addr, u16)) -> Address {
        Address::Socket(SocketAddr::new(ip.into(), port))
    }
}

impl From<(Ipv6Addr, u16)> for Address {
    fn from((ip, port): (Ipv6Addr, u16)) -> Address {
        Address::Socket(SocketAddr::new(ip.into(), port))
    }
}

/// `"host:port"` or an IP socket address literal.
impl From<&str> for Address {
    fn from(s: &str) -> Address {
        match s.parse::<SocketAddr>() {
            Ok(a) => Address::Socket(a),
            Err(_) => Address::Host(s.to_owned()),
        }
    }
}

impl From<String> for Address {
    fn from(s: String) -> Address {
        match s.parse::<SocketAddr>() {
            Ok(a) => Address::Socket(a),
            Err(_) => Address::Host(s),
        }
    }
}

impl From<&String> for Address {
    fn from(s: &String) -> Address {
        Address::from(s.as_str())
    }
}

impl From<(&str, u16)> for Address {
    fn from((host, port): (&str, u16)) -> Address {
        Address::host(host, port)
    }
}

impl From<(String, u16)> for Address {
    fn from((host, port): (String, u16)) -> Address {
        Address::host(&host, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_usual_form_converts_without_a_static_bound() {
        let v4 = SocketAddr::from(([127, 0, 0, 1], 80));
        let owned = String::from("127.0.0.1:80");
        assert_eq!(Address::from(owned.as_str()), Address::Socket(v4));
        assert_eq!(Address::from(&owned), Address::Socket(v4));
        assert_eq!(Address::from(owned.clone()), Address::Socket(v4));
        assert_eq!(Address::from(("127.0.0.1", 80)), Address::Socket(v4));
        assert_eq!(Address::from((Ipv4Addr::LOCALHOST, 80)), Address::Socket(v4));
        assert_eq!(Address::from(&v4), Address::Socket(v4));
        let v6 = Address::from((Ipv6Addr::LOCALHOST, 80));
        assert_eq!(v6.to_string(), "[::1]:80");
        assert_eq!(Address::from(("::1", 80)), v6);
        let host = Address::from(("localhost", 80));
        assert_eq!(host, Address::Host("localhost:80".into()));
        assert_eq!(Address::from(String::from("localhost:80")), host);
        assert_eq!(host.to_string(), "localhost:80");
    }

    #[test]
    fn resolution_gives_the_socket_address_or_the_resolver_error() {
        let v4 = SocketAddr::from(([127, 0, 0, 1], 80));
        assert_eq!(Address::from(v4).to_socket_addrs().unwrap().collect::<Vec<_>>(), [v4]);
        assert!(Address::from("no port here").to_socket_addrs().is_err());
    }
}
