//! The selftest's throwaway host: a private directory under the temporary
//! directory holding a copy of the workspace's shape (`ws/`), an empty
//! home with a decoy key (`home/`) and cage's state directory for the
//! session (`state/`). Removed whole at the end.
//!
//! The shape is directories and empty files (no content ever leaves the
//! real workspace, except `.cage.toml` files, which are policy), a minimal
//! git directory where the workspace has one, bounded in size so the
//! selftest stays quick on a large tree.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::host::Host;

/// At most this many entries of the workspace are copied (shape only).
const MAX_ENTRIES: usize = 2000;
/// And no deeper than this.
const MAX_DEPTH: usize = 12;
/// Variables whose values pass as they are (these and the CA variables,
/// `plan::CA_VARS`): they name no secret. Every
/// other variable keeps its name (so the plan is the same) with a
/// placeholder for its value: a profile that passes an API key passes
/// nothing real.
const KEPT_VARS: &[&str] = &[
    "PATH",
    "TERM",
    "LANG",
    "COLORTERM",
    "USER",
    "LOGNAME",
    "SHELL",
    "TZ",
    "NO_COLOR",
];
/// These would point cage's own directories at the real ones.
const DROPPED_VARS: &[&str] = &[
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
];

pub struct Shadow {
    root: PathBuf,
    home: PathBuf,
    ws: PathBuf,
    /// The real workspace the shape was copied from.
    real_ws: PathBuf,
    /// The working directory, relative to the workspace.
    cwd_rel: PathBuf,
    token: String,
    entries: usize,
    /// Paths of the home given a shape because a rule requires them.
    entries_home: std::cell::Cell<usize>,
}

fn token() -> io::Result<String> {
    let mut b = [0u8; 8];
    fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new().mode(mode).create(path)
}

fn write_new(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?
        .write_all(content)
}

impl Shadow {
    pub fn create(real: &Host) -> io::Result<Shadow> {
        let token = token()?;
        let root = std::env::temp_dir().join(format!(
            "cage-selftest-{}-{}",
            std::process::id(),
            &token[..8]
        ));
        mkdir(&root, 0o700)?;
        let real_ws = real.repo_root.clone().unwrap_or_else(|| real.cwd.clone());
        let mut shadow = Shadow {
            home: root.join("home"),
            ws: root.join("ws"),
            cwd_rel: real
                .cwd
                .strip_prefix(&real_ws)
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            root,
            real_ws,
            token,
            entries: 0,
            entries_home: std::cell::Cell::new(0),
        };
        // From here on a failure removes what was made.
        match shadow.fill(real) {
            Ok(()) => Ok(shadow),
            Err(e) => {
                let _ = shadow.remove();
                Err(e)
            }
        }
    }

    fn fill(&mut self, real: &Host) -> io::Result<()> {
        mkdir(&self.home, 0o700)?;
        mkdir(&self.root.join("state"), 0o700)?;
        mkdir(&self.ws, 0o755)?;
        // cage's own directories, and this copy itself (when the workspace
        // holds the temporary directory).
        let skip = [
            real.state_dir.clone(),
            real.config_dir.clone(),
            self.root.clone(),
        ];
        let (real_ws, ws) = (self.real_ws.clone(), self.ws.clone());
        self.copy_shape(&real_ws, &ws, 0, &skip)?;
        if real.repo_root.is_some() {
            minimal_git(&self.ws.join(".git"))?;
        }
        fs::create_dir_all(self.ws.join(&self.cwd_rel))?;
        // The decoy key, where the built-in hide list says keys live.
        mkdir(&self.home.join(".ssh"), 0o700)?;
        let key = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\ncage-selftest decoy {}\n\
             -----END OPENSSH PRIVATE KEY-----\n",
            self.token
        );
        write_new(&self.decoy_key(), key.as_bytes(), 0o600)
    }

    fn copy_shape(
        &mut self,
        from: &Path,
        to: &Path,
        depth: usize,
        skip: &[PathBuf],
    ) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let Ok(dir) = fs::read_dir(from) else {
            return Ok(());
        };
        let mut names: Vec<_> = dir.filter_map(Result::ok).collect();
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            if self.entries >= MAX_ENTRIES {
                return Ok(());
            }
            let name = entry.file_name();
            let src = entry.path();
            // Git directories are made minimal (top) or left out (nested):
            // their content is the repository's, not its shape.
            if name == ".git" || skip.contains(&src) {
                continue;
            }
            let Ok(meta) = src.symlink_metadata() else {
                continue;
            };
            let dst = to.join(&name);
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                mkdir(&dst, mode | 0o700)?;
                self.entries += 1;
                self.copy_shape(&src, &dst, depth + 1, skip)?;
            } else if meta.is_file() {
                let content = if name == ".cage.toml" {
                    let mut buf = Vec::new();
                    fs::File::open(&src)
                        .and_then(|f| f.take(1 << 20).read_to_end(&mut buf))
                        .ok();
                    buf
                } else {
                    Vec::new()
                };
                write_new(&dst, &content, mode | 0o600)?;
                self.entries += 1;
            }
            // Links, sockets, fifos and devices are not copied: a link could
            // name anything on the host, and the selftest plants its own
            // socket.
        }
        Ok(())
    }

    /// The host the selftest's plan is built for: the user's ids, config
    /// and PATH, with the copy as the workspace and the temporary home.
    pub fn host(&self, real: &Host, decoy_env: &str) -> Host {
        let home = self.home.to_string_lossy().into_owned();
        let mut env: Vec<(String, String)> = real
            .env
            .iter()
            .filter(|(k, _)| !DROPPED_VARS.contains(&k.as_str()) && k != decoy_env)
            .map(|(k, v)| {
                let value = if k == "HOME" {
                    home.clone()
                } else if KEPT_VARS.contains(&k.as_str())
                    || crate::plan::CA_VARS.contains(&k.as_str())
                    || k.starts_with("LC_")
                {
                    v.clone()
                } else {
                    "cage-selftest-placeholder".to_string()
                };
                (k.clone(), value)
            })
            .collect();
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".into(), home));
        }
        env.push((decoy_env.to_string(), format!("decoy-{}", self.token)));
        let cwd = self.ws.join(&self.cwd_rel);
        Host {
            uid: real.uid,
            gid: real.gid,
            user: real.user.clone(),
            home: self.home.clone(),
            repo_root: real.repo_root.as_ref().map(|_| self.ws.clone()),
            cwd,
            config_dir: real.config_dir.clone(),
            state_dir: self.root.join("state"),
            env,
        }
    }

    /// Where the copy of `real_path` (a file in the real workspace) is,
    /// if it was copied.
    pub fn mirror(&self, real_path: &Path) -> Option<PathBuf> {
        let rel = real_path.strip_prefix(&self.real_ws).ok()?;
        let copy = self.ws.join(rel);
        copy.is_file().then_some(copy)
    }

    /// Gives `copy` (in the temporary home) the shape of `real` (in the
    /// real home): an empty directory or file with its mode. False when
    /// `real` does not exist either.
    pub fn mirror_home(&self, real: &Path, copy: &Path) -> io::Result<bool> {
        let Ok(meta) = real.metadata() else {
            return Ok(false);
        };
        if !copy.starts_with(&self.home) || copy.symlink_metadata().is_ok() {
            return Ok(false);
        }
        if let Some(parent) = copy.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            mkdir(copy, mode | 0o700)?;
        } else {
            write_new(copy, b"", mode | 0o600)?;
        }
        self.entries_home.set(self.entries_home.get() + 1);
        Ok(true)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn workspace(&self) -> &Path {
        &self.ws
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn decoy_key(&self) -> PathBuf {
        self.home.join(".ssh/id_ed25519")
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Removes everything; a directory the cage left unwritable or
    /// unreadable is opened up first.
    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(_) => {
                open_up(&self.root);
                fs::remove_dir_all(&self.root)
            }
        }
    }
}

impl Drop for Shadow {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

fn open_up(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}

/// What git needs to call a directory a repository, and the protected
/// parts the selftest tries to plant in.
fn minimal_git(dir: &Path) -> io::Result<()> {
    mkdir(dir, 0o755)?;
    for sub in [
        "hooks",
        "info",
        "objects",
        "objects/info",
        "objects/pack",
        "refs",
        "refs/heads",
        "refs/tags",
    ] {
        mkdir(&dir.join(sub), 0o755)?;
    }
    write_new(&dir.join("HEAD"), b"ref: refs/heads/main\n", 0o644)?;
    write_new(
        &dir.join("config"),
        b"[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n",
        0o644,
    )?;
    write_new(&dir.join("info/exclude"), b"", 0o644)
}
