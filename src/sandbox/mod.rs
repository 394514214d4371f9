//! The sandbox layer: makes the kernel do the plan. No decisions.

pub mod caps;
pub mod landlock;
pub mod seccomp;
