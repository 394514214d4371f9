//! `cage -- AGENT` as a new user types it (issue 11): no `-p`, no other
//! flag, the agent installed the ways people install agents. Each test
//! builds one installation layout in a fresh home from the real, pinned
//! agents under /opt/cage-agents (`.ci/setup`), puts it on the PATH the
//! user's shell would have, and runs the agent. Also the first minutes'
//! rough edges: a forgotten `--`, the hostname, CA files, sessions left by
//! runs that never started a command.

use std::path::Path;
use std::process::Command;

use crate::harness::Cage;

const PREFIX: &str = "/opt/cage-agents";
/// A name for gemini that only the nvm layout has: `.ci/setup` links the
/// agents' own names into /usr/local/bin, which the cage's base PATH
/// holds, so a test about the one installation it made uses this one.
const NVM_ONLY: &str = "gemini-from-nvm";

const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn agents_installed() -> bool {
    if Path::new(PREFIX).join(".installed").exists() {
        return true;
    }
    let why = format!("the agent CLIs are not installed under {PREFIX}: run .ci/setup as root");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    crate::harness::skip(&why);
    false
}

/// Runs a shell script on the host as the test process (root, or the test
/// user when not started as root), to lay out files in the test's home.
/// Files are hard-linked from /opt/cage-agents where the kernel allows it
/// (`cp -al`), else copied.
fn lay_out(cage: &Cage, script: &str) {
    // Directories and links made here belong to the test user, as they
    // would; files keep their owner, since hard links share it with /opt.
    let script = format!(
        "{script}\nowner=$(stat -c %u:%g \"$H\")\n\
         find \"$H\" -type d -exec chown \"$owner\" {{}} +\n\
         find \"$H\" -type l -exec chown -h \"$owner\" {{}} +\n"
    );
    let out = Command::new("sh")
        .args(["-euc", &script, "sh"])
        .env("H", cage.home())
        .env("A", PREFIX)
        .output()
        .expect("running the layout script");
    assert!(
        out.status.success(),
        "laying out the installation: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cp -al`, else `cp -a`, as a shell function for `lay_out` scripts.
const LINK: &str = "link() { cp -al \"$1\" \"$2\" 2>/dev/null || cp -a \"$1\" \"$2\"; }\n";

/// npm with nvm: node, claude, codex and gemini in
/// ~/.nvm/versions/node/v22.0.0, as `npm i -g` lays them out there.
fn nvm(cage: &Cage) -> String {
    lay_out(
        cage,
        &format!(
            "{LINK}N=$H/.nvm/versions/node/v22.0.0; M=$N/lib/node_modules
            mkdir -p $N/bin $M/@anthropic-ai $M/@openai $M/@google
            cp /usr/bin/node $N/bin/node
            link $A/node_modules/@anthropic-ai/claude-code $M/@anthropic-ai/claude-code
            link $A/node_modules/@openai/codex $M/@openai/codex
            mkdir -p $M/@openai/codex/node_modules/@openai
            link $A/node_modules/@openai/codex-linux-x64 $M/@openai/codex/node_modules/@openai/codex-linux-x64
            link $A/node_modules/@google/gemini-cli $M/@google/gemini-cli
            ln -s ../lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe $N/bin/claude
            ln -s ../lib/node_modules/@openai/codex/bin/codex.js $N/bin/codex
            ln -s ../lib/node_modules/@google/gemini-cli/bundle/gemini.js $N/bin/gemini
            ln -s ../lib/node_modules/@google/gemini-cli/bundle/gemini.js $N/bin/{NVM_ONLY}
            chmod -R a+rX $H/.nvm"
        ),
    );
    format!(
        "{}/.nvm/versions/node/v22.0.0/bin:{SYSTEM_PATH}",
        cage.home().display()
    )
}

/// npm with a user prefix: `npm config set prefix ~/.npm-global`, then
/// `npm i -g` of the three npm agents (node itself from the system).
fn npm_prefix(cage: &Cage) -> String {
    lay_out(
        cage,
        &format!(
            "{LINK}P=$H/.npm-global; M=$P/lib/node_modules
            mkdir -p $P/bin $M/@anthropic-ai $M/@openai $M/@google
            link $A/node_modules/@anthropic-ai/claude-code $M/@anthropic-ai/claude-code
            link $A/node_modules/@openai/codex $M/@openai/codex
            mkdir -p $M/@openai/codex/node_modules/@openai
            link $A/node_modules/@openai/codex-linux-x64 $M/@openai/codex/node_modules/@openai/codex-linux-x64
            link $A/node_modules/@google/gemini-cli $M/@google/gemini-cli
            ln -s ../lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe $P/bin/claude
            ln -s ../lib/node_modules/@openai/codex/bin/codex.js $P/bin/codex
            ln -s ../lib/node_modules/@google/gemini-cli/bundle/gemini.js $P/bin/gemini
            chmod -R a+rX $P"
        ),
    );
    format!("{}/.npm-global/bin:{SYSTEM_PATH}", cage.home().display())
}

/// Claude Code's native installer: ~/.local/bin/claude, a link to the
/// versioned binary in ~/.local/share/claude/versions.
fn native(cage: &Cage) -> String {
    lay_out(
        cage,
        &format!(
            "{LINK}mkdir -p $H/.local/bin $H/.local/share/claude/versions
            link $A/node_modules/@anthropic-ai/claude-code/bin/claude.exe \
                 $H/.local/share/claude/versions/2.1.330
            ln -s $H/.local/share/claude/versions/2.1.330 $H/.local/bin/claude
            chmod a+rx $H/.local $H/.local/bin $H/.local/share $H/.local/share/claude \
                 $H/.local/share/claude/versions"
        ),
    );
    format!("{}/.local/bin:{SYSTEM_PATH}", cage.home().display())
}

/// pipx (Debian's 1.1): a venv in ~/.local/pipx/venvs/aider-chat whose
/// scripts name its own python, and a link in ~/.local/bin.
fn pipx(cage: &Cage) -> String {
    lay_out(
        cage,
        &format!(
            "{LINK}V=$H/.local/pipx/venvs/aider-chat
            mkdir -p $H/.local/bin $H/.local/pipx/venvs
            link $A/aider $V
            sed -i \"s|$A/aider|$V|\" $V/pyvenv.cfg
            for f in $V/bin/*; do
                if [ ! -L \"$f\" ] && head -c 2 \"$f\" | grep -q '#!'; then
                    sed -i \"1s|$A/aider|$V|\" \"$f\"
                fi
            done
            ln -s $V/bin/aider $H/.local/bin/aider
            chmod a+rx $H/.local $H/.local/bin $H/.local/pipx $H/.local/pipx/venvs $V"
        ),
    );
    format!("{}/.local/bin:{SYSTEM_PATH}", cage.home().display())
}

/// `cage -- AGENT --version` succeeds and prints the pinned version, for
/// each agent.
fn answers_version(cage: &Cage, agents: &[(&str, &str)]) {
    for (agent, want) in agents {
        let out = cage.run([*agent, "--version"]);
        assert_eq!(out.code, 0, "cage -- {agent} --version\n{out}");
        assert!(
            out.stdout.contains(want),
            "cage -- {agent} --version\n{out}"
        );
    }
}

/// Layer: view (the command's installation, granted read-only). npm with
/// nvm: every npm agent answers `cage -- AGENT --version`, no flag.
#[test]
fn agents_installed_with_nvm_run_with_no_flag() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let cage = Cage::new();
    let path = nvm(&cage);
    let cage = cage.host_env("PATH", &path);
    answers_version(
        &cage,
        &[
            ("claude", "2.1.330"),
            ("codex", "0.169.0"),
            ("gemini", "0.61.0"),
        ],
    );
    // Without the grant (no profile either), nvm's node is not there.
    let out = cage.cli([
        "--no-auto-profile",
        "--hide",
        "~/.nvm",
        "--",
        NVM_ONLY,
        "--version",
    ]);
    assert_eq!(out.code, 127, "{out}");
}

/// Layer: view. npm with a user prefix (~/.npm-global): the package and
/// its bin link are granted, node comes from the system.
#[test]
fn agents_installed_in_an_npm_prefix_run_with_no_flag() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let cage = Cage::new();
    let path = npm_prefix(&cage);
    let cage = cage.host_env("PATH", &path);
    answers_version(
        &cage,
        &[
            ("codex", "0.169.0"),
            ("gemini", "0.61.0"),
            ("claude", "2.1.330"),
        ],
    );
}

/// Layer: view. The native installer's link in ~/.local/bin is recreated
/// inside (its directory did not exist on the empty home: the link used to
/// fail with "creating the link /newroot/..."), with the claude profile and
/// without it (then only the command's own grant shows the binary).
#[test]
fn claude_from_the_native_installer_runs_with_no_flag() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let cage = Cage::new();
    let path = native(&cage);
    let cage = cage.host_env("PATH", &path);
    answers_version(&cage, &[("claude", "2.1.330")]);
    let log = cage.cli(["log"]);
    assert!(
        log.stdout
            .contains("profile claude (chosen for the command claude"),
        "{log}"
    );
    let out = cage.cli(["--no-auto-profile", "--", "claude", "--version"]);
    assert_eq!(
        out.code, 0,
        "cage --no-auto-profile -- claude --version\n{out}"
    );
    assert!(out.stdout.contains("2.1.330"), "{out}");
    assert!(!out.stderr.contains("/newroot"), "{out}");
}

/// Layer: view. pipx: the venv root (pyvenv.cfg) is granted, and the
/// script's `#!` python with it.
#[test]
fn aider_from_pipx_runs_with_no_flag() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let cage = Cage::new();
    let path = pipx(&cage);
    let cage = cage.host_env("PATH", &path);
    answers_version(&cage, &[("aider", "0.86.2")]);
}

/// The dry run of `cage -- claude` says which profile applies and why,
/// shows api.anthropic.com allowed, and each grant with its reason.
#[test]
fn dry_run_shows_the_profile_chosen_for_the_command() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let cage = Cage::new();
    let path = npm_prefix(&cage);
    let cage = cage.host_env("PATH", &path);
    let out = cage.cli(["--dry-run", "--", "claude"]);
    assert_eq!(out.code, 0, "{out}");
    for want in [
        "profile claude (chosen for the command claude",
        "allow api.anthropic.com",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?}\n{out}");
    }
    // Without the profile (which grants ~/.npm-global whole), the
    // command's own grants show, each with its reason.
    let out = cage.cli(["--no-auto-profile", "--dry-run", "--", "claude"]);
    assert!(!out.stdout.contains("chosen for the command"), "{out}");
    assert!(!out.stdout.contains("allow api.anthropic.com"), "{out}");
    for want in [
        "/.npm-global/lib/node_modules/@anthropic-ai/claude-code  \
         [cage default (the command: resolved on your PATH)]",
        "/.npm-global/bin/claude -> ../lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe  \
         [cage default (the command: a link on your PATH, as it is on the host)]",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?}\n{out}");
    }
    let out = cage.cli(["policy", "show", "--", "claude"]);
    assert!(
        out.stdout
            .contains("profile claude (chosen for the command claude"),
        "{out}"
    );
}

/// The alias `cage shell-init bash` writes runs the agent caged, in an
/// interactive bash, with the profile the command chooses.
#[test]
fn shell_init_alias_runs_the_agent() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let cage = Cage::new();
    let path = nvm(&cage);
    let bin = cage.root().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(crate::harness::cage_binary(), bin.join("cage")).unwrap();
    let path = format!("{}:{path}", bin.display());
    let out = cage
        .host_command([
            "env",
            &format!("PATH={path}"),
            "bash",
            "--norc",
            "-ic",
            "eval \"$(cage shell-init bash)\"; alias claude; claude --version",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("cage -- claude"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("2.1.330 (Claude Code)"),
        "{stdout}\n{stderr}"
    );
}

/// Layer: view. The installation is granted read-only: the agent cannot
/// replace the node (or claude) the user runs outside.
#[test]
fn the_commands_installation_is_read_only() {
    require_userns!();
    let cage = Cage::new();
    let path = nvm(&cage);
    // No profile: the node profile would grant ~/.nvm read-only itself.
    let cage = cage.host_env("PATH", &path).args(["--no-auto-profile"]);
    let out = cage.run([
        "node",
        "-e",
        "const fs=require('fs');\
         try{fs.writeFileSync(process.execPath,'x');console.log('wrote')}\
         catch(e){console.log('refused',e.code)}\
         try{fs.writeFileSync(require('path').dirname(process.execPath)+'/planted','x');\
         console.log('planted')}catch(e){console.log('refused',e.code)}",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("wrote"), "{out}");
    assert!(!out.stdout.contains("planted"), "{out}");
    assert!(
        !cage
            .home()
            .join(".nvm/versions/node/v22.0.0/bin/planted")
            .exists()
    );
}

/// Layer: view. Hide beats the command's grant: a command whose
/// installation is hidden does not run, and cage says why.
#[test]
fn a_hidden_installation_is_never_granted() {
    require_userns!();
    let cage = Cage::new();
    let path = nvm(&cage);
    let cage = cage
        .host_env("PATH", &path)
        .args(["--hide", "~/.nvm/versions"]);
    let out = cage.run([NVM_ONLY, "--version"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(!out.stdout.contains("0.61.0"), "{out}");
    assert!(out.stderr.contains("is hidden by flag --hide"), "{out}");
    // A command the system also has runs from there, and cage says so.
    let out = cage.run(["node", "-e", "console.log(process.execPath)"]);
    assert_eq!(out.stdout.trim(), "/usr/bin/node", "{out}");
    assert!(out.stderr.contains("/usr/bin/node runs instead"), "{out}");
}

/// A command the host does not have: 127, naming the PATH searched, and
/// no session left behind.
#[test]
fn a_missing_command_names_the_path_searched() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.run(["no-such-agent", "--version"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(
        out.stderr
            .contains("no-such-agent: command not found on your PATH (/usr/local/bin:"),
        "{out}"
    );
    assert!(
        !has_sessions(&cage),
        "a session was left for a command that never ran"
    );
}

/// A forgotten `--` gets the command line that was meant, exit 125.
#[test]
fn a_forgotten_separator_gets_a_hint() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.cli(["claude", "--version"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr
            .contains("did you mean `cage -- claude --version`?"),
        "{out}"
    );
    let out = cage.cli(["-p", "claude", "claude", "--version"]);
    assert!(
        out.stderr
            .contains("did you mean `cage -p claude -- claude --version`?"),
        "{out}"
    );
}

/// Run options before a subcommand, and explain with the command's
/// profile.
#[test]
fn explain_uses_the_profile_a_run_would() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.cli(["-p", "claude", "explain", "api.anthropic.com"]);
    assert_eq!(out.code, 0, "{out}");
    let out = cage.cli(["explain", "api.anthropic.com", "--", "claude"]);
    assert_eq!(out.code, 0, "{out}");
    let out = cage.cli(["explain", "api.anthropic.com"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("no profile applied"), "{out}");
}

/// `--allow-host` alone asks for the proxy, and the dry run says so.
#[test]
fn allow_host_implies_the_proxy() {
    require_userns!();
    let cage = Cage::new();
    let out = cage.cli(["--allow-host", "example.com", "--dry-run", "--", "true"]);
    assert!(
        out.stdout
            .contains("network    Proxy [flag --allow-host (implies --net proxy)]"),
        "{out}"
    );
    let out = cage.cli([
        "--allow-host",
        "example.com",
        "--net",
        "none",
        "--dry-run",
        "--",
        "true",
    ]);
    assert!(out.stdout.contains("network    None [flag --net]"), "{out}");
}

/// The cage's hostname resolves inside, from a file cage writes.
#[test]
fn the_hostname_resolves_inside() {
    require_userns!();
    let out = Cage::new().run(["getent", "hosts", "cage"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("cage"), "{out}");
}

/// Layer: view + hygiene. A CA variable passes with the file it names,
/// read-only; a CA file under a hidden tree stays hidden, and its variable
/// is not passed.
#[test]
fn ca_files_pass_and_hide_still_wins() {
    require_userns!();
    let cage = Cage::new()
        .home_file("corp/ca.pem", "-----BEGIN CERTIFICATE-----\n")
        .home_file(".ssh/ca.pem", "SECRET-IN-SSH\n");
    let home = cage.home().to_path_buf();
    let cage = cage
        .host_env(
            "NODE_EXTRA_CA_CERTS",
            &home.join("corp/ca.pem").display().to_string(),
        )
        .host_env(
            "SSL_CERT_FILE",
            &home.join(".ssh/ca.pem").display().to_string(),
        );
    let out = cage.sh(
        "cat \"$NODE_EXTRA_CA_CERTS\"; echo \"ssl=${SSL_CERT_FILE-unset}\"; \
         cat ~/.ssh/ca.pem; echo x >> \"$NODE_EXTRA_CA_CERTS\" && echo appended",
    );
    assert!(out.stdout.contains("BEGIN CERTIFICATE"), "{out}");
    assert!(out.stdout.contains("ssl=unset"), "{out}");
    assert!(!out.stdout.contains("SECRET-IN-SSH"), "{out}");
    assert!(!out.stdout.contains("appended"), "{out}");
}

/// `cage doctor`, `--version` and `--help` start no session.
#[test]
fn doctor_version_and_help_leave_no_session() {
    require_userns!();
    let cage = Cage::new();
    for args in [&["doctor"][..], &["--version"], &["--help"]] {
        let _ = cage.cli(args);
        assert!(!has_sessions(&cage), "cage {args:?} left a session");
    }
}

fn has_sessions(cage: &Cage) -> bool {
    std::fs::read_dir(cage.sessions_dir()).is_ok_and(|mut d| d.next().is_some())
}

fn session_count(cage: &Cage) -> usize {
    std::fs::read_dir(cage.sessions_dir()).map_or(0, |d| d.count())
}

/// Sessions are pruned after each run to the newest N of the workspace;
/// `cage sessions --prune` never removes an overlay session whose changes
/// are not applied.
#[test]
fn sessions_are_pruned_but_unapplied_work_is_kept() {
    require_userns!();
    let cage = Cage::new().host_env("CAGE_KEEP_SESSIONS", "2");
    let overlay = cage.cli([
        "--workspace",
        "overlay",
        "--",
        "sh",
        "-c",
        "echo new > file",
    ]);
    assert_eq!(overlay.code, 0, "{overlay}");
    for _ in 0..3 {
        let out = cage.run(["true"]);
        assert_eq!(out.code, 0, "{out}");
    }
    // The two newest, and the overlay session with its change.
    assert_eq!(session_count(&cage), 3, "{:?}", cage.sessions_dir());
    let out = cage.cli(["sessions", "--prune", "--keep", "0"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("pruned 2 session(s)"), "{out}");
    assert_eq!(session_count(&cage), 1);
    let diff = cage.cli(["diff", "--stat"]);
    assert!(diff.stdout.contains("file"), "{diff}");
}

/// Layer: view. A command inside the workspace is the repository's: a link
/// it commits to a file elsewhere in the home, or an absolute `#!` path
/// there, grants nothing.
#[test]
fn a_repository_link_grants_nothing_outside_the_workspace() {
    require_userns!();
    let cage = Cage::new()
        .home_file("notes/tool", "#!/bin/sh\necho SECRET-TOOL-RAN\n")
        .workspace_file_mode("run", "#!/bin/sh\necho run\n", 0o755);
    let home = cage.home().to_path_buf();
    lay_out(
        &cage,
        "chmod 755 \"$H/notes/tool\"; ln -s \"$H/notes/tool\" \"$H/proj/tool\"
         printf '#!%s\\n' \"$H/notes/tool\" > \"$H/proj/by-shebang\"; chmod 755 \"$H/proj/by-shebang\"",
    );
    let out = cage.run(["./tool"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("SECRET-TOOL-RAN"), "{out}");
    let out = cage.run(["./by-shebang"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("SECRET-TOOL-RAN"), "{out}");
    // Control: the same file, named by the user on the PATH, is granted.
    let cage = cage.host_env("PATH", &format!("{}/notes:{SYSTEM_PATH}", home.display()));
    let out = cage.run(["tool"]);
    assert!(out.stdout.contains("SECRET-TOOL-RAN"), "{out}");
}
