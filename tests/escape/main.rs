//! Escape tests: the real `cage` binary, run as an unprivileged user,
//! against DESIGN.md's threat model. Each test is named after the property
//! it proves, names the layer it exercises, and is built to fail if that
//! layer is removed (a probe the kernel must refuse, plus, where a refusal
//! could be vacuous, a control showing the same probe works outside).
//!
//! Modules, by threat:
//! - `agents`: the real agent CLIs under their built-in profiles
//! - `front_door`: `cage -- AGENT` however the agent was installed (nvm, an
//!   npm prefix, the native installer, pipx), and the first minutes' rough edges
//! - `allow`: `cage allow` on a running session; its channel out of reach (3)
//! - `commands`: every program the agent runs, recorded with its end
//! - `filesystem`: reading secrets, writing outside, planting hooks (1, 2)
//! - `graded`: the graded mode without user namespaces (1, 2, 4)
//! - `hidden`: changes git does not show, named at the end (2)
//! - `hygiene`: environment and inherited descriptors (1)
//! - `listings`: the walk's listing cache hides no protected path (2)
//! - `local_authority`: loopback, unix sockets, the terminal (4)
//! - `processes`: pid namespace, signals, exit status, teardown (4, 6)
//! - `planting`: the guard, gitdirs by allowlist, quarantine (2)
//! - `trust`: project files judged on the plan, trust of a real file (3)
//! - `state`: agents' state directories by allowlist, host files no grant
//!   reaches (2)
//! - `kernel`: nested namespaces, mounts, capabilities, seccomp (5)
//! - `readme`: the README's first command, run as written
//! - `secrets`: a secret's real value in no process of the cage (1)
//! - `selftest`: `cage selftest`, its battery and its cleanup (1-6)
//! - `nested`: `allow_nested_userns`: an inner sandbox cannot undo the cage (2, 3, 5)
//! - `shared_dirs`: /tmp and /run refused, host sockets in grants hidden (4)
//! - `output`: cage's own output: escaped, and surviving a sabotaged
//!   terminal (8)
//! - `workspace`: git in the cage, linked worktrees, overlay sessions and
//!   their review (2, 7)
//!
//! `harness` holds the `Cage` builder and the rules for who runs cage.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod harness;

mod agents;
mod allow;
mod commands;
mod filesystem;
mod front_door;
mod graded;
mod hidden;
mod hygiene;
mod kernel;
mod listings;
mod local_authority;
mod nested;
mod output;
mod planting;
mod processes;
mod readme;
mod secrets;
mod selftest;
mod shared_dirs;
mod state;
mod trust;
mod workspace;
