//! The policy layer: what people wrote, in TOML files and flags.
//!
//! It parses, validates and merges policy sources into one [`Policy`]: flat
//! rule lists where every entry keeps its [`Provenance`]. It resolves what
//! only the source can resolve (`~`, paths relative to a file, `?optional`),
//! and decides trust for project files. It does not look at the filesystem
//! beyond reading policy files, and it makes no sandbox decision: that is
//! the plan's job.

mod builtin;
pub mod error;
pub mod hosts;
mod load;
mod parse;
pub mod provenance;
mod schema;
mod trust;

use std::path::PathBuf;

use serde::Serialize;

pub use builtin::{builtin_names, builtin_source, starter_policy};
pub use error::{Location, PolicyError};
pub use hosts::{HostPattern, HostPatternError, HostSpec, PortSpec};
pub use load::{FlagRules, LoadRequest, ProjectMode, check_file, find_project_file, load};
pub use provenance::{Provenance, Sourced};
pub use trust::{TrustReport, Widening, is_trusted, store_path, trust, trust_preview, untrust};

/// How the agent sees the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceMode {
    /// Visible, not writable. Strictest.
    Readonly,
    /// Writes land in a session's upper directory, reviewed later.
    Overlay,
    /// Writes land in the workspace (protected paths stay read-only).
    Direct,
}

/// Which network the agent gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// Loopback only.
    None,
    /// Loopback plus an allowlisting proxy served from outside.
    Proxy,
    /// The host's network namespace (no network isolation).
    Host,
}

/// A layer the user accepts running without, when the kernel lacks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Landlock,
    /// User namespaces (and with them the mount view, the pid, net, ipc
    /// and uts namespaces): without them cage runs the graded mode
    /// (`plan::graded`), Landlock and seccomp only.
    Namespaces,
}

/// A filesystem path from a rule, `~` expanded and made absolute, but not
/// canonicalised (the plan does that against the host).
#[derive(Clone, Debug, Eq, Serialize)]
pub struct PathRule {
    pub path: PathBuf,
    /// Written with a leading `?`: skipped when missing instead of an error.
    pub optional: bool,
}

/// Byte equality: rule paths are already normalised lexically, so it agrees
/// with `Path`'s component-wise equality, and merging compares every rule
/// with every other (component parsing was most of cage's start-up).
impl PartialEq for PathRule {
    fn eq(&self, other: &Self) -> bool {
        self.optional == other.optional && self.path.as_os_str() == other.path.as_os_str()
    }
}

/// Every policy source merged, lowest precedence first. Lists are unions in
/// source order; for single values the last writer wins and is recorded.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Policy {
    /// The sources that contributed, in the order they were applied.
    pub sources: Vec<Source>,
    pub workspace: WorkspacePolicy,
    pub filesystem: FilesystemPolicy,
    pub network: NetworkPolicy,
    pub env: EnvPolicy,
    pub limits: LimitsPolicy,
    pub process: ProcessPolicy,
    pub security: SecurityPolicy,
    /// `[secrets.NAME]`: values read on the host, held by the supervisor;
    /// later sources replace earlier ones of the same name.
    pub secrets: Vec<Sourced<SecretPolicy>>,
    /// The project file that was applied, if any.
    pub project: Option<ProjectPolicy>,
}

/// The project's `.cage.toml`, as applied.
///
/// Trust is decided on paths normalised lexically, then on the plan (built
/// with and without the file, `plan::widen`). Only the plan resolves
/// links: a rule from `file` whose real path leaves `root` is refused
/// when the file is untrusted, and, when it is trusted, unless it leads
/// where it led when the user trusted it (`resolved`), or a symlink
/// committed to the repository, or made by an earlier session, widens the
/// sandbox.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectPolicy {
    pub file: PathBuf,
    /// The repository root, or the file's directory outside a repository.
    pub root: PathBuf,
    /// Pinned with `cage trust` and unchanged since.
    pub trusted: bool,
    /// Pinned once, and its bytes changed since.
    pub changed: bool,
    /// Trusted: where each of the file's paths led when it was pinned
    /// (`None`: it did not exist). Empty for pins older than this record.
    pub resolved: std::collections::BTreeMap<PathBuf, Option<PathBuf>>,
    /// Applied for a preview ([`ProjectMode::Preview`]), never for a run:
    /// the plan shows an untrusted file's reach instead of refusing it.
    pub preview: bool,
    /// Untrusted, in a preview: what it widens line by line, which a run
    /// refuses.
    pub refused: Vec<Widening>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Source {
    /// `builtin:NAME`, a file path, or `flags`.
    pub name: String,
    pub kind: SourceKind,
    /// sha256 of the file's bytes (hex), for the audit record and trust.
    pub sha256: Option<String>,
    /// A profile applied because the command is named after it (no `-p`):
    /// the command's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_for: Option<String>,
}

impl Source {
    /// The source as people read it: `builtin:claude`, or
    /// `profile claude (chosen for the command claude)`.
    pub fn describe(&self) -> String {
        match &self.chosen_for {
            Some(command) => {
                let profile = self
                    .name
                    .strip_prefix("builtin:")
                    .map(str::to_string)
                    .or_else(|| {
                        std::path::Path::new(&self.name)
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                    })
                    .unwrap_or_else(|| self.name.clone());
                format!(
                    "profile {profile} (chosen for the command {command}; {})",
                    self.name
                )
            }
            None => self.name.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Builtin,
    /// The user's `config.toml`, their profiles, and files named with `-f`.
    User,
    /// The project's `.cage.toml` (see [`Policy::project`] for its trust).
    Project,
    Flags,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkspacePolicy {
    pub path: Option<Sourced<PathBuf>>,
    pub mode: Option<Sourced<WorkspaceMode>>,
    /// Names added to the built-in protected set (matched at any depth).
    pub protect: Vec<Sourced<String>>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FilesystemPolicy {
    pub read: Vec<Sourced<PathRule>>,
    pub write: Vec<Sourced<PathRule>>,
    /// Written without `?` in the built-in profiles on purpose: a hide must
    /// hold wherever a granted tree holds the path, and a missing target is
    /// nothing to hide rather than an error.
    pub hide: Vec<Sourced<PathRule>>,
    pub tmpfs: Vec<Sourced<PathRule>>,
    /// Files the agent sees with the host's content, as a private copy:
    /// its writes stay in the cage (state files that can name commands run
    /// outside, such as ~/.claude.json's MCP servers).
    pub copy: Vec<Sourced<PathRule>>,
    /// Agents' state directories (`~/.claude`): created on first use, seen
    /// whole, but only the `keep` paths write through to the host; every
    /// other change stays in the session (an overlay), so nothing the host
    /// runs later can be planted there.
    pub state: Vec<Sourced<StatePolicy>>,
}

/// One `[[filesystem.state]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatePolicy {
    /// Absolute, below the home directory, `~` expanded.
    pub dir: PathBuf,
    /// Paths below `dir` whose changes reach the host.
    pub keep: Vec<StateKeep>,
    /// What the directory is for, said when cage creates it.
    pub about: Option<String>,
    /// Settings files of which the session gets a private copy with these
    /// values set (the agent's own sandbox switched off, say).
    pub settings: Vec<StateSettings>,
}

/// One settings file in a state directory and the values its session copy
/// gets over the host's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateSettings {
    /// Relative to the state directory; `.toml` or `.json`, never a `keep`
    /// path (the copy must not reach the host).
    pub file: PathBuf,
    /// Each value with its key path (`["sandbox", "enabled"]`).
    pub values: Vec<(Vec<String>, Setting)>,
}

/// A scalar setting value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Setting {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Bool(b) => write!(f, "{b}"),
            Setting::Int(i) => write!(f, "{i}"),
            Setting::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// A write-through path in a state directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateKeep {
    /// Relative to the state directory; no `.` or `..`.
    pub path: PathBuf,
    /// Written with a trailing `/`: a directory (created when missing);
    /// otherwise a file.
    pub dir: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct NetworkPolicy {
    pub mode: Option<Sourced<NetMode>>,
    pub allow: Vec<Sourced<HostPattern>>,
    pub deny: Vec<Sourced<HostPattern>>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct EnvPolicy {
    /// Names or `PREFIX*` patterns passed from the host environment.
    pub pass: Vec<Sourced<String>>,
    /// Fixed values; later sources override earlier ones per name.
    pub set: Vec<Sourced<(String, String)>>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LimitsPolicy {
    pub nofile: Option<Sourced<u64>>,
    pub nproc: Option<Sourced<u64>>,
    /// Bytes.
    pub fsize: Option<Sourced<u64>>,
    /// Bytes; cgroup v2 only.
    pub memory: Option<Sourced<u64>>,
    /// cgroup v2 only.
    pub pids: Option<Sourced<u64>>,
    /// Percent of one CPU; cgroup v2 only.
    pub cpu: Option<Sourced<u64>>,
    /// The cgroup limits must be enforced: refuse to run where they cannot.
    pub required: Option<Sourced<bool>>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessPolicy {
    pub allow_ptrace: Option<Sourced<bool>>,
    /// Lets the agent create nested user namespaces (an inner bubblewrap,
    /// Chromium's sandbox); every other layer stays.
    pub allow_nested_userns: Option<Sourced<bool>>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SecurityPolicy {
    /// Layers the user accepts losing when the kernel cannot enforce them.
    pub allow_degraded: Vec<Sourced<Layer>>,
    /// Shared directories (`/tmp`, `/run`...) the user accepts as the
    /// workspace or a grant. Set by `--allow-shared-dir` only.
    pub allow_shared_dir: Vec<Sourced<PathBuf>>,
}

/// One secret: where its value comes from on the host, the variable that
/// holds its placeholder inside, and the only hosts the proxy swaps the
/// real value in for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretPolicy {
    pub name: String,
    pub from: SecretSource,
    /// The variable inside that holds the placeholder.
    pub env: Option<String>,
    pub hosts: Vec<HostPattern>,
    /// Hosts the proxy never terminates for this secret, though `hosts`
    /// match them: tunnels, where the placeholder is not swapped.
    pub exclude: Vec<HostPattern>,
    /// `body = true`: swapped in request bodies as well as header values.
    pub body: bool,
    /// Host variables (`$ANTHROPIC_BASE_URL` in `hosts`): the host and port
    /// of the `https://` URL cage's own environment holds there, if any.
    pub host_vars: Vec<String>,
    /// Skipped when the source does not exist.
    pub optional: bool,
    /// `mask = true` (a `json:` source only): the cage sees the file with
    /// the placeholder where the value was, a private copy in the session
    /// layer of the state directory that holds it, never written back.
    pub mask: bool,
}

/// Where a secret's real value is read, on the host, by the supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum SecretSource {
    /// `env:VAR`: cage's own environment.
    Env(String),
    /// `file:PATH`: the file's contents, one trailing newline removed.
    File(PathBuf),
    /// `cmd:COMMAND ARGS`: the command's standard output (split on
    /// whitespace, no shell), run on the host before the cage starts.
    Cmd(Vec<String>),
    /// `json:PATH#POINTER`: the JSON string an RFC 6901 pointer names in
    /// the file (a token in an agent's login file).
    Json { path: PathBuf, pointer: String },
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(v) => write!(f, "env:{v}"),
            SecretSource::File(p) => write!(f, "file:{}", p.display()),
            SecretSource::Cmd(argv) => write!(f, "cmd:{}", argv.join(" ")),
            SecretSource::Json { path, pointer } => write!(f, "json:{}#{pointer}", path.display()),
        }
    }
}
