//! Protected paths: execution-bearing files the developer runs later
//! outside the cage (git hooks and config, `.envrc`, editor task files,
//! cage's own policy). They stay read-only inside a writable workspace, at
//! any depth: nested repositories and submodule gitdirs included.
//!
//! Only paths that exist can be protected (cage never creates stub files to
//! mount over); symlinks are never followed: a protected name that is a
//! link is reported, since binding it would bind whatever it points at.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::policy::{Provenance, Sourced};

use super::{LinkedGitdir, Protected};

/// DESIGN.md's built-in protected set, as paths relative to any directory.
///
/// Beyond git and cage's own file: what tools run by themselves when the
/// developer enters the directory or opens it (direnv, mise, editors'
/// project settings and tasks, dev containers, which run commands on the
/// host before the container starts).
pub const BUILTIN_PROTECTED: &[&str] = &[
    ".git/hooks",
    ".git/config",
    ".git/info",
    ".gitmodules",
    ".envrc",
    ".vscode",
    ".idea",
    ".cage.toml",
    ".devcontainer",
    ".devcontainer.json",
    ".dir-locals.el",
    ".exrc",
    ".nvimrc",
    ".nvim.lua",
    ".zed",
    "mise.toml",
    ".mise.toml",
    "mise.local.toml",
    ".mise.local.toml",
    ".mise",
    ".config/mise",
];

/// What one walk of the workspace found.
pub(crate) struct Scan {
    /// Protected paths that exist (not links).
    pub found: Vec<Protected>,
    /// Protected names that are symbolic links.
    pub links: Vec<PathBuf>,
    /// `.git` files pointing at a gitdir outside the walked root, with the
    /// gitdir they name (lexically resolved, unverified).
    pub outside: Vec<(PathBuf, PathBuf)>,
    /// Every git directory found: `.git` directories, bare repositories,
    /// submodule gitdirs.
    pub gitdirs: Vec<PathBuf>,
    /// Directories the walk could not read.
    pub unreadable: Vec<(PathBuf, std::io::Error)>,
    /// Unix sockets under the root (host services: tmux, an ssh-agent), for
    /// the plan to hide; counted here so the workspace is walked once.
    pub sockets: Vec<PathBuf>,
    /// With every name hashed: the directories walked, for the watch.
    pub tree: Option<super::listing::Tree>,
}

/// Walks `root` for every existing protected path under it, in walk order,
/// the protected names that are links, and the `.git` files that point
/// outside `root`. `names` are relative paths matched in every directory.
/// With a `cache` file, directories unchanged since it was stored are not
/// read again ([`super::listing`]): one `lstat` each. With `tree`, every
/// name is hashed and the directories walked are returned with their
/// listings ([`Scan::tree`]), for a direct session's watch; the cache
/// then holds the hashes too, so both ends of a direct session pass it.
/// With `kept`, what the start's walk stored stands for the cache file.
pub(crate) fn scan(
    root: &Path,
    names: &[Sourced<String>],
    cache: Option<&Path>,
    kept: Option<&super::listing::Kept>,
    tree: bool,
) -> Scan {
    // What the walk asks of a directory's names: the protected names'
    // first components (parsed once, for every directory), and what makes
    // a directory a git directory.
    let firsts: Vec<Option<&OsStr>> = names
        .iter()
        .map(|n| {
            Path::new(&n.value)
                .components()
                .next()
                .map(|c| c.as_os_str())
        })
        .collect();
    let wanted = firsts
        .iter()
        .flatten()
        .map(|f| f.to_os_string())
        .chain(["HEAD", "objects", "refs", ".git"].map(std::ffi::OsString::from))
        .collect();
    let mut listings = match kept {
        Some(k) if k.is_for(root, &wanted, tree) => super::listing::Listings::resume(cache, k),
        _ => super::listing::Listings::open_with(cache, root, wanted, tree),
    };
    let mut scan = walk(root, names, &firsts, &mut listings, tree);
    let kept = listings.save();
    if let Some(t) = &mut scan.tree {
        t.incomplete = !scan.unreadable.is_empty();
        t.kept = kept;
    }
    scan
}

/// `firsts`: each of `names`' first component, in the same order.
fn walk(
    root: &Path,
    names: &[Sourced<String>],
    firsts: &[Option<&OsStr>],
    listings: &mut super::listing::Listings,
    keep: bool,
) -> Scan {
    let mut links = Vec::new();
    let mut outside = Vec::new();
    let mut found: Vec<Protected> = Vec::new();
    let mut sockets = Vec::new();
    let mut seen = BTreeSet::new();
    let mut gitdirs = Vec::new();
    let mut unreadable = Vec::new();
    let mut tree = keep.then(|| super::listing::Tree {
        root: root.to_path_buf(),
        ..Default::default()
    });
    let mut stack: Vec<(PathBuf, Option<usize>)> = vec![(root.to_path_buf(), None)];
    while let Some((dir, parent)) = stack.pop() {
        let listing = match listings.list(&dir) {
            Ok(l) => l,
            Err(e) => {
                unreadable.push((dir, e));
                continue;
            }
        };
        sockets.extend(listing.sockets.iter().map(|s| dir.join(s)));
        let here = &listing.names;
        let has = |n: &str| here.contains(OsStr::new(n));
        // A git directory, by name or by shape (git's own test: HEAD,
        // objects/ and refs/): its entries are judged by the allowlist,
        // and the walk does not descend into it.
        // Judged as bytes (a `Path` compares component by component): the
        // walk joins names, which hold no `/`, to the root, so only the
        // root is as short as the root.
        let below_root = dir.as_os_str().len() > root.as_os_str().len();
        let named_git = dir.as_os_str().as_bytes().ends_with(b"/.git");
        let gitdir = below_root && (named_git || has("HEAD") && has("objects") && has("refs"));
        let me = tree.as_ref().map(|t| t.dirs.len());
        if let Some(t) = &mut tree {
            t.dirs.push(super::listing::TreeDir {
                path: dir.clone(),
                parent,
                listing: listing.clone(),
                entered: !gitdir,
            });
        }
        if gitdir {
            scan_gitdir(&dir, &mut found, &mut seen, &mut gitdirs, &mut links);
            continue;
        }
        stack.extend(listing.subdirs.iter().map(|s| (dir.join(s), me)));
        // A lone HEAD would make its directory a repository once objects/
        // and refs/ join it.
        if has("HEAD") {
            let source = Provenance::Default {
                what: "protected paths: HEAD outside a git directory",
            };
            push(&mut found, &mut seen, dir.join("HEAD"), "HEAD", &source);
        }
        // Most directories hold none of the names asked about.
        if here.is_empty() {
            continue;
        }
        for (rule, first) in names.iter().zip(firsts) {
            if !first.is_some_and(|f| here.contains(f)) {
                continue;
            }
            let path = dir.join(&rule.value);
            match path.symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => links.push(path),
                Ok(_) => push(&mut found, &mut seen, path, &rule.value, &rule.source),
                Err(_) => {}
            }
        }
        // A `.git` file points at a gitdir elsewhere (linked worktree or
        // submodule). The file itself is protected: rewritten, it would send
        // the host's git to hooks the agent wrote. A gitdir inside the root
        // is covered by the walk; one outside is the caller's to verify.
        let dotgit = dir.join(".git");
        if has(".git")
            && dotgit
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_file())
        {
            let source = Provenance::Default {
                what: "protected paths: a .git file names the gitdir",
            };
            push(&mut found, &mut seen, dotgit.clone(), ".git", &source);
            if let Some(target) = gitdir_pointer(&dotgit) {
                if !target.starts_with(root) {
                    outside.push((dotgit, target));
                }
            }
        }
    }
    Scan {
        found,
        links,
        outside,
        gitdirs,
        unreadable,
        sockets,
        tree,
    }
}

/// A directory's entries as (name, path, is a directory), links left out:
/// a link cannot be bound read-only (the bind would follow it), so one
/// outside the allowlist is reported, and the guard refuses new ones.
fn list_gitdir(dir: &Path, links: &mut Vec<PathBuf>) -> Vec<(String, PathBuf, bool)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(t) = e.file_type() else { continue };
        if t.is_symlink() {
            if !gitdir_top_allowed(&name, GitdirKind::Repository) {
                links.push(e.path());
            }
            continue;
        }
        out.push((name, e.path(), t.is_dir()));
    }
    out
}

/// A git directory's entries outside the allowlist, bound read-only;
/// linked worktree gitdirs (`worktrees/*`) and submodule gitdirs
/// (`modules/**`) judged the same way.
fn scan_gitdir(
    gitdir: &Path,
    found: &mut Vec<Protected>,
    seen: &mut BTreeSet<PathBuf>,
    gitdirs: &mut Vec<PathBuf>,
    links: &mut Vec<PathBuf>,
) {
    gitdirs.push(gitdir.to_path_buf());
    let source = Provenance::Default {
        what: "protected paths: git directory (allowlist)",
    };
    let list = |dir: &Path, links: &mut Vec<PathBuf>| list_gitdir(dir, links);
    for (name, path, is_dir) in list(gitdir, links) {
        if !gitdir_top_allowed(&name, GitdirKind::Repository) {
            push(found, seen, path, &format!(".git/{name}"), &source);
            continue;
        }
        match name.as_str() {
            "objects" => {
                for r in OBJECTS_REFUSED {
                    let q = path.join(r);
                    if q.symlink_metadata().is_ok() {
                        push(found, seen, q, &format!(".git/objects/{r}"), &source);
                    }
                }
            }
            "worktrees" if is_dir => {
                for (_, wt, wt_is_dir) in list(&path, links) {
                    if !wt_is_dir {
                        continue;
                    }
                    for (n, q, _) in list(&wt, links) {
                        if !gitdir_top_allowed(&n, GitdirKind::Worktree) {
                            push(found, seen, q, &format!(".git/worktrees/*/{n}"), &source);
                        }
                    }
                }
            }
            "modules" if is_dir => {
                let mut dirs = vec![path];
                while let Some(d) = dirs.pop() {
                    for (_, q, q_is_dir) in list(&d, links) {
                        if !q_is_dir {
                            continue;
                        }
                        if q.join("HEAD").symlink_metadata().is_ok() {
                            scan_gitdir(&q, found, seen, gitdirs, links);
                        } else {
                            dirs.push(q);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn push(
    found: &mut Vec<Protected>,
    seen: &mut BTreeSet<PathBuf>,
    path: PathBuf,
    name: &str,
    source: &Provenance,
) {
    if seen.insert(path.clone()) {
        found.push(Protected {
            path,
            name: name.to_string(),
            source: source.clone(),
        });
    }
}

/// The gitdir a `.git` file names (`gitdir: X`), resolved lexically
/// against the file's directory.
fn gitdir_pointer(dotgit: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dotgit).ok()?;
    let target = text.lines().next()?.trim().strip_prefix("gitdir:")?.trim();
    let dir = dotgit.parent()?;
    Some(super::build::normalize(&dir.join(target)))
}

/// Checks that `target`, named by the `.git` file `dotgit`, is a genuine
/// linked worktree gitdir of this workspace before anything is granted:
///
/// 1. it is a directory holding `HEAD`;
/// 2. its `gitdir` file names `dotgit` (git writes this backlink when it
///    creates the worktree; a repository cannot plant it in another
///    repository's gitdir, so a hostile `.git` file cannot borrow one);
/// 3. its `commondir` names a directory holding `HEAD` too.
///
/// Returns the canonical gitdir and common dir, or why not.
pub(crate) fn verify_linked(dotgit: &Path, target: &Path) -> Result<(PathBuf, PathBuf), String> {
    let gitdir =
        crate::host::canonical(target).map_err(|e| format!("it cannot be resolved ({e})"))?;
    if !gitdir.join("HEAD").is_file() {
        return Err("it holds no HEAD".into());
    }
    let back = std::fs::read_to_string(gitdir.join("gitdir"))
        .map_err(|e| format!("its gitdir file cannot be read ({e})"))?;
    let back = Path::new(back.trim());
    let dotgit_real = crate::host::canonical(dotgit).unwrap_or_else(|_| dotgit.to_path_buf());
    if !back.is_absolute()
        || crate::host::canonical(back).ok().as_deref() != Some(dotgit_real.as_path())
    {
        return Err(format!(
            "its gitdir file points at {}, not back at this .git file",
            back.display()
        ));
    }
    let common = match std::fs::read_to_string(gitdir.join("commondir")) {
        Ok(c) => gitdir.join(c.trim()),
        // A gitdir without commondir is a repository of its own.
        Err(_) => gitdir.clone(),
    };
    let common = crate::host::canonical(&common)
        .map_err(|e| format!("its commondir cannot be resolved ({e})"))?;
    if !common.join("HEAD").is_file() {
        return Err(format!("its commondir {} holds no HEAD", common.display()));
    }
    Ok((gitdir, common))
}

/// The protected parts of a verified linked worktree: everything outside
/// the allowlist in the common dir (every worktree's pointers and config
/// included, and submodule gitdirs) and in the worktree's own gitdir.
pub(crate) fn protect_linked(linked: &LinkedGitdir) -> Vec<Protected> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut gitdirs = Vec::new();
    let mut links = Vec::new();
    scan_gitdir(
        &linked.common,
        &mut found,
        &mut seen,
        &mut gitdirs,
        &mut links,
    );
    if !linked.gitdir.starts_with(&linked.common) {
        let source = Provenance::Default {
            what: "protected paths: linked worktree gitdir (allowlist)",
        };
        for e in std::fs::read_dir(&linked.gitdir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !gitdir_top_allowed(&name, GitdirKind::Worktree) {
                push(&mut found, &mut seen, e.path(), &name, &source);
            }
        }
    }
    found
}

/// What the end-of-session rescan found.
#[derive(Debug, Default)]
pub struct Created {
    /// Protected paths that exist now and were not protected at the start
    /// (whole new git directories as one entry), parents before children.
    pub paths: Vec<PathBuf>,
    /// Directories that stayed unreadable even after cage made them
    /// readable for its owner: what they hold is unknown.
    pub unreadable: Vec<(PathBuf, std::io::Error)>,
    /// Directories the session had made unreadable, which cage made
    /// readable for the rescan.
    pub reopened: Vec<PathBuf>,
}

/// Protected paths that exist now but were not protected when the session
/// started: the session created them (a race won against the guard, or a
/// path the guard does not watch). Never silently accepted.
pub fn created_protected(workspace: &super::WorkspacePlan) -> Created {
    // In overlay mode the host workspace does not change; `cage diff`
    // flags what the session touched.
    if workspace.watch.is_empty() || workspace.overlay.is_some() {
        return Created::default();
    }
    let before: BTreeSet<&Path> = workspace
        .protected
        .iter()
        .map(|p| p.path.as_path())
        .chain(workspace.links.iter().map(PathBuf::as_path))
        .collect();
    let cache = Some(workspace.listings.as_path());
    // The same walk as the start's, so that the cache serves both.
    let tree = workspace.mode == crate::policy::WorkspaceMode::Direct;
    let kept = workspace.tree.as_deref().map(|t| &t.kept);
    let mut scan = scan(&workspace.path, &workspace.watch, cache, kept, tree);
    // A directory the agent made unreadable (`chmod 0311`) must not hide
    // what it holds: the user owns it, so make it readable and look again.
    let mut reopened = Vec::new();
    if !scan.unreadable.is_empty() {
        use std::os::unix::fs::PermissionsExt;
        for (dir, _) in &scan.unreadable {
            if let Ok(m) = dir.symlink_metadata()
                && m.is_dir()
            {
                let mode = m.permissions().mode() | 0o700;
                if std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).is_ok() {
                    reopened.push(dir.clone());
                }
            }
        }
        scan = self::scan(&workspace.path, &workspace.watch, cache, None, tree);
    }
    let known: BTreeSet<&Path> = workspace
        .known_gitdirs
        .iter()
        .map(PathBuf::as_path)
        .collect();
    let new_gitdirs: Vec<PathBuf> = scan
        .gitdirs
        .iter()
        .filter(|g| !known.contains(g.as_path()))
        .cloned()
        .collect();
    let linked = workspace
        .gitdirs
        .iter()
        .filter(|g| g.access == super::Access::ReadWrite)
        .flat_map(protect_linked);
    // A link under a protected name counts as created too: links were never
    // protected, and the session may have made or retargeted it.
    let mut paths: Vec<PathBuf> = scan
        .found
        .into_iter()
        .chain(linked)
        .map(|p| p.path)
        .chain(scan.links)
        .filter(|p| !before.contains(p.as_path()))
        .chain(new_gitdirs)
        .collect();
    paths.sort();
    paths.dedup();
    // Parents first; a path inside one already listed moves with it.
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    Created {
        paths: kept,
        unreadable: scan.unreadable,
        reopened,
    }
}

/// Whether `rel`, a path relative to the workspace, is or lies under a
/// protected name (at any depth), is anything in a git directory outside
/// the allowlist, a new `.git`, or a `HEAD` outside a git directory.
/// Returns what matched. For review of a session's changes, where no live
/// filesystem says which directories are submodule gitdirs.
pub fn is_protected(rel: &Path, names: &[String]) -> Option<String> {
    if let Some(name) = name_match(rel, names) {
        return Some(name);
    }
    let parts: Vec<&OsStr> = rel.iter().collect();
    if let Some(i) = parts.iter().rposition(|p| *p == ".git") {
        let rest = &parts[i + 1..];
        if rest.is_empty() {
            return Some(".git".to_string());
        }
        return gitdir_refusal(rest, GitdirKind::Repository, &module_split_by_name)
            .map(|why| format!(".git: {why}"));
    }
    (parts.last().is_some_and(|l| *l == "HEAD")).then(|| "HEAD".to_string())
}

// ---------------------------------------------------------------------
// Git directories, by allowlist.
//
// In a gitdir the agent may change only what committing, branching,
// merging, rebasing, stashing and fetching write. Everything else, present
// or not, is refused: existing entries are bound read-only, new ones are
// refused by the guard and quarantined at the end if they slip through.
// ---------------------------------------------------------------------

/// Files at the top of a gitdir that git's everyday commands write.
const GITDIR_FILES: &[&str] = &[
    "HEAD",
    "ORIG_HEAD",
    "FETCH_HEAD",
    "MERGE_HEAD",
    "MERGE_MSG",
    "MERGE_MODE",
    "MERGE_AUTOSTASH",
    "MERGE_RR",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "REBASE_HEAD",
    "AUTO_MERGE",
    "COMMIT_EDITMSG",
    "SQUASH_MSG",
    "TAG_EDITMSG",
    "NOTES_MERGE_PARTIAL",
    "NOTES_MERGE_REF",
    "BISECT_LOG",
    "BISECT_START",
    "BISECT_TERMS",
    "BISECT_EXPECTED_REV",
    "BISECT_ANCESTORS_OK",
    "BISECT_NAMES",
    "BISECT_HEAD",
    "index",
    "packed-refs",
    "packed-refs.new",
    "shallow",
    "gc.pid",
    "gc.log",
];

/// Temporary files git names with a prefix (`git stash`'s index, the split
/// index, `git commit -a`'s next index).
const GITDIR_FILE_PREFIXES: &[&str] = &["index.stash.", "sharedindex.", "next-index-"];

/// Directories at the top of a gitdir whose contents git's everyday
/// commands write (objects has one exception, [`OBJECTS_REFUSED`]).
const GITDIR_DIRS: &[&str] = &[
    "objects",
    "refs",
    "logs",
    "rebase-merge",
    "rebase-apply",
    "sequencer",
    "rr-cache",
    "lost-found",
    "lfs",
    "reftable",
    "NOTES_MERGE_WORKTREE",
];

/// Under `objects/`: the files that send git to objects elsewhere.
const OBJECTS_REFUSED: &[&str] = &["info/alternates", "info/http-alternates"];

/// Which kind of gitdir a path lies in: a repository's own, or a linked
/// worktree's (`worktrees/<name>`), which shares objects and has no
/// worktrees or modules of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GitdirKind {
    Repository,
    Worktree,
}

/// Whether `name`, directly in a gitdir, is something git writes there.
fn gitdir_top_allowed(name: &str, kind: GitdirKind) -> bool {
    let stem = name.strip_suffix(".lock").unwrap_or(name);
    GITDIR_FILES.contains(&stem)
        || GITDIR_FILE_PREFIXES.iter().any(|p| stem.starts_with(p))
        || (GITDIR_DIRS.contains(&name) && (kind == GitdirKind::Repository || name != "objects"))
        || (kind == GitdirKind::Repository && (name == "worktrees" || name == "modules"))
}

/// Splits the module part of `modules/<name...>/rest`: how many components
/// after `modules` name the submodule's gitdir, if any does.
pub(crate) type ModuleSplit<'a> = &'a dyn Fn(&[&OsStr]) -> Option<usize>;

/// Why creating `rest` (a path relative to a gitdir) is refused, or `None`
/// when git's everyday commands write there. `modules` tells which prefix of
/// a path under `modules/` is an existing submodule gitdir.
fn gitdir_refusal(rest: &[&OsStr], kind: GitdirKind, modules: ModuleSplit) -> Option<String> {
    let Some(first) = rest.first() else {
        return Some("a new git directory".into());
    };
    let name = first.to_string_lossy();
    if !gitdir_top_allowed(&name, kind) {
        return Some(format!(
            "{name} in a git directory: only what committing, branching, merging, rebasing, \
             stashing and fetching write may change there"
        ));
    }
    match &*name {
        "objects" => {
            let inner: PathBuf = rest[1..].iter().collect();
            OBJECTS_REFUSED
                .iter()
                .find(|r| inner == Path::new(r))
                .map(|r| format!("objects/{r}: it sends git to objects elsewhere"))
        }
        "worktrees" if rest.len() > 2 => gitdir_refusal(&rest[2..], GitdirKind::Worktree, modules),
        "modules" if rest.len() > 1 => match modules(&rest[1..]) {
            Some(n) if n < rest.len() - 1 => {
                gitdir_refusal(&rest[1 + n..], GitdirKind::Repository, modules)
            }
            Some(_) => Some("a new submodule git directory".into()),
            None => Some("a new submodule git directory".into()),
        },
        _ => None,
    }
}

/// The module split for workspace-relative paths with no filesystem to ask
/// (overlay review): the longest prefix followed by something git writes
/// in a gitdir.
fn module_split_by_name(parts: &[&OsStr]) -> Option<usize> {
    (1..parts.len())
        .rev()
        .find(|&n| gitdir_top_allowed(&parts[n].to_string_lossy(), GitdirKind::Repository))
}

/// What the guard refuses to let the agent create: data for the
/// supervisor, decided here.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GuardPlan {
    /// Writable trees where creations are checked: the workspace, writable
    /// grants, writable linked gitdirs.
    pub roots: Vec<PathBuf>,
    /// Protected names, matched at any depth below a root.
    pub names: Vec<Sourced<String>>,
    /// Git directories that exist at the start, whatever they are called
    /// (`.git`, submodule gitdirs, bare repositories, linked gitdirs).
    pub gitdirs: Vec<PathBuf>,
    /// Absolute paths that may not be created, with what hides or
    /// protects them (hidden paths and read-only rules missing at the
    /// start inside a writable grant, cage's own directories).
    pub paths: Vec<Sourced<PathBuf>>,
    /// Those of `paths` that were missing at the start inside a writable
    /// tree: one that exists at the end was made by the session.
    pub missing: Vec<PathBuf>,
    /// The graded mode only (`plan::graded`): what the view keeps
    /// read-only inside a writable tree, existing at the start (protected
    /// files and directories, read-only grants). Without a mount view
    /// nothing else keeps them so: the guard refuses writing, changing the
    /// mode of, linking, moving and removing them, and what slips is put
    /// back at the end (`session::originals`). Empty in the normal plan,
    /// whose read-only binds do it; never serialised, so the plan's
    /// snapshots do not list the workspace's files.
    #[serde(skip)]
    pub existing: Vec<Sourced<PathBuf>>,
}

impl GuardPlan {
    /// Whether the guard checks creations at all.
    pub fn active(&self) -> bool {
        !self.roots.is_empty()
    }

    /// The gitdir `path` lies in (or is), if any: the deepest known one, or
    /// the deepest `.git` component below a root.
    pub fn gitdir_of(&self, path: &Path) -> Option<PathBuf> {
        let known = self
            .gitdirs
            .iter()
            .filter(|g| path.starts_with(g))
            .max_by_key(|g| g.components().count())
            .cloned();
        let named = self.root_of(path).and_then(|root| {
            let rel = path.strip_prefix(root).ok()?;
            let mut gitdir = None;
            let mut cur = root.to_path_buf();
            for c in rel.iter() {
                cur.push(c);
                if c == ".git" {
                    gitdir = Some(cur.clone());
                }
            }
            gitdir
        });
        match (known, named) {
            (Some(a), Some(b)) => Some(if a.starts_with(&b) { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    fn root_of(&self, path: &Path) -> Option<&Path> {
        self.roots
            .iter()
            .filter(|r| path.starts_with(r))
            .max_by_key(|r| r.components().count())
            .map(PathBuf::as_path)
    }

    /// Why the agent may not create `path` (absolute, as the agent sees
    /// it, its parent resolved), or `None`. `is_gitdir` says whether a
    /// directory on the host is a git directory (holds `HEAD`).
    pub fn refusal(&self, path: &Path, is_gitdir: &dyn Fn(&Path) -> bool) -> Option<String> {
        if let Some(p) = self.paths.iter().find(|p| path.starts_with(&p.value)) {
            return Some(format!("{} ({})", p.value.display(), p.source));
        }
        let root = self.root_of(path)?;
        if let Some(g) = self.gitdir_of(path) {
            let rest: Vec<&OsStr> = path.strip_prefix(&g).ok()?.iter().collect();
            if rest.is_empty() && is_gitdir(&g) {
                return None;
            }
            // A linked worktree's own gitdir is a known gitdir of its own.
            let kind =
                if g.parent().is_some_and(|p| p.ends_with("worktrees")) && !g.ends_with(".git") {
                    GitdirKind::Worktree
                } else {
                    GitdirKind::Repository
                };
            let split = |parts: &[&OsStr]| {
                let mut dir = g.join("modules");
                let mut found = None;
                for (i, p) in parts.iter().enumerate() {
                    dir.push(p);
                    if is_gitdir(&dir) {
                        found = Some(i + 1);
                        break;
                    }
                }
                found
            };
            return gitdir_refusal(&rest, kind, &split).map(|why| format!(".git: {why}"));
        }
        let rel = path.strip_prefix(root).ok()?;
        let names: Vec<String> = self.names.iter().map(|n| n.value.clone()).collect();
        if let Some(name) = name_match(rel, &names) {
            return Some(format!("{name}: a protected name"));
        }
        if rel.file_name().is_some_and(|n| n == "HEAD") {
            return Some("HEAD: it makes its directory a git repository".into());
        }
        None
    }

    /// Why changing the existing `path` in place (writing, truncating,
    /// changing its mode, removing it) is refused, or `None`: it is, or
    /// lies under, one of [`GuardPlan::existing`], and no writable tree
    /// deeper than that entry holds it.
    pub fn write_refusal(&self, path: &Path) -> Option<String> {
        let hit = self
            .existing
            .iter()
            .filter(|e| path.starts_with(&e.value))
            .max_by_key(|e| e.value.components().count())?;
        if self
            .roots
            .iter()
            .any(|r| r.starts_with(&hit.value) && r != &hit.value && path.starts_with(r))
        {
            return None;
        }
        Some(format!(
            "{} ({}): it exists and is kept read-only",
            hit.value.display(),
            hit.source
        ))
    }

    /// Why moving or removing `path` is refused because of what it holds:
    /// it is, lies under, or holds one of [`GuardPlan::existing`] (`mv
    /// sub elsewhere` would take `sub/.envrc` along, where the normal
    /// mode's view pins `sub`).
    pub fn move_away_refusal(&self, path: &Path) -> Option<String> {
        if let Some(why) = self.write_refusal(path) {
            return Some(why);
        }
        self.existing
            .iter()
            .find(|e| e.value.starts_with(path))
            .map(|e| {
                format!(
                    "{} holds {} ({}), which is kept read-only",
                    path.display(),
                    e.value.display(),
                    e.source
                )
            })
    }

    /// Why moving `src` to `dst` is refused beyond what creating `dst`
    /// would be: git never moves anything out of a git directory, and a
    /// directory built inside one (`refs/x/{HEAD,objects,refs,config}`)
    /// must not leave it as a repository.
    pub fn move_refusal(&self, src: &Path, dst: &Path) -> Option<String> {
        let from = self.gitdir_of(src)?;
        if self.gitdir_of(dst).as_deref() == Some(from.as_path()) {
            return None;
        }
        Some(format!(
            "moving {} out of the git directory {}",
            src.display(),
            from.display()
        ))
    }
}

/// The protected name `rel` is or lies under, matched at any depth.
fn name_match(rel: &Path, names: &[String]) -> Option<String> {
    let parts: Vec<&OsStr> = rel.iter().collect();
    names
        .iter()
        .find(|name| {
            let want: Vec<&OsStr> = Path::new(name).iter().collect();
            !want.is_empty()
                && want.len() <= parts.len()
                && parts.windows(want.len()).any(|w| w == want.as_slice())
        })
        .cloned()
}

/// Every `core.hooksPath` value in a git config file's text. A small
/// reader for one key: sections, `key = value`, quotes and comments; an
/// include is not followed (its target is read on its own when it is one
/// of the files cage looks at).
pub(crate) fn hooks_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_core = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            let section = rest.split([']', ' ', '"']).next().unwrap_or("");
            in_core = section.eq_ignore_ascii_case("core") && !rest.contains('"');
            continue;
        }
        if !in_core {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("hookspath") {
            continue;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(v) => v.split('"').next().unwrap_or(""),
            None => value.split([';', '#']).next().unwrap_or("").trim(),
        };
        if !value.is_empty() {
            out.push(value.trim_end_matches('/').to_string());
        }
    }
    out
}
