//! The egress proxy and DNS stub, served by the supervisor from outside
//! the cage.
//!
//! Init creates the listening sockets on the cage's own loopback and
//! passes them over (`sandbox::protocol`); this module accepts on them from
//! the host side and connects upstream from the host's network. The cage's
//! net namespace never gets a route out: a program that ignores the proxy
//! simply has nowhere to connect.
//!
//! It owns the protocols (HTTP absolute-form, CONNECT and SOCKS5 on one
//! port, DNS over UDP and TCP), the limits that keep a hostile client from
//! exhausting the supervisor, and writing every decision to the audit log.
//! What is allowed is the plan's rules, applied by [`rules`].
//!
//! Connections to a host some secret may go to are terminated instead of
//! tunnelled ([`tls`]): the proxy swaps the secret's placeholder for its
//! value in the request head, with the run's [`crate::secrets::Vault`].
//!
//! In the graded mode (`plan::graded`, no network namespace) the
//! supervisor binds the listeners on the host's loopback instead, where
//! any host process could reach them: [`Config::peers`] then names the
//! only client addresses served, those the guard's connect handler made
//! for the agent (`guard::connect`); every other connection is closed on
//! accept, and every DNS datagram dropped (the agent cannot send UDP).
//!
//! Threads with blocking I/O: the supervisor is past clone when this
//! starts. One thread accepts on every socket (poll(2)); each connection
//! runs on a thread of a bounded pool ([`pool`]), two once it is a tunnel
//! (one for a terminated connection, which drives both TLS sessions with
//! poll(2)), and so does each DNS query. The pool starts no thread before
//! the first connection and keeps a few idle ones for the next; a cap on
//! concurrent connections and queries bounds it.

mod conn;
pub mod dns;
pub mod http;
mod pool;
mod relay;
pub mod rules;
pub mod socks;
mod tls;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::audit::Log;
use crate::sandbox::protocol::Listeners;

use pool::Pool;
pub use rules::Rules;

/// Limits and timeouts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Time a client has to send a complete request head or SOCKS
    /// handshake (slowloris); also a DNS-over-TCP client's idle limit.
    pub header_timeout: Duration,
    /// Time to connect upstream, per address.
    pub connect_timeout: Duration,
    /// Largest request head.
    pub max_head: usize,
    /// Connections handled at once; more are closed on accept.
    pub max_connections: usize,
    /// DNS queries being answered at once; more are dropped.
    pub max_dns: usize,
    /// The graded mode: serve only clients whose address is here.
    pub peers: Option<Arc<Peers>>,
}

/// The client addresses the guard connected for the agent and the proxy
/// has not accepted yet (the graded mode). Each is served once, and only
/// within [`PEER_WAIT`] of its connect: a connect still under way that
/// failed later leaves its entry, and the port it names is free again.
#[derive(Debug, Default)]
pub struct Peers(std::sync::Mutex<std::collections::HashMap<SocketAddr, Instant>>);

/// How long an expected client address stays expected.
pub const PEER_WAIT: Duration = Duration::from_secs(30);

impl Peers {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<SocketAddr, Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection from `addr` is about to be made for the agent.
    pub fn expect(&self, addr: SocketAddr) {
        let mut map = self.map();
        map.retain(|_, at| at.elapsed() < PEER_WAIT);
        map.insert(addr, Instant::now());
    }

    /// The connection from `addr` was not made after all.
    pub fn forget(&self, addr: SocketAddr) {
        self.map().remove(&addr);
    }

    /// Whether `addr` was expected, recently; it is not any longer.
    fn take(&self, addr: SocketAddr) -> bool {
        self.map()
            .remove(&addr)
            .is_some_and(|at| at.elapsed() < PEER_WAIT)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_head: http::MAX_HEAD,
            max_connections: 1024,
            max_dns: 64,
            peers: None,
        }
    }
}

/// State every serving thread shares.
pub(crate) struct Shared {
    /// Swapped whole when `cage allow`/`cage deny` change them (`control`);
    /// each decision reads one version.
    rules: std::sync::RwLock<Arc<Rules>>,
    log: Arc<Log>,
    config: Config,
    /// Connections being handled (proxy and DNS over TCP).
    active: AtomicUsize,
    dns_active: AtomicUsize,
    next_id: AtomicU64,
    /// The run's secrets: connections to their hosts are terminated.
    vault: Option<Arc<crate::secrets::Vault>>,
    /// Threads for connections, tunnel directions and DNS queries.
    pool: Arc<Pool>,
}

/// A running proxy; the threads live as long as the process.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts serving `listeners`, all from one accepting thread.
    pub fn start(
        listeners: Listeners,
        forwards: &[SocketAddr],
        rules: Rules,
        log: Arc<Log>,
        config: Config,
        vault: Option<Arc<crate::secrets::Vault>>,
    ) -> io::Result<Proxy> {
        // Two threads per tunnel, one per DNS query: the caps on both
        // bound the pool, so a job is never refused below them.
        let threads = 2 * config.max_connections + config.max_dns;
        let shared = Arc::new(Shared {
            rules: std::sync::RwLock::new(Arc::new(rules)),
            log,
            config,
            vault,
            active: AtomicUsize::new(0),
            dns_active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            pool: Arc::new(Pool::new(threads)),
        });
        let mut tcp = vec![(TcpListener::from(listeners.proxy), Serve::Proxy)];
        // Each forwarded port, paired with its host address by plan order.
        for (fd, target) in listeners.forwards.into_iter().zip(forwards.iter().copied()) {
            tcp.push((TcpListener::from(fd), Serve::Forward(target)));
        }
        tcp.push((TcpListener::from(listeners.dns_tcp), Serve::DnsTcp));
        let udp = Arc::new(UdpSocket::from(listeners.dns_udp));
        // Non-blocking: poll says a listener is ready, but a connection
        // reset before accept(2) would otherwise block the whole loop.
        for (l, _) in &tcp {
            l.set_nonblocking(true)?;
        }
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("cage:proxy".into())
            .stack_size(ACCEPT_STACK)
            .spawn(move || accept_loop(&tcp, &udp, &s))?;
        Ok(Proxy { shared })
    }

    /// Replaces the rules for every decision from now on.
    pub fn set_rules(&self, rules: Rules) {
        *self.shared.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
    }

    /// Connections being handled right now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst) + self.shared.dns_active.load(Ordering::SeqCst)
    }

    /// The graded mode's record of a connect(2) the guard refused: the
    /// agent tried `addr` directly instead of through the proxy.
    pub fn deny_direct(&self, addr: SocketAddr) {
        let _ = self
            .shared
            .log
            .write(crate::audit::Record::Net(crate::audit::Net {
                id: self.shared.next_id.fetch_add(1, Ordering::SeqCst),
                proto: crate::audit::Proto::Tcp,
                host: addr.ip().to_string(),
                port: addr.port(),
                addr: Some(addr.to_string()),
                decision: crate::audit::Decision::Deny,
                reason: Some(
                    "a direct connect() (graded mode: only cage's proxy can be connected to; \
                 HTTPS_PROXY names it)"
                        .to_string(),
                ),
                rule: None,
                source: None,
            }));
    }

    /// Waits up to `grace` for open connections to finish (their end
    /// records), then returns how many are still open.
    pub fn drain(&self, grace: Duration) -> usize {
        let until = Instant::now() + grace;
        while self.active() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.active()
    }
}

impl Shared {
    /// The rules as they are now.
    pub(crate) fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Stack for the accepting thread: it only polls, accepts and hands on.
const ACCEPT_STACK: usize = 64 * 1024;

/// What a TCP listener's connections get.
#[derive(Clone, Copy)]
enum Serve {
    Proxy,
    Forward(SocketAddr),
    DnsTcp,
}

/// Accepts on every listener and reads every DNS datagram until one of
/// them fails for good; each connection or query is a job for the pool,
/// up to its cap.
fn accept_loop(tcp: &[(TcpListener, Serve)], udp: &Arc<UdpSocket>, shared: &Arc<Shared>) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut buf = vec![0u8; 4096];
    loop {
        let mut fds: Vec<PollFd> = tcp
            .iter()
            .map(|(l, _)| PollFd::new(l.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(udp.as_fd(), PollFlags::POLLIN));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        for ((listener, serve), _) in tcp.iter().zip(&ready).filter(|(_, r)| **r) {
            if !accept_one(listener, *serve, shared) {
                return;
            }
        }
        if ready.last() == Some(&true) && !dns::read_udp(udp, &mut buf, shared) {
            return;
        }
    }
}

/// Accepts what `listener` has waiting; false if it failed for good.
fn accept_one(listener: &TcpListener, serve: Serve, shared: &Arc<Shared>) -> bool {
    let stream = match listener.accept() {
        // Graded: a host process, not the agent (dropping closes it).
        Ok((_, peer)) if shared.config.peers.as_ref().is_some_and(|p| !p.take(peer)) => {
            return true;
        }
        Ok((s, _)) => s,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => true,
                // Out of descriptors or memory: let connections finish.
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    std::thread::sleep(Duration::from_millis(50));
                    true
                }
                _ => false,
            };
        }
    };
    // Accepted sockets do not inherit O_NONBLOCK on Linux: the job's
    // blocking I/O sees a blocking socket.
    if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        return true; // dropping the stream closes it
    }
    let s = Arc::clone(shared);
    let job = move || {
        match serve {
            Serve::Proxy => conn::handle(stream, &s),
            Serve::Forward(target) => conn::forward(stream, target, &s),
            Serve::DnsTcp => dns::serve_tcp_conn(stream, &s),
        }
        s.active.fetch_sub(1, Ordering::SeqCst);
    };
    if !shared.pool.run(Box::new(job)) {
        shared.active.fetch_sub(1, Ordering::SeqCst);
    }
    true
}

/// The host's addresses for `host` (a name, or an IP literal with or
/// without brackets), in the resolver's order, without duplicates.
fn resolve(host: &str, port: u16) -> io::Result<Vec<IpAddr>> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut out: Vec<IpAddr> = Vec::new();
    for a in (literal, port).to_socket_addrs()? {
        if !out.contains(&a.ip()) {
            out.push(a.ip());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
