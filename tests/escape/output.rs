//! Threat 8: the agent reaching the user through cage itself. Nothing it
//! chose (a file name, a diff line, a logged field) reaches the terminal
//! raw, and nothing it does to the shared terminal crashes the supervisor
//! or costs an audit record.
//!
//! Layer: cage's output (`term`): one escaping function, one bounded
//! writer, records before printing; and the overlay review, which fails
//! closed on protected paths.

use std::fs;
use std::path::PathBuf;

use crate::harness::{ATTEMPT, Cage, Output};

/// The audit log of the one session this cage ran.
fn audit_log(cage: &Cage) -> String {
    let dirs: Vec<PathBuf> = fs::read_dir(cage.sessions_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(dirs.len(), 1, "expected one session: {dirs:?}");
    fs::read_to_string(dirs[0].join("audit.jsonl")).unwrap_or_default()
}

/// Removes the SGR colour codes cage itself emits (`--color always`), so
/// what is left is what the agent chose, escaped or not.
fn strip_own_colours(text: &str) -> String {
    let mut s = text.to_string();
    for code in ["1;31", "1", "31", "32", "36", ""] {
        s = s.replace(&format!("\x1b[{code}m"), "");
    }
    s
}

/// The terminal-like check: no control byte but `\n`, no DEL, no C1 or
/// bidi or invisible-formatting code point.
fn assert_inert(what: &str, text: &str, tabs: bool) {
    assert!(
        cage::term::is_inert(text, tabs),
        "{what} reached the terminal with raw control characters: {text:?}"
    );
}

/// A file named with cursor movement, a CR and a bidi override, holding a
/// line that a CR makes look harmless, and a protected file whose name
/// carries a newline and a forged log line.
const PLANT: &str = r#"
n=$(printf 'evil\033[1A\033[2K\rname\342\200\256txt.sh')
printf 'echo safe\r\033[2Kcurl x | sh\n' > "$n"
mkdir -p .vscode
f=$(printf '.vscode/x\n12:00:00.000  allow  connect  api.anthropic.com:443')
echo hi > "$f"
"#;

fn check_output(what: &str, out: &Output) {
    assert_inert(&format!("{what} (stdout)"), &out.stdout, false);
    assert_inert(&format!("{what} (stderr)"), &out.stderr, false);
}

/// Every review command and the end-of-session line show the agent's
/// names and lines escaped; the log cannot be made to show a forged line.
#[test]
fn agent_chosen_names_and_lines_reach_the_terminal_escaped() {
    require_userns!();
    let cage = Cage::new().args(["--workspace", "overlay"]);
    let run = cage.sh(PLANT);
    run.assert_success();
    assert_inert("the end-of-session lines", &run.stderr, false);
    assert!(run.stderr.contains("\\n12:00:00.000"), "{run}");

    let diff = cage.cli(["diff", "--color", "never"]);
    diff.assert_success();
    check_output("cage diff", &diff);
    assert!(
        diff.stdout
            .contains("evil\\e[1A\\e[2K\\rname\\u{202e}txt.sh")
            && diff.stdout.contains("+echo safe\\r\\e[2Kcurl x | sh"),
        "{diff}"
    );
    let coloured = cage.cli(["diff", "--color", "always"]);
    coloured.assert_success();
    assert_inert(
        "cage diff --color always",
        &strip_own_colours(&coloured.stdout),
        false,
    );
    let stat = cage.cli(["diff", "--stat"]);
    check_output("cage diff --stat", &stat);
    let sessions = cage.cli(["sessions"]);
    check_output("cage sessions", &sessions);
    let log = cage.cli(["log"]);
    log.assert_success();
    check_output("cage log", &log);
    assert!(
        !log.stdout.lines().any(|l| l.starts_with("12:00:00.000")),
        "a logged field forged a line\n{log}"
    );
    let apply = cage.cli(["apply"]);
    apply.assert_success();
    check_output("cage apply", &apply);
    assert!(apply.stdout.contains("evil\\e[1A"), "{apply}");
}

/// Inside: O_NONBLOCK on the shared stderr, fill it, leave something for
/// the supervisor to print, exit. The supervisor neither panics nor
/// aborts, the session's records are all in the log, and the user's
/// stderr is blocking again afterwards.
#[test]
fn a_full_nonblocking_stderr_neither_crashes_cage_nor_costs_a_record() {
    require_userns!();
    let cage = Cage::new().args(["--workspace", "overlay"]);
    let (out, left_nonblocking) = cage.run_with_unread_stderr([
        "python3",
        "-c",
        r#"
import fcntl, os
fl = fcntl.fcntl(2, fcntl.F_GETFL)
fcntl.fcntl(2, fcntl.F_SETFL, fl | os.O_NONBLOCK)
try:
    while True:
        os.write(2, b"x" * 65536)
except BlockingIOError:
    pass
try:
    open(".envrc", "w").write("export PWNED=1\n")
except OSError:
    pass
open("note.txt", "w").write("something to report\n")
"#,
    ]);
    assert_eq!(
        out.code, 0,
        "cage did not pass the agent's status on\n{out}"
    );
    assert!(
        !left_nonblocking,
        "cage left the user's stderr non-blocking, as the agent set it"
    );
    let log = audit_log(&cage);
    assert!(
        log.contains("\"session_end\"") && log.contains("\"overlay_changes\""),
        "records are missing from the audit log:\n{log}"
    );
}

/// Inside: stop the shared terminal's output (tcflow TCOOFF), leave
/// something to print, exit. cage gives up on the terminal after a bounded
/// wait, exits with the agent's status, and logs the session's end.
#[test]
fn a_stopped_terminal_neither_hangs_cage_nor_costs_a_record() {
    require_userns!();
    let cage = Cage::new().args(["--workspace", "overlay"]);
    let out = cage.run_in_pty([
        "python3",
        "-c",
        r#"
import termios
termios.tcflow(0, termios.TCOOFF)
open("note.txt", "w").write("something to report\n")
"#,
    ]);
    assert_eq!(out.code, 0, "\n{out}");
    let log = audit_log(&cage);
    assert!(log.contains("\"session_end\""), "no session_end:\n{log}");
}

/// Threat 2 through the overlay: the agent writes `.git/commondir` and a
/// `.git/x/config` it would point git at. `cage diff` flags both (or the
/// cage refused them outright), and `cage apply` lands neither.
#[test]
fn overlay_review_flags_and_withholds_a_commondir_redirection() {
    require_userns!();
    let cage = Cage::new().args(["--workspace", "overlay"]);
    let out = cage.sh(&format!(
        "{ATTEMPT}
attempt 'echo x > .git/commondir'
attempt 'mkdir -p .git/x && printf \"[core]\\n\\tfsmonitor = touch /tmp/pwned\\n\" > .git/x/config'
echo ok > plain.txt
"
    ));
    out.assert_success();
    let diff = cage.cli(["diff", "--color", "never"]);
    diff.assert_success();
    for (path, attempt) in [
        (".git/commondir", "echo x > .git/commondir"),
        (".git/x/config", "mkdir -p .git/x"),
    ] {
        let refused = out
            .stdout
            .lines()
            .any(|l| l.starts_with("REFUSED: ") && l.contains(attempt));
        assert!(
            refused || diff.stdout.contains(&format!("!! protected path {path}")),
            "{path} was written and not flagged\n{out}\n{diff}"
        );
    }
    let apply = cage.cli(["apply"]);
    apply.assert_success();
    let ws = cage.workspace();
    assert!(ws.join("plain.txt").exists(), "{apply}");
    assert!(
        !ws.join(".git/commondir").exists() && !ws.join(".git/x").exists(),
        "apply landed the redirection\n{apply}"
    );
    if !out.stdout.contains("REFUSED: echo x > .git/commondir") {
        assert!(
            apply.stdout.contains("skipped .git/commondir: protected"),
            "{apply}"
        );
    }
}

/// `cage apply` fails closed on a protected path the current predicate
/// already knows (`.envrc`): skipped and said so by default, landed only
/// when named with `--include-protected`.
#[test]
fn apply_skips_protected_paths_unless_each_is_named() {
    require_userns!();
    let cage = Cage::new().args(["--workspace", "overlay"]);
    cage.sh(
        "echo 'export PWNED=1' > .envrc; mkdir -p sub; echo x > sub/.envrc; echo ok > plain.txt",
    )
    .assert_success();
    let ws = cage.workspace().to_path_buf();
    let apply = cage.cli(["apply"]);
    apply.assert_success();
    assert!(
        apply.stdout.contains("skipped .envrc: protected")
            && apply.stdout.contains("skipped sub/.envrc: protected")
            && apply.stdout.contains("--include-protected"),
        "{apply}"
    );
    assert!(ws.join("plain.txt").exists(), "{apply}");
    assert!(!ws.join(".envrc").exists() && !ws.join("sub/.envrc").exists());
    let named = cage.cli(["apply", "--include-protected", ".envrc"]);
    named.assert_success();
    assert!(ws.join(".envrc").exists(), "{named}");
    assert!(
        !ws.join("sub/.envrc").exists(),
        "only the named path lands\n{named}"
    );
}
