//! Local authority (DESIGN threat 4): services on the host that trust
//! "anything running as this user": loopback listeners, abstract and path
//! unix sockets (ssh-agent, docker, D-Bus), and the controlling terminal.
//!
//! Layers: network (empty net namespace), view (socket paths not bound),
//! access (Landlock's abstract-socket scope) and syscalls (seccomp's
//! TIOCSTI filter). Every socket test first shows, as a control, that the
//! same probe run on the host as the same user does connect.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use crate::harness::{Cage, unique};

/// Python that tries to connect to each address and prints
/// `LABEL=connected` or `LABEL=refused ERRNO`.
fn connect_probe(targets: &[(&str, String)]) -> String {
    let mut code = String::from(
        r#"import socket
def probe(label, family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(addr)
        print(label + "=connected")
    except OSError as e:
        print(label + "=refused " + str(e.errno))
"#,
    );
    for (label, call) in targets {
        code.push_str(&format!("probe({label:?}, {call})\n"));
    }
    code
}

fn assert_refused(out: &crate::harness::Output, label: &str) {
    let v = out.value(label).unwrap_or("missing");
    assert!(v.starts_with("refused"), "{label}: {v}\n{out}");
}

fn assert_nothing_accepted<T>(accept: std::io::Result<T>, what: &str) {
    match accept {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => panic!("accept on {what}: {e}"),
        Ok(_) => panic!("the cage connected to {what}"),
    }
}

/// Layer: network. The cage has its own loopback: the host's
/// 127.0.0.1:PORT is not there.
#[test]
fn host_loopback_tcp_is_unreachable() {
    require_userns!();
    let cage = Cage::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = connect_probe(&[
        ("ip", format!("socket.AF_INET, ('127.0.0.1', {port})")),
        (
            "localhost",
            format!("socket.AF_INET, ('localhost', {port})"),
        ),
    ]);

    let out = cage.python(&probe);
    out.assert_success();
    assert_refused(&out, "ip");
    assert_refused(&out, "localhost");
    assert_nothing_accepted(listener.accept(), "the host's loopback listener");

    // Control, last so its connection cannot be mistaken for the cage's.
    let host = cage.run_on_host(["python3", "-c", &probe]);
    assert_eq!(host.value("ip"), Some("connected"), "control\n{host}");
}

/// Layer: network. Abstract unix sockets belong to the net namespace:
/// the host's (D-Bus, X11 and others use them) are not in the cage's.
#[test]
fn host_abstract_unix_socket_is_unreachable() {
    require_userns!();
    let cage = Cage::new();
    let (listener, probe) = abstract_listener();

    let out = cage.python(&probe);
    out.assert_success();
    assert_refused(&out, "abstract");
    assert_nothing_accepted(listener.accept(), "the host's abstract socket");

    let host = cage.run_on_host(["python3", "-c", &probe]);
    assert_eq!(host.value("abstract"), Some("connected"), "control\n{host}");
}

/// Layer: access (Landlock's abstract-socket scope) alone: with
/// `--net host` the cage shares the host's abstract namespace, so only
/// the scope stands between the agent and the host's sockets.
#[test]
fn abstract_unix_socket_scope_holds_with_host_network() {
    require_userns!();
    let cage = Cage::new().args(["--net", "host"]);
    let (listener, probe) = abstract_listener();

    let out = cage.python(&probe);
    out.assert_success();
    assert_refused(&out, "abstract");
    assert_nothing_accepted(listener.accept(), "the host's abstract socket");
}

fn abstract_listener() -> (UnixListener, String) {
    let name = unique("cage-escape-abstract");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let probe = connect_probe(&[("abstract", format!("socket.AF_UNIX, '\\0{name}'"))]);
    (listener, probe)
}

/// Layer: view. A socket in the host's home (gpg-agent, a docker rootless
/// socket) or its /tmp (ssh-agent's default) is not in the cage's tmpfs
/// home or /tmp, so connecting by path finds nothing.
#[test]
fn host_unix_socket_in_home_is_unreachable() {
    require_userns!();
    let cage = Cage::new();
    let in_home = cage.home().join(".gnupg/S.gpg-agent");
    let in_tmp = cage.root().join("ssh-agent.sock");
    let cage = cage.home_file(".gnupg/placeholder", "");
    let mut listeners = Vec::new();
    for path in [&in_home, &in_tmp] {
        let l = UnixListener::bind(path).unwrap();
        l.set_nonblocking(true).unwrap();
        // Connecting needs write permission on the socket: the test user's.
        chown_to_test_user(&cage, path);
        listeners.push(l);
    }
    let probe = connect_probe(&[
        (
            "home",
            format!("socket.AF_UNIX, {:?}", in_home.to_str().unwrap()),
        ),
        (
            "tmp",
            format!("socket.AF_UNIX, {:?}", in_tmp.to_str().unwrap()),
        ),
    ]);

    let out = cage.python(&probe);
    out.assert_success();
    assert_refused(&out, "home");
    assert_refused(&out, "tmp");
    for l in &listeners {
        assert_nothing_accepted(l.accept(), "a host unix socket");
    }

    let host = cage.run_on_host(["python3", "-c", &probe]);
    assert_eq!(host.value("home"), Some("connected"), "control\n{host}");
    assert_eq!(host.value("tmp"), Some("connected"), "control\n{host}");
}

fn chown_to_test_user(cage: &Cage, path: &std::path::Path) {
    // The owner of the home is the test user by construction.
    use std::os::unix::fs::MetadataExt;
    let home = std::fs::metadata(cage.home()).unwrap();
    std::os::unix::fs::chown(path, Some(home.uid()), Some(home.gid())).unwrap();
}

/// Layer: syscalls (seccomp's TIOCSTI compare). cage runs on a terminal
/// that is its controlling terminal, as in an interactive shell; TIOCSTI
/// would push text into the terminal's input, for the user's shell to run
/// once the agent exits. The ioctl must fail with EPERM, and the injected
/// text must not show up on the terminal (the line discipline echoes what
/// TIOCSTI pushes, so a successful injection is visible).
#[test]
fn tiocsti_is_blocked_under_a_pty() {
    require_userns!();
    let cage = Cage::new();
    let marker = unique("injected");
    // Spelled backwards in the script, so only an injection shows it.
    let reversed: String = marker.chars().rev().collect();
    let code = format!(
        r#"import fcntl, os, termios
text = ({reversed:?}[::-1] + "\n").encode()
def inject(label, opener):
    try:
        fd = opener()
        for b in text:
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([b]))
        print(label + "=injected")
    except OSError as e:
        print(label + "=refused " + str(e.errno))
print("tty=" + str(os.isatty(0)))
inject("stdin", lambda: 0)
inject("devtty", lambda: os.open("/dev/tty", os.O_RDWR))
"#
    );
    let out = cage.run_in_pty(["python3", "-c", &code]);
    out.assert_success().assert_line("tty=True");
    assert_eq!(out.value("stdin"), Some("refused 1"), "\n{out}");
    let devtty = out.value("devtty").unwrap_or("missing");
    assert!(devtty.starts_with("refused"), "devtty: {devtty}\n{out}");
    assert!(
        !out.stdout.contains(&marker),
        "the injected text reached the terminal\n{out}"
    );
}
