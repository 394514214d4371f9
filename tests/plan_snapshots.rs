//! A snapshot of the plan for every built-in profile, on a fixed fake host,
//! so any change to a profile or to the planner shows up as a reviewable
//! diff. Regenerate with `CAGE_REGENERATE=1 cargo test --test plan_snapshots`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cage::host::{Host, env_from};
use cage::policy::{self, LoadRequest, ProjectMode};

/// A fixed tree: the snapshot names these paths.
fn fake_host() -> Host {
    let root = PathBuf::from("/tmp/cage-snapshot-host");
    let _ = std::fs::remove_dir_all(&root);
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
        let text = cage::commands::render_plan(&plan);
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
