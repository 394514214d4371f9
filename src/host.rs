//! Facts about the host, read once at start-up and passed down as data.
//!
//! Nothing here decides anything; the plan consumes these facts. Kernel
//! features are probed by `sandbox` where they are enforced and by
//! `cage doctor`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Host {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    /// The user's home directory ($HOME when absolute, else passwd).
    pub home: PathBuf,
    /// The working directory, canonical.
    pub cwd: PathBuf,
    /// The git top level above `cwd` (a directory holding `.git`), if any.
    pub repo_root: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME/cage` or `~/.config/cage`.
    pub config_dir: PathBuf,
    /// `$XDG_STATE_HOME/cage` or `~/.local/state/cage`.
    pub state_dir: PathBuf,
    /// The host environment, as passed to cage (UTF-8 entries only).
    #[serde(skip)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("reading the working directory")]
    Cwd(#[source] std::io::Error),
    #[error(
        "finding the home directory: $HOME is unset or relative and uid {uid} has no passwd entry"
    )]
    NoHome { uid: u32 },
}

impl Host {
    /// Reads the facts of the running process.
    pub fn current() -> Result<Host, HostError> {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let passwd = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        let home = match var("HOME").map(PathBuf::from) {
            Some(h) if h.is_absolute() => h,
            _ => passwd
                .as_ref()
                .map(|p| p.dir.clone())
                .ok_or(HostError::NoHome { uid })?,
        };
        let user = passwd
            .as_ref()
            .map(|p| p.name.clone())
            .or_else(|| var("USER"))
            .unwrap_or_else(|| uid.to_string());
        let cwd = std::env::current_dir()
            .and_then(|d| canonical(&d))
            .map_err(HostError::Cwd)?;
        let xdg = |name: &str, fallback: &str| match var(name).map(PathBuf::from) {
            Some(p) if p.is_absolute() => p.join("cage"),
            _ => home.join(fallback).join("cage"),
        };
        Ok(Host {
            uid,
            gid,
            user,
            repo_root: find_repo_root(&cwd),
            config_dir: xdg("XDG_CONFIG_HOME", ".config"),
            state_dir: xdg("XDG_STATE_HOME", ".local/state"),
            home,
            cwd,
            env,
        })
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces `value` wherever a variable holds it, zeroing the old
    /// text: a secret's real value becomes its placeholder, so nothing
    /// cloned from this process holds it.
    pub fn scrub_value(&mut self, value: &str, with: &str) {
        for (_, v) in &mut self.env {
            if !value.is_empty() && v.contains(value) {
                let new = v.replace(value, with);
                zeroize::Zeroize::zeroize(v);
                *v = new;
            }
        }
    }

    /// `~` and `~/x` expanded against the home directory.
    pub fn expand_tilde(&self, path: &str) -> PathBuf {
        if path == "~" {
            self.home.clone()
        } else if let Some(rest) = path.strip_prefix("~/") {
            self.home.join(rest)
        } else {
            PathBuf::from(path)
        }
    }
}

/// The nearest ancestor of `dir` (inclusive) that holds a `.git` entry.
pub fn find_repo_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").symlink_metadata().is_ok())
        .map(Path::to_path_buf)
}

/// For tests: an environment list from pairs.
pub fn env_from<I: IntoIterator<Item = (K, V)>, K: Into<OsString>, V: Into<OsString>>(
    pairs: I,
) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k.into().into_string().ok()?, v.into().into_string().ok()?)))
        .collect()
}

/// Where a command name leads on the host: the PATH lookup a shell would do,
/// every symbolic link on the way, and, for a script, its `#!` interpreter
/// looked up the same way. Facts only; the plan decides what to grant.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CommandFacts {
    /// argv[0] as given.
    pub name: String,
    /// The PATH searched (the one cage was started with).
    pub searched: String,
    /// The first executable match, if any.
    pub found: Option<FoundCommand>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FoundCommand {
    /// The match as found: `dir/name` for a PATH entry dir, or the path
    /// given when argv[0] holds a slash.
    pub path: PathBuf,
    /// Each symbolic link followed from `path` on, with its literal target.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// The file it leads to, canonical.
    pub real: PathBuf,
    /// The interpreter a `#!` line names (`#!/usr/bin/env node` is `node`
    /// looked up on the same PATH).
    pub interpreter: Option<Box<CommandFacts>>,
}

/// How deep `#!` lines are followed (a script run by a script).
const MAX_INTERPRETERS: usize = 2;
/// How many links a chain may hold, as the kernel's own limit (40).
const MAX_LINKS: usize = 40;

impl CommandFacts {
    /// Looks `argv0` up like execvp: a name with a slash is taken as is
    /// (relative to `cwd`), else the first executable file on `path`.
    pub fn probe(argv0: &str, path: &str, cwd: &Path) -> CommandFacts {
        probe_depth(argv0, path, cwd, 0)
    }
}

fn probe_depth(argv0: &str, path: &str, cwd: &Path, depth: usize) -> CommandFacts {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let hit = if argv0.contains('/') {
        Some(crate::plan::normalize_path(&cwd.join(argv0))).filter(|p| executable(p))
    } else if argv0.is_empty() {
        None
    } else {
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(argv0))
            .find(|p| executable(p))
    };
    let found = hit.and_then(|p| {
        let real = canonical(&p).ok()?;
        let links = link_chain(&p);
        let interpreter = (depth < MAX_INTERPRETERS)
            .then(|| shebang(&real))
            .flatten()
            .map(|name| Box::new(probe_depth(&name, path, cwd, depth + 1)));
        Some(FoundCommand {
            path: p,
            links,
            real,
            interpreter,
        })
    });
    CommandFacts {
        name: argv0.to_string(),
        searched: path.to_string(),
        found,
    }
}

/// The links met following `path` itself (not its directories) to a file.
/// Each link is named by its real directory (`/bin/sh` on merged /usr is
/// the link `/usr/bin/sh`), so a link is recreated where it really lives.
fn link_chain(path: &Path) -> Vec<(PathBuf, PathBuf)> {
    let real_dir = |p: &Path| {
        let parent = p.parent().unwrap_or(Path::new("/"));
        let parent = canonical(parent).unwrap_or_else(|_| parent.to_path_buf());
        match p.file_name() {
            Some(name) => parent.join(name),
            None => parent,
        }
    };
    let mut out = Vec::new();
    let mut cur = real_dir(path);
    while out.len() < MAX_LINKS {
        let Ok(target) = std::fs::read_link(&cur) else {
            break;
        };
        out.push((cur.clone(), target.clone()));
        let parent = cur.parent().unwrap_or(Path::new("/"));
        cur = real_dir(&crate::plan::normalize_path(&parent.join(target)));
    }
    out
}

/// The interpreter a script's `#!` line names: an absolute path, or for
/// `env` (with or without -S) the program it runs.
fn shebang(file: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let first = words.next()?;
    if Path::new(first).file_name().is_some_and(|f| f == "env") {
        words
            .find(|w| !w.starts_with('-') && !w.contains('='))
            .map(str::to_string)
    } else {
        Some(first.to_string())
    }
}

/// `path` with every link resolved, as `fs::canonicalize` gives it, in
/// three calls whatever its depth: an `O_PATH` open, then the name the
/// kernel keeps for that descriptor. glibc's `realpath` (behind
/// `canonicalize`) calls readlink on each component and fails on each that
/// is not a link: most of a start's failing calls. Where the kernel's name
/// is not a plain path (no /proc, the file removed meanwhile), it falls
/// back to `canonicalize`.
pub fn canonical<P: AsRef<Path>>(path: P) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let path = path.as_ref();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)?;
    match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(real) if real.is_absolute() && !real.as_os_str().as_bytes().ends_with(b" (deleted)") => {
            Ok(real)
        }
        _ => path.canonicalize(),
    }
}
