//! Which connections the proxy makes: the plan's allow and deny rules
//! applied to the name the client asked for, then to the addresses that
//! name resolved to.
//!
//! Two checks, in this order:
//!
//! 1. The name (or literal) as asked: a matching `deny` rule wins; else the
//!    first matching `allow` rule allows; else it is denied.
//! 2. Each resolved address: a `deny` IP/CIDR rule covering it drops it;
//!    an address in a special range (loopback, private, link-local,
//!    unique-local, carrier NAT, cloud metadata, ...) is kept only when an
//!    `allow` rule names that IP or a CIDR holding it, for this port. So an
//!    allowed name cannot be pointed at the user's local services (DNS
//!    rebinding), while `--allow-host 127.0.0.1:8080` still works.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::plan::NetworkPlan;
use crate::policy::{HostPattern, HostSpec, PortSpec};

/// One rule, with its spelling and provenance for the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub pattern: HostPattern,
    /// The pattern as written.
    pub text: String,
    /// Where it was written (file:line or flag).
    pub source: String,
}

#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
}

/// The verdict on a name or literal, before resolving it.
#[derive(Debug, PartialEq)]
pub enum Verdict<'a> {
    Allow(&'a Rule),
    /// Denied by a rule, or by the absence of one (`None`).
    Deny(Option<&'a Rule>),
}

/// An address range the proxy never connects to unless a rule names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    Unspecified,
    Loopback,
    Private,
    CarrierNat,
    LinkLocal,
    CloudMetadata,
    UniqueLocal,
    SiteLocal,
    Multicast,
    Broadcast,
    Reserved,
    Benchmarking,
    ProtocolAssignments,
}

impl Special {
    pub fn describe(self) -> &'static str {
        match self {
            Special::Unspecified => "an unspecified address",
            Special::Loopback => "a loopback address",
            Special::Private => "a private address",
            Special::CarrierNat => "a carrier-grade NAT address",
            Special::LinkLocal => "a link-local address",
            Special::CloudMetadata => "a cloud metadata address",
            Special::UniqueLocal => "a unique-local address",
            Special::SiteLocal => "a site-local address",
            Special::Multicast => "a multicast address",
            Special::Broadcast => "the broadcast address",
            Special::Reserved => "a reserved address",
            Special::Benchmarking => "a benchmarking address",
            Special::ProtocolAssignments => "an IETF protocol address",
        }
    }
}

impl Rules {
    pub fn from_plan(net: &NetworkPlan) -> Rules {
        let conv = |r: &crate::plan::HostRule| Rule {
            pattern: r.pattern.clone(),
            text: r.pattern.to_string(),
            source: r.source.to_string(),
        };
        // Network none: the proxy is there to refuse and record, so it
        // allows nothing, whatever allow rules the policies hold.
        let allow = match net.mode {
            crate::policy::NetMode::Proxy => net.allow.iter().map(conv).collect(),
            _ => Vec::new(),
        };
        Rules {
            allow,
            deny: net.deny.iter().map(conv).collect(),
        }
    }

    /// Check 1: the host as the client asked for it (a name or an IP
    /// literal, IPv6 with or without brackets).
    pub fn decide(&self, host: &str, port: u16) -> Verdict<'_> {
        if let Some(d) = self.deny.iter().find(|r| rule_matches(r, host, port)) {
            return Verdict::Deny(Some(d));
        }
        match self.allow.iter().find(|r| rule_matches(r, host, port)) {
            Some(a) => Verdict::Allow(a),
            None => Verdict::Deny(None),
        }
    }

    /// For the DNS stub, which has a name and no port: the first allow rule
    /// matching the name on a port it allows that no deny rule takes back,
    /// with that port.
    pub fn decide_name(&self, name: &str) -> Option<(&Rule, u16)> {
        self.allow.iter().find_map(|a| {
            let port = match a.pattern.port {
                PortSpec::Web => 443,
                PortSpec::Port(p) => p,
                PortSpec::Any => 443,
            };
            (rule_matches(a, name, port) && !self.deny.iter().any(|d| rule_matches(d, name, port)))
                .then_some((a, port))
        })
    }

    /// Check 2: the resolved addresses the proxy may connect to, in order.
    /// `Err` carries why none is left.
    pub fn admit(&self, addrs: &[IpAddr], port: u16) -> Result<Vec<IpAddr>, String> {
        let mut kept = Vec::new();
        let mut why = None;
        for &addr in addrs {
            let addr = canonical(addr);
            if let Some(d) = self.deny.iter().find(|r| explicit_covers(r, addr, port)) {
                why.get_or_insert_with(|| format!("{addr} is denied by {}", d.text));
                continue;
            }
            if let Some(kind) = classify(addr)
                && !self.allow.iter().any(|r| explicit_covers(r, addr, port))
            {
                why.get_or_insert_with(|| {
                    format!(
                        "resolves to {addr}, {}; only a rule naming that IP or its CIDR \
                         may allow it",
                        kind.describe()
                    )
                });
                continue;
            }
            if !kept.contains(&addr) {
                kept.push(addr);
            }
        }
        if kept.is_empty() {
            Err(why.unwrap_or_else(|| "the name has no address".to_string()))
        } else {
            Ok(kept)
        }
    }
}

fn port_matches(spec: PortSpec, port: u16) -> bool {
    match spec {
        PortSpec::Web => port == 443 || port == 80,
        PortSpec::Port(p) => p == port,
        PortSpec::Any => true,
    }
}

/// The policy's matcher, plus IP literals against CIDR rules, so a CIDR
/// works whether or not the policy's matcher handles it.
fn rule_matches(rule: &Rule, host: &str, port: u16) -> bool {
    if rule.pattern.matches(host, port) {
        return true;
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(ip) => explicit_covers(rule, ip, port),
        Err(_) => false,
    }
}

/// Whether `rule` names `addr` explicitly (an IP literal equal to it, or a
/// CIDR holding it) and allows `port`. Name rules never do.
pub fn explicit_covers(rule: &Rule, addr: IpAddr, port: u16) -> bool {
    port_matches(rule.pattern.port, port) && spec_covers(&rule.pattern.host, addr)
}

/// Whether an IP or CIDR spec holds `addr`; IPv4-mapped IPv6 counts as the
/// IPv4 address on both sides.
pub fn spec_covers(spec: &HostSpec, addr: IpAddr) -> bool {
    let addr = canonical(addr);
    match spec {
        HostSpec::Ip(ip) => canonical(*ip) == addr,
        HostSpec::Cidr(net, len) => match (canonical(*net), addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) if *len <= 32 => {
                prefix_eq(u128::from(n.to_bits()), u128::from(a.to_bits()), 32, *len)
            }
            (IpAddr::V4(n), IpAddr::V4(a)) if *len >= 96 && is_mapped_net(*net) => prefix_eq(
                u128::from(n.to_bits()),
                u128::from(a.to_bits()),
                32,
                len - 96,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) if *len <= 128 => {
                prefix_eq(n.to_bits(), a.to_bits(), 128, *len)
            }
            _ => false,
        },
        HostSpec::Name(_) | HostSpec::Suffix(_) => false,
    }
}

/// A CIDR written in IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`).
fn is_mapped_net(net: IpAddr) -> bool {
    matches!(net, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

fn prefix_eq(a: u128, b: u128, width: u8, len: u8) -> bool {
    if len == 0 {
        return true;
    }
    let shift = u32::from(width - len.min(width));
    (a >> shift) == (b >> shift)
}

/// IPv4-mapped IPv6 (`::ffff:127.0.0.1`) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The special range `ip` falls in, if any.
pub fn classify(ip: IpAddr) -> Option<Special> {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    prefix_eq(
        u128::from(ip.to_bits()),
        u128::from(Ipv4Addr::from(net).to_bits()),
        32,
        len,
    )
}

fn classify_v4(ip: Ipv4Addr) -> Option<Special> {
    let table: &[([u8; 4], u8, Special)] = &[
        ([169, 254, 169, 254], 32, Special::CloudMetadata),
        ([100, 100, 100, 200], 32, Special::CloudMetadata),
        ([255, 255, 255, 255], 32, Special::Broadcast),
        ([0, 0, 0, 0], 8, Special::Unspecified),
        ([10, 0, 0, 0], 8, Special::Private),
        ([100, 64, 0, 0], 10, Special::CarrierNat),
        ([127, 0, 0, 0], 8, Special::Loopback),
        ([169, 254, 0, 0], 16, Special::LinkLocal),
        ([172, 16, 0, 0], 12, Special::Private),
        ([192, 0, 0, 0], 24, Special::ProtocolAssignments),
        ([192, 168, 0, 0], 16, Special::Private),
        ([198, 18, 0, 0], 15, Special::Benchmarking),
        ([224, 0, 0, 0], 4, Special::Multicast),
        ([240, 0, 0, 0], 4, Special::Reserved),
    ];
    table
        .iter()
        .find(|(net, len, _)| in_v4(ip, *net, *len))
        .map(|(_, _, kind)| *kind)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Special> {
    let bits = ip.to_bits();
    let within = |net: u128, len: u8| prefix_eq(bits, net, 128, len);
    // Addresses that embed an IPv4 one reach it: NAT64's well-known
    // prefix and the deprecated IPv4-compatible form.
    if within(0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96)
        || (within(0, 96) && bits > 1 && (bits as u32) > 0xffff)
    {
        return classify_v4(Ipv4Addr::from_bits(bits as u32));
    }
    // AWS's IPv6 instance metadata endpoint.
    if bits == 0xfd00_0ec2_0000_0000_0000_0000_0000_0254 {
        return Some(Special::CloudMetadata);
    }
    let table: &[(u128, u8, Special)] = &[
        (0, 128, Special::Unspecified),
        (1, 128, Special::Loopback),
        (0xfc00 << 112, 7, Special::UniqueLocal),
        (0xfe80 << 112, 10, Special::LinkLocal),
        (0xfec0 << 112, 10, Special::SiteLocal),
        (0xff00 << 112, 8, Special::Multicast),
        (0x0100 << 112, 64, Special::Reserved),
    ];
    table
        .iter()
        .find(|(net, len, _)| within(*net, *len))
        .map(|(_, _, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::HostSpec;

    fn rule(host: HostSpec, port: PortSpec) -> Rule {
        let pattern = HostPattern { host, port };
        Rule {
            text: format!("{pattern:?}"),
            pattern,
            source: "test".into(),
        }
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn name(n: &str) -> HostSpec {
        HostSpec::Name(n.into())
    }

    #[test]
    fn special_ranges_are_classified() {
        for (addr, kind) in [
            ("127.0.0.1", Special::Loopback),
            ("127.255.0.9", Special::Loopback),
            ("::1", Special::Loopback),
            ("::ffff:127.0.0.1", Special::Loopback),
            ("64:ff9b::7f00:1", Special::Loopback),
            ("::127.0.0.1", Special::Loopback),
            ("10.1.2.3", Special::Private),
            ("172.31.255.255", Special::Private),
            ("192.168.1.1", Special::Private),
            ("100.64.0.1", Special::CarrierNat),
            ("169.254.1.1", Special::LinkLocal),
            ("169.254.169.254", Special::CloudMetadata),
            ("100.100.100.200", Special::CloudMetadata),
            ("fd00:ec2::254", Special::CloudMetadata),
            ("fd12::1", Special::UniqueLocal),
            ("fc00::1", Special::UniqueLocal),
            ("fe80::1", Special::LinkLocal),
            ("0.0.0.0", Special::Unspecified),
            ("::", Special::Unspecified),
            ("224.0.0.1", Special::Multicast),
            ("ff02::1", Special::Multicast),
            ("255.255.255.255", Special::Broadcast),
            ("240.0.0.1", Special::Reserved),
        ] {
            assert_eq!(classify(ip(addr)), Some(kind), "{addr}");
        }
        for addr in [
            "1.1.1.1",
            "172.32.0.1",
            "192.169.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "198.51.100.7",
        ] {
            assert_eq!(classify(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn explicit_rules_cover_ips_and_cidrs_only() {
        let r = rule(HostSpec::Ip(ip("127.0.0.1")), PortSpec::Port(8080));
        assert!(explicit_covers(&r, ip("127.0.0.1"), 8080));
        assert!(explicit_covers(&r, ip("::ffff:127.0.0.1"), 8080));
        assert!(!explicit_covers(&r, ip("127.0.0.1"), 8081));
        assert!(!explicit_covers(&r, ip("127.0.0.2"), 8080));
        let c = rule(HostSpec::Cidr(ip("10.0.0.0"), 8), PortSpec::Any);
        assert!(explicit_covers(&c, ip("10.200.3.4"), 22));
        assert!(!explicit_covers(&c, ip("11.0.0.1"), 22));
        let c6 = rule(HostSpec::Cidr(ip("fd00::"), 8), PortSpec::Web);
        assert!(explicit_covers(&c6, ip("fd12:3456::1"), 443));
        assert!(!explicit_covers(&c6, ip("fe80::1"), 443));
        assert!(!explicit_covers(&c6, ip("fd12::1"), 22));
        let all = rule(HostSpec::Cidr(ip("0.0.0.0"), 0), PortSpec::Any);
        assert!(explicit_covers(&all, ip("127.0.0.1"), 1));
        let mapped = rule(HostSpec::Cidr(ip("::ffff:10.0.0.0"), 104), PortSpec::Any);
        assert!(explicit_covers(&mapped, ip("10.9.9.9"), 1));
        let n = rule(name("localhost"), PortSpec::Any);
        assert!(!explicit_covers(&n, ip("127.0.0.1"), 80));
    }

    #[test]
    fn deny_beats_allow_and_no_rule_denies() {
        let rules = Rules {
            allow: vec![
                rule(HostSpec::Suffix("example.com".into()), PortSpec::Web),
                rule(name("git.example.org"), PortSpec::Port(22)),
            ],
            deny: vec![rule(name("evil.example.com"), PortSpec::Any)],
        };
        assert!(matches!(
            rules.decide("api.example.com", 443),
            Verdict::Allow(_)
        ));
        assert!(matches!(
            rules.decide("API.Example.COM.", 80),
            Verdict::Allow(_)
        ));
        assert_eq!(rules.decide("api.example.com", 22), Verdict::Deny(None));
        assert!(matches!(
            rules.decide("evil.example.com", 443),
            Verdict::Deny(Some(_))
        ));
        assert!(matches!(
            rules.decide("git.example.org", 22),
            Verdict::Allow(_)
        ));
        assert_eq!(rules.decide("git.example.org", 443), Verdict::Deny(None));
        assert_eq!(rules.decide("example.com", 443), Verdict::Deny(None));
        assert_eq!(rules.decide_name("git.example.org").map(|r| r.1), Some(22));
        assert!(rules.decide_name("evil.example.com").is_none());
        assert!(rules.decide_name("other.test").is_none());
    }

    #[test]
    fn ip_literals_match_cidr_rules() {
        let rules = Rules {
            allow: vec![rule(HostSpec::Cidr(ip("10.0.0.0"), 8), PortSpec::Any)],
            deny: vec![],
        };
        assert!(matches!(rules.decide("10.1.1.1", 5432), Verdict::Allow(_)));
        assert!(matches!(
            rules.decide("[::ffff:10.1.1.1]", 1),
            Verdict::Allow(_)
        ));
        assert_eq!(rules.decide("11.1.1.1", 1), Verdict::Deny(None));
    }

    #[test]
    fn names_resolving_to_local_addresses_need_an_explicit_rule() {
        let by_name = Rules {
            allow: vec![rule(name("localhost"), PortSpec::Port(8080))],
            deny: vec![],
        };
        let err = by_name
            .admit(&[ip("127.0.0.1"), ip("::1")], 8080)
            .unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let err = by_name.admit(&[ip("169.254.169.254")], 8080).unwrap_err();
        assert!(err.contains("metadata"), "{err}");
        // Public addresses pass; special ones are dropped from a mixed set.
        assert_eq!(
            by_name.admit(&[ip("10.0.0.1"), ip("8.8.8.8")], 8080),
            Ok(vec![ip("8.8.8.8")])
        );
        let explicit = Rules {
            allow: vec![
                rule(name("localhost"), PortSpec::Port(8080)),
                rule(HostSpec::Ip(ip("127.0.0.1")), PortSpec::Port(8080)),
            ],
            deny: vec![],
        };
        assert_eq!(
            explicit.admit(&[ip("::ffff:127.0.0.1"), ip("::1")], 8080),
            Ok(vec![ip("127.0.0.1")])
        );
        assert!(explicit.admit(&[ip("127.0.0.1")], 8081).is_err());
        let denied = Rules {
            allow: vec![rule(HostSpec::Suffix("example.com".into()), PortSpec::Web)],
            deny: vec![rule(HostSpec::Cidr(ip("203.0.113.0"), 24), PortSpec::Any)],
        };
        let err = denied.admit(&[ip("203.0.113.9")], 443).unwrap_err();
        assert!(err.contains("denied"), "{err}");
    }
}
