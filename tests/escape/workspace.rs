//! The workspace (DESIGN threats 2, 7): git keeps working in the cage while
//! what it runs stays read-only, linked worktrees included; an overlay
//! session changes nothing on the host until it is reviewed and applied,
//! and neither a killed session nor an interrupted apply loses anything.
//!
//! Layers: view (read-only binds, pins, the overlay mount) and the host
//! side of a session (`cage diff`, `apply`, `discard`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{ATTEMPT, Cage, IDENTITY, Output, poll_until};

/// Prints one line per workspace entry (outside .git): kind, mode, link
/// target or content hash. The same script runs inside the cage (the
/// session's view) and on the host (after apply).
const MANIFEST: &str = r#"
find . -path ./.git -prune -o -print | LC_ALL=C sort | while IFS= read -r f; do
  if [ -L "$f" ]; then echo "M $f link $(readlink "$f")";
  elif [ -d "$f" ]; then echo "M $f dir $(stat -c %a "$f")";
  else echo "M $f file $(stat -c %a "$f") $(sha256sum < "$f" | cut -c1-16)"; fi
done
"#;

fn manifest(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with("M "))
        .map(str::to_string)
        .collect()
}

/// The session directories, oldest first.
fn session_dirs(cage: &Cage) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(cage.sessions_dir())
        .map(|e| e.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn host_sh(cage: &Cage, dir: &Path, script: &str) {
    let out = cage
        .host_command(["sh", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Layers: view. In a git workspace the agent's `git commit` lands on the
/// host while `.git/hooks` and `.git/config` refuse every write, and the
/// run leaves nothing else behind.
#[test]
fn caged_git_commit_succeeds_while_hooks_and_config_refuse_writes() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file("README.md", "hello\n")
        .args(IDENTITY);
    let before = cage.snapshot();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
git add README.md && git commit -q -m 'from the cage' && echo committed
attempt 'printf "#!/bin/sh\necho pwned\n" > .git/hooks/pre-commit'
attempt 'echo x >> .git/hooks/pre-push.sample'
attempt 'git config core.hooksPath /tmp/hooks'
attempt 'printf "[core]\n\tfsmonitor = pwned\n" >> .git/config'
"##
    ));
    out.assert_success()
        .assert_line("committed")
        .assert_all_refused(4);
    let log = cage
        .host_command(["git", "log", "--format=%s"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&log.stdout), "from the cage\n");
    // Only git's own bookkeeping changed: objects, refs, index, logs.
    let stray: Vec<PathBuf> = cage
        .snapshot()
        .changes_since(&before)
        .into_iter()
        .filter(|p| {
            ![
                "objects",
                "refs",
                "logs",
                "index",
                "COMMIT_EDITMSG",
                "ORIG_HEAD",
            ]
            .iter()
            .any(|k| p.starts_with(Path::new("proj/.git").join(k)))
        })
        .collect();
    assert_eq!(stray, Vec::<PathBuf>::new(), "\n{out}");
}

/// Layer: guard. Protected names a direct session tries to create are
/// refused live, each refusal is an audit record naming the path and the
/// rule, and `cage log` shows them.
#[test]
fn protected_creations_are_refused_live_and_recorded() {
    require_userns!();
    let cage = Cage::new();
    fs::remove_dir_all(cage.workspace().join(".git/hooks")).unwrap();
    let out = cage.sh(&format!(
        "{ATTEMPT}\nattempt 'mkdir -p .git/hooks'\nattempt 'mkdir -p sub && echo x > sub/.envrc'"
    ));
    out.assert_success().assert_all_refused(2);
    let dir = session_dirs(&cage).pop().expect("a session directory");
    let log = fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    for p in [".git/hooks", "sub/.envrc"] {
        let path = cage.workspace().join(p);
        assert!(!path.exists(), "{p} reached the host");
        assert!(
            log.lines()
                .any(|l| l.contains("\"event\":\"guard_refused\"")
                    && l.contains(&format!("\"{}\"", path.display()))),
            "no guard_refused record for {p} in\n{log}\n{out}"
        );
    }
    let shown = cage.cli(["log"]);
    assert!(shown.stdout.contains("guard  refused mkdir"), "{shown}");
}

/// A workspace with something of every kind the session will change.
fn overlay_cage() -> Cage {
    let cage = Cage::new()
        .workspace_file("mod.txt", "one\ntwo\nthree\n")
        .workspace_file("del.txt", "delete me\n")
        .workspace_file("run.sh", "echo run\n")
        .workspace_file("moved-from.txt", "moving\n")
        .workspace_file("olddir/a.txt", "a\n")
        .workspace_file("olddir/sub/b.txt", "b\n")
        .workspace_file("keep.txt", "untouched\n")
        .args(["--workspace", "overlay"]);
    let ws = cage.workspace().to_path_buf();
    host_sh(&cage, &ws, "ln -s mod.txt link-old");
    cage
}

/// Adds, modifies and deletes files, a link, a mode, binary content, a
/// rename and a directory tree; plants `.envrc`; tries the hooks.
const SESSION: &str = r##"
printf 'one\nTWO\nthree\n' > mod.txt
rm del.txt
chmod 755 run.sh
echo added > added.txt
mkdir -p newdir/deep && echo deep > newdir/deep/file
ln -s added.txt link-new
ln -sfn added.txt link-old
printf '\000\001\002binary' > blob.bin
mv moved-from.txt moved-to.txt
rm -r olddir
echo 'export PWNED=1' > .envrc
attempt 'echo pwned > .git/hooks/pre-commit'
attempt 'git config core.hooksPath /tmp'
"##;

fn run_overlay_session(cage: &Cage) -> Output {
    let out = cage.sh(&format!("{ATTEMPT}{SESSION}{MANIFEST}"));
    out.assert_success().assert_all_refused(2);
    out
}

/// Layer: view (overlay). Nothing of the session reaches the host; the
/// end-of-session line counts the changes and names the protected one.
#[test]
fn overlay_session_leaves_the_host_untouched_and_diff_shows_every_change() {
    require_userns!();
    let cage = overlay_cage();
    let before = cage.snapshot();
    let out = run_overlay_session(&cage);
    assert_eq!(
        cage.snapshot().changes_since(&before),
        Vec::<PathBuf>::new(),
        "the host workspace changed during an overlay session\n{out}"
    );
    assert!(
        out.stderr.contains("6 added, 3 modified, 4 deleted")
            && out.stderr.contains("protected path(s) touched: .envrc")
            && out.stderr.contains("cage apply"),
        "no summary line\n{out}"
    );
    let diff = cage.cli(["diff", "--color", "never"]);
    diff.assert_success();
    for expected in [
        "-two",
        "+TWO",
        "diff --git a/del.txt b/del.txt\ndeleted file mode 100644",
        "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755",
        "diff --git a/added.txt b/added.txt\nnew file mode 100644",
        "+++ b/newdir/deep/file",
        "diff --git a/link-new b/link-new\nnew file mode 120000",
        "-mod.txt\n\\ No newline at end of file\n+added.txt",
        "Binary files /dev/null and b/blob.bin differ",
        "diff --git a/moved-from.txt b/moved-from.txt\ndeleted file mode 100644",
        "diff --git a/moved-to.txt b/moved-to.txt\nnew file mode 100644",
        "--- a/olddir/sub/b.txt",
        "!! protected path .envrc",
    ] {
        assert!(
            diff.stdout.contains(expected),
            "{expected:?} missing\n{diff}"
        );
    }
    assert!(!diff.stdout.contains("keep.txt"), "{diff}");
    let stat = cage.cli(["diff", "--stat"]);
    stat.assert_success();
    assert!(
        stat.stdout.contains(".envrc [protected]")
            && stat.stdout.contains("blob.bin")
            && stat.stdout.contains("Bin 0 -> 9 bytes")
            && stat.stdout.contains("13 files changed"),
        "{stat}"
    );
    let limited = cage.cli(["diff", "--stat", "olddir"]);
    assert!(limited.stdout.contains("2 files changed"), "{limited}");
    let sessions = cage.cli(["sessions"]);
    assert!(sessions.stdout.contains("+6 ~3 -4 !1"), "{sessions}");
}

/// `cage apply` makes the host workspace what the session saw: same
/// entries, kinds, modes, link targets and bytes (the protected `.envrc`
/// named with `--include-protected`, as it must be).
#[test]
fn apply_reproduces_the_session_exactly() {
    require_userns!();
    let cage = overlay_cage();
    let inside = manifest(&run_overlay_session(&cage));
    let applied = cage.cli(["apply", "--include-protected", ".envrc"]);
    applied.assert_success();
    assert!(applied.stdout.contains("A .envrc  (protected"), "{applied}");
    let host = manifest(&cage.run_on_host(["sh", "-c", MANIFEST]));
    assert_eq!(host, inside, "\n{applied}");
    // Nothing left to apply, and no temporary file left behind.
    let again = cage.cli(["apply", "--include-protected", ".envrc"]);
    assert!(again.stdout.contains("applied 0 change(s)"), "{again}");
    let leftovers: Vec<String> = host
        .iter()
        .filter(|l| l.contains(".cage-apply-"))
        .cloned()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Waits (bounded) until a file written now in `dir` gets a ctime later
/// than every one of `files`': the filesystem's clock has moved on.
fn wait_for_a_later_file_time(dir: &Path, files: &[PathBuf]) {
    use std::os::unix::fs::MetadataExt;
    let ctime = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.ctime(), m.ctime_nsec())
    };
    let newest = files.iter().map(|f| ctime(f)).max().unwrap();
    let probe = dir.join("clock-probe");
    let moved = poll_until(Duration::from_secs(10), || {
        fs::write(&probe, "x").unwrap();
        ctime(&probe) > newest
    });
    let _ = fs::remove_file(&probe);
    assert!(moved, "the filesystem clock did not advance");
}

/// apply refuses, and writes nothing, when a file the session changed has
/// changed on the host since the session started; `--force` overrides.
#[test]
fn apply_refuses_files_changed_on_the_host_unless_forced() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file("a.txt", "a\n")
        .workspace_file("b.txt", "b\n")
        .args(["--workspace", "overlay"]);
    let ws = cage.workspace().to_path_buf();
    // apply flags a file whose ctime is not older than the session's start
    // (the safe side), and both come from the kernel's coarse clock: a file
    // written in the same tick as the start counts as changed. Start the
    // session only once that clock has moved past the files' ctimes.
    wait_for_a_later_file_time(cage.root(), &[ws.join("a.txt"), ws.join("b.txt")]);
    cage.sh("echo session > a.txt; echo session > b.txt")
        .assert_success();
    host_sh(&cage, &ws, "echo host > a.txt");
    let refused = cage.cli(["apply"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("changed on the host") && refused.stderr.contains("  a.txt"),
        "{refused}"
    );
    assert!(!refused.stderr.contains("  b.txt"), "{refused}");
    assert_eq!(fs::read_to_string(ws.join("a.txt")).unwrap(), "host\n");
    assert_eq!(
        fs::read_to_string(ws.join("b.txt")).unwrap(),
        "b\n",
        "a refused apply wrote something"
    );
    cage.cli(["apply", "--force"]).assert_success();
    assert_eq!(fs::read_to_string(ws.join("a.txt")).unwrap(), "session\n");
    assert_eq!(fs::read_to_string(ws.join("b.txt")).unwrap(), "session\n");
}

/// An apply cut short finishes when run again. Simulated twice: (1) what a
/// crash leaves: part of the changes applied and a temporary file written
/// but not yet renamed; (2) an applied addition undone on the host.
#[test]
fn interrupted_apply_finishes_when_run_again() {
    require_userns!();
    let cage = overlay_cage();
    let inside = manifest(&run_overlay_session(&cage));
    let ws = cage.workspace().to_path_buf();
    // (1)
    cage.cli(["apply", "olddir", "mod.txt"]).assert_success();
    let id = session_dirs(&cage)
        .pop()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    host_sh(
        &cage,
        &ws,
        &format!("printf half > .added.txt.cage-apply-{id}"),
    );
    cage.cli(["apply", "--include-protected", ".envrc"])
        .assert_success();
    assert_eq!(manifest(&cage.run_on_host(["sh", "-c", MANIFEST])), inside);
    // (2)
    fs::remove_file(ws.join("added.txt")).unwrap();
    let again = cage.cli(["apply", "--include-protected", ".envrc"]);
    again.assert_success();
    assert!(again.stdout.contains("applied 1 change(s)"), "{again}");
    assert_eq!(manifest(&cage.run_on_host(["sh", "-c", MANIFEST])), inside);
}

/// Threat 7: a session whose supervisor is SIGKILLed mid-way keeps its
/// upper directory; it can be listed, diffed and applied.
#[test]
fn killed_overlay_session_can_still_be_diffed_and_applied() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file("old.txt", "old\n")
        .args(["--workspace", "overlay"]);
    let running = cage.spawn([
        "sh",
        "-c",
        "echo kept > survived.txt; echo new > old.txt; : > ready; exec sleep 1000",
    ]);
    let ready = || {
        session_dirs(&cage)
            .iter()
            .any(|d| d.join("upper/ready").exists())
    };
    assert!(
        poll_until(Duration::from_secs(20), ready),
        "the agent never started"
    );
    running.signal(nix::sys::signal::Signal::SIGKILL);
    let out = running.wait();
    assert_eq!(out.code, 128 + libc::SIGKILL, "\n{out}");
    let ws = cage.workspace().to_path_buf();
    assert!(!ws.join("survived.txt").exists());
    let sessions = cage.cli(["sessions"]);
    assert!(sessions.stdout.contains("killed"), "{sessions}");
    let diff = cage.cli(["diff"]);
    assert!(
        diff.stdout.contains("+++ b/survived.txt") && diff.stdout.contains("+new"),
        "{diff}"
    );
    cage.cli(["apply"]).assert_success();
    assert_eq!(
        fs::read_to_string(ws.join("survived.txt")).unwrap(),
        "kept\n"
    );
    assert_eq!(fs::read_to_string(ws.join("old.txt")).unwrap(), "new\n");
}

/// discard asks nothing, removes that session's directory and nothing
/// else, and refuses names that are not sessions.
#[test]
fn discard_removes_only_its_own_directory() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file("a.txt", "a\n")
        .args(["--workspace", "overlay"]);
    cage.sh("echo one > a.txt").assert_success();
    cage.sh("echo two > a.txt").assert_success();
    let dirs = session_dirs(&cage);
    assert_eq!(dirs.len(), 2);
    let before = cage.snapshot();
    let first = dirs[0].file_name().unwrap().to_string_lossy().into_owned();
    for bad in ["..", "../..", "/", "*"] {
        let out = cage.cli(["discard", bad]);
        assert_ne!(out.code, 0, "discard {bad} succeeded\n{out}");
    }
    cage.cli(["discard", &first]).assert_success();
    assert!(!dirs[0].exists() && dirs[1].exists());
    assert_eq!(
        cage.snapshot().changes_since(&before),
        Vec::<PathBuf>::new()
    );
    // The default is the latest session of this workspace.
    cage.cli(["discard"]).assert_success();
    assert!(!dirs[1].exists() && cage.sessions_dir().exists());
    assert_eq!(
        fs::read_to_string(cage.workspace().join("a.txt")).unwrap(),
        "a\n"
    );
}

/// A workspace that is a linked worktree of a repository elsewhere: git
/// works in the cage, and the repository's hooks and config and the
/// worktree's pointers stay read-only.
#[test]
fn linked_worktree_hooks_are_read_only_and_git_works() {
    require_userns!();
    let cage = Cage::new().args(IDENTITY);
    let ws = cage.workspace().to_path_buf();
    let main = cage.home().join("main");
    fs::remove_dir_all(&ws).unwrap();
    host_sh(
        &cage,
        cage.home(),
        "git init -q -b main main && cd main && git -c user.name=u -c user.email=u@e commit -q \
         --allow-empty -m init && git worktree add -q ../proj -b wt",
    );
    let gitdir = main.join(".git/worktrees/proj");
    assert!(gitdir.join("gitdir").exists());
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
echo hi > file && git add file && git commit -q -m 'in the worktree' && echo committed
attempt 'printf "#!/bin/sh\necho pwned\n" > {main}/.git/hooks/pre-commit'
attempt 'git config core.hooksPath /tmp'
attempt 'echo /tmp > {gitdir}/commondir'
attempt 'echo "gitdir: /tmp" > .git'
attempt 'mv {main}/.git/hooks {main}/.git/hooks.old'
attempt 'mv {gitdir} {gitdir}.old'
"##,
        main = main.display(),
        gitdir = gitdir.display()
    ));
    out.assert_success()
        .assert_line("committed")
        .assert_all_refused(6);
    let log = cage
        .host_command(["git", "log", "--format=%s", "wt"])
        .current_dir(&main)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log.stdout),
        "in the worktree\ninit\n"
    );
    assert!(!main.join(".git/hooks/pre-commit").exists());
}

/// A `.git` file naming another repository's worktree gitdir whose
/// backlink does not point back is not granted: the gitdir stays out of
/// the view, and the run says why.
#[test]
fn forged_gitdir_link_grants_nothing() {
    require_userns!();
    let cage = Cage::new();
    let ws = cage.workspace().to_path_buf();
    host_sh(
        &cage,
        cage.home(),
        "git init -q -b main other && cd other && git -c user.name=u -c user.email=u@e commit -q \
         --allow-empty -m init && git worktree add -q ../elsewhere -b x",
    );
    let target = cage.home().join("other/.git/worktrees/elsewhere");
    fs::remove_dir_all(ws.join(".git")).unwrap();
    host_sh(
        &cage,
        &ws,
        &format!("echo 'gitdir: {}' > .git", target.display()),
    );
    let out = cage.sh(&format!(
        "{ATTEMPT}\nattempt 'ls {}'\n",
        cage.home().join("other/.git").display()
    ));
    out.assert_success().assert_all_refused(1);
    assert!(
        out.stderr.contains("not granted") && out.stderr.contains("not back at this .git file"),
        "{out}"
    );
}

/// Errors: an overlay whose upper directory would lie inside the
/// workspace is refused up front, with the reason and a fix (exit 125).
#[test]
fn overlay_inside_the_workspace_is_refused_clearly() {
    require_userns!();
    let cage = Cage::new();
    let state = cage.workspace().join(".state");
    let cage = cage
        .host_env("XDG_STATE_HOME", &state.display().to_string())
        .args(["--workspace", "overlay"]);
    let out = cage.run(["true"]);
    out.assert_code(125);
    assert!(
        out.stderr.contains("overlapping layers") && out.stderr.contains("XDG_STATE_HOME"),
        "{out}"
    );
}
