//! Where a rule came from, so `explain` and `--dry-run` can name the line.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// The origin of one rule: a built-in profile, a file and line, or a flag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// A built-in profile embedded in the binary (`policies/NAME.toml`).
    Builtin { profile: String, line: usize },
    /// A policy file on disk: user config, user profile or project file.
    File { path: PathBuf, line: usize },
    /// A command-line flag, spelled as the user typed it (`--rw`).
    Flag { flag: String },
    /// A decision cage makes itself (the plan's fixed skeleton).
    Default { what: &'static str },
}

impl Provenance {
    pub fn flag(flag: &str) -> Self {
        Provenance::Flag {
            flag: flag.to_string(),
        }
    }

    /// A line of a file (not the file as a whole, line 0).
    pub fn is_file_line(&self) -> bool {
        matches!(self, Provenance::File { line, .. } if *line > 0)
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Builtin { profile, line } => write!(f, "builtin:{profile}:{line}"),
            // Line 0: the file as a whole (what its rules do together).
            Provenance::File { path, line: 0 } => write!(f, "{}", path.display()),
            Provenance::File { path, line } => write!(f, "{}:{line}", path.display()),
            Provenance::Flag { flag } => write!(f, "flag {flag}"),
            Provenance::Default { what } => write!(f, "cage default ({what})"),
        }
    }
}

/// A value together with the rule that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Provenance,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Provenance) -> Self {
        Sourced { value, source }
    }
}
