//! `explain`: is a path or host allowed inside the cage, and which rule
//! decides. Reads the plan (and the policy's hide rules, which the plan
//! only mounts where a grant would otherwise show them).

use std::path::{Path, PathBuf};

use crate::policy::{NetMode, Policy};

use super::{Access, Mount, Plan};

/// A verdict and the reasons, one per line, for people.
#[derive(Debug)]
pub struct Explanation {
    pub allowed: bool,
    pub lines: Vec<String>,
}

/// Explains a path, given as the user typed it, already made absolute.
pub fn explain_path(plan: &Plan, policy: &Policy, path: &Path) -> Explanation {
    let literal = super::build::normalize(path);
    let real = crate::host::canonical(&literal).unwrap_or_else(|_| literal.clone());
    let mut lines = Vec::new();
    if real != literal {
        lines.push(format!(
            "{} resolves to {}",
            literal.display(),
            real.display()
        ));
    }
    let cover = super::deepest_cover(&plan.mounts, &real);
    let hide_rule = policy.filesystem.hide.iter().find(|h| {
        real.starts_with(crate::host::canonical(&h.value.path).unwrap_or(h.value.path.clone()))
    });
    let protected = plan
        .workspace
        .protected
        .iter()
        .find(|p| real.starts_with(&p.path));
    let (allowed, line) = describe_cover(plan, cover, protected);
    lines.push(line);
    if let Some(h) = hide_rule
        && !matches!(cover, Some(Mount::Hide { .. }))
    {
        lines.push(format!(
            "also on the hide list ({}): hidden even if a broader rule grants it",
            h.source
        ));
    }
    Explanation { allowed, lines }
}

/// Whether the mount that covers a path shows it, and why, in words.
fn describe_cover(
    plan: &Plan,
    cover: Option<&Mount>,
    protected: Option<&super::Protected>,
) -> (bool, String) {
    let Some(cover) = cover else {
        return (false, "not visible: no rule grants it".to_string());
    };
    let line = match cover {
        Mount::Pin { dst, source } => format!(
            "visible and writable: inside the workspace; {} cannot be renamed or removed \
             because it holds protected paths ({source})",
            dst.display()
        ),
        Mount::Hide { dst, source, .. } => {
            let line = format!(
                "hidden: {} is covered by an empty mount ({source})",
                dst.display()
            );
            return (false, line);
        }
        Mount::Bind {
            access,
            source,
            dst,
            ..
        } => match protected {
            Some(p) => format!(
                "visible read-only: {} is a protected path ({}, {})",
                p.path.display(),
                p.name,
                p.source
            ),
            None => {
                let how = match access {
                    Access::ReadOnly => "visible read-only",
                    Access::ReadWrite => "visible and writable",
                };
                format!("{how}: granted by {source} (bind of {})", dst.display())
            }
        },
        Mount::Overlay {
            dst, upper, source, ..
        } if plan.state.iter().any(|s| &s.dir == dst) => format!(
            "visible; an agent state directory ({source}): changes stay in the session's \
             layer ({}) and never reach the host; only its keep paths write through",
            upper.display()
        ),
        Mount::Overlay {
            dst, upper, source, ..
        } => format!(
            "visible; writes land in the session's overlay ({}), not on the host, until \
             `cage apply` ({source}; overlay of {})",
            upper.display(),
            dst.display()
        ),
        Mount::Tmpfs { dst, source, .. } => {
            let line = format!(
                "not visible: {} is a fresh, empty tmpfs inside the cage ({source}); the host's \
                 files there are not shown",
                dst.display()
            );
            return (false, line);
        }
        Mount::Proc { .. } | Mount::Dev { .. } => {
            "the cage's own /proc or /dev, not the host's".to_string()
        }
        Mount::Symlink {
            target,
            dst,
            source,
        } => format!(
            "{} is a link to {} ({source})",
            dst.display(),
            target.display()
        ),
        Mount::File { dst, source, .. } => format!(
            "{} is a read-only file cage writes for the cage ({source}); the host's file is \
             not shown",
            dst.display()
        ),
        Mount::Copy { dst, source, .. } => format!(
            "visible as a private copy: {} shows the host's content, and the agent's \
             writes stay in the cage ({source})",
            dst.display()
        ),
        Mount::Dir { .. } => return (false, "not visible: no rule grants it".to_string()),
    };
    (true, line)
}

/// Explains a host and port.
pub fn explain_host(plan: &Plan, host: &str, port: u16) -> Explanation {
    let net = &plan.network;
    let mut lines = Vec::new();
    let allowed = match net.mode {
        NetMode::None => {
            lines.push(format!(
                "denied: network mode is none ({}); the cage has only its own loopback",
                net.source
            ));
            false
        }
        NetMode::Host => {
            lines.push(format!(
                "allowed: network mode is host ({}); the cage shares the host's network",
                net.source
            ));
            true
        }
        NetMode::Proxy => {
            for line in secret_lines(plan, host, port) {
                lines.push(line);
            }
            if let Some(d) = net.deny.iter().find(|r| r.pattern.matches(host, port)) {
                lines.push(format!("denied by {} ({})", d.pattern, d.source));
                false
            } else if let Some(a) = net.allow.iter().find(|r| r.pattern.matches(host, port)) {
                lines.push(format!("allowed by {} ({})", a.pattern, a.source));
                if matches!(
                    a.pattern.host,
                    crate::policy::HostSpec::Name(_) | crate::policy::HostSpec::Suffix(_)
                ) {
                    lines.push(
                        "the proxy resolves the name itself and still refuses loopback, private, \
                         link-local and cloud-metadata addresses unless an IP or CIDR rule names \
                         them"
                            .to_string(),
                    );
                }
                true
            } else {
                lines.push(format!(
                    "denied: no allow rule matches {host}:{port}; allow it with --allow-host \
                     {host} or in .cage.toml [network] allow"
                ));
                false
            }
        }
    };
    Explanation { allowed, lines }
}

/// Which secrets may go to `host:port`, and where each other one may.
fn secret_lines(plan: &Plan, host: &str, port: u16) -> Vec<String> {
    let Some(sp) = &plan.secrets else {
        return Vec::new();
    };
    let terminated = sp.secrets.iter().any(|s| s.goes_to(host, port));
    let mut lines = Vec::new();
    for s in &sp.secrets {
        let hosts: Vec<String> = s.hosts.iter().map(|h| h.to_string()).collect();
        if s.goes_to(host, port) {
            lines.push(format!(
                "secret {}: swapped in here over HTTPS (the proxy terminates TLS for this host), \
                 in header values{} ({})",
                s.name,
                if s.body { " and request bodies" } else { "" },
                s.source
            ));
        } else if s.excluded(host, port) {
            lines.push(format!(
                "secret {}: excluded here: this host stays an end-to-end tunnel (for clients \
                 that pin certificates) and gets the placeholder, never the secret ({})",
                s.name, s.source
            ));
        } else {
            let here = if terminated {
                "a request here carrying its placeholder is refused"
            } else {
                "this host stays an end-to-end tunnel, where the placeholder is worthless"
            };
            lines.push(format!(
                "secret {}: never sent here ({here}); it goes only to {} ({})",
                s.name,
                hosts.join(", "),
                s.source
            ));
        }
    }
    lines
}

/// Splits `HOST[:PORT]` (`[v6]:PORT` for IPv6); no port means 443.
pub fn parse_host_port(target: &str) -> Option<(String, u16)> {
    if let Some(rest) = target.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => 443,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match target.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_string(), p.parse().ok()?)),
        _ => Some((target.to_string(), 443)),
    }
}

/// Whether an explain target names a path rather than a host: it looks
/// like one, or a file of that name exists in the working directory.
pub fn is_path(target: &str, cwd: &Path) -> bool {
    target.starts_with('/')
        || target.starts_with('~')
        || target.starts_with('.')
        || target.contains('/')
        || cwd.join(target).symlink_metadata().is_ok()
}

/// For callers: an absolute version of a path target.
pub fn absolute(target: &str, home: &Path, cwd: &Path) -> PathBuf {
    if target == "~" {
        home.to_path_buf()
    } else if let Some(rest) = target.strip_prefix("~/") {
        home.join(rest)
    } else {
        cwd.join(target)
    }
}
