//! The command-line interface as users meet it: help, dry runs, explain,
//! policy checking and trust. Nothing here creates namespaces, so these run
//! as whoever runs the tests; each test has its own HOME and project.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    root: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let root = std::env::temp_dir().join(format!("cage-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("home/.ssh")).unwrap();
        std::fs::write(root.join("home/.ssh/id_ed25519"), "PRIVATE KEY").unwrap();
        std::fs::create_dir_all(root.join("home/proj/.git/hooks")).unwrap();
        Env {
            root: root.canonicalize().unwrap(),
        }
    }
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    fn proj(&self) -> PathBuf {
        self.root.join("home/proj")
    }
    fn cage(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cage"))
            .args(args)
            .current_dir(self.proj())
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_and_version_exit_zero() {
    let e = Env::new("help");
    for args in [
        &["--help"][..],
        &["--version"],
        &["policy", "--help"],
        &["man"],
        &["completions", "bash"],
    ] {
        let o = e.cage(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(!o.stdout.is_empty());
    }
}

#[test]
fn usage_errors_exit_125() {
    let e = Env::new("usage");
    let o = e.cage(&["--net", "sideways", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    let o = e.cage(&["--dry-run"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("no command given"), "{}", text(&o));
}

#[test]
fn dry_run_plan_does_not_show_ssh() {
    let e = Env::new("dry");
    let o = e.cage(&["--dry-run", "--", "sh"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("rw   {}", e.proj().display())),
        "{out}"
    );
    assert!(!out.contains(".ssh"), "the plan mentions .ssh:\n{out}");
    let o = e.cage(&["--dry-run", "--json", "--", "sh"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        plan["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m.to_string().contains(".ssh"))
    );
}

/// `--dry-run --json` says, like the text's first line, which profile
/// applies and that the command chose it; `-p` and `--no-auto-profile`
/// say otherwise.
#[test]
fn dry_run_json_says_the_profile_was_chosen_for_the_command() {
    let e = Env::new("dry-json");
    let sources = |args: &[&str]| {
        let o = e.cage(args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["mounts"].is_array(), "the plan is still there: {v}");
        v["sources"].as_array().unwrap().clone()
    };
    let chosen = sources(&["--dry-run", "--json", "--", "claude"]);
    let claude = chosen
        .iter()
        .find(|s| s["name"] == "builtin:claude")
        .unwrap_or_else(|| panic!("no claude profile in {chosen:?}"));
    assert_eq!(claude["chosen_for"], "claude", "{claude}");
    let named = sources(&["--dry-run", "--json", "-p", "claude", "--", "claude"]);
    let claude = named
        .iter()
        .find(|s| s["name"] == "builtin:claude")
        .unwrap();
    assert!(claude.get("chosen_for").is_none(), "{claude}");
    let off = sources(&["--no-auto-profile", "--dry-run", "--json", "--", "claude"]);
    assert!(off.iter().all(|s| s["name"] != "builtin:claude"), "{off:?}");
}

/// `[process] allow_nested_userns` shows in the dry run with its rule,
/// and the plan's deny list loses exactly the calls it gives back.
#[test]
fn dry_run_shows_nested_user_namespaces_allowed() {
    let e = Env::new("dry-nested");
    let o = e.cage(&["--dry-run", "--", "sh"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("nested user namespaces ALLOWED"), "{out}");
    std::fs::create_dir_all(e.home().join(".config/cage")).unwrap();
    std::fs::write(
        e.home().join(".config/cage/config.toml"),
        "[process]\nallow_nested_userns = true\n",
    )
    .unwrap();
    let o = e.cage(&["--dry-run", "--", "sh"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("nested user namespaces ALLOWED"), "{out}");
    assert!(out.contains("config.toml:2"), "the rule is named\n{out}");
    let o = e.cage(&["--dry-run", "--json", "--", "sh"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let denied: Vec<&str> = v["seccomp"]["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for call in ["unshare", "mount", "umount2", "pivot_root", "chroot"] {
        assert!(!denied.contains(&call), "{call} still denied: {denied:?}");
    }
    for call in ["setns", "clone3", "fsopen", "open_tree", "keyctl", "ptrace"] {
        assert!(
            denied.contains(&call),
            "{call} no longer denied: {denied:?}"
        );
    }
    assert!(
        v["seccomp"]["nested_userns"].is_object(),
        "{}",
        v["seccomp"]
    );
}

#[test]
fn explain_says_why_ssh_is_hidden() {
    let e = Env::new("explain");
    let key = e.home().join(".ssh/id_ed25519");
    let o = e.cage(&["explain", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("denied") && text(&o).contains("hide list (builtin:base:"),
        "{}",
        text(&o)
    );
    // Even when the whole home is granted, the hide rule wins.
    let o = e.cage(&[
        "explain",
        "--ro",
        e.home().to_str().unwrap(),
        key.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("hidden"), "{}", text(&o));
    std::fs::write(e.proj().join("README.md"), "hi").unwrap();
    let o = e.cage(&["explain", "README.md"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn explain_hosts_names_the_rule() {
    let e = Env::new("hosts");
    let o = e.cage(&["explain", "-p", "claude", "api.anthropic.com:443"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("builtin:claude:"), "{}", text(&o));
    assert!(text(&o).contains("refuses loopback"), "{}", text(&o));
    let o = e.cage(&["explain", "-p", "claude", "evil.example:443"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = e.cage(&["explain", "api.anthropic.com"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "network none denies: {}",
        text(&o)
    );
}

#[test]
fn policy_check_names_line_and_valid_keys() {
    let e = Env::new("check");
    let bad = e.proj().join("bad.toml");
    std::fs::write(&bad, "[network]\nmdoe = \"none\"\n").unwrap();
    let o = e.cage(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains(&format!("{}:2:1", bad.display())), "{t}");
    assert!(t.contains("mode, allow, deny"), "{t}");
    assert!(!t.contains("panicked") && !t.contains("backtrace"), "{t}");
}

#[test]
fn untrusted_project_widening_is_refused_until_trusted() {
    let e = Env::new("trust");
    let file = e.proj().join(".cage.toml");
    std::fs::write(&file, "[filesystem]\nread = [\"~/.ssh\"]\n").unwrap();
    let o = e.cage(&["--dry-run", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        text(&o).contains(".cage.toml:2") && text(&o).contains("cage trust"),
        "{}",
        text(&o)
    );
    assert_eq!(e.cage(&["trust", "--yes"]).status.code(), Some(0));
    let o = e.cage(&["--dry-run", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Trusted or not, the hide list still wins over the grant.
    assert!(text(&o).contains("hidden by builtin:base"), "{}", text(&o));
    // An edit makes it untrusted again.
    std::fs::write(&file, "[filesystem]\nread = [\"~/.ssh\", \"~\"]\n").unwrap();
    assert_eq!(
        e.cage(&["--dry-run", "--", "true"]).status.code(),
        Some(125)
    );
    assert_eq!(e.cage(&["untrust"]).status.code(), Some(0));
    assert!(
        !Path::new(&e.home().join(".config/cage/trusted.json")).exists() || {
            let t = std::fs::read_to_string(e.home().join(".config/cage/trusted.json")).unwrap();
            !t.contains(".cage.toml")
        }
    );
}

#[test]
fn narrowing_project_policy_needs_no_trust() {
    let e = Env::new("narrow");
    std::fs::write(
        e.proj().join(".cage.toml"),
        "[filesystem]\nhide = [\"secrets\"]\n[workspace]\nmode = \"readonly\"\n",
    )
    .unwrap();
    let o = e.cage(&["--dry-run", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Readonly"), "{}", text(&o));
}

#[test]
fn home_as_workspace_is_refused() {
    let e = Env::new("homews");
    let o = Command::new(env!("CARGO_BIN_EXE_cage"))
        .args(["--dry-run", "--", "true"])
        .current_dir(e.home())
        .env_clear()
        .env("HOME", e.home())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("your home directory"), "{}", text(&o));
}

#[test]
fn policy_init_writes_a_file_that_checks() {
    let e = Env::new("init");
    std::fs::write(e.proj().join("package.json"), "{}").unwrap();
    std::fs::write(e.proj().join("go.mod"), "module x\n").unwrap();
    assert_eq!(
        e.cage(&["policy", "init", "--profile", "claude"])
            .status
            .code(),
        Some(0)
    );
    let written = std::fs::read_to_string(e.proj().join(".cage.toml")).unwrap();
    assert!(
        written.contains(r#"extends = ["claude", "node", "go"]"#),
        "{written}"
    );
    let o = e.cage(&["policy", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        e.cage(&["policy", "init"]).status.code(),
        Some(125),
        "refuses to overwrite"
    );
}

#[test]
fn explain_and_dry_run_say_where_each_secret_may_go_and_never_show_it() {
    let e = Env::new("secrets");
    let with_key = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cage"))
            .args(args)
            .current_dir(e.proj())
            .env_clear()
            .env("HOME", e.home())
            .env("PATH", "/usr/bin:/bin")
            .env("ANTHROPIC_API_KEY", "sk-ant-api03-NOTSHOWNanywhere0123")
            .output()
            .unwrap()
    };
    let o = with_key(&["explain", "-p", "claude", "api.anthropic.com"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("secret anthropic: swapped in here over HTTPS"),
        "{t}"
    );
    let o = with_key(&["explain", "-p", "claude", "claude.ai"]);
    let t = text(&o);
    assert!(t.contains("secret anthropic: never sent here"), "{t}");
    assert!(t.contains("it goes only to api.anthropic.com"), "{t}");
    for json in [false, true] {
        let mut args = vec!["-p", "claude", "--dry-run"];
        if json {
            args.push("--json");
        }
        args.extend(["--", "true"]);
        let o = with_key(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{t}");
        assert!(!t.contains("NOTSHOWN"), "the value is printed: {t}");
        assert!(t.contains("<secret anthropic>"), "{t}");
    }
}
