//! The sandbox layer: makes the kernel do the plan. No decisions, only
//! syscalls, in kernel order.
//!
//! ```text
//! supervisor (host side)      spawn(): clone into new namespaces
//!  └─ cage init (pid 1)       init::run(): view, hostname, reap, forward
//!      └─ agent               init::agent(): rlimits, Landlock, caps,
//!                             seccomp, execve
//! ```

pub mod caps;
pub mod guard;
pub mod init;
pub mod landlock;
pub mod mounts;
pub mod network;
pub mod protocol;
pub mod seccomp;

use nix::sys::signal::Signal;

use crate::plan::Plan;
use crate::policy::NetMode;

/// Signals the supervisor and init pass on when someone sends them with
/// kill(2); the terminal's own signals reach the agent directly.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// What the supervisor and init block and read from a signalfd: the
/// forwarded signals and SIGCHLD.
pub fn watched_signals() -> nix::sys::signal::SigSet {
    let mut mask = nix::sys::signal::SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(*s);
    }
    mask
}

/// The namespaces the cage gets. The network namespace is skipped only in
/// `host` network mode, which the user asked for by name.
pub fn clone_flags(plan: &Plan) -> libc::c_int {
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    if plan.network.mode != NetMode::Host {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}
