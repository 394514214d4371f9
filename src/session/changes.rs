//! An overlay session's changes: its upper layer read against the host
//! workspace as it is now. Only the upper layer is walked, so the cost
//! follows the size of the change, not of the workspace.
//!
//! How overlayfs records a change in the upper layer (mounted with
//! `userxattr`, so without redirects or metacopy; see the kernel's
//! Documentation/filesystems/overlayfs.rst):
//!
//! 1. a new or changed file, link or directory is there whole;
//! 2. a deletion is a *whiteout*: a character device 0/0 (or, from Linux
//!    6.7 on, an empty file carrying `user.overlay.whiteout`);
//! 3. a directory that replaces one from the lower layer (`rm -r d; mkdir
//!    d`) is *opaque*: `user.overlay.opaque` is `y`, and nothing of the
//!    lower directory shows through it;
//! 4. a rename is a whiteout at the old name and a copy at the new one.
//!
//! Reads never follow a symbolic link: links are changes like any file.
//! This module decides nothing about applying; it only says what differs.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::sys;

/// Mode bits cage compares and applies: permissions only. A setuid,
/// setgid or sticky bit from the session is never carried to the host.
pub const MODE_MASK: u32 = 0o777;

#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("reading the upper layer at {}", crate::term::escape_path(path))]
    Upper {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the workspace at {}", crate::term::escape_path(path))]
    Host {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One node of a tree, as far as a change is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Missing,
    File {
        mode: u32,
        len: u64,
    },
    Symlink {
        target: PathBuf,
    },
    Dir {
        mode: u32,
    },
    /// A fifo, socket or device node: never applied.
    Special,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::Dir { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Added,
    Modified,
    Deleted,
}

/// One path that differs: what the host has (`old`) and what the session
/// left (`new`). Directories appear when they are added, deleted or change
/// mode; their contents appear as changes of their own, children after
/// their directory for additions and before it for deletions.
#[derive(Clone, Debug)]
pub struct Change {
    /// Relative to the workspace.
    pub path: PathBuf,
    pub kind: Kind,
    pub old: Node,
    pub new: Node,
    /// The protected name this path falls under, if any.
    pub protected: Option<String>,
}

/// Counts for the end-of-session line and `cage sessions`: files and
/// links only (directories are containers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    pub protected: Vec<PathBuf>,
}

pub fn summarize(changes: &[Change]) -> Summary {
    let mut s = Summary::default();
    for c in changes {
        if c.protected.is_some() && !s.protected.contains(&c.path) {
            s.protected.push(c.path.clone());
        }
        if c.old.is_dir() && c.new.is_dir() || c.new.is_dir() && c.kind == Kind::Added {
            continue;
        }
        if c.old.is_dir() && c.kind == Kind::Deleted {
            continue;
        }
        match c.kind {
            Kind::Added => s.added += 1,
            Kind::Modified => s.modified += 1,
            Kind::Deleted => s.deleted += 1,
        }
    }
    s
}

/// What an upper-layer entry means.
#[derive(Debug, PartialEq, Eq)]
pub enum UpperEntry {
    /// A deletion of whatever the lower layer has at that name.
    Whiteout,
    /// A directory; `opaque` hides the lower directory's contents.
    Dir {
        mode: u32,
        opaque: bool,
    },
    Node(Node),
}

/// Classifies the upper-layer entry at `path` (never following a link).
pub fn read_upper_entry(path: &Path) -> io::Result<UpperEntry> {
    let meta = fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    if ft.is_char_device() && meta.rdev() == 0 {
        return Ok(UpperEntry::Whiteout);
    }
    if ft.is_dir() {
        let opaque = sys::lgetxattr(path, c"user.overlay.opaque")?;
        return Ok(UpperEntry::Dir {
            mode: meta.mode() & MODE_MASK,
            opaque: is_opaque(opaque.as_deref()),
        });
    }
    if ft.is_file() && meta.len() == 0 && sys::lgetxattr(path, c"user.overlay.whiteout")?.is_some()
    {
        return Ok(UpperEntry::Whiteout);
    }
    Ok(UpperEntry::Node(node_of(path, &meta)?))
}

/// `user.overlay.opaque` = `y` marks an opaque directory; `x` (Linux 6.7)
/// marks one that merely holds xattr whiteouts.
pub fn is_opaque(value: Option<&[u8]>) -> bool {
    value == Some(b"y")
}

fn node_of(path: &Path, meta: &fs::Metadata) -> io::Result<Node> {
    let ft = meta.file_type();
    Ok(if ft.is_symlink() {
        Node::Symlink {
            target: fs::read_link(path)?,
        }
    } else if ft.is_dir() {
        Node::Dir {
            mode: meta.mode() & MODE_MASK,
        }
    } else if ft.is_file() {
        Node::File {
            mode: meta.mode() & MODE_MASK,
            len: meta.len(),
        }
    } else {
        Node::Special
    })
}

/// The host's node at `path`, without following a link.
pub fn host_node(path: &Path) -> io::Result<Node> {
    match fs::symlink_metadata(path) {
        Ok(meta) => node_of(path, &meta),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Ok(Node::Missing)
        }
        Err(e) => Err(e),
    }
}

/// Every change of the session whose upper layer is `upper`, against the
/// workspace `host`, in walk order (by name, parents before children for
/// additions). `protect` names the protected paths to flag.
pub fn collect(upper: &Path, host: &Path, protect: &[String]) -> Result<Vec<Change>, ChangesError> {
    let mut out = Vec::new();
    walk(upper, host, Path::new(""), true, protect, &mut out)?;
    Ok(out)
}

fn sorted_names(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    Ok(names)
}

/// One upper directory. `host_valid`: the host has a real directory at
/// `rel` (not a link, not a file) whose entries count as the old state.
fn walk(
    upper: &Path,
    host: &Path,
    rel: &Path,
    host_valid: bool,
    protect: &[String],
    out: &mut Vec<Change>,
) -> Result<(), ChangesError> {
    let dir = upper.join(rel);
    let uerr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ChangesError::Upper { path, source }
    };
    for name in sorted_names(&dir).map_err(uerr(&dir))? {
        let r = rel.join(&name);
        let up = upper.join(&r);
        let entry = read_upper_entry(&up).map_err(uerr(&up))?;
        let hp = host.join(&r);
        let old = if host_valid {
            host_node(&hp).map_err(|source| ChangesError::Host {
                path: hp.clone(),
                source,
            })?
        } else {
            Node::Missing
        };
        let flag = crate::plan::is_protected(&r, protect);
        let push = |kind, old: Node, new: Node, out: &mut Vec<Change>| {
            out.push(Change {
                path: r.clone(),
                kind,
                old,
                new,
                protected: flag.clone(),
            })
        };
        match entry {
            UpperEntry::Whiteout => match old {
                Node::Missing => {}
                Node::Dir { .. } => {
                    deleted_tree(host, &r, protect, out)?;
                }
                old => push(Kind::Deleted, old, Node::Missing, out),
            },
            UpperEntry::Dir { mode, opaque } => {
                let new = Node::Dir { mode };
                match &old {
                    Node::Dir { mode: m } => {
                        if *m != mode {
                            push(Kind::Modified, old.clone(), new, out);
                        }
                        if opaque {
                            // Host entries the opaque directory hides are
                            // deleted, unless the upper layer has that name.
                            for hname in sorted_names(&hp).map_err(|source| ChangesError::Host {
                                path: hp.clone(),
                                source,
                            })? {
                                if up.join(&hname).symlink_metadata().is_err() {
                                    let hr = r.join(&hname);
                                    match host_node(&host.join(&hr)).map_err(|source| {
                                        ChangesError::Host {
                                            path: host.join(&hr),
                                            source,
                                        }
                                    })? {
                                        Node::Dir { .. } => deleted_tree(host, &hr, protect, out)?,
                                        Node::Missing => {}
                                        n => out.push(Change {
                                            protected: crate::plan::is_protected(&hr, protect),
                                            path: hr,
                                            kind: Kind::Deleted,
                                            old: n,
                                            new: Node::Missing,
                                        }),
                                    }
                                }
                            }
                        }
                        walk(upper, host, &r, true, protect, out)?;
                    }
                    Node::Missing => {
                        push(Kind::Added, Node::Missing, new, out);
                        walk(upper, host, &r, false, protect, out)?;
                    }
                    _ => {
                        // A file or link replaced by a directory.
                        push(Kind::Deleted, old.clone(), Node::Missing, out);
                        push(Kind::Added, Node::Missing, new, out);
                        walk(upper, host, &r, false, protect, out)?;
                    }
                }
            }
            UpperEntry::Node(new) => match &old {
                Node::Missing => push(Kind::Added, Node::Missing, new, out),
                Node::Dir { .. } => {
                    deleted_tree(host, &r, protect, out)?;
                    push(Kind::Added, Node::Missing, new, out);
                }
                _ => {
                    if !same(&old, &hp, &new, &up).map_err(uerr(&up))? {
                        push(Kind::Modified, old.clone(), new, out);
                    }
                }
            },
        }
    }
    Ok(())
}

/// Deletions for a host directory and everything in it, children first.
fn deleted_tree(
    host: &Path,
    rel: &Path,
    protect: &[String],
    out: &mut Vec<Change>,
) -> Result<(), ChangesError> {
    let path = host.join(rel);
    let herr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ChangesError::Host { path, source }
    };
    let node = host_node(&path).map_err(herr(&path))?;
    if let Node::Dir { .. } = node {
        for name in sorted_names(&path).map_err(herr(&path))? {
            deleted_tree(host, &rel.join(name), protect, out)?;
        }
    }
    if node != Node::Missing {
        out.push(Change {
            path: rel.to_path_buf(),
            kind: Kind::Deleted,
            old: node,
            new: Node::Missing,
            protected: crate::plan::is_protected(rel, protect),
        });
    }
    Ok(())
}

/// Whether two non-directory nodes are the same: kind, mode, link target,
/// and bytes.
pub fn same(a: &Node, a_path: &Path, b: &Node, b_path: &Path) -> io::Result<bool> {
    match (a, b) {
        (Node::File { mode: ma, len: la }, Node::File { mode: mb, len: lb }) => {
            Ok(ma == mb && la == lb && same_bytes(a_path, b_path)?)
        }
        (Node::Symlink { target: ta }, Node::Symlink { target: tb }) => Ok(ta == tb),
        (Node::Dir { mode: ma }, Node::Dir { mode: mb }) => Ok(ma == mb),
        (Node::Missing, Node::Missing) => Ok(true),
        _ => Ok(false),
    }
}

/// Opens a regular file for reading without following a link.
pub fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn same_bytes(a: &Path, b: &Path) -> io::Result<bool> {
    let mut fa = open_nofollow(a)?;
    let mut fb = open_nofollow(b)?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_y_is_opaque() {
        assert!(is_opaque(Some(b"y")));
        assert!(!is_opaque(Some(b"x")));
        assert!(!is_opaque(Some(b"")));
        assert!(!is_opaque(None));
    }

    #[test]
    fn upper_entries_are_classified_and_changes_found() {
        let base = std::env::temp_dir().join(format!("cage-changes-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (upper, host) = (base.join("upper"), base.join("host"));
        fs::create_dir_all(upper.join("dir")).unwrap();
        fs::create_dir_all(host.join("dir")).unwrap();
        fs::create_dir_all(host.join("gone/sub")).unwrap();
        fs::write(host.join("gone/sub/f"), "x").unwrap();
        fs::write(host.join("dir/same"), "same").unwrap();
        fs::write(upper.join("dir/same"), "same").unwrap();
        fs::write(host.join("dir/changed"), "old").unwrap();
        fs::write(upper.join("dir/changed"), "new").unwrap();
        fs::write(upper.join("new"), "n").unwrap();
        std::os::unix::fs::symlink("target", upper.join("link")).unwrap();
        fs::write(host.join(".envrc"), "a").unwrap();
        // An xattr whiteout stands in for a char 0/0 one (mknod needs
        // privilege); tmp filesystems without user xattrs skip that part.
        fs::write(upper.join(".envrc"), "").unwrap();
        let xattrs = sys::lsetxattr(&upper.join(".envrc"), c"user.overlay.whiteout", b"").is_ok();
        if !xattrs {
            fs::write(upper.join(".envrc"), "b").unwrap();
        }
        // "gone" deleted as a whole: an opaque dir replacing it would need
        // xattrs too; a whiteout file is enough when they work.
        if xattrs {
            fs::write(upper.join("gone"), "").unwrap();
            sys::lsetxattr(&upper.join("gone"), c"user.overlay.whiteout", b"").unwrap();
            assert_eq!(
                read_upper_entry(&upper.join("gone")).unwrap(),
                UpperEntry::Whiteout
            );
        }
        let protect = vec![".envrc".to_string()];
        let changes = collect(&upper, &host, &protect).unwrap();
        let find = |p: &str| changes.iter().find(|c| c.path == Path::new(p));
        assert_eq!(find("dir/changed").unwrap().kind, Kind::Modified);
        assert!(find("dir/same").is_none());
        assert_eq!(find("new").unwrap().kind, Kind::Added);
        assert_eq!(
            find("link").unwrap().new,
            Node::Symlink {
                target: "target".into()
            }
        );
        let envrc = find(".envrc").unwrap();
        assert_eq!(envrc.protected.as_deref(), Some(".envrc"));
        if xattrs {
            assert_eq!(envrc.kind, Kind::Deleted);
            let order: Vec<&Path> = changes
                .iter()
                .filter(|c| c.path.starts_with("gone"))
                .map(|c| c.path.as_path())
                .collect();
            assert_eq!(
                order,
                [
                    Path::new("gone/sub/f"),
                    Path::new("gone/sub"),
                    Path::new("gone")
                ]
            );
            let s = summarize(&changes);
            assert_eq!((s.added, s.modified, s.deleted), (2, 1, 2));
        }
        let _ = fs::remove_dir_all(&base);
    }
}
