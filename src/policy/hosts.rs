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
