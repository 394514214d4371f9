//! Trust for project policy files: what a file widens, and the pins that
//! let it.
//!
//! A `.cage.toml` comes with the repository, so whoever wrote the
//! repository wrote it. Untrusted, it may only narrow what the sources
//! below it allow. To widen, the user runs `cage trust`, which pins the
//! file's sha256; any change to the bytes makes it untrusted again.
//!
//! The pins live in `CONFIG_DIR/trusted.json` (`~/.config/cage/`):
//!
//! ```json
//! {
//!   "version": 1,
//!   "files": {
//!     "/home/me/src/app/.cage.toml": { "sha256": "9f86d08..." }
//!   }
//! }
//! ```
//!
//! Keys are canonical paths (symlinks resolved). The store is rewritten
//! whole, through a temporary file and `rename`, so a crash never leaves a
//! half-written store; the directory is created with mode 0700 and the file
//! with 0600. Two `cage trust` runs at the same moment may lose one pin
//! (the last rename wins); they never corrupt the store.
//!
//! Widening is decided lexically, before the plan resolves symlinks:
//! `Policy::project` tells the plan which rules came from an untrusted
//! file, so it can check that their real paths stay inside the root too.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::PolicyError;
use super::load::{self, Loader};
use super::parse::{Fragment, Origin};
use super::{Layer, NetMode, PathRule, Policy, Provenance, Sourced, WorkspaceMode};
use crate::host::Host;

/// One rule of a project file that allows more than the sources below it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Widening {
    /// The file and line.
    pub source: Provenance,
    /// What it widens, in words.
    pub what: String,
}

impl fmt::Display for Widening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.what)
    }
}

/// What `cage trust` pinned.
#[derive(Clone, Debug, Serialize)]
pub struct TrustReport {
    /// The canonical path, as pinned.
    pub path: PathBuf,
    pub sha256: String,
    /// What the file widens compared with the built-in `base` and the
    /// user's `config.toml` (the sources below it on every run; `-p`
    /// profiles may make some of these no-ops).
    pub widenings: Vec<Widening>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrustState {
    /// Pinned, and the bytes match.
    Trusted,
    /// Never pinned.
    Unknown,
    /// Pinned with other bytes: edited since it was trusted.
    Changed,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Store {
    version: u64,
    files: BTreeMap<String, Pin>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pin {
    sha256: String,
}

/// Where the pins live.
pub fn store_path(host: &Host) -> PathBuf {
    host.config_dir.join("trusted.json")
}

/// Pins the file's current bytes, after checking that it parses, and
/// reports what it widens so the CLI can show what the user allowed.
pub fn trust(path: &Path, host: &Host) -> Result<TrustReport, PolicyError> {
    let canonical = canonical(path)?;
    let bytes = load::read(&canonical)?;
    let sha256 = load::sha256_hex(&bytes);
    let widenings = widenings_over_baseline(&canonical, &bytes, host)?;
    let key = store_key(&canonical)?;
    let mut store = read_store(host)?;
    store.files.insert(
        key,
        Pin {
            sha256: sha256.clone(),
        },
    );
    write_store(host, &store)?;
    Ok(TrustReport {
        path: canonical,
        sha256,
        widenings,
    })
}

/// Removes a pin; `Ok(false)` when there was none. Works for a file that
/// no longer exists (then the path is only made absolute, not resolved).
pub fn untrust(path: &Path, host: &Host) -> Result<bool, PolicyError> {
    let key_path = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(_) => super::parse::normalise(&host.cwd.join(path)),
    };
    let key = store_key(&key_path)?;
    let mut store = read_store(host)?;
    if store.files.remove(&key).is_none() {
        return Ok(false);
    }
    write_store(host, &store)?;
    Ok(true)
}

/// Whether the file is pinned with exactly its current bytes.
pub fn is_trusted(path: &Path, host: &Host) -> Result<bool, PolicyError> {
    let canonical = canonical(path)?;
    let bytes = load::read(&canonical)?;
    Ok(state(&canonical, &load::sha256_hex(&bytes), host)? == TrustState::Trusted)
}

pub(crate) fn state(
    canonical: &Path,
    sha256: &str,
    host: &Host,
) -> Result<TrustState, PolicyError> {
    let store = read_store(host)?;
    let Some(key) = canonical.to_str() else {
        return Ok(TrustState::Unknown);
    };
    Ok(match store.files.get(key) {
        Some(pin) if pin.sha256 == sha256 => TrustState::Trusted,
        Some(_) => TrustState::Changed,
        None => TrustState::Unknown,
    })
}

fn canonical(path: &Path) -> Result<PathBuf, PolicyError> {
    fs::canonicalize(path).map_err(|source| PolicyError::Canonicalize {
        path: path.to_path_buf(),
        source,
    })
}

fn store_key(path: &Path) -> Result<String, PolicyError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| PolicyError::NonUtf8Path {
            path: path.to_path_buf(),
        })
}

/// The widenings of a file against what every run puts below it.
fn widenings_over_baseline(
    path: &Path,
    bytes: &[u8],
    host: &Host,
) -> Result<Vec<Widening>, PolicyError> {
    let mut baseline = Loader::new(host);
    baseline.apply_base()?;
    baseline.apply_user_config()?;
    let fragment = baseline.parse(&Origin::File(path.to_path_buf()), bytes)?;
    // Check the extends resolve (on a scratch loader) so a broken file is
    // refused rather than pinned.
    Loader::new(host).apply_extends(&fragment)?;
    let root = load::project_root(path, host);
    Ok(widenings(
        &baseline.policy,
        &baseline.applied,
        &fragment,
        &root,
    ))
}

fn read_store(host: &Host) -> Result<Store, PolicyError> {
    let path = store_path(host);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Store {
                version: 1,
                files: BTreeMap::new(),
            });
        }
        Err(source) => return Err(PolicyError::TrustStoreRead { path, source }),
    };
    let store: Store =
        serde_json::from_slice(&bytes).map_err(|source| PolicyError::TrustStoreParse {
            path: path.clone(),
            source,
        })?;
    if store.version != 1 {
        return Err(PolicyError::TrustStoreVersion {
            path,
            found: store.version,
        });
    }
    Ok(store)
}

fn write_store(host: &Host, store: &Store) -> Result<(), PolicyError> {
    let path = store_path(host);
    let fail = |source| PolicyError::TrustStoreWrite {
        path: path.clone(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&host.config_dir)
        .map_err(fail)?;
    let mut json = serde_json::to_vec_pretty(store).map_err(|e| fail(io::Error::other(e)))?;
    json.push(b'\n');
    let tmp = host
        .config_dir
        .join(format!(".trusted.json.{}.tmp", std::process::id()));
    // A stale temporary from a crashed run with the same pid.
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        // The rename is durable once the directory is.
        fs::File::open(&host.config_dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(fail)
}

/// Every rule of `project` that allows more than `lower` (the merged
/// sources below it, with `applied` profiles). An entry that repeats one
/// already in `lower` changes nothing and is not listed. `root` is the
/// project root, already normalised.
pub(crate) fn widenings(
    lower: &Policy,
    applied: &[String],
    project: &Fragment,
    root: &Path,
) -> Vec<Widening> {
    let mut out = Vec::new();
    let mut add = |source: &Provenance, what: String| {
        out.push(Widening {
            source: source.clone(),
            what,
        })
    };
    let rules = &project.rules;
    let inside = |p: &Path| p.starts_with(root);
    let root_shown = root.display();

    for e in &project.extends {
        if !applied.contains(&e.name) {
            add(
                &e.source,
                format!("extends \"{}\", a profile not already in use", e.name),
            );
        }
    }

    if let Some(path) = &rules.workspace.path {
        if !inside(&path.value) {
            add(
                &path.source,
                format!(
                    "workspace.path {} is outside the project root {root_shown}",
                    path.value.display()
                ),
            );
        }
    }
    let lower_mode = lower
        .workspace
        .mode
        .as_ref()
        .map_or(WorkspaceMode::Readonly, |m| m.value);
    if let Some(mode) = &rules.workspace.mode {
        if mode.value > lower_mode {
            add(
                &mode.source,
                format!(
                    "workspace.mode \"{}\" is less strict than \"{}\" below it",
                    workspace_mode_name(mode.value),
                    workspace_mode_name(lower_mode)
                ),
            );
        }
    }

    let has = |list: &[Sourced<PathRule>], p: &Path| list.iter().any(|r| r.value.path == p);
    // A copy shows the host's content, as a read does.
    for (key, list) in [
        ("read", &rules.filesystem.read),
        ("copy", &rules.filesystem.copy),
    ] {
        for r in list {
            let p = &r.value.path;
            if !inside(p)
                && !has(&lower.filesystem.read, p)
                && !has(&lower.filesystem.write, p)
                && !has(&lower.filesystem.copy, p)
            {
                add(
                    &r.source,
                    format!(
                        "filesystem.{key} {} is outside the project root {root_shown}",
                        p.display()
                    ),
                );
            }
        }
    }
    for r in &rules.filesystem.write {
        let p = &r.value.path;
        if has(&lower.filesystem.write, p) {
            continue;
        }
        if !inside(p) {
            add(
                &r.source,
                format!(
                    "filesystem.write {} is outside the project root {root_shown}",
                    p.display()
                ),
            );
        } else if lower_mode != WorkspaceMode::Direct {
            // Writes inside the root only narrow when the workspace is
            // already writable; under overlay or readonly they would let
            // the agent change the real files.
            add(
                &r.source,
                format!(
                    "filesystem.write {} makes workspace files writable, but the workspace \
                     mode below it is \"{}\"",
                    p.display(),
                    workspace_mode_name(lower_mode)
                ),
            );
        }
    }

    // A state entry creates a directory on the host and writes through to
    // it: never from an untrusted project file.
    for st in &rules.filesystem.state {
        if !lower.filesystem.state.iter().any(|x| x.value == st.value) {
            add(
                &st.source,
                format!(
                    "filesystem.state {} creates and writes through to a directory outside \
                     the workspace",
                    st.value.dir.display()
                ),
            );
        }
    }

    let lower_net = lower
        .network
        .mode
        .as_ref()
        .map_or(NetMode::None, |m| m.value);
    if let Some(mode) = &rules.network.mode {
        if mode.value > lower_net {
            add(
                &mode.source,
                format!(
                    "network.mode \"{}\" opens more than \"{}\" below it",
                    net_mode_name(mode.value),
                    net_mode_name(lower_net)
                ),
            );
        }
    }
    for a in &rules.network.allow {
        if !lower.network.allow.iter().any(|x| x.value == a.value) {
            add(
                &a.source,
                format!("network.allow \"{}\" allows a host", a.value),
            );
        }
    }

    for p in &rules.env.pass {
        if !lower.env.pass.iter().any(|x| x.value == p.value) {
            add(
                &p.source,
                format!(
                    "env.pass \"{}\" passes host environment variables into the cage",
                    p.value
                ),
            );
        }
    }

    // A secret's value is read on the host (a `cmd:` runs there) and sent
    // to its hosts: an untrusted file may drop hosts from a secret below
    // it, never add a secret or a host.
    for sec in &rules.secrets {
        let s = &sec.value;
        let below = lower.secrets.iter().find(|x| x.value.name == s.name);
        let narrows = below.is_some_and(|b| {
            b.value.from == s.from
                && b.value.env == s.env
                && s.hosts.iter().all(|h| b.value.hosts.contains(h))
                && s.host_vars.iter().all(|h| b.value.host_vars.contains(h))
        });
        if !narrows {
            add(
                &sec.source,
                format!(
                    "secrets.{} reads a secret on the host ({}) or sends one to a host not \
                     already allowed for it",
                    s.name, s.from
                ),
            );
        }
    }

    let l = &rules.limits;
    let b = &lower.limits;
    for (key, mine, below) in [
        ("nofile", &l.nofile, &b.nofile),
        ("nproc", &l.nproc, &b.nproc),
        ("fsize", &l.fsize, &b.fsize),
        ("memory", &l.memory, &b.memory),
        ("pids", &l.pids, &b.pids),
        ("cpu", &l.cpu, &b.cpu),
    ] {
        let Some(mine) = mine else { continue };
        match below {
            Some(below) if mine.value <= below.value => {}
            Some(below) => add(
                &mine.source,
                format!(
                    "limits.{key} = {} raises the limit of {} below it",
                    mine.value, below.value
                ),
            ),
            None => add(
                &mine.source,
                format!(
                    "limits.{key} = {} sets a limit no source below it sets, \
                     which could raise cage's default",
                    mine.value
                ),
            ),
        }
    }

    if let Some(p) = &rules.process.allow_ptrace {
        let below = lower.process.allow_ptrace.as_ref().is_some_and(|b| b.value);
        if p.value && !below {
            add(
                &p.source,
                "process.allow_ptrace = true lets the agent trace its own processes".into(),
            );
        }
    }
    for layer in &rules.security.allow_degraded {
        if !lower
            .security
            .allow_degraded
            .iter()
            .any(|x| x.value == layer.value)
        {
            add(
                &layer.source,
                format!(
                    "security.allow_degraded \"{}\" lets cage run without that layer",
                    layer_name(layer.value)
                ),
            );
        }
    }
    out
}

fn workspace_mode_name(m: WorkspaceMode) -> &'static str {
    match m {
        WorkspaceMode::Readonly => "readonly",
        WorkspaceMode::Overlay => "overlay",
        WorkspaceMode::Direct => "direct",
    }
}

fn layer_name(l: Layer) -> &'static str {
    match l {
        Layer::Landlock => "landlock",
    }
}

fn net_mode_name(m: NetMode) -> &'static str {
    match m {
        NetMode::None => "none",
        NetMode::Proxy => "proxy",
        NetMode::Host => "host",
    }
}
