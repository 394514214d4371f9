//! Table tests for `build`: decisions only, no kernel. Each test makes its
//! own host tree under the system temp directory.

use std::path::{Path, PathBuf};

use crate::host::Host;
use crate::policy::{self, NetMode, Policy, Provenance, Sourced};

use super::{Access, Mount, Plan, build};

struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!("cage-plan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home/proj/.git/hooks")).unwrap();
        std::fs::create_dir_all(dir.join("home/.ssh")).unwrap();
        std::fs::write(dir.join("home/.ssh/id_ed25519"), "key").unwrap();
        Tree(crate::host::canonical(&dir).unwrap())
    }
    fn home(&self) -> PathBuf {
        self.0.join("home")
    }
    fn ws(&self) -> PathBuf {
        self.0.join("home/proj")
    }
    fn host(&self) -> Host {
        Host {
            uid: 1000,
            gid: 1000,
            user: "u".into(),
            home: self.home(),
            cwd: self.ws(),
            repo_root: Some(self.ws()),
            config_dir: self.home().join(".config/cage"),
            state_dir: self.home().join(".local/state/cage"),
            env: crate::host::env_from([
                ("TERM", "xterm"),
                ("LC_ALL", "C"),
                ("AWS_SECRET_ACCESS_KEY", "s3cret"),
                ("SHELL", "/bin/sh"),
            ]),
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn src(what: &'static str) -> Provenance {
    Provenance::Default { what }
}

fn rule(path: &Path, optional: bool) -> Sourced<policy::PathRule> {
    Sourced::new(
        policy::PathRule {
            path: path.to_path_buf(),
            optional,
        },
        src("test"),
    )
}

fn base(t: &Tree) -> Policy {
    let mut p = Policy::default();
    p.filesystem.read = vec![
        rule(Path::new("/usr"), false),
        rule(Path::new("/etc"), false),
    ];
    p.filesystem.tmpfs = vec![rule(Path::new("/tmp"), false)];
    p.filesystem.hide = vec![rule(&t.home().join(".ssh"), true)];
    p.env.pass = ["TERM", "LC_*"]
        .iter()
        .map(|s| Sourced::new(s.to_string(), src("test")))
        .collect();
    p
}

fn plan(p: &Policy, t: &Tree) -> Plan {
    build(p, &t.host(), &["sh".to_string()]).unwrap()
}

fn bind_of<'a>(plan: &'a Plan, dst: &Path) -> Option<&'a Mount> {
    plan.mounts
        .iter()
        .find(|m| m.dst() == dst && matches!(m, Mount::Bind { .. }))
}

#[test]
fn parents_are_mounted_before_children() {
    let t = Tree::new("order");
    let mut p = base(&t);
    p.filesystem.read.push(rule(&t.home(), false));
    let plan = plan(&p, &t);
    for (i, m) in plan.mounts.iter().enumerate() {
        for later in &plan.mounts[i + 1..] {
            assert!(
                !m.dst().starts_with(later.dst()) || m.dst() == later.dst(),
                "{} is mounted before its parent {}",
                m.dst().display(),
                later.dst().display()
            );
        }
    }
}

#[test]
fn home_is_an_empty_tmpfs_and_ssh_is_not_granted() {
    let t = Tree::new("home");
    let plan = plan(&base(&t), &t);
    assert!(
        plan.mounts
            .iter()
            .any(|m| matches!(m, Mount::Tmpfs { dst, .. } if *dst == t.home()))
    );
    assert!(
        !plan
            .mounts
            .iter()
            .any(|m| m.dst().starts_with(t.home().join(".ssh")))
    );
    assert!(!super::build::is_visible(
        &plan.mounts,
        &t.home().join(".ssh/id_ed25519")
    ));
}

#[test]
fn hide_beats_a_broader_grant() {
    let t = Tree::new("hide");
    let mut p = base(&t);
    p.filesystem.read.push(rule(&t.home(), false));
    let plan = plan(&p, &t);
    let ssh = t.home().join(".ssh");
    assert!(
        plan.mounts
            .iter()
            .any(|m| matches!(m, Mount::Hide { dst, .. } if *dst == ssh))
    );
    assert!(!super::build::is_visible(
        &plan.mounts,
        &ssh.join("id_ed25519")
    ));
}

#[test]
fn hide_beats_a_narrower_grant() {
    let t = Tree::new("hide2");
    let mut p = base(&t);
    p.filesystem.write.push(rule(&t.home().join(".ssh"), false));
    let plan = plan(&p, &t);
    assert!(bind_of(&plan, &t.home().join(".ssh")).is_none());
    assert!(plan.notes.iter().any(|n| n.contains("hidden by")));
}

#[test]
fn workspace_is_writable_and_hooks_read_only() {
    let t = Tree::new("ws");
    let plan = plan(&base(&t), &t);
    assert!(matches!(
        bind_of(&plan, &t.ws()),
        Some(Mount::Bind {
            access: Access::ReadWrite,
            ..
        })
    ));
    let hooks = t.ws().join(".git/hooks");
    assert!(matches!(
        bind_of(&plan, &hooks),
        Some(Mount::Bind {
            access: Access::ReadOnly,
            ..
        })
    ));
    assert!(plan.workspace.protected.iter().any(|p| p.path == hooks));
}

#[test]
fn protected_paths_are_found_at_depth_and_in_submodule_gitdirs() {
    let t = Tree::new("deep");
    let ws = t.ws();
    std::fs::create_dir_all(ws.join("a/b/.vscode")).unwrap();
    std::fs::write(ws.join("a/.envrc"), "x").unwrap();
    std::fs::create_dir_all(ws.join(".git/modules/sub/hooks")).unwrap();
    std::fs::write(ws.join(".git/modules/sub/HEAD"), "ref").unwrap();
    std::fs::write(ws.join(".git/modules/sub/config"), "").unwrap();
    std::os::unix::fs::symlink("/etc", ws.join("a/.idea")).unwrap();
    let plan = plan(&base(&t), &t);
    let found: Vec<&Path> = plan
        .workspace
        .protected
        .iter()
        .map(|p| p.path.as_path())
        .collect();
    for want in [
        "a/b/.vscode",
        "a/.envrc",
        ".git/modules/sub/hooks",
        ".git/modules/sub/config",
    ] {
        assert!(
            found.contains(&ws.join(want).as_path()),
            "{want} not protected: {found:?}"
        );
    }
    // A protected name that is a link is never bound (it would bind its
    // target), and the user is told.
    assert!(!found.contains(&ws.join("a/.idea").as_path()));
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains(".idea") && n.contains("symbolic link"))
    );
}

#[test]
fn readonly_workspace_has_no_writable_bind() {
    let t = Tree::new("ro");
    let mut p = base(&t);
    p.workspace.mode = Some(Sourced::new(policy::WorkspaceMode::Readonly, src("test")));
    let plan = plan(&p, &t);
    assert!(matches!(
        bind_of(&plan, &t.ws()),
        Some(Mount::Bind {
            access: Access::ReadOnly,
            ..
        })
    ));
    assert!(!plan.landlock.write.iter().any(|r| r.path == t.ws()));
}

#[test]
fn home_and_root_are_refused_as_workspace() {
    let t = Tree::new("refuse");
    for dir in [t.home(), PathBuf::from("/")] {
        let mut host = t.host();
        host.cwd = dir.clone();
        host.repo_root = None;
        let err = build(&base(&t), &host, &["sh".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("refusing to make"), "{err}");
    }
}

#[test]
fn missing_required_path_is_an_error_and_optional_is_skipped() {
    let t = Tree::new("missing");
    let mut p = base(&t);
    p.filesystem
        .read
        .push(rule(Path::new("/does/not/exist"), true));
    assert!(build(&p, &t.host(), &["sh".to_string()]).is_ok());
    p.filesystem
        .read
        .push(rule(Path::new("/does/not/exist"), false));
    let err = build(&p, &t.host(), &["sh".to_string()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/does/not/exist") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn environment_is_an_allowlist() {
    let t = Tree::new("env");
    let mut p = base(&t);
    p.env
        .set
        .push(Sourced::new(("EDITOR".into(), "vi".into()), src("test")));
    let plan = plan(&p, &t);
    let names: Vec<&str> = plan.env.iter().map(|v| v.name.as_str()).collect();
    assert!(names.contains(&"TERM") && names.contains(&"LC_ALL") && names.contains(&"EDITOR"));
    assert!(!names.contains(&"AWS_SECRET_ACCESS_KEY"));
    let home = plan.env.iter().find(|v| v.name == "HOME").unwrap();
    assert_eq!(Path::new(&home.value), t.home());
}

#[test]
fn a_ca_variable_the_user_set_is_not_replaced_by_the_hosts() {
    let t = Tree::new("ca-env");
    let mut host = t.host();
    host.env = crate::host::env_from([("SSL_CERT_FILE", "/etc/hostname")]);
    let mut p = base(&t);
    let plan_of = |p: &Policy| build(p, &host, &["sh".to_string()]).unwrap();
    let value = |plan: &Plan| {
        plan.env
            .iter()
            .find(|v| v.name == "SSL_CERT_FILE")
            .map(|v| v.value.clone())
    };
    // Passed with the host's file when nothing says otherwise...
    assert_eq!(value(&plan_of(&p)).as_deref(), Some("/etc/hostname"));
    // ...but `--env SSL_CERT_FILE=...` wins.
    p.env.set.push(Sourced::new(
        ("SSL_CERT_FILE".into(), "/etc/passwd".into()),
        Provenance::flag("--env"),
    ));
    assert_eq!(value(&plan_of(&p)).as_deref(), Some("/etc/passwd"));
}

#[test]
fn landlock_mirrors_the_view() {
    let t = Tree::new("ll");
    let plan = plan(&base(&t), &t);
    let read: Vec<&Path> = plan
        .landlock
        .read
        .iter()
        .map(|r| r.path.as_path())
        .collect();
    let write: Vec<&Path> = plan
        .landlock
        .write
        .iter()
        .map(|r| r.path.as_path())
        .collect();
    assert!(read.contains(&Path::new("/usr")) && read.contains(&Path::new("/etc")));
    assert!(write.contains(&t.ws().as_path()) && write.contains(&Path::new("/tmp")));
    assert!(!read.contains(&Path::new("/")) && !write.contains(&Path::new("/")));
}

#[test]
fn command_resolves_on_the_cage_path_and_unseen_programs_do_not() {
    let t = Tree::new("cmd");
    let plan1 = plan(&base(&t), &t);
    assert!(
        plan1
            .command
            .program
            .as_ref()
            .is_some_and(|p| p.ends_with("sh"))
    );
    // A program only in the (hidden) home is not found.
    std::fs::create_dir_all(t.home().join("bin")).unwrap();
    let tool = t.home().join("bin/tool");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut p = base(&t);
    p.env.set.push(Sourced::new(
        (
            "PATH".into(),
            format!("{}:/usr/bin", t.home().join("bin").display()),
        ),
        src("test"),
    ));
    let plan2 = build(&p, &t.host(), &["tool".to_string()]).unwrap();
    assert!(plan2.command.program.is_none());
}

#[test]
fn seccomp_list_drops_ptrace_only_when_allowed() {
    let t = Tree::new("ptrace");
    let plan1 = plan(&base(&t), &t);
    assert!(plan1.seccomp.deny.iter().any(|r| r.name == "ptrace"));
    let mut p = base(&t);
    p.process.allow_ptrace = Some(Sourced::new(true, src("test")));
    let plan2 = plan(&p, &t);
    assert!(!plan2.seccomp.deny.iter().any(|r| r.name == "ptrace"));
    assert!(plan2.seccomp.kill_foreign_abi);
}

#[test]
fn nested_userns_gives_back_only_what_an_inner_sandbox_needs() {
    let t = Tree::new("nested");
    let plan1 = plan(&base(&t), &t);
    let denied = |p: &Plan, name: &str| p.seccomp.deny.iter().any(|r| r.name == name);
    for call in crate::plan::seccomp::NESTED_USERNS_CALLS {
        assert!(denied(&plan1, call), "{call}");
    }
    assert!(denied(&plan1, "clone"));
    assert!(plan1.seccomp.nested_userns.is_none());
    assert!(
        !plan1
            .landlock
            .devices
            .iter()
            .any(|r| r.path == Path::new("/proc"))
    );
    let mut p = base(&t);
    p.process.allow_nested_userns = Some(Sourced::new(true, src("test")));
    let plan2 = plan(&p, &t);
    for call in crate::plan::seccomp::NESTED_USERNS_CALLS {
        assert!(!denied(&plan2, call), "{call}");
    }
    // clone is denied only for its namespace flags: that rule goes too.
    assert!(!denied(&plan2, "clone"));
    for call in [
        "setns",
        "clone3",
        "fsopen",
        "fsconfig",
        "open_tree",
        "move_mount",
        "keyctl",
        "bpf",
        "ptrace",
    ] {
        assert!(denied(&plan2, call), "{call}");
    }
    assert!(plan2.seccomp.nested_userns.is_some());
    // The uid map of a nested namespace is written in the cage's procfs.
    assert!(
        plan2
            .landlock
            .devices
            .iter()
            .any(|r| r.path == Path::new("/proc"))
    );
    assert_eq!(plan1.landlock.write.len(), plan2.landlock.write.len());
    // false is the same as unset.
    let mut p = base(&t);
    p.process.allow_nested_userns = Some(Sourced::new(false, src("test")));
    assert!(denied(&plan(&p, &t), "unshare"));
}

#[test]
fn network_defaults_to_none() {
    let t = Tree::new("net");
    assert_eq!(plan(&base(&t), &t).network.mode, NetMode::None);
}

#[test]
fn cages_own_files_are_hidden_under_a_broad_grant() {
    let t = Tree::new("own");
    std::fs::create_dir_all(t.home().join(".config/cage")).unwrap();
    let mut p = base(&t);
    p.filesystem.read.push(rule(&t.home(), false));
    let plan = plan(&p, &t);
    let cfg = t.home().join(".config/cage");
    assert!(
        plan.mounts
            .iter()
            .any(|m| matches!(m, Mount::Hide { dst, .. } if *dst == cfg))
    );
}

#[test]
fn untrusted_project_cannot_reach_outside_through_a_link() {
    let t = Tree::new("link");
    std::fs::create_dir_all(t.home().join("notes")).unwrap();
    std::os::unix::fs::symlink(t.home().join("notes"), t.ws().join("docs")).unwrap();
    let file = t.ws().join(".cage.toml");
    let mut p = base(&t);
    p.filesystem.read.push(Sourced::new(
        policy::PathRule {
            path: t.ws().join("docs"),
            optional: false,
        },
        Provenance::File {
            path: file.clone(),
            line: 2,
        },
    ));
    p.project = Some(policy::ProjectPolicy {
        file: file.clone(),
        root: t.ws(),
        trusted: false,
        changed: false,
        resolved: Default::default(),
        preview: false,
        refused: Vec::new(),
    });
    let err = build(&p, &t.host(), &["sh".to_string()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("outside the project root") && err.contains("cage trust"),
        "{err}"
    );
    // The same link as the workspace path.
    let mut q = base(&t);
    q.workspace.path = Some(Sourced::new(
        t.ws().join("docs"),
        Provenance::File {
            path: file.clone(),
            line: 3,
        },
    ));
    q.project = p.project.clone();
    let err = build(&q, &t.host(), &["sh".to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the project root"), "{err}");
    // Trusted, a link made since the pin is refused, and names the link.
    let ws_docs = t.ws().join("docs");
    let mut trusted = policy::ProjectPolicy {
        file,
        root: t.ws(),
        trusted: true,
        changed: false,
        resolved: Default::default(),
        preview: false,
        refused: Vec::new(),
    };
    p.project = Some(trusted.clone());
    let err = build(&p, &t.host(), &["sh".to_string()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("through the link {}", ws_docs.display()))
            && err.contains("cage trust"),
        "{err}"
    );
    // Where the pin says it led when the user trusted it, it is theirs.
    let real = t.home().join("notes").canonicalize().unwrap();
    trusted.resolved.insert(ws_docs.clone(), Some(real));
    p.project = Some(trusted);
    let plan = build(&p, &t.host(), &["sh".to_string()]).unwrap();
    assert!(bind_of(&plan, &t.home().join("notes")).is_some());
    // The link itself already exists inside the workspace bind: no mount
    // point is made for it.
    assert!(
        !plan
            .mounts
            .iter()
            .any(|m| matches!(m, Mount::Symlink { dst, .. } if *dst == t.ws().join("docs")))
    );
}

#[test]
fn parents_of_protected_paths_are_pinned() {
    let t = Tree::new("pin");
    std::fs::create_dir_all(t.ws().join("sub/deeper")).unwrap();
    std::fs::write(t.ws().join("sub/deeper/.envrc"), "x").unwrap();
    let plan = plan(&base(&t), &t);
    let pinned: Vec<&Path> = plan
        .mounts
        .iter()
        .filter(|m| matches!(m, Mount::Pin { .. }))
        .map(|m| m.dst())
        .collect();
    for want in [".git", "sub", "sub/deeper"] {
        assert!(
            pinned.contains(&t.ws().join(want).as_path()),
            "{want} not pinned: {pinned:?}"
        );
    }
    assert!(
        !pinned.contains(&t.ws().as_path()),
        "the workspace is a bind already"
    );
}

#[test]
fn protected_paths_created_during_the_session_are_found() {
    let t = Tree::new("created");
    std::os::unix::fs::symlink("/etc", t.ws().join(".idea")).unwrap();
    let plan = plan(&base(&t), &t);
    assert!(
        super::created_protected(&plan.workspace).paths.is_empty(),
        "nothing new yet (the old link is known)"
    );
    std::fs::write(t.ws().join(".envrc"), "evil").unwrap();
    std::fs::create_dir_all(t.ws().join("a")).unwrap();
    std::os::unix::fs::symlink("/tmp", t.ws().join("a/.vscode")).unwrap();
    let created = super::created_protected(&plan.workspace).paths;
    assert!(created.contains(&t.ws().join(".envrc")), "{created:?}");
    assert!(created.contains(&t.ws().join("a/.vscode")), "{created:?}");
    assert_eq!(created.len(), 2, "{created:?}");
}

fn proxy_policy(t: &Tree) -> Policy {
    let mut p = base(t);
    p.network.mode = Some(Sourced::new(NetMode::Proxy, src("test")));
    p
}

#[test]
fn proxy_mode_points_the_environment_at_the_proxy() {
    let t = Tree::new("proxy-env");
    let mut p = proxy_policy(&t);
    // A host's proxy settings are replaced; an explicit value still wins.
    p.env
        .pass
        .push(Sourced::new("HTTPS_PROXY".into(), src("test")));
    p.env.set.push(Sourced::new(
        (
            "NO_PROXY".into(),
            "localhost,127.0.0.1,::1,.internal".into(),
        ),
        src("test"),
    ));
    let mut host = t.host();
    host.env
        .push(("HTTPS_PROXY".into(), "http://corp:8080".into()));
    let plan = build(&p, &host, &["sh".to_string()]).unwrap();
    let var = |n: &str| {
        plan.env
            .iter()
            .find(|v| v.name == n)
            .map(|v| v.value.as_str())
    };
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        assert_eq!(var(name), Some("http://127.0.0.1:3128"), "{name}");
        assert_eq!(var(&name.to_lowercase()), Some("http://127.0.0.1:3128"));
    }
    assert_eq!(var("no_proxy"), Some("localhost,127.0.0.1,::1"));
    assert_eq!(var("NO_PROXY"), Some("localhost,127.0.0.1,::1,.internal"));
    let proxy = plan.network.proxy.as_ref().unwrap();
    assert_eq!(proxy.listen.to_string(), "127.0.0.1:3128");
    assert_eq!(proxy.dns.to_string(), "127.0.0.1:53");
}

#[test]
fn proxy_mode_binds_a_resolver_file_over_the_hosts() {
    let t = Tree::new("proxy-resolv");
    let plan = plan(&proxy_policy(&t), &t);
    let file = plan
        .mounts
        .iter()
        .find_map(|m| match m {
            Mount::File { dst, contents, .. } if contents.starts_with("nameserver") => {
                Some((dst.clone(), contents.clone()))
            }
            _ => None,
        })
        .expect("a resolver file in the view");
    assert!(file.1.starts_with("nameserver 127.0.0.1\n"));
    // /etc/resolv.conf, or the file it links to.
    let etc = Path::new("/etc/resolv.conf");
    assert_eq!(
        file.0,
        crate::host::canonical(etc).unwrap_or(etc.to_path_buf())
    );
    // Mounted after /etc, and readable under Landlock.
    let pos = |d: &Path| plan.mounts.iter().position(|m| m.dst() == d);
    if file.0.starts_with("/etc") {
        assert!(pos(Path::new("/etc")) < pos(&file.0));
    }
    assert!(plan.landlock.read.iter().any(|r| r.path == file.0));
}

#[test]
fn host_mode_has_no_proxy() {
    let t = Tree::new("no-proxy");
    let mut p = base(&t);
    p.network.mode = Some(Sourced::new(NetMode::Host, src("test")));
    let plan = plan(&p, &t);
    assert!(plan.network.proxy.is_none());
    assert!(!plan.env.iter().any(|v| v.name.ends_with("_PROXY")));
    assert!(
        !plan.mounts.iter().any(
            |m| matches!(m, Mount::File { contents, .. } if contents.starts_with("nameserver"))
        )
    );
}

/// None mode: the agent's attempts go to cage's proxy and DNS stub, which
/// allow nothing (whatever allow rules a policy holds) and forward no
/// loopback port, so each attempt is refused with a record.
#[test]
fn none_mode_has_a_proxy_that_allows_nothing() {
    let t = Tree::new("none-proxy");
    let mut p = base(&t);
    p.network.mode = Some(Sourced::new(NetMode::None, src("test")));
    for rule in ["example.com", "127.0.0.1:8080"] {
        p.network.allow.push(Sourced::new(
            policy::HostPattern::parse(rule).unwrap(),
            src("test"),
        ));
    }
    let plan = plan(&p, &t);
    let proxy = plan.network.proxy.as_ref().expect("a refusing proxy");
    assert!(proxy.forwards.is_empty());
    assert!(plan.env.iter().any(|v| v.name == "HTTPS_PROXY"));
    assert!(
        plan.mounts.iter().any(
            |m| matches!(m, Mount::File { contents, .. } if contents.starts_with("nameserver"))
        )
    );
    let rules = crate::proxy::Rules::from_plan(&plan.network);
    assert!(rules.decide_name("example.com").is_none());
    assert!(matches!(
        rules.decide("example.com", 443),
        crate::proxy::rules::Verdict::Deny(None)
    ));
}

#[test]
fn only_explicit_loopback_ip_and_port_rules_are_forwarded() {
    let t = Tree::new("fwd");
    let mut p = proxy_policy(&t);
    for rule in [
        "127.0.0.1:8080",
        "[::1]:9000",
        "127.0.0.1",      // no port: 443 and 80 through the proxy only
        "localhost:8081", // a name: the proxy resolves and refuses loopback
        "10.0.0.1:8082",  // not loopback
        "127.0.0.1:3128", // the proxy's own port
        "127.0.0.1:*",
    ] {
        p.network.allow.push(Sourced::new(
            policy::HostPattern::parse(rule).unwrap(),
            src("test"),
        ));
    }
    let plan = plan(&p, &t);
    let fwd: Vec<String> = plan
        .network
        .proxy
        .as_ref()
        .unwrap()
        .forwards
        .iter()
        .map(|f| f.addr.to_string())
        .collect();
    assert_eq!(fwd, ["127.0.0.1:8080", "[::1]:9000"]);
}

#[test]
fn overlay_mode_mounts_the_workspace_over_the_sessions_upper_layer() {
    let t = Tree::new("overlay");
    std::fs::write(t.ws().join(".envrc"), "").unwrap();
    let mut p = base(&t);
    p.workspace.mode = Some(Sourced::new(policy::WorkspaceMode::Overlay, src("test")));
    let plan = super::build_for_session(&p, &t.host(), &["sh".to_string()], Some("S1")).unwrap();
    let session = t.home().join(".local/state/cage/sessions/S1");
    assert!(plan.mounts.iter().any(|m| matches!(m,
        Mount::Overlay { dst, lower, upper, work, .. }
            if *dst == t.ws() && *lower == t.ws() && *upper == session.join("upper")
                && *work == session.join("work"))));
    // No read-write bind of the host workspace, and protected paths stay
    // read-only binds over the overlay.
    assert!(bind_of(&plan, &t.ws()).is_none());
    assert!(matches!(
        bind_of(&plan, &t.ws().join(".envrc")),
        Some(Mount::Bind {
            access: Access::ReadOnly,
            ..
        })
    ));
    assert!(plan.landlock.write.iter().any(|r| r.path == t.ws()));
    // Without a session (dry run), a placeholder names the directory.
    let dry = build(&p, &t.host(), &["sh".to_string()]).unwrap();
    assert_eq!(
        dry.workspace.overlay.unwrap().session,
        super::SESSION_PLACEHOLDER
    );
}

#[test]
fn linked_worktree_gitdir_is_granted_only_when_it_links_back() {
    let t = Tree::new("worktree");
    let ws = t.ws();
    std::fs::remove_dir_all(ws.join(".git")).unwrap();
    let common = t.0.join("main/.git");
    let gitdir = common.join("worktrees/proj");
    std::fs::create_dir_all(common.join("hooks")).unwrap();
    std::fs::create_dir_all(&gitdir).unwrap();
    for f in [common.join("HEAD"), gitdir.join("HEAD")] {
        std::fs::write(f, "ref: refs/heads/main\n").unwrap();
    }
    std::fs::write(common.join("config"), "").unwrap();
    std::fs::write(gitdir.join("commondir"), "../..\n").unwrap();
    std::fs::write(ws.join(".git"), format!("gitdir: {}\n", gitdir.display())).unwrap();

    // No backlink yet: nothing outside the workspace is granted.
    let plan = plan(&base(&t), &t);
    assert!(plan.workspace.gitdirs.is_empty());
    assert!(bind_of(&plan, &common).is_none());
    assert!(plan.notes.iter().any(|n| n.contains("not granted")));

    std::fs::write(
        gitdir.join("gitdir"),
        format!("{}\n", ws.join(".git").display()),
    )
    .unwrap();
    let plan = super::build(&base(&t), &t.host(), &["sh".to_string()]).unwrap();
    assert_eq!(plan.workspace.gitdirs.len(), 1);
    assert!(matches!(
        bind_of(&plan, &common),
        Some(Mount::Bind {
            access: Access::ReadWrite,
            ..
        })
    ));
    for ro in [
        common.join("hooks"),
        common.join("config"),
        gitdir.join("commondir"),
        gitdir.join("gitdir"),
        ws.join(".git"),
    ] {
        assert!(
            matches!(
                bind_of(&plan, &ro),
                Some(Mount::Bind {
                    access: Access::ReadOnly,
                    ..
                })
            ),
            "{} is not read-only",
            ro.display()
        );
    }
    // The worktree's gitdir and the worktrees directory are pinned.
    for pin in [gitdir.clone(), common.join("worktrees")] {
        assert!(
            plan.mounts
                .iter()
                .any(|m| matches!(m, Mount::Pin { dst, .. } if *dst == pin)),
            "{} is not pinned",
            pin.display()
        );
    }
}

#[test]
fn protected_names_match_at_any_depth() {
    let names: Vec<String> = super::BUILTIN_PROTECTED
        .iter()
        .map(|s| s.to_string())
        .collect();
    let hit = |p: &str| super::is_protected(Path::new(p), &names);
    assert_eq!(hit(".envrc").as_deref(), Some(".envrc"));
    assert_eq!(
        hit("a/b/.git/hooks/pre-commit").as_deref(),
        Some(".git/hooks")
    );
    assert!(hit(".git/modules/sub/hooks/x").is_some());
    assert!(hit(".git/modules/sub/config").is_some());
    assert_eq!(hit(".git/modules/sub/objects/ab/cd"), None);
    assert_eq!(hit(".git/modules/sub/refs/heads/main"), None);
    // The gitdir allowlist: what git writes, and nothing else.
    for ok in [
        ".git/index",
        ".git/index.lock",
        ".git/HEAD",
        ".git/ORIG_HEAD",
        ".git/packed-refs",
        ".git/logs/HEAD",
        ".git/refs/heads/x.lock",
        ".git/rebase-merge/done",
        ".git/COMMIT_EDITMSG",
        ".git/index.stash.1234",
        ".git/worktrees/w/HEAD",
    ] {
        assert_eq!(hit(ok), None, "{ok}");
    }
    for bad in [
        ".git/commondir",
        ".git/x/config",
        ".git/config.worktree",
        ".git/objects/info/alternates",
        ".git/worktrees/w/commondir",
        ".git/worktrees/w/gitdir",
        ".git/fsmonitor--daemon.ipc",
        ".git/config.lock",
        "sub/HEAD",
        "x/.git",
    ] {
        assert!(hit(bad).is_some(), "{bad}");
    }
    assert_eq!(hit("sub/.git").as_deref(), Some(".git"));
    assert_eq!(hit("src/envrc.rs"), None);
    assert_eq!(hit(".git/objects/ab/cdef"), None);
}

fn state_rule(dir: &Path, keep: &[(&str, bool)]) -> Sourced<policy::StatePolicy> {
    Sourced::new(
        policy::StatePolicy {
            dir: dir.to_path_buf(),
            keep: keep
                .iter()
                .map(|(p, dir)| policy::StateKeep {
                    path: PathBuf::from(p),
                    dir: *dir,
                })
                .collect(),
            about: Some("the agent's state".into()),
            settings: Vec::new(),
        },
        src("test"),
    )
}

#[test]
fn a_state_directory_is_an_overlay_with_its_keep_dirs_bound_on_top() {
    let t = Tree::new("state");
    std::fs::create_dir_all(t.home().join(".agent/history")).unwrap();
    let mut p = base(&t);
    let dir = t.home().join(".agent");
    p.filesystem.state = vec![state_rule(
        &dir,
        &[("history", true), ("new", true), ("login.json", false)],
    )];
    let plan = super::build_for_session(&p, &t.host(), &["sh".to_string()], Some("S")).unwrap();
    let layer = t.home().join(".local/state/cage/sessions/S/state/0");
    let overlay = plan
        .mounts
        .iter()
        .position(|m| {
            matches!(m, Mount::Overlay { dst, lower, upper, work, .. }
                if *dst == dir && *lower == dir && *upper == layer.join("upper")
                    && *work == layer.join("work"))
        })
        .expect("the overlay");
    for keep in ["history", "new"] {
        let at = plan
            .mounts
            .iter()
            .position(|m| {
                matches!(m, Mount::Bind { src, dst, access: Access::ReadWrite, .. }
                    if *src == dir.join(keep) && *dst == dir.join(keep))
            })
            .expect(keep);
        assert!(at > overlay, "{keep} is bound over the overlay");
    }
    // Only the missing keep directory is created (the state dir exists).
    let created: Vec<&Path> = plan.create.iter().map(|c| c.path.as_path()).collect();
    assert_eq!(created, [dir.join("new").as_path()]);
    assert_eq!(plan.state[0].files, [PathBuf::from("login.json")]);
    // Writable to the agent, as a whole.
    assert!(plan.landlock.write.iter().any(|r| r.path == dir));
}

#[test]
fn a_missing_state_directory_is_created_and_a_hidden_one_never() {
    let t = Tree::new("state-missing");
    let mut p = base(&t);
    let dir = t.home().join(".agent");
    p.filesystem.state = vec![
        state_rule(&dir, &[("h", true)]),
        state_rule(&t.home().join(".ssh/agent"), &[]),
    ];
    let plan = build(&p, &t.host(), &["sh".to_string()]).unwrap();
    let created: Vec<&Path> = plan.create.iter().map(|c| c.path.as_path()).collect();
    assert_eq!(created, [dir.as_path(), dir.join("h").as_path()]);
    assert_eq!(plan.create[0].about.as_deref(), Some("the agent's state"));
    assert_eq!(plan.state.len(), 1);
    assert!(plan.notes.iter().any(|n| n.contains("hidden")));
}

#[test]
fn a_writable_home_keeps_git_config_read_only_and_cages_dirs_hidden_and_pinned() {
    let t = Tree::new("rw-home");
    std::fs::write(t.home().join(".gitconfig"), "").unwrap();
    std::fs::create_dir_all(t.home().join(".local/state/cage")).unwrap();
    let mut p = base(&t);
    p.filesystem.write.push(rule(&t.home(), false));
    let plan = plan(&p, &t);
    let has = |f: &dyn Fn(&Mount) -> bool| plan.mounts.iter().any(f);
    let gitconfig = t.home().join(".gitconfig");
    assert!(has(
        &|m| matches!(m, Mount::Bind { dst, access: Access::ReadOnly, .. }
        if *dst == gitconfig)
    ));
    // Missing: a guard, named at the end.
    assert!(
        plan.guards
            .iter()
            .any(|g| g.path == t.home().join(".config/git"))
    );
    let cfg = t.home().join(".config/cage");
    assert!(has(
        &|m| matches!(m, Mount::Hide { dst, .. } if *dst == cfg)
    ));
    assert!(
        plan.create
            .iter()
            .any(|c| c.path == cfg && c.about.is_none())
    );
    for pinned in [".config", ".local", ".local/state"] {
        let d = t.home().join(pinned);
        assert!(
            has(&|m| matches!(m, Mount::Pin { dst, .. } if *dst == d)),
            "{pinned}"
        );
    }
    // Without a writable grant there, nothing of this is needed.
    let plan = super::build(&base(&t), &t.host(), &["sh".to_string()]).unwrap();
    assert!(plan.create.is_empty());
    assert!(
        !plan
            .mounts
            .iter()
            .any(|m| matches!(m, Mount::Pin { dst, .. } if !dst.starts_with(t.ws())))
    );
}

#[test]
fn shared_dirs_are_refused_as_workspace_or_grant_unless_named() {
    use super::build::BuildError;
    let t = Tree::new("shared");
    let refused = |p: &Policy| {
        matches!(
            build(p, &t.host(), &["sh".to_string()]),
            Err(BuildError::SharedDir { .. })
        )
    };
    let mut ws = base(&t);
    ws.workspace.path = Some(Sourced::new(PathBuf::from("/tmp"), src("test")));
    assert!(refused(&ws));
    for dir in ["/tmp", "/dev/shm", "/", "/run"] {
        let mut p = base(&t);
        p.filesystem.write.push(rule(Path::new(dir), false));
        assert!(refused(&p), "{dir}");
    }
    // A directory below one is fine (the harness's trees live in /tmp).
    let mut p = base(&t);
    p.filesystem.read.push(rule(&t.0, false));
    assert!(!refused(&p));
    // Named with --allow-shared-dir, accepted.
    ws.security.allow_shared_dir = vec![Sourced::new(
        PathBuf::from("/tmp"),
        Provenance::flag("--allow-shared-dir"),
    )];
    assert!(!refused(&ws));
}

#[test]
fn sockets_in_granted_trees_are_hidden_and_named_sockets_kept() {
    use std::os::unix::net::UnixListener;
    let t = Tree::new("sockets");
    let grant = t.0.join("grant");
    std::fs::create_dir_all(grant.join("deep/er")).unwrap();
    let inside = grant.join("deep/er/s.sock");
    let in_ws = t.ws().join("w.sock");
    let named = t.0.join("named.sock");
    let _l = [&inside, &in_ws, &named].map(|p| UnixListener::bind(p).unwrap());
    let mut p = base(&t);
    p.filesystem.write.push(rule(&grant, false));
    p.filesystem.write.push(rule(&named, false));
    let plan = plan(&p, &t);
    let hidden = |dst: &Path| {
        plan.mounts
            .iter()
            .any(|m| matches!(m, Mount::Hide { .. }) && m.dst() == dst)
    };
    assert!(hidden(&inside));
    assert!(hidden(&in_ws));
    assert!(!hidden(&named));
}

#[test]
fn the_hosts_file_names_the_cages_hostname() {
    let t = Tree::new("hosts");
    let plan = plan(&base(&t), &t);
    let hosts = Path::new("/etc/hosts");
    let dst = crate::host::canonical(hosts).unwrap_or(hosts.to_path_buf());
    let contents = plan
        .mounts
        .iter()
        .find_map(|m| match m {
            Mount::File {
                dst: d, contents, ..
            } if *d == dst => Some(contents.clone()),
            _ => None,
        })
        .expect("a hosts file in the view");
    assert!(
        contents
            .lines()
            .any(|l| l.split_whitespace().skip(1).any(|n| n == plan.hostname))
    );
}

/// The command's grants: found on the PATH the host has, outside the view,
/// granted read-only with its reason; PATH inside keeps the user's entry
/// first; a hidden installation is not granted and says why.
#[test]
fn the_command_is_granted_where_the_users_path_finds_it() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tree::new("command");
    let nvm = t.home().join(".nvm/versions/node/v22.0.0");
    std::fs::create_dir_all(nvm.join("bin")).unwrap();
    std::fs::create_dir_all(nvm.join("lib/node_modules/agent")).unwrap();
    let script = nvm.join("lib/node_modules/agent/cli.js");
    std::fs::write(&script, "#!/usr/bin/env node\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("../lib/node_modules/agent/cli.js", nvm.join("bin/agent")).unwrap();
    std::fs::write(nvm.join("bin/node"), "").unwrap();
    std::fs::set_permissions(nvm.join("bin/node"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut host = t.host();
    let user_path = format!("{}:/usr/bin:/bin", nvm.join("bin").display());
    host.env.push(("PATH".into(), user_path));
    let plan = super::build(&base(&t), &host, &["agent".to_string()]).unwrap();
    let grant = plan
        .mounts
        .iter()
        .find(|m| m.dst() == nvm)
        .expect("the nvm version directory is granted");
    assert!(
        matches!(grant, Mount::Bind { access: Access::ReadOnly, source: Provenance::Default { what }, .. }
            if what.contains("resolved on your PATH")),
        "{grant:?}"
    );
    assert_eq!(plan.command.program, Some(nvm.join("bin/agent")));
    let path = plan.env.iter().find(|v| v.name == "PATH").unwrap();
    assert!(
        path.value
            .starts_with(&nvm.join("bin").display().to_string())
    );

    // Hidden: no grant, no program, and the reason.
    let mut p = base(&t);
    p.filesystem.hide.push(rule(&t.home().join(".nvm"), true));
    let plan = super::build(&p, &host, &["agent".to_string()]).unwrap();
    assert!(!plan.mounts.iter().any(|m| m.dst() == nvm));
    assert!(plan.command.program.is_none());
    let why = plan.command.not_found.expect("a reason").to_string();
    assert!(why.contains("is hidden by"), "{why}");

    // Not on the host at all: the PATH searched.
    let plan = super::build(&base(&t), &host, &["no-such".to_string()]).unwrap();
    let why = plan.command.not_found.expect("a reason").to_string();
    assert!(why.contains("command not found on your PATH"), "{why}");
}

fn secret(
    name: &str,
    from: policy::SecretSource,
    env: &str,
    optional: bool,
) -> Sourced<policy::SecretPolicy> {
    Sourced::new(
        policy::SecretPolicy {
            name: name.into(),
            from,
            env: Some(env.into()),
            hosts: vec![policy::HostPattern::parse("api.example.com").unwrap()],
            exclude: Vec::new(),
            body: false,
            host_vars: vec!["API_BASE".into()],
            optional,
            mask: false,
        },
        src("test"),
    )
}

#[test]
fn secrets_hold_markers_in_the_plan_and_hide_their_files() {
    let t = Tree::new("secrets");
    std::fs::write(t.ws().join("token.txt"), "sk-file-0123456789\n").unwrap();
    let mut host = t.host();
    host.env
        .push(("API_KEY".into(), "sk-real-0123456789abcdef".into()));
    host.env
        .push(("API_BASE".into(), "https://gw.example:8443/v1".into()));
    let mut p = base(&t);
    p.network.mode = Some(Sourced::new(NetMode::Proxy, src("test")));
    p.env.pass.push(Sourced::new("API_*".into(), src("test")));
    p.secrets = vec![
        secret(
            "key",
            policy::SecretSource::Env("API_KEY".into()),
            "API_KEY",
            false,
        ),
        secret(
            "file",
            policy::SecretSource::File(t.ws().join("token.txt")),
            "TOKEN",
            false,
        ),
        // Optional, and its variable is unset: skipped.
        secret(
            "gone",
            policy::SecretSource::Env("UNSET".into()),
            "UNSET",
            true,
        ),
    ];
    let plan = build(&p, &host, &["true".to_string()]).unwrap();
    let var = |n: &str| {
        plan.env
            .iter()
            .find(|v| v.name == n)
            .map(|v| v.value.clone())
    };
    assert_eq!(var("API_KEY").as_deref(), Some("<secret key>"));
    assert_eq!(var("TOKEN").as_deref(), Some("<secret file>"));
    assert_eq!(var("UNSET"), None);
    assert_eq!(
        var("NODE_EXTRA_CA_CERTS").as_deref(),
        Some(super::secrets::BUNDLE)
    );
    let json = serde_json::to_string(&plan).unwrap();
    assert!(
        !json.contains("sk-real-0123456789abcdef"),
        "the value is in the plan"
    );
    let sp = plan.secrets.as_ref().unwrap();
    assert_eq!(sp.secrets.len(), 2);
    // The host a variable names joins the secret's hosts, with its port.
    let hosts: Vec<String> = sp.secrets[0].hosts.iter().map(|h| h.to_string()).collect();
    assert_eq!(hosts, ["api.example.com", "gw.example:8443"]);
    // The file source is hidden though the workspace shows its directory.
    assert!(
        plan.mounts
            .iter()
            .any(|m| matches!(m, Mount::Hide { dst, .. } if *dst == t.ws().join("token.txt")))
    );
    assert!(
        plan.mounts.iter().any(
            |m| matches!(m, Mount::File { dst, .. } if dst == Path::new(super::secrets::BUNDLE))
        )
    );
}

#[test]
fn a_secret_without_the_proxy_or_its_source_refuses_to_run() {
    let t = Tree::new("secrets-refuse");
    let mut host = t.host();
    host.env
        .push(("API_KEY".into(), "sk-real-0123456789abcdef".into()));
    let mut p = base(&t);
    p.secrets = vec![secret(
        "key",
        policy::SecretSource::Env("API_KEY".into()),
        "API_KEY",
        false,
    )];
    let e = build(&p, &host, &["true".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs network mode proxy"), "{e}");
    p.network.mode = Some(Sourced::new(NetMode::Proxy, src("test")));
    p.secrets = vec![secret(
        "key",
        policy::SecretSource::Env("NOPE".into()),
        "API_KEY",
        false,
    )];
    let e = build(&p, &host, &["true".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("reads env:NOPE, which does not exist"), "{e}");
}

#[test]
fn a_nul_byte_in_a_set_variable_is_refused_with_its_rule() {
    let t = Tree::new("env-nul");
    let mut p = base(&t);
    p.env.set.push(Sourced::new(
        ("GREETING".into(), "hi\0there".into()),
        Provenance::File {
            path: t.ws().join(".cage.toml"),
            line: 7,
        },
    ));
    let e = build(&p, &t.host(), &["sh".to_string()]).unwrap_err();
    assert!(
        matches!(&e, super::BuildError::EnvNul { name, .. } if name == "GREETING"),
        "{e}"
    );
    assert!(e.to_string().contains(".cage.toml:7"), "{e}");
}

fn graded_policy(t: &Tree, mode: NetMode) -> Policy {
    let mut p = base(t);
    p.network.mode = Some(Sourced::new(mode, src("test")));
    p.security.allow_degraded = vec![Sourced::new(policy::Layer::Namespaces, src("test"))];
    p
}

/// The graded mode grants the view's host paths, never the home or /tmp,
/// writes only in the workspace and the private tmp, refuses every socket.
#[test]
fn graded_mode_grants_the_views_host_paths_only() {
    use super::graded::Graded;
    let t = Tree::new("graded");
    let plan = plan(&graded_policy(&t, NetMode::None), &t);
    let Some(Graded::Ready(g)) = &plan.graded else {
        panic!("no graded plan: {:?}", plan.graded);
    };
    let write: Vec<&Path> = g.landlock.write.iter().map(|r| r.path.as_path()).collect();
    assert_eq!(write, [t.ws().as_path(), g.tmp.as_path()], "{write:?}");
    assert!(
        g.tmp
            .starts_with(t.home().join(".local/state/cage/sessions"))
    );
    let read: Vec<&Path> = g.landlock.read.iter().map(|r| r.path.as_path()).collect();
    assert!(read.contains(&Path::new("/usr")) && read.contains(&Path::new("/proc")));
    for denied in [t.home(), PathBuf::from("/tmp"), PathBuf::from("/dev")] {
        assert!(
            !read.contains(&denied.as_path()) && !write.contains(&denied.as_path()),
            "{} granted",
            denied.display()
        );
    }
    assert!(g.landlock.list.is_empty() && g.landlock.deny_tcp);
    // The host's terminals are not the cage's.
    assert!(
        g.landlock
            .devices
            .iter()
            .all(|d| !d.path.starts_with("/dev/pts") && d.path != Path::new("/dev/ptmx")),
        "{:?}",
        g.landlock.devices
    );
    let socket: Vec<_> = g
        .seccomp
        .deny
        .iter()
        .filter(|r| r.name == "socket")
        .collect();
    assert_eq!(socket.len(), 1);
    assert_eq!(socket[0].when, super::ArgMatch::Always);
    assert!(g.env.iter().any(|v| v.name == "TMPDIR"));
    // The normal mode is untouched.
    assert!(
        plan.landlock
            .write
            .iter()
            .any(|r| r.path == Path::new("/tmp"))
    );
}

/// What the view keeps read-only inside the workspace and exists is the
/// graded guard's (no view keeps it there); git's everyday files are not;
/// the normal plan keeps none (its binds do).
#[test]
fn graded_mode_keeps_existing_protected_paths_through_the_guard() {
    use super::graded::Graded;
    let t = Tree::new("graded-existing");
    let ws = t.ws();
    for f in [
        ".git/config",
        ".git/index",
        ".git/HEAD",
        ".envrc",
        "src/a.rs",
    ] {
        std::fs::create_dir_all(ws.join(f).parent().unwrap()).unwrap();
        std::fs::write(ws.join(f), "x").unwrap();
    }
    let plan = plan(&graded_policy(&t, NetMode::None), &t);
    let Some(Graded::Ready(g)) = &plan.graded else {
        panic!("no graded plan: {:?}", plan.graded);
    };
    let kept: Vec<&Path> = g.guard.existing.iter().map(|e| e.value.as_path()).collect();
    for p in [".git/config", ".git/hooks", ".envrc"] {
        assert!(
            kept.contains(&ws.join(p).as_path()),
            "{p} not kept: {kept:?}"
        );
    }
    let refused = |p: &str| g.guard.write_refusal(&ws.join(p)).is_some();
    assert!(refused(".git/config") && refused(".git/hooks/pre-commit") && refused(".envrc"));
    assert!(!refused(".git/index") && !refused(".git/HEAD") && !refused("src/a.rs"));
    let away = |p: &str| g.guard.move_away_refusal(&ws.join(p)).is_some();
    assert!(away(".git") && away(".git/hooks") && !away("src"));
    assert!(plan.guard.existing.is_empty());
}

/// The graded proxy mode: socket(2) only for plain TCP (one rule per
/// argument; bind, listen and fast open are the guard's), Landlock still denying TCP
/// (the guard connects for the agent), and no NO_PROXY: the host's
/// loopback goes through the proxy.
#[test]
fn graded_proxy_mode_allows_plain_tcp_sockets_only() {
    use super::graded::Graded;
    let t = Tree::new("graded-proxy");
    let plan = plan(&graded_policy(&t, NetMode::Proxy), &t);
    let Some(Graded::Ready(g)) = &plan.graded else {
        panic!("no graded plan: {:?}", plan.graded);
    };
    let rules = |name: &str| -> Vec<&super::ArgMatch> {
        g.seccomp
            .deny
            .iter()
            .filter(|r| r.name == name)
            .map(|r| &r.when)
            .collect()
    };
    let not_in = |arg: u8, values: Vec<u32>| super::ArgMatch::NotIn32 { arg, values };
    assert_eq!(
        rules("socket"),
        [
            &not_in(0, vec![2, 10]),
            &not_in(1, vec![1, 0x801, 0x80001, 0x80801]),
            &not_in(2, vec![0, 6]),
        ]
    );
    assert!(g.landlock.deny_tcp);
    assert!(g.env.iter().any(|v| v.name == "HTTPS_PROXY"));
    assert!(
        !g.env
            .iter()
            .any(|v| v.name.eq_ignore_ascii_case("NO_PROXY"))
    );
    assert!(plan.env.iter().any(|v| v.name == "NO_PROXY"));
}

/// What needs namespaces refuses the graded mode, with the reason.
#[test]
fn graded_mode_refuses_what_needs_namespaces() {
    use super::graded::Graded;
    let t = Tree::new("graded-refused");
    let host = plan(&graded_policy(&t, NetMode::Host), &t);
    assert!(
        matches!(&host.graded, Some(Graded::Refused { why, .. }) if why.contains("--net host")),
        "{:?}",
        host.graded
    );
    let mut p = graded_policy(&t, NetMode::None);
    p.workspace.mode = Some(Sourced::new(policy::WorkspaceMode::Overlay, src("test")));
    let overlay = plan(&p, &t);
    assert!(
        matches!(&overlay.graded, Some(Graded::Refused { why, .. }) if why.contains("overlay")),
        "{:?}",
        overlay.graded
    );
    // Not allowed: no graded plan at all.
    assert!(plan(&base(&t), &t).graded.is_none());
}

#[test]
fn a_masked_login_file_leaves_the_copy_back_and_must_be_in_a_state_dir() {
    let t = Tree::new("secrets-mask");
    let dir = t.home().join(".agent");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("login.json"),
        r#"{"tokens":{"access":"tok-real-0123456789","refresh":"ref-real-0123456789"}}"#,
    )
    .unwrap();
    let mut p = base(&t);
    p.network.mode = Some(Sourced::new(NetMode::Proxy, src("test")));
    p.filesystem.state = vec![state_rule(&dir, &[("login.json", false)])];
    let json = |pointer: &str| policy::SecretSource::Json {
        path: dir.join("login.json"),
        pointer: pointer.into(),
    };
    let masked = |name: &str, pointer: &str| {
        let mut s = secret(name, json(pointer), "UNUSED", true);
        s.value.env = None;
        s.value.mask = true;
        s
    };
    p.secrets = vec![
        masked("access", "/tokens/access"),
        masked("refresh", "/tokens/refresh"),
        // Optional, and the pointer names nothing: skipped.
        masked("gone", "/tokens/none"),
    ];
    let plan = build(&p, &t.host(), &["true".to_string()]).unwrap();
    assert_eq!(plan.state[0].files, Vec::<PathBuf>::new());
    assert_eq!(plan.state[0].masked, [PathBuf::from("login.json")]);
    assert_eq!(plan.secrets.as_ref().unwrap().secrets.len(), 2);
    let text = serde_json::to_string(&plan).unwrap();
    assert!(!text.contains("real-0123456789"), "a value is in the plan");
    // Not hidden: the cage sees the masked copy there.
    assert!(
        !plan
            .mounts
            .iter()
            .any(|m| matches!(m, Mount::Hide { dst, .. } if *dst == dir.join("login.json")))
    );
    // No state directory holds it: refused.
    p.filesystem.state.clear();
    let e = build(&p, &t.host(), &["true".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no [[filesystem.state]] directory"), "{e}");
}
