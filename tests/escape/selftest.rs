//! `cage selftest` (issue 17): the battery of escapes a user runs on their
//! own host. Every layer the battery touches has its own test elsewhere;
//! these prove that the selftest itself reports what happens: all blocked
//! under the default plan, the host listener EXPOSED when the plan is
//! weakened, and nothing left behind either way.
//!
//! Layers: all of them at once (view, access, processes, network,
//! syscalls, privileges, hygiene, guard). Removing any one that the
//! battery probes turns its line EXPOSED, which fails
//! `selftest_blocks_every_attempt_and_leaves_nothing`.

use std::path::Path;

use crate::harness::{Cage, Output, Snapshot};

/// The attempt lines of a text report: each starts with its verdict.
fn verdicts(out: &Output) -> Vec<&str> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with("blocked ") || l.starts_with("EXPOSED "))
        .collect()
}

/// A private TMPDIR for the run, so "nothing left in the temporary
/// directory" can be checked without racing other tests in /tmp.
fn with_tmpdir(cage: Cage) -> (Cage, std::path::PathBuf) {
    let tmp = cage.user_dir("tmp");
    let cage = cage.host_env("TMPDIR", &tmp.display().to_string());
    (cage, tmp)
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

#[test]
fn selftest_blocks_every_attempt_and_leaves_nothing() {
    require_userns!();
    let (cage, tmp) = with_tmpdir(
        Cage::new()
            .workspace_file("src/main.rs", "fn main() {}\n")
            .workspace_file(".envrc", "export SAFE=1\n"),
    );
    let home = cage.snapshot();
    let workspace = Snapshot::of(cage.workspace());
    let out = cage.cli(["selftest"]);
    assert_eq!(out.code, 0, "{out}");
    let lines = verdicts(&out);
    // The brief's battery: decoy key and variable, six loopback spellings,
    // two unix sockets, two terminal ioctls, init and the supervisor, a
    // user namespace, mounts, sockets, five kernel calls, a foreign ABI and
    // the writes.
    assert!(lines.len() >= 30, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("blocked ")), "{out}");
    for what in [
        "read the decoy key ~/.ssh/id_ed25519",
        "connect to host 127.1.2.3:",
        "connect to host [::ffff:127.0.0.1]:",
        "connect to host localhost:",
        "connect to a host abstract socket",
        "connect to a socket in the workspace",
        "TIOCSTI",
        "ptrace cage init",
        "signal the supervisor",
        "create a user namespace",
        "keyctl",
        "an i386 syscall",
        "plant .git/hooks/pre-commit",
        "plant .envrc",
        "plant .vscode/tasks.json",
    ] {
        assert!(lines.iter().any(|l| l.contains(what)), "{what}\n{out}");
    }
    assert!(out.stdout.contains("all "), "{out}");
    // Nothing left: not in the workspace, the home (no session either),
    // nor the temporary directory.
    assert_eq!(
        Snapshot::of(cage.workspace()).changes_since(&workspace),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        cage.snapshot().changes_since(&home),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(!cage.sessions_dir().exists(), "a session was left: {out}");
    assert!(
        empty(&tmp),
        "left in TMPDIR: {:?}",
        std::fs::read_dir(&tmp).map(|d| d.count())
    );
}

/// A deliberately weakened plan: `--net host` shares the host's network,
/// so the host's loopback listener is reached, reported EXPOSED (with the
/// plan's own rule as the reason), and the exit status says so.
#[test]
fn selftest_with_net_host_reports_the_listener_exposed() {
    require_userns!();
    let (cage, tmp) = with_tmpdir(Cage::new());
    let out = cage.cli(["selftest", "--net", "host"]);
    assert_eq!(out.code, 1, "{out}");
    let lines = verdicts(&out);
    for spelling in ["127.0.0.1:", "127.1.2.3:", "0.0.0.0:", "localhost:"] {
        let want = format!("EXPOSED  connect to host {spelling}");
        assert!(lines.iter().any(|l| l.starts_with(&want)), "{want}\n{out}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("allowed by the plan: network host (flag --net)")),
        "{out}"
    );
    // The rest of the walls still hold.
    assert!(
        lines
            .iter()
            .filter(|l| !l.contains("connect to host"))
            .all(|l| l.starts_with("blocked ")),
        "{out}"
    );
    assert!(out.stdout.contains("EXPOSED: "), "{out}");
    assert!(empty(&tmp), "left in TMPDIR");
    assert!(!cage.sessions_dir().exists(), "a session was left: {out}");
}

#[test]
fn selftest_json_parses() {
    require_userns!();
    let (cage, _tmp) = with_tmpdir(Cage::new());
    let out = cage.cli(["selftest", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let attempts = v["attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 30, "{out}");
    assert!(
        attempts.iter().all(|a| a["verdict"] == "blocked"
            && a["expected_blocked"] == true
            && a["what"].is_string()
            && a["observed"].is_string()),
        "{out}"
    );
    assert_eq!(v["exposed"], 0, "{out}");
    assert_eq!(v["exit_code"], 0, "{out}");
    assert_eq!(v["network"], "none", "{out}");
}

/// Proxy mode (the claude profile's, chosen for the command as a run
/// chooses it): the proxy refuses a host no rule allows and the host's
/// loopback, and the rest still holds.
#[test]
fn selftest_under_a_proxy_profile_refuses_a_denied_host_and_loopback() {
    require_userns!();
    let (cage, tmp) = with_tmpdir(Cage::new());
    let out = cage.cli(["selftest", "--", "claude"]);
    assert_eq!(out.code, 0, "{out}");
    let lines = verdicts(&out);
    assert!(lines.iter().all(|l| l.starts_with("blocked ")), "{out}");
    for want in [
        "CONNECT cage-selftest-denied.invalid:443 via the proxy",
        "CONNECT 127.0.0.1:",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(want) && l.contains("403")),
            "{want}\n{out}"
        );
    }
    assert!(out.stdout.contains("network proxy"), "{out}");
    assert!(
        out.stdout.contains("chosen for the command claude"),
        "{out}"
    );
    // The profile's state directory was made in the throwaway home only.
    assert!(!cage.home().join(".claude").exists(), "{out}");
    assert!(empty(&tmp), "left in TMPDIR");
}

/// The user's config applies, in the throwaway home: a path it requires
/// gets its shape there (empty), never the real content, and the real
/// home is left as it was.
#[test]
fn selftest_applies_the_users_config_without_its_files_content() {
    require_userns!();
    let (cage, tmp) = with_tmpdir(
        Cage::new()
            .home_file(
                ".config/cage/config.toml",
                "[filesystem]\nread = [\"~/.gitconfig\"]\n",
            )
            .home_file(".gitconfig", "[user]\n\tname = real-gitconfig-content\n"),
    );
    let home = cage.snapshot();
    let out = cage.cli(["selftest", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("real-gitconfig-content"), "{out}");
    assert_eq!(
        cage.snapshot().changes_since(&home),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(empty(&tmp), "left in TMPDIR");
}

/// The other workspace modes: in overlay mode the planted files land in
/// the session's upper layer (held for review, not on the host), in
/// readonly mode nowhere; either way every line is blocked and the
/// session (which an overlay run keeps for review) goes with the copy.
#[test]
fn selftest_in_overlay_and_readonly_modes_blocks_every_attempt() {
    require_userns!();
    for mode in ["overlay", "readonly"] {
        let (cage, tmp) = with_tmpdir(Cage::new());
        let out = cage.cli(["selftest", "--workspace", mode]);
        assert_eq!(out.code, 0, "{mode}: {out}");
        let lines = verdicts(&out);
        assert!(lines.len() >= 30, "{mode}: {out}");
        assert!(
            lines.iter().all(|l| l.starts_with("blocked ")),
            "{mode}: {out}"
        );
        assert!(out.stdout.contains(&format!("workspace {mode}")), "{out}");
        assert!(!cage.sessions_dir().exists(), "{mode}: a session was left");
        assert!(empty(&tmp), "{mode}: left in TMPDIR");
    }
}

/// The graded mode (forced with the test-only setting, as in
/// `graded.rs`): the selftest says it ran there, names the layer that
/// takes over from each namespace, and reports the one attempt the mode
/// does not stop where no cgroup holds the session (a detached process
/// outlives the cage) as EXPOSED, with the exit status saying so. Every
/// other attempt is blocked, in none and in proxy mode.
#[test]
fn selftest_in_the_graded_mode_names_its_layers_and_its_gap() {
    require_userns!();
    for net in ["none", "proxy"] {
        let (cage, tmp) = with_tmpdir(Cage::new().host_env("CAGE_TEST_FORCE_NO_USERNS", "1"));
        let workspace = Snapshot::of(cage.workspace());
        let out = cage.cli(["selftest", "--allow-degraded", "namespaces", "--net", net]);
        assert_eq!(out.code, 1, "{net}: {out}");
        assert!(
            out.stdout
                .contains("the graded mode: user namespaces are unavailable"),
            "{net}: {out}"
        );
        let lines = verdicts(&out);
        let exposed: Vec<&&str> = lines.iter().filter(|l| l.starts_with("EXPOSED")).collect();
        assert_eq!(exposed.len(), 1, "{net}: {out}");
        assert!(
            exposed[0].contains("outlive the cage")
                && exposed[0].contains("not in the graded mode")
                && exposed[0].contains("still running on the host"),
            "{net}: {out}"
        );
        for (what, layer) in [
            ("read the decoy key", "Landlock"),
            (
                "connect to host 127.0.0.1:",
                if net == "none" { "seccomp" } else { "guard" },
            ),
            ("connect to a host abstract socket", "seccomp"),
            ("open /proc/", "Landlock"),
            ("signal the supervisor", "Landlock scope"),
            ("write a file in the host's /tmp", "Landlock"),
            ("plant .git/hooks/pre-commit", "guard"),
            ("plant .git/config", "guard"),
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with("blocked ")
                    && l.contains(what)
                    && l.contains(&format!("blocked: {layer}"))),
                "{net}: {what} by {layer}\n{out}"
            );
        }
        if net == "proxy" {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("CONNECT 127.0.0.1:") && l.contains("403")),
                "{net}: the proxy on the host's loopback answered\n{out}"
            );
        }
        assert_eq!(
            Snapshot::of(cage.workspace()).changes_since(&workspace),
            Vec::<std::path::PathBuf>::new()
        );
        assert!(empty(&tmp), "{net}: left in TMPDIR");
        assert!(
            !cage.sessions_dir().exists(),
            "{net}: a session was left: {out}"
        );
    }
}
