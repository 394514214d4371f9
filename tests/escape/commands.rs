//! Every program the agent runs is in the audit log (issue 15 item 1):
//! the guard observes execve/execveat, and a pidfd the supervisor holds
//! tells each program's end. The agent cannot run a program unseen: not
//! from a script, not from a memory file, not from a thread.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::harness::Cage;

/// The records of the one session this cage ran, parsed.
fn records(cage: &Cage) -> Vec<Value> {
    let dirs: Vec<PathBuf> = fs::read_dir(cage.sessions_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(dirs.len(), 1, "expected one session: {dirs:?}");
    let text = fs::read_to_string(dirs[0].join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

fn argv(record: &Value) -> Vec<String> {
    record["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The exec record whose argv is `want`, and the end record with its id.
fn exec_and_end<'a>(records: &'a [Value], want: &[&str]) -> (&'a Value, Option<&'a Value>) {
    let exec = records
        .iter()
        .find(|r| r["event"] == "exec" && argv(r) == want)
        .unwrap_or_else(|| panic!("no exec record for {want:?} in {records:#?}"));
    let end = records
        .iter()
        .find(|r| r["event"] == "exec_end" && r["id"] == exec["id"]);
    (exec, end)
}

/// Layer: guard (observation). A caged script runs five programs, one
/// failing and one killed by a signal: each is an exec record with its
/// argv, pid and parent inside the cage and working directory, and each
/// end has the right status. The log opens with the session's start and
/// reads in order. Fails if execs are not handed to the supervisor.
#[test]
fn every_program_a_script_runs_is_recorded_with_its_exit() {
    require_userns!();
    let cage = Cage::new();
    // The sleeper is killed only once it runs sleep (its comm says so),
    // so its end is a signal, not a shell that never got to exec.
    let out = cage.sh("/bin/true; ls /nonexistent-dir; git --version >/dev/null; \
         sleep 30 & p=$!; \
         while read c < /proc/$p/comm && [ \"$c\" != sleep ]; do :; done; \
         kill -KILL $p; wait $p; \
         sh -c 'exit 3'; echo done");
    out.assert_success().assert_line("done");
    let records = records(&cage);
    assert_eq!(records[0]["event"], "session_start", "{records:#?}");
    assert_eq!(records.last().unwrap()["event"], "session_end");

    let cases: [(&[&str], &str, i64); 5] = [
        (&["/bin/true"], "exited", 0),
        (&["ls", "/nonexistent-dir"], "exited", 2),
        (&["git", "--version"], "exited", 0),
        (&["sleep", "30"], "killed", 9),
        (&["sh", "-c", "exit 3"], "exited", 3),
    ];
    // The agent itself: the first program, started by cage's init.
    let script = records.iter().find(|r| r["event"] == "exec").unwrap();
    assert_eq!(argv(script)[..2], ["sh", "-c"], "{script}");
    assert_eq!(script["pid"], 2, "the agent is pid 2 inside: {script}");
    assert_eq!(script["ppid"], 1, "{script}");
    for (want, status, value) in cases {
        let (exec, end) = exec_and_end(&records, want);
        assert_eq!(exec["ppid"], script["pid"], "{want:?}: {exec}");
        assert_eq!(
            exec["cwd"].as_str(),
            cage.workspace().to_str(),
            "{want:?}: {exec}"
        );
        let end = end.unwrap_or_else(|| panic!("no end for {want:?}: {records:#?}"));
        assert_eq!(end["status"], status, "{want:?}: {end}");
        let key = if status == "killed" { "signal" } else { "code" };
        assert_eq!(end[key], value, "{want:?}: {end}");
        assert_eq!(end["pid"], exec["pid"]);
    }

    // For people: one line per exec and per end, in the log's order.
    let log = cage.cli(["log"]);
    log.assert_success();
    for line in [
        "ls /nonexistent-dir",
        ": exit 2 after",
        "sleep: killed by SIGKILL",
        "sh -c 'exit 3'",
    ] {
        assert!(log.stdout.contains(line), "{line:?} missing:\n{log}");
    }
}

/// The check for issue 15, as it reads: `cage -- sh -c 'git --version; ls
/// /nonexistent; curl -s https://example.com'` with the default profile's
/// network (none), then `cage log`: the three commands with their argv and
/// exits, the denied connection with its `cage allow` line, the end.
/// Layer: network (none mode's proxy, which allows nothing: the attempt is
/// refused by cage and recorded) + guard (observation). Fails if none mode
/// leaves curl to fail unseen in an empty net namespace.
#[test]
fn a_session_log_tells_its_commands_and_its_denied_connection() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.sh("git --version; ls /nonexistent; curl -s https://example.com");
    assert_ne!(out.code, 0, "curl cannot have reached example.com\n{out}");
    // The end-of-session summary names the host and the live allow line.
    assert!(
        out.stderr.contains("1 connection denied: example.com:443")
            && out.stderr.contains("cage allow example.com"),
        "{out}"
    );
    let records = records(&cage);
    assert_eq!(records[0]["event"], "session_start", "{records:#?}");
    assert_eq!(records.last().unwrap()["event"], "session_end");
    for (want, code) in [
        (&["git", "--version"][..], Some(0)),
        (&["ls", "/nonexistent"][..], Some(2)),
        (&["curl", "-s", "https://example.com"][..], None),
    ] {
        let (_, end) = exec_and_end(&records, want);
        let end = end.unwrap_or_else(|| panic!("no end for {want:?}: {records:#?}"));
        assert_eq!(end["status"], "exited", "{want:?}: {end}");
        match code {
            Some(c) => assert_eq!(end["code"], c, "{want:?}: {end}"),
            None => assert_ne!(end["code"], 0, "{want:?}: {end}"),
        }
    }
    let denied = records
        .iter()
        .find(|r| r["event"] == "net" && r["decision"] == "deny")
        .unwrap_or_else(|| panic!("no denied connection in {records:#?}"));
    assert_eq!(denied["host"], "example.com", "{denied}");
    assert_eq!(denied["port"], 443, "{denied}");

    // For people: the story in order, and the hint with the denial.
    let log = cage.cli(["log"]);
    log.assert_success();
    let lines: Vec<&str> = log.stdout.lines().collect();
    let at = |marker: &str, text: &str| {
        lines
            .iter()
            .position(|l| l.contains(marker) && l.contains(text))
            .unwrap_or_else(|| panic!("{marker:?} {text:?} missing:\n{log}"))
    };
    let story = [
        at("exec ", "  git --version"),
        at("exit ", "git: exit 0"),
        at("exec ", "  ls /nonexistent"),
        at("exit ", "ls: exit 2"),
        at("exec ", "  curl -s https://example.com"),
        at("deny ", "connect  example.com:443"),
        at("allow with: ", "cage allow example.com"),
        at("exit ", "curl: exit "),
        at("end ", "exit "),
    ];
    assert!(
        story.windows(2).all(|w| w[0] < w[1]),
        "out of order:\n{log}"
    );
    let denied = cage.cli(["log", "--denied"]);
    denied.assert_success();
    assert!(
        denied.stdout.contains("example.com:443")
            && denied.stdout.contains("allow with: cage allow example.com"),
        "{denied}"
    );
}

/// Layer: network (none mode's DNS stub). A program that resolves a name
/// itself, ignoring the proxy variables, asks cage's stub, which refuses
/// it (no answer, nothing resolved upstream) with a record and the
/// `cage allow` line. Fails if none mode leaves the resolver unanswered.
#[test]
fn a_name_resolved_in_none_mode_is_refused_and_recorded() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.run(["getent", "ahosts", "example.com"]);
    assert_ne!(out.code, 0, "example.com cannot have resolved\n{out}");
    assert!(
        out.stderr.contains("DNS name refused: example.com")
            && out.stderr.contains("cage allow example.com"),
        "{out}"
    );
    let records = records(&cage);
    let refused = records
        .iter()
        .find(|r| r["event"] == "dns")
        .unwrap_or_else(|| panic!("no dns record in {records:#?}"));
    assert_eq!(refused["decision"], "deny", "{refused}");
    assert_eq!(refused["answers"], serde_json::json!([]), "{refused}");
    let denied = cage.cli(["log", "--denied"]);
    assert!(
        denied.stdout.contains("allow with: cage allow example.com"),
        "{denied}"
    );
}

/// Layer: guard (observation). A program run from a memory file (fexecve
/// of a memfd, execveat with AT_EMPTY_PATH), under a name that is not its
/// own, from a second thread, is still an exec record naming the memfd.
#[test]
fn a_program_run_from_memory_by_a_thread_is_recorded() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.python(
        "import os, threading\n\
         fd = os.memfd_create('innocent')\n\
         os.write(fd, open('/usr/bin/true', 'rb').read())\n\
         def run():\n\
         \x20   os.execve(fd, ['not-what-it-seems', 'x'], {})\n\
         t = threading.Thread(target=run); t.start(); t.join()\n",
    );
    out.assert_success();
    let records = records(&cage);
    let (exec, end) = exec_and_end(&records, &["not-what-it-seems", "x"]);
    assert_eq!(exec["syscall"], "execveat", "{exec}");
    let exe = exec["exe"].as_str().unwrap_or_default();
    assert!(exe.contains("memfd:innocent"), "{exec}");
    let end = end.unwrap_or_else(|| panic!("no end: {records:#?}"));
    assert_eq!(end["status"], "exited", "{end}");
    assert_eq!(end["code"], 0, "{end}");
}

/// `cage log` across sessions (issue 15 item 3): three sessions, newest
/// first; `--until` and `--grep` pick by the order they ran in and by what
/// they did, with no clock in the assertions; each record carries its
/// session's id in JSON.
#[test]
fn cage_log_reads_across_sessions_newest_first() {
    require_userns!();
    let cage = Cage::new();
    for marker in ["first-run", "second-run", "third-run"] {
        cage.run(["/bin/echo", marker]).assert_success();
    }
    let all = cage.cli(["log", "--since", "1w", "--json"]);
    all.assert_success();
    let lines: Vec<Value> = all
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let starts: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "session_start")
        .collect();
    assert_eq!(starts.len(), 3, "{all}");
    let markers: Vec<String> = starts.iter().map(|s| argv(s)[1].clone()).collect();
    assert_eq!(markers, ["third-run", "second-run", "first-run"], "{all}");
    assert!(lines.iter().all(|l| l["session"].is_string()), "{all}");

    // Sessions that started before the first one ended: the first alone
    // (the second was started after the first had exited).
    let first = starts[2]["session"].as_str().unwrap();
    let ended = lines
        .iter()
        .find(|l| l["session"] == first && l["event"] == "session_end")
        .map(|l| l["time"].as_str().unwrap().to_string())
        .unwrap();
    let before = cage.cli(["log", "--until", ended.as_str()]);
    before.assert_success();
    assert!(before.stdout.contains("first-run"), "{before}");
    assert!(
        !before.stdout.contains("second-run") && !before.stdout.contains("third-run"),
        "{before}"
    );
    // What a session did: the exec record of `echo second-run`.
    let grep = cage.cli(["log", "--grep", "SECOND-RUN"]);
    grep.assert_success();
    assert_eq!(grep.stdout.matches("== session").count(), 1, "{grep}");
    assert!(
        grep.stdout.contains("exec") && grep.stdout.contains("second-run"),
        "{grep}"
    );
    // Another workspace holds none of them.
    let elsewhere = cage.cli(["log", "--workspace", "/nonexistent-workspace"]);
    elsewhere.assert_success();
    assert!(!elsewhere.stdout.contains("-run"), "{elsewhere}");
}

/// Layer: session record (issue 15 item 2). A direct session that adds,
/// modifies, deletes and chmods files gets one `files_changed` record
/// listing exactly those, and `cage log` shows it.
#[test]
fn a_direct_session_lists_exactly_the_files_it_changed() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file("keep.txt", "same\n")
        .workspace_file("edit.txt", "old\n")
        .workspace_file("gone.txt", "bye\n")
        .workspace_file("run.sh", "#!/bin/sh\n");
    let commit = cage
        .host_command([
            "sh",
            "-c",
            "git add -A && git -c user.name=t -c user.email=t@t commit -qm base",
        ])
        .output()
        .unwrap();
    assert!(commit.status.success(), "{commit:?}");
    cage.sh(
        "set -e; echo new > added.txt; echo more >> edit.txt; rm gone.txt; chmod 755 run.sh; \
         cat keep.txt >/dev/null",
    )
    .assert_success();
    let records = records(&cage);
    let changed: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "files_changed")
        .collect();
    assert_eq!(changed.len(), 1, "{records:#?}");
    let c = changed[0];
    let ws = cage.workspace();
    let got: Vec<(String, String)> = c["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let path = PathBuf::from(p["path"].as_str().unwrap());
            let rel = path.strip_prefix(ws).unwrap_or(&path).display().to_string();
            (rel, p["change"].as_str().unwrap().to_string())
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("added.txt", "added"),
        ("edit.txt", "modified"),
        ("gone.txt", "deleted"),
        ("run.sh", "mode"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want, "{c}");
    assert_eq!(
        (
            &c["added"],
            &c["modified"],
            &c["deleted"],
            &c["mode_changed"]
        ),
        (&1.into(), &1.into(), &1.into(), &1.into())
    );
    let log = cage.cli(["log"]);
    assert!(
        log.stdout
            .contains("1 added, 1 modified, 1 deleted, 1 mode change(s)")
            && log.stdout.contains("- ")
            && log.stdout.contains("gone.txt"),
        "{log}"
    );
    // `cage diff` of the direct session: git's diff of the tracked files,
    // the untracked one named.
    let diff = cage.cli(["diff"]);
    diff.assert_success();
    for text in [
        "+more",
        "deleted file mode",
        "gone.txt",
        "old mode 100644",
        "new mode 100755",
    ] {
        assert!(diff.stdout.contains(text), "{text:?}: {diff}");
    }
    let named = diff
        .stdout
        .split("not tracked by git")
        .nth(1)
        .unwrap_or_default();
    assert!(
        named.contains("added") && named.contains("added.txt"),
        "{diff}"
    );
}
