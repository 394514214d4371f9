//! Host patterns as written in `[network] allow/deny` and `--allow-host`.

use std::net::IpAddr;

use serde::Serialize;

/// One network rule: which hosts, which ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostPattern {
    pub host: HostSpec,
    pub port: PortSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum HostSpec {
    /// An exact name, lower-cased, without a trailing dot.
    Name(String),
    /// `*.example.com`: any name strictly below `example.com` (stored
    /// without the `*.`).
    Suffix(String),
    /// An IP literal.
    Ip(IpAddr),
    /// An address block: network address and prefix length.
    Cidr(IpAddr, u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum PortSpec {
    /// No port written: 443 and 80.
    Web,
    /// `:N`
    Port(u16),
    /// `:*`
    Any,
}

impl HostPattern {
    /// Whether this pattern allows `host` on `port` (case-insensitive).
    // Placeholder until the policy branch lands its full matcher.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            PortSpec::Web => port == 443 || port == 80,
            PortSpec::Port(p) => p == port,
            PortSpec::Any => true,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        port_ok
            && match &self.host {
                HostSpec::Name(n) => *n == host,
                HostSpec::Suffix(s) => host.ends_with(&format!(".{s}")),
                HostSpec::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
                HostSpec::Cidr(..) => false,
            }
    }
}

impl std::fmt::Display for HostPattern {
    // Placeholder until the policy branch lands.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self)
    }
}
