//! Host patterns as written in `[network] allow/deny` and `--allow-host`:
//! parsing, the canonical spelling (`Display`), and matching a host.
//!
//! Parsing refuses patterns that are too broad to be what anyone meant: a
//! bare `*`, a wildcard over a top-level domain (`*.com`), or over a public
//! suffix where unrelated owners register names (`*.co.uk`,
//! `*.github.io`). The list of such suffixes is short and embedded; it is a
//! guard against mistakes, not a copy of the Public Suffix List.
//!
//! Matching is purely textual: it never resolves names. The proxy must
//! match the name it was asked for and, for IP rules, the literal address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// Why a host pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    #[error("empty pattern")]
    Empty,
    #[error(
        "`*` alone would allow every host; list the hosts, or use network mode \"host\" \
         for an unfiltered network"
    )]
    BareWildcard,
    #[error("a wildcard is only allowed as the whole first label, as in `*.example.com`")]
    WildcardPlacement,
    #[error(
        "`*.{suffix}` would allow every name under a top-level domain; \
         a wildcard needs at least two labels after `*.`"
    )]
    TopLevelWildcard { suffix: String },
    #[error(
        "`{suffix}` is a public suffix: unrelated owners register names under it, \
         so `*.{suffix}` would allow all of them; list the names you need"
    )]
    PublicSuffix { suffix: String },
    #[error("not ASCII; write an internationalised name in its `xn--` form")]
    NotAscii,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label `{label}` is longer than 63 characters")]
    LabelTooLong { label: String },
    #[error("`{ch}` is not allowed in a host name (letters, digits, `-` and `.` only)")]
    BadChar { ch: char },
    #[error("label `{label}` starts or ends with `-`")]
    HyphenEdge { label: String },
    #[error("name is longer than 253 characters")]
    NameTooLong,
    #[error("looks like an IP address but is not a valid one")]
    NotAnAddress,
    #[error("bad port `{port}`: expected a number from 1 to 65535, or `*`")]
    BadPort { port: String },
    #[error("brackets are only for IPv6 addresses, as in `[::1]:8080`")]
    Brackets,
    #[error("bad prefix length `{prefix}`: expected 0 to {max}")]
    BadPrefix { prefix: String, max: u8 },
    #[error("address has bits set below the prefix; did you mean `{network}`?")]
    HostBits { network: String },
}

/// Two-label public suffixes where `*.SUFFIX` would cover unrelated owners:
/// country second-level domains and shared hosting platforms.
const PUBLIC_SUFFIXES: &[&str] = &[
    // Country second-level registries.
    "ac.uk",
    "co.uk",
    "gov.uk",
    "ltd.uk",
    "me.uk",
    "net.uk",
    "nhs.uk",
    "org.uk",
    "plc.uk",
    "sch.uk",
    "asn.au",
    "com.au",
    "edu.au",
    "gov.au",
    "id.au",
    "net.au",
    "org.au",
    "ac.jp",
    "co.jp",
    "go.jp",
    "ne.jp",
    "or.jp",
    "ac.nz",
    "co.nz",
    "geek.nz",
    "govt.nz",
    "net.nz",
    "org.nz",
    "com.br",
    "gov.br",
    "net.br",
    "org.br",
    "com.cn",
    "edu.cn",
    "gov.cn",
    "net.cn",
    "org.cn",
    "co.in",
    "firm.in",
    "gen.in",
    "ind.in",
    "net.in",
    "org.in",
    "co.za",
    "gov.za",
    "org.za",
    "com.mx",
    "gob.mx",
    "org.mx",
    "co.kr",
    "or.kr",
    "com.tw",
    "com.hk",
    "com.sg",
    "com.my",
    "co.id",
    "co.il",
    "com.tr",
    "com.ar",
    "com.co",
    "co.th",
    "com.ua",
    "com.pl",
    "com.vn",
    "com.ph",
    "com.pk",
    "com.ng",
    "com.eg",
    "com.sa",
    "co.ke",
    // Hosting platforms where anyone gets a subdomain (and so a server
    // that can receive whatever the agent sends).
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "vercel.app",
    "netlify.app",
    "pages.dev",
    "workers.dev",
    "web.app",
    "firebaseapp.com",
    "appspot.com",
    "blogspot.com",
    "azurewebsites.net",
    "glitch.me",
    "onrender.com",
    "fly.dev",
    "ngrok.io",
    "ngrok-free.app",
    "trycloudflare.com",
    "repl.co",
    "replit.dev",
];

impl HostPattern {
    /// Parses one pattern: `name`, `*.suffix`, an IPv4 or IPv6 address, or
    /// a CIDR block, then optionally `:PORT` or `:*` (IPv6 with a port is
    /// written `[::1]:8080` or `[fd00::/8]:443`).
    pub fn parse(s: &str) -> Result<HostPattern, HostPatternError> {
        if s.is_empty() {
            return Err(HostPatternError::Empty);
        }
        if !s.is_ascii() {
            return Err(HostPatternError::NotAscii);
        }
        let (host, port) = split_port(s)?;
        let host = match host {
            HostPart::Bracketed(inner) => match parse_address(inner)? {
                Some(spec @ (HostSpec::Ip(IpAddr::V6(_)) | HostSpec::Cidr(IpAddr::V6(_), _))) => {
                    spec
                }
                _ => return Err(HostPatternError::Brackets),
            },
            HostPart::Plain(text) => match parse_address(text)? {
                Some(spec) => spec,
                None => parse_name(text)?,
            },
        };
        Ok(HostPattern { host, port })
    }

    /// Whether a connection to `host` (a name, or an IP literal, with or
    /// without IPv6 brackets) on `port` falls under this pattern. Names
    /// compare case-insensitively, ignoring one trailing dot. An IPv4
    /// address written as IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is the same
    /// address as the IPv4 one, so a `deny` cannot be sidestepped that way.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            PortSpec::Web => port == 443 || port == 80,
            PortSpec::Port(p) => port == p,
            PortSpec::Any => true,
        };
        port_ok && self.host.matches(host)
    }
}

impl HostSpec {
    /// Whether `host` (name or IP literal) falls under this spec.
    pub fn matches(&self, host: &str) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match (self, host.parse::<IpAddr>()) {
            (HostSpec::Ip(want), Ok(ip)) => canonical_ip(*want) == canonical_ip(ip),
            (HostSpec::Cidr(net, len), Ok(ip)) => cidr_contains(*net, *len, ip),
            (HostSpec::Name(name), Err(_)) => normalise_name(host).as_deref() == Some(name),
            (HostSpec::Suffix(suffix), Err(_)) => normalise_name(host).is_some_and(|h| {
                h.len() > suffix.len() + 1
                    && h.ends_with(suffix.as_str())
                    && h.as_bytes()[h.len() - suffix.len() - 1] == b'.'
            }),
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = matches!(
            self.host,
            HostSpec::Ip(IpAddr::V6(_)) | HostSpec::Cidr(IpAddr::V6(_), _)
        );
        let bracket = v6 && self.port != PortSpec::Web;
        if bracket {
            f.write_str("[")?;
        }
        match &self.host {
            HostSpec::Name(n) => f.write_str(n)?,
            HostSpec::Suffix(s) => write!(f, "*.{s}")?,
            HostSpec::Ip(ip) => write!(f, "{ip}")?,
            HostSpec::Cidr(net, len) => write!(f, "{net}/{len}")?,
        }
        if bracket {
            f.write_str("]")?;
        }
        match self.port {
            PortSpec::Web => Ok(()),
            PortSpec::Port(p) => write!(f, ":{p}"),
            PortSpec::Any => f.write_str(":*"),
        }
    }
}

enum HostPart<'a> {
    Bracketed(&'a str),
    Plain(&'a str),
}

/// Splits `host[:port]`. More than one `:` without brackets is an IPv6
/// address (or block) with no port.
fn split_port(s: &str) -> Result<(HostPart<'_>, PortSpec), HostPatternError> {
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or(HostPatternError::Brackets)?;
        let port = match after {
            "" => PortSpec::Web,
            _ => parse_port(after.strip_prefix(':').ok_or(HostPatternError::Brackets)?)?,
        };
        return Ok((HostPart::Bracketed(inner), port));
    }
    if s.contains(']') {
        return Err(HostPatternError::Brackets);
    }
    match s.matches(':').count() {
        0 => Ok((HostPart::Plain(s), PortSpec::Web)),
        1 => {
            let (host, port) = s.split_once(':').ok_or(HostPatternError::Empty)?;
            if host.is_empty() {
                return Err(HostPatternError::Empty);
            }
            Ok((HostPart::Plain(host), parse_port(port)?))
        }
        _ => Ok((HostPart::Plain(s), PortSpec::Web)),
    }
}

fn parse_port(p: &str) -> Result<PortSpec, HostPatternError> {
    if p == "*" {
        return Ok(PortSpec::Any);
    }
    let bad = || HostPatternError::BadPort {
        port: p.to_string(),
    };
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(PortSpec::Port(n)),
    }
}

/// An IP literal or CIDR block, `None` when the text is not address-shaped
/// (then it is a name).
fn parse_address(s: &str) -> Result<Option<HostSpec>, HostPatternError> {
    if let Some((addr, prefix)) = s.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| HostPatternError::NotAnAddress)?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bad = || HostPatternError::BadPrefix {
            prefix: prefix.to_string(),
            max,
        };
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let len: u8 = prefix.parse().map_err(|_| bad())?;
        if len > max {
            return Err(bad());
        }
        let network = mask(ip, len);
        if network != ip {
            return Err(HostPatternError::HostBits {
                network: format!("{network}/{len}"),
            });
        }
        return Ok(Some(HostSpec::Cidr(ip, len)));
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(Some(HostSpec::Ip(ip))),
        // A colon left here means an IPv6-shaped string that did not parse.
        Err(_) if s.contains(':') => Err(HostPatternError::NotAnAddress),
        Err(_) => Ok(None),
    }
}

/// An exact name or a `*.suffix` wildcard.
fn parse_name(s: &str) -> Result<HostSpec, HostPatternError> {
    if s == "*" {
        return Err(HostPatternError::BareWildcard);
    }
    let (wild, rest) = match s.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if rest.contains('*') {
        return Err(HostPatternError::WildcardPlacement);
    }
    let name = validate_name(rest)?;
    if !wild {
        return Ok(HostSpec::Name(name));
    }
    if !name.contains('.') {
        return Err(HostPatternError::TopLevelWildcard { suffix: name });
    }
    if PUBLIC_SUFFIXES.contains(&name.as_str()) {
        return Err(HostPatternError::PublicSuffix { suffix: name });
    }
    Ok(HostSpec::Suffix(name))
}

/// Lower-cases, drops one trailing dot, and checks the DNS rules: labels of
/// 1 to 63 letters, digits and inner hyphens; at most 253 characters; a
/// last label that is not all digits (that would be a malformed address).
fn validate_name(s: &str) -> Result<String, HostPatternError> {
    let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    if name.is_empty() {
        return Err(HostPatternError::Empty);
    }
    if name.len() > 253 {
        return Err(HostPatternError::NameTooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostPatternError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(HostPatternError::LabelTooLong {
                label: label.to_string(),
            });
        }
        if let Some(ch) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(HostPatternError::BadChar { ch });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostPatternError::HyphenEdge {
                label: label.to_string(),
            });
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(HostPatternError::NotAnAddress);
    }
    Ok(name)
}

/// A host as a connection names it, normalised like patterns are; `None`
/// when it could never equal a valid pattern.
fn normalise_name(host: &str) -> Option<String> {
    let h = host.strip_suffix('.').unwrap_or(host);
    (!h.is_empty() && h.is_ascii()).then(|| h.to_ascii_lowercase())
}

/// IPv4-mapped IPv6 addresses are the IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, canonical_ip(ip)) {
        (IpAddr::V4(_), ip @ IpAddr::V4(_)) => mask(ip, len) == net,
        (IpAddr::V6(_), IpAddr::V4(v4)) => mask(IpAddr::V6(v4.to_ipv6_mapped()), len) == net,
        (IpAddr::V6(_), ip @ IpAddr::V6(_)) => mask(ip, len) == net,
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parse_and_display_round_trip() {
        // (written, canonical spelling)
        let table = [
            ("api.anthropic.com", "api.anthropic.com"),
            ("API.Anthropic.COM.", "api.anthropic.com"),
            ("*.github.com", "*.github.com"),
            ("registry.npmjs.org:443", "registry.npmjs.org:443"),
            ("example.com:*", "example.com:*"),
            ("localhost:11434", "localhost:11434"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("10.1.2.3", "10.1.2.3"),
            ("10.1.2.3:8080", "10.1.2.3:8080"),
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("[::1]:8080", "[::1]:8080"),
            ("[2001:DB8::1]:*", "[2001:db8::1]:*"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.0.0.0/8:22", "10.0.0.0/8:22"),
            ("fd00::/8", "fd00::/8"),
            ("[fd00::/8]:443", "[fd00::/8]:443"),
            ("0.0.0.0/0", "0.0.0.0/0"),
        ];
        for (written, canonical) in table {
            let pat = p(written);
            assert_eq!(pat.to_string(), canonical, "{written}");
            assert_eq!(p(&pat.to_string()), pat, "{written} round trip");
        }
    }

    #[test]
    fn parse_kinds() {
        assert_eq!(
            p("*.Example.com:8443"),
            HostPattern {
                host: HostSpec::Suffix("example.com".into()),
                port: PortSpec::Port(8443)
            }
        );
        assert_eq!(
            p("fd00::/8").host,
            HostSpec::Cidr("fd00::".parse().unwrap(), 8)
        );
        assert_eq!(p("1.2.3.4").port, PortSpec::Web);
    }

    #[test]
    fn refusals() {
        use HostPatternError as E;
        let table: &[(&str, E)] = &[
            ("", E::Empty),
            ("*", E::BareWildcard),
            ("*:443", E::BareWildcard),
            (
                "*.com",
                E::TopLevelWildcard {
                    suffix: "com".into(),
                },
            ),
            (
                "*.co.uk",
                E::PublicSuffix {
                    suffix: "co.uk".into(),
                },
            ),
            (
                "*.CO.UK.",
                E::PublicSuffix {
                    suffix: "co.uk".into(),
                },
            ),
            (
                "*.github.io",
                E::PublicSuffix {
                    suffix: "github.io".into(),
                },
            ),
            ("api.*.com", E::WildcardPlacement),
            ("*api.example.com", E::WildcardPlacement),
            ("**.example.com", E::WildcardPlacement),
            ("exa mple.com", E::BadChar { ch: ' ' }),
            ("under_score.com", E::BadChar { ch: '_' }),
            ("bücher.de", E::NotAscii),
            ("a..b", E::EmptyLabel),
            (".example.com", E::EmptyLabel),
            ("-a.com", E::HyphenEdge { label: "-a".into() }),
            ("1.2.3", E::NotAnAddress),
            ("1.2.3.256", E::NotAnAddress),
            ("example.com:0", E::BadPort { port: "0".into() }),
            (
                "example.com:65536",
                E::BadPort {
                    port: "65536".into(),
                },
            ),
            ("example.com:", E::BadPort { port: "".into() }),
            ("example.com:+80", E::BadPort { port: "+80".into() }),
            (":443", E::Empty),
            ("[1.2.3.4]:80", E::Brackets),
            ("[::1", E::Brackets),
            ("[::1]80", E::Brackets),
            ("::1]", E::Brackets),
            (
                "10.0.0.0/33",
                E::BadPrefix {
                    prefix: "33".into(),
                    max: 32,
                },
            ),
            (
                "10.0.0.0/",
                E::BadPrefix {
                    prefix: "".into(),
                    max: 32,
                },
            ),
            (
                "10.0.0.1/8",
                E::HostBits {
                    network: "10.0.0.0/8".into(),
                },
            ),
            (
                "fd00::1/8",
                E::HostBits {
                    network: "fd00::/8".into(),
                },
            ),
            ("example.com/8", E::NotAnAddress),
            ("::g", E::NotAnAddress),
        ];
        for (written, want) in table {
            assert_eq!(
                HostPattern::parse(written).as_ref(),
                Err(want),
                "{written:?}"
            );
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(matches!(
            HostPattern::parse(&long),
            Err(E::LabelTooLong { .. })
        ));
        let huge = vec!["a"; 130].join(".");
        assert_eq!(HostPattern::parse(&huge), Err(E::NameTooLong));
    }

    #[test]
    fn refusal_messages_say_why() {
        let msg = |s: &str| HostPattern::parse(s).unwrap_err().to_string();
        assert!(msg("*").contains("every host"));
        assert!(msg("*.com").contains("top-level domain"));
        assert!(msg("*.co.uk").contains("public suffix"));
    }

    #[test]
    fn matching() {
        // (pattern, host, port, matches)
        let table = [
            ("api.anthropic.com", "api.anthropic.com", 443, true),
            ("api.anthropic.com", "API.Anthropic.com.", 80, true),
            ("api.anthropic.com", "api.anthropic.com", 8443, false),
            ("api.anthropic.com", "x.api.anthropic.com", 443, false),
            ("api.anthropic.com:8443", "api.anthropic.com", 8443, true),
            ("api.anthropic.com:*", "api.anthropic.com", 22, true),
            ("*.github.com", "api.github.com", 443, true),
            ("*.github.com", "a.b.github.com", 443, true),
            ("*.github.com", "github.com", 443, false),
            ("*.github.com", "evilgithub.com", 443, false),
            ("*.github.com", "github.com.evil.com", 443, false),
            ("example.com", "93.184.216.34", 443, false),
            ("10.0.0.0/8", "10.200.1.1", 443, true),
            ("10.0.0.0/8", "11.0.0.1", 443, false),
            ("10.0.0.0/8", "::ffff:10.0.0.1", 443, true),
            ("10.0.0.0/8", "[::ffff:10.0.0.1]", 80, true),
            ("10.0.0.0/8", "10.0.0.1", 22, false),
            ("10.0.0.0/8:*", "10.0.0.1", 22, true),
            ("0.0.0.0/0:*", "8.8.8.8", 53, true),
            ("0.0.0.0/0:*", "example.com", 53, false),
            ("10.1.2.3", "10.1.2.3", 443, true),
            ("10.1.2.3", "::ffff:10.1.2.3", 443, true),
            ("::1", "[::1]", 443, true),
            ("[::1]:8080", "::1", 8080, true),
            ("fd00::/8", "fd12::1", 443, true),
            ("fd00::/8", "fe80::1", 443, false),
            ("fd00::/8", "10.0.0.1", 443, false),
            ("::ffff:0:0/96", "10.0.0.1", 443, true),
        ];
        for (pat, host, port, want) in table {
            assert_eq!(p(pat).matches(host, port), want, "{pat} vs {host}:{port}");
        }
    }
}
