//! Processes (DESIGN threats 4 and 6): the agent cannot see or signal host
//! processes, exit status and signals pass through the supervisor and cage
//! init faithfully, init reaps orphans, and nothing of the cage outlives a
//! killed supervisor. Also cage's own exit codes (125, 126, 127).
//!
//! Layers: processes (pid namespace, cage init as pid 1, die-with-parent)
//! and access (Landlock's signal scope, for pid 1 itself).

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{ATTEMPT, Cage, host_processes_with, poll_until, unique};

/// A `sleep` argument no other process has: `1000.<digits>` (GNU sleep
/// takes fractions), so the sleep itself carries the marker.
fn unique_sleep() -> String {
    let digits: String = unique("").chars().filter(char::is_ascii_digit).collect();
    format!("1000.{digits}")
}

/// Layer: processes (pid namespace). Inside, /proc and ps list only the
/// cage's processes, with small pids; a host process of the same user is
/// not there.
#[test]
fn host_processes_are_invisible() {
    require_userns!();
    let cage = Cage::new();
    let arg = unique_sleep();
    let host = cage.host_process(["sleep", &arg]);
    assert!(
        poll_until(Duration::from_secs(10), || !host_processes_with(&arg)
            .is_empty()),
        "the host process never showed up on the host"
    );

    let out = cage.sh(r#"echo "self=$$"
echo "pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')"
ps -eo pid,args
cat /proc/[0-9]*/cmdline | tr '\0' ' '"#);
    out.assert_success().assert_absent(&arg);
    // The agent is init's first child.
    assert_eq!(out.value("self"), Some("2"), "\n{out}");
    let pids: Vec<u32> = out
        .value("pids")
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        !pids.is_empty() && pids.iter().all(|p| *p < 20),
        "pids inside: {pids:?}\n{out}"
    );
    assert!(!pids.contains(&host.pid()), "\n{out}");
}

/// Layer: processes (pid namespace; Landlock's signal scope would refuse
/// too). The host pid of a process of the same user means nothing inside:
/// kill fails, and the process lives on.
#[test]
fn host_process_cannot_be_signalled() {
    require_userns!();
    let cage = Cage::new();
    let mut host = cage.host_process(["sleep", &unique_sleep()]);
    let pid = host.pid();

    let out = cage.sh(&format!(
        r#"{ATTEMPT}
attempt 'kill -TERM {pid}'
attempt 'kill -KILL {pid}'
attempt 'kill -STOP {pid}'
"#
    ));
    out.assert_success().assert_all_refused(3);
    assert!(host.is_alive(), "the host process died\n{out}");
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = state.rsplit(')').next().unwrap().split_whitespace().next();
    assert_ne!(state, Some("T"), "the host process was stopped");
}

/// Layer: access (Landlock's signal scope) alone. Cage init is pid 1 in
/// the agent's own pid namespace, so the namespace does not stop the
/// agent signalling it; init is outside the agent's Landlock domain, so
/// the scope must. (Init forwards what it receives to the agent, which
/// ignores the signals here so that a forwarded one cannot end the run.)
#[test]
fn agent_cannot_signal_cage_init() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.sh(&format!(
        r#"{ATTEMPT}
trap '' USR1 USR2 TERM
attempt 'kill -USR1 1'
attempt 'kill -USR2 1'
attempt 'kill -TERM 1'
"#
    ));
    out.assert_success().assert_all_refused(3);
}

/// Layer: processes. The agent's exit code is cage's exit code.
#[test]
fn exit_status_passes_through() {
    require_userns!();
    let cage = Cage::new();
    for code in [0, 1, 7, 100, 255] {
        cage.sh(&format!("exit {code}")).assert_code(code);
    }
}

/// Layer: processes. An agent killed by signal N makes cage exit 128+N,
/// like a shell reports it.
#[test]
fn signal_death_maps_to_128_plus_n() {
    require_userns!();
    let cage = Cage::new();
    cage.sh("kill -TERM $$").assert_code(128 + libc::SIGTERM);
    cage.sh("kill -KILL $$").assert_code(128 + libc::SIGKILL);
    cage.sh("kill -SEGV $$").assert_code(128 + libc::SIGSEGV);
}

/// Layer: processes (supervisor and init forward kill(2)-sent signals).
/// The test signals the supervisor on the host; the agent's trap runs and
/// its exit code comes back.
#[test]
fn signals_sent_to_cage_reach_the_agent() {
    require_userns!();
    let cage = Cage::new();
    for (sig, name) in [
        (Signal::SIGTERM, "TERM"),
        (Signal::SIGINT, "INT"),
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGUSR1, "USR1"),
    ] {
        let ready = cage.workspace().join(format!("ready-{name}"));
        let script = format!(
            "trap 'echo trapped-{name}; exit 42' {name}; : > ready-{name}; \
             while :; do sleep 0.05; done"
        );
        let running = cage.spawn(["sh", "-c", &script]);
        assert!(
            poll_until(Duration::from_secs(20), || ready.exists()),
            "the agent never set its trap ({name})"
        );
        running.signal(sig);
        let out = running.wait();
        out.assert_code(42).assert_line(&format!("trapped-{name}"));
    }
}

/// Layer: processes (cage init reaps). The agent orphans children; they
/// are re-parented to pid 1, and once they exit no zombie stays.
#[test]
fn zombies_are_reaped() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.python(
        r#"import os, time
release_r, release_w = os.pipe()
orphans = []
for _ in range(5):
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        grandchild = os.fork()
        if grandchild == 0:
            # Outlive the parent, then exit when the agent says so.
            os.close(release_w)
            os.read(release_r, 1)
            os._exit(0)
        os.write(w, str(grandchild).encode())
        os._exit(0)
    os.close(w)
    orphans.append(int(os.read(r, 32)))
    os.close(r)
    os.waitpid(child, 0)

def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        return state, int(ppid)
    except (FileNotFoundError, ProcessLookupError):
        return None

print("orphan-parents=" + ",".join(str(stat(p)[1]) for p in orphans))
os.close(release_w)
for _ in range(1000):
    zombies = [p for p in os.listdir("/proc") if p.isdigit() and (stat(p) or ("", 0))[0] == "Z"]
    alive = [p for p in orphans if stat(p) is not None]
    if not zombies and not alive:
        print("reaped=yes")
        break
    time.sleep(0.01)
else:
    print(f"reaped=no zombies={zombies} orphans={alive}")
"#,
    );
    out.assert_success()
        .assert_line("orphan-parents=1,1,1,1,1")
        .assert_line("reaped=yes");
}

/// Layer: processes (init dies with the supervisor, and the pid namespace
/// with init). SIGKILL cannot be forwarded or handled: nothing of the cage
/// may survive it.
#[test]
fn killing_supervisor_leaves_no_process() {
    require_userns!();
    let cage = Cage::new();
    let arg = unique_sleep();
    let running = cage.spawn(["sleep", &arg]);
    let sleep_started = || {
        host_processes_with(&arg)
            .iter()
            .any(|(_, cmd)| cmd.starts_with("sleep "))
    };
    assert!(
        poll_until(Duration::from_secs(20), sleep_started),
        "the agent never started: {:?}",
        host_processes_with(&arg)
    );

    running.signal(Signal::SIGKILL);
    running.wait().assert_code(128 + libc::SIGKILL);
    let gone = poll_until(Duration::from_secs(10), || {
        host_processes_with(&arg).is_empty()
    });
    assert!(gone, "left behind: {:#?}", host_processes_with(&arg));
}

/// Layer: processes. cage is written in Rust, whose runtime ignores
/// SIGPIPE; an ignored signal survives exec, so cage must restore the
/// default it was started with, or every pipeline in the agent changes
/// behaviour (`yes | head` reports "Broken pipe" instead of dying quietly).
#[test]
fn agent_gets_default_sigpipe() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.sh("grep SigIgn /proc/self/status; yes | head -n 1");
    out.assert_success().assert_line("y");
    let ignored = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no SigIgn line\n{out}"));
    assert_eq!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE is ignored\n{out}"
    );
    assert!(!out.stderr.contains("Broken pipe"), "\n{out}");
}

/// Layer: processes (cage's exit codes, like env(1)).
#[test]
fn command_not_found_is_127() {
    require_userns!();
    let cage = Cage::new();
    let missing = unique("no-such-command");
    let out = cage.run([missing.as_str()]);
    out.assert_code(127);
    assert!(out.stderr.contains(&missing), "\n{out}");
    cage.run(["./no-such-script"]).assert_code(127);
}

#[test]
fn not_executable_is_126() {
    require_userns!();
    let cage = Cage::new().workspace_file_mode("script.sh", "#!/bin/sh\necho ran\n", 0o644);
    let out = cage.run(["./script.sh"]);
    out.assert_code(126);
    assert!(!out.stdout.contains("ran"), "\n{out}");
}

/// A required path that does not exist is cage's own failure: 125, and the
/// command never runs.
#[test]
fn cage_error_is_125() {
    require_userns!();
    let missing = format!("/does/not/exist/{}", unique("path"));
    let cage = Cage::new().args(["--ro", missing.as_str()]);
    let out = cage.sh(": > ran");
    out.assert_code(125);
    assert!(out.stderr.contains(&missing), "\n{out}");
    assert!(
        !cage.workspace().join("ran").exists(),
        "the command ran\n{out}"
    );
}

/// Layer: hygiene (rlimits). A fork bomb stops at `[limits] nproc`: fork
/// fails with EAGAIN, the cage holds no more than the limit, the host can
/// still start processes, and nothing of the bomb outlives the agent.
#[test]
fn fork_bomb_stops_at_the_nproc_limit() {
    require_userns!();
    let marker = unique("bomb");
    let cage = Cage::new()
        .workspace_file("limits.toml", "[limits]\nnproc = 40\n")
        .workspace_file(
            &format!("{marker}.py"),
            r#"
import os, time
n, err = 0, None
for i in range(300):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
procs = sum(1 for p in os.listdir("/proc") if p.isdigit())
print(f"forked={n}\nerrno={err}\nprocs={procs}")
"#,
        )
        .args(["-f", "limits.toml"]);
    let out = cage.run(["python3".to_string(), format!("{marker}.py")]);
    assert_eq!(out.code, 0, "{out}");
    let forked: usize = out.value("forked").unwrap().parse().unwrap();
    let procs: usize = out.value("procs").unwrap().parse().unwrap();
    assert_eq!(
        out.value("errno"),
        Some("11"),
        "fork must fail with EAGAIN\n{out}"
    );
    assert!(forked < 40 && procs <= 40, "the limit did not hold\n{out}");
    // The host is unaffected, and the bomb died with the cage.
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
    assert!(
        poll_until(Duration::from_secs(10), || host_processes_with(&marker)
            .is_empty()),
        "bomb processes outlived the cage: {:?}",
        host_processes_with(&marker)
    );
}

/// Layer: hygiene. A limit cage cannot enforce (cgroup memory here) is
/// never silently skipped: one line on stderr at start, and a field in the
/// session's audit log; the rlimits it did set are recorded too.
#[test]
fn unenforceable_limits_are_reported_on_stderr_and_in_the_audit_log() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file("limits.toml", "[limits]\nmemory = \"64M\"\nnofile = 256\n")
        .args(["-f", "limits.toml"]);
    let out = cage.sh("ulimit -n");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.trim(), "256", "{out}");
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("not enforced"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("memory = 67108864"), "{out}");
    let sessions = cage.home().join(".local/state/cage/sessions");
    let session = std::fs::read_dir(&sessions)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read_to_string(session.join("audit.jsonl")).unwrap();
    let start: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    let text = start.to_string();
    assert!(
        text.contains("limits_not_enforced") && text.contains("memory = 67108864"),
        "{text}"
    );
    assert!(text.contains("nofile = 256"), "{text}");
}
