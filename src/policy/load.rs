//! Loading: which sources apply, in which order, and how they merge.
//!
//! Order, lowest precedence first (DESIGN.md "Where policy comes from"):
//!
//! 1. the built-in `base` profile, always;
//! 2. the user's `config.toml`, when it exists;
//! 3. each `-p` profile, in order;
//! 4. the project's `.cage.toml`, unless `--no-project-policy` (untrusted,
//!    it may only narrow: see `trust`);
//! 5. each `-f` file (named by the user, so trusted);
//! 6. command-line flags.
//!
//! A source's `extends` apply just before its own rules; each profile
//! applies at most once per load, so diamonds are harmless and a cycle is
//! an error. Lists merge as unions in application order (duplicates kept
//! out, the first provenance kept); single values take the last writer.
//! Which rule beats which (hide over read, deny over allow) is the plan's
//! business: this module only keeps the lists.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::builtin;
use super::error::{At, Location, PolicyError};
use super::hosts::HostPattern;
use super::parse::{self, Fragment, Origin, push_unique};
use super::trust::{self, TrustState};
use super::{
    Layer, NetMode, Policy, ProjectPolicy, Provenance, Source, SourceKind, Sourced, WorkspaceMode,
};
use crate::host::Host;

/// What the command line asked for.
#[derive(Clone, Debug, Default)]
pub struct LoadRequest {
    /// `-p NAME`, in order.
    pub profiles: Vec<String>,
    /// `-f FILE`, in order; relative paths are against the working directory.
    pub policy_files: Vec<PathBuf>,
    pub project: ProjectMode,
    pub flags: FlagRules,
    /// The command's base name, when no `-p` was given and
    /// `--no-auto-profile` was not: a profile of that name applies.
    pub auto_profile: Option<String>,
}

/// Whether to look for the project's `.cage.toml`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProjectMode {
    #[default]
    Discover,
    /// `--no-project-policy`.
    Skip,
    /// Apply it even if it is untrusted and widens, recording what it
    /// widens in [`ProjectPolicy::refused`]: for showing what the file
    /// would grant (`--dry-run`, `policy show`, `explain`), never for a run.
    Preview,
}

/// Rules given as flags, applied last. Paths are relative to the working
/// directory and may start with `?` or `~` like in files.
#[derive(Clone, Debug, Default)]
pub struct FlagRules {
    pub ro: Vec<String>,
    pub rw: Vec<String>,
    pub hide: Vec<String>,
    pub allow_host: Vec<String>,
    pub net: Option<NetMode>,
    /// `NAME` (or `PREFIX*`) passes the host's value; `NAME=VALUE` sets it.
    pub env: Vec<String>,
    pub workspace: Option<WorkspaceMode>,
    pub allow_degraded: Vec<Layer>,
    /// `--allow-shared-dir`: only a flag, never a file, can accept these.
    pub allow_shared_dir: Vec<PathBuf>,
    /// `--secret VAR@HOST[,HOST...]`: the host's VAR becomes a secret of
    /// that name, its placeholder in VAR inside, swapped in for the hosts
    /// (which it also allows).
    pub secret: Vec<String>,
}

/// Reads every source the request names and merges them into one policy.
pub fn load(req: &LoadRequest, host: &Host) -> Result<Policy, PolicyError> {
    let mut loader = Loader::new(host);
    loader.apply_base()?;
    loader.apply_user_config()?;
    for name in &req.profiles {
        loader.apply_profile(name, None)?;
    }
    if req.profiles.is_empty()
        && let Some(command) = &req.auto_profile
    {
        loader.apply_auto_profile(command)?;
    }
    let files: Vec<PathBuf> = req
        .policy_files
        .iter()
        .map(|f| parse::normalise(&host.cwd.join(f)))
        .collect();
    if req.project != ProjectMode::Skip {
        if let Some(path) = find_project_file(host) {
            // Named with -f too: the user vouched for it, so it applies
            // there, trusted, and not here.
            let same =
                |f: &PathBuf| match (crate::host::canonical(f), crate::host::canonical(&path)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => false,
                };
            if !files.iter().any(same) {
                loader.apply_project(&path, req.project == ProjectMode::Preview)?;
            }
        }
    }
    for path in &files {
        loader.apply_file(path)?;
    }
    loader.apply_flags(&req.flags)?;
    Ok(loader.policy)
}

/// The project's `.cage.toml`: the nearest one walking up from the working
/// directory to the repository root (inclusive); without a repository, only
/// the working directory is looked at.
pub fn find_project_file(host: &Host) -> Option<PathBuf> {
    let stop = host
        .repo_root
        .as_deref()
        .filter(|root| host.cwd.starts_with(root));
    for dir in host.cwd.ancestors() {
        let candidate = dir.join(".cage.toml");
        if candidate.is_file() {
            return Some(candidate);
        }
        match stop {
            Some(root) if dir != root => continue,
            _ => break,
        }
    }
    None
}

/// Parses and validates one file on its own, including that every profile
/// it extends exists (and, recursively, parses without a cycle).
pub fn check_file(path: &Path, host: &Host) -> Result<(), PolicyError> {
    let mut loader = Loader::new(host);
    let path = parse::normalise(&host.cwd.join(path));
    loader.apply_file(&path)
}

/// The directory a project file's paths must stay inside to count as
/// narrowing: the repository root when the file is in the repository, else
/// the file's directory.
pub(crate) fn project_root(file: &Path, host: &Host) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("/"));
    match &host.repo_root {
        Some(root) if dir.starts_with(root) => parse::normalise(root),
        _ => parse::normalise(dir),
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// No policy is anywhere near this; a bigger file is a mistake or an
/// attempt to exhaust memory (`-f /dev/zero`, a huge `.cage.toml`).
pub(crate) const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Reads a policy file, at most [`MAX_POLICY_BYTES`]; `None` when it does
/// not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PolicyError> {
    read_with(path, 0)
}

/// [`read`] of a file someone else may have placed: a symbolic link as
/// the last component is refused (`ELOOP`), and so is anything but a
/// regular file (opened without blocking, so a FIFO swapped in cannot
/// hang cage).
pub(crate) fn read_nofollow(path: &Path) -> Result<Vec<u8>, PolicyError> {
    read_with(path, libc::O_NOFOLLOW | libc::O_NONBLOCK)?.ok_or_else(|| PolicyError::Read {
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

fn read_with(path: &Path, flags: i32) -> Result<Option<Vec<u8>>, PolicyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    if flags & libc::O_NONBLOCK != 0 && !file.metadata().map_err(fail)?.is_file() {
        return Err(fail(io::Error::other("not a regular file")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_POLICY_BYTES,
        });
    }
    Ok(Some(bytes))
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PolicyError> {
    read_optional(path)?.ok_or_else(|| PolicyError::Read {
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

/// Every profile name `-p` or `extends` could use, sorted.
fn available_profiles(host: &Host) -> Vec<String> {
    let mut names: Vec<String> = builtin::builtin_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    if let Ok(dir) = fs::read_dir(host.config_dir.join("profiles")) {
        for entry in dir.flatten() {
            let file = entry.file_name();
            if let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".toml")) {
                if parse::valid_profile_name(name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The merge state of one load.
pub(crate) struct Loader<'a> {
    host: &'a Host,
    pub(crate) policy: Policy,
    /// Profiles applied so far (each applies at most once).
    pub(crate) applied: Vec<String>,
    /// Profiles being applied right now, outermost first (for cycles).
    stack: Vec<String>,
}

impl<'a> Loader<'a> {
    pub(crate) fn new(host: &'a Host) -> Self {
        Loader {
            host,
            policy: Policy::default(),
            applied: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// The built-in `base`, never a user file of the same name: it is the
    /// floor every other source builds on.
    pub(crate) fn apply_base(&mut self) -> Result<(), PolicyError> {
        let text = builtin::builtin_source("base").unwrap_or_default();
        self.apply_named(
            "base",
            Origin::Builtin("base".into()),
            text.as_bytes().to_vec(),
        )
    }

    pub(crate) fn apply_user_config(&mut self) -> Result<(), PolicyError> {
        let path = self.host.config_dir.join("config.toml");
        match read_optional(&path)? {
            Some(bytes) => self.apply_bytes(Origin::File(path), bytes, SourceKind::User),
            None => Ok(()),
        }
    }

    /// The profile named after the command (`cage -- claude` applies
    /// `claude`), if there is one: a user profile or a built-in, never
    /// `base` (always applied) and never a name `-p` would refuse.
    fn apply_auto_profile(&mut self, command: &str) -> Result<(), PolicyError> {
        let name = Path::new(command)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "base" || !parse::valid_profile_name(name) {
            return Ok(());
        }
        let user = user_profile(&self.host.config_dir, name);
        if user.symlink_metadata().is_err() && builtin::builtin_source(name).is_none() {
            return Ok(());
        }
        let before = self.policy.sources.len();
        self.apply_profile(name, None)?;
        let own = [format!("builtin:{name}"), user.display().to_string()];
        if let Some(s) = self.policy.sources[before..]
            .iter_mut()
            .rev()
            .find(|s| own.contains(&s.name))
        {
            s.chosen_for = Some(name.to_string());
        }
        Ok(())
    }

    /// A profile by name: the user's `profiles/NAME.toml` if it exists, else
    /// the built-in. `at` is the `extends` entry that asked for it.
    fn apply_profile(&mut self, name: &str, at: Option<&Location>) -> Result<(), PolicyError> {
        if !parse::valid_profile_name(name) {
            return Err(PolicyError::ProfileName {
                at: At(at.cloned()),
                name: name.to_string(),
            });
        }
        if let Some(start) = self.stack.iter().position(|n| n == name) {
            let mut cycle = self.stack[start..].to_vec();
            cycle.push(name.to_string());
            return Err(PolicyError::Cycle {
                at: at.cloned().unwrap_or_else(|| Location {
                    file: name.to_string(),
                    pos: None,
                }),
                cycle,
            });
        }
        if self.applied.iter().any(|n| n == name) {
            return Ok(());
        }
        let user = user_profile(&self.host.config_dir, name);
        let (origin, bytes) = match read_optional(&user)? {
            Some(bytes) => (Origin::File(user), bytes),
            None => match builtin::builtin_source(name) {
                Some(text) => (Origin::Builtin(name.to_string()), text.as_bytes().to_vec()),
                None => {
                    return Err(PolicyError::UnknownProfile {
                        at: At(at.cloned()),
                        name: name.to_string(),
                        available: available_profiles(self.host),
                        user_dir: self.host.config_dir.join("profiles"),
                    });
                }
            },
        };
        self.apply_named(name, origin, bytes)
    }

    fn apply_named(
        &mut self,
        name: &str,
        origin: Origin,
        bytes: Vec<u8>,
    ) -> Result<(), PolicyError> {
        let kind = match origin {
            Origin::Builtin(_) => SourceKind::Builtin,
            Origin::File(_) => SourceKind::User,
        };
        self.stack.push(name.to_string());
        let result = self.apply_bytes(origin, bytes, kind);
        self.stack.pop();
        result?;
        self.applied.push(name.to_string());
        Ok(())
    }

    /// A file the user named (`-f`, or `cage policy check`): trusted.
    pub(crate) fn apply_file(&mut self, path: &Path) -> Result<(), PolicyError> {
        let bytes = read(path)?;
        self.apply_bytes(Origin::File(path.to_path_buf()), bytes, SourceKind::User)
    }

    fn apply_bytes(
        &mut self,
        origin: Origin,
        bytes: Vec<u8>,
        kind: SourceKind,
    ) -> Result<(), PolicyError> {
        let fragment = self.parse(&origin, &bytes)?;
        let source = Source {
            name: origin.display_name(),
            kind,
            sha256: Some(sha256_hex(&bytes)),
            chosen_for: None,
        };
        self.apply_fragment(fragment, source)
    }

    pub(crate) fn parse(&self, origin: &Origin, bytes: &[u8]) -> Result<Fragment, PolicyError> {
        let base = match origin {
            Origin::File(path) => path.parent().unwrap_or(Path::new("/")).to_path_buf(),
            Origin::Builtin(_) => self.host.cwd.clone(),
        };
        parse::parse(origin, bytes, &base, self.host)
    }

    /// Applies the profiles a fragment extends (and what they extend).
    pub(crate) fn apply_extends(&mut self, fragment: &Fragment) -> Result<(), PolicyError> {
        for e in &fragment.extends {
            self.apply_profile(&e.name, Some(&e.at))?;
        }
        Ok(())
    }

    fn apply_fragment(&mut self, fragment: Fragment, source: Source) -> Result<(), PolicyError> {
        self.apply_extends(&fragment)?;
        merge(&mut self.policy, fragment.rules);
        self.policy.sources.push(source);
        Ok(())
    }

    /// The project's file: applied only if it is trusted or only narrows
    /// what the sources below it allow (checked here line by line, and
    /// again on the plan by the caller). `preview` applies a widening file
    /// anyway and records what it widens.
    pub(crate) fn apply_project(&mut self, path: &Path, preview: bool) -> Result<(), PolicyError> {
        let root = project_root(path, self.host);
        let (canonical, bytes) = trust::read_project(path, &root)?;
        let sha256 = sha256_hex(&bytes);
        let origin = Origin::File(path.to_path_buf());
        let fragment = self.parse(&origin, &bytes)?;
        let (state, resolved) = trust::state(&canonical, &sha256, self.host)?;
        let mut refused = Vec::new();
        if state != TrustState::Trusted {
            let widenings = trust::widenings(&self.policy, &self.applied, &fragment, &root);
            if !widenings.is_empty() && !preview {
                return Err(PolicyError::Untrusted {
                    path: path.to_path_buf(),
                    widenings,
                    changed: state == TrustState::Changed,
                });
            }
            refused = widenings;
        }
        let source = Source {
            name: origin.display_name(),
            kind: SourceKind::Project,
            sha256: Some(sha256),
            chosen_for: None,
        };
        self.apply_fragment(fragment, source)?;
        self.policy.project = Some(ProjectPolicy {
            file: path.to_path_buf(),
            root,
            trusted: state == TrustState::Trusted,
            changed: state == TrustState::Changed,
            resolved,
            preview,
            refused,
        });
        Ok(())
    }

    fn apply_flags(&mut self, flags: &FlagRules) -> Result<(), PolicyError> {
        let rules = flag_rules(flags, self.host)?;
        if rules.is_empty() {
            return Ok(());
        }
        merge(&mut self.policy, rules.policy);
        self.policy.sources.push(Source {
            name: "flags".into(),
            kind: SourceKind::Flags,
            sha256: None,
            chosen_for: None,
        });
        // An allowed host means nothing without the proxy: unless --net says
        // otherwise, --allow-host (and --secret) asks for it.
        if flags.net.is_none()
            && !(flags.allow_host.is_empty() && flags.secret.is_empty())
            && self.policy.network.mode.as_ref().map(|m| m.value) != Some(NetMode::Proxy)
        {
            self.policy.network.mode = Some(Sourced::new(
                NetMode::Proxy,
                Provenance::flag("--allow-host (implies --net proxy)"),
            ));
        }
        Ok(())
    }
}

struct FlagPolicy {
    policy: Policy,
    count: usize,
}

impl FlagPolicy {
    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

fn flag_rules(flags: &FlagRules, host: &Host) -> Result<FlagPolicy, PolicyError> {
    let mut p = Policy::default();
    let mut count = 0;
    let bad = |flag: &'static str, value: &str, reason: String| PolicyError::Flag {
        flag,
        value: value.to_string(),
        reason,
    };
    for (flag, values, out) in [
        ("--ro", &flags.ro, &mut p.filesystem.read),
        ("--rw", &flags.rw, &mut p.filesystem.write),
        ("--hide", &flags.hide, &mut p.filesystem.hide),
    ] {
        for v in values {
            let rule = parse::parse_path(v, &host.cwd, host)
                .map_err(|reason| bad(flag, v, reason.to_string()))?;
            push_unique(out, Sourced::new(rule, Provenance::flag(flag)));
            count += 1;
        }
    }
    for v in &flags.allow_host {
        let pattern = HostPattern::parse(v).map_err(|e| bad("--allow-host", v, e.to_string()))?;
        push_unique(
            &mut p.network.allow,
            Sourced::new(pattern, Provenance::flag("--allow-host")),
        );
        count += 1;
    }
    if let Some(mode) = flags.net {
        p.network.mode = Some(Sourced::new(mode, Provenance::flag("--net")));
        count += 1;
    }
    for v in &flags.env {
        let source = Provenance::flag("--env");
        match v.split_once('=') {
            Some((name, value)) => {
                parse::check_env_name(name, false)
                    .map_err(|reason| bad("--env", v, reason.to_string()))?;
                if value.contains('\0') {
                    return Err(bad("--env", v, "the value contains a NUL byte".into()));
                }
                let value = parse::expand_env_value(value, host);
                set_env(
                    &mut p.env.set,
                    Sourced::new((name.to_string(), value), source),
                );
            }
            None => {
                parse::check_env_name(v, true)
                    .map_err(|reason| bad("--env", v, reason.to_string()))?;
                push_unique(&mut p.env.pass, Sourced::new(v.clone(), source));
            }
        }
        count += 1;
    }
    if let Some(mode) = flags.workspace {
        p.workspace.mode = Some(Sourced::new(mode, Provenance::flag("--workspace")));
        count += 1;
    }
    for layer in &flags.allow_degraded {
        push_unique(
            &mut p.security.allow_degraded,
            Sourced::new(*layer, Provenance::flag("--allow-degraded")),
        );
        count += 1;
    }
    for path in &flags.allow_shared_dir {
        push_unique(
            &mut p.security.allow_shared_dir,
            Sourced::new(host.cwd.join(path), Provenance::flag("--allow-shared-dir")),
        );
        count += 1;
    }
    for v in &flags.secret {
        let secret = flag_secret(v).map_err(|reason| bad("--secret", v, reason))?;
        for h in &secret.hosts {
            push_unique(
                &mut p.network.allow,
                Sourced::new(h.clone(), Provenance::flag("--secret")),
            );
        }
        set_secret(
            &mut p.secrets,
            Sourced::new(secret, Provenance::flag("--secret")),
        );
        count += 1;
    }
    Ok(FlagPolicy { policy: p, count })
}

/// `VAR@HOST[,HOST...]`.
fn flag_secret(v: &str) -> Result<super::SecretPolicy, String> {
    let (var, hosts) = v
        .split_once('@')
        .ok_or("write VAR@HOST[,HOST...], as in ANTHROPIC_API_KEY@api.anthropic.com")?;
    parse::check_env_name(var, false).map_err(str::to_string)?;
    let mut patterns = Vec::new();
    for h in hosts.split(',') {
        let pattern = HostPattern::parse(h).map_err(|e| format!("host `{h}`: {e}"))?;
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    Ok(super::SecretPolicy {
        name: var.to_string(),
        from: super::SecretSource::Env(var.to_string()),
        env: Some(var.to_string()),
        hosts: patterns,
        exclude: Vec::new(),
        body: false,
        host_vars: Vec::new(),
        optional: false,
        mask: false,
    })
}

/// A later secret of the same name replaces the earlier one, in place.
fn set_secret(list: &mut Vec<Sourced<super::SecretPolicy>>, item: Sourced<super::SecretPolicy>) {
    match list.iter_mut().find(|x| x.value.name == item.value.name) {
        Some(existing) => *existing = item,
        None => list.push(item),
    }
}

/// Later `set` entries replace earlier ones of the same name, in place.
fn set_env(list: &mut Vec<Sourced<(String, String)>>, item: Sourced<(String, String)>) {
    match list.iter_mut().find(|x| x.value.0 == item.value.0) {
        Some(existing) => *existing = item,
        None => list.push(item),
    }
}

fn union<T: PartialEq>(into: &mut Vec<Sourced<T>>, from: Vec<Sourced<T>>) {
    for item in from {
        push_unique(into, item);
    }
}

fn last<T>(into: &mut Option<Sourced<T>>, from: Option<Sourced<T>>) {
    if from.is_some() {
        *into = from;
    }
}

/// Merges `from` (higher precedence) into `into`. Destructured so a new
/// policy field cannot be forgotten here.
pub(crate) fn merge(into: &mut Policy, from: Policy) {
    let Policy {
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
    } = from;
    last(&mut into.workspace.path, workspace.path);
    last(&mut into.workspace.mode, workspace.mode);
    union(&mut into.workspace.protect, workspace.protect);

    union(&mut into.filesystem.read, filesystem.read);
    union(&mut into.filesystem.write, filesystem.write);
    union(&mut into.filesystem.hide, filesystem.hide);
    union(&mut into.filesystem.tmpfs, filesystem.tmpfs);
    union(&mut into.filesystem.copy, filesystem.copy);
    union(&mut into.filesystem.state, filesystem.state);

    last(&mut into.network.mode, network.mode);
    union(&mut into.network.allow, network.allow);
    union(&mut into.network.deny, network.deny);

    union(&mut into.env.pass, env.pass);
    for item in env.set {
        set_env(&mut into.env.set, item);
    }

    let l = &mut into.limits;
    last(&mut l.nofile, limits.nofile);
    last(&mut l.nproc, limits.nproc);
    last(&mut l.fsize, limits.fsize);
    last(&mut l.memory, limits.memory);
    last(&mut l.pids, limits.pids);
    last(&mut l.cpu, limits.cpu);
    last(&mut l.required, limits.required);

    last(&mut into.process.allow_ptrace, process.allow_ptrace);
    last(
        &mut into.process.allow_nested_userns,
        process.allow_nested_userns,
    );
    union(&mut into.security.allow_degraded, security.allow_degraded);
    union(
        &mut into.security.allow_shared_dir,
        security.allow_shared_dir,
    );
    for item in secrets {
        set_secret(&mut into.secrets, item);
    }
}

/// Where the user's profile NAME lives: `~/.config/cage/profiles/NAME.toml`.
fn user_profile(config_dir: &Path, name: &str) -> PathBuf {
    config_dir.join("profiles").join(format!("{name}.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            uid: 1000,
            gid: 1000,
            user: "u".into(),
            home: "/home/u".into(),
            cwd: "/work/p".into(),
            repo_root: Some("/work/p".into()),
            // Nothing there: every profile resolves to the built-in.
            config_dir: "/nonexistent/cage-policy-tests".into(),
            state_dir: "/nonexistent/cage-policy-tests-state".into(),
            env: Vec::new(),
        }
    }

    /// Parses, resolves extends and merges; an error must render.
    fn run(host: &Host, bytes: &[u8]) {
        let mut loader = Loader::new(host);
        if let Err(e) = loader.apply_bytes(
            Origin::Builtin("fuzz".into()),
            bytes.to_vec(),
            SourceKind::Builtin,
        ) {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn every_builtin_truncated_anywhere_never_panics() {
        let host = host();
        for name in builtin::builtin_names() {
            let bytes = builtin::builtin_source(name).unwrap_or_default().as_bytes();
            for end in 0..=bytes.len() {
                run(&host, &bytes[..end]);
            }
        }
    }

    #[test]
    fn random_mutations_of_builtins_never_panic() {
        // xorshift64*: deterministic, so a failure reproduces.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
        };
        const INTERESTING: &[u8] = b"\"'[]{}=,.:/?~*#\\\n\t 0123456789-_abcxyzGM\xff\xc3\x00";
        let host = host();
        let names = builtin::builtin_names();
        for _ in 0..4000 {
            let name = names[next(names.len())];
            let mut bytes = builtin::builtin_source(name)
                .unwrap_or_default()
                .as_bytes()
                .to_vec();
            for _ in 0..1 + next(4) {
                let at = next(bytes.len() + 1);
                match next(5) {
                    0 if at < bytes.len() => bytes[at] = INTERESTING[next(INTERESTING.len())],
                    1 if at < bytes.len() => bytes[at] = next(256) as u8,
                    2 => bytes.insert(at, INTERESTING[next(INTERESTING.len())]),
                    3 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {
                        // Duplicate a short slice: repeated keys and tables.
                        let len = next(40).min(bytes.len() - at.min(bytes.len()));
                        let slice = bytes[at..at + len].to_vec();
                        let to = next(bytes.len() + 1);
                        bytes.splice(to..to, slice);
                    }
                }
            }
            run(&host, &bytes);
        }
    }
}
