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
//! Threads with blocking I/O: the supervisor is past clone when this
//! starts. Each connection gets one thread (two once it is a tunnel; one
//! for a terminated connection, which drives both TLS sessions with
//! poll(2)), with small stacks; a cap on concurrent connections bounds
//! them.

mod conn;
pub mod dns;
pub mod http;
mod relay;
pub mod rules;
pub mod socks;
mod tls;

use std::io;
use std::net::{IpAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::audit::Log;
use crate::sandbox::protocol::Listeners;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_head: http::MAX_HEAD,
            max_connections: 1024,
            max_dns: 64,
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
}

/// A running proxy; the threads live as long as the process.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

/// Stack for a connection's thread: parsing, getaddrinfo (glibc's resolver
/// wants some room), then relaying.
const CONN_STACK: usize = 256 * 1024;

impl Proxy {
    /// Starts serving `listeners`: one accepting thread per socket.
    pub fn start(
        listeners: Listeners,
        forwards: &[std::net::SocketAddr],
        rules: Rules,
        log: Arc<Log>,
        config: Config,
        vault: Option<Arc<crate::secrets::Vault>>,
    ) -> io::Result<Proxy> {
        let shared = Arc::new(Shared {
            rules: std::sync::RwLock::new(Arc::new(rules)),
            log,
            config,
            vault,
            active: AtomicUsize::new(0),
            dns_active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        });
        let proxy = TcpListener::from(listeners.proxy);
        let udp = UdpSocket::from(listeners.dns_udp);
        let tcp = TcpListener::from(listeners.dns_tcp);
        let named = |name: &str| std::thread::Builder::new().name(name.into());
        let s = Arc::clone(&shared);
        named("cage:proxy")
            .spawn(move || accept_loop(proxy, s, |stream, shared| conn::handle(stream, &shared)))?;
        // Each forwarded port, paired with its host address by plan order.
        for (fd, target) in listeners.forwards.into_iter().zip(forwards.iter().copied()) {
            let s = Arc::clone(&shared);
            let listener = TcpListener::from(fd);
            named("cage:forward").spawn(move || {
                accept_loop(listener, s, move |stream, shared| {
                    conn::forward(stream, target, &shared)
                })
            })?;
        }
        let s = Arc::clone(&shared);
        named("cage:dns-udp").spawn(move || dns::serve_udp(udp, s))?;
        let s = Arc::clone(&shared);
        named("cage:dns-tcp").spawn(move || dns::serve_tcp(tcp, s))?;
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

/// Accepts until the listener fails for good; each connection runs
/// `serve` on its own thread, up to the connection cap.
fn accept_loop<F>(listener: TcpListener, shared: Arc<Shared>, serve: F)
where
    F: Fn(TcpStream, Arc<Shared>) + Send + Sync + Copy + 'static,
{
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                // Out of descriptors or memory: let connections finish.
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                _ => return,
            },
        };
        if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            continue; // dropping the stream closes it
        }
        let s = Arc::clone(&shared);
        let spawned = spawn(move || {
            let done = Arc::clone(&s);
            serve(stream, s);
            done.active.fetch_sub(1, Ordering::SeqCst);
        });
        if !spawned {
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Runs `f` on a new thread with a small stack; false if none could start.
fn spawn<F: FnOnce() + Send + 'static>(f: F) -> bool {
    std::thread::Builder::new()
        .stack_size(CONN_STACK)
        .spawn(f)
        .is_ok()
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
