//! Sessions on the host: one directory per run,
//! `state_dir/sessions/<id>/`, holding the audit log (`audit.rs`), the
//! session record (`session.toml`) and, in overlay mode, the overlay's
//! `upper/` and `work/` directories. Never visible inside the cage.
//!
//! This module owns reserving a session directory, its record, finding a
//! session again (by id prefix, or the latest for the working directory),
//! listing and discarding. `run` is a session's lifecycle (open → run →
//! finish), `finish` its end-of-session reports. `changes` reads an overlay session's upper
//! layer, `diff` renders it, `apply` lands it on the host, `preflight`
//! checks the host can mount it; `originals` puts back what a graded
//! session changed in protected files anyway. Nothing here runs inside
//! the cage.

pub mod apply;
pub mod changes;
pub mod diff;
pub mod direct;
mod finish;
pub mod hidden;
pub mod originals;
pub mod preflight;
pub mod quarantine;
pub mod run;
pub mod snapshot;
pub mod state;
pub mod watch;

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::audit;
use crate::host::Host;
use crate::plan::Plan;
use crate::policy::WorkspaceMode;

/// The record's file name in the session directory.
const RECORD: &str = "session.toml";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("creating the session directory {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the session record {path}")]
    Write {
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
    #[error("{path} is not a session record cage can read")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "no overlay session found for {cwd} in {dir} (run one with `cage --workspace overlay -- COMMAND`)"
    )]
    NoSession { cwd: PathBuf, dir: PathBuf },
    #[error("no session named {id} in {dir}")]
    Unknown { id: String, dir: PathBuf },
    #[error("{id} names several sessions in {dir}; give more of it")]
    Ambiguous { id: String, dir: PathBuf },
    #[error(
        "session {id} ran in {mode} mode: only overlay sessions have changes to review, apply or \
         discard"
    )]
    NotOverlay { id: String, mode: String },
    #[error(
        "session {id} is still running (supervisor pid {pid}); let it finish, or stop it, before \
         applying or discarding it"
    )]
    Running { id: String, pid: u32 },
    #[error("refusing to remove {path}: it is not a session directory directly under {dir}")]
    Escapes { path: PathBuf, dir: PathBuf },
    #[error("removing {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What `session.toml` says about a run. Written when the session starts,
/// rewritten (atomically) when it ends and when it is applied; a session
/// whose supervisor was killed keeps its start record, and everything else
/// is derived from the directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub workspace: PathBuf,
    pub mode: WorkspaceMode,
    pub command: Vec<String>,
    /// RFC 3339, UTC.
    pub started: String,
    /// Nanoseconds since the epoch when the session started, by the
    /// filesystem's clock: a host file whose ctime is not older changed on
    /// the host since (see `apply`).
    pub started_ns: i64,
    /// The supervisor's pid on the host.
    pub pid: u32,
    /// The protected names of the session (built-in and policy), for
    /// flagging changes to them.
    pub protect: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// When a whole-session `cage apply` last completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Exited(i32),
    /// No end was recorded and the supervisor is gone.
    Killed,
}

impl Record {
    pub fn status(&self) -> Status {
        match self.status {
            Some(code) => Status::Exited(code),
            None if supervisor_alive(self.pid) => Status::Running,
            None => Status::Killed,
        }
    }
}

/// Whether `pid` is still a cage supervisor (pids are reused: a live pid
/// must also be running cage).
fn supervisor_alive(pid: u32) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    Path::new(std::ffi::OsStr::from_bytes(argv0))
        .file_name()
        .is_some_and(|n| n == "cage")
}

/// A session directory that exists and is this run's alone.
#[derive(Clone, Debug)]
pub struct Reserved {
    pub id: String,
    pub dir: PathBuf,
}

/// Creates `sessions/<id>/` (mode 0700, parents too): the id is the start
/// time and the supervisor's pid, with a counter when that is taken.
pub fn reserve(host: &Host) -> Result<Reserved, SessionError> {
    let sessions = audit::sessions_dir(host);
    audit::prepare(host).map_err(|source| SessionError::Create {
        path: sessions.clone(),
        source,
    })?;
    let base = audit::session_id(SystemTime::now(), std::process::id());
    let mut id = base.clone();
    let mut n = 1;
    loop {
        let dir = sessions.join(&id);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(Reserved { id, dir }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => {
                n += 1;
                id = format!("{base}-{n}");
            }
            Err(source) => return Err(SessionError::Create { path: dir, source }),
        }
    }
}

impl Reserved {
    /// Removes the directory again, when the run stops before it starts.
    pub fn release(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Writes the start record; in overlay mode, first creates the upper
    /// and work directories (mode 0700) the plan names.
    pub fn start(&self, plan: &Plan, protect: Vec<String>) -> Result<Record, SessionError> {
        if let Some(o) = &plan.workspace.overlay {
            for d in [&o.upper, &o.work] {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(d)
                    .map_err(|source| SessionError::Create {
                        path: d.clone(),
                        source,
                    })?;
            }
            // The overlay's root takes the upper directory's mode: give it
            // the workspace's, or the agent sees (and apply would compare)
            // 0700. The session directory around it stays 0700.
            if let Ok(m) = std::fs::metadata(&plan.workspace.path) {
                let mode = m.permissions().mode() & changes::MODE_MASK;
                std::fs::set_permissions(&o.upper, std::fs::Permissions::from_mode(mode)).map_err(
                    |source| SessionError::Create {
                        path: o.upper.clone(),
                        source,
                    },
                )?;
            }
        }
        let now = SystemTime::now();
        // The start as the filesystem's clock saw it: the session
        // directory's ctime, just updated by the mkdirs above. File times
        // come from the kernel's coarse clock, which lags the precise one
        // by up to a tick; comparing within one clock needs no margin.
        let stamp = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&self.dir)
                .map(|m| m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec())
                .ok()
        };
        let record = Record {
            id: self.id.clone(),
            workspace: plan.workspace.path.clone(),
            mode: plan.workspace.mode,
            command: plan.command.argv.clone(),
            started: audit::rfc3339(now),
            started_ns: stamp.unwrap_or_else(|| {
                now.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i64)
                    .unwrap_or_default()
            }),
            pid: std::process::id(),
            protect,
            ended: None,
            status: None,
            applied: None,
        };
        write_record(&self.dir, &record)?;
        Ok(record)
    }
}

/// Writes `dir/session.toml` through a temporary file and a rename, so a
/// reader never sees half a record.
pub fn write_record(dir: &Path, record: &Record) -> Result<(), SessionError> {
    let path = dir.join(RECORD);
    let tmp = dir.join(".session.toml.tmp");
    let err = |source| SessionError::Write {
        path: path.clone(),
        source,
    };
    let text = toml::to_string(record).map_err(|e| err(io::Error::other(e)))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(err)
}

/// Reads `dir/session.toml`; for a session from before records existed,
/// what its audit log's start line says.
pub fn read_record(dir: &Path) -> Result<Record, SessionError> {
    let path = dir.join(RECORD);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|source| SessionError::Parse { path, source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            from_audit(dir).ok_or(SessionError::Read { path, source: e })
        }
        Err(source) => Err(SessionError::Read { path, source }),
    }
}

fn from_audit(dir: &Path) -> Option<Record> {
    use std::io::BufRead;
    let file = std::fs::File::open(dir.join("audit.jsonl")).ok()?;
    let mut lines = io::BufReader::new(file).lines();
    let first = lines.next()?.ok()?;
    let audit::Line {
        time,
        record: audit::Record::SessionStart(s),
    } = serde_json::from_str::<audit::Line>(&first).ok()?
    else {
        return None;
    };
    let mut status = None;
    for line in lines.map_while(Result::ok) {
        if let Ok(audit::Line {
            record: audit::Record::SessionEnd(e),
            ..
        }) = serde_json::from_str::<audit::Line>(&line)
        {
            status = Some(e.status);
        }
    }
    let mode = match s.workspace_mode.as_str() {
        "overlay" => WorkspaceMode::Overlay,
        "readonly" => WorkspaceMode::Readonly,
        _ => WorkspaceMode::Direct,
    };
    Some(Record {
        id: s.session,
        workspace: s.workspace,
        mode,
        command: s.argv,
        started: time,
        started_ns: 0,
        pid: s.pid,
        protect: Vec::new(),
        ended: None,
        status,
        applied: None,
    })
}

/// Records the end of the session: its exit status and time.
pub fn record_end(dir: &Path, status: i32) -> Result<(), SessionError> {
    let mut record = read_record(dir)?;
    record.ended = Some(audit::rfc3339(SystemTime::now()));
    record.status = Some(status);
    write_record(dir, &record)
}

/// Every session directory with a readable record, oldest first.
pub fn list(host: &Host) -> Result<Vec<(PathBuf, Record)>, SessionError> {
    let dir = audit::sessions_dir(host);
    let names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| {
                let e = e.ok()?;
                e.file_type().ok()?.is_dir().then_some(())?;
                e.file_name().into_string().ok()
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(SessionError::Read { path: dir, source }),
    };
    let mut all: Vec<(PathBuf, Record)> = names
        .into_iter()
        .filter_map(|n| {
            let d = dir.join(&n);
            read_record(&d).ok().map(|r| (d, r))
        })
        .collect();
    // By start time: ids sort by second, then by pid, which is no order.
    all.sort_by(|(_, a), (_, b)| (&a.started, &a.id).cmp(&(&b.started, &b.id)));
    Ok(all)
}

/// The one way to find a session, for every command: `id` (a full id, or
/// a unique prefix of one), or with no id the newest session, by start
/// time, whose workspace holds the working directory and that `fits`.
/// `Ok(None)`: no id, and no session fits.
pub fn find(
    host: &Host,
    id: Option<&str>,
    fits: impl Fn(&Record) -> bool,
) -> Result<Option<(PathBuf, Record)>, SessionError> {
    let dir = audit::sessions_dir(host);
    let all = list(host)?;
    let Some(id) = id else {
        return Ok(all
            .into_iter()
            .rev()
            .find(|(_, r)| host.cwd.starts_with(&r.workspace) && fits(r)));
    };
    let exact: Vec<&(PathBuf, Record)> = all.iter().filter(|(_, r)| r.id == id).collect();
    let hits: Vec<&(PathBuf, Record)> = if exact.is_empty() {
        all.iter().filter(|(_, r)| r.id.starts_with(id)).collect()
    } else {
        exact
    };
    match hits.as_slice() {
        [one] => Ok(Some((*one).clone())),
        [] => Err(SessionError::Unknown {
            id: id.to_string(),
            dir,
        }),
        _ => Err(SessionError::Ambiguous {
            id: id.to_string(),
            dir,
        }),
    }
}

/// Session `id` (a full id or a unique prefix), or with no id the newest
/// overlay session whose workspace holds the working directory. A named
/// session must be an overlay session.
pub fn find_overlay(host: &Host, id: Option<&str>) -> Result<(PathBuf, Record), SessionError> {
    let (path, record) =
        find(host, id, |r| r.mode == WorkspaceMode::Overlay)?.ok_or_else(|| {
            SessionError::NoSession {
                cwd: host.cwd.clone(),
                dir: audit::sessions_dir(host),
            }
        })?;
    if record.mode != WorkspaceMode::Overlay {
        return Err(SessionError::NotOverlay {
            id: record.id,
            mode: format!("{:?}", record.mode).to_lowercase(),
        });
    }
    Ok((path, record))
}

/// Refuses a session whose supervisor still runs: its overlay is mounted
/// and its upper layer still changing.
pub fn ensure_finished(record: &Record) -> Result<(), SessionError> {
    if record.status() == Status::Running {
        return Err(SessionError::Running {
            id: record.id.clone(),
            pid: record.pid,
        });
    }
    Ok(())
}

/// Removes one session's directory and nothing else: `dir` must be a real
/// directory (not a link) directly under the sessions directory.
/// overlayfs leaves `work/work` with mode 0 behind; it is opened up first.
pub fn discard(host: &Host, dir: &Path) -> Result<(), SessionError> {
    let sessions = audit::sessions_dir(host);
    let escapes = || SessionError::Escapes {
        path: dir.to_path_buf(),
        dir: sessions.clone(),
    };
    let name = dir.file_name().ok_or_else(escapes)?;
    let real_parent = crate::host::canonical(&sessions).map_err(|_| escapes())?;
    let parent = dir
        .parent()
        .and_then(|p| crate::host::canonical(p).ok())
        .ok_or_else(escapes)?;
    if parent != real_parent
        || name == ".."
        || name == "."
        || !dir.symlink_metadata().is_ok_and(|m| m.file_type().is_dir())
    {
        return Err(escapes());
    }
    let target = real_parent.join(name);
    let work = target.join("work/work");
    if work
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_dir())
    {
        let _ = std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700));
    }
    std::fs::remove_dir_all(&target).map_err(|source| SessionError::Remove {
        path: target.clone(),
        source,
    })
}

/// What pruning keeps: the newest `keep` sessions of each workspace, none
/// older than `max_age` (seconds), and whatever is not the user's to lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneRules {
    pub keep: usize,
    pub max_age: Option<u64>,
}

/// Sessions kept per workspace by default.
pub const DEFAULT_KEEP: usize = 20;
/// The default age limit: 30 days.
pub const DEFAULT_MAX_AGE: u64 = 30 * 24 * 3600;

impl Default for PruneRules {
    fn default() -> Self {
        PruneRules {
            keep: DEFAULT_KEEP,
            max_age: Some(DEFAULT_MAX_AGE),
        }
    }
}

/// Why a session is never pruned, if it is not.
pub fn pinned(dir: &Path, record: &Record) -> Option<&'static str> {
    if record.status() == Status::Running {
        return Some("running");
    }
    if dir.join("quarantine").symlink_metadata().is_ok() {
        return Some("holds quarantined files (cage restore)");
    }
    let unapplied = record.mode == WorkspaceMode::Overlay
        && record.applied.is_none()
        && std::fs::read_dir(dir.join("upper")).is_ok_and(|mut d| d.next().is_some());
    unapplied.then_some("holds changes not applied (cage diff, apply, discard)")
}

/// The sessions `rules` would remove, from `all` (oldest first, as
/// [`list`] returns them), at `now_ns` (nanoseconds since the epoch).
/// Pure apart from `pinned`'s look at each directory.
pub fn build_prune(
    all: &[(PathBuf, Record)],
    rules: PruneRules,
    now_ns: i64,
) -> Vec<(PathBuf, Record)> {
    let mut out = Vec::new();
    let mut seen: Vec<(&Path, usize)> = Vec::new();
    // Newest first, counting per workspace.
    for (dir, record) in all.iter().rev() {
        let n = match seen.iter_mut().find(|(w, _)| *w == record.workspace) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                seen.push((&record.workspace, 1));
                1
            }
        };
        let age = now_ns.saturating_sub(record.started_ns).max(0) as u64 / 1_000_000_000;
        let old = rules.max_age.is_some_and(|max| age > max);
        if (n > rules.keep || old) && pinned(dir, record).is_none() {
            out.push((dir.clone(), record.clone()));
        }
    }
    out.reverse();
    out
}

/// Removes what [`build_prune`] names; returns the ids removed.
pub fn prune(host: &Host, rules: PruneRules) -> Result<Vec<String>, SessionError> {
    let all = list(host)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let mut removed = Vec::new();
    for (dir, record) in build_prune(&all, rules, now) {
        discard(host, &dir)?;
        removed.push(record.id);
    }
    Ok(removed)
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    fn record(id: &str, ws: &str, started_ns: i64) -> (PathBuf, Record) {
        (
            PathBuf::from(format!("/nonexistent/sessions/{id}")),
            Record {
                id: id.into(),
                workspace: ws.into(),
                mode: WorkspaceMode::Direct,
                command: vec!["true".into()],
                started: String::new(),
                started_ns,
                pid: u32::MAX,
                protect: Vec::new(),
                ended: Some(String::new()),
                status: Some(0),
                applied: None,
            },
        )
    }

    #[test]
    fn keeps_the_newest_per_workspace_and_drops_the_old() {
        let day = 24 * 3600 * 1_000_000_000i64;
        let now = 100 * day;
        let all = vec![
            record("old", "/c", 10 * day),
            record("a1", "/a", 90 * day),
            record("b1", "/b", 91 * day),
            record("a2", "/a", 92 * day),
            record("a3", "/a", 93 * day),
        ];
        let rules = PruneRules {
            keep: 2,
            max_age: Some(30 * 24 * 3600),
        };
        let ids: Vec<String> = build_prune(&all, rules, now)
            .into_iter()
            .map(|(_, r)| r.id)
            .collect();
        assert_eq!(ids, ["old", "a1"]);
        let rules = PruneRules {
            keep: 2,
            max_age: None,
        };
        let ids: Vec<String> = build_prune(&all, rules, now)
            .into_iter()
            .map(|(_, r)| r.id)
            .collect();
        assert_eq!(ids, ["a1"]);
    }

    #[test]
    fn never_prunes_unapplied_changes_or_quarantine() {
        let tmp = std::env::temp_dir().join(format!("cage-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mut overlay = record("overlay", "/a", 0);
        overlay.0 = tmp.join("overlay");
        overlay.1.mode = WorkspaceMode::Overlay;
        std::fs::create_dir_all(overlay.0.join("upper/src")).unwrap();
        let mut quarantined = record("quarantined", "/a", 0);
        quarantined.0 = tmp.join("quarantined");
        std::fs::create_dir_all(quarantined.0.join("quarantine")).unwrap();
        let mut applied = overlay.clone();
        applied.1.id = "applied".into();
        applied.1.applied = Some(String::new());
        let plain = record("plain", "/a", 0);
        let rules = PruneRules {
            keep: 0,
            max_age: None,
        };
        let all = [overlay, quarantined, applied, plain];
        let ids: Vec<String> = build_prune(&all, rules, 0)
            .into_iter()
            .map(|(_, r)| r.id)
            .collect();
        assert_eq!(ids, ["applied", "plain"]);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
