//! `cage __probe SPEC`: the inside half of `cage selftest` (dispatched in
//! main.rs before the CLI is parsed).
//!
//! Runs inside the cage as the agent would, tries each escape the spec
//! names, and prints one JSON line per attempt on stdout: what was tried,
//! whether it got through, and the errno or the fact that says so. It
//! decides nothing about the plan (the host side compares) and never
//! touches anything outside the decoys the host side planted. Attempts that
//! would change the probe itself when they succeed (a user namespace, a
//! ptrace attach, a foreign-ABI call) run in a forked child.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::WaitStatus;

use super::{Observed, Spec};

/// How long one connection attempt may take: on the cage's own loopback a
/// refusal is immediate; the bound is for a filtered network.
const CONNECT_LIMIT: Duration = Duration::from_millis(1500);

/// Runs the battery; returns the probe's exit status (0, or 125 when the
/// spec cannot be read).
pub fn run(spec: &str) -> i32 {
    let spec: Spec = match serde_json::from_str(spec) {
        Ok(s) => s,
        Err(e) => {
            crate::term::emit(&format!("cage __probe: reading the spec: {e}"));
            return crate::error::EXIT_CAGE;
        }
    };
    let mut out = Vec::new();
    let mut say = |id: &str, reached: bool, detail: String| {
        let line = Observed {
            id: id.to_string(),
            reached,
            detail,
        };
        if let Ok(mut s) = serde_json::to_string(&line) {
            s.push('\n');
            out.extend_from_slice(s.as_bytes());
        }
    };
    // First, so that the process it leaves behind is there for the whole
    // battery.
    outlive(&mut say);
    files(&spec, &mut say);
    network(&spec, &mut say);
    processes(&spec, &mut say);
    kernel(&mut say);
    writes(&spec, &mut say);
    match std::io::stdout().write_all(&out) {
        Ok(()) => 0,
        Err(_) => crate::error::EXIT_CAGE,
    }
}

type Say<'a> = dyn FnMut(&str, bool, String) + 'a;

fn errno_of(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", Errno::from_raw(n)),
        None => e.to_string(),
    }
}

/// Leaves a detached process (a new session, its parent gone) that would
/// run on for half a minute after the probe exits. The host side looks for
/// it once the cage has ended (cage init's exit must have taken it along)
/// and kills it if it is still there: long enough that a slow end of the
/// session on a loaded machine cannot pass for a cage that stopped it.
fn outlive(say: &mut Say<'_>) {
    let status = crate::sys::probe_in_child(|| {
        // daemon(3): fork, the parent exits, the child calls setsid and
        // points its standard streams at /dev/null, so it holds nothing of
        // the run open (the host side reads the probe's output to its end).
        if nix::unistd::daemon(true, false).is_err() {
            return 1;
        }
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    match status {
        Ok(WaitStatus::Exited(_, 0)) => say("outlive", false, "left a detached process".into()),
        other => say("outlive", false, format!("could not detach: {other:?}")),
    }
}

fn files(spec: &Spec, say: &mut Say<'_>) {
    let key = match std::fs::read_to_string(&spec.decoy_key) {
        Ok(text) if text.contains(&spec.token) => (true, "read the decoy key".to_string()),
        Ok(_) => (false, "a file is there, not the decoy".to_string()),
        Err(e) => (false, errno_of(&e)),
    };
    say("hidden-key", key.0, key.1);
    let env = match std::env::var(&spec.decoy_env) {
        Ok(v) if v.contains(&spec.token) => (true, "the variable is set".to_string()),
        Ok(_) => (false, "set, to another value".to_string()),
        Err(_) => (false, "not set".to_string()),
    };
    say("decoy-env", env.0, env.1);
}

fn network(spec: &Spec, say: &mut Say<'_>) {
    let port = spec.tcp_port;
    for spelling in super::LOOPBACK_SPELLINGS {
        let id = format!("tcp {spelling}");
        let addrs: Vec<SocketAddr> = if *spelling == "localhost" {
            match ("localhost", port).to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => {
                    say(&id, false, format!("localhost does not resolve ({e})"));
                    continue;
                }
            }
        } else {
            let ip: std::net::IpAddr = match spelling.parse() {
                Ok(ip) => ip,
                Err(_) => continue,
            };
            vec![SocketAddr::new(ip, port)]
        };
        let mut last = String::from("no address");
        let mut reached = false;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_LIMIT) {
                Ok(_) => {
                    reached = true;
                    last = format!("connected to {addr}");
                    break;
                }
                Err(e) if *spelling == "localhost" => {
                    last = format!("{} ({})", errno_of(&e), addr.ip())
                }
                Err(e) => last = errno_of(&e),
            }
        }
        say(&id, reached, last);
    }
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
    let abs = UnixAddr::from_abstract_name(spec.abstract_name.as_bytes())
        .and_then(|a| UnixStream::connect_addr(&a));
    match abs {
        Ok(_) => say("abstract-socket", true, "connected".into()),
        Err(e) => say("abstract-socket", false, errno_of(&e)),
    }
    match UnixStream::connect(&spec.unix_path) {
        Ok(_) => say("path-socket", true, "connected".into()),
        Err(e) => say("path-socket", false, errno_of(&e)),
    }
    if let Some(proxy) = spec.proxy.map(|p| proxy_from_env().unwrap_or(p)) {
        let targets = [
            ("proxy-denied", format!("{}:443", super::DENIED_HOST)),
            ("proxy-loopback", format!("127.0.0.1:{port}")),
        ];
        for (id, target) in targets {
            let (r, d) = proxy_connect(proxy, &target);
            say(id, r, d);
        }
    }
}

/// The proxy the run names in `HTTPS_PROXY` (`http://IP:PORT`): in the
/// graded mode it listens on a port of the host's loopback that only the
/// run knows.
fn proxy_from_env() -> Option<std::net::SocketAddrV4> {
    let v = std::env::var("HTTPS_PROXY").ok()?;
    v.strip_prefix("http://")?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// CONNECT through cage's proxy: got through when the proxy answers 200.
fn proxy_connect(proxy: std::net::SocketAddrV4, target: &str) -> (bool, String) {
    let mut s = match TcpStream::connect_timeout(&proxy.into(), CONNECT_LIMIT) {
        Ok(s) => s,
        Err(e) => return (false, format!("the proxy: {}", errno_of(&e))),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        return (false, format!("the proxy: {}", errno_of(&e)));
    }
    let mut head = [0u8; 64];
    let n = s.read(&mut head).unwrap_or(0);
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.lines().next().unwrap_or("").trim().to_string();
    if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") {
        (true, status)
    } else if status.is_empty() {
        (false, "the proxy closed the connection".into())
    } else {
        (false, status)
    }
}

/// A call's result read as an attempt: refused by a filter or a permission
/// check (EPERM, EACCES, ENOSYS), or it reached the kernel's code for it.
fn syscall_attempt(nr: libc::c_long, args: [libc::c_long; 6]) -> (bool, String) {
    match crate::sys::probe_syscall(nr, args) {
        Ok(v) => (true, format!("returned {v}")),
        Err(e @ (Errno::EPERM | Errno::EACCES | Errno::ENOSYS)) => (false, format!("{e:?}")),
        Err(e) => (true, format!("{e:?} (the call reached the kernel)")),
    }
}

/// Runs a call in a forked child; the child's exit code is the errno (0 for
/// success), a signal is reported as such.
fn in_child(f: impl FnOnce() -> Result<(), Errno>) -> (bool, String) {
    let status = crate::sys::probe_in_child(|| match f() {
        Ok(()) => 0,
        Err(e) => e as i32,
    });
    match status {
        Ok(WaitStatus::Exited(_, 0)) => (true, "succeeded".into()),
        Ok(WaitStatus::Exited(_, 254)) => (false, "the probe child failed".into()),
        Ok(WaitStatus::Exited(_, n)) => {
            let e = Errno::from_raw(n);
            match e {
                Errno::EPERM | Errno::EACCES | Errno::ENOSYS => (false, format!("{e:?}")),
                _ => (true, format!("{e:?} (the call reached the kernel)")),
            }
        }
        Ok(WaitStatus::Signaled(_, sig, _)) => (false, format!("killed by {sig}")),
        Ok(other) => (false, format!("{other:?}")),
        Err(e) => (false, format!("fork: {}", errno_of(&e))),
    }
}

fn processes(spec: &Spec, say: &mut Say<'_>) {
    // cage init is pid 1 in the cage's pid namespace.
    let (r, d) = in_child(|| {
        crate::sys::probe_syscall(libc::SYS_ptrace, [libc::PTRACE_ATTACH as _, 1, 0, 0, 0, 0])
            .map(drop)
    });
    say("ptrace-init", r, d);
    let mem = std::fs::File::open("/proc/1/mem").and_then(|mut f| {
        let mut b = [0u8; 1];
        f.read(&mut b)
    });
    match mem {
        Ok(_) => say("init-mem", true, "opened and read".into()),
        Err(e) => say("init-mem", false, errno_of(&e)),
    }
    let (r, d) = syscall_attempt(libc::SYS_process_vm_readv, [1, 0, 0, 0, 0, 0]);
    say("process-vm-readv", r, d);
    let host = spec.supervisor_pid;
    match std::fs::File::open(format!("/proc/{host}/mem")) {
        Ok(_) => say("supervisor-mem", true, format!("/proc/{host}/mem opened")),
        Err(e) => say("supervisor-mem", false, errno_of(&e)),
    }
    // Signal 0 checks without delivering anything.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(host as i32), None) {
        Ok(()) => say("signal-host", true, format!("pid {host} can be signalled")),
        Err(e) => say("signal-host", false, format!("{e:?}")),
    }
}

fn kernel(say: &mut Say<'_>) {
    let devnull = std::fs::File::open("/dev/null");
    // On /dev/null, a call the filter lets through fails with ENOTTY: the
    // NULL argument is never read, so nothing is typed anywhere.
    for (id, cmd) in [("tiocsti", libc::TIOCSTI), ("tioclinux", libc::TIOCLINUX)] {
        match &devnull {
            Ok(f) => {
                let (r, d) =
                    syscall_attempt(libc::SYS_ioctl, [f.as_raw_fd() as _, cmd as _, 0, 0, 0, 0]);
                say(id, r, d);
            }
            Err(e) => say(id, false, format!("/dev/null: {}", errno_of(e))),
        }
    }
    let (r, d) = in_child(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER));
    say("userns", r, d);
    let (r, d) = in_child(|| {
        nix::mount::mount(
            Some("none"),
            "/tmp",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
    });
    say("mount", r, d);
    let (r, d) = syscall_attempt(libc::SYS_fsopen, [0, 0, 0, 0, 0, 0]);
    say("fsopen", r, d);
    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
    match socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::empty(),
        SockProtocol::Icmp,
    ) {
        Ok(_) => say("raw-socket", true, "created".into()),
        Err(e) => say("raw-socket", false, format!("{e:?}")),
    }
    let (r, d) = syscall_attempt(
        libc::SYS_socket,
        [libc::AF_PACKET as _, libc::SOCK_RAW as _, 0, 0, 0, 0],
    );
    say("packet-socket", r, d);
    // KEYCTL_GET_KEYRING_ID (0) of the session keyring (-3).
    let (r, d) = syscall_attempt(libc::SYS_keyctl, [0, -3, 0, 0, 0, 0]);
    say("keyctl", r, d);
    let (r, d) = syscall_attempt(libc::SYS_bpf, [0, 0, 0, 0, 0, 0]);
    say("bpf", r, d);
    let (r, d) = syscall_attempt(libc::SYS_perf_event_open, [0, 0, -1, -1, 0, 0]);
    say("perf", r, d);
    let (r, d) = syscall_attempt(libc::SYS_io_uring_setup, [1, 0, 0, 0, 0, 0]);
    say("io-uring", r, d);
    let (r, d) = syscall_attempt(libc::SYS_userfaultfd, [0, 0, 0, 0, 0, 0]);
    say("userfaultfd", r, d);
    #[cfg(target_arch = "x86_64")]
    {
        let status = crate::sys::probe_in_child(|| {
            let r = crate::sys::int80_getpid();
            if r < 0 { -r } else { 0 }
        });
        let (r, d) = match status {
            Ok(WaitStatus::Signaled(_, sig, _)) => (false, format!("killed by {sig}")),
            Ok(WaitStatus::Exited(_, 0)) => (true, "getpid answered".into()),
            Ok(WaitStatus::Exited(_, n)) => (true, format!("{:?}", Errno::from_raw(n))),
            Ok(other) => (false, format!("{other:?}")),
            Err(e) => (false, format!("fork: {}", errno_of(&e))),
        };
        say("foreign-abi", r, d);
    }
}

fn writes(spec: &Spec, say: &mut Say<'_>) {
    use std::fs::OpenOptions;
    for (id, path) in &spec.writes {
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            // A protected directory that does not exist yet (.vscode): its
            // creation is the first attempt.
            if let Err(e) = std::fs::create_dir(parent) {
                say(id, false, format!("mkdir: {}", errno_of(&e)));
                continue;
            }
        }
        let res = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(spec.token.as_bytes()));
        match res {
            Ok(()) => say(id, true, "written".into()),
            Err(e) => say(id, false, errno_of(&e)),
        }
    }
}
