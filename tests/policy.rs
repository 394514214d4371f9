//! Policy loading through the library API: precedence and merging, trust
//! of project files, error messages, and the built-in profiles.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use cage::host::{Host, env_from};
use cage::policy::{
    self, FlagRules, HostPattern, Layer, LoadRequest, NetMode, Policy, PolicyError, ProjectMode,
    Provenance, SecretSource, SourceKind, WorkspaceMode,
};

/// A home, a config dir and a git repository under a fresh temporary
/// directory, removed on drop. The working directory is `repo/sub`.
struct Fixture {
    root: PathBuf,
    host: Host,
}

impl Fixture {
    fn new() -> Fixture {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "cage-policy-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("repo/.git")).unwrap();
        fs::create_dir_all(root.join("repo/sub")).unwrap();
        fs::create_dir_all(root.join("home/.config/cage/profiles")).unwrap();
        let root = root.canonicalize().unwrap();
        let home = root.join("home");
        let host = Host {
            uid: 1000,
            gid: 1000,
            user: "me".into(),
            config_dir: home.join(".config/cage"),
            state_dir: home.join(".local/state/cage"),
            home,
            cwd: root.join("repo/sub"),
            repo_root: Some(root.join("repo")),
            env: env_from([("TERM", "xterm")]),
        };
        Fixture { root, host }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    fn user_config(&self, text: &str) -> PathBuf {
        self.write("home/.config/cage/config.toml", text)
    }

    fn user_profile(&self, name: &str, text: &str) -> PathBuf {
        self.write(&format!("home/.config/cage/profiles/{name}.toml"), text)
    }

    fn project(&self, text: &str) -> PathBuf {
        self.write("repo/.cage.toml", text)
    }

    fn load(&self, req: &LoadRequest) -> Result<Policy, PolicyError> {
        policy::load(req, &self.host)
    }

    fn load_default(&self) -> Result<Policy, PolicyError> {
        self.load(&LoadRequest::default())
    }

    fn err(&self, req: &LoadRequest) -> String {
        match self.load(req) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn file_line(path: &Path, line: usize) -> Provenance {
    Provenance::File {
        path: path.to_path_buf(),
        line,
    }
}

fn profiles(names: &[&str]) -> LoadRequest {
    LoadRequest {
        profiles: names.iter().map(|s| s.to_string()).collect(),
        ..LoadRequest::default()
    }
}

fn paths(list: &[cage::policy::Sourced<cage::policy::PathRule>]) -> Vec<PathBuf> {
    list.iter().map(|r| r.value.path.clone()).collect()
}

// ---------------------------------------------------------------- built-ins

#[test]
fn every_builtin_loads_alone_and_all_compose() {
    let f = Fixture::new();
    for name in policy::builtin_names() {
        let p = f
            .load(&profiles(&[name]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            p.sources
                .iter()
                .any(|s| s.name == format!("builtin:{name}")),
            "{name}"
        );
    }
    let all = policy::builtin_names();
    let p = f.load(&profiles(&all)).unwrap();
    // Each profile applied exactly once, base first.
    let names: Vec<_> = p.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[0], "builtin:base");
    for name in &all {
        let n = format!("builtin:{name}");
        assert_eq!(names.iter().filter(|s| **s == n).count(), 1, "{name}");
    }
    assert!(p.sources.iter().all(|s| s.kind == SourceKind::Builtin));
    assert!(
        p.sources
            .iter()
            .all(|s| s.sha256.as_ref().unwrap().len() == 64)
    );
}

#[test]
fn builtins_use_only_absolute_or_home_paths_and_say_what_they_are_for() {
    for name in policy::builtin_names() {
        let text = policy::builtin_source(name).unwrap();
        assert!(text.starts_with(&format!("# {name}: ")), "{name} header");
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('"') {
                let entry = line.split('"').nth(1).unwrap();
                let entry = entry.trim_start_matches('?');
                let is_path = entry.starts_with('/') || entry.starts_with('~');
                // A state directory's keep entry: a name, `dir/` for a directory.
                let is_other = !entry.trim_end_matches('/').contains('/');
                assert!(is_path || is_other, "{name}: {entry}");
            }
        }
    }
    assert_eq!(policy::builtin_source("nope"), None);
}

#[test]
fn base_hides_secrets_and_grants_no_network() {
    let f = Fixture::new();
    let p = f.load_default().unwrap();
    let home = &f.host.home;
    let hide = paths(&p.filesystem.hide);
    for secret in [
        ".ssh",
        ".gnupg",
        ".aws",
        ".azure",
        ".config/gcloud",
        ".kube",
        ".docker/config.json",
        ".netrc",
        ".npmrc",
        ".pypirc",
        ".git-credentials",
        ".config/gh",
        ".password-store",
        ".local/share/keyrings",
        ".mozilla",
        ".config/google-chrome",
        ".config/chromium",
        ".config/BraveSoftware",
        ".vault-token",
        ".terraform.d/credentials.tfrc.json",
        ".config/op",
        ".cargo/credentials.toml",
        ".cargo/credentials",
        ".config/cage",
    ] {
        assert!(hide.contains(&home.join(secret)), "{secret} not hidden");
    }
    assert!(p.filesystem.hide.iter().all(|r| !r.value.optional));
    assert_eq!(p.network.mode.as_ref().unwrap().value, NetMode::None);
    assert!(p.network.allow.is_empty());
    assert_eq!(paths(&p.filesystem.tmpfs), vec![PathBuf::from("/tmp")]);
    let read = &p.filesystem.read;
    for (path, optional) in [
        ("/usr", false),
        ("/etc", false),
        ("?/lib64", true),
        ("?/opt", true),
    ] {
        let want = PathBuf::from(path.trim_start_matches('?'));
        let rule = read.iter().find(|r| r.value.path == want).unwrap();
        assert_eq!(rule.value.optional, optional, "{path}");
    }
    let pass: Vec<_> = p.env.pass.iter().map(|s| s.value.as_str()).collect();
    for name in ["TERM", "LANG", "LC_*", "COLORTERM", "TZ"] {
        assert!(pass.contains(&name), "{name}");
    }
    let path_var = p.env.set.iter().find(|s| s.value.0 == "PATH").unwrap();
    assert!(path_var.value.1.contains("/usr/bin"));
    assert!(
        path_var
            .value
            .1
            .starts_with(&format!("{}/.local/bin:", home.display()))
    );
}

#[test]
fn builtin_rules_carry_their_profile_and_line() {
    let f = Fixture::new();
    let p = f.load_default().unwrap();
    let text = policy::builtin_source("base").unwrap();
    let line = text.lines().position(|l| l.contains("\"~/.ssh\"")).unwrap() + 1;
    let ssh = p
        .filesystem
        .hide
        .iter()
        .find(|r| r.value.path == f.host.home.join(".ssh"))
        .unwrap();
    assert_eq!(
        ssh.source,
        Provenance::Builtin {
            profile: "base".into(),
            line
        }
    );
}

#[test]
fn agent_profiles_grant_their_state_hosts_and_keys() {
    let f = Fixture::new();
    let home = &f.host.home;
    // (profile, writable state, API host, passed env, extended toolchain)
    let table = [
        (
            "claude",
            ".claude",
            "api.anthropic.com",
            "ANTHROPIC_*",
            "node",
        ),
        (
            "codex",
            ".codex",
            "api.openai.com",
            "OPENAI_API_KEY",
            "node",
        ),
        (
            "gemini",
            ".gemini",
            "generativelanguage.googleapis.com",
            "GEMINI_API_KEY",
            "node",
        ),
        (
            "aider",
            ".aider",
            "api.anthropic.com",
            "ANTHROPIC_API_KEY",
            "python",
        ),
    ];
    for (name, state, api, key, toolchain) in table {
        let p = f.load(&profiles(&[name])).unwrap();
        // The state directory by allowlist, never a plain write grant.
        assert!(
            p.filesystem
                .state
                .iter()
                .any(|s| s.value.dir == home.join(state) && !s.value.keep.is_empty()),
            "{name}"
        );
        assert!(
            !paths(&p.filesystem.write).contains(&home.join(state)),
            "{name}"
        );
        assert_eq!(
            p.network.mode.as_ref().unwrap().value,
            NetMode::Proxy,
            "{name}"
        );
        assert!(
            p.network.allow.iter().any(|a| a.value.matches(api, 443)),
            "{name}"
        );
        assert!(p.env.pass.iter().any(|s| s.value == key), "{name}");
        for extended in [toolchain, "git"] {
            let n = format!("builtin:{extended}");
            assert!(
                p.sources.iter().any(|s| s.name == n),
                "{name} extends {extended}"
            );
        }
        // Extends apply before the profile's own rules.
        let pos = |n: &str| p.sources.iter().position(|s| s.name == n).unwrap();
        assert!(pos(&format!("builtin:{toolchain}")) < pos(&format!("builtin:{name}")));
    }
    let p = f.load(&profiles(&["claude"])).unwrap();
    // ~/.claude.json names MCP server commands: a private copy, not a write.
    assert!(paths(&p.filesystem.copy).contains(&home.join(".claude.json")));
    assert!(!paths(&p.filesystem.write).contains(&home.join(".claude.json")));
    // Only what Claude Code keeps across sessions writes through: nothing
    // that runs or steers it outside the cage (settings, hooks, plugins,
    // the status line script, the local launcher, backups of ~/.claude.json).
    let st = &p.filesystem.state[0].value;
    let keep: Vec<String> = st
        .keep
        .iter()
        .map(|k| k.path.display().to_string())
        .collect();
    assert!(keep.contains(&".credentials.json".to_string()), "{keep:?}");
    assert!(keep.contains(&"projects".to_string()), "{keep:?}");
    for never in [
        "settings.json",
        "hooks",
        "plugins",
        "skills",
        "commands",
        "agents",
        "rules",
        "output-styles",
        "local",
        "statusline-command.sh",
        "backups",
        "shell-snapshots",
        "CLAUDE.md",
    ] {
        assert!(!keep.iter().any(|k| k == never), "{never} is kept");
    }
}

#[test]
fn state_entries_parse_and_bad_ones_name_the_place() {
    let f = Fixture::new();
    let home = &f.host.home;
    f.user_config(
        "[[filesystem.state]]\ndir = \"~/.agent\"\nkeep = [\"login.json\", \"history/\", \"a/b\"]\nabout = \"x\"\n",
    );
    let p = f.load_default().unwrap();
    let st = &p.filesystem.state[0];
    assert_eq!(st.value.dir, home.join(".agent"));
    let keep: Vec<(String, bool)> = st
        .value
        .keep
        .iter()
        .map(|k| (k.path.display().to_string(), k.dir))
        .collect();
    assert_eq!(
        keep,
        [
            ("login.json".to_string(), false),
            ("history".to_string(), true),
            ("a/b".to_string(), false)
        ]
    );
    assert_eq!(st.value.about.as_deref(), Some("x"));
    assert!(st.value.settings.is_empty());
    // Settings: nested tables become key paths.
    f.user_config(
        "[[filesystem.state]]\ndir = \"~/.agent\"\n\
         settings = { \"c.json\" = { sandbox = { enabled = false }, n = 3, mode = \"off\" } }\n",
    );
    let p = f.load_default().unwrap();
    let set = &p.filesystem.state[0].value.settings;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].file, Path::new("c.json"));
    let keys: Vec<String> = set[0]
        .values
        .iter()
        .map(|(k, v)| format!("{}={v}", k.join(".")))
        .collect();
    assert_eq!(keys, ["mode=\"off\"", "n=3", "sandbox.enabled=false"]);
    for (text, want) in [
        ("dir = \"?~/.agent\"", "cannot be optional"),
        ("dir = \"/etc/agent\"", "below the home directory"),
        ("dir = \"~\"", "below the home directory"),
        ("dir = \"~/.a\"\nkeep = [\"../x\"]", "must not contain"),
        ("dir = \"~/.a\"\nkeep = [\"./x\"]", "must not contain"),
        ("dir = \"~/.a\"\nkeep = [\"/x\"]", "must be relative"),
        ("dir = \"~/.a\"\nkeep = [\"~/x\"]", "must be relative"),
        ("dir = \"~/.a\"\nkeep = [\"/\"]", "empty path"),
        ("dir = \"~/.a\"\nwrite = [\"x\"]", "unknown key `write`"),
        ("keep = [\"x\"]", "missing field `dir`"),
        (
            "dir = \"~/.a\"\nsettings = { \"x.ini\" = { a = 1 } }",
            "`NAME.toml` or `NAME.json`",
        ),
        (
            "dir = \"~/.a\"\nsettings = { \"d/x.toml\" = { a = 1 } }",
            "directly in the state",
        ),
        (
            "dir = \"~/.a\"\nsettings = { \"../x.toml\" = { a = 1 } }",
            "must not contain",
        ),
        (
            "dir = \"~/.a\"\nkeep = [\"x.toml\"]\nsettings = { \"x.toml\" = { a = 1 } }",
            "cannot be kept",
        ),
        (
            "dir = \"~/.a\"\nsettings = { \"x.toml\" = { a = [1] } }",
            "a string, an integer or a boolean",
        ),
    ] {
        let cfg = f.user_config(&format!("[[filesystem.state]]\n{text}\n"));
        let e = f.err(&LoadRequest::default());
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.contains(&cfg.display().to_string()), "{text}: {e}");
    }
}

#[test]
fn untrusted_project_files_may_not_add_state_directories() {
    let f = Fixture::new();
    f.project("[[filesystem.state]]\ndir = \"~/.bashrc.d\"\nkeep = [\"x\"]\n");
    let w = widenings_of(&f, &LoadRequest::default());
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("filesystem.state"), "{w:?}");
    // Repeating what a profile below already says is not a widening.
    f.project(
        "[[filesystem.state]]\ndir = \"~/.aider\"\nabout = \"aider's settings\"\nkeep = [\"analytics.json\", \"installs.json\"]\n",
    );
    assert!(widenings_of(&f, &profiles(&["aider"])).is_empty());
}

// ------------------------------------------------------ merge and precedence

#[test]
fn scalars_take_the_last_writer_in_source_order() {
    // limits.memory, written by each layer or not: (user, -p, project, -f)
    // and the expected winner. The project only lowers it, which any
    // project file may do.
    type Row = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        u64,
        &'static str,
    );
    let g = 1u64 << 30;
    let table: &[Row] = &[
        (Some("8G"), None, None, None, 8 * g, "user"),
        (Some("8G"), Some("16G"), None, None, 16 * g, "profile"),
        (Some("8G"), Some("16G"), Some("4G"), None, 4 * g, "project"),
        (
            Some("8G"),
            Some("16G"),
            Some("4G"),
            Some("32G"),
            32 * g,
            "file",
        ),
        (None, None, None, Some("1G"), g, "file"),
    ];
    for (user, profile, project, file, want, winner) in table {
        let f = Fixture::new();
        let mut req = LoadRequest::default();
        let mut written = Vec::new();
        if let Some(v) = user {
            written.push((
                "user",
                f.user_config(&format!("[limits]\nmemory = \"{v}\"\n")),
            ));
        }
        if let Some(v) = profile {
            written.push((
                "profile",
                f.user_profile("big", &format!("\n[limits]\nmemory = \"{v}\"\n")),
            ));
            req.profiles.push("big".into());
        }
        if let Some(v) = project {
            written.push((
                "project",
                f.project(&format!("\n\n[limits]\nmemory = \"{v}\"\n")),
            ));
        }
        if let Some(v) = file {
            let path = f.write("extra.toml", &format!("[limits]\n\n\nmemory = \"{v}\"\n"));
            req.policy_files.push(path.clone());
            written.push(("file", path));
        }
        let p = f.load(&req).unwrap();
        let memory = p.limits.memory.unwrap();
        assert_eq!(memory.value, *want, "{winner}");
        let (_, path) = written.iter().find(|(w, _)| w == winner).unwrap();
        let line = fs::read_to_string(path)
            .unwrap()
            .lines()
            .position(|l| l.starts_with("memory"))
            .unwrap()
            + 1;
        assert_eq!(memory.source, file_line(path, line), "{winner}");
    }
}

#[test]
fn flags_beat_project_beats_user_beats_builtin() {
    // workspace.mode: base says direct; each layer down to flags overrides.
    let f = Fixture::new();
    let p = f.load_default().unwrap();
    let mode = p.workspace.mode.unwrap();
    assert_eq!(mode.value, WorkspaceMode::Direct);
    assert!(matches!(mode.source, Provenance::Builtin { .. }));

    let user = f.user_config("[workspace]\nmode = \"overlay\"\n");
    let mode = f.load_default().unwrap().workspace.mode.unwrap();
    assert_eq!(
        (mode.value, mode.source),
        (WorkspaceMode::Overlay, file_line(&user, 2))
    );

    let project = f.project("[workspace]\nmode = \"readonly\"\n");
    let mode = f.load_default().unwrap().workspace.mode.unwrap();
    assert_eq!(
        (mode.value, mode.source),
        (WorkspaceMode::Readonly, file_line(&project, 2))
    );

    let req = LoadRequest {
        flags: FlagRules {
            workspace: Some(WorkspaceMode::Direct),
            net: Some(NetMode::Host),
            ..FlagRules::default()
        },
        ..LoadRequest::default()
    };
    let p = f.load(&req).unwrap();
    let mode = p.workspace.mode.unwrap();
    assert_eq!(
        (mode.value, mode.source),
        (WorkspaceMode::Direct, Provenance::flag("--workspace"))
    );
    let net = p.network.mode.unwrap();
    assert_eq!(
        (net.value, net.source),
        (NetMode::Host, Provenance::flag("--net"))
    );
    assert_eq!(p.sources.last().unwrap().kind, SourceKind::Flags);
}

#[test]
fn lists_are_unions_in_source_order_without_duplicates() {
    let f = Fixture::new();
    f.user_config(
        "[filesystem]\nread = [\"/srv/a\", \"/usr\"]\n[network]\ndeny = [\"a.example\"]\n",
    );
    f.user_profile("extra", "[filesystem]\nread = [\"/srv/b\", \"/srv/a\"]\n");
    f.project(
        "[filesystem]\nread = [\"docs\"]\n[network]\ndeny = [\"b.example\", \"a.example\"]\n",
    );
    let file = f.write("extra.toml", "[filesystem]\nread = [\"/srv/c\"]\n");
    let req = LoadRequest {
        profiles: vec!["extra".into()],
        policy_files: vec![file],
        flags: FlagRules {
            ro: vec!["/srv/d".into(), "/srv/a".into()],
            ..FlagRules::default()
        },
        ..LoadRequest::default()
    };
    let p = f.load(&req).unwrap();
    let read = paths(&p.filesystem.read);
    let tail: Vec<PathBuf> = read
        .iter()
        .filter(|p| p.starts_with("/srv") || p.starts_with(&f.root))
        .cloned()
        .collect();
    assert_eq!(
        tail,
        [
            "/srv/a",
            "/srv/b",
            &f.path("repo/docs").display().to_string(),
            "/srv/c",
            "/srv/d"
        ]
        .iter()
        .map(PathBuf::from)
        .collect::<Vec<_>>()
    );
    assert_eq!(read.iter().filter(|p| **p == Path::new("/usr")).count(), 1);
    // The first writer's provenance stays.
    let usr = p
        .filesystem
        .read
        .iter()
        .find(|r| r.value.path == Path::new("/usr"))
        .unwrap();
    assert!(matches!(usr.source, Provenance::Builtin { .. }));
    let deny: Vec<String> = p.network.deny.iter().map(|d| d.value.to_string()).collect();
    assert_eq!(deny, ["a.example", "b.example"]);
}

#[test]
fn env_set_overrides_by_name() {
    let f = Fixture::new();
    let user = f.user_config("[env.set]\nEDITOR = \"vi\"\nPAGER = \"less\"\n");
    let req = LoadRequest {
        flags: FlagRules {
            env: vec!["EDITOR=nano".into(), "MY_VAR".into(), "X=~/bin:/b".into()],
            ..FlagRules::default()
        },
        ..LoadRequest::default()
    };
    let p = f.load(&req).unwrap();
    let get = |n: &str| p.env.set.iter().find(|s| s.value.0 == n).unwrap();
    assert_eq!(get("EDITOR").value.1, "nano");
    assert_eq!(get("EDITOR").source, Provenance::flag("--env"));
    assert_eq!(get("PAGER").source, file_line(&user, 3));
    assert_eq!(
        get("X").value.1,
        format!("{}/bin:/b", f.host.home.display())
    );
    assert!(p.env.pass.iter().any(|s| s.value == "MY_VAR"));
}

#[test]
fn paths_resolve_against_their_file_and_flags_against_cwd() {
    let f = Fixture::new();
    let project = f.project("[filesystem]\nread = [\"docs\", \"?./sub/../lib\"]\n");
    let other = f.write(
        "elsewhere/p.toml",
        "[filesystem]\nwrite = [\"out\"]\nread = [\"~/notes\"]\n",
    );
    let req = LoadRequest {
        policy_files: vec![other.clone()],
        flags: FlagRules {
            rw: vec!["build".into()],
            hide: vec!["?~/.secret".into()],
            ..FlagRules::default()
        },
        ..LoadRequest::default()
    };
    let p = f.load(&req).unwrap();
    let read = &p.filesystem.read;
    let find = |list: &[cage::policy::Sourced<cage::policy::PathRule>], path: PathBuf| {
        list.iter()
            .find(|r| r.value.path == path)
            .unwrap_or_else(|| panic!("{} missing", path.display()))
            .clone()
    };
    assert_eq!(
        find(read, f.path("repo/docs")).source,
        file_line(&project, 2)
    );
    assert!(find(read, f.path("repo/lib")).value.optional);
    find(read, f.host.home.join("notes"));
    find(&p.filesystem.write, f.path("elsewhere/out"));
    let build = find(&p.filesystem.write, f.path("repo/sub/build"));
    assert_eq!(build.source, Provenance::flag("--rw"));
    assert!(
        find(&p.filesystem.hide, f.host.home.join(".secret"))
            .value
            .optional
    );
}

#[test]
fn extends_apply_once_before_the_file_and_diamonds_are_fine() {
    let f = Fixture::new();
    f.user_profile("a", "extends = [\"b\", \"c\"]\n[env]\npass = [\"A\"]\n");
    f.user_profile("b", "extends = [\"d\"]\n[env]\npass = [\"B\"]\n");
    f.user_profile("c", "extends = [\"d\", \"git\"]\n[env]\npass = [\"C\"]\n");
    f.user_profile("d", "[env]\npass = [\"D\"]\n");
    let p = f.load(&profiles(&["a", "d", "a"])).unwrap();
    let names: Vec<String> = p
        .sources
        .iter()
        .map(|s| {
            Path::new(&s.name)
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(names, ["builtin:base", "d", "b", "builtin:git", "c", "a"]);
    assert_eq!(p.sources[1].kind, SourceKind::User);
}

// -------------------------------------------------------------- error texts

#[test]
fn misspelled_key_names_the_place_and_the_valid_keys() {
    let f = Fixture::new();
    let path = f.user_config("[network]\nmode = \"none\"\nmdoe = \"proxy\"\n");
    assert_eq!(
        f.err(&LoadRequest::default()),
        format!(
            "{}:3:1: unknown key `mdoe` (did you mean `mode`?); valid keys here: mode, allow, deny",
            path.display()
        )
    );
    let path = f.user_config("[netwrk]\nmode = \"none\"\n");
    assert_eq!(
        f.err(&LoadRequest::default()),
        format!(
            "{}:1:2: unknown key `netwrk` (did you mean `network`?); valid keys here: \
             extends, workspace, filesystem, network, env, limits, process, security, secrets",
            path.display()
        )
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let f = Fixture::new();
    let table = [
        (
            "[network]\nallow = \"x\"\n",
            "2:9: invalid type: string \"x\", expected an array",
        ),
        (
            "[network]\nallow = [1]\n",
            "2:10: invalid type: integer `1`, expected a string",
        ),
        (
            "[network]\nmode = \"open\"\n",
            "2:8: unknown variant `open`, expected one of `none`, `proxy`, `host`",
        ),
        (
            "network = 5\n",
            "1:11: invalid type: integer `5`, expected the [network] table",
        ),
        (
            "[limits]\nnofile = -1\n",
            "2:10: invalid value: integer `-1`, expected a non-negative integer",
        ),
        (
            "[limits]\nmemory = true\n",
            "2:10: invalid type: boolean `true`, expected a size: a number of bytes, or a \
             string like \"512M\" or \"8G\"",
        ),
        (
            "[process]\nallow_ptrace = \"yes\"\n",
            "2:16: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "extends = \"claude\"\n",
            "1:11: invalid type: string \"claude\", expected an array",
        ),
        (
            "[env]\nset = [\"A\"]\n",
            "2:7: invalid type: array, expected a table",
        ),
    ];
    for (text, want) in table {
        let path = f.user_config(text);
        assert_eq!(
            f.err(&LoadRequest::default()),
            format!("{}:{want}", path.display()),
            "{text}"
        );
    }
}

#[test]
fn value_errors_point_at_the_value() {
    let f = Fixture::new();
    let table = [
        (
            "[network]\nallow = [\"ok.example\", \"*.com\"]\n",
            "2:24: bad host pattern `*.com`: `*.com` would allow every name under a top-level \
             domain; a wildcard needs at least two labels after `*.`",
        ),
        (
            "[network]\ndeny = [\"*\"]\n",
            "2:9: bad host pattern `*`: `*` alone would allow every host; list the hosts, or \
             use network mode \"host\" for an unfiltered network",
        ),
        (
            "[limits]\nmemory = \"8X\"\n",
            "2:10: bad size `8X`: unknown unit; use K, M, G or T (powers of 1024)",
        ),
        (
            "[limits]\npids = 0\n",
            "2:8: pids = 0: must be at least 1 (leave the key out for no limit)",
        ),
        (
            "[filesystem]\nread = [\"~root/x\"]\n",
            "2:9: bad path `~root/x`: only `~` and `~/...` are expanded (`~user` is not supported)",
        ),
        (
            "[filesystem]\nhide = [\"?\"]\n",
            "2:9: bad path `?`: empty path",
        ),
        (
            "[env]\npass = [\"*\"]\n",
            "2:9: bad environment variable `*`: a pattern needs a prefix; `*` alone would pass \
             the whole environment",
        ),
        (
            "[workspace]\nprotect = [\"../x\"]\n",
            "2:12: bad protected name `../x`: must not contain `..`",
        ),
        (
            "[workspace]\npath = \"?/x\"\n",
            "2:8: bad path `?/x`: the workspace cannot be optional",
        ),
        (
            "extends = [\"../etc/passwd\"]\n",
            "1:12: bad profile name `../etc/passwd`: use letters, digits, `-` and `_` (a \
             profile is a file name, never a path)",
        ),
        ("[network\n", "1:9: unclosed table, expected `]`"),
    ];
    for (text, want) in table {
        let path = f.user_config(text);
        assert_eq!(
            f.err(&LoadRequest::default()),
            format!("{}:{want}", path.display()),
            "{text}"
        );
    }
}

#[test]
fn unknown_profile_lists_the_available_ones() {
    let f = Fixture::new();
    f.user_profile("mine", "");
    let dir = f.host.config_dir.join("profiles");
    let available = "aider, base, claude, codex, gemini, git, go, mine, node, python, rust";
    assert_eq!(
        f.err(&profiles(&["nope"])),
        format!(
            "unknown profile `nope`; available: {available} (user profiles are {}/NAME.toml)",
            dir.display()
        )
    );
    let cfg = f.user_config("\nextends = [\"git\", \"nope\"]\n");
    assert_eq!(
        f.err(&LoadRequest::default()),
        format!(
            "{}:2:19: unknown profile `nope`; available: {available} (user profiles are {}/NAME.toml)",
            cfg.display(),
            dir.display()
        )
    );
}

#[test]
fn cyclic_extends_shows_the_cycle() {
    let f = Fixture::new();
    f.user_profile("a", "extends = [\"b\"]\n");
    let b = f.user_profile("b", "extends = [\"git\", \"a\"]\n");
    assert_eq!(
        f.err(&profiles(&["a"])),
        format!("{}:1:19: cyclic extends: a -> b -> a", b.display())
    );
    let s = f.user_profile("self", "\n\nextends = [\"self\"]\n");
    assert_eq!(
        f.err(&profiles(&["self"])),
        format!("{}:3:12: cyclic extends: self -> self", s.display())
    );
}

#[test]
fn unreadable_files_name_the_path_and_keep_the_os_error() {
    let f = Fixture::new();
    let missing = f.path("nope.toml");
    let req = LoadRequest {
        policy_files: vec![missing.clone()],
        ..LoadRequest::default()
    };
    let err = f.load(&req).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("reading policy file {}", missing.display())
    );
    let source = std::error::Error::source(&err).unwrap();
    let io = source.downcast_ref::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

    // A directory where the user config should be.
    fs::create_dir_all(f.host.config_dir.join("config.toml")).unwrap();
    let err = f.load_default().unwrap_err();
    assert!(matches!(err, PolicyError::Read { .. }), "{err}");
}

#[test]
fn bad_flags_name_the_flag() {
    let f = Fixture::new();
    let table: &[(FlagRules, &str)] = &[
        (
            FlagRules {
                allow_host: vec!["*.co.uk".into()],
                ..FlagRules::default()
            },
            "--allow-host `*.co.uk`: `co.uk` is a public suffix",
        ),
        (
            FlagRules {
                env: vec!["A-B=1".into()],
                ..FlagRules::default()
            },
            "--env `A-B=1`: use letters, digits and `_`",
        ),
        (
            FlagRules {
                rw: vec!["".into()],
                ..FlagRules::default()
            },
            "--rw ``: empty path",
        ),
    ];
    for (flags, want) in table {
        let req = LoadRequest {
            flags: flags.clone(),
            ..LoadRequest::default()
        };
        let err = f.err(&req);
        assert!(err.starts_with(want), "{err}");
    }
}

#[test]
fn non_utf8_files_are_errors_with_a_position() {
    let f = Fixture::new();
    let path = f.path("home/.config/cage/config.toml");
    fs::write(&path, b"[env]\npass = [\"\xff\"]\n").unwrap();
    assert_eq!(
        f.err(&LoadRequest::default()),
        format!("{}:2:10: not valid UTF-8", path.display())
    );
}

// ------------------------------------------------------------------- trust

/// Loads with an untrusted project file and returns the widening lines.
fn widenings_of(f: &Fixture, req: &LoadRequest) -> Vec<String> {
    match f.load(req) {
        Ok(_) => Vec::new(),
        Err(PolicyError::Untrusted { widenings, .. }) => {
            widenings.iter().map(|w| w.to_string()).collect()
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// What the plan with the (untrusted) project file allows that the plan
/// without it does not, the user's profiles, files and flags in both:
/// what a run refuses beyond the line-by-line check.
fn plan_widenings(f: &Fixture, req: &LoadRequest) -> Vec<String> {
    let with = f
        .load(&LoadRequest {
            project: ProjectMode::Preview,
            ..req.clone()
        })
        .unwrap();
    let without = f
        .load(&LoadRequest {
            project: ProjectMode::Skip,
            ..req.clone()
        })
        .unwrap();
    let argv = ["true".to_string()];
    let wide = cage::plan::build(&with, &f.host, &argv).unwrap();
    let narrow = cage::plan::build(&without, &f.host, &argv).unwrap();
    let file = with.project.as_ref().unwrap().file.clone();
    cage::plan::widen::widenings(&narrow, &wide, &with, &file, &f.host)
        .iter()
        .map(|w| w.to_string())
        .collect()
}

fn with_flags(profs: &[&str], flags: FlagRules) -> LoadRequest {
    LoadRequest {
        flags,
        ..profiles(profs)
    }
}

#[test]
fn lines_that_each_narrow_are_judged_together_with_the_users_flags() {
    let f = Fixture::new();
    fs::create_dir_all(f.path("repo/src")).unwrap();
    let src = f.path("repo/src");
    for mode in [WorkspaceMode::Overlay, WorkspaceMode::Readonly] {
        let project = f.project("[filesystem]\nwrite = [\"src\"]\n");
        let req = with_flags(
            &[],
            FlagRules {
                workspace: Some(mode),
                ..FlagRules::default()
            },
        );
        // Alone, the line looks narrowing: below it, the mode is direct.
        f.load(&req).unwrap();
        let got = plan_widenings(&f, &req);
        assert_eq!(
            got,
            [format!(
                "{}:2: {} becomes writable (read-only without this file)",
                project.display(),
                src.display()
            )],
            "{mode:?}"
        );
    }
    // A host the user allowed with a flag, and one the file adds.
    f.project("[network]\nallow = [\"evil.example\", \"ok.example\"]\n");
    let req = with_flags(
        &[],
        FlagRules {
            allow_host: vec!["ok.example".into()],
            ..FlagRules::default()
        },
    );
    let got = plan_widenings(&f, &req);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].ends_with("allows the host evil.example"), "{got:?}");
    // A variable the host has, passed by the file; one it sets is its own.
    let mut f = f;
    f.host.env = env_from([("TERM", "xterm"), ("AWS_SECRET_ACCESS_KEY", "s3cret")]);
    f.project("[env]\npass = [\"AWS_*\"]\nset = { EDITOR = \"vi\" }\n");
    let got = plan_widenings(&f, &LoadRequest::default());
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].ends_with("passes the host's AWS_SECRET_ACCESS_KEY into the cage"),
        "{got:?}"
    );
}

#[test]
fn narrowing_files_widen_no_builtin_profiles_plan() {
    let f = Fixture::new();
    fs::create_dir_all(f.path("repo/docs")).unwrap();
    let narrowing = "[workspace]\nmode = \"readonly\"\nprotect = [\"Makefile\"]\n\
                     [filesystem]\nhide = [\"~\", \"/etc/ssl\", \".env\"]\n\
                     tmpfs = [\"/var/tmp\"]\nread = [\".\", \"docs\", \"/usr\"]\n\
                     [network]\nmode = \"none\"\ndeny = [\"*.example.com\"]\n\
                     [env]\nset = { EDITOR = \"vi\" }\n\
                     [limits]\nnofile = 64\n[process]\nallow_ptrace = false\n";
    f.project(narrowing);
    for name in policy::builtin_names() {
        let req = profiles(&[name]);
        let got = plan_widenings(&f, &req);
        assert!(got.is_empty(), "-p {name}: {got:?}");
        for mode in [WorkspaceMode::Overlay, WorkspaceMode::Direct] {
            let req = with_flags(
                &[name],
                FlagRules {
                    workspace: Some(mode),
                    ..FlagRules::default()
                },
            );
            let got = plan_widenings(&f, &req);
            assert!(got.is_empty(), "-p {name} --workspace {mode:?}: {got:?}");
        }
    }
}

#[test]
fn untrusted_project_files_may_narrow() {
    let f = Fixture::new();
    f.user_config("[limits]\nmemory = \"8G\"\n[workspace]\nmode = \"overlay\"\n");
    let narrowing = [
        "[filesystem]\nhide = [\"~\", \"/etc\", \".env\"]\n",
        "[filesystem]\ntmpfs = [\"/var/tmp\", \"~/.cache\"]\n",
        "[filesystem]\nread = [\".\", \"docs\", \"sub/..\", \"/usr\"]\n",
        "[workspace]\nprotect = [\".husky\", \"Makefile\"]\n",
        "[workspace]\nmode = \"readonly\"\n",
        "[workspace]\nmode = \"overlay\"\npath = \"sub\"\n",
        "[network]\nmode = \"none\"\ndeny = [\"*.example.com\", \"10.0.0.0/8:*\"]\n",
        "[limits]\nmemory = \"4G\"\n",
        "[process]\nallow_ptrace = false\n",
        "[env]\npass = [\"TERM\"]\nset = { EDITOR = \"vi\" }\n",
        "extends = [\"base\"]\n",
        "",
    ];
    for text in narrowing {
        f.project(text);
        let p = f.load_default().unwrap_or_else(|e| panic!("{text}\n{e}"));
        let project = p.project.unwrap();
        assert!(!project.trusted);
        assert_eq!(project.root, f.path("repo"));
        assert_eq!(p.sources.last().unwrap().kind, SourceKind::Project);
    }
}

#[test]
fn untrusted_project_files_may_not_widen() {
    let f = Fixture::new();
    let root = f.path("repo");
    let home = &f.host.home;
    let r = root.display();
    // (user config, -p profiles, project text, expected widening after "LINE: ")
    let table: Vec<(&str, Vec<&str>, &str, String)> = vec![
        ("", vec![], "[filesystem]\nread = [\"~/.aws\"]\n",
            format!("filesystem.read {}/.aws is outside the project root {r}", home.display())),
        ("", vec![], "[filesystem]\nread = [\"..\"]\n",
            format!("filesystem.read {} is outside the project root {r}", f.root.display())),
        ("", vec![], "[filesystem]\nread = [\"/etc/../home\"]\n",
            format!("filesystem.read /home is outside the project root {r}")),
        ("", vec![], "[filesystem]\nwrite = [\"/tmp/x\"]\n",
            format!("filesystem.write /tmp/x is outside the project root {r}")),
        ("", vec![], "[filesystem]\nwrite = [\"/usr\"]\n",
            format!("filesystem.write /usr is outside the project root {r}")),
        ("[workspace]\nmode = \"overlay\"\n", vec![], "[filesystem]\nwrite = [\"src\"]\n",
            format!("filesystem.write {r}/src makes workspace files writable, but the workspace mode below it is \"overlay\"")),
        ("[workspace]\nmode = \"readonly\"\n", vec![], "[workspace]\nmode = \"overlay\"\n",
            "workspace.mode \"overlay\" is less strict than \"readonly\" below it".into()),
        ("", vec![], "[workspace]\npath = \"..\"\n",
            format!("workspace.path {} is outside the project root {r}", f.root.display())),
        ("", vec![], "[network]\nmode = \"proxy\"\n",
            "network.mode \"proxy\" opens more than \"none\" below it".into()),
        ("", vec!["node"], "[network]\nmode = \"host\"\n",
            "network.mode \"host\" opens more than \"proxy\" below it".into()),
        ("", vec!["node"], "[network]\nallow = [\"evil.example\"]\n",
            "network.allow \"evil.example\" allows a host".into()),
        ("", vec![], "[env]\npass = [\"AWS_SECRET_ACCESS_KEY\"]\n",
            "env.pass \"AWS_SECRET_ACCESS_KEY\" passes host environment variables into the cage".into()),
        ("", vec![], "[limits]\nnofile = 100\n",
            "limits.nofile = 100 sets a limit no source below it sets, which could raise cage's default".into()),
        ("[limits]\npids = 100\n", vec![], "[limits]\npids = 200\n",
            "limits.pids = 200 raises the limit of 100 below it".into()),
        ("", vec![], "[process]\nallow_ptrace = true\n",
            "process.allow_ptrace = true lets the agent trace its own processes".into()),
        ("", vec![], "[process]\nallow_nested_userns = true\n",
            "process.allow_nested_userns = true lets the agent create user namespaces, widening the kernel's attack surface".into()),
        ("", vec![], "[security]\nallow_degraded = [\"landlock\"]\n",
            "security.allow_degraded \"landlock\" lets cage run without that layer".into()),
        ("", vec![], "[security]\nallow_degraded = [\"namespaces\"]\n",
            "security.allow_degraded \"namespaces\" lets cage run without that layer".into()),
        ("", vec!["git"], "extends = [\"git\", \"claude\"]\n",
            "extends \"claude\", a profile not already in use".into()),
    ];
    for (user, profs, text, want) in table {
        f.user_config(user);
        let project = f.project(text);
        let req = profiles(&profs);
        let got = widenings_of(&f, &req);
        let line = if text.starts_with("extends") { 1 } else { 2 };
        assert_eq!(
            got,
            vec![format!("{}:{line}: {want}", project.display())],
            "{text}"
        );
    }
}

#[test]
fn repeating_what_lower_layers_allow_is_not_widening() {
    let f = Fixture::new();
    f.user_config("[filesystem]\nwrite = [\"~/.cache/x\"]\n[process]\nallow_ptrace = true\n");
    f.project(
        "extends = [\"node\"]\n\
         [filesystem]\nread = [\"~/.cache/x\", \"?~/.nvm\"]\nwrite = [\"~/.cache/x\"]\n\
         [network]\nmode = \"proxy\"\nallow = [\"registry.npmjs.org\"]\n\
         [env]\npass = [\"NODE_ENV\", \"LC_*\"]\n\
         [process]\nallow_ptrace = true\n",
    );
    f.load(&profiles(&["node"])).unwrap();
    // Without -p node, the same file widens in several ways.
    assert_eq!(widenings_of(&f, &LoadRequest::default()).len(), 5);
}

#[test]
fn untrusted_message_lists_every_widening_and_the_fix() {
    let f = Fixture::new();
    let project = f.project(
        "[filesystem]\nread = [\"~/.aws\"]\n\n[network]\nmode = \"proxy\"\nallow = [\"evil.example\"]\n",
    );
    let p = project.display();
    let r = f.path("repo");
    let want = format!(
        "the project policy {p} is not trusted and widens the sandbox:\n\
         \x20 {p}:2: filesystem.read {}/.aws is outside the project root {}\n\
         \x20 {p}:5: network.mode \"proxy\" opens more than \"none\" below it\n\
         \x20 {p}:6: network.allow \"evil.example\" allows a host\n\
         run 'cage trust {p}' to allow these (`cage --dry-run -- COMMAND` shows what they \
         grant), or pass --no-project-policy",
        f.host.home.display(),
        r.display()
    );
    assert_eq!(f.err(&LoadRequest::default()), want);
    // --no-project-policy skips it.
    let req = LoadRequest {
        project: ProjectMode::Skip,
        ..LoadRequest::default()
    };
    let p = f.load(&req).unwrap();
    assert!(p.project.is_none());
    assert!(p.network.allow.is_empty());
}

#[test]
fn trust_pins_the_bytes_and_an_edit_revokes_it() {
    let f = Fixture::new();
    let project = f.project("[network]\nmode = \"proxy\"\nallow = [\"api.example.com\"]\n");
    assert!(!policy::is_trusted(&project, &f.host).unwrap());
    f.load_default().unwrap_err();

    let report = policy::trust(&project, &f.host).unwrap();
    assert_eq!(report.path, project);
    assert_eq!(report.sha256.len(), 64);
    let whats: Vec<_> = report.widenings.iter().map(|w| w.what.clone()).collect();
    assert_eq!(
        whats,
        [
            "network.mode \"proxy\" opens more than \"none\" below it",
            "network.allow \"api.example.com\" allows a host"
        ]
    );
    assert!(policy::is_trusted(&project, &f.host).unwrap());
    let p = f.load_default().unwrap();
    assert!(p.project.as_ref().unwrap().trusted);
    assert_eq!(
        p.network.allow[0].value,
        HostPattern::parse("api.example.com").unwrap()
    );
    assert_eq!(p.network.allow[0].source, file_line(&project, 3));
    let source = p.sources.last().unwrap();
    assert_eq!(source.sha256.as_deref(), Some(report.sha256.as_str()));

    // The store: JSON, keyed by canonical path, private.
    let store = policy::store_path(&f.host);
    assert_eq!(store, f.host.config_dir.join("trusted.json"));
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&store).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(
        json["files"][project.to_str().unwrap()]["sha256"],
        report.sha256.as_str()
    );
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o600);

    // One byte more and it is untrusted again, and says so.
    f.project("[network]\nmode = \"proxy\"\nallow = [\"api.example.com\"]\n\n");
    assert!(!policy::is_trusted(&project, &f.host).unwrap());
    let err = f.err(&LoadRequest::default());
    assert!(err.contains("changed since it was trusted"), "{err}");

    policy::trust(&project, &f.host).unwrap();
    f.load_default().unwrap();
    assert!(policy::untrust(&project, &f.host).unwrap());
    assert!(!policy::untrust(&project, &f.host).unwrap());
    f.load_default().unwrap_err();
}

#[test]
fn trust_creates_a_private_config_dir_and_keeps_other_pins() {
    let f = Fixture::new();
    fs::remove_dir_all(&f.host.config_dir).unwrap();
    let a = f.project("[env]\npass = [\"A\"]\n");
    let b = f.write("other/.cage.toml", "[env]\npass = [\"B\"]\n");
    policy::trust(&a, &f.host).unwrap();
    let mode = fs::metadata(&f.host.config_dir)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    policy::trust(&b, &f.host).unwrap();
    assert!(policy::is_trusted(&a, &f.host).unwrap());
    assert!(policy::is_trusted(&b, &f.host).unwrap());
    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(&f.host.config_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["trusted.json"]);
    // A pin of a file that is gone can still be removed.
    fs::remove_file(&b).unwrap();
    assert!(policy::untrust(&b, &f.host).unwrap());
}

#[test]
fn trust_refuses_a_broken_file_and_a_broken_store() {
    let f = Fixture::new();
    let project = f.project("extends = [\"nope\"]\n");
    let err = policy::trust(&project, &f.host).unwrap_err();
    assert!(matches!(err, PolicyError::UnknownProfile { .. }), "{err}");
    assert!(!policy::store_path(&f.host).exists());

    fs::write(policy::store_path(&f.host), "{ not json").unwrap();
    f.project("[env]\npass = [\"A\"]\n");
    let err = policy::trust(&project, &f.host).unwrap_err();
    assert!(matches!(err, PolicyError::TrustStoreParse { .. }), "{err}");
    let err = f.load_default().unwrap_err();
    assert!(matches!(err, PolicyError::TrustStoreParse { .. }), "{err}");
}

// --------------------------------------------------- discovery and checking

#[test]
fn project_file_is_found_up_to_the_repository_root() {
    let f = Fixture::new();
    assert_eq!(policy::find_project_file(&f.host), None);
    let top = f.project("");
    assert_eq!(policy::find_project_file(&f.host), Some(top.clone()));
    let near = f.write("repo/sub/.cage.toml", "");
    assert_eq!(policy::find_project_file(&f.host), Some(near));
    // Above the repository root is not the project's.
    let mut host = f.host.clone();
    fs::remove_file(f.path("repo/sub/.cage.toml")).unwrap();
    fs::remove_file(&top).unwrap();
    f.write(".cage.toml", "");
    assert_eq!(policy::find_project_file(&host), None);
    // Without a repository, only the working directory counts.
    host.repo_root = None;
    assert_eq!(policy::find_project_file(&host), None);
    host.cwd = f.root.clone();
    assert_eq!(policy::find_project_file(&host), Some(f.path(".cage.toml")));
}

#[test]
fn project_root_is_the_repository_even_from_a_subdirectory() {
    let f = Fixture::new();
    let near = f.write(
        "repo/sub/.cage.toml",
        "[filesystem]\nread = [\"../docs\"]\n",
    );
    let p = f.load_default().unwrap();
    assert_eq!(p.project.as_ref().unwrap().file, near);
    assert_eq!(p.project.unwrap().root, f.path("repo"));
}

#[test]
fn check_file_validates_one_file_and_its_extends() {
    let f = Fixture::new();
    let good = f.write(
        "good.toml",
        "extends = [\"claude\"]\n[network]\ndeny = [\"x.example\"]\n",
    );
    policy::check_file(&good, &f.host).unwrap();
    let bad = f.write("bad.toml", "extends = [\"nope\"]\n");
    let err = policy::check_file(&bad, &f.host).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:1:12: unknown profile `nope`", bad.display()))
    );
    let typo = f.write("typo.toml", "[filesystem]\nreed = []\n");
    let err = policy::check_file(&typo, &f.host).unwrap_err().to_string();
    assert!(
        err.contains("unknown key `reed` (did you mean `read`?)"),
        "{err}"
    );
}

#[test]
fn starter_policy_parses_and_narrows_only() {
    let f = Fixture::new();
    let plain = policy::starter_policy(&[]);
    let path = f.write("starter.toml", &plain);
    policy::check_file(&path, &f.host).unwrap();
    f.project(&plain);
    f.load_default().unwrap();

    let claude = policy::starter_policy(&["claude"]);
    assert!(claude.contains("extends = [\"claude\"]"));
    f.project(&claude);
    let got = widenings_of(&f, &LoadRequest::default());
    assert_eq!(got.len(), 1);
    assert!(got[0].ends_with("extends \"claude\", a profile not already in use"));
    f.load(&profiles(&["claude"])).unwrap();

    // An odd name is quoted, not injected.
    let odd = policy::starter_policy(&["a\"b\n[x]"]);
    let path = f.write("odd.toml", &odd);
    let err = policy::check_file(&path, &f.host).unwrap_err();
    assert!(matches!(err, PolicyError::ProfileName { .. }), "{err}");
}

#[test]
fn degraded_layers_from_flags() {
    let f = Fixture::new();
    let req = LoadRequest {
        flags: FlagRules {
            allow_degraded: vec![Layer::Landlock],
            ..FlagRules::default()
        },
        ..LoadRequest::default()
    };
    let p = f.load(&req).unwrap();
    assert_eq!(
        p.security.allow_degraded[0].source,
        Provenance::flag("--allow-degraded")
    );
}

#[test]
fn a_project_file_named_with_f_is_trusted_and_applied_once() {
    let f = Fixture::new();
    let project = f.project("[network]\nmode = \"proxy\"\nallow = [\"api.example.com\"]\n");
    f.load_default().unwrap_err();
    let req = LoadRequest {
        policy_files: vec![PathBuf::from("../.cage.toml")],
        ..LoadRequest::default()
    };
    let p = f.load(&req).unwrap();
    assert!(p.project.is_none());
    let from_it: Vec<_> = p
        .sources
        .iter()
        .filter(|s| s.name == project.display().to_string())
        .collect();
    assert_eq!(from_it.len(), 1);
    assert_eq!(from_it[0].kind, SourceKind::User);
    assert_eq!(p.network.allow.len(), 1);
}

#[test]
fn oversized_policy_files_are_refused() {
    let f = Fixture::new();
    let big = f.write("big.toml", &format!("# {}\n", "x".repeat(1 << 20)));
    let err = policy::check_file(&big, &f.host).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the policy file {} is larger than 1048576 bytes",
            big.display()
        )
    );
}

// ----------------------------------------------------------------- secrets

#[test]
fn secrets_parse_merge_by_name_and_bad_ones_name_the_place() {
    let f = Fixture::new();
    let cfg = f.user_config(
        "[secrets.anthropic]\nfrom = \"env:ANTHROPIC_API_KEY\"\nenv = \"ANTHROPIC_API_KEY\"\n\
         hosts = [\"api.anthropic.com\"]\n\n[secrets.gh]\nfrom = \"file:~/.gh-token\"\n\
         hosts = [\"github.com\", \"api.github.com\"]\noptional = true\n",
    );
    let p = f.load_default().unwrap();
    let names: Vec<&str> = p.secrets.iter().map(|s| s.value.name.as_str()).collect();
    assert_eq!(names, ["anthropic", "gh"]);
    let a = &p.secrets[0];
    assert_eq!(a.value.from, SecretSource::Env("ANTHROPIC_API_KEY".into()));
    assert_eq!(a.value.env.as_deref(), Some("ANTHROPIC_API_KEY"));
    assert_eq!(a.source, file_line(&cfg, 1));
    let gh = &p.secrets[1].value;
    assert_eq!(gh.from, SecretSource::File(f.path("home/.gh-token")));
    assert!(gh.optional && gh.env.is_none() && gh.hosts.len() == 2);
    // A later source replaces a secret of the same name.
    let req = LoadRequest {
        flags: FlagRules {
            secret: vec!["anthropic@127.0.0.1:8443".into()],
            ..FlagRules::default()
        },
        ..LoadRequest::default()
    };
    let p = f.load(&req).unwrap();
    let a = p
        .secrets
        .iter()
        .find(|s| s.value.name == "anthropic")
        .unwrap();
    assert_eq!(a.value.from, SecretSource::Env("anthropic".into()));
    assert_eq!(a.source.to_string(), "flag --secret");
    // --secret allows its hosts and asks for the proxy.
    assert!(
        p.network
            .allow
            .iter()
            .any(|r| r.value.to_string() == "127.0.0.1:8443")
    );
    assert_eq!(p.network.mode.unwrap().value, NetMode::Proxy);

    for (text, want) in [
        (
            "[secrets.x]\nfrom = \"vault:x\"\nhosts = [\"a.example\"]\n",
            "`from` is `env:VAR`",
        ),
        ("[secrets.x]\nfrom = \"env:X\"\n", "name the hosts"),
        (
            "[secrets.x]\nfrom = \"env:X\"\nhosts = [\"*\"]\n",
            "host `*`",
        ),
        (
            "[secrets.x]\nfrom = \"env:A-B\"\nhosts = [\"a.example\"]\n",
            "use letters",
        ),
        (
            "[secrets.x]\nfrom = \"cmd:\"\nhosts = [\"a.example\"]\n",
            "needs a command",
        ),
        (
            "[secrets.x]\nfrom = \"env:X\"\nhosts = [\"a.example\"]\nvalue = \"sk\"\n",
            "value",
        ),
    ] {
        f.user_config(text);
        let e = f.err(&LoadRequest::default());
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.contains("config.toml"), "{text}: {e}");
    }
}

#[test]
fn untrusted_project_files_may_not_add_a_secret_or_a_host() {
    let f = Fixture::new();
    f.user_config(
        "[secrets.gh]\nfrom = \"env:GH_TOKEN\"\nhosts = [\"github.com\", \"api.github.com\"]\n",
    );
    for text in [
        // A new secret: a value read on the host...
        "[secrets.k]\nfrom = \"file:~/.ssh/id_ed25519\"\nhosts = [\"gist.github.com\"]\n",
        // ...or a command run there.
        "[secrets.k]\nfrom = \"cmd:sh -c id\"\nhosts = [\"a.example\"]\n",
        // A host added to a secret below.
        "[secrets.gh]\nfrom = \"env:GH_TOKEN\"\nhosts = [\"github.com\", \"gist.example\"]\n",
        // The same name, another source.
        "[secrets.gh]\nfrom = \"env:OTHER\"\nhosts = [\"github.com\"]\n",
    ] {
        f.project(text);
        let w = widenings_of(&f, &LoadRequest::default());
        assert_eq!(w.len(), 1, "{text}: {w:?}");
        assert!(w[0].contains("secrets."), "{w:?}");
    }
    // Dropping a host narrows.
    f.project("[secrets.gh]\nfrom = \"env:GH_TOKEN\"\nhosts = [\"api.github.com\"]\n");
    let p = f.load_default().unwrap();
    assert_eq!(p.secrets[0].value.hosts.len(), 1);
}
