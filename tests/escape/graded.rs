//! The graded mode (`--allow-degraded namespaces`, `plan::graded`): no
//! namespaces, Landlock on host paths, seccomp refusing sockets. Forced
//! here with the test-only `CAGE_TEST_FORCE_NO_USERNS=1`, which makes cage
//! act as if user namespaces could not be created; the VM tier runs the
//! same mode where a sysctl really forbids them (`tests/vm/cases/userns.sh`).
//!
//! Each test has a control where a refusal could be vacuous: the same
//! probe works on the host, as the same user.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{ATTEMPT, Cage, host_processes_with, poll_until, unique};

/// The flags and the forcing variable of a graded run.
fn graded(cage: Cage) -> Cage {
    cage.args(["--allow-degraded", "namespaces", "--net", "none"])
        .host_env("CAGE_TEST_FORCE_NO_USERNS", "1")
}

/// The one line every graded run prints, and its record in the audit log.
#[test]
fn graded_mode_says_what_is_not_isolated() {
    require_userns!();
    let cage = graded(Cage::new());
    let out = cage.run(["true"]);
    out.assert_success();
    for text in [
        "cage: warning: graded mode (",
        "not isolated: host processes are visible",
        "no mount view",
        "no private /tmp",
    ] {
        assert!(out.stderr.contains(text), "missing {text:?}\n{out}");
    }
    let log = cage.cli(["log"]);
    assert!(
        log.stdout.contains("graded mode") && log.stdout.contains("not isolated"),
        "no graded record in the log\n{log}"
    );
}

/// Without the flag, a host without user namespaces gets a refusal that
/// names it.
#[test]
fn graded_mode_is_refused_without_the_flag() {
    require_userns!();
    let cage = Cage::new()
        .args(["--net", "none"])
        .host_env("CAGE_TEST_FORCE_NO_USERNS", "1");
    let out = cage.run(["true"]);
    out.assert_code(125);
    assert!(
        out.stderr.contains("--allow-degraded namespaces")
            && !out.stderr.contains("cage: warning: graded mode"),
        "\n{out}"
    );
}

/// The host's network as is has no place in the graded mode: refused,
/// naming what works.
#[test]
fn graded_mode_refuses_the_host_network() {
    require_userns!();
    let cage = Cage::new()
        .args(["--allow-degraded", "namespaces", "--net", "host"])
        .host_env("CAGE_TEST_FORCE_NO_USERNS", "1");
    let out = cage.run(["true"]);
    out.assert_code(125);
    assert!(
        out.stderr.contains("use --net proxy or --net none"),
        "\n{out}"
    );
}

/// Layer: Landlock on host paths. The home is absent.
#[test]
fn graded_agent_cannot_read_ssh_keys() {
    require_userns!();
    let key = "-----BEGIN OPENSSH PRIVATE KEY----- graded";
    let cage = graded(Cage::new().home_file(".ssh/id_ed25519", key));
    let path = cage.home().join(".ssh/id_ed25519");
    cage.run_on_host(["cat", path.to_str().unwrap()])
        .assert_success()
        .assert_line(key);
    let out = cage.sh(&format!(
        r#"{ATTEMPT}
attempt 'cat "$HOME/.ssh/id_ed25519"'
attempt 'cat {p}'
attempt 'ls "$HOME/.ssh"'
attempt 'ls "$HOME"'
"#,
        p = path.display()
    ));
    out.assert_success()
        .assert_all_refused(4)
        .assert_absent(key);
}

/// Layer: Landlock on host paths. Only the workspace and the private
/// TMPDIR are writable: not the home, /tmp, /dev/shm, the test's own
/// directory beside the home, nor cage's state directory; nor the host's
/// pseudo-terminals (/dev/ptmx, /dev/pts: the user's other terminals).
#[test]
fn graded_agent_cannot_write_outside_the_workspace() {
    require_userns!();
    let cage = graded(Cage::new());
    let name = unique("graded-write");
    let root = cage.root().display().to_string();
    let home = cage.home().display().to_string();
    let out = cage.sh(&format!(
        r#"{ATTEMPT}
attempt 'touch {home}/{name}'
attempt 'touch /tmp/{name}'
attempt 'touch /dev/shm/{name}'
attempt 'touch {root}/{name}'
attempt 'touch "$TMPDIR/../{name}"'
attempt ': <>/dev/ptmx'
echo "ws=$(touch ./{name} && echo yes)"
echo "tmp=$(touch "$TMPDIR/{name}" && echo yes)"
"#
    ));
    out.assert_success().assert_all_refused(6);
    assert_eq!(out.value("ws"), Some("yes"), "\n{out}");
    assert_eq!(out.value("tmp"), Some("yes"), "\n{out}");
    for dir in [cage.home(), cage.root(), std::path::Path::new("/tmp")] {
        assert!(
            !dir.join(&name).exists(),
            "{} was written\n{out}",
            dir.display()
        );
    }
}

/// Layer: the guard (Landlock cannot keep .git/hooks read-only inside a
/// writable workspace). Planting a hook is refused, and none is left.
#[test]
fn graded_git_hook_cannot_be_planted() {
    require_userns!();
    let cage = graded(Cage::new());
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
attempt 'printf "#!/bin/sh\necho pwned\n" > .git/hooks/pre-commit'
attempt 'mkdir -p .git/hooks/x.d && touch .git/hooks/post-checkout'
attempt 'printf "export X=1\n" > .envrc'
"##
    ));
    out.assert_success().assert_all_refused(3);
    let ws = cage.workspace();
    for p in [
        ".git/hooks/pre-commit",
        ".git/hooks/post-checkout",
        ".envrc",
    ] {
        assert!(!ws.join(p).exists(), "{p} was planted\n{out}");
    }
}

/// A Python probe: `ALLOWED: what` or `REFUSED: what (error)` per line.
const SOCKET_PROBE: &str = r#"
import socket, sys
tcp, path = int(sys.argv[1]), sys.argv[2]
def attempt(what, f):
    try:
        f(); print("ALLOWED: " + what)
    except OSError as e:
        print("REFUSED: %s (%s)" % (what, e))
def tcp_connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.settimeout(5)
    s.connect(("127.0.0.1", tcp))
def udp_send():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("127.0.0.1", 53))
def unix_connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(path)
def raw():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def netlink():
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
attempt("tcp connect", tcp_connect)
attempt("udp send", udp_send)
attempt("unix connect", unix_connect)
attempt("raw socket", raw)
attempt("netlink socket", netlink)
a, b = socket.socketpair(); a.send(b"ok"); print("pair=" + b.recv(2).decode())
"#;

/// Layer: seccomp (socket(2) refused for every family) and Landlock's TCP
/// rights. A loopback TCP listener and a listening unix socket in the
/// workspace (standing in for the user's systemd bus, ssh-agent,
/// docker.sock) are reachable on the host, not from the cage; UDP, raw and
/// netlink sockets are refused too; socketpair still works.
#[test]
fn graded_agent_cannot_reach_host_sockets() {
    require_userns!();
    let cage = graded(Cage::new());
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    let path = cage.workspace().join("agent.sock");
    let _unix = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = path.display().to_string();
    // Control: the same user reaches both on the host.
    let host = cage.run_on_host(["python3", "-c", SOCKET_PROBE, &port, &path]);
    host.assert_line("ALLOWED: tcp connect")
        .assert_line("ALLOWED: unix connect");
    let out = cage.run(["python3", "-c", SOCKET_PROBE, &port, &path]);
    out.assert_success().assert_all_refused(5);
    assert_eq!(out.value("pair"), Some("ok"), "\n{out}");
}

/// Layer: Landlock's scopes (signals, ABI 6) and its ptrace restriction:
/// a host process of the same user is visible (no pid namespace) but
/// cannot be signalled, nor its environment or memory read.
#[test]
fn graded_host_process_cannot_be_signalled_or_read() {
    require_userns!();
    let cage = graded(Cage::new());
    let digits: String = unique("").chars().filter(char::is_ascii_digit).collect();
    let arg = format!("1000.{digits}");
    let mut host = cage.host_process(["sleep", &arg]);
    assert!(
        poll_until(Duration::from_secs(10), || !host_processes_with(&arg)
            .is_empty()),
        "the host process never showed up"
    );
    let pid = host.pid();
    // Control: the same user reads its environment on the host.
    cage.run_on_host(["cat", &format!("/proc/{pid}/environ")])
        .assert_success();
    let out = cage.sh(&format!(
        r#"{ATTEMPT}
echo "visible=$(test -d /proc/{pid} && echo yes)"
attempt 'kill -TERM {pid}'
attempt 'kill -STOP {pid}'
attempt 'cat /proc/{pid}/environ'
attempt 'head -c1 /proc/{pid}/mem'
attempt 'ls -l /proc/{pid}/fd/'
"#
    ));
    out.assert_success().assert_all_refused(5);
    assert_eq!(out.value("visible"), Some("yes"), "\n{out}");
    assert!(host.is_alive(), "the host process died\n{out}");
}

/// Protected files that exist at the start (a hook, `.envrc`, besides git
/// init's `.git/config`), each with its content.
const KEPT: &[(&str, &str)] = &[
    (".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n"),
    (".envrc", "export SAFE=1\n"),
];

/// Layer: the guard's `writes` watch (no read-only view in the graded
/// mode). Every way of changing an existing protected file is refused
/// live (writing, truncating, copying over, chmod by path and by fd, a
/// hard link to write through, moving it away or a file over it, removing
/// it or its directory), and the host files are the originals afterwards.
#[test]
fn graded_existing_protected_files_cannot_be_changed() {
    require_userns!();
    let mut cage = Cage::new();
    for (rel, content) in KEPT {
        cage = cage.workspace_file(rel, content);
    }
    let cage = graded(cage);
    let ws = cage.workspace().to_path_buf();
    let config = std::fs::read(ws.join(".git/config")).unwrap();
    // Control: the same user changes them on the host (in a copy).
    let copy = cage.user_dir("copy");
    cage.run_on_host(["cp", "-a", ws.to_str().unwrap(), copy.to_str().unwrap()])
        .assert_success();
    let c = copy.join("proj");
    let c = c.display();
    cage.run_on_host([
        "sh",
        "-c",
        &format!("echo x >> {c}/.git/config && chmod +x {c}/.git/hooks/pre-commit"),
    ])
    .assert_success();
    let out = cage.sh(&format!(
        r##"{ATTEMPT}
printf '#!/bin/sh\necho pwned\n' > "$TMPDIR/evil"
attempt 'printf "[core]\n\thooksPath = /tmp\n" >> .git/config'
attempt 'truncate -s 0 .envrc'
attempt ': > .envrc'
attempt 'cp "$TMPDIR/evil" .git/hooks/pre-commit'
attempt 'chmod +x .git/hooks/pre-commit'
attempt 'python3 -c "import os; fd = os.open(\".git/config\", os.O_RDWR); os.write(fd, b\"pwned\")"'
attempt 'python3 -c "import os; os.truncate(\".git/config\", 0)"'
attempt 'python3 -c "import os; os.fchmod(os.open(\".git/hooks/pre-commit\", os.O_RDONLY), 0o755)"'
attempt 'ln .git/config x && echo pwned >> x'
attempt 'mv .git/config config.away && printf "[core]\n\thooksPath = /tmp\n" > .git/config'
attempt 'echo pwned > y && mv y .envrc'
attempt 'touch .git/hooks/post-checkout'
attempt 'rm .git/hooks/pre-commit'
attempt 'mv .git/hooks hooks.away'
attempt 'rm -rf .git/info'
attempt 'mv .git git.away'
attempt 'ln -s .git/config l && echo pwned >> l'
attempt 'python3 -c "import os; fd = os.open(\".git/config\", os.O_RDONLY); os.open(\"/proc/self/fd/%d\" % fd, os.O_WRONLY)"'
attempt 'python3 -c "import os; os.rename(\".envrc\", \".envrc.away\")"'
"##
    ));
    out.assert_success().assert_all_refused(19);
    assert_eq!(
        std::fs::read(ws.join(".git/config")).unwrap(),
        config,
        ".git/config changed\n{out}"
    );
    for (rel, content) in KEPT {
        assert_eq!(
            std::fs::read_to_string(ws.join(rel)).ok().as_deref(),
            Some(*content),
            "{rel} changed\n{out}"
        );
        let mode = std::fs::metadata(ws.join(rel))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "{rel} changed mode\n{out}");
    }
    assert!(ws.join(".git/info/exclude").exists(), "\n{out}");
    assert!(!ws.join(".git/hooks/post-checkout").exists(), "\n{out}");
}

/// The `writes` watch keeps only what the normal plan keeps read-only:
/// git's everyday writes (the index, objects, refs, logs, COMMIT_EDITMSG)
/// still work in a graded session, and the commit is on the host.
#[test]
fn graded_git_add_and_commit_still_work() {
    require_userns!();
    let cage = graded(Cage::new().workspace_file("a.txt", "hello\n"));
    let out = cage.sh(
        "git add a.txt && git -c user.name=t -c user.email=t@example.com commit -qm one \
         && echo committed=yes && git checkout -qb side && git stash list && echo branch=yes",
    );
    out.assert_success();
    assert_eq!(out.value("committed"), Some("yes"), "\n{out}");
    assert_eq!(out.value("branch"), Some("yes"), "\n{out}");
    let log = cage.run_on_host(["git", "log", "--format=%s", "main"]);
    log.assert_success().assert_line("one");
}

/// Swaps the path string between the guard's check and the kernel's own
/// read (the race `src/guard.rs` documents) until a write lands in
/// `.git/config`; prints `won=N`.
const RACE: &str = r#"
import ctypes, os, threading, time
libc = ctypes.CDLL(None, use_errno=True)
kept, harmless = b".git/config", b"harmless.tx"
buf = ctypes.create_string_buffer(harmless, 12)
ino = os.stat(".git/config").st_ino
stop = False
def flip():
    while not stop:
        ctypes.memmove(buf, kept, 11)
        ctypes.memmove(buf, harmless, 11)
t = threading.Thread(target=flip)
t.start()
won, end = 0, time.time() + 20
while time.time() < end and not won:
    fd = libc.open(buf, os.O_WRONLY | os.O_APPEND)
    if fd >= 0:
        if os.fstat(fd).st_ino == ino:
            os.write(fd, b"\n[core]\n\thooksPath = /tmp\n")
            won += 1
        os.close(fd)
stop = True
t.join()
print("won=%d" % won)
"#;

/// The backstop (`session::originals`): a write that wins the race against
/// the guard lasts only until the session ends, when the original comes
/// back and the session's version goes to the quarantine, with a record.
#[test]
fn graded_race_won_against_the_guard_is_put_back() {
    require_userns!();
    let cage = graded(Cage::new().workspace_file("harmless.tx", "x\n"));
    let ws = cage.workspace().to_path_buf();
    let config = std::fs::read(ws.join(".git/config")).unwrap();
    let out = cage.python(RACE);
    out.assert_success();
    let won: usize = out.value("won").and_then(|w| w.parse().ok()).unwrap_or(0);
    assert!(
        won > 0,
        "the race was never won: nothing to put back\n{out}"
    );
    assert_eq!(
        std::fs::read(ws.join(".git/config")).unwrap(),
        config,
        ".git/config was not put back\n{out}"
    );
    assert!(
        out.stderr.contains("cage put the originals back")
            && out.stderr.contains("restored ")
            && out.stderr.contains(".git/config"),
        "\n{out}"
    );
    let log = cage.cli(["log"]);
    assert!(log.stdout.contains("restore "), "no restore record\n{log}");
}

/// The class, not a list of names: a read-only grant inside the writable
/// workspace (`--ro`) is kept by the guard too, where Landlock cannot
/// take the write right back; the rest of the workspace stays writable.
#[test]
fn graded_read_only_grant_inside_the_workspace_stays_read_only() {
    require_userns!();
    let cage = Cage::new().workspace_file("vendor/lib.sh", "echo lib\n");
    let vendor = cage.workspace().join("vendor");
    let cage = graded(cage.args(["--ro", vendor.to_str().unwrap()]));
    let out = cage.sh(&format!(
        r#"{ATTEMPT}
attempt 'echo pwned >> vendor/lib.sh'
attempt 'rm vendor/lib.sh'
attempt 'touch vendor/new && test -e vendor/new'
echo "ws=$(echo ok > mine.txt && echo yes)"
"#
    ));
    out.assert_success().assert_all_refused(3);
    assert_eq!(out.value("ws"), Some("yes"), "\n{out}");
    assert_eq!(
        std::fs::read_to_string(vendor.join("lib.sh")).unwrap(),
        "echo lib\n"
    );
    assert!(!vendor.join("new").exists(), "\n{out}");
}

// ---- The graded proxy mode (`--net proxy` without namespaces) ----
//
// The supervisor binds the proxy on the host's loopback and connects the
// agent's sockets to it (`guard::connect`); seccomp leaves plain TCP
// sockets only. Each test's control shows the attempt works on the host.

/// The flags and the forcing variable of a graded proxy run.
fn graded_proxy(cage: Cage) -> Cage {
    cage.args(["--allow-degraded", "namespaces", "--net", "proxy"])
        .host_env("CAGE_TEST_FORCE_NO_USERNS", "1")
}

/// An HTTP server on the host's loopback answering every request with
/// `hello PATH`; returns its port and how many requests it served.
fn host_server() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            h.fetch_add(1, Ordering::SeqCst);
            let head = String::from_utf8_lossy(&got).into_owned();
            let body = format!("hello {}\n", head.split(' ').nth(1).unwrap_or(""));
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

/// The session's audit records.
fn records(cage: &Cage) -> Vec<serde_json::Value> {
    let dirs: Vec<_> = std::fs::read_dir(cage.sessions_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(dirs.len(), 1, "expected one session: {dirs:?}");
    let text = std::fs::read_to_string(dirs[0].join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

/// A denial record for `host:port`.
fn denied(records: &[serde_json::Value], host: &str, port: u16) -> bool {
    records.iter().any(|r| {
        r["event"] == "net" && r["decision"] == "deny" && r["host"] == host && r["port"] == port
    })
}

/// Layer: network (the proxy decides every connection). curl, told only
/// what cage's variables say, reaches an allowed host service on the
/// host's loopback through the proxy, on the port the supervisor bound
/// (not the namespace's 3128); another service gets cage's 403, and a
/// record, and no request.
#[test]
fn graded_proxy_reaches_allowed_hosts_only() {
    require_userns!();
    let (allowed, allowed_hits) = host_server();
    let (other, other_hits) = host_server();
    let rule = format!("127.0.0.1:{allowed}");
    let cage = graded_proxy(Cage::new()).args(["--allow-host", rule.as_str()]);
    let out = cage.sh(&format!(
        "echo \"proxy=$HTTPS_PROXY\"; \
         curl -sS --max-time 20 http://127.0.0.1:{allowed}/through; \
         curl -s --max-time 20 -o /dev/null -w 'other=%{{http_code}}\\n' http://127.0.0.1:{other}/"
    ));
    out.assert_success().assert_line("hello /through");
    assert_eq!(out.value("other"), Some("403"), "\n{out}");
    let proxy = out.value("proxy").unwrap_or_default();
    assert!(
        proxy.starts_with("http://127.0.0.1:") && !proxy.ends_with(":3128"),
        "\n{out}"
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1, "\n{out}");
    assert_eq!(other_hits.load(Ordering::SeqCst), 0, "\n{out}");
    assert!(denied(&records(&cage), "127.0.0.1", other), "\n{out}");
}

/// A Python probe of what a program that ignores the proxy tries:
/// `ALLOWED: what` or `REFUSED: what (error)` per line, then whether a
/// plain TCP socket still reaches the proxy (`proxy=ok`).
const DIRECT_PROBE: &str = r#"
import os, select, socket, sys
tcp, path = int(sys.argv[1]), sys.argv[2]
def attempt(what, f):
    try:
        f(); print("ALLOWED: " + what)
    except OSError as e:
        print("REFUSED: %s (%s)" % (what, e))
def tcp_connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.settimeout(5)
    s.connect(("127.0.0.1", tcp))
def tcp6_mapped():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(5)
    s.connect(("::ffff:127.0.0.1", tcp))
def fast_open():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.sendto(b"x", socket.MSG_FASTOPEN, ("127.0.0.1", tcp))
def udp_send():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("127.0.0.1", 53))
def sctp():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132)
def mptcp():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
def unix_connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(path)
def unix_socket():
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
def netlink():
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
def listen():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); s.listen()
def listen_unbound():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.listen()
def raw():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
attempt("tcp connect", tcp_connect)
attempt("tcp6 v4-mapped connect", tcp6_mapped)
attempt("tcp fast open", fast_open)
attempt("udp send", udp_send)
attempt("sctp socket", sctp)
attempt("mptcp socket", mptcp)
attempt("unix connect", unix_connect)
attempt("unix socket", unix_socket)
attempt("netlink socket", netlink)
attempt("tcp listen", listen)
attempt("tcp listen unbound", listen_unbound)
attempt("raw socket", raw)
def through_proxy(family, host, port, blocking):
    s = socket.socket(family, socket.SOCK_STREAM)
    if blocking:
        s.settimeout(5); s.connect((host, port))
    else:
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        select.select([], [s], [], 5); s.setblocking(True); s.settimeout(5)
    s.sendall(b"GET http://h/ HTTP/1.0\r\n\r\n")
    return "ok" if s.recv(12).startswith(b"HTTP/1.1 403") else "no"
proxy = os.environ.get("HTTPS_PROXY", "").rsplit(":", 1)
if len(proxy) == 2 and proxy[1].isdigit():
    port = int(proxy[1])
    print("proxy=" + through_proxy(socket.AF_INET, "127.0.0.1", port, True))
    print("proxy6=" + through_proxy(socket.AF_INET6, "::ffff:127.0.0.1", port, True))
    print("proxy_nonblocking=" + through_proxy(socket.AF_INET, "127.0.0.1", port, False))
"#;

/// Layer: seccomp and the guard's connect handler (and Landlock's TCP
/// rights behind them). A program that ignores the proxy reaches nothing
/// directly: not a TCP listener on the host's loopback (by connect, a
/// v4-mapped address or TCP fast open), not UDP, SCTP, MPTCP, raw, netlink
/// or unix sockets (each of socket(2)'s three rules), and it cannot listen; the direct connect is recorded as a
/// denial; a plain TCP socket still reaches the proxy (IPv4, v4-mapped
/// IPv6, non-blocking).
#[test]
fn graded_proxy_agent_cannot_reach_host_sockets_directly() {
    require_userns!();
    let cage = graded_proxy(Cage::new());
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let path = cage.workspace().join("agent.sock");
    let _unix = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = path.display().to_string();
    let out = cage.run(["python3", "-c", DIRECT_PROBE, &port.to_string(), &path]);
    out.assert_success().assert_all_refused(12);
    for how in ["proxy", "proxy6", "proxy_nonblocking"] {
        assert_eq!(out.value(how), Some("ok"), "{how}\n{out}");
    }
    assert!(
        tcp.accept().is_err(),
        "the listener got a connection\n{out}"
    );
    assert!(denied(&records(&cage), "127.0.0.1", port), "\n{out}");
    // Control: the same user gets through on the host (SCTP where the
    // kernel has it).
    let host = cage.run_on_host(["python3", "-c", DIRECT_PROBE, &port.to_string(), &path]);
    for what in [
        "tcp connect",
        "tcp6 v4-mapped connect",
        "tcp fast open",
        "udp send",
        "mptcp socket",
        "unix connect",
        "unix socket",
        "netlink socket",
        "tcp listen",
        "tcp listen unbound",
    ] {
        host.assert_line(&format!("ALLOWED: {what}"));
    }
}

/// Layer: the proxy's peer check. The proxy listens on the host's
/// loopback, where every host process can connect: a connection the
/// guard did not make for the agent is closed unserved, so no other
/// process gets the session's allowlist.
#[test]
fn graded_proxy_serves_no_host_process() {
    require_userns!();
    let (port, hits) = host_server();
    let rule = format!("127.0.0.1:{port}");
    let cage = graded_proxy(Cage::new()).args(["--allow-host", rule.as_str()]);
    let running = cage.spawn([
        "sh",
        "-c",
        "printf %s \"$HTTPS_PROXY\" > proxy.tmp && mv proxy.tmp proxy && sleep 30",
    ]);
    let file = cage.workspace().join("proxy");
    assert!(
        poll_until(Duration::from_secs(20), || file.exists()),
        "the agent never wrote its proxy address"
    );
    let proxy = std::fs::read_to_string(&file).unwrap();
    let url = format!("http://127.0.0.1:{port}/from-host");
    let host = cage.run_on_host(["curl", "-sS", "--max-time", "10", "-x", &proxy, &url]);
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let out = running.wait();
    assert_ne!(host.code, 0, "a host process used the proxy\n{host}\n{out}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "\n{host}");
}
