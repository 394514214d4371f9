//! Quarantine: protected paths a session created anyway (a race won
//! against the guard, a path only the end-of-session rescan sees) are
//! moved out of the host's tree into the session's directory, never
//! deleted, and `cage restore` puts one back.
//!
//! Layout: `<session dir>/quarantine/<the absolute path, without its
//! leading slash>`, so every entry says where it came from.

use std::io;
use std::path::{Path, PathBuf};

/// Where `path` goes in the quarantine of the session directory `dir`.
pub fn location(dir: &Path, path: &Path) -> PathBuf {
    dir.join("quarantine")
        .join(path.strip_prefix("/").unwrap_or(path))
}

/// What moved (from, to), and what could not, with why.
pub type Outcome = (Vec<(PathBuf, PathBuf)>, Vec<(PathBuf, String)>);

/// Moves each path into the quarantine of session directory `dir`.
/// Returns what moved (from, to) and what could not, with why.
pub fn quarantine(dir: &Path, paths: &[PathBuf]) -> Outcome {
    let mut moved = Vec::new();
    let mut failed = Vec::new();
    for path in paths {
        let to = location(dir, path);
        match move_path(path, &to) {
            Ok(()) => moved.push((path.clone(), to)),
            Err(e) => failed.push((path.clone(), format!("moving it to {}: {e}", to.display()))),
        }
    }
    (moved, failed)
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{path} is not in the quarantine of session {session} (looked for {looked})")]
    NotQuarantined {
        path: PathBuf,
        session: String,
        looked: PathBuf,
    },
    #[error("refusing to restore {path}: something exists there now; move it away first")]
    Exists { path: PathBuf },
    #[error("restoring {path} from {from}")]
    Move {
        path: PathBuf,
        from: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Puts `path` (absolute) back from the quarantine of session directory
/// `dir`, never over an existing file.
pub fn restore(dir: &Path, session: &str, path: &Path) -> Result<(), RestoreError> {
    let from = location(dir, path);
    if from.symlink_metadata().is_err() {
        return Err(RestoreError::NotQuarantined {
            path: path.to_path_buf(),
            session: session.to_string(),
            looked: from,
        });
    }
    if path.symlink_metadata().is_ok() {
        return Err(RestoreError::Exists {
            path: path.to_path_buf(),
        });
    }
    move_path(&from, path).map_err(|source| RestoreError::Move {
        path: path.to_path_buf(),
        from,
        source,
    })
}

/// rename(2), or a copy and a removal across filesystems. The parent of
/// `to` is created (owner-only) where it is missing.
fn move_path(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_tree(from, to)?;
            remove_tree(from)
        }
        r => r,
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = from.symlink_metadata()?;
    let t = meta.file_type();
    if t.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if t.is_dir() {
        std::fs::create_dir(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        std::fs::set_permissions(
            to,
            std::fs::Permissions::from_mode(meta.permissions().mode()),
        )
    } else if t.is_file() {
        std::fs::copy(from, to).map(|_| ())
    } else {
        // Sockets, fifos, devices: nothing to keep but the name.
        std::fs::write(to, b"")
    }
}

fn remove_tree(path: &Path) -> io::Result<()> {
    if path.symlink_metadata()?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarantined_path_comes_back_once_and_never_over_a_file() {
        let root = std::env::temp_dir().join(format!("cage-quarantine-{}", std::process::id()));
        let ws = root.join("ws");
        let dir = root.join("session");
        std::fs::create_dir_all(ws.join("a")).unwrap();
        std::fs::write(ws.join("a/.envrc"), "x").unwrap();
        let (moved, failed) = quarantine(&dir, &[ws.join("a/.envrc")]);
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(moved.len(), 1);
        assert!(!ws.join("a/.envrc").exists());
        std::fs::write(ws.join("a/.envrc"), "new").unwrap();
        assert!(matches!(
            restore(&dir, "s", &ws.join("a/.envrc")),
            Err(RestoreError::Exists { .. })
        ));
        std::fs::remove_file(ws.join("a/.envrc")).unwrap();
        restore(&dir, "s", &ws.join("a/.envrc")).unwrap();
        assert_eq!(std::fs::read_to_string(ws.join("a/.envrc")).unwrap(), "x");
        assert!(matches!(
            restore(&dir, "s", &ws.join("a/.envrc")),
            Err(RestoreError::NotQuarantined { .. })
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
