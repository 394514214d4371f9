//! `cage apply`: lands an overlay session's changes on the host workspace.
//!
//! Promises, and how they are kept:
//!
//! 1. Nothing the user changed meanwhile is overwritten. A host file whose
//!    ctime is not older than the session's start (read from the same
//!    filesystem clock, see `session::Reserved::start`) changed on the
//!    host since; such files
//!    are listed and nothing is written, unless `--force`. ctime, not
//!    mtime: no unprivileged call sets it back. This needs nothing from the
//!    session's end, so a session whose supervisor was killed is checked
//!    the same way. Directories are not checked by their own ctime (adding
//!    or removing an entry changes it, apply's own work included); their
//!    entries are.
//! 2. Each file is replaced atomically: written to a temporary name in the
//!    same directory, synced, then renamed over the old one.
//! 3. No symbolic link in the workspace is followed: every path is walked
//!    from the workspace's root one directory descriptor at a time with
//!    `O_NOFOLLOW`, and every write is relative to such a descriptor.
//! 4. An interrupted apply can simply be run again: changes are computed
//!    afresh against the host, so what already landed is equal and drops
//!    out, and a temporary file a crash left behind has a fixed name that
//!    the next run removes first.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};

use super::Record;
use super::changes::{self, Change, ChangesError, Kind, Node, open_nofollow};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Changes(#[from] ChangesError),
    #[error(
        "{} path(s) changed on the host since session {id} started ({started}); nothing was \
         applied. Review them, then run `cage apply --force` to overwrite them:\n  {}",
        paths.len(),
        paths.iter().map(|p| crate::term::escape_path(p)).collect::<Vec<_>>().join("\n  ")
    )]
    ChangedOnHost {
        id: String,
        started: String,
        paths: Vec<PathBuf>,
    },
    #[error("{step} {}", crate::term::escape_path(path))]
    Step {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing to write through {}: it is not a directory on the host (a symbolic link?); \
         cage never follows links in the workspace",
        crate::term::escape_path(path)
    )]
    NotADirectory { path: PathBuf },
}

fn step(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ApplyError {
    let path = path.to_path_buf();
    move |source| ApplyError::Step { step, path, source }
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

/// What an apply did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Paths written, created or removed, in order.
    pub applied: Vec<Change>,
    /// Special files never applied.
    pub skipped: Vec<PathBuf>,
    /// Changed on the host since, overwritten because of `--force`.
    pub forced: Vec<PathBuf>,
    /// Protected paths left out, with the protected name each falls
    /// under: never applied unless named with `--include-protected`.
    pub protected: Vec<(PathBuf, String)>,
}

/// Applies the changes of session `record` (upper layer `upper`) under the
/// paths `only` (workspace-relative; empty: all). Protected paths (by
/// `plan::is_protected`, as `cage diff` flags them) fail closed: each is
/// left out, with everything below it, unless it lies under one of
/// `include_protected`, which the user named one by one.
pub fn apply(
    record: &Record,
    upper: &Path,
    only: &[PathBuf],
    include_protected: &[PathBuf],
    force: bool,
) -> Result<Outcome, ApplyError> {
    let ws = &record.workspace;
    let all = changes::collect(upper, ws, &record.protect)?;
    let mut left_out: Vec<(PathBuf, String)> = Vec::new();
    let mut selected: Vec<Change> = Vec::new();
    for c in all {
        if !(only.is_empty() || only.iter().any(|p| c.path.starts_with(p))) {
            continue;
        }
        let named = include_protected.iter().any(|p| c.path.starts_with(p));
        // Below a path already left out (a new `.git/x/` and its
        // `config`): left out too, so no parent is created for it.
        let under = left_out.iter().any(|(p, _)| c.path.starts_with(p));
        match (&c.protected, named) {
            (Some(name), false) => left_out.push((c.path.clone(), name.clone())),
            (None, false) if under => {
                let name = left_out
                    .iter()
                    .find(|(p, _)| c.path.starts_with(p))
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default();
                left_out.push((c.path.clone(), name));
            }
            _ => selected.push(c),
        }
    }

    // 1. Changed on the host since the start: refuse before writing.
    let threshold = record.started_ns;
    let mut changed = Vec::new();
    for c in &selected {
        if matches!(c.old, Node::Missing | Node::Dir { .. }) {
            continue;
        }
        let path = ws.join(&c.path);
        let meta = std::fs::symlink_metadata(&path).map_err(step("checking", &path))?;
        let ctime = meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec();
        if ctime >= threshold {
            changed.push(c.path.clone());
        }
    }
    if !changed.is_empty() && !force {
        return Err(ApplyError::ChangedOnHost {
            id: record.id.clone(),
            started: record.started.clone(),
            paths: changed,
        });
    }

    // 2. Land each change, in the order collected (a deleted tree's
    //    entries before the tree, an added directory before its entries).
    let root = open_root(ws)?;
    let mut outcome = Outcome {
        forced: changed,
        protected: left_out,
        ..Outcome::default()
    };
    for c in selected {
        if matches!(c.new, Node::Special) {
            outcome.skipped.push(c.path.clone());
            continue;
        }
        let (Some(parent), Some(name)) = (c.path.parent(), c.path.file_name()) else {
            continue;
        };
        let dir = open_dir(&root, ws, upper, parent)?;
        let host_path = ws.join(&c.path);
        let up = upper.join(&c.path);
        match (&c.kind, &c.new) {
            (Kind::Deleted, _) => {
                remove_tree_at(&dir, name, &host_path)?;
            }
            (_, Node::File { mode, .. }) => {
                replace_dir_with_nothing(&dir, name, &host_path)?;
                write_file(
                    &dir,
                    name,
                    &up,
                    *mode,
                    &tmp_name(name, &record.id),
                    &host_path,
                )?;
            }
            (_, Node::Symlink { target }) => {
                replace_dir_with_nothing(&dir, name, &host_path)?;
                let tmp = tmp_name(name, &record.id);
                let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
                symlinkat(target.as_path(), &dir, tmp.as_os_str())
                    .map_err(|e| step("creating the link", &host_path)(nix_io(e)))?;
                renameat(&dir, tmp.as_os_str(), &dir, name)
                    .map_err(|e| step("renaming into place", &host_path)(nix_io(e)))?;
            }
            (_, Node::Dir { mode }) => {
                make_dir_at(&dir, name, *mode, &host_path)?;
            }
            (_, Node::Missing | Node::Special) => {}
        }
        outcome.applied.push(c);
    }
    Ok(outcome)
}

/// A fixed temporary name next to `name`, unique to the session, so a
/// rerun finds and removes what a crash left.
fn tmp_name(name: &OsStr, session: &str) -> OsString {
    let mut t = OsString::from(".");
    t.push(name);
    t.push(format!(".cage-apply-{session}"));
    if t.len() > 255 {
        use sha2::Digest;
        let h = sha2::Sha256::digest(name.as_bytes());
        let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
        return OsString::from(format!(".cage-apply-{session}-{hex}"));
    }
    t
}

fn open_root(ws: &Path) -> Result<OwnedFd, ApplyError> {
    nix::fcntl::open(
        ws,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("opening the workspace", ws)(nix_io(e)))
}

/// Opens the host directory `rel` below the workspace root, one component
/// at a time without following links; a missing component is created with
/// the mode its counterpart has in the upper layer.
fn open_dir(root: &OwnedFd, ws: &Path, upper: &Path, rel: &Path) -> Result<OwnedFd, ApplyError> {
    let mut cur = root.try_clone().map_err(step("opening", ws))?;
    let mut path = ws.to_path_buf();
    let mut up = upper.to_path_buf();
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        path.push(name);
        up.push(name);
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let next = match openat(&cur, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => {
                let mode = std::fs::symlink_metadata(&up)
                    .map(|m| m.mode() & changes::MODE_MASK)
                    .unwrap_or(0o755);
                make_dir_at(&cur, name, mode, &path)?;
                openat(&cur, name, flags, Mode::empty())
                    .map_err(|e| step("opening", &path)(nix_io(e)))?
            }
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
                return Err(ApplyError::NotADirectory { path });
            }
            Err(e) => return Err(step("opening", &path)(nix_io(e))),
        };
        cur = next;
    }
    Ok(cur)
}

fn make_dir_at(dir: &OwnedFd, name: &OsStr, mode: u32, path: &Path) -> Result<(), ApplyError> {
    match mkdirat(dir, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(step("creating the directory", path)(nix_io(e))),
    }
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => ApplyError::NotADirectory {
            path: path.to_path_buf(),
        },
        e => step("opening", path)(nix_io(e)),
    })?;
    // The umask narrowed mkdir's mode; fchmod sets it exactly.
    fchmod(&fd, Mode::from_bits_truncate(mode))
        .map_err(|e| step("setting the mode of", path)(nix_io(e)))
}

/// A directory where a file or link must go is removed first (rename(2)
/// cannot replace a directory with a file).
fn replace_dir_with_nothing(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<(), ApplyError> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => remove_tree_at(dir, name, path),
        _ => Ok(()),
    }
}

fn write_file(
    dir: &OwnedFd,
    name: &OsStr,
    src: &Path,
    mode: u32,
    tmp: &OsStr,
    path: &Path,
) -> Result<(), ApplyError> {
    let _ = unlinkat(dir, tmp, UnlinkatFlags::NoRemoveDir);
    let fd = openat(
        dir,
        tmp,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| step("creating a temporary file for", path)(nix_io(e)))?;
    let mut out = File::from(fd);
    let written = (|| {
        let mut input = open_nofollow(src)?;
        io::copy(&mut input, &mut out)?;
        fchmod(out.as_fd(), Mode::from_bits_truncate(mode)).map_err(nix_io)?;
        out.sync_all()
    })();
    if let Err(e) = written {
        let _ = unlinkat(dir, tmp, UnlinkatFlags::NoRemoveDir);
        return Err(step("writing", path)(e));
    }
    renameat(dir, tmp, dir, name).map_err(|e| step("renaming into place", path)(nix_io(e)))
}

/// Removes `name` in `dir`: a file or link, or a directory and everything
/// in it, never following a link. Missing is done.
fn remove_tree_at(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<(), ApplyError> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(step("checking", path)(nix_io(e))),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| step("removing", path)(nix_io(e)));
    }
    let sub = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("opening", path)(nix_io(e)))?;
    let listing = sub.try_clone().map_err(step("opening", path))?;
    let mut d = nix::dir::Dir::from_fd(listing).map_err(|e| step("listing", path)(nix_io(e)))?;
    let names: Vec<OsString> = d
        .iter()
        .filter_map(Result::ok)
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    for n in names {
        remove_tree_at(&sub, &n, &path.join(&n))?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir).map_err(|e| step("removing", path)(nix_io(e)))
}
