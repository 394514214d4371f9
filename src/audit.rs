//! The session's audit log: one JSON object per line in
//! `~/.local/state/cage/sessions/<id>/audit.jsonl`, outside the cage (the
//! plan hides cage's state directory from the view).
//!
//! It owns the record types, the file (one `write(2)` per record, append
//! mode, so a killed supervisor loses at most the line in flight), the
//! tally of denials for the end-of-session summary, and reading sessions
//! back for `cage log`. It decides nothing about what is allowed.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::plan::Plan;
use crate::policy::Policy;
use crate::sandbox::landlock::LandlockStatus;
use crate::term;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("creating the session record {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no cage session found for {cwd} in {dir}")]
    NoSession { cwd: PathBuf, dir: PathBuf },
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error(
        "{value:?} is not a time: give a date (2026-12-01), a date and time \
             (2026-12-01T09:30:00Z), an age (30m, 2h, 2d, 1w), today or yesterday (UTC)"
    )]
    Time { value: String },
    #[error("{value:?} is not a duration: give a number and a unit, as in 45s, 10m, 2h or 1d")]
    Duration { value: String },
    #[error("writing the log")]
    Output(#[source] io::Error),
}

/// One line of the log: when, and what.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Line {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    #[serde(flatten)]
    pub record: Record,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    SessionStart(Box<SessionStart>),
    /// A proxy decision: a denial, or an allowed connection once its
    /// upstream is connected (or failed to connect).
    Net(Net),
    /// An allowed connection ended.
    NetEnd(NetEnd),
    Dns(Dns),
    /// Protected paths that did not exist (as such) when the session
    /// started and do now: the session created them in the workspace.
    ProtectedCreated(ProtectedCreated),
    /// The guard refused a creation of a protected name, live.
    GuardRefused(GuardRefused),
    /// Protected paths the session created anyway, moved out of the
    /// workspace into the session's directory.
    Quarantined(Quarantined),
    /// The graded mode: protected paths that existed at the start and that
    /// the session changed anyway (a race won against the guard), put
    /// back from the copy taken at the start.
    Restored(Restored),
    /// An overlay session's changes, counted from its upper layer when it
    /// ended.
    OverlayChanges(OverlayChanges),
    /// The log reached its size cap: from here on, connections and DNS
    /// answers that would need a record are refused (fail closed).
    LogFull(LogFull),
    /// Write-through files of agent state directories copied back to the
    /// host from the session's layer when it ended.
    StateKept(StateKept),
    /// Changes a direct session made that `git status` does not show but a
    /// host program runs (node_modules, *.pyc, *.pth, a virtualenv's bin,
    /// .git/modules, ignored executables). Bounded.
    HiddenChanges(HiddenChanges),
    /// The cgroup limits that were enforced, and what they did.
    Limits(LimitsOutcome),
    /// The session ran in the graded mode (no namespaces): why, and what
    /// was not isolated.
    Graded(GradedRun),
    /// The proxy swapped a secret in, refused a placeholder, or scrubbed a
    /// real value from a response. Names the secret, never its value.
    Secret(SecretUse),
    /// What a direct session changed under the workspace and the writable
    /// grants, when it ended. Bounded.
    FilesChanged(FilesChanged),
    /// `cage allow` or `cage deny` changed the running session's rules, or
    /// a time-boxed allow expired.
    RuleChanged(RuleChanged),
    /// A program started inside the cage (execve/execveat, seen by the
    /// guard before the kernel carried it out).
    Exec(Exec),
    /// A program seen by an `exec` record ended (or was replaced).
    ExecEnd(ExecEnd),
    /// Records that could not be written (the queue to the log was full,
    /// or the log reached its cap): counted, never blocking the agent.
    RecordsDropped(RecordsDropped),
    SessionEnd(SessionEnd),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GradedRun {
    /// Why user namespaces could not be created.
    pub reason: String,
    /// The rule that allowed the graded mode.
    pub allowed_by: String,
    pub not_isolated: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LimitsOutcome {
    /// `memory.max = 67108864`, ... as written for the agent's cgroup.
    pub enforced: Vec<String>,
    /// Processes the OOM killer ended inside the agent's cgroup.
    pub oom_kills: u64,
    /// Forks refused at `pids.max`.
    pub pids_refused: u64,
    /// Periods the CPU quota held the agent back.
    pub cpu_throttled: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecretUse {
    /// The connection (its `net` record).
    pub id: u64,
    pub kind: SecretUseKind,
    pub secret: String,
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretUseKind {
    /// A request to one of the secret's hosts carried its placeholder,
    /// replaced by the real value.
    Swapped,
    /// A request carried the placeholder where it may not go: refused.
    Refused,
    /// A response held the real value: the cage got the placeholder.
    Scrubbed,
    /// TLS with the cage or upstream failed: nothing was sent.
    TlsFailed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleChanged {
    /// `allow`, `deny` or `expired`.
    pub action: String,
    pub pattern: String,
    /// When an allow ends (RFC 3339); none: with the session.
    pub expires: Option<String>,
    /// Who asked, from the control socket's SO_PEERCRED (host side).
    pub by_uid: Option<u32>,
    pub by_user: Option<String>,
    pub by_pid: Option<i32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FilesChanged {
    /// The trees compared.
    pub roots: Vec<PathBuf>,
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    pub mode_changed: usize,
    /// At most `session::snapshot::MAX_LISTED`, by path.
    pub paths: Vec<FileChange>,
    /// False when a tree was too large to compare whole.
    pub complete: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileChange {
    pub path: PathBuf,
    /// `added`, `modified`, `deleted` or `mode`.
    pub change: String,
}

/// Longest argv kept in an `exec` record: arguments, bytes per argument,
/// bytes in all.
pub const MAX_ARGS: usize = 256;
pub const MAX_ARG_BYTES: usize = 4096;
pub const MAX_ARGV_BYTES: usize = 16 << 10;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Exec {
    /// Pairs this record with its `exec_end`.
    pub id: u64,
    /// The process and its parent, as seen inside the cage (its pid
    /// namespace); `None` where the kernel no longer said.
    pub pid: Option<u32>,
    pub ppid: Option<u32>,
    /// The process as the supervisor sees it (the host's pid namespace).
    pub host_pid: u32,
    pub syscall: String,
    /// The path as the program asked for it (relative to `cwd` if not
    /// absolute; empty for execveat with AT_EMPTY_PATH).
    pub path: PathBuf,
    /// What the path resolved to inside the cage, links followed; an
    /// executed descriptor's target (`/memfd:NAME (deleted)`).
    pub exe: Option<PathBuf>,
    /// Bounded by MAX_ARGS, MAX_ARG_BYTES and MAX_ARGV_BYTES; invalid
    /// UTF-8 replaced.
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    pub cwd: Option<PathBuf>,
    /// Whether cage watches for the program's end (false past the bound
    /// on watched processes, or without pidfds).
    pub watched: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecEnd {
    pub id: u64,
    pub pid: Option<u32>,
    /// The program's file name, for reading the log line alone.
    pub program: String,
    #[serde(flatten)]
    pub status: ExitStatus,
    /// From the exec to the end (as the supervisor saw both).
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExitStatus {
    Exited {
        code: i32,
    },
    Killed {
        signal: i32,
        #[serde(default)]
        core_dumped: bool,
    },
    /// The process started another program (the next `exec` record of
    /// the same pid).
    Replaced,
    /// The process ended and cage could not learn how (the reason).
    Unknown {
        reason: String,
    },
}

impl ExitStatus {
    /// From a wait status (waitpid's encoding).
    pub fn from_wait(status: i32) -> ExitStatus {
        if libc::WIFEXITED(status) {
            ExitStatus::Exited {
                code: libc::WEXITSTATUS(status),
            }
        } else if libc::WIFSIGNALED(status) {
            ExitStatus::Killed {
                signal: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            }
        } else {
            ExitStatus::Unknown {
                reason: format!("wait status {status:#x}"),
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordsDropped {
    pub count: u64,
    pub reason: String,
    /// The session's last word on drops: not counted against the cap.
    #[serde(default)]
    pub at_end: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StateKept {
    pub paths: Vec<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HiddenChanges {
    /// How many were found; `paths` holds at most a bounded number.
    pub count: usize,
    /// Workspace-relative, each with its class.
    pub paths: Vec<HiddenChange>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HiddenChange {
    pub path: PathBuf,
    pub class: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogFull {
    pub limit_bytes: u64,
}

/// The most a session's log may hold of records the agent can provoke
/// (connections, DNS queries): a hostile agent must not fill the disk.
/// Hundreds of thousands of records; an honest session stays far below.
pub const MAX_LOG_BYTES: u64 = 256 << 20;

/// Distinct denied targets and refused names kept for the end-of-session
/// summary; more are counted, not kept (memory is bounded too).
const MAX_TALLY: usize = 1000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProtectedCreated {
    pub paths: Vec<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GuardRefused {
    /// The process, as the supervisor sees it.
    pub pid: u32,
    pub syscall: String,
    pub path: PathBuf,
    /// Why: the protected name or rule.
    pub rule: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Quarantined {
    /// (where it was, where it is now).
    pub moved: Vec<(PathBuf, PathBuf)>,
    /// Paths that could not be moved, with the error.
    pub failed: Vec<(PathBuf, String)>,
    /// Directories the session made unreadable, made readable again.
    #[serde(default)]
    pub reopened: Vec<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Restored {
    /// Paths put back as they were at the start.
    pub restored: Vec<PathBuf>,
    /// What the session left there, or added inside a protected
    /// directory: (where it was, where it is now, in the quarantine).
    pub moved: Vec<(PathBuf, PathBuf)>,
    /// Paths that could not be put back, with why.
    pub failed: Vec<(PathBuf, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OverlayChanges {
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    /// Changed paths that are protected (workspace-relative).
    pub protected: Vec<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionStart {
    pub session: String,
    /// The supervisor's pid on the host.
    pub pid: u32,
    /// cage's own command line.
    pub cage_argv: Vec<String>,
    /// The command run inside.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub workspace: PathBuf,
    pub workspace_mode: String,
    pub policy: Vec<PolicySource>,
    pub network: NetworkSummary,
    /// What the kernel enforced, as the agent reported it right before
    /// exec; `None` when setup failed before that.
    pub enforcement: Option<Enforcement>,
    /// Resource limits set on the agent (rlimits).
    #[serde(default)]
    pub limits: Vec<String>,
    /// Limits the policy asked for that cage could not enforce.
    #[serde(default)]
    pub limits_not_enforced: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicySource {
    pub name: String,
    pub kind: String,
    pub sha256: Option<String>,
    /// A profile applied because the command is named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_for: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkSummary {
    pub mode: String,
    /// `PATTERN [PROVENANCE]`
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// Proxy mode: the cage-side address of the proxy.
    pub proxy: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Enforcement {
    pub namespaces: Vec<String>,
    pub landlock: LandlockStatus,
    /// Seccomp programs installed (0: none).
    pub seccomp_filters: usize,
    /// Syscall rules in the plan's deny list.
    pub seccomp_denied_calls: usize,
    /// `[process] allow_nested_userns`: the rule that let the agent create
    /// user namespaces of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested_userns: Option<String>,
    pub foreign_abi_killed: bool,
    /// Every capability set cleared, bounding and ambient included.
    pub capabilities_dropped: bool,
    pub no_new_privs: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// An absolute-form HTTP request, forwarded.
    Http,
    /// HTTP CONNECT, tunnelled.
    Connect,
    Socks5,
    Udp,
    Tcp,
    /// A forwarded host loopback port, connected as is.
    Forward,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Net {
    /// Pairs this record with its `net_end`.
    pub id: u64,
    pub proto: Proto,
    /// The name (or literal) the client asked for.
    pub host: String,
    pub port: u16,
    /// The upstream address connected to.
    pub addr: Option<String>,
    pub decision: Decision,
    /// Why: the denial, or an upstream failure after an allow.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// The rule that decided, and where it was written.
    pub rule: Option<String>,
    pub source: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetEnd {
    pub id: u64,
    pub host: String,
    pub port: u16,
    /// Bytes from the cage to upstream, and back.
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dns {
    pub proto: Proto,
    pub name: String,
    /// `A`, `AAAA`, or `TYPE<n>`.
    pub qtype: String,
    pub decision: Decision,
    pub rcode: String,
    pub answers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub source: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionEnd {
    /// cage's exit status.
    pub status: i32,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    pub denied_connections: usize,
    pub refused_dns: usize,
    /// Per secret: how many requests carried it (swapped in).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub secret_requests: std::collections::BTreeMap<String, usize>,
}

/// The open log file and the running tally of denials.
#[derive(Debug)]
pub struct Log {
    file: Mutex<Sink>,
    /// The session's start record is written.
    opened: std::sync::atomic::AtomicBool,
    tally: Mutex<Tally>,
    cap: u64,
}

#[derive(Debug)]
struct Sink {
    file: File,
    written: u64,
    full: bool,
}

#[derive(Debug, Default)]
struct Tally {
    /// `host:port`, deduplicated, in order of first denial.
    denied: Vec<String>,
    denied_set: BTreeSet<String>,
    refused_dns: BTreeSet<String>,
    /// Distinct denied targets and refused names beyond MAX_TALLY.
    more_denied: usize,
    more_refused: usize,
    /// Per secret: requests that carried it, placeholders refused,
    /// responses scrubbed.
    secrets: std::collections::BTreeMap<String, [usize; 4]>,
}

impl Log {
    /// Creates `path` (it must not exist), readable by the user only.
    pub fn create(path: &Path) -> io::Result<Log> {
        Self::create_capped(path, MAX_LOG_BYTES)
    }

    /// As `create`, with another cap (tests).
    pub fn create_capped(path: &Path, cap: u64) -> io::Result<Log> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(Log {
            opened: std::sync::atomic::AtomicBool::new(false),
            file: Mutex::new(Sink {
                file,
                written: 0,
                full: false,
            }),
            tally: Mutex::new(Tally::default()),
            cap,
        })
    }

    /// Appends one record with one write(2): the page cache has it as soon
    /// as this returns, whatever happens to the supervisor next.
    /// Records the agent can provoke (connections, DNS) count against the
    /// cap; past it they are refused, once marked with a `log_full` record,
    /// and callers act on the refusal by refusing the connection or answer.
    pub fn write(&self, record: Record) -> io::Result<()> {
        self.write_at(record, SystemTime::now())
    }

    /// As `write`, for a record of an event at `time` (queued records).
    pub fn write_at(&self, record: Record, time: SystemTime) -> io::Result<()> {
        let provoked = match &record {
            Record::Net(_) | Record::NetEnd(_) | Record::Dns(_) | Record::Secret(_) => true,
            Record::Exec(_) | Record::ExecEnd(_) => true,
            Record::RecordsDropped(r) => !r.at_end,
            _ => false,
        };
        let is_start = matches!(record, Record::SessionStart(_));
        self.count(&record);
        let bytes = Self::encode_at(record, time)?;
        let mut sink = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if provoked && sink.written + bytes.len() as u64 > self.cap {
            if !sink.full {
                sink.full = true;
                let mark = Self::encode(Record::LogFull(LogFull {
                    limit_bytes: self.cap,
                }))?;
                sink.file.write_all(&mark)?;
            }
            return Err(io::Error::other(format!(
                "the audit log reached its cap of {} bytes",
                self.cap
            )));
        }
        sink.file.write_all(&bytes)?;
        sink.written += bytes.len() as u64;
        if is_start {
            self.opened
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }

    /// Tests: a log that needs no start record.
    #[cfg(test)]
    pub(crate) fn assume_opened(&self) {
        self.opened
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the start record is written.
    pub fn opened(&self) -> bool {
        self.opened.load(std::sync::atomic::Ordering::Acquire)
    }

    fn encode(record: Record) -> io::Result<Vec<u8>> {
        Self::encode_at(record, SystemTime::now())
    }

    fn encode_at(record: Record, time: SystemTime) -> io::Result<Vec<u8>> {
        let line = Line {
            time: rfc3339(time),
            record,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    fn count(&self, record: &Record) {
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        match record {
            Record::Net(n) if n.decision == Decision::Deny => {
                let target = format_target(&n.host, n.port);
                if !t.denied_set.contains(&target) {
                    if t.denied_set.len() < MAX_TALLY {
                        t.denied_set.insert(target.clone());
                        t.denied.push(target);
                    } else {
                        t.more_denied += 1;
                    }
                }
            }
            Record::Secret(u) => {
                // Names come from the plan, so the map stays small.
                let counts = t.secrets.entry(u.secret.clone()).or_default();
                counts[u.kind as usize] += 1;
            }
            Record::Dns(d) if d.decision == Decision::Deny => {
                if t.refused_dns.len() < MAX_TALLY {
                    t.refused_dns.insert(d.name.clone());
                } else if !t.refused_dns.contains(&d.name) {
                    t.more_refused += 1;
                }
            }
            _ => {}
        }
    }

    /// Distinct denials and refusals counted but not kept (beyond the
    /// tally's bound).
    pub fn beyond_tally(&self) -> (usize, usize) {
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        (t.more_denied, t.more_refused)
    }

    /// Per secret, the requests that carried it.
    pub fn secret_requests(&self) -> std::collections::BTreeMap<String, usize> {
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        t.secrets.iter().map(|(k, v)| (k.clone(), v[0])).collect()
    }

    /// The end-of-session line for secrets, when any was used.
    pub fn secrets_summary(&self) -> Option<String> {
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        if t.secrets.is_empty() {
            return None;
        }
        let parts: Vec<String> = t
            .secrets
            .iter()
            .map(|(name, [swapped, refused, scrubbed, failed])| {
                let mut s = format!("{} sent in {swapped} request(s)", term::escape(name));
                if *refused > 0 {
                    s.push_str(&format!(", its placeholder refused {refused} time(s)"));
                }
                if *scrubbed > 0 {
                    s.push_str(&format!(", scrubbed from {scrubbed} response(s)"));
                }
                if *failed > 0 {
                    s.push_str(&format!(", {failed} TLS failure(s)"));
                }
                s
            })
            .collect();
        Some(format!(
            "cage: secrets: {} (details: cage log)",
            parts.join("; ")
        ))
    }

    /// Distinct denied `host:port` targets, in order, and refused names.
    pub fn denials(&self) -> (Vec<String>, Vec<String>) {
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        (t.denied.clone(), t.refused_dns.iter().cloned().collect())
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn format_target(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One run's record: its directory, log, and what is known at start.
pub struct Session {
    pub id: String,
    pub dir: PathBuf,
    pub log: std::sync::Arc<Log>,
    started: Instant,
    start: SessionStart,
    /// Whether the start record is written (a run that fails before the
    /// cage reports still gets one, so every log opens with its start).
    start_written: std::sync::atomic::AtomicBool,
}

impl Session {
    /// Creates `audit.jsonl` (mode 0600) in the session directory `dir`
    /// that `session::reserve` made for this run. Writes nothing yet: the
    /// start record waits for the enforcement the agent reports.
    pub fn create(
        id: &str,
        dir: &Path,
        policy: &Policy,
        plan: &Plan,
        limits_not_enforced: Vec<String>,
    ) -> Result<Session, AuditError> {
        let create = |path: &Path, source| AuditError::Create {
            path: path.to_path_buf(),
            source,
        };
        let id = id.to_string();
        let dir = dir.to_path_buf();
        let path = dir.join("audit.jsonl");
        let log = Log::create(&path).map_err(|e| create(&path, e))?;
        let net = &plan.network;
        let start = SessionStart {
            session: id.clone(),
            pid: std::process::id(),
            cage_argv: std::env::args().collect(),
            argv: plan.command.argv.clone(),
            cwd: plan.cwd.clone(),
            workspace: plan.workspace.path.clone(),
            workspace_mode: format!("{:?}", plan.workspace.mode).to_lowercase(),
            policy: policy
                .sources
                .iter()
                .map(|s| PolicySource {
                    name: s.name.clone(),
                    kind: format!("{:?}", s.kind).to_lowercase(),
                    sha256: s.sha256.clone(),
                    chosen_for: s.chosen_for.clone(),
                })
                .collect(),
            network: NetworkSummary {
                mode: format!("{:?}", net.mode).to_lowercase(),
                allow: net
                    .allow
                    .iter()
                    .map(|r| format!("{} [{}]", r.pattern, r.source))
                    .collect(),
                deny: net
                    .deny
                    .iter()
                    .map(|r| format!("{} [{}]", r.pattern, r.source))
                    .collect(),
                proxy: net.proxy.as_ref().map(|p| p.listen.to_string()),
            },
            enforcement: None,
            limits: plan.limits.enforced(),
            limits_not_enforced,
        };
        Ok(Session {
            id,
            dir,
            log: std::sync::Arc::new(log),
            started: Instant::now(),
            start,
            start_written: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The session start record, with what was actually enforced.
    pub fn started(&self, enforcement: Option<Enforcement>) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        if self.start_written.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut start = self.start.clone();
        start.enforcement = enforcement;
        self.log.write(Record::SessionStart(Box::new(start)))
    }

    /// The session end record.
    pub fn ended(&self, status: i32, error: Option<String>) -> io::Result<()> {
        self.started(None)?;
        let (denied, refused) = self.log.denials();
        self.log.write(Record::SessionEnd(SessionEnd {
            status,
            duration_ms: self.started.elapsed().as_millis() as u64,
            error,
            denied_connections: denied.len() + self.log.beyond_tally().0,
            refused_dns: refused.len() + self.log.beyond_tally().1,
            secret_requests: self.log.secret_requests(),
        }))
    }

    /// The end-of-session line for secrets, when any was used.
    pub fn secrets_summary(&self) -> Option<String> {
        self.log.secrets_summary()
    }

    /// The end-of-session line for stderr, when anything was denied.
    pub fn denied_summary(&self) -> Option<String> {
        let (denied, refused) = self.log.denials();
        summary(&denied, &refused)
    }
}

/// "cage: 2 connections denied: a:443, b:22 — allow with ...", or `None`.
pub fn summary(denied: &[String], refused: &[String]) -> Option<String> {
    const SHOWN: usize = 5;
    let list = |items: &[String]| {
        let mut s = items
            .iter()
            .take(SHOWN)
            .map(|s| term::escape(s))
            .collect::<Vec<_>>()
            .join(", ");
        if items.len() > SHOWN {
            s.push_str(&format!(", and {} more", items.len() - SHOWN));
        }
        s
    };
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let mut parts = Vec::new();
    if !denied.is_empty() {
        parts.push(format!(
            "{} denied: {}",
            plural(denied.len(), "connection", "connections"),
            list(denied)
        ));
    }
    if !refused.is_empty() {
        parts.push(format!(
            "{} refused: {}",
            plural(refused.len(), "DNS name", "DNS names"),
            list(refused)
        ));
    }
    if parts.is_empty() {
        return None;
    }
    // The denied connections, then the refused names no connection
    // already names.
    let mut hosts: Vec<String> = denied
        .iter()
        .take(SHOWN)
        .map(|t| {
            // 443 and 80 are what a pattern without a port allows.
            let t = t
                .strip_suffix(":443")
                .or_else(|| t.strip_suffix(":80"))
                .unwrap_or(t);
            let t = t
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(t);
            term::escape(t)
        })
        .collect();
    for name in refused
        .iter()
        .map(|n| term::escape(n.trim_end_matches('.')))
    {
        if hosts.len() < SHOWN && !hosts.contains(&name) {
            hosts.push(name);
        }
    }
    let how = if hosts.is_empty() {
        "allow with --allow-host NAME".to_string()
    } else {
        let live: Vec<String> = hosts.iter().map(|h| format!("cage allow {h}")).collect();
        let flags: Vec<String> = hosts.iter().map(|h| format!("--allow-host {h}")).collect();
        format!(
            "allow with: {} (while a session runs), or cage {} -- ...",
            live.join("; "),
            flags.join(" ")
        )
    };
    Some(format!(
        "cage: {} — {how}, or in .cage.toml [network] allow (details: cage log --denied)",
        parts.join("; ")
    ))
}

/// Creates the sessions directory (mode 0700) if it is missing.
pub fn prepare(host: &Host) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(sessions_dir(host))
}

/// `$XDG_STATE_HOME/cage/sessions`.
pub fn sessions_dir(host: &Host) -> PathBuf {
    host.state_dir.join("sessions")
}

/// `YYYYMMDD-HHMMSS-PID`, UTC: sorts by start time.
pub(crate) fn session_id(t: SystemTime, pid: u32) -> String {
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{pid}")
}

/// `2026-11-21T22:17:38.123Z`
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// UTC calendar fields of `t` (proleptic Gregorian; days-to-civil after
/// Howard Hinnant's public-domain algorithm).
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let ms = since.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60, ms)
}

// ---- reading sessions back (`cage log`) ----

/// The log file of session `id` (a full id or a unique prefix), or with
/// no id the newest session whose workspace holds `host.cwd`: found as
/// every command finds a session (`session::find`, by start time).
pub fn find_session(host: &Host, id: Option<&str>) -> Result<PathBuf, AuditError> {
    match crate::session::find(host, id, |_| true)? {
        Some((dir, _)) => Ok(dir.join("audit.jsonl")),
        None => Err(AuditError::NoSession {
            cwd: host.cwd.clone(),
            dir: sessions_dir(host),
        }),
    }
}

/// What `cage log` picks across sessions.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// RFC 3339 bounds (UTC): sessions running at any time in between.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Sessions whose workspace is (or is under) this directory.
    pub workspace: Option<PathBuf>,
    /// Records whose stored line holds this text (ASCII case ignored).
    pub grep: Option<String>,
    /// Only denials and refusals.
    pub denied: bool,
    /// Only this session (by full id).
    pub only: Option<String>,
}

impl Filter {
    /// Whether any option asks for more than one session.
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.workspace.is_none()
            && self.grep.is_none()
            && !self.denied
    }

    fn keeps(&self, line: &Line, text: &str) -> bool {
        if self.denied && !is_denial(&line.record) {
            return false;
        }
        match &self.grep {
            Some(word) => text
                .to_ascii_lowercase()
                .contains(&word.to_ascii_lowercase()),
            None => true,
        }
    }
}

/// A record that says something was refused.
fn is_denial(record: &Record) -> bool {
    match record {
        Record::Net(n) => n.decision == Decision::Deny,
        Record::Dns(d) => d.decision == Decision::Deny,
        Record::GuardRefused(_) | Record::LogFull(_) | Record::RecordsDropped(_) => true,
        Record::RuleChanged(r) => r.action == "deny",
        _ => false,
    }
}

/// A duration for `cage allow --for`: `45s`, `10m`, `2h`, `1d`.
pub fn parse_duration(value: &str) -> Result<std::time::Duration, AuditError> {
    let bad = || AuditError::Duration {
        value: value.to_string(),
    };
    let v = value.trim();
    let unit = v.chars().last().ok_or_else(bad)?;
    let n: u64 = v[..v.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60).ok_or_else(bad)?,
        'h' => n.checked_mul(3600).ok_or_else(bad)?,
        'd' => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// A `--since`/`--until` value as an RFC 3339 UTC time: `2026-12-01`,
/// `2026-12-01T09:30:00Z` (or without the Z, or with `.mmm`), an age
/// before `now` (`30m`, `2h`, `2d`, `1w`, `45s`), `today`, `yesterday`.
pub fn parse_time(value: &str, now: SystemTime) -> Result<String, AuditError> {
    let bad = || AuditError::Time {
        value: value.to_string(),
    };
    let v = value.trim();
    let midnight = |t: SystemTime| {
        let s = rfc3339(t);
        format!("{}T00:00:00.000Z", &s[..10])
    };
    let day = std::time::Duration::from_secs(86_400);
    match v {
        "today" => return Ok(midnight(now)),
        "yesterday" => return Ok(midnight(now - day)),
        "now" => return Ok(rfc3339(now)),
        _ => {}
    }
    if let Some(unit) = v.chars().last().filter(|c| c.is_ascii_alphabetic())
        && let Ok(n) = v[..v.len() - 1].parse::<u64>()
    {
        let secs = match unit {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            'd' => n * 86_400,
            'w' => n * 7 * 86_400,
            _ => return Err(bad()),
        };
        let t = now
            .checked_sub(std::time::Duration::from_secs(secs))
            .ok_or_else(bad)?;
        return Ok(rfc3339(t));
    }
    // Dates and times: checked digit by digit, completed to the stored form.
    let shape = |s: &str, pat: &str| {
        s.len() == pat.len()
            && s.bytes().zip(pat.bytes()).all(|(c, p)| {
                if p == b'9' {
                    c.is_ascii_digit()
                } else {
                    c == p
                }
            })
    };
    let v = v.trim_end_matches('Z').replace(' ', "T");
    if shape(&v, "9999-99-99") {
        return Ok(format!("{v}T00:00:00.000Z"));
    }
    if shape(&v, "9999-99-99T99:99") {
        return Ok(format!("{v}:00.000Z"));
    }
    if shape(&v, "9999-99-99T99:99:99") {
        return Ok(format!("{v}.000Z"));
    }
    if shape(&v, "9999-99-99T99:99:99.999") {
        return Ok(format!("{v}Z"));
    }
    Err(bad())
}

/// `cage log` over every session the filter keeps, newest first; each
/// session's records in order, under a heading (or, as JSON, each stored
/// line with its session's id added).
pub fn show_many(
    host: &Host,
    filter: &Filter,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), AuditError> {
    let now = rfc3339(SystemTime::now());
    let mut sessions = crate::session::list(host)?;
    sessions.reverse();
    for (dir, record) in sessions {
        let end = record.ended.clone().unwrap_or_else(|| now.clone());
        if filter.only.as_ref().is_some_and(|id| *id != record.id)
            || filter.since.as_ref().is_some_and(|s| end < *s)
            || filter.until.as_ref().is_some_and(|u| record.started >= *u)
            || filter
                .workspace
                .as_ref()
                .is_some_and(|w| !record.workspace.starts_with(w))
        {
            continue;
        }
        let path = dir.join("audit.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(AuditError::Read { path, source }),
        };
        let mut lines = Vec::new();
        for raw in text.lines() {
            let Ok(line) = serde_json::from_str::<Line>(raw) else {
                continue;
            };
            if filter.keeps(&line, raw) {
                lines.push((raw, line));
            }
        }
        if lines.is_empty() && (filter.grep.is_some() || filter.denied) {
            continue;
        }
        let mut text = String::new();
        if json {
            for (raw, _) in &lines {
                let mut v: serde_json::Value =
                    serde_json::from_str(raw).unwrap_or(serde_json::Value::Null);
                if let Some(map) = v.as_object_mut() {
                    map.insert("session".into(), record.id.clone().into());
                }
                text.push_str(&v.to_string());
                text.push('\n');
            }
        } else {
            let status = match record.status() {
                crate::session::Status::Running => "running".to_string(),
                crate::session::Status::Exited(c) => format!("exit {c}"),
                crate::session::Status::Killed => "killed, no end recorded".to_string(),
            };
            text.push_str(&format!(
                "== session {}  {}  {}  {}  ({status})\n",
                term::escape(&record.id),
                record.started.replace('T', " "),
                term::escape_path(&record.workspace),
                quoted_argv(&record.command)
            ));
            for (_, line) in &lines {
                text.push_str(&render(line));
                text.push('\n');
                if let Some(hint) = allow_hint(&line.record) {
                    text.push_str(&hint);
                    text.push('\n');
                }
            }
            text.push('\n');
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(AuditError::Output)?;
    }
    Ok(())
}

/// For a denied connection: the exact flag that would have allowed it.
pub fn allow_hint(record: &Record) -> Option<String> {
    let target = match record {
        Record::Net(n) => {
            if n.decision != Decision::Deny
                || n.reason.as_deref().is_some_and(|r| r.contains("log"))
            {
                return None;
            }
            if n.port == 443 || n.port == 80 {
                n.host.clone()
            } else {
                format_target(&n.host, n.port)
            }
        }
        // A name refused by the DNS stub: allowing it (on 443 and 80) is
        // what makes the stub answer it.
        Record::Dns(d)
            if d.decision == Decision::Deny
                && !d.reason.as_deref().is_some_and(|r| r.contains("log")) =>
        {
            d.name.trim_end_matches('.').to_string()
        }
        _ => return None,
    };
    let t = term::escape(&target);
    Some(format!(
        "               allow with: cage allow {t} (while the session runs), or cage \
         --allow-host {t} -- ... (or [network] allow in .cage.toml)"
    ))
}

/// Prints the log at `path`: as stored (`json`) or for people. With
/// `follow`, keeps reading as records arrive until the session's end
/// record, or until its supervisor is gone without writing one.
pub fn show(path: &Path, json: bool, follow: bool, out: &mut dyn Write) -> Result<(), AuditError> {
    let read_err = |source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = io::BufReader::new(File::open(path).map_err(read_err)?);
    let mut pending = String::new();
    let mut supervisor: Option<u32> = None;
    loop {
        let n = reader.read_line(&mut pending).map_err(read_err)?;
        if n > 0 && pending.ends_with('\n') {
            let text = std::mem::take(&mut pending);
            let parsed = serde_json::from_str::<Line>(text.trim_end()).ok();
            if json {
                out.write_all(text.as_bytes())
            } else {
                match &parsed {
                    Some(line) => match allow_hint(&line.record) {
                        Some(hint) => writeln!(out, "{}\n{hint}", render(line)),
                        None => writeln!(out, "{}", render(line)),
                    },
                    None => writeln!(out, "(unreadable record) {}", term::escape(text.trim_end())),
                }
            }
            .and_then(|()| out.flush())
            .map_err(AuditError::Output)?;
            match parsed.map(|l| l.record) {
                Some(Record::SessionEnd(_)) if follow => return Ok(()),
                Some(Record::SessionStart(s)) => supervisor = Some(s.pid),
                _ => {}
            }
            continue;
        }
        // At the end of what is written so far (perhaps mid-line).
        if !follow {
            return Ok(());
        }
        if let Some(pid) = supervisor
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// argv as a shell would read it back, each word escaped: quoted when it
/// holds blanks or shell syntax, so word boundaries stay visible.
fn quoted_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
            if plain {
                term::escape(a)
            } else {
                format!("'{}'", term::escape(&a.replace('\'', "'\\''")))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `SIGKILL`, or the number.
fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {n}"))
}

/// One record for people: one line, or a few for the session start.
pub fn render(line: &Line) -> String {
    // Every field may hold what the agent chose (a host, a DNS name, a
    // path): escaped, so a logged field cannot forge a line.
    let e = |s: &str| term::escape(s);
    let clock = line
        .time
        .split_once('T')
        .map(|(_, t)| t.trim_end_matches('Z'))
        .unwrap_or(&line.time);
    match &line.record {
        Record::SessionStart(s) => render_start(&line.time, s),
        Record::Net(n) => render_net(clock, n),
        Record::Secret(u) => render_secret(clock, u),
        Record::NetEnd(e) => format!(
            "{clock}  close  #{} {}  up {} B, down {} B, {} ms",
            e.id,
            term::escape(&format_target(&e.host, e.port)),
            e.bytes_up,
            e.bytes_down,
            e.duration_ms
        ),
        Record::Dns(d) => render_dns(clock, d),
        Record::ProtectedCreated(p) => render_protected_created(clock, p),
        Record::GuardRefused(g) => format!(
            "{clock}  guard  refused {} {}: {} (pid {})",
            g.syscall,
            crate::term::escape_path(&g.path),
            crate::term::escape(&g.rule),
            g.pid
        ),
        Record::Quarantined(q) => render_quarantined(clock, q),
        Record::Restored(r) => render_restored(clock, r),
        Record::OverlayChanges(c) => render_overlay_changes(clock, c),
        Record::StateKept(k) => render_state_kept(clock, k),
        Record::HiddenChanges(h) => render_hidden_changes(clock, h),
        Record::Graded(g) => format!(
            "{clock}  WARN   graded mode ({}; allowed by {}): not isolated: {}",
            g.reason,
            g.allowed_by,
            g.not_isolated.join("; ")
        ),
        Record::Limits(l) => format!(
            "{clock}  limits {}; {} out-of-memory kill(s), {} fork(s) refused, CPU throttled \
             {} time(s)",
            l.enforced.join(", "),
            l.oom_kills,
            l.pids_refused,
            l.cpu_throttled
        ),
        Record::LogFull(f) => format!(
            "{clock}  full   the audit log reached its cap ({} bytes): later connections and \
             DNS answers were refused, later execs and exits not recorded",
            f.limit_bytes
        ),
        Record::RuleChanged(r) => render_rule_changed(clock, r),
        Record::FilesChanged(f) => render_files_changed(clock, f),
        Record::Exec(x) => render_exec(clock, x),
        Record::ExecEnd(x) => render_exec_end(clock, x),
        Record::RecordsDropped(d) => format!(
            "{clock}  drop   {} record(s) not written: {}",
            d.count,
            e(&d.reason)
        ),
        Record::SessionEnd(e) => render_end(clock, e),
    }
}

/// The rule that decided, and where it was written.
fn rule(rule: &Option<String>, source: &Option<String>) -> String {
    let e = |s: &str| term::escape(s);
    match (rule, source) {
        (Some(r), Some(s)) => format!("  [{}, {}]", e(r), e(s)),
        (Some(r), None) => format!("  [{}]", e(r)),
        _ => String::new(),
    }
}

/// A `SessionStart` record for people.
fn render_start(time: &str, s: &SessionStart) -> String {
    let e = |s: &str| term::escape(s);
    let mut out = format!(
        "{}  session {} (pid {})\n  command    {}\n  workspace  {} ({})\n",
        time.replace('T', " "),
        e(&s.session),
        s.pid,
        s.argv.iter().map(|a| e(a)).collect::<Vec<_>>().join(" "),
        term::escape_path(&s.workspace),
        e(&s.workspace_mode)
    );
    let sources: Vec<String> = s
        .policy
        .iter()
        .map(|p| {
            let name = match &p.chosen_for {
                Some(c) => format!(
                    "profile {} (chosen for the command {}; {})",
                    e(p.name.strip_prefix("builtin:").unwrap_or(c)),
                    e(c),
                    e(&p.name)
                ),
                None => e(&p.name),
            };
            match &p.sha256 {
                Some(h) => format!("{name} (sha256:{})", e(h.get(..12).unwrap_or(h))),
                None => name,
            }
        })
        .collect();
    if !sources.is_empty() {
        out.push_str(&format!("  policy     {}\n", sources.join(", ")));
    }
    out.push_str(&format!("  network    {}", e(&s.network.mode)));
    if let Some(p) = &s.network.proxy {
        out.push_str(&format!(" (proxy {})", e(&p.to_string())));
    }
    out.push('\n');
    for a in &s.network.allow {
        out.push_str(&format!("    allow {}\n", e(&a.to_string())));
    }
    for d in &s.network.deny {
        out.push_str(&format!("    deny  {}\n", e(&d.to_string())));
    }
    match &s.enforcement {
        Some(e) => out.push_str(&format!(
            "  enforced   namespaces {}; landlock ABI {} {:?}{}; seccomp {} filter(s), \
             {} denied calls{}{}; capabilities {}; no_new_privs {}",
            e.namespaces.join(" "),
            e.landlock.abi,
            e.landlock.enforced,
            if e.landlock.missing.is_empty() {
                String::new()
            } else {
                format!(" (missing {})", e.landlock.missing.join(", "))
            },
            e.seccomp_filters,
            e.seccomp_denied_calls,
            if e.foreign_abi_killed {
                ", foreign ABIs killed"
            } else {
                ""
            },
            match &e.nested_userns {
                Some(rule) => format!(
                    ", nested user namespaces ALLOWED ({})",
                    crate::term::escape_text(rule)
                ),
                None => String::new(),
            },
            if e.capabilities_dropped {
                "dropped"
            } else {
                "kept"
            },
            e.no_new_privs
        )),
        None => out.push_str("  enforced   nothing: setup failed before exec"),
    }
    out
}

/// A `Net` record for people.
fn render_net(clock: &str, n: &Net) -> String {
    let e = |s: &str| term::escape(s);
    let verdict = match (n.decision, &n.reason) {
        (Decision::Allow, None) => "allow",
        (Decision::Allow, Some(_)) => "fail ",
        (Decision::Deny, _) => "deny ",
    };
    let mut s = format!(
        "{clock}  {verdict}  {:<7}  {}",
        format!("{:?}", n.proto).to_lowercase(),
        e(&format_target(&n.host, n.port))
    );
    if let Some(a) = &n.addr {
        s.push_str(&format!(" -> {}", e(&a.to_string())));
    }
    if let Some(r) = &n.reason {
        s.push_str(&format!(": {}", e(r)));
    }
    s.push_str(&rule(&n.rule, &n.source));
    s.push_str(&format!("  #{}", n.id));
    s
}

/// A `Secret` record for people.
fn render_secret(clock: &str, u: &SecretUse) -> String {
    let e = |s: &str| term::escape(s);
    let what = match u.kind {
        SecretUseKind::Swapped => "swapped in",
        SecretUseKind::Refused => "REFUSED",
        SecretUseKind::Scrubbed => "scrubbed from the response",
        SecretUseKind::TlsFailed => "not sent (TLS failed)",
    };
    let mut s = format!(
        "{clock}  secret {} {what}  {}",
        e(&u.secret),
        e(&format_target(&u.host, u.port))
    );
    if let Some(r) = &u.reason {
        s.push_str(&format!(": {}", e(r)));
    }
    s.push_str(&format!("  #{}", u.id));
    s
}

/// A `Dns` record for people.
fn render_dns(clock: &str, d: &Dns) -> String {
    let e = |s: &str| term::escape(s);
    let mut s = format!(
        "{clock}  dns    {:<7}  {} {} -> {}",
        format!("{:?}", d.proto).to_lowercase(),
        e(&d.name),
        e(&d.qtype),
        e(&d.rcode)
    );
    if !d.answers.is_empty() {
        s.push_str(&format!(
            " {}",
            d.answers.iter().map(|a| e(a)).collect::<Vec<_>>().join(" ")
        ));
    }
    if let Some(r) = &d.reason {
        s.push_str(&format!(": {}", e(r)));
    }
    s.push_str(&rule(&d.rule, &d.source));
    s
}

/// A `ProtectedCreated` record for people.
fn render_protected_created(clock: &str, p: &ProtectedCreated) -> String {
    let list: Vec<String> = p.paths.iter().map(|p| term::escape_path(p)).collect();
    format!(
        "{clock}  WARN   the session created {} protected path(s): {}",
        p.paths.len(),
        list.join(", ")
    )
}

/// A `Quarantined` record for people.
fn render_quarantined(clock: &str, q: &Quarantined) -> String {
    let mut s = format!(
        "{clock}  quarantine  {} protected path(s) the session created were moved out",
        q.moved.len()
    );
    for (from, to) in &q.moved {
        s.push_str(&format!(
            "\n{clock}  quarantine  {} -> {}",
            crate::term::escape_path(from),
            crate::term::escape_path(to)
        ));
    }
    for (path, e) in &q.failed {
        s.push_str(&format!(
            "\n{clock}  FAILED to move {}: {}",
            crate::term::escape_path(path),
            crate::term::escape(e)
        ));
    }
    s
}

/// A `Restored` record for people.
fn render_restored(clock: &str, r: &Restored) -> String {
    let mut s = format!(
        "{clock}  restore  {} protected path(s) the session changed were put back",
        r.restored.len()
    );
    for p in &r.restored {
        s.push_str(&format!(
            "\n{clock}  restore  {}",
            crate::term::escape_path(p)
        ));
    }
    for (from, to) in &r.moved {
        s.push_str(&format!(
            "\n{clock}  quarantine  {} -> {}",
            crate::term::escape_path(from),
            crate::term::escape_path(to)
        ));
    }
    for (path, e) in &r.failed {
        s.push_str(&format!(
            "\n{clock}  FAILED to put back {}: {}",
            crate::term::escape_path(path),
            crate::term::escape(e)
        ));
    }
    s
}

/// A `OverlayChanges` record for people.
fn render_overlay_changes(clock: &str, c: &OverlayChanges) -> String {
    let mut s = format!(
        "{clock}  overlay  {} added, {} modified, {} deleted",
        c.added, c.modified, c.deleted
    );
    if !c.protected.is_empty() {
        let list: Vec<String> = c.protected.iter().map(|p| term::escape_path(p)).collect();
        s.push_str(&format!("; protected paths touched: {}", list.join(", ")));
    }
    s
}

/// A `StateKept` record for people.
fn render_state_kept(clock: &str, k: &StateKept) -> String {
    let list: Vec<String> = k.paths.iter().map(|p| p.display().to_string()).collect();
    format!(
        "{clock}  state  written back to the host: {}",
        list.join(", ")
    )
}

/// A `HiddenChanges` record for people.
fn render_hidden_changes(clock: &str, h: &HiddenChanges) -> String {
    let list: Vec<String> = h
        .paths
        .iter()
        .map(|p| format!("{} ({})", p.path.display(), p.class))
        .collect();
    format!(
        "{clock}  WARN   {} change(s) git does not show: {}",
        h.count,
        list.join(", ")
    )
}

/// A `RuleChanged` record for people.
fn render_rule_changed(clock: &str, r: &RuleChanged) -> String {
    let e = |s: &str| term::escape(s);
    let mut s = format!("{clock}  rule   {} {}", e(&r.action), e(&r.pattern));
    if let Some(t) = &r.expires {
        s.push_str(&format!(" until {}", e(t)));
    }
    if let Some(u) = &r.by_user {
        s.push_str(&format!(" (by {}", e(u)));
        if let Some(p) = r.by_pid {
            s.push_str(&format!(", pid {p}"));
        }
        s.push(')');
    }
    s
}

/// A `FilesChanged` record for people.
fn render_files_changed(clock: &str, f: &FilesChanged) -> String {
    let mut s = format!(
        "{clock}  files  {} added, {} modified, {} deleted, {} mode change(s)",
        f.added, f.modified, f.deleted, f.mode_changed
    );
    if !f.complete {
        s.push_str(" (partial: the trees were too large to compare whole)");
    }
    let total = f.added + f.modified + f.deleted + f.mode_changed;
    for p in &f.paths {
        let mark = match p.change.as_str() {
            "added" => "+",
            "deleted" => "-",
            "mode" => "m",
            _ => "~",
        };
        s.push_str(&format!(
            "\n{clock}  files  {mark} {}",
            term::escape_path(&p.path)
        ));
    }
    if total > f.paths.len() {
        s.push_str(&format!(
            "\n{clock}  files  ... and {} more",
            total - f.paths.len()
        ));
    }
    s
}

/// A `Exec` record for people.
fn render_exec(clock: &str, x: &Exec) -> String {
    let who = |p: Option<u32>| p.map_or("?".to_string(), |p| p.to_string());
    let mut s = format!(
        "{clock}  exec   #{} pid {} (parent {})  {}",
        x.id,
        who(x.pid),
        who(x.ppid),
        quoted_argv(&x.argv)
    );
    if x.argv_truncated {
        s.push_str(" [argv cut]");
    }
    let shown = x.exe.as_deref().unwrap_or(&x.path);
    if x.argv.first().map(Path::new) != Some(shown) {
        s.push_str(&format!("  ({})", term::escape_path(shown)));
    }
    if let Some(cwd) = &x.cwd {
        s.push_str(&format!("  in {}", term::escape_path(cwd)));
    }
    if !x.watched {
        s.push_str("  (its end is not watched)");
    }
    s
}

/// A `ExecEnd` record for people.
fn render_exec_end(clock: &str, x: &ExecEnd) -> String {
    let e = |s: &str| term::escape(s);
    let how = match &x.status {
        ExitStatus::Exited { code } => format!("exit {code}"),
        ExitStatus::Killed {
            signal,
            core_dumped,
        } => format!(
            "killed by {}{}",
            signal_name(*signal),
            if *core_dumped { " (core dumped)" } else { "" }
        ),
        ExitStatus::Replaced => "replaced by the next exec of this pid".to_string(),
        ExitStatus::Unknown { reason } => format!("ended, status unknown: {}", e(reason)),
    };
    format!(
        "{clock}  exit   #{} pid {} {}: {how} after {} ms",
        x.id,
        x.pid.map_or("?".to_string(), |p| p.to_string()),
        e(&x.program),
        x.duration_ms
    )
}

/// A `SessionEnd` record for people.
fn render_end(clock: &str, e: &SessionEnd) -> String {
    let mut s = format!(
        "{clock}  end    exit {} after {:.1} s; {} connection(s) denied, {} DNS name(s) \
         refused",
        e.status,
        e.duration_ms as f64 / 1000.0,
        e.denied_connections,
        e.refused_dns
    );
    for (name, n) in &e.secret_requests {
        s.push_str(&format!(
            "; secret {} sent in {n} request(s)",
            term::escape(name)
        ));
    }
    if let Some(err) = &e.error {
        s.push_str(&format!("; cage error: {}", term::escape(err)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_utc_calendar_dates() {
        let t = |s| UNIX_EPOCH + Duration::from_millis(s);
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(t(951_782_400_123)), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(t(1_795_299_458_000)), "2026-11-21T22:17:38.000Z");
        assert_eq!(session_id(t(1_795_299_458_000), 42), "20261121-221738-42");
    }

    #[test]
    fn times_for_log_filters_are_ages_dates_or_utc_times() {
        let now = UNIX_EPOCH + Duration::from_millis(1_795_299_458_000); // 2026-11-21T22:17:38Z
        let t = |v| parse_time(v, now).unwrap();
        assert_eq!(t("2d"), "2026-11-19T22:17:38.000Z");
        assert_eq!(t("30m"), "2026-11-21T21:47:38.000Z");
        assert_eq!(t("1w"), "2026-11-14T22:17:38.000Z");
        assert_eq!(t("today"), "2026-11-21T00:00:00.000Z");
        assert_eq!(t("yesterday"), "2026-11-20T00:00:00.000Z");
        assert_eq!(t("2026-12-01"), "2026-12-01T00:00:00.000Z");
        assert_eq!(t("2026-12-01T09:30"), "2026-12-01T09:30:00.000Z");
        assert_eq!(t("2026-12-01 09:30:05Z"), "2026-12-01T09:30:05.000Z");
        assert_eq!(t("2026-12-01T09:30:05.123Z"), "2026-12-01T09:30:05.123Z");
        for bad in ["", "2x", "d", "2026-1-1", "tuesday", "2026-12-01T9:30"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_durations_have_a_unit_and_are_not_zero() {
        let d = |v| parse_duration(v).map(|d| d.as_secs()).ok();
        assert_eq!(d("45s"), Some(45));
        assert_eq!(d("10m"), Some(600));
        assert_eq!(d("2h"), Some(7200));
        assert_eq!(d("1d"), Some(86_400));
        for bad in ["", "10", "0m", "m", "5x", "-1m", "99999999999999999999d"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip_and_tally_denials() {
        let dir = std::env::temp_dir().join(format!("cage-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let log = Log::create(&path).unwrap();
        assert!(
            Log::create(&path).is_err(),
            "an existing log is never reused"
        );
        let deny = |host: &str, port| {
            Record::Net(Net {
                id: 1,
                proto: Proto::Connect,
                host: host.into(),
                port,
                addr: None,
                decision: Decision::Deny,
                reason: Some("no allow rule matches".into()),
                rule: None,
                source: None,
            })
        };
        log.write(deny("evil.example", 443)).unwrap();
        log.write(deny("evil.example", 443)).unwrap();
        log.write(deny("::1", 22)).unwrap();
        log.write(Record::Dns(Dns {
            proto: Proto::Udp,
            name: "evil.example".into(),
            qtype: "A".into(),
            decision: Decision::Deny,
            rcode: "REFUSED".into(),
            answers: vec![],
            reason: None,
            rule: None,
            source: None,
        }))
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Line> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert!(text.lines().all(|l| l.contains("\"event\":")));
        assert!(render(&lines[0]).contains("deny   connect  evil.example:443"));
        let (denied, refused) = log.denials();
        assert_eq!(denied, vec!["evil.example:443", "[::1]:22"]);
        let s = summary(&denied, &refused).unwrap();
        assert!(
            s.starts_with("cage: 2 connections denied: evil.example:443, [::1]:22; 1 DNS name")
        );
        // Each host once, live and as a flag.
        assert!(
            s.contains("allow with: cage allow evil.example; cage allow [::1]:22 (while a session runs), or cage --allow-host evil.example --allow-host [::1]:22 -- ..."),
            "{s}"
        );
        // A name refused alone (a program that resolved it itself) gets
        // its line too, and the log its hint.
        let s = summary(&[], &["other.example.".to_string()]).unwrap();
        assert!(s.contains("cage allow other.example (while"), "{s}");
        assert!(
            allow_hint(&lines[3].record).is_some_and(|h| h.contains("cage allow evil.example"))
        );
        assert!(summary(&[], &[]).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod cap_tests {
    use super::*;

    fn net(host: &str) -> Record {
        Record::Net(Net {
            id: 1,
            proto: Proto::Connect,
            host: host.to_string(),
            port: 443,
            addr: None,
            decision: Decision::Deny,
            reason: None,
            rule: None,
            source: None,
        })
    }

    #[test]
    fn provoked_records_stop_at_the_cap_and_say_so_once() {
        let path = std::env::temp_dir().join(format!("cage-audit-cap-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = Log::create_capped(&path, 4096).unwrap();
        let mut refused = 0;
        for i in 0..200 {
            if log.write(net(&format!("h{i}.example"))).is_err() {
                refused += 1;
            }
        }
        assert!(refused > 0, "the cap never applied");
        // The session's own records still land after the cap.
        log.write(Record::SessionEnd(SessionEnd {
            status: 0,
            duration_ms: 1,
            error: None,
            denied_connections: 0,
            refused_dns: 0,
            secret_requests: Default::default(),
        }))
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let size = text.len() as u64;
        assert_eq!(text.matches("\"log_full\"").count(), 1, "{text}");
        assert!(text.trim_end().ends_with('}') && text.contains("session_end"));
        assert!(
            size < 4096 + 1024,
            "the log grew past its cap: {size} bytes"
        );
        std::fs::remove_file(&path).unwrap();
    }

    /// A logged field cannot forge a line or drive the terminal: every
    /// rendering of an agent-chosen host, name or path is escaped.
    #[test]
    fn agent_fields_render_escaped_on_one_line() {
        let forged =
            "x.example\n12:00:00.000  allow  connect  api.anthropic.com:443\x1b[2K\u{202e}";
        let line = |record| Line {
            time: "2026-12-01T12:00:00.000Z".into(),
            record,
        };
        let rendered = [
            render(&line(net(forged))),
            render(&line(Record::Dns(Dns {
                proto: Proto::Udp,
                name: forged.into(),
                qtype: "A\r".into(),
                decision: Decision::Deny,
                rcode: "REFUSED".into(),
                answers: vec![forged.into()],
                reason: Some(forged.into()),
                rule: None,
                source: None,
            }))),
            render(&line(Record::ProtectedCreated(ProtectedCreated {
                paths: vec![PathBuf::from(forged)],
            }))),
            summary(&[forged.to_string()], &[forged.to_string()]).unwrap(),
            render(&line(Record::Exec(Exec {
                id: 1,
                pid: Some(2),
                ppid: Some(1),
                host_pid: 10,
                syscall: "execve".into(),
                path: PathBuf::from(forged),
                exe: Some(PathBuf::from(forged)),
                argv: vec![forged.into(), "it's".into(), forged.into()],
                argv_truncated: false,
                cwd: Some(PathBuf::from(forged)),
                watched: true,
            }))),
            render(&line(Record::ExecEnd(ExecEnd {
                id: 1,
                pid: Some(2),
                program: forged.into(),
                status: ExitStatus::Unknown {
                    reason: forged.into(),
                },
                duration_ms: 1,
            }))),
            allow_hint(&net(forged)).unwrap(),
        ];
        for r in &rendered {
            assert!(crate::term::is_inert(r, false), "{r:?}");
            assert!(!r.contains('\n'), "{r:?}");
            assert!(r.contains("x.example\\n12:00:00.000"), "{r:?}");
        }
    }

    #[test]
    fn the_denial_tally_is_bounded() {
        let path = std::env::temp_dir().join(format!("cage-audit-tally-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = Log::create_capped(&path, u64::MAX).unwrap();
        for i in 0..(MAX_TALLY + 50) {
            log.write(net(&format!("h{i}.example"))).unwrap();
        }
        let (denied, _) = log.denials();
        assert_eq!(denied.len(), MAX_TALLY);
        assert_eq!(log.beyond_tally().0, 50);
        std::fs::remove_file(&path).unwrap();
    }
}
