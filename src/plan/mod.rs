//! The plan: what cage will do, fully resolved, as plain data.
//!
//! [`build`] is one pure function from a merged [`Policy`] and [`Host`]
//! facts to a [`Plan`]. Every sandbox decision lives here: defaults,
//! precedence, path resolution, mount order, protected paths, the syscall
//! list, the environment. The sandbox only executes it. Every entry carries
//! the [`Provenance`] of the rule that produced it, so `--dry-run` can print
//! it and `explain` can answer from it.

mod build;
pub mod command;
pub mod explain;
pub mod graded;
pub(crate) mod listing;
mod protect;
pub mod seccomp;
pub mod secrets;
pub mod widen;

use std::net::SocketAddrV4;
use std::path::PathBuf;

use serde::Serialize;

use crate::policy::{HostPattern, NetMode, Provenance, WorkspaceMode};

pub(crate) use build::CA_VARS;
pub use build::{
    BuildError, MAX_FORWARDS, SESSION_PLACEHOLDER, build, build_for_session,
    normalize as normalize_path,
};
#[cfg(test)]
pub(crate) use protect::scan as protect_scan;
pub use protect::{BUILTIN_PROTECTED, Created, GuardPlan, created_protected, is_protected};
pub use secrets::{SecretPlan, SecretsPlan};

/// Everything the sandbox needs, in the order it needs it.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub command: CommandPlan,
    /// The working directory: the same absolute path inside as outside.
    pub cwd: PathBuf,
    pub hostname: String,
    /// The user's ids, mapped to themselves inside the user namespace.
    pub uid: u32,
    pub gid: u32,
    pub workspace: WorkspacePlan,
    /// Applied in order on a fresh tmpfs root; parents before children.
    pub mounts: Vec<Mount>,
    pub landlock: LandlockPlan,
    pub seccomp: SeccompPlan,
    /// The agent's whole environment; nothing else is inherited.
    pub env: Vec<EnvVar>,
    pub network: NetworkPlan,
    pub limits: LimitsPlan,
    /// Things the user should know that are not errors (optional paths
    /// skipped, protected names that are symlinks, ...).
    pub notes: Vec<String>,
    /// Optional read-only rules that name a missing path inside a writable
    /// grant (`~/.claude/settings.json` in `~/.claude`): nothing can be
    /// bound there, so the agent could create it. Checked when the session
    /// ends, and reported like created protected paths.
    pub guards: Vec<PathRule>,
    /// What the supervisor's guard refuses to let the agent create, live.
    pub guard: GuardPlan,
    /// Agents' state directories: each an overlay whose upper layer is in
    /// the session's directory, with the write-through paths on top.
    pub state: Vec<StatePlan>,
    /// Directories cage creates on the host before the run, mode 0700:
    /// a state directory on first use, the write-through directories in
    /// it, and cage's own config directory when a writable grant holds
    /// its place (so it can be hidden rather than created by the agent).
    pub create: Vec<CreateDir>,
    /// Secrets held back from the cage and swapped in by the proxy.
    pub secrets: Option<SecretsPlan>,
    /// `--allow-degraded namespaces`: what runs when user namespaces
    /// cannot be created (the supervisor tries first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graded: Option<graded::Graded>,
}

/// One agent state directory, resolved.
#[derive(Clone, Debug, Serialize)]
pub struct StatePlan {
    /// Where the agent sees it (`~/.claude`), and the host directory
    /// (its canonical path) that is the overlay's lower layer.
    pub dir: PathBuf,
    pub lower: PathBuf,
    /// `state_dir/sessions/<session>/state/<n>/{upper,work}`.
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Write-through directories, bound read-write over the overlay: their
    /// changes reach the host as they happen.
    pub live: Vec<PathBuf>,
    /// Write-through files, relative to `dir`: overlayfs cannot pass a
    /// file through (and a bound file cannot be replaced by rename, as
    /// agents save them), so what the session leaves in the upper layer is
    /// copied to the host when it ends, without execute bits.
    pub files: Vec<PathBuf>,
    /// Settings files the session gets a private copy of, with these values
    /// set over the host's (written into the upper layer before the run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<crate::policy::StateSettings>,
    /// Files, relative to `dir`, the session sees masked: a copy with the
    /// placeholders of their secrets in place of the real values, written
    /// into the upper layer at start and never copied back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<PathBuf>,
    pub source: Provenance,
}

/// A directory cage makes on the host before the run.
#[derive(Clone, Debug, Serialize)]
pub struct CreateDir {
    pub path: PathBuf,
    /// Said once on stderr when cage creates it (`None`: said nothing).
    pub about: Option<String>,
    pub source: Provenance,
}

#[derive(Clone, Debug, Serialize)]
pub struct CommandPlan {
    /// argv as given; argv[0] is what the user typed.
    pub argv: Vec<String>,
    /// argv[0] resolved against the sandbox's PATH and view, or `None` when
    /// no visible executable matches (the run then fails with 127).
    pub program: Option<PathBuf>,
    /// When `program` is `None`: whether the host has it, and what would
    /// show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_found: Option<command::NotFound>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkspacePlan {
    pub path: PathBuf,
    pub mode: WorkspaceMode,
    pub source: Provenance,
    /// Existing paths bound read-only over the workspace view.
    pub protected: Vec<Protected>,
    /// The protected names, relative to any directory. A writable workspace
    /// is scanned for them again when the session ends: one that did not
    /// exist at the start could be created (cage makes no stub files to
    /// mount over), and the user is told before running anything.
    pub watch: Vec<crate::policy::Sourced<String>>,
    /// Protected names that were symbolic links at the start: cage cannot
    /// protect a link (binding it would bind its target).
    pub links: Vec<PathBuf>,
    /// Gitdirs outside the workspace that a `.git` file in it links to and
    /// that link back (linked worktrees), granted so git works there.
    pub gitdirs: Vec<LinkedGitdir>,
    /// Every git directory in the workspace at the start (`.git`,
    /// submodule gitdirs, bare repositories): one found at the end that is
    /// not here was made by the session.
    pub known_gitdirs: Vec<PathBuf>,
    /// The walk's cache of directory listings, in cage's state directory
    /// (never visible inside): the start and the end of a session read
    /// only the directories that changed since it was stored.
    pub listings: PathBuf,
    /// In direct mode, the directories the start's walk saw, with every
    /// name hashed: the session's watch starts from them. Host-side only.
    #[serde(skip)]
    pub tree: Option<std::sync::Arc<listing::Tree>>,
    /// Overlay mode: where the session's writes land instead.
    pub overlay: Option<OverlayPlan>,
}

/// A linked worktree's gitdir, verified: it holds `HEAD`, and its `gitdir`
/// file names the workspace's `.git` file that points at it.
#[derive(Clone, Debug, Serialize)]
pub struct LinkedGitdir {
    /// The `.git` file in the workspace.
    pub dotgit: PathBuf,
    /// The worktree's own gitdir (`<repo>/.git/worktrees/<name>`).
    pub gitdir: PathBuf,
    /// The repository's common gitdir (its `commondir`), holding objects,
    /// refs, hooks and config.
    pub common: PathBuf,
    pub access: Access,
}

/// The overlay workspace of one session: the workspace is the lower layer,
/// the session directory holds the upper layer and overlayfs's work
/// directory. Never visible inside the cage.
#[derive(Clone, Debug, Serialize)]
pub struct OverlayPlan {
    pub session: String,
    /// `state_dir/sessions/<session>`.
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct Protected {
    pub path: PathBuf,
    /// Which protected name matched (`.git/hooks`, `.envrc`, ...).
    pub name: String,
    pub source: Provenance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Dir,
    File,
}

/// One step of building the view. Destinations are absolute paths as the
/// agent sees them; the sandbox prefixes its new-root directory.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mount {
    /// A directory cage creates inside one of its own tmpfs mounts, for a
    /// later mount to land on, or as the empty home. Never on the host.
    Dir {
        dst: PathBuf,
        mode: u32,
        source: Provenance,
    },
    /// A fresh, private tmpfs.
    Tmpfs {
        dst: PathBuf,
        mode: u32,
        source: Provenance,
    },
    /// A bind mount of a host path (recursive; read-only applies to every
    /// submount too).
    Bind {
        src: PathBuf,
        dst: PathBuf,
        access: Access,
        kind: FileKind,
        source: Provenance,
    },
    /// An empty, read-only directory or file over `dst`, so a secret inside
    /// a granted tree is not visible.
    Hide {
        dst: PathBuf,
        kind: FileKind,
        source: Provenance,
    },
    /// A workspace directory bound onto itself, read-write, so it becomes a
    /// mount point: the kernel refuses to rename or remove a mount point
    /// (EBUSY), so the agent cannot move a parent of a protected path aside
    /// and recreate it, protected path and all, writable.
    Pin { dst: PathBuf, source: Provenance },
    /// An overlayfs on `dst` (the workspace): reads come from `lower`, every
    /// write lands in `upper`; `work` is overlayfs's scratch directory on
    /// the same filesystem as `upper`. Mounted inside the cage's user
    /// namespace with `userxattr`, so the host's `lower` never changes.
    Overlay {
        dst: PathBuf,
        lower: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        source: Provenance,
    },
    /// A new procfs for the cage's pid namespace.
    Proc { dst: PathBuf },
    /// A minimal /dev: null zero full random urandom tty, a private devpts
    /// with its own ptmx, shm, and the fd/stdin/stdout/stderr links.
    Dev { dst: PathBuf },
    /// A symbolic link in cage's own tmpfs (merged-/usr links such as
    /// `/bin -> usr/bin`).
    Symlink {
        target: PathBuf,
        dst: PathBuf,
        source: Provenance,
    },
    /// A read-only file with fixed contents, written in cage's staging
    /// tmpfs and bound over `dst` (the cage's `/etc/resolv.conf`). Never
    /// written on the host.
    File {
        dst: PathBuf,
        contents: String,
        source: Provenance,
    },
    /// A private, writable copy of a host file: created in cage's own tmpfs
    /// at `dst` (or staged and bound over `dst` when that lies in a host
    /// bind). The agent's writes never reach `src`.
    Copy {
        src: PathBuf,
        dst: PathBuf,
        source: Provenance,
    },
}

impl Mount {
    pub fn dst(&self) -> &std::path::Path {
        match self {
            Mount::Dir { dst, .. }
            | Mount::Tmpfs { dst, .. }
            | Mount::Bind { dst, .. }
            | Mount::Hide { dst, .. }
            | Mount::Pin { dst, .. }
            | Mount::Overlay { dst, .. }
            | Mount::Proc { dst }
            | Mount::Dev { dst }
            | Mount::Symlink { dst, .. }
            | Mount::File { dst, .. }
            | Mount::Copy { dst, .. } => dst,
        }
    }
}

/// Whether a layer must be enforced or may be skipped when the kernel lacks
/// it (only when the user said so).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Requirement {
    Required,
    /// The user accepted a weaker mode; cage says so on every run.
    BestEffort {
        source: Provenance,
    },
}

/// The Landlock ruleset, mirroring the view: everything not listed is
/// denied to the agent.
#[derive(Clone, Debug, Serialize)]
pub struct LandlockPlan {
    pub requirement: Requirement,
    /// Directories whose entries the agent may list, and nothing more (the
    /// root: names of what the view holds, never file contents).
    pub list: Vec<PathRule>,
    /// Paths (as the agent sees them) the agent may read and execute.
    pub read: Vec<PathRule>,
    /// Paths the agent may read, execute and change.
    pub write: Vec<PathRule>,
    /// Device files the agent may read and write (no directory rights).
    pub devices: Vec<PathRule>,
    /// ABI ≥ 6: no connecting to abstract unix sockets outside the cage.
    pub scope_abstract_sockets: bool,
    /// ABI ≥ 6: no signals to processes outside the cage.
    pub scope_signals: bool,
    /// ABI ≥ 4: no TCP bind or connect at all (the graded mode with
    /// `--net none`, where no network namespace isolates). The normal
    /// mode leaves TCP to its network namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deny_tcp: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PathRule {
    pub path: PathBuf,
    pub source: Provenance,
}

/// The seccomp filter as data; `sandbox::seccomp` compiles it to BPF.
#[derive(Clone, Debug, Serialize)]
pub struct SeccompPlan {
    /// Denied calls, each with the errno the agent sees.
    pub deny: Vec<SyscallRule>,
    /// Kill the process on a foreign syscall ABI (i386 on x86_64, x32):
    /// a deny-list is bypassable through them otherwise.
    pub kill_foreign_abi: bool,
    /// Native calls numbered above this one's answer ENOSYS: a call newer
    /// than cage's review fails closed. `None` lets them reach the kernel.
    pub newest_known: Option<String>,
    /// `[process] allow_nested_userns`: unshare, clone with namespace
    /// flags and the classic mount calls are not denied, for an inner
    /// sandbox; the rule that said so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nested_userns: Option<Provenance>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyscallRule {
    /// The syscall's name as in `man 2` (`ptrace`, `clone3`).
    pub name: String,
    pub errno: Errno,
    pub when: ArgMatch,
    pub source: Provenance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Errno {
    EPERM,
    /// For calls whose callers fall back when told the call does not exist
    /// (`clone3` → `clone`).
    ENOSYS,
}

/// When a rule applies, by the call's arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArgMatch {
    Always,
    /// Argument `arg` (0-based) has any bit of `mask` set.
    AnyBit {
        arg: u8,
        mask: u64,
    },
    /// The low 32 bits of argument `arg` equal one of `values` (ioctl
    /// commands are `unsigned int` in the kernel, so only 32 bits count).
    Equals32 {
        arg: u8,
        values: Vec<u32>,
    },
    /// The low 32 bits of argument `arg` are none of `values`.
    NotIn32 {
        arg: u8,
        values: Vec<u32>,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    pub source: Provenance,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetworkPlan {
    pub mode: NetMode,
    pub source: Provenance,
    pub allow: Vec<HostRule>,
    pub deny: Vec<HostRule>,
    /// Proxy mode: where init creates the listeners on the cage's own
    /// loopback, for the supervisor to serve from outside.
    pub proxy: Option<ProxyPlan>,
}

/// The cage-side addresses of the proxy and the DNS stub.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyPlan {
    /// HTTP (absolute-form), CONNECT and SOCKS5 on one TCP port.
    pub listen: SocketAddrV4,
    /// The DNS stub, UDP and TCP.
    pub dns: SocketAddrV4,
    /// Host loopback ports an allow rule names by IP and port: each is also
    /// listened on at the same address inside, and the supervisor connects
    /// it to the host's. Programs skip the proxy for loopback (NO_PROXY), so
    /// this is how they reach an explicitly allowed host service at all.
    pub forwards: Vec<Forward>,
}

/// One forwarded host loopback port.
#[derive(Clone, Debug, Serialize)]
pub struct Forward {
    pub addr: std::net::SocketAddr,
    pub source: Provenance,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostRule {
    pub pattern: HostPattern,
    pub source: Provenance,
}

#[derive(Clone, Debug, Serialize)]
pub struct LimitsPlan {
    pub rlimits: Vec<Rlimit>,
    /// cgroup v2 limits, applied where a delegated subtree exists.
    pub memory: Option<Limit>,
    pub pids: Option<Limit>,
    pub cpu: Option<Limit>,
    /// `[limits] required = true`: refuse to run where the cgroup limits
    /// cannot be enforced (the rule that says so).
    pub required: Option<Provenance>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RlimitKind {
    Nofile,
    Nproc,
    Fsize,
    Core,
}

impl LimitsPlan {
    /// The cgroup limits, for messages: enforced where the user has a
    /// delegated cgroup v2 subtree (`crate::cgroup`), else reported at start
    /// and in the audit log, never silently skipped.
    pub fn cgroup_limits(&self) -> Vec<String> {
        [
            ("memory", &self.memory),
            ("pids", &self.pids),
            ("cpu", &self.cpu),
        ]
        .into_iter()
        .filter_map(|(name, l)| {
            l.as_ref()
                .map(|l| format!("{name} = {} ({})", l.value, l.source))
        })
        .collect()
    }

    /// The resource limits set on the agent, for the record.
    pub fn enforced(&self) -> Vec<String> {
        self.rlimits
            .iter()
            .map(|r| format!("{:?} = {}", r.kind, r.value).to_lowercase())
            .collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Rlimit {
    pub kind: RlimitKind,
    pub value: u64,
    pub source: Provenance,
}

#[derive(Clone, Debug, Serialize)]
pub struct Limit {
    pub value: u64,
    pub source: Provenance,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// The mount whose destination is the deepest proper-or-equal prefix of
/// `path`: the one that decides what the cage shows there (the plan orders
/// mounts parents first; of two at one depth, the later wins).
pub(crate) fn deepest_cover<'a>(mounts: &'a [Mount], path: &std::path::Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(m.dst()))
        .max_by_key(|m| m.dst().components().count())
}
