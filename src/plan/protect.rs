//! Protected paths: execution-bearing files the developer runs later
//! outside the cage (git hooks and config, `.envrc`, editor task files,
//! cage's own policy). They stay read-only inside a writable workspace, at
//! any depth: nested repositories and submodule gitdirs included.
//!
//! Only paths that exist can be protected (cage never creates stub files to
//! mount over); symlinks are never followed: a protected name that is a
//! link is reported, since binding it would bind whatever it points at.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::policy::{Provenance, Sourced};

use super::{LinkedGitdir, Protected};

/// DESIGN.md's built-in protected set, as paths relative to any directory.
pub const BUILTIN_PROTECTED: &[&str] = &[
    ".git/hooks",
    ".git/config",
    ".git/info",
    ".gitmodules",
    ".envrc",
    ".vscode",
    ".idea",
    ".cage.toml",
];

/// Parts of a gitdir that run code or redirect git (hooks, config, info);
/// applied to every submodule gitdir under `.git/modules`.
const GITDIR_PROTECTED: &[&str] = &["hooks", "config", "info"];

/// Parts of a linked worktree's own gitdir that steer git: its per-worktree
/// config, and the two pointers (`commondir` could send the host's git to
/// hooks the agent wrote in the workspace; `gitdir` is what cage checks
/// the link against).
const WORKTREE_PROTECTED: &[&str] = &["config.worktree", "commondir", "gitdir"];

/// What one walk of the workspace found.
pub(crate) struct Scan {
    /// Protected paths that exist (not links).
    pub found: Vec<Protected>,
    /// Protected names that are symbolic links.
    pub links: Vec<PathBuf>,
    /// `.git` files pointing at a gitdir outside the walked root, with the
    /// gitdir they name (lexically resolved, unverified).
    pub outside: Vec<(PathBuf, PathBuf)>,
    /// Unix sockets under the root (host services: tmux, an ssh-agent), for
    /// the plan to hide; counted here so the workspace is walked once.
    pub sockets: Vec<PathBuf>,
}

/// Walks `root` for every existing protected path under it, in walk order,
/// the protected names that are links, and the `.git` files that point
/// outside `root`. `names` are relative paths matched in every directory.
pub(crate) fn scan(root: &Path, names: &[Sourced<String>]) -> Scan {
    let mut links = Vec::new();
    let mut outside = Vec::new();
    let mut found: Vec<Protected> = Vec::new();
    let mut sockets = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut here = BTreeSet::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let kind = entry.file_type().ok();
            let is_dir = kind.is_some_and(|t| t.is_dir());
            if is_dir && name != ".git" {
                stack.push(entry.path());
            }
            if kind.is_some_and(|t| std::os::unix::fs::FileTypeExt::is_socket(&t)) {
                sockets.push(entry.path());
            }
            here.insert(name);
        }
        for rule in names {
            let rel = Path::new(&rule.value);
            let Some(first) = rel.components().next() else {
                continue;
            };
            if !here.contains(first.as_os_str()) {
                continue;
            }
            let path = dir.join(rel);
            match path.symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => links.push(path),
                Ok(_) => push(&mut found, &mut seen, path, &rule.value, &rule.source),
                Err(_) => {}
            }
        }
        // Submodule gitdirs live under .git/modules, nested to any depth.
        protect_modules(&dir.join(".git/modules"), &mut found, &mut seen);
        // A `.git` file points at a gitdir elsewhere (linked worktree or
        // submodule). The file itself is protected: rewritten, it would send
        // the host's git to hooks the agent wrote. A gitdir inside the root
        // is covered by the walk; one outside is the caller's to verify.
        let dotgit = dir.join(".git");
        if here.contains(std::ffi::OsStr::new(".git"))
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
        sockets,
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

/// Every submodule gitdir under `modules` (nested to any depth): their
/// hooks, config and info.
fn protect_modules(modules: &Path, found: &mut Vec<Protected>, seen: &mut BTreeSet<PathBuf>) {
    if !modules.is_dir() {
        return;
    }
    let source = Provenance::Default {
        what: "protected paths: submodule gitdir",
    };
    let mut gitdirs = vec![modules.to_path_buf()];
    while let Some(g) = gitdirs.pop() {
        let Ok(entries) = std::fs::read_dir(&g) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            if p.join("HEAD").is_file() {
                for part in GITDIR_PROTECTED {
                    let q = p.join(part);
                    if exists_not_link(&q) {
                        push(found, seen, q, &format!(".git/modules/*/{part}"), &source);
                    }
                }
                if p.join("modules").is_dir() {
                    gitdirs.push(p.join("modules"));
                }
            } else {
                gitdirs.push(p);
            }
        }
    }
}

fn exists_not_link(p: &Path) -> bool {
    p.symlink_metadata()
        .is_ok_and(|m| !m.file_type().is_symlink())
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
    let gitdir = target
        .canonicalize()
        .map_err(|e| format!("it cannot be resolved ({e})"))?;
    if !gitdir.join("HEAD").is_file() {
        return Err("it holds no HEAD".into());
    }
    let back = std::fs::read_to_string(gitdir.join("gitdir"))
        .map_err(|e| format!("its gitdir file cannot be read ({e})"))?;
    let back = Path::new(back.trim());
    let dotgit_real = dotgit
        .canonicalize()
        .unwrap_or_else(|_| dotgit.to_path_buf());
    if !back.is_absolute() || back.canonicalize().ok().as_deref() != Some(dotgit_real.as_path()) {
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
    let common = common
        .canonicalize()
        .map_err(|e| format!("its commondir cannot be resolved ({e})"))?;
    if !common.join("HEAD").is_file() {
        return Err(format!("its commondir {} holds no HEAD", common.display()));
    }
    Ok((gitdir, common))
}

/// The protected parts of a verified linked worktree: the repository's
/// hooks, config and info, every worktree's pointers and config, and the
/// submodule gitdirs of the common dir.
pub(crate) fn protect_linked(linked: &LinkedGitdir) -> Vec<Protected> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let source = Provenance::Default {
        what: "protected paths: linked worktree gitdir",
    };
    let part = |found: &mut Vec<Protected>, seen: &mut BTreeSet<PathBuf>, dir: &Path, name| {
        let q = dir.join(name);
        if exists_not_link(&q) {
            push(found, seen, q, name, &source);
        }
    };
    for name in GITDIR_PROTECTED.iter().chain(["config.worktree"].iter()) {
        part(&mut found, &mut seen, &linked.common, name);
        part(&mut found, &mut seen, &linked.gitdir, name);
    }
    // Every worktree of the repository, not just this one: rewriting a
    // sibling's commondir would send git in that checkout to the agent's
    // hooks.
    let mut worktrees = vec![linked.gitdir.clone()];
    if let Ok(entries) = std::fs::read_dir(linked.common.join("worktrees")) {
        worktrees.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    for w in &worktrees {
        for name in WORKTREE_PROTECTED {
            part(&mut found, &mut seen, w, name);
        }
    }
    protect_modules(&linked.common.join("modules"), &mut found, &mut seen);
    found
}

/// Protected paths that exist now but were not protected when the session
/// started: the session created them. Reported, never silently accepted.
pub fn created_protected(workspace: &super::WorkspacePlan) -> Vec<PathBuf> {
    // In overlay mode the host workspace does not change; `cage diff`
    // flags what the session touched.
    if workspace.watch.is_empty() || workspace.overlay.is_some() {
        return Vec::new();
    }
    let before: BTreeSet<&Path> = workspace
        .protected
        .iter()
        .map(|p| p.path.as_path())
        .chain(workspace.links.iter().map(PathBuf::as_path))
        .collect();
    let scan = scan(&workspace.path, &workspace.watch);
    let linked = workspace
        .gitdirs
        .iter()
        .filter(|g| g.access == super::Access::ReadWrite)
        .flat_map(protect_linked);
    // A link under a protected name counts as created too: links were never
    // protected, and the session may have made or retargeted it.
    scan.found
        .into_iter()
        .chain(linked)
        .map(|p| p.path)
        .chain(scan.links)
        .filter(|p| !before.contains(p.as_path()))
        .collect()
}

/// Whether `rel`, a path relative to the workspace, is or lies under a
/// protected name (at any depth), a submodule gitdir's protected part, or
/// a `.git` file. Returns the name that matched.
pub fn is_protected(rel: &Path, names: &[String]) -> Option<String> {
    let parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
    for name in names {
        let want: Vec<&std::ffi::OsStr> = Path::new(name).iter().collect();
        if want.is_empty() || want.len() > parts.len() {
            continue;
        }
        if parts.windows(want.len()).any(|w| w == want.as_slice()) {
            return Some(name.clone());
        }
    }
    // .git/modules/<name...>/{hooks,config,info}
    if let Some(i) = parts
        .windows(2)
        .position(|w| w[0] == ".git" && w[1] == "modules")
        && let Some(part) = parts[i + 2..]
            .iter()
            .find(|p| GITDIR_PROTECTED.iter().any(|g| **p == *g))
    {
        return Some(format!(".git/modules/*/{}", part.to_string_lossy()));
    }
    (parts.last().is_some_and(|l| *l == ".git")).then(|| ".git".to_string())
}
