//! The top-level error: every module's error, and the exit code each maps
//! to (DESIGN.md: 125 cage error, 126 cannot execute, 127 not found).

use crate::audit::AuditError;
use crate::host::HostError;
use crate::plan::BuildError;
use crate::policy::PolicyError;
use crate::supervisor::SupervisorError;

pub const EXIT_CAGE: i32 = 125;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Host(#[from] HostError),
    // Boxed: these carry paths and provenance, and every Result in the
    // command layer would otherwise be as large as they are.
    #[error(transparent)]
    Policy(Box<PolicyError>),
    #[error(transparent)]
    Plan(Box<BuildError>),
    #[error(transparent)]
    Run(#[from] SupervisorError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    #[error(
        "no running cage session for {cwd} (`cage sessions` lists them; name one with --session)"
    )]
    NoRunningSession { cwd: std::path::PathBuf },
    #[error(transparent)]
    State(#[from] crate::session::state::StateError),
    #[error(transparent)]
    Changes(#[from] crate::session::changes::ChangesError),
    #[error(transparent)]
    Apply(#[from] crate::session::apply::ApplyError),
    #[error(transparent)]
    Restore(#[from] crate::session::quarantine::RestoreError),
    #[error("writing {what}")]
    Output {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: std::path::PathBuf },
    #[error("writing {}", crate::term::escape_path(path))]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no project policy: no .cage.toml between {cwd} and the repository root")]
    NoProjectFile { cwd: std::path::PathBuf },
    #[error("{path} is outside the session's workspace {workspace}")]
    OutsideWorkspace {
        path: std::path::PathBuf,
        workspace: std::path::PathBuf,
    },
    #[error(
        "refusing to run: [limits] {limits} must be enforced ({rule}), but cannot be here: \
         {why}. Run cage in a systemd user session (a login with systemd --user, or under \
         `systemd-run --user --scope -p Delegate=yes`), or drop `required`"
    )]
    LimitsRequired {
        limits: String,
        why: String,
        rule: String,
    },
    #[error(
        "not trusting {}: {why}; nothing was pinned (pass --yes to trust it without being asked)",
        crate::term::escape_path(path)
    )]
    TrustNotConfirmed {
        path: std::path::PathBuf,
        why: &'static str,
    },
    #[error("{target}: not a path or HOST[:PORT]")]
    BadTarget { target: String },
    #[error(
        "run options (-p, --net, --dry-run, ...) before a subcommand apply to `run`, `explain` \
         and `policy show` only"
    )]
    RunOptionsMisplaced,
    #[error(transparent)]
    NotFound(#[from] crate::plan::command::NotFound),
    #[error("selftest: {step}")]
    Selftest {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "selftest: the probe inside the cage reported nothing (the cage exited with status \
         {status}); run `cage --dry-run` here to see the plan, and `cage doctor`"
    )]
    SelftestProbe { status: i32 },
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretError),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Run(e) => e.exit_code(),
            Error::NotFound(_) => crate::sandbox::init::EXIT_NOT_FOUND,
            // A refusal, not a failure: nothing was done, by design.
            Error::Apply(crate::session::apply::ApplyError::ChangedOnHost { .. }) => 1,
            _ => EXIT_CAGE,
        }
    }
}

impl From<PolicyError> for Error {
    fn from(e: PolicyError) -> Self {
        Error::Policy(Box::new(e))
    }
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Error::Plan(Box::new(e))
    }
}

/// An error and its sources on one line: "a: b: c".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
