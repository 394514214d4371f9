//! TEMPORARY stand-in for the policy loader (replaced by the policy branch).

use std::path::{Path, PathBuf};

use super::*;
use crate::host::Host;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy stub")]
    Stub,
}
#[derive(Default)]
pub enum ProjectMode {
    #[default]
    Discover,
    Skip,
}
#[derive(Default)]
pub struct FlagRules {
    pub ro: Vec<String>,
    pub rw: Vec<String>,
    pub hide: Vec<String>,
    pub allow_host: Vec<String>,
    pub net: Option<NetMode>,
    pub env: Vec<String>,
    pub workspace: Option<WorkspaceMode>,
    pub allow_degraded: Vec<Layer>,
}
#[derive(Default)]
pub struct LoadRequest {
    pub profiles: Vec<String>,
    pub policy_files: Vec<PathBuf>,
    pub project: ProjectMode,
    pub flags: FlagRules,
}
pub struct TrustReport {
    pub widening: Vec<String>,
}
pub fn load(req: &LoadRequest, host: &Host) -> Result<Policy, PolicyError> {
    let d = || Provenance::Default { what: "stub" };
    let pr = |p: &str, o: bool| {
        Sourced::new(
            PathRule {
                path: host.expand_tilde(p),
                optional: o,
            },
            d(),
        )
    };
    let mut p = Policy::default();
    p.filesystem.read = ["/usr", "/etc", "/bin", "/sbin", "/lib"]
        .iter()
        .map(|s| pr(s, false))
        .chain(["/lib64", "/lib32", "/opt"].iter().map(|s| pr(s, true)))
        .collect();
    p.filesystem.tmpfs = vec![pr("/tmp", false)];
    p.filesystem.hide = vec![pr("~/.ssh", true), pr("~/.aws", true)];
    p.env.pass = ["TERM", "LANG", "LC_*"]
        .iter()
        .map(|s| Sourced::new(s.to_string(), d()))
        .collect();
    for r in &req.flags.ro {
        p.filesystem.read.push(Sourced::new(
            PathRule {
                path: host.cwd.join(host.expand_tilde(r)),
                optional: false,
            },
            Provenance::flag("--ro"),
        ));
    }
    for r in &req.flags.rw {
        p.filesystem.write.push(Sourced::new(
            PathRule {
                path: host.cwd.join(host.expand_tilde(r)),
                optional: false,
            },
            Provenance::flag("--rw"),
        ));
    }
    for h in &req.flags.allow_host {
        if let Some(pattern) = parse_host_flag(h) {
            p.network
                .allow
                .push(Sourced::new(pattern, Provenance::flag("--allow-host")));
        }
    }
    if let Some(n) = req.flags.net {
        p.network.mode = Some(Sourced::new(n, Provenance::flag("--net")));
    }
    if let Some(w) = req.flags.workspace {
        p.workspace.mode = Some(Sourced::new(w, Provenance::flag("--workspace")));
    }
    Ok(p)
}
pub fn find_project_file(_host: &Host) -> Option<PathBuf> {
    None
}
pub fn check_file(_p: &Path, _h: &Host) -> Result<(), PolicyError> {
    Err(PolicyError::Stub)
}
pub fn starter_policy(_p: Option<&str>) -> String {
    String::new()
}
pub fn trust(_p: &Path, _h: &Host) -> Result<TrustReport, PolicyError> {
    Err(PolicyError::Stub)
}
pub fn untrust(_p: &Path, _h: &Host) -> Result<bool, PolicyError> {
    Err(PolicyError::Stub)
}

/// Stand-in for the policy branch's `HostPattern::parse`, so the proxy can
/// be driven from flags until it lands: `NAME`, `*.SUFFIX`, `IP`, `[IPv6]`,
/// `IP/LEN`, each with an optional `:PORT` or `:*`.
fn parse_host_flag(s: &str) -> Option<HostPattern> {
    use std::net::IpAddr;
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':')?;
        (h, Some(p))
    } else {
        (s, None)
    };
    let port = match port {
        None => PortSpec::Web,
        Some("*") => PortSpec::Any,
        Some(p) => PortSpec::Port(p.parse().ok().filter(|p| *p > 0)?),
    };
    let host = if let Some((ip, len)) = host.split_once('/') {
        HostSpec::Cidr(ip.parse::<IpAddr>().ok()?, len.parse().ok()?)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        HostSpec::Ip(ip)
    } else if let Some(suffix) = host.strip_prefix("*.") {
        HostSpec::Suffix(suffix.to_ascii_lowercase())
    } else {
        HostSpec::Name(host.trim_end_matches('.').to_ascii_lowercase())
    };
    Some(HostPattern { host, port })
}
