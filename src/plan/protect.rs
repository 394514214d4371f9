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

use super::Protected;

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

/// Walks `root` and returns every existing protected path under it, in walk
/// order. `names` are relative paths matched in every directory.
pub fn find_protected(
    root: &Path,
    names: &[Sourced<String>],
    notes: &mut Vec<String>,
) -> (Vec<Protected>, Vec<PathBuf>) {
    let (found, links) = scan(root, names, notes);
    for link in &links {
        notes.push(format!(
            "{} is a symbolic link, so cage cannot protect it; check where it points before \
             trusting it",
            link.display()
        ));
    }
    (found, links)
}

/// The walk: protected paths that exist (not links), and protected names
/// that are links.
fn scan(
    root: &Path,
    names: &[Sourced<String>],
    notes: &mut Vec<String>,
) -> (Vec<Protected>, Vec<PathBuf>) {
    let mut links = Vec::new();
    let mut found: Vec<Protected> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |found: &mut Vec<Protected>, path: PathBuf, name: &str, source: &Provenance| {
        if seen.insert(path.clone()) {
            found.push(Protected {
                path,
                name: name.to_string(),
                source: source.clone(),
            });
        }
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut here = BTreeSet::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && name != ".git" {
                stack.push(entry.path());
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
                Ok(_) => push(&mut found, path, &rule.value, &rule.source),
                Err(_) => {}
            }
        }
        // Submodule gitdirs live under .git/modules, nested to any depth.
        let modules = dir.join(".git/modules");
        if modules.is_dir() {
            let source = Provenance::Default {
                what: "protected paths: submodule gitdir",
            };
            let mut gitdirs = vec![modules];
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
                            if q.symlink_metadata()
                                .is_ok_and(|m| !m.file_type().is_symlink())
                            {
                                push(&mut found, q, &format!(".git/modules/*/{part}"), &source);
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
        // A `.git` file points at a gitdir elsewhere (linked worktree or
        // submodule). Inside the workspace it is covered above; outside it
        // is not visible, so git in the cage cannot use it.
        let dotgit = dir.join(".git");
        if dotgit.is_file()
            && let Ok(text) = std::fs::read_to_string(&dotgit)
            && let Some(target) = text.trim().strip_prefix("gitdir:")
        {
            let target = super::build::normalize(&dir.join(target.trim()));
            if !target.starts_with(root) {
                notes.push(format!(
                    "{} points at the gitdir {}, outside the workspace: it is not visible \
                     inside the cage (grant it with --rw if git must work there)",
                    dotgit.display(),
                    target.display()
                ));
            }
        }
    }
    (found, links)
}

/// Protected paths that exist now but were not protected when the session
/// started: the session created them. Reported, never silently accepted.
pub fn created_protected(workspace: &super::WorkspacePlan) -> Vec<PathBuf> {
    if workspace.watch.is_empty() {
        return Vec::new();
    }
    let mut notes = Vec::new();
    let before: BTreeSet<&Path> = workspace
        .protected
        .iter()
        .map(|p| p.path.as_path())
        .chain(workspace.links.iter().map(PathBuf::as_path))
        .collect();
    let (found, links) = scan(&workspace.path, &workspace.watch, &mut notes);
    // A link under a protected name counts as created too: links were never
    // protected, and the session may have made or retargeted it.
    found
        .into_iter()
        .map(|p| p.path)
        .chain(links)
        .filter(|p| !before.contains(p.as_path()))
        .collect()
}
