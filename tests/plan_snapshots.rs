//! A snapshot of the plan for every built-in profile, on a fixed fake host,
//! so any change to a profile or to the planner shows up as a reviewable
//! diff. Regenerate with `CAGE_REGENERATE=1 cargo test --test plan_snapshots`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cage::host::{Host, env_from};
use cage::policy::{self, LoadRequest, ProjectMode};

/// A fixed tree: the snapshot names these paths.
fn fake_host() -> Host {
    fake_host_at(Path::new("/tmp/cage-snapshot-host"))
}

#[test]
fn plan_snapshot_for_every_builtin_profile() {
    let host = fake_host();
    let mut stale = Vec::new();
    for name in policy::builtin_names() {
        let req = LoadRequest {
            profiles: vec![name.to_string()],
            project: ProjectMode::Skip,
            ..Default::default()
        };
        let policy = policy::load(&req, &host).unwrap();
        let plan = cage::plan::build(&policy, &host, &["sh".to_string()]).unwrap();
        let text = cage::render::plan(&plan);
        assert!(
            !text.contains("must-not-pass"),
            "{name}: a secret variable passed"
        );
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/snapshots/{name}.plan"));
        if std::env::var_os("CAGE_REGENERATE").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).unwrap_or_default() != text {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "plan snapshots differ for {stale:?}: review with `CAGE_REGENERATE=1 cargo test --test \
         plan_snapshots && git diff tests/snapshots`"
    );
}

/// A second fixed tree for the whole-plan snapshots (tests run in
/// parallel; each owns its tree), with a linked worktree beside the
/// repository.
fn json_host(root: &Path, linked: bool) -> Host {
    let mut host = fake_host_at(root);
    if linked {
        let main = root.join("home/main");
        let gitdir = main.join(".git/worktrees/wt");
        std::fs::create_dir_all(&gitdir).unwrap();
        std::fs::create_dir_all(main.join(".git/hooks")).unwrap();
        std::fs::write(main.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        let wt = root.join("home/wt");
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", gitdir.display())).unwrap();
        std::fs::write(gitdir.join("HEAD"), "ref: refs/heads/wt\n").unwrap();
        std::fs::write(gitdir.join("commondir"), "../..\n").unwrap();
        std::fs::write(
            gitdir.join("gitdir"),
            format!("{}\n", wt.join(".git").display()),
        )
        .unwrap();
        host.cwd = wt.clone();
        host.repo_root = Some(wt);
    }
    host
}

fn fake_host_at(root: &Path) -> Host {
    let _ = std::fs::remove_dir_all(root);
    let ws = root.join("home/proj");
    std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
    std::fs::write(ws.join(".git/config"), "").unwrap();
    std::fs::write(ws.join(".envrc"), "").unwrap();
    Host {
        uid: 1000,
        gid: 1000,
        user: "dev".into(),
        home: root.join("home"),
        cwd: ws.clone(),
        repo_root: Some(ws),
        config_dir: root.join("home/.config/cage"),
        state_dir: root.join("home/.local/state/cage"),
        env: env_from([
            ("TERM", "xterm-256color"),
            ("LANG", "C.UTF-8"),
            ("ANTHROPIC_API_KEY", "sk-test"),
            ("AWS_SECRET_ACCESS_KEY", "must-not-pass"),
        ]),
    }
}

/// What the kernel is asked to do beyond the plan's data: the Landlock
/// rights each kind of rule gets, and each seccomp program's instructions
/// (their count and a hash: a changed argument filter changes it).
fn enforcement(plan: &cage::plan::Plan) -> serde_json::Value {
    use sha2::{Digest, Sha256};
    let programs = cage::sandbox::seccomp::build_filters(&plan.seccomp).unwrap();
    let seccomp: Vec<serde_json::Value> = programs
        .iter()
        .map(|p| {
            let mut h = Sha256::new();
            for i in p {
                h.update(i.code.to_le_bytes());
                h.update([i.jt, i.jf]);
                h.update(i.k.to_le_bytes());
            }
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "instructions": p.len(), "sha256": hex })
        })
        .collect();
    let rights: serde_json::Map<String, serde_json::Value> =
        cage::sandbox::landlock::rights_by_kind()
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
    serde_json::json!({ "landlock_rights": rights, "seccomp_programs": seccomp })
}

/// The whole plan, serialised, for every built-in profile and the
/// combinations that take other paths through the planner: a change to a
/// Landlock set or right, a seccomp rule or argument, a mount, an
/// environment variable or a limit shows up as a diff to review.
#[test]
fn whole_plan_snapshots() {
    use cage::policy::{FlagRules, NetMode, WorkspaceMode};
    let root = PathBuf::from("/tmp/cage-snapshot-json");
    let mut cases: Vec<(String, Vec<&str>, FlagRules, bool)> = policy::builtin_names()
        .into_iter()
        .map(|n| (n.to_string(), vec![n], FlagRules::default(), false))
        .collect();
    let flags = |workspace, net| FlagRules {
        workspace,
        net,
        ..FlagRules::default()
    };
    cases.push((
        "base-overlay".into(),
        vec![],
        flags(Some(WorkspaceMode::Overlay), None),
        false,
    ));
    cases.push((
        "base-readonly".into(),
        vec![],
        flags(Some(WorkspaceMode::Readonly), None),
        false,
    ));
    cases.push((
        "base-proxy".into(),
        vec![],
        flags(None, Some(NetMode::Proxy)),
        false,
    ));
    cases.push((
        "claude-overlay".into(),
        vec!["claude"],
        flags(Some(WorkspaceMode::Overlay), None),
        false,
    ));
    cases.push((
        "linked-worktree".into(),
        vec!["git"],
        FlagRules::default(),
        true,
    ));
    cases.push((
        "linked-worktree-overlay".into(),
        vec!["git"],
        flags(Some(WorkspaceMode::Overlay), None),
        true,
    ));
    let mut stale = Vec::new();
    for (name, profiles, flags, linked) in cases {
        let host = json_host(&root, linked);
        let req = LoadRequest {
            profiles: profiles.iter().map(|s| s.to_string()).collect(),
            project: ProjectMode::Skip,
            flags,
            ..Default::default()
        };
        let policy = policy::load(&req, &host).unwrap();
        let plan = cage::plan::build(&policy, &host, &["sh".to_string()]).unwrap();
        let value = serde_json::json!({ "plan": plan, "kernel": enforcement(&plan) });
        let mut text = serde_json::to_string_pretty(&value).unwrap();
        text.push('\n');
        assert!(
            !text.contains("must-not-pass"),
            "{name}: a secret variable passed"
        );
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/snapshots/json/{name}.json"));
        if std::env::var_os("CAGE_REGENERATE").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).unwrap_or_default() != text {
            stale.push(name);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    assert!(
        stale.is_empty(),
        "whole-plan snapshots differ for {stale:?}: review with `CAGE_REGENERATE=1 cargo test \
         --test plan_snapshots && git diff tests/snapshots/json`"
    );
}
