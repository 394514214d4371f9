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
            .and_then(|d| d.canonicalize())
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
