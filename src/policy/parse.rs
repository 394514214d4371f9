//! One policy source's text → a validated [`Fragment`]: the same shape as
//! the merged [`Policy`], every entry with its line, plus the `extends` it
//! asks for.
//!
//! This is where values are checked and resolved as far as the source
//! alone allows: `~` expanded, `?` stripped into `optional`, relative paths
//! joined to the file's directory and normalised lexically, host patterns,
//! sizes and variable names parsed. It never touches the filesystem.

use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::error::{At, Location, PolicyError};
use super::hosts::HostPattern;
use super::schema;
use super::{PathRule, Policy, Provenance, Sourced};
use crate::host::Host;

/// Where a source came from; decides provenance, error locations, and the
/// directory relative paths are resolved against.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    Builtin(String),
    /// An absolute path.
    File(PathBuf),
}

impl Origin {
    pub(crate) fn display_name(&self) -> String {
        match self {
            Origin::Builtin(name) => format!("builtin:{name}"),
            Origin::File(path) => path.display().to_string(),
        }
    }

    fn provenance(&self, line: usize) -> Provenance {
        match self {
            Origin::Builtin(profile) => Provenance::Builtin {
                profile: profile.clone(),
                line,
            },
            Origin::File(path) => Provenance::File {
                path: path.clone(),
                line,
            },
        }
    }
}

/// An `extends` entry: the profile name and where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Extend {
    pub name: String,
    pub at: Location,
    pub source: Provenance,
}

/// One source, parsed and validated, not yet merged.
#[derive(Debug)]
pub(crate) struct Fragment {
    pub extends: Vec<Extend>,
    pub rules: Policy,
}

/// Byte offsets → 1-based line and column (in characters).
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    fn pos(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        // `get` because a span may not fall on a char boundary in theory.
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, col + 1)
    }
}

/// Parses and validates one source. `base` is the directory relative paths
/// are joined to (the file's directory; for built-ins, the working
/// directory, though built-ins use absolute and `~` paths only).
pub(crate) fn parse(
    origin: &Origin,
    bytes: &[u8],
    base: &Path,
    host: &Host,
) -> Result<Fragment, PolicyError> {
    let name = origin.display_name();
    let text = std::str::from_utf8(bytes).map_err(|e| {
        // Positions in the valid prefix are exact; report the bad byte.
        let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
        let lines = Lines::new(valid);
        PolicyError::Toml {
            at: Location {
                file: name.clone(),
                pos: Some(lines.pos(valid.len())),
            },
            message: "not valid UTF-8".to_string(),
        }
    })?;
    let lines = Lines::new(text);
    let raw: schema::File = toml::from_str(text).map_err(|e| PolicyError::Toml {
        at: Location {
            file: name.clone(),
            pos: e.span().map(|s| lines.pos(s.start)),
        },
        message: polish(e.message()),
    })?;
    Converter {
        origin,
        name,
        lines,
        base,
        host,
    }
    .convert(raw)
}

struct Converter<'a> {
    origin: &'a Origin,
    name: String,
    lines: Lines<'a>,
    base: &'a Path,
    host: &'a Host,
}

impl Converter<'_> {
    fn at<T>(&self, s: &Spanned<T>) -> Location {
        Location {
            file: self.name.clone(),
            pos: Some(self.lines.pos(s.span().start)),
        }
    }

    fn sourced<T, U>(&self, s: &Spanned<T>, value: U) -> Sourced<U> {
        Sourced::new(
            value,
            self.origin.provenance(self.lines.pos(s.span().start).0),
        )
    }

    fn convert(&self, raw: schema::File) -> Result<Fragment, PolicyError> {
        let mut rules = Policy::default();
        let extends = self.extends(&raw.extends)?;
        if let Some(ws) = raw.workspace {
            self.workspace(&ws, &mut rules.workspace)?;
        }
        if let Some(fs) = raw.filesystem {
            self.filesystem(&fs, &mut rules.filesystem)?;
        }
        if let Some(net) = raw.network {
            self.network(&net, &mut rules.network)?;
        }
        if let Some(env) = raw.env {
            self.env(&env, &mut rules.env)?;
        }
        if let Some(l) = raw.limits {
            let out = &mut rules.limits;
            out.nofile = self.count(&l.nofile, "nofile")?;
            out.nproc = self.count(&l.nproc, "nproc")?;
            out.pids = self.count(&l.pids, "pids")?;
            out.cpu = self.count(&l.cpu, "cpu")?;
            out.fsize = self.size(&l.fsize, "fsize")?;
            out.memory = self.size(&l.memory, "memory")?;
            out.required = l.required.as_ref().map(|b| self.sourced(b, *b.get_ref()));
        }
        if let Some(p) = raw.process {
            rules.process.allow_ptrace = p
                .allow_ptrace
                .as_ref()
                .map(|b| self.sourced(b, *b.get_ref()));
            rules.process.allow_nested_userns = p
                .allow_nested_userns
                .as_ref()
                .map(|b| self.sourced(b, *b.get_ref()));
        }
        if let Some(s) = raw.security {
            for layer in &s.allow_degraded {
                push_unique(
                    &mut rules.security.allow_degraded,
                    self.sourced(layer, *layer.get_ref()),
                );
            }
        }
        let mut secrets: Vec<_> = raw.secrets.iter().collect();
        secrets.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in secrets {
            let secret = self.secret(k, v.get_ref())?;
            rules.secrets.push(self.sourced(k, secret));
        }
        Ok(Fragment { extends, rules })
    }

    fn extends(&self, raw: &[Spanned<String>]) -> Result<Vec<Extend>, PolicyError> {
        let mut extends = Vec::new();
        for e in raw {
            let name = e.get_ref().clone();
            if !valid_profile_name(&name) {
                return Err(PolicyError::ProfileName {
                    at: At(Some(self.at(e))),
                    name,
                });
            }
            let Sourced {
                value: name,
                source,
            } = self.sourced(e, name);
            extends.push(Extend {
                name,
                at: self.at(e),
                source,
            });
        }
        Ok(extends)
    }

    fn workspace(
        &self,
        ws: &schema::Workspace,
        out: &mut super::WorkspacePolicy,
    ) -> Result<(), PolicyError> {
        if let Some(path) = &ws.path {
            let rule = self.path(path)?;
            if rule.optional {
                return Err(PolicyError::Path {
                    at: self.at(path),
                    path: path.get_ref().clone(),
                    reason: "the workspace cannot be optional",
                });
            }
            out.path = Some(self.sourced(path, rule.path));
        }
        out.mode = ws.mode.as_ref().map(|m| self.sourced(m, *m.get_ref()));
        for p in &ws.protect {
            let name = protect_name(p.get_ref()).map_err(|reason| PolicyError::Protect {
                at: self.at(p),
                name: p.get_ref().clone(),
                reason,
            })?;
            push_unique(&mut out.protect, self.sourced(p, name));
        }
        Ok(())
    }

    fn filesystem(
        &self,
        fs: &schema::Filesystem,
        out: &mut super::FilesystemPolicy,
    ) -> Result<(), PolicyError> {
        for (list, out) in [
            (&fs.read, &mut out.read),
            (&fs.write, &mut out.write),
            (&fs.hide, &mut out.hide),
            (&fs.tmpfs, &mut out.tmpfs),
            (&fs.copy, &mut out.copy),
        ] {
            for p in list {
                let rule = self.path(p)?;
                push_unique(out, self.sourced(p, rule));
            }
        }
        for entry in &fs.state {
            let state = self.state(entry.get_ref())?;
            push_unique(&mut out.state, self.sourced(entry, state));
        }
        Ok(())
    }

    fn network(
        &self,
        net: &schema::Network,
        out: &mut super::NetworkPolicy,
    ) -> Result<(), PolicyError> {
        out.mode = net.mode.as_ref().map(|m| self.sourced(m, *m.get_ref()));
        for (list, out) in [(&net.allow, &mut out.allow), (&net.deny, &mut out.deny)] {
            for h in list {
                let pattern =
                    HostPattern::parse(h.get_ref()).map_err(|reason| PolicyError::HostPattern {
                        at: self.at(h),
                        pattern: h.get_ref().clone(),
                        reason,
                    })?;
                push_unique(out, self.sourced(h, pattern));
            }
        }
        Ok(())
    }

    fn env(&self, env: &schema::Env, out: &mut super::EnvPolicy) -> Result<(), PolicyError> {
        for p in &env.pass {
            check_env_name(p.get_ref(), true).map_err(|reason| PolicyError::EnvName {
                at: self.at(p),
                name: p.get_ref().clone(),
                reason,
            })?;
            push_unique(&mut out.pass, self.sourced(p, p.get_ref().clone()));
        }
        let mut set: Vec<_> = env.set.iter().collect();
        set.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in set {
            check_env_name(k.get_ref(), false).map_err(|reason| PolicyError::EnvName {
                at: self.at(k),
                name: k.get_ref().clone(),
                reason,
            })?;
            if v.get_ref().contains('\0') {
                return Err(PolicyError::EnvValue {
                    at: self.at(v),
                    name: k.get_ref().clone(),
                });
            }
            let value = expand_env_value(v.get_ref(), self.host);
            out.set.push(self.sourced(k, (k.get_ref().clone(), value)));
        }
        Ok(())
    }

    fn secret(
        &self,
        name: &Spanned<String>,
        raw: &schema::Secret,
    ) -> Result<super::SecretPolicy, PolicyError> {
        let bad = |at: Location, reason: String| PolicyError::Secret {
            at,
            name: name.get_ref().clone(),
            reason,
        };
        if !valid_profile_name(name.get_ref()) {
            return Err(bad(
                self.at(name),
                "a secret's name uses letters, digits, `-` and `_`".into(),
            ));
        }
        let from = parse_secret_source(raw.from.get_ref(), self.base, self.host)
            .map_err(|reason| bad(self.at(&raw.from), reason.into()))?;
        let env = match &raw.env {
            Some(e) => {
                check_env_name(e.get_ref(), false)
                    .map_err(|reason| bad(self.at(e), reason.into()))?;
                Some(e.get_ref().clone())
            }
            None => None,
        };
        let mut hosts = Vec::new();
        let mut host_vars = Vec::new();
        for h in &raw.hosts {
            if let Some(var) = h.get_ref().strip_prefix('$') {
                check_env_name(var, false).map_err(|reason| bad(self.at(h), reason.into()))?;
                if !host_vars.iter().any(|v| v == var) {
                    host_vars.push(var.to_string());
                }
                continue;
            }
            let pattern = HostPattern::parse(h.get_ref())
                .map_err(|reason| bad(self.at(h), format!("host `{}`: {reason}", h.get_ref())))?;
            if !hosts.contains(&pattern) {
                hosts.push(pattern);
            }
        }
        let mut exclude = Vec::new();
        for h in &raw.exclude {
            let pattern = HostPattern::parse(h.get_ref())
                .map_err(|reason| bad(self.at(h), format!("host `{}`: {reason}", h.get_ref())))?;
            exclude.push(pattern);
        }
        let mask = raw.mask.as_ref().is_some_and(|m| *m.get_ref());
        if mask && !matches!(from, super::SecretSource::Json { .. }) {
            return Err(bad(
                self.at(name),
                "`mask = true` needs a `json:PATH#/POINTER` source: the file cage masks".into(),
            ));
        }
        // A masked token may go nowhere (a refresh token: its placeholder
        // only keeps the file's shape).
        if hosts.is_empty() && host_vars.is_empty() && !mask {
            return Err(bad(
                self.at(name),
                "name the hosts it may go to: hosts = [\"api.example.com\"]".into(),
            ));
        }
        Ok(super::SecretPolicy {
            name: name.get_ref().clone(),
            from,
            env,
            hosts,
            exclude,
            body: raw.body.as_ref().is_some_and(|b| *b.get_ref()),
            host_vars,
            optional: raw.optional.as_ref().is_some_and(|o| *o.get_ref()),
            mask,
        })
    }

    fn path(&self, s: &Spanned<String>) -> Result<PathRule, PolicyError> {
        parse_path(s.get_ref(), self.base, self.host).map_err(|reason| PolicyError::Path {
            at: self.at(s),
            path: s.get_ref().clone(),
            reason,
        })
    }

    fn state(&self, raw: &schema::StateDir) -> Result<super::StatePolicy, PolicyError> {
        let bad = |at: &Spanned<String>, reason| PolicyError::Path {
            at: self.at(at),
            path: at.get_ref().clone(),
            reason,
        };
        if raw.dir.get_ref().starts_with('?') {
            return Err(bad(
                &raw.dir,
                "a state directory cannot be optional: cage creates it on first use",
            ));
        }
        let dir = self.path(&raw.dir)?.path;
        if !dir.starts_with(&self.host.home) || dir == self.host.home {
            return Err(bad(
                &raw.dir,
                "a state directory must lie below the home directory (`~/.agent`)",
            ));
        }
        let mut keep: Vec<super::StateKeep> = Vec::new();
        for k in &raw.keep {
            let item = state_keep(k.get_ref()).map_err(|reason| bad(k, reason))?;
            if !keep.contains(&item) {
                keep.push(item);
            }
        }
        let mut settings = Vec::new();
        if let Some(raw_settings) = &raw.settings {
            let bad = |file: &str, reason| PolicyError::Path {
                at: self.at(raw_settings),
                path: file.to_string(),
                reason,
            };
            for (file, table) in raw_settings.get_ref() {
                let path = state_keep(file).map_err(|reason| bad(file, reason))?;
                let format_known = [".toml", ".json"].iter().any(|e| file.ends_with(e));
                if path.dir || !format_known || path.path.components().count() != 1 {
                    return Err(bad(
                        file,
                        "a settings file is named `NAME.toml` or `NAME.json`, directly in the state directory",
                    ));
                }
                if keep.iter().any(|k| path.path.starts_with(&k.path)) {
                    return Err(bad(
                        file,
                        "a settings file cannot be kept: its copy would reach the host",
                    ));
                }
                let mut values = Vec::new();
                flatten_settings(table, &mut Vec::new(), &mut values)
                    .map_err(|reason| bad(file, reason))?;
                settings.push(super::StateSettings {
                    file: path.path,
                    values,
                });
            }
        }
        Ok(super::StatePolicy {
            dir,
            keep,
            about: raw.about.as_ref().map(|a| a.get_ref().clone()),
            settings,
        })
    }

    fn count(
        &self,
        v: &Option<Spanned<schema::Count>>,
        key: &'static str,
    ) -> Result<Option<Sourced<u64>>, PolicyError> {
        let Some(v) = v else { return Ok(None) };
        self.limit(v, key, v.get_ref().0).map(Some)
    }

    fn size(
        &self,
        v: &Option<Spanned<schema::Size>>,
        key: &'static str,
    ) -> Result<Option<Sourced<u64>>, PolicyError> {
        let Some(v) = v else { return Ok(None) };
        let bytes = match v.get_ref() {
            schema::Size::Bytes(n) => *n,
            schema::Size::Text(t) => parse_size(t).map_err(|reason| PolicyError::Size {
                at: self.at(v),
                value: t.clone(),
                reason,
            })?,
        };
        self.limit(v, key, bytes).map(Some)
    }

    fn limit<T>(
        &self,
        v: &Spanned<T>,
        key: &'static str,
        value: u64,
    ) -> Result<Sourced<u64>, PolicyError> {
        if value == 0 {
            return Err(PolicyError::Limit {
                at: self.at(v),
                key,
                value,
                reason: "must be at least 1 (leave the key out for no limit)",
            });
        }
        Ok(self.sourced(v, value))
    }
}

/// Appends unless an equal value is already there (the first one, and its
/// provenance, stays).
pub(crate) fn push_unique<T: PartialEq>(list: &mut Vec<Sourced<T>>, item: Sourced<T>) {
    if !list.iter().any(|x| x.value == item.value) {
        list.push(item);
    }
}

/// Profile names are file names under `profiles/`, never paths.
pub(crate) fn valid_profile_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `?` marks optional; `~` and `~/x` expand to the home directory; a
/// relative path joins `base`; `.` and `..` are resolved lexically.
pub(crate) fn parse_path(s: &str, base: &Path, host: &Host) -> Result<PathRule, &'static str> {
    let (optional, rest) = match s.strip_prefix('?') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if rest.is_empty() {
        return Err("empty path");
    }
    if rest.contains('\0') {
        return Err("contains a NUL byte");
    }
    if rest.starts_with('~') && rest != "~" && !rest.starts_with("~/") {
        return Err("only `~` and `~/...` are expanded (`~user` is not supported)");
    }
    let expanded = host.expand_tilde(rest);
    let absolute = if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    };
    Ok(PathRule {
        path: normalise(&absolute),
        optional,
    })
}

/// Resolves `.` and `..` without looking at the filesystem; `..` at the
/// root stays at the root, as the kernel does.
pub(crate) fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A settings table as (key path, scalar) pairs; nested tables are key
/// paths, anything but a string, integer or boolean is refused.
fn flatten_settings(
    table: &toml::Table,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, super::Setting)>,
) -> Result<(), &'static str> {
    for (key, value) in table {
        prefix.push(key.clone());
        let scalar = match value {
            toml::Value::Table(t) => {
                flatten_settings(t, prefix, out)?;
                None
            }
            toml::Value::String(s) => Some(super::Setting::Text(s.clone())),
            toml::Value::Integer(i) => Some(super::Setting::Int(*i)),
            toml::Value::Boolean(b) => Some(super::Setting::Bool(*b)),
            _ => return Err("a setting is a string, an integer or a boolean"),
        };
        if let Some(scalar) = scalar {
            out.push((prefix.clone(), scalar));
        }
        prefix.pop();
    }
    Ok(())
}

/// A `keep` entry: a relative path below the state directory, a trailing
/// `/` for a directory.
fn state_keep(s: &str) -> Result<super::StateKeep, &'static str> {
    let dir = s.ends_with('/');
    let p = Path::new(s.trim_end_matches('/'));
    if s.contains('\0') {
        return Err("contains a NUL byte");
    }
    if p.as_os_str().is_empty() {
        return Err("empty path: keep the whole directory with [filesystem] write instead");
    }
    if p.is_absolute() || s.starts_with('~') {
        return Err("must be relative to the state directory, like `history.jsonl` or `projects/`");
    }
    if !p.components().all(|c| matches!(c, Component::Normal(_))) || s.contains("/./") {
        return Err("must not contain `.` or `..`");
    }
    Ok(super::StateKeep {
        path: p.to_path_buf(),
        dir,
    })
}

/// A protected name is a relative path matched at any depth of the
/// workspace (`.envrc`, `.git/hooks`).
fn protect_name(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        return Err("empty name");
    }
    if s.contains('\0') {
        return Err("contains a NUL byte");
    }
    let p = Path::new(s);
    if p.is_absolute() || s.starts_with('~') {
        return Err("must be relative to the workspace, like `.envrc` or `.git/hooks`");
    }
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return Err("must not contain `..`"),
        }
    }
    if parts.is_empty() {
        return Err("names nothing (use a file or directory name)");
    }
    Ok(parts.join("/"))
}

/// Environment names: letters, digits and `_`, not starting with a digit.
/// In `pass`, a trailing `*` makes a prefix pattern (`LC_*`).
/// `env:VAR`, `file:PATH` (`~` and relative paths resolved like any
/// path rule), `cmd:COMMAND ARGS`, `json:PATH#/POINTER`.
pub(crate) fn parse_secret_source(
    s: &str,
    base: &Path,
    host: &Host,
) -> Result<super::SecretSource, &'static str> {
    use super::SecretSource;
    if let Some(var) = s.strip_prefix("env:") {
        check_env_name(var, false)?;
        Ok(SecretSource::Env(var.to_string()))
    } else if let Some(path) = s.strip_prefix("file:") {
        let rule = parse_path(path, base, host)?;
        if rule.optional {
            return Err("write `optional = true` instead of a `?` path");
        }
        Ok(SecretSource::File(rule.path))
    } else if let Some(cmd) = s.strip_prefix("cmd:") {
        let argv: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        if argv.is_empty() {
            return Err("`cmd:` needs a command");
        }
        if s.contains('\0') {
            return Err("the command contains a NUL byte");
        }
        Ok(SecretSource::Cmd(argv))
    } else if let Some(rest) = s.strip_prefix("json:") {
        let (path, pointer) = rest
            .split_once("#/")
            .ok_or("`json:` names a file and a pointer: `json:PATH#/key/key`")?;
        let rule = parse_path(path, base, host)?;
        if rule.optional {
            return Err("write `optional = true` instead of a `?` path");
        }
        Ok(SecretSource::Json {
            path: rule.path,
            pointer: format!("/{pointer}"),
        })
    } else {
        Err("`from` is `env:VAR`, `file:PATH`, `cmd:COMMAND ARGS` or `json:PATH#/POINTER`")
    }
}

pub(crate) fn check_env_name(s: &str, pattern: bool) -> Result<(), &'static str> {
    let name = match s.strip_suffix('*') {
        Some(prefix) if pattern => prefix,
        Some(_) => return Err("`*` patterns are only for `pass`"),
        None => s,
    };
    if name.is_empty() {
        return Err(if pattern {
            "a pattern needs a prefix; `*` alone would pass the whole environment"
        } else {
            "empty name"
        });
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("must not start with a digit");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("use letters, digits and `_` (and a trailing `*` in `pass`)");
    }
    Ok(())
}

/// `~` at the start of the value or of any `:`-separated part expands to
/// the home directory, as in a shell assignment (`PATH=~/bin:/usr/bin`).
pub(crate) fn expand_env_value(value: &str, host: &Host) -> String {
    if !value.contains('~') {
        return value.to_string();
    }
    value
        .split(':')
        .map(|part| {
            if part == "~" || part.starts_with("~/") {
                host.expand_tilde(part).to_string_lossy().into_owned()
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// `"512M"`, `"8G"`, `"100K"`, `"1T"`, `"4096"`, `"512MiB"`, `"8GB"`:
/// powers of 1024, as `ulimit` and cgroup `memory.max` count.
pub(crate) fn parse_size(s: &str) -> Result<u64, &'static str> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err("expected a number of bytes with an optional unit K, M, G or T");
    }
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err("unknown unit; use K, M, G or T (powers of 1024)"),
    };
    let n: u64 = digits.parse().map_err(|_| "too large")?;
    n.checked_mul(1u64 << shift).ok_or("too large")
}

/// Makes toml's serde messages speak TOML: tables and arrays, keys not
/// fields, and a suggestion for a near-miss key.
fn polish(message: &str) -> String {
    let mut m = message
        .replace("invalid type: sequence", "invalid type: array")
        .replace("invalid type: map", "invalid type: table")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table");
    if let Some(rest) = m.strip_prefix("unknown field `") {
        let mut ticks = rest.split('`');
        let key = ticks.next().unwrap_or_default().to_string();
        // Serde lists the valid keys between backticks after the key.
        let valid: Vec<&str> = ticks.skip(1).step_by(2).collect();
        let suggestion = valid
            .iter()
            .map(|v| (distance(&key, v), *v))
            .filter(|(d, v)| *d <= 2 && *d < v.len())
            .min()
            .map(|(_, v)| format!(" (did you mean `{v}`?)"))
            .unwrap_or_default();
        m = format!(
            "unknown key `{key}`{suggestion}; valid keys here: {}",
            valid.join(", ")
        );
    }
    m
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            uid: 1000,
            gid: 1000,
            user: "u".into(),
            home: "/home/u".into(),
            cwd: "/work/p".into(),
            repo_root: None,
            config_dir: "/home/u/.config/cage".into(),
            state_dir: "/home/u/.local/state/cage".into(),
            env: Vec::new(),
        }
    }

    #[test]
    fn paths() {
        let h = host();
        let base = Path::new("/work/p/sub");
        // (written, path, optional)
        let table = [
            ("/usr", "/usr", false),
            ("?/lib64", "/lib64", true),
            ("~", "/home/u", false),
            ("?~/.config/git", "/home/u/.config/git", true),
            ("docs", "/work/p/sub/docs", false),
            ("./a/../b/", "/work/p/sub/b", false),
            ("../../..", "/", false),
            ("/../../etc", "/etc", false),
        ];
        for (written, path, optional) in table {
            let rule = parse_path(written, base, &h).unwrap();
            assert_eq!(rule.path, Path::new(path), "{written}");
            assert_eq!(rule.optional, optional, "{written}");
        }
        for bad in ["", "?", "~root/x", "a\0b"] {
            assert!(parse_path(bad, base, &h).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        let table = [
            ("4096", Ok(4096)),
            ("512M", Ok(512 << 20)),
            ("8G", Ok(8 << 30)),
            ("8g", Ok(8 << 30)),
            ("8 GiB", Ok(8 << 30)),
            ("100k", Ok(100 << 10)),
            ("2TB", Ok(2 << 40)),
            ("10B", Ok(10)),
        ];
        for (s, want) in table {
            assert_eq!(parse_size(s), want, "{s}");
        }
        for bad in [
            "",
            "G",
            "8X",
            "-1G",
            "1.5G",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        assert!(check_env_name("LC_*", true).is_ok());
        assert!(check_env_name("TERM", true).is_ok());
        assert!(check_env_name("*", true).is_err());
        assert!(check_env_name("LC_*", false).is_err());
        assert!(check_env_name("1X", false).is_err());
        assert!(check_env_name("A-B", false).is_err());
        assert!(check_env_name("A*B*", true).is_err());
    }

    #[test]
    fn env_values_expand_tilde_like_a_shell() {
        let h = host();
        assert_eq!(
            expand_env_value("~/.local/bin:/usr/bin:~", &h),
            "/home/u/.local/bin:/usr/bin:/home/u"
        );
        assert_eq!(expand_env_value("a~b:~x", &h), "a~b:~x");
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let l = Lines::new("ab\né x\n\nz");
        assert_eq!(l.pos(0), (1, 1));
        assert_eq!(l.pos(3), (2, 1));
        assert_eq!(l.pos(6), (2, 3)); // after the two-byte é and a space
        assert_eq!(l.pos(8), (3, 1));
        assert_eq!(l.pos(9), (4, 1));
        assert_eq!(l.pos(100), (4, 2));
    }

    #[test]
    fn polished_messages() {
        assert_eq!(
            polish("unknown field `mdoe`, expected one of `mode`, `allow`, `deny`"),
            "unknown key `mdoe` (did you mean `mode`?); valid keys here: mode, allow, deny"
        );
        assert_eq!(
            polish("unknown field `zzz`, expected `allow_ptrace`"),
            "unknown key `zzz`; valid keys here: allow_ptrace"
        );
        assert_eq!(
            polish("invalid type: string \"x\", expected a sequence"),
            "invalid type: string \"x\", expected an array"
        );
    }
}
