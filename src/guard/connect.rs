//! The graded proxy mode's connect(2), supervisor side: with no network
//! namespace the agent shares the host's loopback, so the guard's program
//! hands every connect(2) over (`sandbox::guard`, `Watch::connect`) and
//! this module answers it. The supervisor connects, never the agent:
//!
//! 1. read the address from the agent's memory (/proc/PID/mem);
//! 2. anything but the proxy's listener (127.0.0.1:P, or its v4-mapped
//!    IPv6 form) is refused with EACCES, and an inet address gets a
//!    `deny` record in the proxy's style (`Proxy::deny_direct`);
//! 3. check the notification is still live (the pid was not reused);
//! 4. duplicate the agent's socket (pidfd_open, pidfd_getfd: the same open
//!    file description), bind the duplicate to an ephemeral loopback port
//!    (with SO_REUSEADDR and SO_REUSEPORT cleared) and tell the proxy to expect that client address ([`Peers`]: the
//!    proxy closes every other client, so host processes cannot use it);
//! 5. connect the duplicate to the proxy, which connects the agent's
//!    socket, and answer with the result (0, or the errno: EINPROGRESS
//!    for a non-blocking socket).
//!
//! The call is never let go on (no SECCOMP_USER_NOTIF_FLAG_CONTINUE): the
//! kernel would read the address again, after another thread of the agent
//! changed it. Landlock (ABI ≥ 4) still denies every TCP connect the agent
//! makes itself; the supervisor is not under Landlock.
//!
//! Refused with EACCES, as the guard refuses creations: a program sees
//! "permission denied", which says it was cage, where ECONNREFUSED would
//! look like a server that is down.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use crate::proxy::{Peers, Proxy};

/// Where the agent may connect, and who records the rest.
pub struct Connects {
    /// The proxy's listener on the host's loopback.
    pub addr: SocketAddrV4,
    pub peers: Arc<Peers>,
    pub proxy: Proxy,
}

/// The longest address worth reading (sockaddr_storage).
const MAX_ADDR: usize = 128;

/// Answers one connect(2) notification on `listener`.
pub(super) fn answer(listener: RawFd, req: &libc::seccomp_notif, to: &Connects) {
    let [fd, addr, len, ..] = req.data.args;
    // 1.
    let asked = read_addr(req.pid, addr, len as u32 as usize);
    // 3. Before anything is done for it: a reused pid's memory was read.
    if !crate::sys::notif_id_valid(listener, req.id) {
        return;
    }
    let error = match asked {
        Err(errno) => errno,
        Ok(Some(a)) if is_proxy(a, to.addr) => {
            match connect_for(req.pid, fd as i32, to.addr, &to.peers) {
                Ok(()) => 0,
                Err(errno) => errno,
            }
        }
        // 2.
        Ok(asked) => {
            if let Some(a) = asked {
                to.proxy.deny_direct(a);
            }
            libc::EACCES
        }
    };
    // 5. A failure means the call was interrupted or its process died.
    let _ = crate::sys::notif_answer(listener, req.id, error);
}

/// The inet address at `addr` (`len` bytes) in process `pid`, `None` for
/// another family; the errno connect(2) would give for a bad one.
fn read_addr(pid: u32, addr: u64, len: usize) -> Result<Option<SocketAddr>, i32> {
    let mut raw = vec![0u8; len.min(MAX_ADDR)];
    // A process that cannot be read (non-dumpable) is refused; a bad
    // pointer fails as the kernel would fail it.
    let got = super::read_mem_upto(pid, addr, &mut raw).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            libc::EACCES
        } else {
            libc::EFAULT
        }
    })?;
    if got < raw.len() {
        return Err(libc::EFAULT);
    }
    parse_addr(&raw)
}

/// A sockaddr as the kernel reads it: sockaddr_in needs 16 bytes,
/// sockaddr_in6 24 (the RFC 2133 form, without the scope id).
fn parse_addr(raw: &[u8]) -> Result<Option<SocketAddr>, i32> {
    let Some(family) = raw.get(..2) else {
        return Err(libc::EINVAL);
    };
    let port = |r: &[u8]| u16::from_be_bytes([r[2], r[3]]);
    match i32::from(u16::from_ne_bytes([family[0], family[1]])) {
        libc::AF_INET if raw.len() >= 16 => Ok(Some(SocketAddr::new(
            IpAddr::from([raw[4], raw[5], raw[6], raw[7]]),
            port(raw),
        ))),
        libc::AF_INET6 if raw.len() >= 24 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&raw[8..24]);
            Ok(Some(SocketAddr::new(IpAddr::from(ip), port(raw))))
        }
        libc::AF_INET | libc::AF_INET6 => Err(libc::EINVAL),
        _ => Ok(None),
    }
}

/// Exactly the proxy's listener, as an IPv4 or a v4-mapped IPv6 address.
fn is_proxy(asked: SocketAddr, proxy: SocketAddrV4) -> bool {
    let ip = match asked.ip() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    };
    ip == Some(*proxy.ip()) && asked.port() == proxy.port()
}

/// Steps 4 and 5 for the agent's descriptor `fd` of thread `tid`.
fn connect_for(tid: u32, fd: RawFd, proxy: SocketAddrV4, peers: &Peers) -> Result<(), i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EBADF);
    // A thread's own descriptor table (clone without CLONE_FILES) needs a
    // pidfd for that thread (Linux 6.9); before, its group leader's.
    let pidfd = match crate::sys::pidfd_open_thread(tid as i32) {
        Ok(p) => p,
        Err(_) => crate::sys::pidfd_open(leader(tid).ok_or(libc::ESRCH)?).map_err(errno)?,
    };
    // Only ever used through the raw calls below: std's methods read
    // addresses, and drop closes the duplicate.
    let sock = TcpStream::from(crate::sys::pidfd_getfd(pidfd.as_raw_fd(), fd).map_err(errno)?);
    // An unbound socket's address says its family; a unix socket has
    // none std can read.
    let (local, target) = match sock.local_addr().map_err(|_| libc::EAFNOSUPPORT)? {
        SocketAddr::V4(_) => (
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            SocketAddr::V4(proxy),
        ),
        SocketAddr::V6(_) => {
            let mapped = proxy.ip().to_ipv6_mapped();
            (
                SocketAddr::from((mapped, 0)),
                SocketAddr::from((mapped, proxy.port())),
            )
        }
    };
    // Bound first, so the proxy knows the client's address before the
    // connection can be accepted, and alone: with SO_REUSEADDR or
    // SO_REUSEPORT set by the agent, a host process could bind the same
    // address and pass for it. EINVAL: bound already (a connect that
    // failed before).
    for reuse in [
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReuseAddr, &false),
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReusePort, &false),
    ] {
        reuse.map_err(|e| e as i32)?;
    }
    match crate::sys::bind_inet(sock.as_raw_fd(), local) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Err(e) => return Err(errno(e)),
    }
    let me = sock.local_addr().map(unmapped).map_err(errno)?;
    peers.expect(me);
    match crate::sys::connect_inet(sock.as_raw_fd(), target) {
        Ok(()) => Ok(()),
        Err(e) => match e.raw_os_error().unwrap_or(libc::EIO) {
            // Done by an earlier answer to a restarted call.
            libc::EISCONN if sock.peer_addr().map(unmapped).ok() == Some(SocketAddr::V4(proxy)) => {
                Ok(())
            }
            // Under way: the proxy will see this client.
            e @ (libc::EINPROGRESS | libc::EALREADY) => Err(e),
            e => {
                peers.forget(me);
                Err(e)
            }
        },
    }
}

/// The thread group leader of `tid`, from /proc/TID/status.
fn leader(tid: u32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Tgid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A v4-mapped address as IPv4, as the proxy's IPv4 listener sees its
/// peer.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::from((ip, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockaddr_in(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut raw = vec![0u8; 16];
        raw[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        raw[2..4].copy_from_slice(&port.to_be_bytes());
        raw[4..8].copy_from_slice(&ip);
        raw
    }

    #[test]
    fn only_the_proxys_exact_address_is_the_proxy() {
        let proxy = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4000);
        let parsed = |raw: &[u8]| parse_addr(raw).unwrap().unwrap();
        assert!(is_proxy(parsed(&sockaddr_in([127, 0, 0, 1], 4000)), proxy));
        assert!(!is_proxy(parsed(&sockaddr_in([127, 0, 0, 1], 4001)), proxy));
        assert!(!is_proxy(parsed(&sockaddr_in([127, 0, 0, 2], 4000)), proxy));
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4000".parse().unwrap();
        let loopback6: SocketAddr = "[::1]:4000".parse().unwrap();
        assert!(is_proxy(mapped, proxy));
        assert!(!is_proxy(loopback6, proxy));
        // Short addresses fail as the kernel fails them; others are no
        // inet address at all.
        assert_eq!(
            parse_addr(&sockaddr_in([127, 0, 0, 1], 4000)[..8]),
            Err(libc::EINVAL)
        );
        assert_eq!(parse_addr(&[0]), Err(libc::EINVAL));
        assert_eq!(parse_addr(&(libc::AF_UNIX as u16).to_ne_bytes()), Ok(None));
    }
}
