//! `[process] allow_nested_userns = true` (issue 11): an inner sandbox may
//! create its own user namespace, and from there it cannot undo the outer
//! one. Each attack runs as root of a user namespace the agent made inside
//! the cage (`unshare -Urm`, then raw syscalls, so the errno is the
//! kernel's own), and each is refused; the same script without the switch
//! shows the namespace itself refused.
//!
//! Layers: syscalls (seccomp gives back unshare, clone's namespace flags
//! and the classic mount calls only with the switch), access (Landlock,
//! inherited by every nested namespace, refuses every mount change), view
//! (the cage's mounts are locked in a nested mount namespace; the host's
//! root is not in it), network (a new network namespace is empty too).

use std::net::TcpListener;

use crate::harness::Cage;

const SWITCH: &str = "[process]\nallow_nested_userns = true\n";

/// Python run as root of a nested user and mount namespace: each attack
/// prints `LABEL=ok` or `LABEL=<errno name>`, and `LABEL=<text>` for reads.
const ATTACKS: &str = r#"import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
MNT_DETACH = 2
def call(label, f):
    ctypes.set_errno(0)
    r = f()
    print(label + "=" + ("ok" if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?")))
def read(label, path):
    try:
        print(label + "=" + open(path).read().strip())
    except OSError as e:
        print(label + "=" + errno.errorcode.get(e.errno, "?"))
def write(label, path):
    try:
        with open(path, "w") as f:
            f.write("planted\n")
        print(label + "=ok")
    except OSError as e:
        print(label + "=" + errno.errorcode.get(e.errno, "?"))
ws, hidden, outside, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
print("uid=%d" % os.getuid())
# A hidden file: unmount the hide, or bind its directory elsewhere without
# the hide (a non-recursive bind), or mount over it.
call("umount_hide", lambda: libc.umount2(hidden.encode(), MNT_DETACH))
read("hidden", hidden)
call("bind_parent", lambda: libc.mount(ws.encode(), b"/tmp", None, MS_BIND, None))
read("hidden_via_bind", "/tmp/" + os.path.basename(hidden))
call("tmpfs_over", lambda: libc.mount(b"x", hidden.encode(), b"tmpfs", 0, None))
# A read-only bind: remount it writable, then write.
call("remount_usr", lambda: libc.mount(None, b"/usr", None, MS_REMOUNT | MS_BIND, None))
write("write_usr", "/usr/cage-nested-planted")
# The protected .git/hooks: remount, unmount, write.
hooks = ws + "/.git/hooks"
call("remount_hooks", lambda: libc.mount(None, hooks.encode(), None, MS_REMOUNT | MS_BIND, None))
call("umount_hooks", lambda: libc.umount2(hooks.encode(), MNT_DETACH))
write("write_hook", hooks + "/pre-commit")
write("write_existing_hook", hooks + "/pre-push")
# Outside the view: the host's file, directly, through a fresh procfs's
# view of pid 1's root, and after chroot to /.
read("outside", outside)
call("proc", lambda: libc.mount(b"proc", b"/proc", b"proc", 0, None))
read("outside_via_init", "/proc/1/root" + outside)
call("chroot", lambda: libc.chroot(b"/"))
read("outside_after_chroot", outside)
# The network (none mode): the host's listener, from this namespace and
# from a new network namespace of its own.
def connect(label):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        print(label + "=ok")
    except OSError as e:
        print(label + "=" + errno.errorcode.get(e.errno, type(e).__name__))
connect("connect")
call("unshare_net", lambda: libc.unshare(0x40000000))
connect("connect_new_netns")
"#;

/// The cage for these tests: a hidden file in the workspace, a host file
/// outside the view, a host listener, and the attack script.
struct Setup {
    cage: Cage,
    listener: TcpListener,
    script: String,
}

fn setup(with_switch: bool) -> Setup {
    let mut cage = Cage::new()
        .workspace_file("secret.txt", "SECRET-UNDER-A-HIDE\n")
        .workspace_file("attack.py", ATTACKS)
        .workspace_file(".git/hooks/pre-push", "#!/bin/sh\nexit 0\n");
    if with_switch {
        cage = cage.home_file(".config/cage/config.toml", SWITCH);
    }
    std::fs::write(cage.root().join("outside.txt"), "SECRET-OUTSIDE-THE-VIEW\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ws = cage.workspace().display().to_string();
    let script = format!(
        "unshare -Ur id -u && echo NESTED-USERNS-CREATED; \
         unshare -Urm --propagation unchanged python3 {ws}/attack.py {ws} {ws}/secret.txt {} {port}; \
         echo DONE",
        cage.root().join("outside.txt").display()
    );
    let cage = cage.args(["--hide", "secret.txt"]);
    Setup {
        cage,
        listener,
        script,
    }
}

/// Layers: access, view, network. With the switch, the agent becomes root
/// of a user and mount namespace of its own, and every attempt to undo the
/// cage from there is refused by the kernel: no hide is removed or
/// bypassed, no read-only bind (the system's, the protected .git/hooks)
/// becomes writable, nothing outside the view appears, nothing connects.
#[test]
fn an_inner_sandbox_cannot_undo_the_cage() {
    require_userns!();
    let s = setup(true);
    let out = s.cage.sh(&s.script);
    assert!(out.stdout.contains("DONE"), "{out}");
    // The switch works: the nested namespace exists, its root is mapped.
    assert!(out.stdout.contains("NESTED-USERNS-CREATED"), "{out}");
    assert_eq!(out.value("uid"), Some("0"), "the nested root\n{out}");
    // Landlock refuses every change to the mount tree, even to root of a
    // nested namespace.
    for label in [
        "bind_parent",
        "tmpfs_over",
        "remount_usr",
        "remount_hooks",
        "proc",
    ] {
        assert_eq!(out.value(label), Some("EPERM"), "{label}\n{out}");
    }
    // The cage's mounts came into the nested namespace locked: the kernel
    // refuses to unmount one (EINVAL) before Landlock is even asked.
    for label in ["umount_hide", "umount_hooks"] {
        let v = out.value(label).unwrap_or("missing");
        assert!(v == "EINVAL" || v == "EPERM", "{label}={v}\n{out}");
    }
    // The hide still shows an empty file.
    assert_eq!(out.value("hidden"), Some(""), "{out}");
    assert_eq!(out.value("hidden_via_bind"), Some("ENOENT"), "{out}");
    for label in ["write_usr", "write_hook", "write_existing_hook"] {
        let v = out.value(label).unwrap_or("missing");
        assert!(v == "EROFS" || v == "EACCES", "{label}={v}\n{out}");
    }
    for label in ["outside", "outside_via_init", "outside_after_chroot"] {
        let v = out.value(label).unwrap_or("missing");
        assert!(v == "ENOENT" || v == "EACCES", "{label}={v}\n{out}");
    }
    // chroot itself is given back (Chromium's sandbox needs it) and shows
    // nothing new: its root is the cage's.
    assert_eq!(out.value("chroot"), Some("ok"), "{out}");
    assert_eq!(out.value("unshare_net"), Some("ok"), "{out}");
    for label in ["connect", "connect_new_netns"] {
        let v = out.value(label).unwrap_or("missing");
        assert!(
            v == "ECONNREFUSED" || v == "ENETUNREACH",
            "{label}={v}\n{out}"
        );
    }
    assert!(
        s.listener.accept().is_err(),
        "the host's listener was reached"
    );
    out.assert_absent("SECRET-UNDER-A-HIDE")
        .assert_absent("SECRET-OUTSIDE-THE-VIEW");
    // The session's record says the switch was on, and which rule set it.
    let log = s.cage.cli(["log"]);
    assert!(
        log.stdout.contains("nested user namespaces ALLOWED")
            && log.stdout.contains("config.toml:2"),
        "{log}"
    );
    assert!(
        !s.cage.workspace().join(".git/hooks/pre-commit").exists(),
        "a hook was planted"
    );
    assert_eq!(
        std::fs::read_to_string(s.cage.workspace().join(".git/hooks/pre-push")).unwrap(),
        "#!/bin/sh\nexit 0\n",
        "a hook was changed"
    );
}

/// Layer: syscalls. The same script without the switch: the nested user
/// namespace is refused, so none of the attacks even starts.
#[test]
fn without_the_switch_the_inner_sandbox_is_refused() {
    require_userns!();
    let s = setup(false);
    let out = s.cage.sh(&s.script);
    assert!(out.stdout.contains("DONE"), "{out}");
    assert!(!out.stdout.contains("NESTED-USERNS-CREATED"), "{out}");
    assert!(out.value("uid").is_none(), "the attacks ran\n{out}");
    assert!(
        out.stderr
            .contains("unshare failed: Operation not permitted"),
        "{out}"
    );
    let log = s.cage.cli(["log"]);
    assert!(!log.stdout.contains("nested user namespaces"), "{log}");
}

/// Trust: a project's `.cage.toml` cannot turn the switch on by itself;
/// cage refuses until the user trusts it.
#[test]
fn an_untrusted_project_cannot_allow_nested_namespaces() {
    require_userns!();
    let cage = Cage::new().workspace_file(".cage.toml", SWITCH);
    let out = cage.sh("unshare -Ur true && echo NESTED");
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("allow_nested_userns"), "{out}");
    assert!(!out.stdout.contains("NESTED"), "{out}");
}
