//! What a direct session changed on the host: the metadata of every entry
//! under the workspace and the writable grants, taken before the cage
//! starts ([`Snapshot::take`]) and compared with the tree when it ends
//! ([`Snapshot::compare`]): added, modified, deleted, mode changed.
//!
//! Metadata only, never contents: a file counts as modified when its
//! size, mtime, inode or (with the same mode) ctime moved, so a change
//! dated back with `touch -d` still shows (ctime cannot be set). Bounded:
//! past [`MAX_ENTRIES`] the snapshot stops and says the list is partial.
//! It decides nothing and changes nothing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::audit::{FileChange, FilesChanged};

/// Entries a snapshot holds at most (a few tens of MB of memory).
pub const MAX_ENTRIES: usize = 200_000;

/// Changed paths a record lists at most; all are counted.
pub const MAX_LISTED: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    dir: bool,
    mode: u32,
    size: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Meta {
    fn of(m: &fs::Metadata) -> Meta {
        Meta {
            dir: m.is_dir(),
            mode: m.mode(),
            size: m.size(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The trees' metadata at one moment.
pub struct Snapshot {
    roots: Vec<PathBuf>,
    skip: Vec<PathBuf>,
    /// Keyed by the path's bytes: ordered by memcmp, not component by
    /// component (which was most of the snapshot's time on a large tree).
    entries: BTreeMap<OsString, Meta>,
    complete: bool,
}

impl Snapshot {
    /// Walks `roots` (without following links, nor crossing into `skip`).
    pub fn take(roots: &[PathBuf], skip: &[PathBuf]) -> Snapshot {
        let mut roots: Vec<PathBuf> = roots.to_vec();
        roots.sort();
        // A root inside another is walked once.
        roots.dedup_by(|b, a| b.starts_with(a));
        let mut s = Snapshot {
            roots,
            skip: skip.to_vec(),
            entries: BTreeMap::new(),
            complete: true,
        };
        let (roots, skip) = (s.roots.clone(), s.skip.clone());
        s.complete = walk_all(&roots, &skip, &mut s.entries);
        s
    }

    /// The tree now against the snapshot.
    pub fn compare(&self) -> FilesChanged {
        let mut now = BTreeMap::new();
        let complete = walk_all(&self.roots, &self.skip, &mut now) && self.complete;
        // In the order they are found: content and mode may both change.
        let mut changes: Vec<(&Path, &'static str)> = Vec::new();
        for (path, after) in &now {
            let path = Path::new(path);
            match self.entries.get(path.as_os_str()) {
                None => changes.push((path, "added")),
                Some(before) => {
                    if before.mode != after.mode {
                        changes.push((path, "mode"));
                    }
                    // A directory's times move with its entries, which
                    // are listed themselves.
                    let content = !after.dir
                        && (before.size != after.size
                            || before.mtime != after.mtime
                            || before.ino != after.ino
                            || (before.mode == after.mode && before.ctime != after.ctime));
                    if content {
                        changes.push((path, "modified"));
                    }
                }
            }
        }
        for path in self.entries.keys() {
            if !now.contains_key(path) {
                changes.push((Path::new(path), "deleted"));
            }
        }
        tally(self.roots.clone(), complete, changes)
    }
}

/// The record of `changes` (`added`, `modified`, `deleted` or `mode`),
/// each counted and the first [`MAX_LISTED`] of them listed, in path
/// order. Shared with `session::watch`, which finds them another way.
pub fn tally<'a>(
    roots: Vec<PathBuf>,
    complete: bool,
    changes: impl IntoIterator<Item = (&'a Path, &'static str)>,
) -> FilesChanged {
    let mut out = FilesChanged {
        roots,
        added: 0,
        modified: 0,
        deleted: 0,
        mode_changed: 0,
        paths: Vec::new(),
        complete,
    };
    for (path, change) in changes {
        match change {
            "added" => out.added += 1,
            "modified" => out.modified += 1,
            "deleted" => out.deleted += 1,
            _ => out.mode_changed += 1,
        }
        if out.paths.len() < MAX_LISTED {
            out.paths.push(FileChange {
                path: path.to_path_buf(),
                change: change.to_string(),
            });
        }
    }
    out.paths.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Walks every root into `into`; false when the bound cut it short.
fn walk_all(roots: &[PathBuf], skip: &[PathBuf], into: &mut BTreeMap<OsString, Meta>) -> bool {
    let mut stack: Vec<PathBuf> = roots.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if skip.iter().any(|s| path.starts_with(s)) {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if into.len() >= MAX_ENTRIES {
                return false;
            }
            if meta.is_dir() {
                stack.push(path.clone());
            }
            into.insert(path.into_os_string(), Meta::of(&meta));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn adds_modifications_deletions_and_modes_are_told_apart() {
        let root = std::env::temp_dir().join(format!("cage-snapshot-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("sub")).unwrap();
        for f in ["same", "edit", "gone", "chmod", "sub/deep"] {
            fs::write(root.join(f), "x").unwrap();
        }
        fs::create_dir(root.join("skipped")).unwrap();
        let before = Snapshot::take(std::slice::from_ref(&root), &[root.join("skipped")]);
        fs::write(root.join("edit"), "longer").unwrap();
        fs::remove_file(root.join("gone")).unwrap();
        fs::set_permissions(root.join("chmod"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("sub/new"), "n").unwrap();
        fs::write(root.join("skipped/noise"), "n").unwrap();
        let c = before.compare();
        let got: Vec<(String, String)> = c
            .paths
            .iter()
            .map(|p| {
                let rel = p.path.strip_prefix(&root).unwrap();
                (rel.display().to_string(), p.change.clone())
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("chmod", "mode"),
            ("edit", "modified"),
            ("gone", "deleted"),
            ("sub/new", "added"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            (c.added, c.modified, c.deleted, c.mode_changed),
            (1, 1, 1, 1)
        );
        assert!(c.complete);
        fs::remove_dir_all(&root).unwrap();
    }
}
