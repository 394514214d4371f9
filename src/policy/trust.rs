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
//!     "/home/me/src/app/.cage.toml": {
//!       "sha256": "9f86d08...",
//!       "resolved": { "/home/me/.cache/tool": "/home/me/.cache/tool" }
//!     }
//!   }
//! }
//! ```
//!
//! Trust belongs to one real file: a project file that is a symbolic link,
//! or whose real path lies outside its project, is refused (a link to a
//! file another repository trusted must not borrow that trust). Keys are
//! canonical paths. `resolved` records where each path the file names led
//! when it was pinned (`null`: missing): the bytes say `cache/tool`, but an
//! agent can turn `cache/tool` into a link between two sessions, so every
//! run resolves the paths again and the plan refuses one that now leads
//! elsewhere (`plan::build`). The store is rewritten
//! whole, through a temporary file and `rename`, so a crash never leaves a
//! half-written store; the directory is created with mode 0700 and the file
//! with 0600. Two `cage trust` runs at the same moment may lose one pin
//! (the last rename wins); they never corrupt the store.
//!
//! Widening is decided here lexically, line by line, for a precise first
//! answer; the caller then builds the plan with and without the file and
//! refuses whatever else it widens (`plan::widen`): only the plan sees
//! what lines do together and where links lead.

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
use super::{
    EnvPolicy, FilesystemPolicy, Layer, LimitsPolicy, NetMode, NetworkPolicy, PathRule, Policy,
    ProcessPolicy, Provenance, SecurityPolicy, Sourced, WorkspaceMode, WorkspacePolicy,
};
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
    /// Where each of the file's paths led when it was pinned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    resolved: BTreeMap<String, Option<String>>,
}

/// Where the pins live.
pub fn store_path(host: &Host) -> PathBuf {
    host.config_dir.join("trusted.json")
}

/// Pins the file's current bytes, after checking that it parses, and
/// reports what it widens so the CLI can show what the user allowed.
pub fn trust(path: &Path, host: &Host) -> Result<TrustReport, PolicyError> {
    let (report, resolved) = examine(path, host)?;
    let key = store_key(&report.path)?;
    let mut store = read_store(host)?;
    store.files.insert(
        key,
        Pin {
            sha256: report.sha256.clone(),
            resolved,
        },
    );
    write_store(host, &store)?;
    Ok(report)
}

/// What [`trust`] would pin and report, without pinning: for showing the
/// user before they agree.
pub fn trust_preview(path: &Path, host: &Host) -> Result<TrustReport, PolicyError> {
    examine(path, host).map(|(report, _)| report)
}

fn examine(
    path: &Path,
    host: &Host,
) -> Result<(TrustReport, BTreeMap<String, Option<String>>), PolicyError> {
    let (canonical, bytes) = read_named(path, host)?;
    let sha256 = load::sha256_hex(&bytes);
    let (widenings, fragment) = widenings_over_baseline(&canonical, &bytes, host)?;
    let mut resolved = BTreeMap::new();
    let mut links = Vec::new();
    for (p, source) in fragment_paths(&fragment.rules) {
        let real = crate::host::canonical(p).ok();
        if let Some(real) = &real
            && real != p
        {
            links.push(Widening {
                source: source.clone(),
                what: format!("{} leads through a link to {}", p.display(), real.display()),
            });
        }
        if let Some(key) = p.to_str() {
            let real = real.and_then(|r| r.to_str().map(str::to_string));
            resolved.insert(key.to_string(), real);
        }
    }
    let mut widenings = widenings;
    widenings.extend(links);
    Ok((
        TrustReport {
            path: canonical,
            sha256,
            widenings,
        },
        resolved,
    ))
}

/// Every path a fragment's rules grant or create, with its line: what
/// trust pins the resolution of.
pub(crate) fn fragment_paths(rules: &Policy) -> Vec<(&Path, &Provenance)> {
    let f = &rules.filesystem;
    let mut out: Vec<(&Path, &Provenance)> = f
        .read
        .iter()
        .chain(&f.write)
        .chain(&f.copy)
        .map(|r| (r.value.path.as_path(), &r.source))
        .collect();
    out.extend(f.state.iter().map(|s| (s.value.dir.as_path(), &s.source)));
    if let Some(p) = &rules.workspace.path {
        out.push((p.value.as_path(), &p.source));
    }
    out
}

/// [`read_project`] for a path the user named (relative to the working
/// directory), judged against its own project.
fn read_named(path: &Path, host: &Host) -> Result<(PathBuf, Vec<u8>), PolicyError> {
    let absolute = super::parse::normalise(&host.cwd.join(path));
    let root = load::project_root(&absolute, host);
    read_project(&absolute, &root)
}

/// Reads a project policy file that must be a real file of its project:
/// not a symbolic link (opened with `O_NOFOLLOW`, so a link swapped in
/// after the check is refused too), and really inside `root`. Returns
/// its canonical path, which is what trust pins, and its bytes.
pub(crate) fn read_project(path: &Path, root: &Path) -> Result<(PathBuf, Vec<u8>), PolicyError> {
    if let Ok(meta) = fs::symlink_metadata(path)
        && meta.file_type().is_symlink()
    {
        return Err(PolicyError::ProjectLink {
            path: path.to_path_buf(),
            target: fs::read_link(path).unwrap_or_default(),
        });
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default();
    let canonical = canonical(dir)?.join(name);
    let real_root = crate::host::canonical(root).unwrap_or_else(|_| root.to_path_buf());
    if !canonical.starts_with(&real_root) {
        return Err(PolicyError::ProjectOutside {
            path: path.to_path_buf(),
            real: canonical,
            root: real_root,
        });
    }
    let bytes = load::read_nofollow(path).map_err(|e| match e {
        PolicyError::Read { source, .. } if source.raw_os_error() == Some(libc::ELOOP) => {
            PolicyError::ProjectLink {
                path: path.to_path_buf(),
                target: fs::read_link(path).unwrap_or_default(),
            }
        }
        e => e,
    })?;
    Ok((canonical, bytes))
}

/// Removes a pin; `Ok(false)` when there was none. Works for a file that
/// no longer exists (then the path is only made absolute, not resolved).
pub fn untrust(path: &Path, host: &Host) -> Result<bool, PolicyError> {
    let key_path = match crate::host::canonical(path) {
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
    let (canonical, bytes) = read_named(path, host)?;
    Ok(state(&canonical, &load::sha256_hex(&bytes), host)?.0 == TrustState::Trusted)
}

/// Whether the file at `canonical` is pinned with these bytes, and, when
/// it is, where its paths led when it was pinned.
pub(crate) fn state(
    canonical: &Path,
    sha256: &str,
    host: &Host,
) -> Result<(TrustState, BTreeMap<PathBuf, Option<PathBuf>>), PolicyError> {
    let store = read_store(host)?;
    let Some(key) = canonical.to_str() else {
        return Ok((TrustState::Unknown, BTreeMap::new()));
    };
    Ok(match store.files.get(key) {
        Some(pin) if pin.sha256 == sha256 => {
            let resolved = pin
                .resolved
                .iter()
                .map(|(k, v)| (PathBuf::from(k), v.as_ref().map(PathBuf::from)))
                .collect();
            (TrustState::Trusted, resolved)
        }
        Some(_) => (TrustState::Changed, BTreeMap::new()),
        None => (TrustState::Unknown, BTreeMap::new()),
    })
}

fn canonical(path: &Path) -> Result<PathBuf, PolicyError> {
    crate::host::canonical(path).map_err(|source| PolicyError::Canonicalize {
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
) -> Result<(Vec<Widening>, Fragment), PolicyError> {
    let mut baseline = Loader::new(host);
    baseline.apply_base()?;
    baseline.apply_user_config()?;
    let fragment = baseline.parse(&Origin::File(path.to_path_buf()), bytes)?;
    // Check the extends resolve (on a scratch loader) so a broken file is
    // refused rather than pinned.
    Loader::new(host).apply_extends(&fragment)?;
    let root = load::project_root(path, host);
    let found = widenings(&baseline.policy, &baseline.applied, &fragment, &root);
    Ok((found, fragment))
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
/// sources below it, with `applied` profiles), line by line. An entry that
/// repeats one already in `lower` changes nothing and is not listed. `root`
/// is the project root, already normalised.
///
/// Every section is destructured, so a new policy field does not compile
/// until it is classified here: a widening, or a narrowing (and then the
/// plan comparison, `plan::widen`, still checks what it does with the rest).
pub(crate) fn widenings(
    lower: &Policy,
    applied: &[String],
    project: &Fragment,
    root: &Path,
) -> Vec<Widening> {
    let mut f = Found {
        out: Vec::new(),
        root,
    };
    for e in &project.extends {
        if !applied.contains(&e.name) {
            f.add(
                &e.source,
                format!("extends \"{}\", a profile not already in use", e.name),
            );
        }
    }
    let Policy {
        // Bookkeeping of the merge, not rules.
        sources: _,
        project: _,
        workspace,
        filesystem,
        network,
        env,
        limits,
        process,
        security,
        secrets,
    } = &project.rules;
    workspace_widenings(&mut f, lower, workspace);
    filesystem_widenings(&mut f, lower, filesystem);
    network_widenings(&mut f, lower, network);
    env_widenings(&mut f, lower, env);
    secret_widenings(&mut f, lower, secrets);
    limit_widenings(&mut f, lower, limits);
    process_widenings(&mut f, lower, process);
    security_widenings(&mut f, lower, security);
    f.out
}

/// The widenings found so far, and the project root paths are judged by.
struct Found<'a> {
    out: Vec<Widening>,
    root: &'a Path,
}

impl Found<'_> {
    fn add(&mut self, source: &Provenance, what: String) {
        self.out.push(Widening {
            source: source.clone(),
            what,
        });
    }
}

/// The mode of the workspace below, or the strictest when none is set.
fn lower_mode(lower: &Policy) -> WorkspaceMode {
    lower
        .workspace
        .mode
        .as_ref()
        .map_or(WorkspaceMode::Readonly, |m| m.value)
}

fn workspace_widenings(f: &mut Found, lower: &Policy, workspace: &WorkspacePolicy) {
    let WorkspacePolicy {
        path,
        mode,
        // Narrowing: more read-only paths.
        protect: _,
    } = workspace;
    let root: &Path = f.root;
    let inside = |p: &Path| p.starts_with(root);
    let root_shown = root.display();
    if let Some(path) = path {
        if !inside(&path.value) {
            f.add(
                &path.source,
                format!(
                    "workspace.path {} is outside the project root {root_shown}",
                    path.value.display()
                ),
            );
        }
    }
    let lower_mode = lower_mode(lower);
    if let Some(mode) = mode {
        if mode.value > lower_mode {
            f.add(
                &mode.source,
                format!(
                    "workspace.mode \"{}\" is less strict than \"{}\" below it",
                    workspace_mode_name(mode.value),
                    workspace_mode_name(lower_mode)
                ),
            );
        }
    }
}

fn filesystem_widenings(f: &mut Found, lower: &Policy, filesystem: &FilesystemPolicy) {
    let FilesystemPolicy {
        read,
        write,
        // Narrowing: less is shown.
        hide: _,
        tmpfs: _,
        copy,
        state,
    } = filesystem;
    let root: &Path = f.root;
    let inside = |p: &Path| p.starts_with(root);
    let root_shown = root.display();
    let lower_mode = lower_mode(lower);
    let has = |list: &[Sourced<PathRule>], p: &Path| list.iter().any(|r| r.value.path == p);
    // A copy shows the host's content, as a read does.
    for (key, list) in [("read", read), ("copy", copy)] {
        for r in list {
            let p = &r.value.path;
            if !inside(p)
                && !has(&lower.filesystem.read, p)
                && !has(&lower.filesystem.write, p)
                && !has(&lower.filesystem.copy, p)
            {
                f.add(
                    &r.source,
                    format!(
                        "filesystem.{key} {} is outside the project root {root_shown}",
                        p.display()
                    ),
                );
            }
        }
    }
    for r in write {
        let p = &r.value.path;
        if has(&lower.filesystem.write, p) {
            continue;
        }
        if !inside(p) {
            f.add(
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
            f.add(
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
    for st in state {
        if !lower.filesystem.state.iter().any(|x| x.value == st.value) {
            f.add(
                &st.source,
                format!(
                    "filesystem.state {} creates and writes through to a directory outside \
                     the workspace",
                    st.value.dir.display()
                ),
            );
        }
    }
}

fn network_widenings(f: &mut Found, lower: &Policy, network: &NetworkPolicy) {
    let NetworkPolicy {
        mode: net_mode,
        allow,
        // Narrowing.
        deny: _,
    } = network;
    let lower_net = lower
        .network
        .mode
        .as_ref()
        .map_or(NetMode::None, |m| m.value);
    if let Some(mode) = net_mode {
        if mode.value > lower_net {
            f.add(
                &mode.source,
                format!(
                    "network.mode \"{}\" opens more than \"{}\" below it",
                    net_mode_name(mode.value),
                    net_mode_name(lower_net)
                ),
            );
        }
    }
    for a in allow {
        if !lower.network.allow.iter().any(|x| x.value == a.value) {
            f.add(
                &a.source,
                format!("network.allow \"{}\" allows a host", a.value),
            );
        }
    }
}

fn env_widenings(f: &mut Found, lower: &Policy, env: &EnvPolicy) {
    let EnvPolicy {
        pass,
        // The file's own words, not the host's: a value set inside the
        // cage gives the agent nothing it could not set itself.
        set: _,
    } = env;
    for p in pass {
        if !lower.env.pass.iter().any(|x| x.value == p.value) {
            f.add(
                &p.source,
                format!(
                    "env.pass \"{}\" passes host environment variables into the cage",
                    p.value
                ),
            );
        }
    }
}

fn secret_widenings(f: &mut Found, lower: &Policy, secrets: &[Sourced<super::SecretPolicy>]) {
    // A secret's value is read on the host (a `cmd:` runs there) and sent
    // to its hosts: an untrusted file may drop hosts from a secret below
    // it, never add a secret or a host.
    for sec in secrets {
        let s = &sec.value;
        let below = lower.secrets.iter().find(|x| x.value.name == s.name);
        let narrows = below.is_some_and(|b| {
            b.value.from == s.from
                && b.value.env == s.env
                && b.value.mask == s.mask
                && s.hosts.iter().all(|h| b.value.hosts.contains(h))
                && s.host_vars.iter().all(|h| b.value.host_vars.contains(h))
        });
        if !narrows {
            f.add(
                &sec.source,
                format!(
                    "secrets.{} reads a secret on the host ({}) or sends one to a host not \
                     already allowed for it",
                    s.name, s.from
                ),
            );
        }
    }
}

fn limit_widenings(f: &mut Found, lower: &Policy, limits: &LimitsPolicy) {
    let LimitsPolicy {
        nofile,
        nproc,
        fsize,
        memory,
        pids,
        cpu,
        required,
    } = limits;
    let b = &lower.limits;
    for (key, mine, below) in [
        ("nofile", nofile, &b.nofile),
        ("nproc", nproc, &b.nproc),
        ("fsize", fsize, &b.fsize),
        ("memory", memory, &b.memory),
        ("pids", pids, &b.pids),
        ("cpu", cpu, &b.cpu),
    ] {
        let Some(mine) = mine else { continue };
        match below {
            Some(below) if mine.value <= below.value => {}
            Some(below) => f.add(
                &mine.source,
                format!(
                    "limits.{key} = {} raises the limit of {} below it",
                    mine.value, below.value
                ),
            ),
            None => f.add(
                &mine.source,
                format!(
                    "limits.{key} = {} sets a limit no source below it sets, \
                     which could raise cage's default",
                    mine.value
                ),
            ),
        }
    }

    if let Some(r) = required {
        let below = lower.limits.required.as_ref().is_some_and(|b| b.value);
        if !r.value && below {
            f.add(
                &r.source,
                "limits.required = false lets cage run without the cgroup limits".into(),
            );
        }
    }
}

fn process_widenings(f: &mut Found, lower: &Policy, process: &ProcessPolicy) {
    let ProcessPolicy {
        allow_ptrace,
        allow_nested_userns,
    } = process;
    if let Some(p) = allow_ptrace {
        let below = lower.process.allow_ptrace.as_ref().is_some_and(|b| b.value);
        if p.value && !below {
            f.add(
                &p.source,
                "process.allow_ptrace = true lets the agent trace its own processes".into(),
            );
        }
    }
    if let Some(p) = allow_nested_userns {
        let below = lower
            .process
            .allow_nested_userns
            .as_ref()
            .is_some_and(|b| b.value);
        if p.value && !below {
            f.add(
                &p.source,
                "process.allow_nested_userns = true lets the agent create user namespaces, \
                 widening the kernel's attack surface"
                    .into(),
            );
        }
    }
}

fn security_widenings(f: &mut Found, lower: &Policy, security: &SecurityPolicy) {
    let SecurityPolicy {
        allow_degraded,
        allow_shared_dir,
    } = security;
    for layer in allow_degraded {
        if !lower
            .security
            .allow_degraded
            .iter()
            .any(|x| x.value == layer.value)
        {
            f.add(
                &layer.source,
                format!(
                    "security.allow_degraded \"{}\" lets cage run without that layer",
                    layer_name(layer.value)
                ),
            );
        }
    }
    // Only a flag can accept a shared directory; a file never does.
    for dir in allow_shared_dir {
        f.add(
            &dir.source,
            format!(
                "security.allow_shared_dir {} exposes a directory other programs keep \
                 sockets in",
                dir.value.display()
            ),
        );
    }
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
        Layer::Namespaces => "namespaces",
    }
}

fn net_mode_name(m: NetMode) -> &'static str {
    match m {
        NetMode::None => "none",
        NetMode::Proxy => "proxy",
        NetMode::Host => "host",
    }
}
