//! The secrets a run holds back from the cage, in the supervisor's memory.
//!
//! Just before the run, [`prepare`] reads each secret's real value on the
//! host (a variable, a file, a command's output), makes a placeholder of
//! the same length and character class from the system CSPRNG, and puts
//! the placeholder where the plan has the secret's marker. It also makes
//! the session CA and writes the bundle the cage trusts. The [`Vault`] it
//! returns lives in the supervisor only: the proxy asks it which secrets a
//! host may receive, swaps placeholders in request heads and scrubs real
//! values from responses. Values are zeroed when the vault is dropped.
//!
//! What the values never reach: the plan (it holds markers), the audit log
//! (records name the secret, never a value), the terminal (errors name the
//! secret and its source), and cage init, which is cloned from the
//! supervisor after `prepare` and so would inherit a copy of its memory:
//!
//! 1. Values live in [`sys::WipeOnFork`] mappings, which the kernel hands a
//!    cloned child zero-filled.
//! 2. Values are read into buffers allocated once at their full size (a
//!    growing buffer would leave freed copies behind) and zeroed on drop.
//! 3. An `env:` value was in cage's own environment before any of this:
//!    [`prepare`] overwrites it, wherever a variable holds it, there (the
//!    block `/proc/PID/environ` shows) and in the host facts with the
//!    placeholder, before the clone.
//! 4. A variable the policy passed with the value, replaced by the
//!    placeholder, is zeroed first.
//!
//! `tests/escape/secrets.rs` scans init's whole memory from outside for
//! the value. Init is also non-dumpable (`sandbox::init`), the second wall.

pub mod ca;
pub mod json;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::host::Host;
use crate::plan::{Mount, Plan, secrets::marker};
use crate::policy::{HostPattern, PortSpec, SecretSource};
use crate::sys;

/// The shortest value held back: shorter ones make placeholders that could
/// turn up in traffic by chance.
pub const MIN_LEN: usize = 8;
/// The longest: a header value, not a file.
pub const MAX_LEN: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading the secret {name} from {from}")]
    Read {
        name: String,
        from: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the secret {name}: {from} exited with {status}")]
    Command {
        name: String,
        from: String,
        status: std::process::ExitStatus,
    },
    #[error(
        "the secret {name} from {from} {why}; cage holds back printable ASCII values of \
         {MIN_LEN} to {MAX_LEN} characters (a token, not a file)"
    )]
    Shape {
        name: String,
        from: String,
        why: &'static str,
    },
    #[error("making a placeholder for the secret {name}: the system's random source failed")]
    Random { name: String },
    #[error("reading the CA certificates in {path}")]
    Roots {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no CA certificate the proxy can use to check upstream servers")]
    NoRoots { path: PathBuf },
    #[error("masking {path} for the cage: {why}; the run does not start with the real file")]
    Mask { path: PathBuf, why: String },
    #[error("making the session CA: {0}")]
    Ca(String),
    #[error("mapping memory for the secret {name} (mmap, madvise MADV_WIPEONFORK)")]
    Memory {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// One secret, held back.
pub struct Secret {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    /// Hosts `hosts` match where the proxy must not terminate TLS.
    pub exclude: Vec<HostPattern>,
    /// Swapped in request bodies too, not only in header values.
    pub body: bool,
    /// Never inherited by a clone; zeroed on drop.
    value: sys::WipeOnFork,
    placeholder: Vec<u8>,
}

impl Secret {
    /// A secret as `prepare` makes it (tests build their own).
    #[cfg(test)]
    pub(crate) fn new(name: &str, hosts: &[&str], value: &[u8], placeholder: &[u8]) -> Secret {
        Secret {
            name: name.to_string(),
            hosts: hosts
                .iter()
                .filter_map(|h| HostPattern::parse(h).ok())
                .collect(),
            exclude: Vec::new(),
            body: false,
            value: sealed(value).unwrap(),
            placeholder: placeholder.to_vec(),
        }
    }

    /// The real value: for the proxy's swap and scan only.
    pub(crate) fn value(&self) -> &[u8] {
        self.value.as_slice()
    }

    pub fn placeholder(&self) -> &[u8] {
        &self.placeholder
    }

    /// Whether the secret may go to `host:port`. A pattern without a port
    /// means 443 here: secrets go over TLS only. An excluded host never:
    /// its connections stay tunnels the proxy cannot look into.
    pub fn allowed_for(&self, host: &str, port: u16) -> bool {
        let matching =
            |h: &HostPattern| h.matches(host, port) && (h.port != PortSpec::Web || port == 443);
        self.hosts.iter().any(matching) && !self.exclude.iter().any(matching)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// Every secret of the run, the session CA, and the upstream trust.
pub struct Vault {
    pub secrets: Vec<Secret>,
    pub ca: ca::SessionCa,
    pub upstream: Arc<rustls::ClientConfig>,
}

impl Vault {
    /// Whether the proxy terminates TLS for `host:port`: some secret may go
    /// there.
    pub fn terminates(&self, host: &str, port: u16) -> bool {
        self.secrets.iter().any(|s| s.allowed_for(host, port))
    }
}

/// Reads the plan's secrets, puts placeholders in the environment, makes
/// the session CA and writes the bundle into the view. `None` when the plan
/// holds no secret. Before the clone, single-threaded: it rewrites cage's
/// own environment block (3 above).
pub fn prepare(plan: &mut Plan, host: &mut Host) -> Result<Option<Arc<Vault>>, SecretError> {
    let Some(sp) = plan.secrets.clone() else {
        return Ok(None);
    };
    let mut secrets = Vec::new();
    for s in &sp.secrets {
        let value = read(&s.name, &s.from, host)?;
        let placeholder = placeholder(&value).ok_or_else(|| SecretError::Random {
            name: s.name.clone(),
        })?;
        let value = sealed(&value).map_err(|source| SecretError::Memory {
            name: s.name.clone(),
            source,
        })?;
        // Wherever cage's own environment holds the value (its source,
        // another variable): the placeholder, before the clone copies it.
        let shown = String::from_utf8_lossy(&placeholder);
        host.scrub_value(&String::from_utf8_lossy(value.as_slice()), &shown);
        // SAFETY: cage is single-threaded until the clone (the proxy's
        // threads start after it), and nothing borrows the C environment.
        unsafe { sys::overwrite_in_env(value.as_slice(), &placeholder) };
        secrets.push(Secret {
            name: s.name.clone(),
            hosts: s.hosts.clone(),
            exclude: s.exclude.clone(),
            body: s.body,
            value,
            placeholder,
        });
    }
    place_placeholders(plan, &secrets);
    write_masked(plan, &sp.secrets, &secrets)?;
    let session_ca = ca::SessionCa::new().map_err(SecretError::Ca)?;
    write_bundle(plan, &sp.bundle, &sp.bundle_roots, session_ca.pem())?;
    let upstream = ca::client_config(&sp.upstream_roots)?;
    Ok(Some(Arc::new(Vault {
        secrets,
        ca: session_ca,
        upstream,
    })))
}

/// A value's copy in memory a clone never inherits.
fn sealed(value: &[u8]) -> std::io::Result<sys::WipeOnFork> {
    let mut map = sys::WipeOnFork::new(value.len())?;
    map.as_mut_slice().copy_from_slice(value);
    Ok(map)
}

/// Each secret's marker becomes its placeholder; wherever else the value
/// would reach the cage (a variable passed under another name, a fixed
/// value that repeats it), the placeholder stands in too, and the old
/// text is zeroed before it is dropped.
fn place_placeholders(plan: &mut Plan, secrets: &[Secret]) {
    use zeroize::Zeroize;
    for var in &mut plan.env {
        for s in secrets {
            let placeholder = String::from_utf8_lossy(&s.placeholder);
            if var.value == marker(&s.name) {
                var.value = placeholder.into_owned();
                continue;
            }
            let real = String::from_utf8_lossy(s.value());
            if var.value.contains(real.as_ref()) {
                let mut old = std::mem::take(&mut var.value);
                var.value = old.replace(real.as_ref(), &placeholder);
                old.zeroize();
            }
        }
    }
}

/// Each masked file's copy in its state directory's session layer: the
/// host's bytes, every masked secret's value overwritten by its
/// placeholder. Before the clone; refused (the run does not start) when a
/// value cannot be masked.
fn write_masked(
    plan: &Plan,
    specs: &[crate::plan::SecretPlan],
    secrets: &[Secret],
) -> Result<(), SecretError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for st in &plan.state {
        for rel in &st.masked {
            let shown = st.dir.join(rel);
            let fail = |why: String| SecretError::Mask {
                path: shown.clone(),
                why,
            };
            let mut raw =
                json::load(&st.lower.join(rel)).map_err(|e| fail(format!("reading it: {e}")))?;
            for (spec, secret) in specs.iter().zip(secrets) {
                match &spec.from {
                    SecretSource::Json { path, pointer } if spec.mask && *path == shown => {
                        json::mask(&mut raw, pointer, secret.value(), &secret.placeholder)
                            .map_err(|why| fail(format!("{pointer} ({}): {why}", spec.name)))?;
                    }
                    _ => {}
                }
            }
            let copy = st.upper.join(rel);
            if let Some(parent) = copy.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| fail(format!("creating {}: {e}", parent.display())))?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&copy)
                .and_then(|mut f| f.write_all(&raw))
                .map_err(|e| fail(format!("writing {}: {e}", copy.display())))?;
        }
    }
    Ok(())
}

/// The bundle's text: the roots, then the session CA.
fn write_bundle(
    plan: &mut Plan,
    at: &Path,
    roots: &[PathBuf],
    ca_pem: &str,
) -> Result<(), SecretError> {
    let mut bundle = String::new();
    for path in roots {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Roots {
            path: path.clone(),
            source,
        })?;
        bundle.push_str(&text);
        if !bundle.ends_with('\n') {
            bundle.push('\n');
        }
    }
    bundle.push_str("# cage: this session's CA, for the hosts of its secrets\n");
    bundle.push_str(ca_pem);
    for m in &mut plan.mounts {
        if let Mount::File { dst, contents, .. } = m
            && *dst == at
        {
            *contents = bundle.clone();
        }
    }
    Ok(())
}

/// The real value, one trailing newline (and CR) removed, checked for a
/// shape that can travel in a header.
fn read(name: &str, from: &SecretSource, host: &Host) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let shown = from.to_string();
    let fail = |source| SecretError::Read {
        name: name.to_string(),
        from: shown.clone(),
        source,
    };
    // Its full size at once: a buffer that grew would leave freed,
    // unzeroed copies of its first bytes on the heap.
    let mut value = Zeroizing::new(Vec::with_capacity(MAX_LEN + 16));
    match from {
        SecretSource::Env(var) => {
            value.extend_from_slice(host.var(var).unwrap_or_default().as_bytes());
        }
        SecretSource::File(path) => {
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_LEN as u64 + 2).read_to_end(&mut value))
                .map_err(fail)?;
        }
        SecretSource::Json { path, pointer } => {
            let raw = json::load(path).map_err(fail)?;
            let found = json::find(&raw, pointer)
                .ok_or_else(|| fail(std::io::Error::from_raw_os_error(libc::ENOENT)))?;
            value.extend_from_slice(&found);
        }
        SecretSource::Cmd(argv) => {
            let mut child = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(fail)?;
            if let Some(out) = child.stdout.take() {
                out.take(MAX_LEN as u64 + 2)
                    .read_to_end(&mut value)
                    .map_err(fail)?;
            }
            let status = child.wait().map_err(fail)?;
            if !status.success() {
                return Err(SecretError::Command {
                    name: name.to_string(),
                    from: shown,
                    status,
                });
            }
        }
    }
    if value.last() == Some(&b'\n') {
        value.pop();
        if value.last() == Some(&b'\r') {
            value.pop();
        }
    }
    let shape = |why| SecretError::Shape {
        name: name.to_string(),
        from: shown.clone(),
        why,
    };
    if value.len() < MIN_LEN {
        return Err(shape("is too short"));
    }
    if value.len() > MAX_LEN {
        return Err(shape("is too long"));
    }
    if !value.iter().all(|b| b.is_ascii_graphic()) {
        return Err(shape("holds spaces, control characters or non-ASCII bytes"));
    }
    Ok(value)
}

/// How far a value's type prefix may reach (`sk-ant-oat01-` is 13).
const PREFIX: usize = 16;

/// A random stand-in of the value's length and character classes: each
/// letter becomes a random letter of the same case, each digit a random
/// digit; punctuation stays where it is, and so does a short type prefix
/// (`sk-ant-api03-`, `sk-ant-oat01-`, `ghp_`, `github_pat_`: everything up
/// to the last `-` or `_` in the first [`PREFIX`] characters), which
/// clients check and which is public. Never equal to the value. `None` if
/// the system's CSPRNG fails.
pub fn placeholder(value: &[u8]) -> Option<Vec<u8>> {
    use ring::rand::SystemRandom;
    let rng = SystemRandom::new();
    let prefix = value
        .iter()
        .take(PREFIX)
        .rposition(|&b| b == b'-' || b == b'_')
        .map_or(0, |i| i + 1);
    loop {
        let mut out = value[..prefix].to_vec();
        for &b in &value[prefix..] {
            let class: &[u8] = if b.is_ascii_lowercase() {
                b"abcdefghijklmnopqrstuvwxyz"
            } else if b.is_ascii_uppercase() {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            } else if b.is_ascii_digit() {
                b"0123456789"
            } else {
                out.push(b);
                continue;
            };
            out.push(pick(&rng, class)?);
        }
        if out != value {
            return Some(out);
        }
    }
}

/// A uniform choice from `class` (rejection sampling: no modulo bias).
fn pick(rng: &dyn ring::rand::SecureRandom, class: &[u8]) -> Option<u8> {
    let n = class.len();
    let limit = 256 - 256 % n;
    loop {
        let mut b = [0u8; 1];
        rng.fill(&mut b).ok()?;
        if (b[0] as usize) < limit {
            return Some(class[b[0] as usize % n]);
        }
    }
}

/// Certificates in a PEM file, or in every file of a directory.
pub(crate) fn pem_certs(
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, SecretError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let fail = |source| SecretError::Roots {
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(fail)?.flatten() {
            if entry.path().is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).map_err(fail)?;
        // Files in a certificate directory that are not PEM are skipped.
        out.extend(CertificateDer::pem_slice_iter(&bytes).flatten());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_gets_the_value_zeroed() {
        use nix::sys::wait::WaitStatus;
        let s = Secret::new("a", &[], b"sk-REALVALUEaaaa", b"sk-PLACEHOLDaaaa");
        // A fork copies memory as cage init's clone does.
        let status = crate::sys::probe_in_child(|| {
            i32::from(!s.value().iter().all(|&b| b == 0) || s.value().len() != 16)
        })
        .unwrap();
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
        assert_eq!(s.value(), b"sk-REALVALUEaaaa");
    }

    #[test]
    fn placeholders_keep_length_class_and_prefix() {
        let real = b"sk-ant-api03-AbCdEf0123456789xyz-_QQ";
        let p = placeholder(real).unwrap();
        assert_eq!(p.len(), real.len());
        assert_ne!(&p[..], &real[..]);
        assert!(p.starts_with(b"sk-ant-"));
        for (a, b) in real.iter().zip(&p) {
            assert_eq!(a.is_ascii_lowercase(), b.is_ascii_lowercase());
            assert_eq!(a.is_ascii_uppercase(), b.is_ascii_uppercase());
            assert_eq!(a.is_ascii_digit(), b.is_ascii_digit());
            if !a.is_ascii_alphanumeric() {
                assert_eq!(a, b);
            }
        }
        // Two placeholders of one value differ (a CSPRNG, not a hash).
        assert_ne!(placeholder(real).unwrap(), p);
        assert!(
            placeholder(b"ghp_0123456789abcdef")
                .unwrap()
                .starts_with(b"ghp_")
        );
    }
}
