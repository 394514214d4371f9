//! `cage doctor` and `cage shell-init`, run as the user running the tests.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn doctor_reports_every_layer_and_the_probe_run() {
    let o = Command::new(env!("CARGO_BIN_EXE_cage"))
        .arg("doctor")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    for line in [
        "user namespaces",
        "Landlock",
        "seccomp",
        "overlayfs",
        "cgroup v2",
        "TIOCSTI",
        "cage -- true",
    ] {
        assert!(out.contains(line), "no {line} line:\n{out}");
    }
    // Truthful about Landlock: the ABI it prints is the kernel's.
    let abi = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if abi.contains("landlock") {
        assert!(out.contains("Landlock                      ABI "), "{out}");
    }
    // The exit status follows the probe run.
    let runs = out
        .lines()
        .any(|l| l.starts_with("cage -- true") && l.contains(" runs "));
    assert_eq!(o.status.success(), runs, "{out}");
    // It ends with where to go next: the selftest.
    let last = out.lines().last().unwrap_or_default();
    assert!(last.contains("`cage selftest`"), "{out}");
}

#[test]
fn shell_init_aliases_only_agents_on_path() {
    let dir = std::env::temp_dir().join(format!("cage-shellinit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("claude");
    std::fs::write(&fake, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (shell, want) in [
        ("bash", "alias claude='cage -- claude'"),
        ("zsh", "alias claude='cage -- claude'"),
        (
            "fish",
            "function claude --wraps claude; cage -- claude $argv; end",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_cage"))
            .args(["shell-init", shell])
            .env("PATH", &dir)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && out.contains(want), "{shell}: {out}");
        assert!(!out.contains("codex"), "codex is not on PATH: {out}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `cage doctor | head -2`, `cage man | head -1`: a reader that goes away
/// ends the command quietly, without a panic.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    for args in [&["doctor"][..], &["man"][..], &["completions", "bash"][..]] {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        // The reader is gone before cage writes a byte.
        drop(read);
        let o = Command::new(env!("CARGO_BIN_EXE_cage"))
            .args(args)
            .stdout(std::process::Stdio::from(write))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "cage {args:?}: {err}");
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "cage {args:?}: {:?} {err}",
            o.status
        );
    }
}
