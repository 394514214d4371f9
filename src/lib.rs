//! cage: a rootless Linux sandbox for AI agent CLIs.
//!
//! Data flows one way: `policy` (what people wrote) → `plan` (what cage will
//! do, pure data) → `sandbox` (makes the kernel do the plan). The library
//! exists so tests can reach policy and plan without privileges.

pub mod audit;
pub mod cgroup;
pub mod cli;
pub mod commands;
pub mod control;
pub mod doctor;
pub mod error;
pub mod guard;
pub mod host;
pub mod plan;
pub mod policy;
pub mod proxy;
pub mod render;
pub mod sandbox;
pub mod secrets;
pub mod selftest;
pub mod session;
pub mod supervisor;
pub mod sys;
pub mod term;
