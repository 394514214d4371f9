//! The real agent CLIs, caged with their built-in profiles (issue 6):
//! Claude Code, Codex and Gemini CLI from npm, aider from PyPI, installed
//! at pinned versions under /opt/cage-agents by `.ci/setup`. No real
//! service is contacted: Claude Code's round trip talks to a stand-in for
//! the Messages API on the host's loopback (tests/support/anthropic_stub.py),
//! reached through the proxy's forward of an explicitly allowed port.

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
        Self::start_with(dir, command, None)
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
        (Self::start_with(dir, command, Some((&cert, &key))), ca)
    }

    fn start_with(dir: &Path, command: &str, tls: Option<(&Path, &Path)>) -> Stub {
        let port_file = dir.join("stub.port");
        let log = dir.join("stub.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/anthropic_stub.py");
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
    require_userns!();
    if !agents_installed() {
        return;
    }
    let probe = "echo WS:$(cat marker.txt); cat ~/.ssh/id_ed25519 2>&1; \
                 echo ENV:${AWS_SECRET_ACCESS_KEY:-none}; echo PID:$$";
    let cage = Cage::new()
        .workspace_file("marker.txt", "MARKER-IN-WORKSPACE\n")
        .home_file(".ssh/id_ed25519", "SECRET-SSH-KEY\n");
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
