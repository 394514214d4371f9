//! The command's installation: what the view must add so argv[0] runs as it
//! does in the user's shell. Decisions only, from [`CommandFacts`] (the host's
//! PATH lookup); `build` turns them into read-only binds and links.
//!
//! The grant is the smallest tree that holds the command and what it loads:
//!
//! 1. a version directory of a node version manager (nvm's
//!    `versions/node/vX`, volta's, asdf's or mise's `installs/TOOL/VER`);
//! 2. the root of a Python virtualenv (pipx's `venvs/NAME`), the directory
//!    holding `pyvenv.cfg`;
//! 3. an npm package under a prefix's `lib/node_modules` (`PKG` or
//!    `@scope/PKG`; its dependencies live inside it);
//! 4. roots whose shims need the whole tree (`~/.volta`, `~/.asdf`, `~/.bun`);
//! 5. else the file alone (the native installer's versioned binary).
//!
//! Never the home directory or a parent of it: a match that wide falls back
//! to the file. A script's `#!` interpreter is granted the same way.
//!
//! A command found inside the workspace is the repository's, not the
//! user's: its links and an absolute `#!` path are what the repository's
//! author chose, so they grant nothing outside. Only an interpreter looked
//! up by name on the user's PATH (`#!/usr/bin/env node`) is granted for it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::CommandFacts;

/// One tree to show read-only, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub path: PathBuf,
    pub reason: &'static str,
}

/// A link to recreate inside, as it is on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub path: PathBuf,
    pub target: PathBuf,
    pub reason: &'static str,
}

/// Why a command cannot run inside: said instead of a bare 127.
#[derive(Clone, Debug, Serialize, thiserror::Error)]
pub enum NotFound {
    #[error("{name}: command not found on your PATH ({searched})")]
    OnHost { name: String, searched: String },
    #[error(
        "{name}: found at {host_path} on your PATH, but it is not visible inside the cage: {why}"
    )]
    NotVisible {
        name: String,
        host_path: PathBuf,
        why: String,
    },
}

pub const REASON_COMMAND: &str = "the command: resolved on your PATH";
pub const REASON_LINK: &str = "the command: a link on your PATH, as it is on the host";
pub const REASON_INTERPRETER: &str = "the command's #! interpreter: resolved on your PATH";

/// The trees and links that make `facts` run inside, interpreters included.
pub fn build_command_grants(
    facts: &CommandFacts,
    home: &Path,
    workspace: &Path,
    exists: &dyn Fn(&Path) -> bool,
) -> (Vec<Grant>, Vec<Link>) {
    let mut grants = Vec::new();
    let mut links = Vec::new();
    let mut next = facts
        .found
        .as_ref()
        .map(|f| (f, REASON_COMMAND, &facts.name));
    let mut from_workspace = false;
    while let Some((found, reason, name)) = next {
        from_workspace |= found.path.starts_with(workspace);
        let by_name = !name.contains('/');
        if from_workspace && !(reason == REASON_INTERPRETER && by_name) {
            next = found
                .interpreter
                .as_deref()
                .and_then(|i| i.found.as_ref().map(|f| (f, REASON_INTERPRETER, &i.name)));
            continue;
        }
        let root = installation_root(&found.real, home, exists);
        if !grants.iter().any(|g: &Grant| g.path == root) {
            grants.push(Grant { path: root, reason });
        }
        for (path, target) in &found.links {
            links.push(Link {
                path: path.clone(),
                target: target.clone(),
                reason: if reason == REASON_COMMAND {
                    REASON_LINK
                } else {
                    REASON_INTERPRETER
                },
            });
        }
        next = found
            .interpreter
            .as_deref()
            .and_then(|i| i.found.as_ref().map(|f| (f, REASON_INTERPRETER, &i.name)));
    }
    (grants, links)
}

/// The smallest tree holding `real` and what it loads (see the module
/// comment for the order of the rules).
pub fn installation_root(real: &Path, home: &Path, exists: &dyn Fn(&Path) -> bool) -> PathBuf {
    let too_wide = |p: &Path| home.starts_with(p) || p == Path::new("/");
    let ancestors: Vec<&Path> = real.ancestors().skip(1).collect();
    let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_string);
    let parent_name = |p: &Path, up: usize| p.ancestors().nth(up).and_then(name);
    // 1. Version directories: .../versions/node/vX, .../installs/TOOL/VER,
    //    volta's tools/image/TOOL/VER.
    let version_dir = ancestors.iter().find(|a| {
        (parent_name(a, 1).as_deref() == Some("node")
            && parent_name(a, 2).as_deref() == Some("versions"))
            || parent_name(a, 2).as_deref() == Some("installs")
            || (parent_name(a, 2).as_deref() == Some("image")
                && parent_name(a, 3).as_deref() == Some("tools"))
    });
    // 2. A virtualenv's root.
    let venv = ancestors.iter().find(|a| exists(&a.join("pyvenv.cfg")));
    // 3. An npm package: the directory below the outermost node_modules
    //    (its dependencies live inside it), or the one below that for @scope.
    let package = ancestors.iter().rev().find_map(|a| {
        let parent = a.parent()?;
        if name(parent).as_deref() != Some("node_modules") {
            return None;
        }
        let own = name(a)?;
        if own.starts_with('@') {
            // The scope alone holds unrelated packages: take the next one.
            let below = real.strip_prefix(a).ok()?.components().next()?;
            Some(a.join(below))
        } else {
            Some(a.to_path_buf())
        }
    });
    // 4. Roots whose shims resolve through the whole tree.
    let shim_root = [".volta", ".asdf", ".bun"]
        .iter()
        .map(|d| home.join(d))
        .find(|r| real.starts_with(r));
    let candidates = [
        version_dir.map(|p| p.to_path_buf()),
        venv.map(|p| p.to_path_buf()),
        shim_root,
        package,
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| !too_wide(p))
        .unwrap_or_else(|| real.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(real: &str, venvs: &[&str]) -> PathBuf {
        let venvs: Vec<PathBuf> = venvs
            .iter()
            .map(|v| Path::new(v).join("pyvenv.cfg"))
            .collect();
        installation_root(Path::new(real), Path::new("/home/u"), &|p| {
            venvs.iter().any(|v| v == p)
        })
    }

    #[test]
    fn each_layout_grants_its_installation() {
        let cases = [
            (
                "/home/u/.nvm/versions/node/v22.0.0/lib/node_modules/@anthropic-ai/claude-code/cli.js",
                "/home/u/.nvm/versions/node/v22.0.0",
            ),
            (
                "/home/u/.nvm/versions/node/v22.0.0/bin/node",
                "/home/u/.nvm/versions/node/v22.0.0",
            ),
            (
                "/home/u/.npm-global/lib/node_modules/@openai/codex/bin/codex.js",
                "/home/u/.npm-global/lib/node_modules/@openai/codex",
            ),
            (
                "/home/u/.npm-global/lib/node_modules/left-pad/index.js",
                "/home/u/.npm-global/lib/node_modules/left-pad",
            ),
            (
                "/home/u/.local/share/claude/versions/2.1.330",
                "/home/u/.local/share/claude/versions/2.1.330",
            ),
            (
                "/home/u/.local/share/mise/installs/node/22.1.0/bin/node",
                "/home/u/.local/share/mise/installs/node/22.1.0",
            ),
            ("/home/u/.bun/bin/bun", "/home/u/.bun"),
            ("/home/u/.volta/bin/volta-shim", "/home/u/.volta"),
            ("/home/u/bin/tool", "/home/u/bin/tool"),
        ];
        for (real, want) in cases {
            assert_eq!(root(real, &[]), Path::new(want), "{real}");
        }
        assert_eq!(
            root(
                "/home/u/.local/pipx/venvs/aider-chat/bin/aider",
                &["/home/u/.local/pipx/venvs/aider-chat"]
            ),
            Path::new("/home/u/.local/pipx/venvs/aider-chat")
        );
    }

    fn found(path: &str, real: &str, interpreter: Option<CommandFacts>) -> CommandFacts {
        CommandFacts {
            name: Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            searched: String::new(),
            found: Some(crate::host::FoundCommand {
                path: path.into(),
                links: vec![(path.into(), real.into())],
                real: real.into(),
                interpreter: interpreter.map(Box::new),
            }),
        }
    }

    #[test]
    fn a_workspace_command_grants_only_interpreters_found_by_name() {
        let home = Path::new("/home/u");
        let ws = Path::new("/home/u/proj");
        let mut by_path = found("/home/u/private/tool", "/home/u/private/tool", None);
        by_path.name = "/home/u/private/tool".into();
        let cmd = found("/home/u/proj/run", "/home/u/notes/run", Some(by_path));
        let (grants, links) = build_command_grants(&cmd, home, ws, &|_| false);
        assert!(grants.is_empty(), "{grants:?}");
        assert!(links.is_empty(), "{links:?}");
        let node = found(
            "/home/u/.nvm/versions/node/v1/bin/node",
            "/home/u/.nvm/versions/node/v1/bin/node",
            None,
        );
        let cmd = found("/home/u/proj/run.js", "/home/u/proj/run.js", Some(node));
        let (grants, _) = build_command_grants(&cmd, home, ws, &|_| false);
        assert_eq!(
            grants,
            [Grant {
                path: "/home/u/.nvm/versions/node/v1".into(),
                reason: REASON_INTERPRETER
            }]
        );
    }

    #[test]
    fn never_the_home_or_above() {
        // A pyvenv.cfg in the home itself must not grant the home.
        assert_eq!(
            root("/home/u/bin/tool", &["/home/u", "/"]),
            Path::new("/home/u/bin/tool")
        );
    }
}
