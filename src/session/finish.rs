//! The end of a session, on the host, once the cage is gone: what it
//! left is found, recorded in its audit log and told to the user. Each
//! function writes its records and returns the lines to print (names
//! escaped); `run::Run::finish` prints them after every record is written.

use std::path::{Path, PathBuf};

use crate::audit::{self, Session};
use crate::error::chain;
use crate::plan::Plan;
use crate::term;

/// Every end-of-session report, in the order the user reads them.
/// `since`: the session's start, for the changes git does not show;
/// `before`: how a direct session's changes are found.
pub(super) fn reports(
    plan: &Plan,
    session: Option<&Session>,
    ran: bool,
    since: std::time::SystemTime,
    before: Option<Before>,
) -> Vec<String> {
    // The watch stops first: its instances close while the scans run.
    let mut before = before;
    if let Some(Before::Watch(w)) = &mut before {
        w.stop();
    }
    // Whatever the outcome: a failed run may have created paths too.
    let mut lines = quarantine_created(plan, session);
    // What the session changed; where the watch saw everything, the paths
    // the hidden-change scan must look at.
    let (changed, focus) = match before {
        Some(Before::Watch(w)) => {
            let o = w.finish();
            (Some(o.changed), o.focus)
        }
        Some(Before::Snapshot(s)) => (Some(s.compare()), None),
        None => (None, None),
    };
    if ran && plan.workspace.mode == crate::policy::WorkspaceMode::Direct {
        lines.extend(report_hidden(plan, since, session, focus.as_ref()));
    }
    if let (Some(changed), Some(session)) = (changed, session) {
        let _ = session.log.write(audit::Record::FilesChanged(changed));
    }
    lines.extend(keep_state(plan, session));
    if let Some(overlay) = &plan.workspace.overlay {
        lines.extend(report_overlay(plan, overlay, session));
    }
    lines
}

/// The end-of-session rescan: protected paths the session created anyway
/// (a race won against the guard, a link, a path only a rescan sees) are
/// moved into the session's quarantine, listed with the command that puts
/// each back, and recorded; never deleted, never left in place. Returns
/// the lines to print (names escaped).
fn quarantine_created(plan: &Plan, session: Option<&Session>) -> Vec<String> {
    let found = crate::plan::created_protected(&plan.workspace);
    let mut created = found.paths;
    // Paths a rule hides or keeps read-only, missing at the start inside a
    // writable grant.
    created.extend(
        plan.guard
            .missing
            .iter()
            .chain(plan.guards.iter().map(|g| &g.path))
            // cage made these itself, before the run (its own config
            // directory, so that it can be hidden).
            .filter(|p| !plan.create.iter().any(|c| c.path == **p))
            .filter(|p| p.symlink_metadata().is_ok())
            .cloned(),
    );
    created.sort();
    created.dedup();
    let mut lines = Vec::new();
    for (dir, e) in &found.unreadable {
        lines.push(format!(
            "cage: error: {} stayed unreadable after the session ({e}); cage could not check it \
             for protected paths: inspect it before running anything there",
            term::escape_path(dir)
        ));
    }
    if created.is_empty() && found.reopened.is_empty() {
        return lines;
    }
    let Some(session) = session else {
        lines.push(format!(
            "cage: warning: this session created {} protected path(s), and without a session \
             directory they could not be quarantined; review them before running anything:",
            created.len()
        ));
        lines.extend(
            created
                .iter()
                .map(|p| format!("cage:   {}", term::escape_path(p))),
        );
        return lines;
    };
    let (moved, failed) = crate::session::quarantine::quarantine(&session.dir, &created);
    let _ = session
        .log
        .write(audit::Record::Quarantined(audit::Quarantined {
            moved: moved.clone(),
            failed: failed.clone(),
            reopened: found.reopened.clone(),
        }));
    for dir in &found.reopened {
        lines.push(format!(
            "cage: warning: the session made {} unreadable; cage made it readable again to \
             check it",
            term::escape_path(dir)
        ));
    }
    if !moved.is_empty() {
        lines.push(format!(
            "cage: warning: this session created {} protected path(s) that run or steer code \
             outside the cage; they were moved out of the way, into {}:",
            moved.len(),
            term::escape_path(&session.dir.join("quarantine"))
        ));
        for (from, _) in &moved {
            lines.push(format!(
                "cage:   {}    (put back: cage restore {} {})",
                term::escape_path(from),
                session.id,
                term::escape_path(from)
            ));
        }
    }
    for (path, e) in &failed {
        lines.push(format!(
            "cage: error: {} could not be quarantined ({}); review it before running anything",
            term::escape_path(path),
            term::escape(e)
        ));
    }
    lines
}

/// How a direct session's changes are found at its end.
pub(super) enum Before {
    /// Seen as they happen (`session::watch`).
    Watch(crate::session::watch::Watch),
    /// Walked at both ends: inotify could not watch the trees.
    Snapshot(crate::session::snapshot::Snapshot),
}

/// Watches the workspace and every writable grant, cage's own state
/// directory left out (the session's log grows there); where they are
/// small, or watching cannot be done, takes the snapshot instead. Call
/// while single-threaded.
pub(super) fn before(plan: &Plan, session: &Session) -> Before {
    use crate::session::watch::{NotWatched, SMALL, Watch};
    let mut roots = vec![plan.workspace.path.clone()];
    roots.extend(plan.guard.roots.iter().cloned());
    let state = session.dir.parent().and_then(Path::parent);
    let skip: Vec<PathBuf> = state.into_iter().map(Path::to_path_buf).collect();
    let watched = state
        .ok_or_else(|| NotWatched::Failed("no state directory".to_string()))
        .and_then(|state| {
            let tree = plan.workspace.tree.as_deref();
            Watch::start(&roots, &skip, state, SMALL, tree)
        });
    match watched {
        Ok(w) => Before::Watch(w),
        Err(why) => {
            if let NotWatched::Failed(why) = why {
                term::emit(&format!(
                    "cage: note: watching the workspace for changes: {}; this session stats \
                     every file at its start and end instead",
                    term::escape_text(&why)
                ));
            }
            Before::Snapshot(crate::session::snapshot::Snapshot::take(&roots, &skip))
        }
    }
}

/// Changes git does not show but host programs run: one line, and the
/// bounded list in the audit log (issue 9 item 7).
fn report_hidden(
    plan: &Plan,
    since: std::time::SystemTime,
    session: Option<&Session>,
    focus: Option<&crate::session::watch::Focus>,
) -> Vec<String> {
    use crate::session::hidden;
    let ws = &plan.workspace.path;
    let report = match focus {
        Some(f) => hidden::scan_focused(ws, since, &f.within(ws)),
        None => hidden::scan(ws, since),
    };
    if let Some(session) = session
        && report.count > 0
    {
        let _ = session
            .log
            .write(audit::Record::HiddenChanges(audit::HiddenChanges {
                count: report.count,
                paths: report
                    .listed
                    .iter()
                    .map(|h| audit::HiddenChange {
                        path: h.path.clone(),
                        class: h.class.label().to_string(),
                    })
                    .collect(),
            }));
    }
    hidden::summary_line(&report, session.map(|s| s.id.as_str()))
        .into_iter()
        .collect()
}

/// Agent state directories: their write-through files, from the session's
/// layer to the host, now that nothing in the cage can race the copy.
fn keep_state(plan: &Plan, session: Option<&Session>) -> Vec<String> {
    let (kept, warnings) = crate::session::state::harvest(plan);
    if let Some(session) = session
        && !kept.is_empty()
    {
        let _ = session
            .log
            .write(audit::Record::StateKept(audit::StateKept { paths: kept }));
    }
    warnings
        .iter()
        .map(|w| format!("cage: warning: {}", term::escape(w)))
        .collect()
}

/// The end of an overlay session: one line of counts, and how to review
/// (returned, to print after the records are written).
fn report_overlay(
    plan: &Plan,
    overlay: &crate::plan::OverlayPlan,
    session: Option<&Session>,
) -> Vec<String> {
    use crate::session::changes;
    let names: Vec<String> = plan
        .workspace
        .watch
        .iter()
        .map(|n| n.value.clone())
        .collect();
    let id = &overlay.session;
    let mut lines = Vec::new();
    match changes::collect(&overlay.upper, &plan.workspace.path, &names) {
        Ok(list) => {
            let s = changes::summarize(&list);
            let mut line = format!(
                "cage: overlay session {id}: {} added, {} modified, {} deleted",
                s.added, s.modified, s.deleted
            );
            if !s.protected.is_empty() {
                let names: Vec<String> = s.protected.iter().map(|p| term::escape_path(p)).collect();
                line.push_str(&format!(
                    "; {} protected path(s) touched: {}",
                    s.protected.len(),
                    names.join(", ")
                ));
            }
            lines.push(line);
            if !list.is_empty() {
                lines.push(format!(
                    "cage: review: cage diff {id} [--stat]; land: cage apply {id}; drop: cage \
                     discard {id}"
                ));
            }
            if let Some(session) = session {
                let _ = session
                    .log
                    .write(audit::Record::OverlayChanges(audit::OverlayChanges {
                        added: s.added,
                        modified: s.modified,
                        deleted: s.deleted,
                        protected: s.protected,
                    }));
            }
        }
        Err(e) => lines.push(format!(
            "cage: warning: reading the changes of overlay session {id}: {}; they are kept in {}",
            term::escape_text(&chain(&e)),
            term::escape_path(&overlay.upper)
        )),
    }
    lines
}
