//! The README's first command is the main job on a fresh machine:
//! `.ci/setup` installs the pinned agents and links them onto PATH, the
//! build makes `target/release/cage`, and the last step prints Claude
//! Code's version from inside a cage. The step is read out of README.md,
//! so the README and this test cannot drift apart; it runs as written, by
//! a shell, in a directory holding `target/release/cage`, as the test user
//! and (when the tests run as root) as root.

use std::path::{Path, PathBuf};

use crate::harness::Cage;

/// The first command of the README's "The two commands" block.
fn first_command() -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## The two commands")
        .nth(1)
        .expect("README.md has a section `The two commands`");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in it");
    block
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("a command in the block")
        .to_string()
}

/// The release binary CI builds (`.ci/run`) before the tests.
fn release_binary() -> Option<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/cage");
    if built.exists() {
        return Some(built);
    }
    let why = format!(
        "{} is missing: `cargo build --release --locked` first (CI does)",
        built.display()
    );
    crate::harness::skip(&why);
    None
}

#[test]
fn the_readmes_first_command_ends_with_claudes_version_from_a_cage() {
    require_userns!();
    let line = first_command();
    let last = line.rsplit("&&").next().expect("a step").trim().to_string();
    assert!(
        last.starts_with("target/release/cage -- claude"),
        "the README's first command should end by running claude caged: {line}"
    );
    let Some(built) = release_binary() else {
        return;
    };
    let cage = Cage::new();
    // Where the step's relative path leads: the workspace stands for the
    // clone, holding the binary the build made.
    let dir = cage.workspace().join("target/release");
    let out = cage
        .host_command(["mkdir", "-p", &dir.display().to_string()])
        .output()
        .expect("mkdir");
    assert!(out.status.success());
    let out = cage
        .host_command([
            "cp",
            &built.display().to_string(),
            &dir.join("cage").display().to_string(),
        ])
        .output()
        .expect("cp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cage
        .host_command(["sh", "-c", &last])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running the step");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{last}\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("(Claude Code)"),
        "{last}\n{stdout}\n{stderr}"
    );

    // And as root, which the first command's `.ci/setup` needs anyway
    // (in a directory and a home of its own, not /root).
    if nix::unistd::geteuid().is_root() {
        let clone = cage.root().join("root-clone");
        let home = cage.root().join("root-home");
        std::fs::create_dir_all(clone.join("target/release")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::copy(&built, clone.join("target/release/cage")).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", &last])
            .current_dir(&clone)
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running the step as root");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "as root: {last}\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("(Claude Code)"),
            "as root: {stdout}\n{stderr}"
        );
    }
}
