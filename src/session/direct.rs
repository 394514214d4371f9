//! `cage diff` of a direct session: the changed files its record lists
//! (the `files_changed` record written when it ended), what git shows of
//! the tracked ones (against HEAD, now), and the others named. git runs
//! without external diff drivers or textconv filters, whatever the
//! repository's attributes say; what it prints is the agent's, escaped.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::audit::{self, FileChange, FilesChanged};
use crate::term::{escape_path, escape_text};

use super::Record;

/// The text `cage diff` prints for the direct session in `dir`.
pub fn render(dir: &Path, record: &Record) -> Result<String, audit::AuditError> {
    let Some(changed) = files_changed(dir)? else {
        return Ok(format!(
            "direct session {}: no record of changed files (it is running, or ended before cage \
             could compare)\n",
            record.id
        ));
    };
    let ws = &record.workspace;
    let mut out = format!(
        "direct session {}: {} added, {} modified, {} deleted, {} mode change(s){}\n\
         (the session's record; git below shows the workspace as it is now)\n",
        record.id,
        changed.added,
        changed.modified,
        changed.deleted,
        changed.mode_changed,
        if changed.complete { "" } else { " (partial)" }
    );
    let rel: Vec<PathBuf> = changed
        .paths
        .iter()
        .filter_map(|p| p.path.strip_prefix(ws).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    let tracked = tracked(ws, &rel);
    if !tracked.is_empty() {
        let mut args: Vec<&OsStr> = [
            "diff",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "HEAD",
            "--",
        ]
        .map(OsStr::new)
        .to_vec();
        args.extend(tracked.iter().map(|p| p.as_os_str()));
        if let Some(diff) = git(ws, &args) {
            // File contents are the agent's: escaped, lines kept.
            out.push_str(&escape_text(&String::from_utf8_lossy(&diff)));
        }
    }
    out.push_str(&untracked(&changed, ws, &tracked));
    Ok(out)
}

/// The session's `files_changed` record, if it has one.
fn files_changed(dir: &Path) -> Result<Option<FilesChanged>, audit::AuditError> {
    let log = dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).map_err(|source| audit::AuditError::Read {
        path: log.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<audit::Line>(l).ok())
        .find_map(|l| match l.record {
            audit::Record::FilesChanged(f) => Some(f),
            _ => None,
        }))
}

/// Runs git in the workspace `ws`, without a pager or an fsmonitor hook;
/// its output when it succeeds.
fn git(ws: &Path, args: &[&OsStr]) -> Option<Vec<u8>> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(ws)
        .args(["--no-pager", "-c", "core.fsmonitor=false"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| o.stdout)
}

/// Which of `rel` (relative to `ws`) git tracks: in the index, or in HEAD
/// (a deleted file is no longer in the worktree).
fn tracked(ws: &Path, rel: &[PathBuf]) -> Vec<PathBuf> {
    if rel.is_empty() {
        return Vec::new();
    }
    let names = |list: Vec<u8>| -> Vec<PathBuf> {
        list.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| PathBuf::from(OsStr::from_bytes(s)))
            .collect()
    };
    let mut tracked = Vec::new();
    for query in [
        &["ls-files", "-z", "--"][..],
        &["ls-tree", "-z", "--name-only", "HEAD", "--"][..],
    ] {
        let mut args: Vec<&OsStr> = query.iter().map(OsStr::new).collect();
        args.extend(rel.iter().map(|p| p.as_os_str()));
        if let Some(list) = git(ws, &args) {
            tracked.extend(names(list));
        }
    }
    tracked.sort();
    tracked.dedup();
    tracked
}

/// The changes git does not track, named, and how many the record left
/// out.
fn untracked(changed: &FilesChanged, ws: &Path, tracked: &[PathBuf]) -> String {
    let mut out = String::new();
    let others: Vec<&FileChange> = changed
        .paths
        .iter()
        .filter(|p| {
            p.path
                .strip_prefix(ws)
                .map_or(true, |r| !tracked.iter().any(|t| t == r))
        })
        .collect();
    if !others.is_empty() {
        out.push_str("not tracked by git (named, not diffed):\n");
        for p in others {
            out.push_str(&format!("  {:<8} {}\n", p.change, escape_path(&p.path)));
        }
    }
    let total = changed.added + changed.modified + changed.deleted + changed.mode_changed;
    if total > changed.paths.len() {
        out.push_str(&format!(
            "... and {} more change(s) the record does not list\n",
            total - changed.paths.len()
        ));
    }
    out
}
