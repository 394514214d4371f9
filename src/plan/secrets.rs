//! Which secrets a run holds back from the cage, and what the cage sees in
//! their place: decided here, from the policy and the host's facts; read
//! and swapped by `crate::secrets` and the proxy at run time.
//!
//! A secret applies only in proxy mode (the proxy is what swaps it in). A
//! secret whose source is missing is an error, unless it is optional (how
//! profiles offer one): then it is skipped. A `file:` source is hidden from
//! the view wherever a grant would show it. Inside, the secret's variable
//! holds a marker, `<secret NAME>`, in the plan; the supervisor replaces it
//! with a random placeholder of the real value's shape just before the run,
//! so the plan (`--dry-run`, `--json`, the session record) never holds the
//! value nor the placeholder.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::Host;
use crate::policy::{
    self, HostPattern, NetMode, Policy, PortSpec, Provenance, SecretSource, Sourced,
};

use super::{EnvVar, Mount};

/// Where the cage finds the merged CA bundle: in cage's own root tmpfs, so
/// nothing on the host is created for it.
pub const BUNDLE: &str = "/run/cage/ca-bundle.pem";

/// The variables that name the bundle inside: every TLS stack the agents
/// use reads one of them.
pub const BUNDLE_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CARGO_HTTP_CAINFO",
    "PIP_CERT",
];

/// The host's trust store when `SSL_CERT_FILE` does not name one: the
/// first that exists (Debian, Fedora, openSUSE, Alpine).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The secrets of a run, and how the cage comes to trust the proxy.
#[derive(Clone, Debug, Serialize)]
pub struct SecretsPlan {
    pub secrets: Vec<SecretPlan>,
    /// The merged bundle inside ([`BUNDLE`]).
    pub bundle: PathBuf,
    /// Host files whose certificates open the bundle, before the session
    /// CA: the host's trust store and any CA file the user already passes.
    pub bundle_roots: Vec<PathBuf>,
    /// What the proxy trusts upstream: `SSL_CERT_FILE` and `SSL_CERT_DIR`
    /// from cage's own environment, else the host's trust store.
    pub upstream_roots: Vec<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SecretPlan {
    pub name: String,
    pub from: SecretSource,
    /// The variables inside that hold the placeholder: the policy's
    /// `env`, and an `env:` source's own name if it would be passed.
    pub env: Vec<String>,
    pub hosts: Vec<HostPattern>,
    /// Hosts matched by `hosts` that keep an end-to-end tunnel.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<HostPattern>,
    /// Swapped in request bodies too.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub body: bool,
    /// A `json:` source's file is shown masked (see [`mask_state`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mask: bool,
    pub source: Provenance,
}

impl SecretPlan {
    /// Whether the proxy swaps this secret in for `host:port`: one of its
    /// hosts (no port means 443: secrets go over TLS only), not excluded.
    pub fn goes_to(&self, host: &str, port: u16) -> bool {
        let covers =
            |h: &HostPattern| h.matches(host, port) && (h.port != PortSpec::Web || port == 443);
        self.hosts.iter().any(covers) && !self.excluded(host, port)
    }

    /// Whether `host:port` is one of its `exclude` hosts.
    pub fn excluded(&self, host: &str, port: u16) -> bool {
        self.exclude
            .iter()
            .any(|h| h.matches(host, port) && (h.port != PortSpec::Web || port == 443))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "the secret {name} ({rule}) needs network mode proxy, which swaps it in, but the \
         network mode is {mode:?}; use --net proxy, or remove the secret"
    )]
    NeedsProxy {
        name: String,
        mode: NetMode,
        rule: Provenance,
    },
    #[error(
        "the secret {name} ({rule}) reads {from}, which does not exist; set it, or mark the \
         secret optional = true"
    )]
    Missing {
        name: String,
        from: String,
        rule: Provenance,
    },
    #[error(
        "the CA bundle that lets the cage trust cage's proxy goes at {BUNDLE}, but a grant \
         shows the host's {dir} there; remove that grant, or the secrets"
    )]
    BundleCovered { dir: PathBuf },
    #[error(
        "the secret {name} ({rule}) masks {path}, but no [[filesystem.state]] directory \
         holds it (or a kept directory shows the host's file there): the masked copy lives \
         in a state directory's session layer; mask a file of one, or remove mask = true"
    )]
    MaskOutsideState {
        name: String,
        path: PathBuf,
        rule: Provenance,
    },
    #[error(
        "no CA certificates found for the proxy's upstream connections: set SSL_CERT_FILE to \
         a PEM bundle, or install the system's (ca-certificates)"
    )]
    NoTrustStore,
}

/// The marker the plan holds for a secret's variable.
pub fn marker(name: &str) -> String {
    format!("<secret {name}>")
}

/// The secrets that apply; `None` when none does. Notes say which optional
/// ones were skipped and why.
pub fn build(
    policy: &Policy,
    host: &Host,
    mode: NetMode,
    notes: &mut Vec<String>,
) -> Result<Option<SecretsPlan>, SecretsError> {
    let mut secrets = Vec::new();
    for s in &policy.secrets {
        if let Some(plan) = build_secret(s, policy, host, mode, notes)? {
            secrets.push(plan);
        }
    }
    if secrets.is_empty() {
        return Ok(None);
    }
    let (upstream_roots, bundle_roots) = trust_roots(host)?;
    Ok(Some(SecretsPlan {
        secrets,
        bundle: PathBuf::from(BUNDLE),
        bundle_roots,
        upstream_roots,
    }))
}

/// One secret of the policy: its plan, `None` when an optional one does
/// not apply, or why a required one cannot.
fn build_secret(
    s: &Sourced<policy::SecretPolicy>,
    policy: &Policy,
    host: &Host,
    mode: NetMode,
    notes: &mut Vec<String>,
) -> Result<Option<SecretPlan>, SecretsError> {
    let Sourced {
        value: p,
        source: prov,
    } = s;
    if !exists(&p.from, host) {
        if p.optional {
            return Ok(None);
        }
        return Err(SecretsError::Missing {
            name: p.name.clone(),
            from: p.from.to_string(),
            rule: prov.clone(),
        });
    }
    if mode != NetMode::Proxy {
        if p.optional {
            // Only worth saying when the policy passes the value itself.
            let passed = p.env.iter().chain(match &p.from {
                SecretSource::Env(v) => Some(v),
                _ => None,
            });
            if p.mask || passed.into_iter().any(|v| passes(policy, v)) {
                notes.push(format!(
                    "the secret {} ({prov}) is passed as it is: holding it back needs \
                     network mode proxy",
                    p.name
                ));
            }
            return Ok(None);
        }
        return Err(SecretsError::NeedsProxy {
            name: p.name.clone(),
            mode,
            rule: prov.clone(),
        });
    }
    let mut env: Vec<String> = p.env.iter().cloned().collect();
    if let SecretSource::Env(var) = &p.from
        && !env.contains(var)
    {
        env.push(var.clone());
    }
    let mut hosts = p.hosts.clone();
    for var in &p.host_vars {
        match host.var(var).map(url_host) {
            Some(Ok(h)) if !hosts.contains(&h) => hosts.push(h),
            Some(Err(why)) => notes.push(format!(
                "the secret {} ({prov}) does not go to the host in ${var}: {why}",
                p.name
            )),
            _ => {}
        }
    }
    if hosts.is_empty() && !p.mask {
        notes.push(format!(
            "the secret {} ({prov}) has no host to go to: the cage gets its placeholder, \
             which works nowhere",
            p.name
        ));
    }
    Ok(Some(SecretPlan {
        name: p.name.clone(),
        from: p.from.clone(),
        env,
        hosts,
        exclude: p.exclude.clone(),
        body: p.body,
        mask: p.mask,
        source: prov.clone(),
    }))
}

/// What the proxy trusts upstream, and the host files that open the
/// cage's bundle.
fn trust_roots(host: &Host) -> Result<(Vec<PathBuf>, Vec<PathBuf>), SecretsError> {
    let system = SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let file_var = |name: &str| {
        host.var(name)
            .filter(|v| v.starts_with('/'))
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    };
    let mut upstream_roots: Vec<PathBuf> = file_var("SSL_CERT_FILE").into_iter().collect();
    if let Some(dir) = host
        .var("SSL_CERT_DIR")
        .filter(|v| v.starts_with('/'))
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
    {
        upstream_roots.push(dir);
    }
    if upstream_roots.is_empty() {
        upstream_roots.extend(system.clone());
    }
    if upstream_roots.is_empty() {
        return Err(SecretsError::NoTrustStore);
    }
    // The bundle keeps what each TLS stack trusted before: the user's CA
    // files, then the system's store when SSL_CERT_FILE did not replace it.
    let mut bundle_roots: Vec<PathBuf> = Vec::new();
    if file_var("SSL_CERT_FILE").is_none() {
        bundle_roots.extend(system);
    }
    for name in BUNDLE_VARS {
        if let Some(p) = file_var(name)
            && !bundle_roots.contains(&p)
        {
            bundle_roots.push(p);
        }
    }
    Ok((upstream_roots, bundle_roots))
}

/// The host and port of an `https://` URL, as a pattern for that port.
fn url_host(url: &str) -> Result<HostPattern, &'static str> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("it is not an https:// URL (secrets go over TLS only)")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("the URL holds user information");
    }
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:443")
    } else {
        authority.to_string()
    };
    HostPattern::parse(&with_port).map_err(|_| "its host is not a host name or address")
}

/// Whether the policy passes the host's variable `name` into the cage.
fn passes(policy: &Policy, name: &str) -> bool {
    policy
        .env
        .pass
        .iter()
        .any(|p| match p.value.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p.value == name,
        })
}

/// Whether a source can be read at all (a `cmd:` is run only at start).
fn exists(from: &SecretSource, host: &Host) -> bool {
    match from {
        SecretSource::Env(var) => host.var(var).is_some_and(|v| !v.is_empty()),
        SecretSource::File(path) => path.is_file(),
        SecretSource::Cmd(_) => true,
        SecretSource::Json { path, pointer } => crate::secrets::json::holds(path, pointer),
    }
}

/// Each masked file goes into the session layer of the state directory
/// that holds it, and out of that directory's copy-back: the session's copy
/// holds placeholders, and written back it would destroy the host's login.
/// A file no state directory holds, or one a kept directory shows live, is
/// refused (the host's file would be what the cage sees).
pub fn mask_state(
    state: &mut [super::StatePlan],
    plan: &SecretsPlan,
    notes: &mut Vec<String>,
) -> Result<(), SecretsError> {
    for s in plan.secrets.iter().filter(|s| s.mask) {
        let SecretSource::Json { path, .. } = &s.from else {
            continue;
        };
        let outside = || SecretsError::MaskOutsideState {
            name: s.name.clone(),
            path: path.clone(),
            rule: s.source.clone(),
        };
        let st = state
            .iter_mut()
            .find(|st| path.starts_with(&st.dir))
            .ok_or_else(outside)?;
        let rel = path
            .strip_prefix(&st.dir)
            .map_err(|_| outside())?
            .to_path_buf();
        if rel.as_os_str().is_empty() || st.live.iter().any(|d| path.starts_with(d)) {
            return Err(outside());
        }
        if st.files.contains(&rel) {
            st.files.retain(|f| *f != rel);
            notes.push(format!(
                "{} is masked for the secret {}: the session's copy is not written back to \
                 the host",
                path.display(),
                s.name
            ));
        }
        if !st.masked.contains(&rel) {
            st.masked.push(rel);
        }
    }
    Ok(())
}

/// Hide rules for `file:` sources, so no grant shows them.
pub fn hides(policy: &Policy) -> Vec<Sourced<policy::PathRule>> {
    policy
        .secrets
        .iter()
        .filter_map(|s| match &s.value.from {
            SecretSource::File(path) => Some(path),
            // Shown masked, from the state directory's session layer.
            SecretSource::Json { path, .. } if !s.value.mask => Some(path),
            _ => None,
        })
        .map(|path| {
            Sourced::new(
                policy::PathRule {
                    path: path.clone(),
                    optional: true,
                },
                Provenance::Default {
                    what: "secrets: a secret's file is never visible inside",
                },
            )
        })
        .collect()
}

/// The bundle's file in the view; its contents are written at start.
pub fn bundle_mount() -> Mount {
    Mount::File {
        dst: PathBuf::from(BUNDLE),
        contents: String::new(),
        source: Provenance::Default {
            what: "secrets: the host's CA certificates and the session CA (written at start)",
        },
    }
}

/// Whether the bundle's mount survived the view (a grant of /run drops it).
pub fn check_bundle(mounts: &[Mount]) -> Result<(), SecretsError> {
    let placed = mounts
        .iter()
        .any(|m| matches!(m, Mount::File { dst, .. } if dst == Path::new(BUNDLE)));
    if placed {
        Ok(())
    } else {
        Err(SecretsError::BundleCovered {
            dir: PathBuf::from("/run"),
        })
    }
}

/// The environment inside: each secret's variables hold its marker, and
/// every CA variable names the bundle.
pub fn apply_env(env: &mut Vec<EnvVar>, plan: &SecretsPlan) {
    let mut set = |name: &str, value: String, source: Provenance| {
        // A passed variable may hold a secret's real value: zeroed, not
        // just dropped (cage init inherits the heap).
        for v in env.iter_mut().filter(|v| v.name == name) {
            zeroize::Zeroize::zeroize(&mut v.value);
        }
        env.retain(|v| v.name != name);
        env.push(EnvVar {
            name: name.to_string(),
            value,
            source,
        });
    };
    for s in &plan.secrets {
        for var in &s.env {
            set(var, marker(&s.name), s.source.clone());
        }
    }
    for var in BUNDLE_VARS {
        set(
            var,
            plan.bundle.display().to_string(),
            Provenance::Default {
                what: "secrets: the cage trusts cage's proxy for the secrets' hosts",
            },
        );
    }
    env.sort_by(|a, b| a.name.cmp(&b.name));
}
