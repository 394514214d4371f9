//! `PolicyError`: everything that can go wrong reading, merging or trusting
//! policy, each as one message a user can act on.
//!
//! Anything located in a file starts `FILE:LINE:COL: ` (built-in profiles
//! are named `builtin:NAME`). OS errors stay as `#[source]` and are not
//! repeated in the message, so the top level prints the chain once.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::hosts::HostPatternError;
use super::trust::Widening;

/// Where in a policy source something is: a file (or `builtin:NAME`), and
/// the 1-based line and column when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based (line, column); the column counts characters.
    pub pos: Option<(usize, usize)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some((line, col)) => write!(f, "{}:{line}:{col}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// `"LOCATION: "` or nothing, for messages that may or may not come from a
/// file (a profile named with `-p` has no location).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At(pub Option<Location>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(loc) => write!(f, "{loc}: "),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading policy file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the policy file {} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },

    /// TOML syntax, an unknown key, or a value of the wrong type.
    #[error("{at}: {message}")]
    Toml { at: Location, message: String },

    #[error("{at}: bad host pattern `{pattern}`: {reason}")]
    HostPattern {
        at: Location,
        pattern: String,
        reason: HostPatternError,
    },

    #[error("{at}: bad size `{value}`: {reason}")]
    Size {
        at: Location,
        value: String,
        reason: &'static str,
    },

    #[error("{at}: {key} = {value}: {reason}")]
    Limit {
        at: Location,
        key: &'static str,
        value: u64,
        reason: &'static str,
    },

    #[error("{at}: bad path `{path}`: {reason}")]
    Path {
        at: Location,
        path: String,
        reason: &'static str,
    },

    #[error("{at}: bad protected name `{name}`: {reason}")]
    Protect {
        at: Location,
        name: String,
        reason: &'static str,
    },

    #[error("{at}: bad environment variable `{name}`: {reason}")]
    EnvName {
        at: Location,
        name: String,
        reason: &'static str,
    },

    #[error("{at}: bad secret `{name}`: {reason}")]
    Secret {
        at: Location,
        name: String,
        reason: String,
    },

    #[error("{at}: the value of `{name}` contains a NUL byte")]
    EnvValue { at: Location, name: String },

    #[error(
        "{at}bad profile name `{name}`: use letters, digits, `-` and `_` \
         (a profile is a file name, never a path)"
    )]
    ProfileName { at: At, name: String },

    #[error(
        "{at}unknown profile `{name}`; available: {}{}",
        available.join(", "),
        user_dir_hint(user_dir)
    )]
    UnknownProfile {
        at: At,
        name: String,
        /// Built-in and user profile names, sorted.
        available: Vec<String>,
        user_dir: PathBuf,
    },

    #[error("{at}: cyclic extends: {}", cycle.join(" -> "))]
    Cycle {
        at: Location,
        /// From the first profile to the one that repeats it.
        cycle: Vec<String>,
    },

    #[error("{}", untrusted_message(path, widenings, *changed))]
    Untrusted {
        path: PathBuf,
        widenings: Vec<Widening>,
        /// The file was trusted once, and its bytes changed since.
        changed: bool,
    },

    #[error(
        "the project policy {} is a symbolic link (to {}): cage trusts only a real file of the \
         project, so a link cannot borrow another file's trust. Replace the link with a copy, \
         pass the file you mean with -f, or pass --no-project-policy",
        path.display(),
        target.display()
    )]
    ProjectLink { path: PathBuf, target: PathBuf },

    #[error(
        "the project policy {} is really {}, outside the project {}: cage trusts only a real \
         file of the project. Pass the file you mean with -f, or pass --no-project-policy",
        path.display(),
        real.display(),
        root.display()
    )]
    ProjectOutside {
        path: PathBuf,
        real: PathBuf,
        root: PathBuf,
    },

    /// A command-line value that does not parse.
    #[error("{flag} `{value}`: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },

    #[error("finding the absolute path of {}", path.display())]
    Canonicalize {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot pin {}: the trust store keys paths as UTF-8", path.display())]
    NonUtf8Path { path: PathBuf },

    #[error("reading the trust store {}", path.display())]
    TrustStoreRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the trust store {} is damaged; fix or delete it", path.display())]
    TrustStoreParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "the trust store {} has version {found}; this cage understands version 1",
        path.display()
    )]
    TrustStoreVersion { path: PathBuf, found: u64 },

    #[error("writing the trust store {}", path.display())]
    TrustStoreWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn user_dir_hint(dir: &std::path::Path) -> String {
    format!(" (user profiles are {}/NAME.toml)", dir.display())
}

fn untrusted_message(path: &std::path::Path, widenings: &[Widening], changed: bool) -> String {
    let mut s = format!(
        "the project policy {} {} and widens the sandbox:\n",
        path.display(),
        if changed {
            "changed since it was trusted"
        } else {
            "is not trusted"
        }
    );
    for w in widenings {
        s.push_str(&format!("  {w}\n"));
    }
    s.push_str(&format!(
        "run 'cage trust {}' to allow these (`cage --dry-run -- COMMAND` shows what they \
         grant), or pass --no-project-policy",
        path.display()
    ));
    s
}
