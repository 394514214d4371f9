//! Host sockets (DESIGN threat 4, issue 9 item 6): the directories programs
//! share their unix sockets in (`/tmp`, `/var/tmp`, `/dev/shm`, `/run`,
//! `$XDG_RUNTIME_DIR`) are refused as the workspace or a grant unless
//! `--allow-shared-dir` names them, and every unix socket found at start
//! in a granted tree is hidden, so a host tmux server or ssh-agent there
//! cannot be driven from inside.
//!
//! Layers: plan (the refusal) and view (the hide over each socket).

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use crate::harness::Cage;

/// `LABEL=connected` or `LABEL=refused ERRNO` for each (label, path).
fn connect_probe(targets: &[(&str, &Path)]) -> String {
    let mut code = String::from(
        "import socket\ndef probe(label, path):\n    s = socket.socket(socket.AF_UNIX)\n    try:\n        s.connect(path)\n        print(label + \"=connected\")\n    except OSError as e:\n        print(label + \"=refused \" + str(e.errno))\n",
    );
    for (label, path) in targets {
        code.push_str(&format!("probe({label:?}, {:?})\n", path.to_str().unwrap()));
    }
    code
}

/// A listening socket at `path`, owned by the test user (connecting needs
/// write permission on it), its directories made by the test user too.
fn listener(cage: &Cage, path: &Path) -> UnixListener {
    let home = std::fs::metadata(cage.home()).unwrap();
    let owner = |p: &Path| std::os::unix::fs::chown(p, Some(home.uid()), Some(home.gid())).unwrap();
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let mut p = dir;
    while p.starts_with(cage.root()) && p != cage.root() {
        owner(p);
        p = p.parent().unwrap();
    }
    let l = UnixListener::bind(path).unwrap();
    l.set_nonblocking(true).unwrap();
    owner(path);
    l
}

fn assert_nothing_accepted(l: &UnixListener, what: &str) {
    match l.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("accept on {what}: {e}"),
        Ok(_) => panic!("the cage connected to {what}"),
    }
}

/// Layer: view. A socket in a `--rw` grant outside the workspace, and one
/// in the workspace itself, are hidden: connect(2) finds a plain file.
/// On the host, the same probe connects (the control).
#[test]
fn host_socket_in_a_granted_tree_is_hidden() {
    require_userns!();
    let cage = Cage::new();
    let grant = cage.root().join("grant");
    let in_grant = grant.join("tmux-1000/default");
    let in_workspace = cage.workspace().join("build/.server.sock");
    let listeners = [listener(&cage, &in_grant), listener(&cage, &in_workspace)];
    let probe = connect_probe(&[("grant", &in_grant), ("workspace", &in_workspace)]);

    let cage = cage.args(["--rw", grant.to_str().unwrap()]);
    let out = cage.python(&probe);
    out.assert_success();
    for label in ["grant", "workspace"] {
        let v = out.value(label).unwrap_or("missing");
        assert!(v.starts_with("refused"), "{label}: {v}\n{out}");
    }
    for l in &listeners {
        assert_nothing_accepted(l, "a host unix socket in a granted tree");
    }

    let host = cage.run_on_host(["python3", "-c", &probe]);
    assert_eq!(host.value("grant"), Some("connected"), "control\n{host}");
    assert_eq!(
        host.value("workspace"),
        Some("connected"),
        "control\n{host}"
    );
}

/// Layer: plan. `/tmp` as the workspace or a grant, and `/` (a parent of
/// it), are refused with exit 125 and a message that names the directory,
/// why, and the flag that accepts it; the flag does.
#[test]
fn shared_directories_are_refused_unless_named() {
    require_userns!();
    let cage = Cage::new();
    let policy = cage.root().join("tmp-workspace.toml");
    std::fs::write(&policy, "[workspace]\npath = \"/tmp\"\n").unwrap();
    std::fs::set_permissions(&policy, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let policy = policy.to_str().unwrap();
    for args in [
        vec!["-f", policy],
        vec!["--rw", "/tmp"],
        vec!["--ro", "/dev/shm"],
        vec!["--ro", "/"],
    ] {
        let out = Cage::new().args(args.clone()).run(["true"]);
        out.assert_code(125);
        assert!(
            out.stderr.contains("--allow-shared-dir")
                && out.stderr.contains("sockets")
                && (out.stderr.contains("the shared directory")
                    || out.stderr.contains("a parent of the shared directory")),
            "{args:?}\n{out}"
        );
    }
    let out = cage
        .args(["--ro", "/var/tmp", "--allow-shared-dir", "/var/tmp"])
        .run(["true"]);
    out.assert_success();
}
