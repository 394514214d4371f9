//! The real agent CLIs, caged with their built-in profiles (issue 6):
//! Claude Code, Codex and Gemini CLI from npm, aider from PyPI, installed
//! at pinned versions under /opt/cage-agents by `.ci/setup`. No real
//! service is contacted: Claude Code's round trip talks to a stand-in for
//! the Messages API on the host's loopback (tests/support/anthropic_stub.py),
//! reached through the proxy's forward of an explicitly allowed port;
//! Codex's `exec` talks to a stand-in for the Responses API
//! (tests/support/responses_stub.py) the same way.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::harness::Cage;

const PREFIX: &str = "/opt/cage-agents";

/// The agents, each with its profile's name, its binary, the text its
/// `--version` prints, and the state directory its profile makes writable.
const AGENTS: &[(&str, &str, &str, &str)] = &[
    ("claude", "node_modules/.bin/claude", "2.1.330", ".claude"),
    ("codex", "node_modules/.bin/codex", "0.169.0", ".codex"),
    ("gemini", "node_modules/.bin/gemini", "0.61.0", ".gemini"),
    ("aider", "aider/bin/aider", "0.86.2", ".aider"),
];

/// The agents are installed: go on. Missing: in CI a failure (the setup
/// script installs them), elsewhere a loud skip that says how to install.
fn agents_installed() -> bool {
    if Path::new(PREFIX).join(".installed").exists() {
        return true;
    }
    let why = format!("the agent CLIs are not installed under {PREFIX}: run .ci/setup as root");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    crate::harness::skip(&why);
    false
}

fn bin(rel: &str) -> String {
    Path::new(PREFIX).join(rel).display().to_string()
}

/// Layer: all of them, for real programs. Each agent starts under its own
/// profile (proxy network, its state directory, its env allowlist) and
/// answers --version and --help.
#[test]
fn every_agent_answers_version_and_help_under_its_profile() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    for (agent, rel, version, _) in AGENTS {
        let cage = Cage::new().args(["-p", agent]);
        let out = cage.run([bin(rel), "--version".to_string()]);
        assert_eq!(out.code, 0, "{agent} --version\n{out}");
        assert!(out.stdout.contains(version), "{agent} --version\n{out}");
        let out = cage.run([bin(rel), "--help".to_string()]);
        assert_eq!(out.code, 0, "{agent} --help\n{out}");
        assert!(
            out.stdout.len() > 200,
            "{agent} --help printed little\n{out}"
        );
    }
}

/// Layer: view. Each profile writes its agent's login file through to the
/// host (its state directory is otherwise private to the session, see
/// `state`) while ~/.ssh and the cloud credentials stay invisible.
#[test]
fn agent_state_is_writable_and_secrets_stay_hidden() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let kept = [
        ".credentials.json",
        "auth.json",
        "oauth_creds.json",
        "analytics.json",
    ];
    for ((agent, _, _, state), kept) in AGENTS.iter().zip(kept) {
        let cage = Cage::new()
            .home_file(&format!("{state}/keep"), "state\n")
            .home_file(".ssh/id_ed25519", "SECRET-SSH-KEY\n")
            .home_file(".aws/credentials", "SECRET-AWS-KEY\n")
            .args(["-p", agent]);
        let out = cage.sh(&format!(
            "echo written > ~/{state}/{kept} && echo wrote; \
             cat ~/.ssh/id_ed25519 ~/.aws/credentials; ls -a ~"
        ));
        assert!(out.stdout.contains("wrote"), "{agent}\n{out}");
        assert_eq!(
            std::fs::read_to_string(cage.home().join(state).join(kept))
                .ok()
                .as_deref(),
            Some("written\n"),
            "{agent}: the login file does not write through to the host\n{out}"
        );
        out.assert_absent("SECRET-SSH-KEY")
            .assert_absent("SECRET-AWS-KEY");
        assert!(
            !out.stdout.contains(".ssh"),
            "{agent}: ~/.ssh is listed\n{out}"
        );
    }
}

/// The stand-in API, stopped when dropped.
struct Stub {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Stub {
    fn start(dir: &Path, command: &str) -> Stub {
        Self::start_with(dir, command, "anthropic_stub.py", None)
    }

    /// `script` in tests/support: anthropic_stub.py (the Messages API) or
    /// responses_stub.py (OpenAI's Responses API, as Codex speaks it).
    fn start_script(dir: &Path, command: &str, script: &str) -> Stub {
        Self::start_with(dir, command, script, None)
    }

    /// Over HTTPS with a leaf from a test CA made now; returns the stub
    /// and the CA's PEM file (readable by the test user).
    fn start_tls(dir: &Path, command: &str) -> (Stub, PathBuf) {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("writing a test certificate");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .expect("chmod 644");
            path
        };
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = params.self_signed(&ca_key).expect("the test CA");
        let issuer = rcgen::Issuer::new(params, ca_key);
        let key = rcgen::KeyPair::generate().expect("a leaf key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("leaf params")
            .signed_by(&key, &issuer)
            .expect("the leaf");
        let ca = write("test-ca.pem", &ca_cert.pem());
        let cert = write("stub-cert.pem", &leaf.pem());
        let key = write("stub-key.pem", &key.serialize_pem());
        (
            Self::start_with(dir, command, "anthropic_stub.py", Some((&cert, &key))),
            ca,
        )
    }

    fn start_with(dir: &Path, command: &str, script: &str, tls: Option<(&Path, &Path)>) -> Stub {
        let port_file = dir.join("stub.port");
        let log = dir.join("stub.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support")
            .join(script);
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(&port_file).arg(&log).arg(command);
        if let Some((cert, key)) = tls {
            cmd.env("STUB_TLS_CERT", cert).env("STUB_TLS_KEY", key);
        }
        let child = cmd.spawn().expect("starting the stand-in API");
        let until = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().expect("the stub's port");
            }
            assert!(Instant::now() < until, "the stand-in API did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Stub { child, port, log }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Layers: all of them, with a real agent doing real work. Claude Code
/// completes `claude -p` against the stand-in: the model's one tool call
/// runs a shell command inside the cage, whose output (what it could and
/// could not see) travels back to the stand-in and into the final answer.
#[test]
fn claude_completes_a_round_trip_with_a_tool_call_inside_the_cage() {
    claude_round_trip(None);
}

/// The same round trip when the user's ~/.claude/settings.json turns on
/// Claude Code's own bubblewrap sandbox and refuses to run without it:
/// inside cage it cannot start, so the session's copy of settings.json
/// (the claude profile's `settings`) switches it off; the host's file is
/// unchanged.
#[test]
fn claude_runs_with_its_own_sandbox_configured_on_the_host() {
    let settings = "{\"sandbox\": {\"enabled\": true, \"failIfUnavailable\": true}}\n";
    claude_round_trip(Some(settings));
}

fn claude_round_trip(settings: Option<&str>) {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let probe = "echo WS:$(cat marker.txt); cat ~/.ssh/id_ed25519 2>&1; \
                 echo ENV:${AWS_SECRET_ACCESS_KEY:-none}; echo PID:$$";
    let mut cage = Cage::new()
        .workspace_file("marker.txt", "MARKER-IN-WORKSPACE\n")
        .home_file(".ssh/id_ed25519", "SECRET-SSH-KEY\n");
    if let Some(settings) = settings {
        cage = cage.home_file(".claude/settings.json", settings);
    }
    let stub = Stub::start(cage.root(), probe);
    let port = stub.port;
    let cage = cage
        .host_env("ANTHROPIC_API_KEY", "sk-ant-test-not-real")
        .host_env("ANTHROPIC_BASE_URL", &format!("http://127.0.0.1:{port}"))
        .host_env("AWS_SECRET_ACCESS_KEY", "SECRET-AWS-ENV")
        .args(["-p", "claude", "--allow-host", &format!("127.0.0.1:{port}")]);
    let out = cage.run([
        bin("node_modules/.bin/claude"),
        "-p".to_string(),
        "run the probe".to_string(),
        "--allowedTools".to_string(),
        "Bash".to_string(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    // The final answer quotes what the tool saw inside the cage.
    assert!(out.stdout.contains("STUB-FINAL"), "{out}");
    assert!(
        out.stdout.contains("WS:MARKER-IN-WORKSPACE"),
        "the workspace is visible\n{out}"
    );
    assert!(out.stdout.contains("No such file"), "~/.ssh is not\n{out}");
    assert!(
        out.stdout.contains("ENV:none"),
        "secret variables are not passed\n{out}"
    );
    out.assert_absent("SECRET-SSH-KEY")
        .assert_absent("SECRET-AWS-ENV");
    // The stand-in saw the tool call and its result, and nothing secret.
    let requests = stub.requests();
    assert!(requests.len() >= 2, "{requests:#?}");
    let all = serde_json::to_string(&requests).unwrap();
    assert!(all.contains("tool_result") && all.contains("MARKER-IN-WORKSPACE"));
    assert!(!all.contains("SECRET-SSH-KEY") && !all.contains("SECRET-AWS-ENV"));
    if let Some(settings) = settings {
        assert_eq!(
            std::fs::read_to_string(cage.home().join(".claude/settings.json")).unwrap(),
            settings,
            "the host's settings.json changed"
        );
    }
}

/// Layer: proxy (secrets). The API key never enters the cage: Claude Code
/// completes `claude -p` against the stand-in served over HTTPS with a
/// placeholder key inside, the stand-in receives the real key on every
/// request, and the session's log records the swaps.
#[test]
fn claude_round_trip_over_tls_with_the_key_held_back() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    const REAL: &str = "sk-ant-api03-REALkeyHeldBack0123456789abcdefXYZ";
    let probe = "echo KEY:$ANTHROPIC_API_KEY; echo FOUND:$(cat /proc/[0-9]*/environ \
                 2>/dev/null | tr '\\0' '\\n' | grep -c REALkeyHeld)";
    let cage = Cage::new();
    let (stub, ca) = Stub::start_tls(cage.root(), probe);
    let port = stub.port;
    let cage = cage
        .host_env("ANTHROPIC_API_KEY", REAL)
        .host_env("ANTHROPIC_BASE_URL", &format!("https://127.0.0.1:{port}"))
        .host_env("SSL_CERT_FILE", &ca.display().to_string())
        .args(["--allow-host", &format!("127.0.0.1:{port}")]);
    let out = cage.run([
        bin("node_modules/.bin/claude"),
        "-p".to_string(),
        "run the probe".to_string(),
        "--allowedTools".to_string(),
        "Bash".to_string(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("STUB-FINAL"), "{out}");
    out.assert_absent(REAL);
    // The tool saw a placeholder of the key's shape, and no process held
    // the real one.
    let requests = stub.requests();
    let all = serde_json::to_string(&requests).unwrap();
    let seen: String = all
        .split("KEY:sk-")
        .nth(1)
        .map(|s| format!("sk-{}", s.chars().take(REAL.len() - 3).collect::<String>()))
        .unwrap_or_default();
    assert_eq!(seen.len(), REAL.len(), "no KEY: line in the tool result");
    assert!(seen.starts_with("sk-ant-") && seen != REAL, "{seen}");
    assert!(
        all.contains("FOUND:0"),
        "a process inside held the real key"
    );
    // The stand-in got the real key, on every request.
    assert!(requests.len() >= 2, "{requests:#?}");
    for r in &requests {
        assert_eq!(r["key"], REAL, "{}", r["path"]);
    }
    // Recorded: one swap per request, never the value.
    let log = cage.cli(["log"]);
    assert!(log.stdout.contains("secret anthropic swapped in"), "{log}");
    log.assert_absent(REAL);
}

/// Layer: view. Under the claude profile ~/.claude.json (whose mcpServers
/// Claude Code runs, outside the cage too) is a private copy: the agent
/// reads the host's content and may rewrite it, even by rename, but the
/// host file never changes.
#[test]
fn claude_json_is_a_private_copy() {
    require_userns!();
    let cage = Cage::new()
        .home_file(".claude/keep", "x\n")
        .home_file(".claude.json", "{\"marker\": \"from-the-host\"}\n")
        .args(["-p", "claude"]);
    let out = cage.sh("cat ~/.claude.json; \
         echo '{\"mcpServers\": {\"x\": {\"command\": \"evil\"}}}' > ~/.claude.json.tmp && \
         mv ~/.claude.json.tmp ~/.claude.json && echo renamed; cat ~/.claude.json");
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("from-the-host"),
        "the host's content is visible\n{out}"
    );
    assert!(
        out.stdout.contains("renamed") && out.stdout.contains("evil"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(cage.home().join(".claude.json")).unwrap(),
        "{\"marker\": \"from-the-host\"}\n",
        "the host's ~/.claude.json changed\n{out}"
    );
}

/// Layer: view (overlay). ~/.claude/settings.json holds hooks Claude Code
/// runs outside the cage: written by the agent, existing or not, it stays
/// in the session.
#[test]
fn claude_settings_written_by_the_agent_stay_in_the_session() {
    require_userns!();
    for existing in [true, false] {
        let mut cage = Cage::new().home_file(".claude/keep", "x\n");
        if existing {
            cage = cage.home_file(".claude/settings.json", "{}\n");
        }
        let cage = cage.args(["-p", "claude"]);
        let out = cage.sh("echo '{\"hooks\": {}}' > ~/.claude/settings.json && echo made");
        assert!(out.stdout.contains("made"), "{out}");
        let on_host = std::fs::read_to_string(cage.home().join(".claude/settings.json")).ok();
        assert_eq!(
            on_host.as_deref(),
            existing.then_some("{}\n"),
            "the agent's settings reached the host\n{out}"
        );
    }
}

/// `codex exec` against the Responses stand-in, under cage with `profile`
/// (`None`: the profile the command chooses), plus `extra` arguments to
/// codex. The stand-in's one tool call runs `probe`.
fn codex_exec(
    profile: Option<&str>,
    extra: &[&str],
    probe: &str,
) -> (crate::harness::Output, Cage) {
    let cage = Cage::new()
        .workspace_file("marker.txt", "MARKER-IN-WORKSPACE\n")
        .home_file(".ssh/id_ed25519", "SECRET-SSH-KEY\n")
        // The user's own choice, which cannot work inside cage.
        .home_file(".codex/config.toml", "sandbox_mode = \"workspace-write\"\n");
    let stub = Stub::start_script(cage.root(), probe, "responses_stub.py");
    let port = stub.port;
    let mut args = vec!["--allow-host".to_string(), format!("127.0.0.1:{port}")];
    if let Some(p) = profile {
        args.extend(["-p".to_string(), p.to_string()]);
    }
    let cage = cage
        .host_env("OPENAI_API_KEY", "sk-test-not-real")
        .host_env("AWS_SECRET_ACCESS_KEY", "SECRET-AWS-ENV")
        .args(args);
    let provider = format!(
        "model_providers.stub={{name=\"stub\",base_url=\"http://127.0.0.1:{port}/v1\",\
         env_key=\"OPENAI_API_KEY\",wire_api=\"responses\"}}"
    );
    let mut argv = vec![
        bin("node_modules/.bin/codex"),
        "exec".to_string(),
        "--skip-git-repo-check".to_string(),
        // A model Codex has no metadata for gets plain function tools
        // (exec_command), which the stand-in answers.
        "-m".to_string(),
        "stub-model".to_string(),
        "-c".to_string(),
        "model_provider=stub".to_string(),
        "-c".to_string(),
        provider,
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv.push("run the probe".to_string());
    let out = cage.run(argv);
    let requests = stub.requests();
    let all = serde_json::to_string(&requests).unwrap();
    assert!(
        !all.contains("SECRET-SSH-KEY") && !all.contains("SECRET-AWS-ENV"),
        "a secret reached the stand-in"
    );
    drop(stub);
    (out, cage)
}

/// Layers: all of them, with Codex doing real work. `codex exec` under the
/// codex profile, named with -p and chosen by the command's name: the
/// model's shell tool call runs inside the cage (it sees the workspace,
/// not ~/.ssh) and its output comes back, although the user's config asks
/// for Codex's own sandbox, which cannot start inside cage: the session's
/// copy of ~/.codex/config.toml switches it off, the host's is unchanged.
#[test]
fn codex_exec_runs_a_shell_command_inside_the_cage() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let probe = "echo WS:$(cat marker.txt); cat ~/.ssh/id_ed25519 2>&1; \
                 echo ENV:${AWS_SECRET_ACCESS_KEY:-none}";
    for profile in [Some("codex"), None] {
        let (out, cage) = codex_exec(profile, &[], probe);
        assert_eq!(out.code, 0, "{profile:?}\n{out}");
        assert!(out.stdout.contains("STUB-FINAL"), "{profile:?}\n{out}");
        assert!(
            out.stdout.contains("WS:MARKER-IN-WORKSPACE"),
            "{profile:?}: the command did not run in the workspace\n{out}"
        );
        assert!(out.stdout.contains("No such file"), "{profile:?}\n{out}");
        assert!(out.stdout.contains("ENV:none"), "{profile:?}\n{out}");
        out.assert_absent("SECRET-SSH-KEY")
            .assert_absent("SECRET-AWS-ENV")
            .assert_absent("bwrap")
            // Its analytics are off too: nothing for the proxy to refuse.
            .assert_absent("ab.chatgpt.com");
        assert_eq!(
            std::fs::read_to_string(cage.home().join(".codex/config.toml")).unwrap(),
            "sandbox_mode = \"workspace-write\"\n",
            "the host's config.toml changed"
        );
    }
}

/// The control: asked explicitly for its own sandbox (`-s read-only`, which
/// the profile's setting does not override), Codex's bubblewrap cannot
/// start inside cage and the same shell command does not run. So it is the
/// profile's setting that makes the test above pass.
#[test]
fn codex_own_sandbox_cannot_start_inside_the_cage() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let (out, _cage) = codex_exec(Some("codex"), &["-s", "read-only"], "echo RAN-$((6*7))");
    assert!(out.stdout.contains("STUB-FINAL"), "{out}");
    assert!(out.stdout.contains("bwrap"), "{out}");
    assert!(!out.stdout.contains("RAN-42"), "{out}");
}

/// Gemini CLI's own sandbox (docker or podman, here from its settings
/// file) cannot start inside cage; the gemini profile's GEMINI_SANDBOX=false
/// switches it off, so the CLI goes on to its next step (its folder-trust
/// check: no model is contacted). The control: the variable set otherwise
/// by the user, and the CLI tries to start its container.
#[test]
fn gemini_own_sandbox_is_switched_off_by_its_profile() {
    require_userns!();
    if !agents_installed() {
        return;
    }
    let cage = Cage::new()
        .home_file(
            ".gemini/settings.json",
            "{\"tools\": {\"sandbox\": true}}\n",
        )
        .host_env("GEMINI_API_KEY", "not-a-real-key");
    let gemini = bin("node_modules/.bin/gemini");
    let out = cage.cli(["-p", "gemini", "--", &gemini, "-p", "hi"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("trusted directory"), "{out}");
    out.assert_absent("FatalSandboxError");
    let out = cage.cli([
        "-p",
        "gemini",
        "--env",
        "GEMINI_SANDBOX=true",
        "--",
        &gemini,
        "-p",
        "hi",
    ]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("FatalSandboxError"), "{out}");
}

/// Layers: view (a masked copy in the state directory's session layer)
/// and proxy (secrets). Under the claude profile a claude.ai login file is
/// shown with placeholders for its tokens, the rest as it is; the real
/// tokens are nowhere inside (the file, the environment, /proc); the proxy
/// swaps the real access token in for the API's host; the refresh token's
/// placeholder goes nowhere (the proxy refuses it); and the host's file is
/// byte-for-byte the same after the agent rewrote its copy.
#[test]
fn claude_login_file_is_masked_and_its_token_swapped_in() {
    require_userns!();
    const ACCESS: &str = "sk-ant-oat01-REALaccessTok0123456789abcdefghiKLMNOP";
    const REFRESH: &str = "sk-ant-ort01-REALrefreshTok0123456789abcdefghQRSTU";
    let file = format!(
        "{{\"claudeAiOauth\":{{\"accessToken\":\"{ACCESS}\",\"refreshToken\":\"{REFRESH}\",\
         \"expiresAt\":4102444800000,\"scopes\":[\"user:inference\"]}}}}"
    );
    let cage = Cage::new();
    let (stub, ca) = Stub::start_tls(cage.root(), "true");
    let port = stub.port;
    let cage = cage
        .home_file(".claude/.credentials.json", &file)
        .host_env("ANTHROPIC_BASE_URL", &format!("https://127.0.0.1:{port}"))
        .host_env("SSL_CERT_FILE", &ca.display().to_string())
        .args(["-p", "claude", "--allow-host", &format!("127.0.0.1:{port}")]);
    let url = format!("https://127.0.0.1:{port}/v1/messages/count_tokens");
    let out = cage.sh(&format!(
        "f=~/.claude/.credentials.json; cat $f; echo; \
         get() {{ python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"claudeAiOauth\"][sys.argv[2]])' $f $1; }}; \
         for t in accessToken refreshToken; do \
           curl -sS -o /dev/null -w \"STATUS-$t:%{{http_code}}\\n\" -H \"Authorization: Bearer $(get $t)\" --data '{{}}' {url}; \
         done; \
         echo FOUND:$( (env; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; cat $f) | grep -c -e REALaccess[T]ok -e REALrefresh[T]ok); \
         echo '{{\"claudeAiOauth\":{{\"accessToken\":\"rewritten\"}}}}' > $f.tmp && mv $f.tmp $f && echo rewrote"
    ));
    out.assert_absent(ACCESS).assert_absent(REFRESH);
    assert!(out.stdout.contains("rewrote"), "{out}");
    assert!(
        out.stdout.contains("FOUND:0"),
        "a real token is inside\n{out}"
    );
    // The copy: placeholders of the tokens' shape, the rest as it is.
    let shown = out.stdout.lines().next().unwrap_or_default();
    let masked = file.replace(&ACCESS[13..], "").replace(&REFRESH[13..], "");
    let stripped: String = {
        let doc: serde_json::Value = serde_json::from_str(shown).expect("the copy is JSON");
        let a = doc["claudeAiOauth"]["accessToken"]
            .as_str()
            .unwrap_or_default();
        let r = doc["claudeAiOauth"]["refreshToken"]
            .as_str()
            .unwrap_or_default();
        assert!(
            a.starts_with("sk-ant-oat01-") && a.len() == ACCESS.len(),
            "{a}"
        );
        assert!(
            r.starts_with("sk-ant-ort01-") && r.len() == REFRESH.len(),
            "{r}"
        );
        shown.replace(&a[13..], "").replace(&r[13..], "")
    };
    assert_eq!(stripped, masked, "the rest of the file changed\n{out}");
    // The access token was swapped in; the refresh token's placeholder
    // was refused by the proxy and never reached the stand-in.
    assert!(out.stdout.contains("STATUS-accessToken:200"), "{out}");
    assert!(!out.stdout.contains("STATUS-refreshToken:200"), "{out}");
    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0]["key"], format!("Bearer {ACCESS}"));
    // The host's login is untouched, though the agent rewrote its copy.
    assert_eq!(
        std::fs::read_to_string(cage.home().join(".claude/.credentials.json")).unwrap(),
        file,
        "the host's login file changed\n{out}"
    );
}
