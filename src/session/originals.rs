//! Originals: the graded mode's backstop for the protected paths that exist
//! at the start (`GuardPlan::existing`: `.git/config`, `.git/hooks`,
//! `.envrc`, read-only grants inside the workspace). The guard refuses
//! changing them live, but it lets a call go on after its check, so a
//! thread that swaps the path string in between wins (`guard`, the race).
//! What a won race changed must not stay on the host:
//!
//! 1. At the start, before the agent runs, every entry of those trees is
//!    recorded (type, mode, a link's target, a file's SHA-256), and each
//!    file's content is copied into `<session dir>/originals/`, within
//!    [`MAX_FILE`] per file and [`MAX_TOTAL`] in all; beyond them only the
//!    hash is kept, and the run says so. At most [`MAX_ENTRIES`] entries;
//!    a tree cut short is still compared for what was recorded.
//! 2. At the end, once the agent is gone, each entry that changed (content,
//!    mode, type, link target) or went away is put back from the copy, and
//!    what the session left there is moved into the quarantine
//!    (`session::quarantine`), never deleted; an entry that appeared in a
//!    fully recorded tree is quarantined too. One `restored` record, and
//!    the lines to print.
//!
//! Host side only; nothing here runs inside the cage. Processes the agent
//! started can outlive it in the graded mode (no pid namespace): one still
//! running could change a file again after it is put back, which is why
//! the end says what it restored, for review.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::audit::{self, Session};
use crate::term;

/// The largest file whose content is copied.
pub const MAX_FILE: u64 = 1 << 20;
/// The most content copied for one session.
pub const MAX_TOTAL: u64 = 64 << 20;
/// The most entries recorded for one session.
pub const MAX_ENTRIES: usize = 4096;

/// What the start recorded.
pub struct Originals {
    /// `<session dir>/originals`, where the copies are.
    store: PathBuf,
    entries: Vec<Entry>,
    /// The kept trees, and whether each was recorded whole (only then is
    /// an entry that appears in it known to be new).
    roots: Vec<(PathBuf, bool)>,
    /// Files recorded by hash only (beyond the copy caps).
    uncopied: usize,
}

/// One entry as it was at the start.
struct Entry {
    path: PathBuf,
    /// Permission bits.
    mode: u32,
    kind: Kind,
}

#[derive(PartialEq, Eq)]
enum Kind {
    Dir,
    Link(PathBuf),
    /// The content's SHA-256, and whether a copy was kept.
    File([u8; 32], bool),
    /// A fifo, socket or device: its type only.
    Other(u32),
}

impl Originals {
    /// Step 1: records the trees `kept` before the agent runs, copying
    /// into `session_dir`. Prints one note when a cap left something
    /// without a copy.
    pub fn record(kept: &[PathBuf], session_dir: &Path) -> Originals {
        let mut o = Originals {
            store: session_dir.join("originals"),
            entries: Vec::new(),
            roots: Vec::new(),
            uncopied: 0,
        };
        let mut copied = 0u64;
        for root in kept {
            let mut found = Vec::new();
            let whole = walk(root, MAX_ENTRIES - o.entries.len(), &mut found);
            o.roots.push((root.clone(), whole));
            for (path, meta) in found {
                let kind = match o.file_kind(&path, &meta, &mut copied) {
                    Some(k) => k,
                    None => continue,
                };
                o.entries.push(Entry {
                    path,
                    mode: meta.mode() & 0o7777,
                    kind,
                });
            }
        }
        let cut = o.roots.iter().filter(|(_, whole)| !whole).count();
        if o.uncopied > 0 || cut > 0 {
            term::emit(&format!(
                "cage: note: graded mode: {} protected file(s) have no copy (over {} MiB each or \
                 {} MiB in all) and {cut} protected tree(s) hold more than {MAX_ENTRIES} entries: \
                 a change there is found at the end but cannot be undone",
                o.uncopied,
                MAX_FILE >> 20,
                MAX_TOTAL >> 20
            ));
        }
        o
    }

    /// The kind of `path` at the start; a file's content copied when the
    /// caps allow. `None`: it could not be read (then it is not kept).
    fn file_kind(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        copied: &mut u64,
    ) -> Option<Kind> {
        let t = meta.file_type();
        if t.is_dir() {
            return Some(Kind::Dir);
        }
        if t.is_symlink() {
            return std::fs::read_link(path).ok().map(Kind::Link);
        }
        if !t.is_file() {
            return Some(Kind::Other(meta.mode() & libc::S_IFMT));
        }
        let copy = meta.len() <= MAX_FILE && *copied + meta.len() <= MAX_TOTAL;
        let to = copy.then(|| location(&self.store, path));
        match hash_file(path, to.as_deref()) {
            Ok(hash) => {
                if copy {
                    *copied += meta.len();
                } else {
                    self.uncopied += 1;
                }
                Some(Kind::File(hash, copy))
            }
            Err(_) => None,
        }
    }

    /// Step 2: puts back what the session changed, quarantines what it
    /// left in the way or added, writes one record to `session`'s log
    /// when anything was done, and returns the lines to print.
    pub fn finish(self, session: &Session) -> Vec<String> {
        let out = self.settle(&session.dir);
        // The copies are the user's own files: kept only while one of
        // them is still needed.
        if out.failed.is_empty() {
            let _ = std::fs::remove_dir_all(&self.store);
        }
        if out.is_empty() {
            return Vec::new();
        }
        let _ = session.log.write(audit::Record::Restored(audit::Restored {
            restored: out.restored.clone(),
            moved: out.moved.clone(),
            failed: out.failed.clone(),
        }));
        out.lines(session)
    }

    /// Step 2 without the record: puts back and quarantines (into the
    /// session directory `session_dir`).
    fn settle(&self, session_dir: &Path) -> Restored {
        let mut out = Restored::default();
        for e in &self.entries {
            self.put_back(e, session_dir, &mut out);
        }
        let known: BTreeSet<&Path> = self.entries.iter().map(|e| e.path.as_path()).collect();
        for (root, _) in self.roots.iter().filter(|(_, whole)| *whole) {
            // Bounded: a session that won many races inside a kept
            // directory must not make its end unbounded.
            let mut now = Vec::new();
            if !walk(root, 2 * MAX_ENTRIES, &mut now) {
                out.fail(
                    root,
                    format!(
                        "it holds more than {} entries now; those past them were not checked",
                        2 * MAX_ENTRIES
                    ),
                );
            }
            let mut gone: Vec<PathBuf> = Vec::new();
            for (path, _) in now {
                if known.contains(path.as_path()) || gone.iter().any(|g| path.starts_with(g)) {
                    continue;
                }
                out.quarantine(session_dir, &path);
                gone.push(path);
            }
        }
        out
    }

    /// One entry: left alone when unchanged; else what is there now goes
    /// to the quarantine and the original comes back.
    fn put_back(&self, e: &Entry, session_dir: &Path, out: &mut Restored) {
        let now = e.path.symlink_metadata().ok();
        if let Some(meta) = &now
            && self.same(e, meta)
        {
            return;
        }
        // A directory whose mode alone changed keeps what it holds.
        if let Some(meta) = &now
            && meta.is_dir()
            && e.kind == Kind::Dir
        {
            match set_mode(&e.path, e.mode) {
                Ok(()) => out.restored.push(e.path.clone()),
                Err(err) => out.fail(&e.path, format!("setting its mode back: {err}")),
            }
            return;
        }
        if now.is_some() && !out.quarantine(session_dir, &e.path) {
            return;
        }
        match self.recreate(e) {
            Ok(()) => out.restored.push(e.path.clone()),
            Err(why) => out.fail(&e.path, why),
        }
    }

    /// Whether `meta` (and the content there now) is the entry's.
    fn same(&self, e: &Entry, meta: &std::fs::Metadata) -> bool {
        if meta.mode() & 0o7777 != e.mode && !meta.file_type().is_symlink() {
            return false;
        }
        match &e.kind {
            Kind::Dir => meta.is_dir(),
            Kind::Link(target) => {
                meta.file_type().is_symlink()
                    && std::fs::read_link(&e.path).ok().as_ref() == Some(target)
            }
            Kind::File(hash, _) => {
                meta.is_file() && hash_file(&e.path, None).ok().as_ref() == Some(hash)
            }
            Kind::Other(t) => meta.mode() & libc::S_IFMT == *t,
        }
    }

    /// Makes the entry again where nothing is now.
    fn recreate(&self, e: &Entry) -> Result<(), String> {
        match &e.kind {
            Kind::Dir => std::fs::create_dir(&e.path)
                .and_then(|()| set_mode(&e.path, e.mode))
                .map_err(|err| format!("making the directory again: {err}")),
            Kind::Link(target) => std::os::unix::fs::symlink(target, &e.path)
                .map_err(|err| format!("making the link again: {err}")),
            Kind::File(_, true) => {
                let copy = location(&self.store, &e.path);
                copy_back(&copy, &e.path, e.mode).map_err(|err| {
                    format!(
                        "copying the original back: {err}; the original is in {}",
                        copy.display()
                    )
                })
            }
            Kind::File(_, false) => Err(format!(
                "it changed, and it was too large for cage to keep a copy (over {} MiB, or {} MiB \
                 in all): the session's version is in the quarantine, the original is lost",
                MAX_FILE >> 20,
                MAX_TOTAL >> 20
            )),
            Kind::Other(_) => Err("a special file: cage cannot make it again".into()),
        }
    }
}

/// What the end did.
#[derive(Default)]
struct Restored {
    restored: Vec<PathBuf>,
    moved: Vec<(PathBuf, PathBuf)>,
    failed: Vec<(PathBuf, String)>,
}

impl Restored {
    fn is_empty(&self) -> bool {
        self.restored.is_empty() && self.moved.is_empty() && self.failed.is_empty()
    }

    fn fail(&mut self, path: &Path, why: String) {
        self.failed.push((path.to_path_buf(), why));
    }

    /// Moves `path` into the quarantine; false when it could not.
    fn quarantine(&mut self, session_dir: &Path, path: &Path) -> bool {
        let (moved, failed) = super::quarantine::quarantine(session_dir, &[path.to_path_buf()]);
        self.moved.extend(moved);
        let ok = failed.is_empty();
        self.failed.extend(failed);
        ok
    }

    /// The summary, like the quarantine's: what came back, where the
    /// session's versions are, and what could not be put back.
    fn lines(&self, session: &Session) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.restored.is_empty() || !self.moved.is_empty() {
            lines.push(format!(
                "cage: warning: this session changed {} protected path(s) that existed at its \
                 start (the guard lost a race, or a process outlived the agent); cage put the \
                 originals back, and moved what the session left into {}:",
                self.restored.len().max(self.moved.len()),
                term::escape_path(&session.dir.join("quarantine"))
            ));
            for p in &self.restored {
                lines.push(format!("cage:   restored {}", term::escape_path(p)));
            }
            for (from, to) in &self.moved {
                // Something new has nothing in its place: it can go back.
                let hint = match self.restored.contains(from) {
                    true => format!("the session's version, now {}", term::escape_path(to)),
                    false => format!(
                        "new; put back: cage restore {} {}",
                        session.id,
                        term::escape_path(from)
                    ),
                };
                lines.push(format!(
                    "cage:   moved {}    ({hint})",
                    term::escape_path(from)
                ));
            }
        }
        for (path, why) in &self.failed {
            lines.push(format!(
                "cage: error: {} could not be put back ({}); review it before running anything",
                term::escape_path(path),
                term::escape(why)
            ));
        }
        lines
    }
}

/// Where the copy of `path` lives in `store`.
fn location(store: &Path, path: &Path) -> PathBuf {
    store.join(path.strip_prefix("/").unwrap_or(path))
}

/// Every entry of the tree at `root` (itself first, parents before
/// children, links not followed), at most `limit`; false when cut short.
fn walk(root: &Path, limit: usize, out: &mut Vec<(PathBuf, std::fs::Metadata)>) -> bool {
    let mut stack = vec![root.to_path_buf()];
    let mut taken = 0;
    while let Some(path) = stack.pop() {
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if taken == limit {
            return false;
        }
        taken += 1;
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            // Reversed onto the stack: popped in name order.
            children.sort_by(|a, b| b.cmp(a));
            stack.extend(children);
        }
        out.push((path, meta));
    }
    true
}

/// The SHA-256 of the file at `path` (never through a link), its content
/// copied to `copy` (owner-only, parents made) on the way.
fn hash_file(path: &Path, copy: Option<&Path>) -> io::Result<[u8; 32]> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let mut to = match copy {
        Some(to) => Some(create_owner_only(to)?),
        None => None,
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(to) = to.as_mut() {
            to.write_all(&buf[..n])?;
        }
    }
    Ok(hasher.finalize().into())
}

/// A new file at `path` (0600), its parents made owner-only.
fn create_owner_only(path: &Path) -> io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The copy `from` written as a new file at `to` (never through a link,
/// never over a file), with `mode`.
fn copy_back(from: &Path, to: &Path, mode: u32) -> io::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)?;
    io::copy(&mut src, &mut dst)?;
    dst.set_permissions(std::fs::Permissions::from_mode(mode))
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_session_changed_comes_back_and_its_version_is_quarantined() {
        let root = std::env::temp_dir().join(format!("cage-originals-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (ws, dir) = (root.join("ws"), root.join("session"));
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let (config, hook, envrc) = (
            ws.join(".git/config"),
            ws.join(".git/hooks/pre-commit"),
            ws.join(".envrc"),
        );
        std::fs::write(&config, "[core]\n").unwrap();
        std::fs::write(&hook, "#!/bin/sh\n").unwrap();
        std::fs::write(&envrc, "export A=1\n").unwrap();
        set_mode(&hook, 0o644).unwrap();
        let hooks = ws.join(".git/hooks");
        let o = Originals::record(&[config.clone(), hooks.clone(), envrc.clone()], &dir);
        // Nothing changed: nothing done.
        assert!(o.settle(&dir).is_empty());
        // Rewritten, made executable, removed, and a new hook planted.
        std::fs::write(&config, "[core]\n\thooksPath = /tmp\n").unwrap();
        set_mode(&hook, 0o755).unwrap();
        std::fs::remove_file(&envrc).unwrap();
        std::fs::write(hooks.join("post-checkout"), "evil").unwrap();
        let out = o.settle(&dir);
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        assert_eq!(std::fs::read_to_string(&config).unwrap(), "[core]\n");
        assert_eq!(std::fs::read_to_string(&envrc).unwrap(), "export A=1\n");
        let mode = hook.symlink_metadata().unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert!(!hooks.join("post-checkout").exists());
        let q = |p: &Path| super::super::quarantine::location(&dir, p);
        assert_eq!(
            std::fs::read_to_string(q(&config)).unwrap(),
            "[core]\n\thooksPath = /tmp\n"
        );
        assert_eq!(
            std::fs::read_to_string(q(&hooks.join("post-checkout"))).unwrap(),
            "evil"
        );
        assert_eq!(out.restored.len(), 3, "{:?}", out.restored);
        // Put back: the next look finds nothing to do.
        assert!(o.settle(&dir).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
