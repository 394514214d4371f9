//! Planting (DESIGN threat 2): nothing the agent leaves behind is run by
//! the host later. The guard refuses creations of protected names live,
//! at any depth, and in every git directory everything outside what git's
//! everyday commands write; links, `..`, descriptors and /proc cannot
//! disguise the target; what slips is quarantined and restorable.
//!
//! Layers: guard (seccomp user notification answered by the supervisor),
//! view (read-only binds of what exists), and the end-of-session rescan.

use std::fs;
use std::path::Path;

use std::time::Duration;

use crate::harness::{ATTEMPT, Cage, IDENTITY, poll_until};

fn host(cage: &Cage, dir: &Path, script: &str) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A committed repository, ready for the host's git.
fn repo() -> Cage {
    let cage = Cage::new().workspace_file("a.txt", "a\n").args(IDENTITY);
    let ws = cage.workspace().to_path_buf();
    host(
        &cage,
        &ws,
        "git add a.txt && git -c user.name=u -c user.email=u@e commit -qm init",
    );
    cage
}

/// The host's own git, run after the session, must not run anything the
/// session left: a fsmonitor, a hook, a config of a planted gitdir.
fn host_git_runs_nothing(cage: &Cage, dir: &Path) {
    let ws = cage.workspace();
    let _ = cage
        .host_command(["git", "status"])
        .current_dir(dir)
        .output()
        .unwrap();
    let _ = cage
        .host_command([
            "git",
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@e",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "host",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        !ws.join("PWNED").exists(),
        "the host's git ran something the session planted"
    );
}

/// Regression for a critical escape (guard): the agent builds `.git/x`
/// (objects and refs linked back, a config with a fsmonitor) and points
/// `.git/commondir` at it. Every step outside git's allowlist is refused,
/// and the host's `git status` and `git commit` run nothing.
#[test]
fn gitdir_redirection_is_refused_live() {
    require_userns!();
    let cage = repo();
    let ws = cage.workspace().to_path_buf();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'mkdir .git/x'
attempt 'echo x > .git/commondir'
attempt 'printf "[core]\n\tfsmonitor = touch {ws}/PWNED\n" > .git/config.worktree'
attempt 'echo /tmp > .git/objects/info/alternates'
attempt 'mkdir -p .git/worktrees/w && echo /tmp > .git/worktrees/w/commondir'
attempt 'ln -s /tmp .git/x2'
attempt 'mv a.txt .git/commondir'
attempt 'mkdir -p .git/modules/new && echo x > .git/modules/new/config'
attempt 'printf "[core]\n\tfsmonitor = touch {ws}/PWNED\n" > .git/config.lock'
attempt 'ln -s /tmp .git/rr-cache'
"##,
        ws = ws.display()
    ));
    out.assert_success().assert_all_refused(10);
    for p in [
        "x",
        "commondir",
        "config.worktree",
        "objects/info/alternates",
        "x2",
        "config.lock",
    ] {
        assert!(
            ws.join(".git").join(p).symlink_metadata().is_err(),
            ".git/{p} reached the host\n{out}"
        );
    }
    host_git_runs_nothing(&cage, &ws);
    let log = cage.cli(["log"]);
    assert!(
        log.stdout.matches("guard  refused").count() >= 9,
        "every attempt is in the audit log\n{log}"
    );
}

/// Layer: guard. Links, `..`, descriptors, a changed directory and
/// /proc/self cannot disguise where a name lands: the guard resolves the
/// parent inside the agent's root and follows a final link O_CREAT would.
#[test]
fn links_and_descriptors_cannot_disguise_a_protected_target() {
    require_userns!();
    let cage = repo();
    let ws = cage.workspace().to_path_buf();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
ln -s .git g && ln -s .envrc dangling && mkdir -p sub && echo made-links
attempt 'echo x > g/commondir'
attempt 'echo x > sub/../.envrc'
attempt 'echo x > dangling'
attempt 'cd .git && echo x > commondir'
attempt 'echo x > /proc/self/cwd/.envrc'
attempt 'python3 -c "import os; d=os.open(\".git\", os.O_RDONLY); os.open(\"commondir\", os.O_CREAT|os.O_WRONLY, dir_fd=d)"'
attempt 'python3 -c "import os; d=os.open(\"sub\", os.O_RDONLY); os.mkdir(\"../.vscode\", dir_fd=d)"'
attempt 'ln a.txt sub/.envrc'
attempt 'ln -s /etc/passwd .idea'
"##
    ));
    out.assert_success()
        .assert_line("made-links")
        .assert_all_refused(9);
    for p in [".envrc", ".vscode", ".idea", "sub/.envrc", ".git/commondir"] {
        assert!(
            ws.join(p).symlink_metadata().is_err(),
            "{p} reached the host\n{out}"
        );
    }
}

/// Regression for an escape (guard): a directory the session turns into a
/// git repository (HEAD, objects/, refs/, a config with a fsmonitor) would
/// run that config for the host's git in that directory. A HEAD outside a
/// git directory is refused, and nothing built inside a gitdir may be
/// moved out of it.
#[test]
fn an_embedded_bare_repository_cannot_be_made() {
    require_userns!();
    let cage = repo();
    let ws = cage.workspace().to_path_buf();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'git init -q --bare bare'
attempt 'mkdir -p b/objects b/refs && echo "ref: refs/heads/main" > b/HEAD'
mkdir -p .git/refs/evil/objects .git/refs/evil/refs && echo "ref: refs/heads/main" > .git/refs/evil/HEAD && printf "[core]\n\tfsmonitor = touch {ws}/PWNED\n" > .git/refs/evil/config && echo built
attempt 'mv .git/refs/evil evil'
attempt 'mkdir nested && cd nested && git init -q'
"##,
        ws = ws.display()
    ));
    out.assert_success()
        .assert_line("built")
        .assert_all_refused(4);
    for p in ["bare/HEAD", "b/HEAD", "evil", "nested/.git"] {
        assert!(
            ws.join(p).symlink_metadata().is_err(),
            "{p} reached the host\n{out}"
        );
    }
    for dir in ["bare", "b"] {
        if ws.join(dir).is_dir() {
            host_git_runs_nothing(&cage, &ws.join(dir));
        }
    }
}

/// Regression for an escape (view, guard): `core.hooksPath` (husky and
/// the like) moves the hooks git runs into the worktree. That directory is
/// protected like `.git/hooks`: read-only when it exists, not creatable
/// when it does not, whether the repository's config or the user's names
/// it.
#[test]
fn the_hooks_path_is_protected_like_git_hooks() {
    require_userns!();
    let cage = repo()
        .workspace_file(".husky/pre-commit", "#!/bin/sh\nexit 0\n")
        .home_file(".gitconfig", "[core]\n\thooksPath = .githooks\n");
    let ws = cage.workspace().to_path_buf();
    host(&cage, &ws, "git config core.hooksPath .husky");
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'echo "touch {ws}/PWNED" >> .husky/pre-commit'
attempt 'echo "touch {ws}/PWNED" > .husky/post-checkout'
attempt 'mkdir .githooks'
attempt 'git config core.hooksPath /tmp'
"##,
        ws = ws.display()
    ));
    out.assert_success().assert_all_refused(4);
    assert_eq!(
        fs::read_to_string(ws.join(".husky/pre-commit")).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    assert!(!ws.join(".husky/post-checkout").exists());
    assert!(!ws.join(".githooks").exists());
}

/// Regression for an escape (view): `ln docs/env.sh .envrc` in one session
/// made `.envrc` changeable through `docs/env.sh` in the next, whatever
/// binds `.envrc` read-only. A protected file with another hard link is
/// refused at the start, with the path and the fix.
#[test]
fn a_hard_linked_protected_file_is_refused_at_start() {
    require_userns!();
    let cage = repo().workspace_file("docs/env.sh", "export A=1\n");
    let ws = cage.workspace().to_path_buf();
    host(&cage, &ws, "ln docs/env.sh .envrc");
    let out = cage.sh("echo ran");
    assert_eq!(out.code, 125, "{out}");
    assert!(!out.stdout.contains("ran"), "{out}");
    assert!(
        out.stderr.contains(".envrc") && out.stderr.contains("hard links"),
        "{out}"
    );
}

/// The race (guard, quarantine): one thread flips a path buffer between a
/// harmless name and `.envrc` while another creates and removes through
/// it, so some checks see the harmless name and the kernel the other.
/// Whatever the attacker wins is moved into the session's quarantine at
/// the end: the host's workspace never keeps a `.envrc`.
#[test]
fn a_two_thread_race_leaves_nothing_on_the_host() {
    require_userns!();
    let cage = repo();
    let ws = cage.workspace().to_path_buf();
    let out = cage.python(
        r#"
import ctypes, os, threading
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(b"benign", 16)
stop = False
def flip():
    while not stop:
        ctypes.memmove(buf, b".envrc", 6)
        ctypes.memmove(buf, b"benign", 6)
t = threading.Thread(target=flip); t.start()
won = 0
for i in range(20000):
    fd = libc.open(buf, os.O_CREAT | os.O_WRONLY, 0o644)
    if fd >= 0:
        libc.close(fd)
        if os.path.exists(".envrc"):
            won += 1
            break
        try: os.unlink("benign")
        except OSError: pass
stop = True; t.join()
print("attempts done; won", won)
"#,
    );
    assert!(out.stdout.contains("attempts done"), "{out}");
    assert!(
        ws.join(".envrc").symlink_metadata().is_err(),
        "a .envrc stayed on the host\n{out}"
    );
    if out.stdout.contains("won 1") {
        assert!(out.stderr.contains("cage restore"), "{out}");
    }
}

/// Layer: quarantine. A protected path that appears during a session
/// where the guard cannot see it (here the host writes it, as a won race
/// would), even inside a directory the agent then makes unreadable, is
/// moved into the session's directory, named with the command that puts
/// it back; `cage restore` refuses to overwrite, then restores.
#[test]
fn what_slips_is_quarantined_and_restore_puts_it_back() {
    require_userns!();
    let cage = repo().workspace_file("d/keep", "k\n");
    let ws = cage.workspace().to_path_buf();
    let running = cage.spawn([
        "sh",
        "-c",
        "touch ready; while [ ! -e go ]; do sleep 0.05; done; chmod 0311 d; echo agent-done",
    ]);
    // The plan is built before the agent runs: only now is a new path new.
    assert!(
        poll_until(Duration::from_secs(30), || ws.join("ready").exists()),
        "the agent never started"
    );
    host(
        &cage,
        &ws,
        "echo 'export X=1' > .envrc && echo y > d/.envrc && touch go",
    );
    let out = running.wait();
    out.assert_success().assert_line("agent-done");
    assert!(!ws.join(".envrc").exists(), "{out}");
    assert!(!ws.join("d/.envrc").exists(), "{out}");
    assert!(out.stderr.contains("made it readable again"), "{out}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("cage restore") && l.contains("/.envrc") && !l.contains("d/.envrc"))
        .unwrap_or_else(|| panic!("no restore hint\n{out}"));
    let hint = line
        .split("cage restore ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')');
    let mut words = hint.split_whitespace();
    let (session, path) = (words.next().unwrap(), words.next().unwrap());
    host(&cage, &ws, "echo other > .envrc");
    let refused = cage.cli(["restore", session, path]);
    assert_eq!(refused.code, 125, "{refused}");
    assert!(refused.stderr.contains("refusing"), "{refused}");
    fs::remove_file(ws.join(".envrc")).unwrap();
    cage.cli(["restore", session, path]).assert_success();
    assert_eq!(
        fs::read_to_string(ws.join(".envrc")).unwrap(),
        "export X=1\n"
    );
}

/// Layer: guard. Under `--rw ~`, what a rule hides or the guard keeps
/// (cage's own config, shell startup files, the user's git config) cannot
/// be created, though the home is writable.
#[test]
fn a_writable_home_cannot_create_cage_config_rc_files_or_git_config() {
    require_userns!();
    let cage = repo();
    let home = cage.home().to_path_buf();
    let cage = cage.args(["--rw", &home.display().to_string()]);
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'mkdir -p ~/.config/cage && echo "[network]" > ~/.config/cage/config.toml'
attempt 'echo "touch /tmp/PWNED" > ~/.bash_profile'
attempt 'printf "[core]\n\tfsmonitor = x\n" > ~/.gitconfig'
attempt 'mkdir -p ~/.config/git'
echo ok > ~/notes.txt && echo wrote-notes
"##
    ));
    out.assert_success()
        .assert_line("wrote-notes")
        .assert_all_refused(4);
    assert!(
        home.join("notes.txt").exists(),
        "ordinary files are writable\n{out}"
    );
    for p in [
        ".config/cage/config.toml",
        ".bash_profile",
        ".gitconfig",
        ".config/git",
    ] {
        assert!(
            home.join(p).symlink_metadata().is_err(),
            "{p} reached the host\n{out}"
        );
    }
}

/// Layer: guard (no false refusals). git's everyday commands keep working
/// under the allowlist: commit, branch, merge with a merge commit, rebase,
/// stash, cherry-pick, an annotated tag, gc, and a submodule's own commit
/// and checkout (its gitdir under `.git/modules`).
#[test]
fn git_keeps_working_under_the_gitdir_allowlist() {
    require_userns!();
    let cage = repo();
    let ws = cage.workspace().to_path_buf();
    let lib = cage.root().join("lib");
    fs::create_dir(&lib).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        let owner = fs::metadata(&ws).unwrap();
        std::os::unix::fs::chown(&lib, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    let setup = format!(
        "set -e; cd {lib} && git init -q -b main && echo l > l && git add l && \
         git -c user.name=u -c user.email=u@e commit -qm lib && cd {ws} && \
         git -c protocol.file.allow=always submodule -q add {lib} sub && \
         git -c user.name=u -c user.email=u@e commit -qm sub && \
         git -c protocol.file.allow=always submodule -q update",
        lib = lib.display(),
        ws = ws.display()
    );
    host(&cage, &ws, &setup);
    let out = cage.sh(r#"set -e
git checkout -q -b feature && echo f > f && git add f && git commit -qm f
git checkout -q main && echo m > m && git add m && git commit -qm m
git merge -q --no-ff --no-edit feature
git checkout -q -b topic HEAD~1 && echo t > t && git add t && git commit -qm t
git rebase -q main
echo dirty >> a.txt && git stash -q && git stash pop -q && git checkout -q -- a.txt
git checkout -q main && git cherry-pick topic >/dev/null
git tag -a v1 -m v1
git gc -q
git -C sub commit -q --allow-empty -m inside && git -C sub checkout -q HEAD~1
echo ALL-OK"#);
    out.assert_success().assert_line("ALL-OK");
    let log = host(&cage, &ws, "git log --oneline | wc -l");
    assert!(log.trim().parse::<u32>().unwrap() >= 5, "{log}");
    assert!(!out.stderr.contains("quarantine"), "{out}");
}

/// Regression for a critical escape (guard): from a linked worktree, the
/// agent wrote the main repository's `.git/commondir` (and could build a
/// gitdir beside it). The common dir is judged by the same allowlist.
#[test]
fn a_linked_worktree_cannot_redirect_the_main_repository() {
    require_userns!();
    let cage = Cage::new().args(IDENTITY);
    let ws = cage.workspace().to_path_buf();
    let main = cage.home().join("main");
    fs::remove_dir_all(&ws).unwrap();
    host(
        &cage,
        cage.home(),
        "git init -q -b main main && cd main && git -c user.name=u -c user.email=u@e commit -q \
         --allow-empty -m init && git worktree add -q ../proj -b wt",
    );
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
echo hi > file && git add file && git commit -q -m 'in the worktree' && echo committed
attempt 'echo x > {main}/.git/commondir'
attempt 'mkdir {main}/.git/x'
attempt 'echo x > {main}/.git/worktrees/proj/config.worktree'
attempt 'mkdir -p {main}/.git/worktrees/other && echo /tmp > {main}/.git/worktrees/other/commondir'
"##,
        main = main.display()
    ));
    out.assert_success()
        .assert_line("committed")
        .assert_all_refused(4);
    for p in [
        "commondir",
        "x",
        "worktrees/proj/config.worktree",
        "worktrees/other/commondir",
    ] {
        assert!(
            main.join(".git").join(p).symlink_metadata().is_err(),
            "{p} reached the host\n{out}"
        );
    }
}

/// Layer: guard. What tools run by themselves when the developer enters
/// or opens the directory (direnv, mise, editors, dev containers) cannot
/// be created at any depth.
#[test]
fn files_that_run_on_entering_a_directory_cannot_be_created() {
    require_userns!();
    let cage = repo();
    let ws = cage.workspace().to_path_buf();
    let names = [
        ".devcontainer/devcontainer.json",
        "sub/.devcontainer.json",
        ".dir-locals.el",
        "sub/.exrc",
        ".nvim.lua",
        "mise.toml",
        "sub/.mise.toml",
        ".config/mise/config.toml",
        ".zed/tasks.json",
        ".vscode/tasks.json",
    ];
    let script: String = names
        .iter()
        .map(|n| {
            let dir = Path::new(n)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("attempt 'mkdir -p {dir} ; echo x > {n}'\n")
        })
        .collect();
    let out = cage.sh(&format!("{ATTEMPT}\nmkdir -p sub .config\n{script}"));
    out.assert_success().assert_all_refused(names.len());
    for n in names {
        assert!(
            ws.join(n).symlink_metadata().is_err(),
            "{n} reached the host\n{out}"
        );
    }
}

/// Regression for a critical escape (view, guard): a committed project
/// file with `mode = "readonly"` and `write = [".git"]` passed the
/// line-by-line narrowing check, and readonly mode dropped the protected
/// binds, so `.git` came back writable whole. Protected paths now stay
/// read-only in every mode, and the guard judges the granted gitdir; the
/// same with the user's own `--workspace readonly`.
#[test]
fn readonly_mode_with_a_writable_gitdir_still_protects_it() {
    require_userns!();
    for flags in [&[][..], &["--workspace", "readonly"][..]] {
        let cage = repo()
            .workspace_file(
                ".cage.toml",
                "[workspace]\nmode = \"readonly\"\n\n[filesystem]\nwrite = [\".git\"]\n",
            )
            .args(flags.iter().copied());
        let ws = cage.workspace().to_path_buf();
        let out = cage.sh(&format!(
            r##"{ATTEMPT}
attempt 'printf "#!/bin/sh\ntouch {ws}/PWNED\n" > .git/hooks/pre-commit'
attempt 'printf "[core]\n\tfsmonitor = touch {ws}/PWNED\n" >> .git/config'
attempt 'echo x > .git/commondir'
attempt 'python3 -c "open(\".git/config\", \"r+\").write(\"[core]\")"'
"##,
            ws = ws.display()
        ));
        // Refused outright as a widening is just as safe.
        if out.code != 125 {
            out.assert_success().assert_all_refused(4);
        }
        assert!(!ws.join(".git/hooks/pre-commit").exists(), "{out}");
        assert!(!ws.join(".git/commondir").exists(), "{out}");
        host_git_runs_nothing(&cage, &ws);
    }
}
