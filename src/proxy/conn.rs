//! One client connection on the proxy port, from its first byte to the
//! end of its tunnel.
//!
//! 1. Sniff the first byte: 0x05 is SOCKS5, a letter is HTTP; anything
//!    else is closed.
//! 2. Read the request (head or handshake) under one deadline.
//! 3. Decide on the name as asked; resolve on the host; keep only the
//!    addresses the rules admit; connect.
//! 4. Log the decision (a decision that cannot be logged is a denial);
//!    answer the client; relay; log the end with byte counts.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::audit::{Decision, Net, NetEnd, Proto, Record, SecretUse, SecretUseKind, format_target};

use super::http::{self, HeadError, Target};
use super::rules::Verdict;
use super::socks::{self, Reply, SocksError};
use super::{Shared, relay};

/// The client's socket during the request: every read bounded by one
/// deadline for the whole head or handshake; each write by its own timeout
/// (answers come after the upstream connect, which has its own).
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
    write_timeout: Duration,
}

impl Deadline<'_> {
    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        (&*self.stream).read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                io::ErrorKind::TimedOut.into()
            } else {
                e
            }
        })
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.write_timeout))?;
        (&*self.stream).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The outcome of steps 3 and 4 before answering the client.
enum Opened {
    Connected {
        upstream: TcpStream,
        id: u64,
    },
    Denied(String),
    /// Allowed, but the upstream could not be reached.
    Failed {
        reason: String,
        error: Option<io::Error>,
    },
}

pub(super) fn handle(client: TcpStream, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let mut timed = Deadline {
        stream: &client,
        until: Instant::now() + shared.config.header_timeout,
        write_timeout: shared.config.header_timeout,
    };
    // 1. Peek, so each protocol's parser sees the whole stream.
    let mut first = [0u8; 1];
    let peeked = timed
        .left()
        .and_then(|left| client.set_read_timeout(Some(left)))
        .and_then(|()| client.peek(&mut first));
    match peeked {
        Ok(1) if first[0] == socks::VERSION => handle_socks(&client, &mut timed, shared),
        Ok(1) if first[0].is_ascii_alphabetic() => handle_http(&client, &mut timed, shared),
        Ok(1) => {
            let _ = timed.write_all(&http::response(
                400,
                "cage: this is an HTTP and SOCKS5 proxy",
            ));
        }
        _ => {}
    }
    lingering_close(&client);
}

/// Closes after an answer without losing it: closing a socket with unread
/// input makes the kernel send a reset, which can destroy the answer in
/// flight (a 400 after a request we did not read to the end). So: end our
/// side, then read and discard for a short while.
fn lingering_close(client: &TcpStream) {
    const LINGER: Duration = Duration::from_millis(500);
    const MAX: usize = 64 * 1024;
    if client.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let until = Instant::now() + LINGER;
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < MAX {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || client.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&*client).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

fn handle_http(client: &TcpStream, timed: &mut Deadline, shared: &Shared) {
    // 2.
    let (head, rest) = match http::read_head(timed, shared.config.max_head) {
        Ok(x) => x,
        Err(HeadError::TooLarge) => {
            let _ = timed.write_all(&http::response(431, "cage: request head too large"));
            return;
        }
        Err(HeadError::TimedOut) => {
            let _ = timed.write_all(&http::response(408, "cage: request head too slow"));
            return;
        }
        Err(HeadError::Eof | HeadError::Io(_)) => return,
    };
    let request = http::parse_request(&head).and_then(|r| r.destination().map(|d| (r, d)));
    let (request, dest) = match request {
        Ok(x) => x,
        Err(why) => {
            let _ = timed.write_all(&http::response(400, &format!("cage: {why}")));
            return;
        }
    };
    let (proto, host, port) = match &dest {
        Target::Authority { host, port } => (Proto::Connect, host.clone(), *port),
        Target::Absolute { host, port, .. } => (Proto::Http, host.clone(), *port),
    };
    // A placeholder in plain HTTP is never swapped (the value would cross
    // the network in the clear): the request is refused and recorded.
    if proto == Proto::Http
        && let Some(vault) = &shared.vault
        && let Some(s) = vault
            .secrets
            .iter()
            .find(|s| super::tls::contains(&head, s.placeholder()))
    {
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let _ = shared.log.write(Record::Secret(SecretUse {
            id,
            kind: SecretUseKind::Refused,
            secret: s.name.clone(),
            host: host.clone(),
            port,
            reason: Some("plain HTTP: secrets go over TLS only".into()),
        }));
        let body = format!(
            "cage: refused: this request carries the placeholder of the secret {}, which is \
             swapped in over HTTPS only",
            s.name
        );
        let _ = timed.write_all(&http::response(403, &body));
        return;
    }
    // 3, 4.
    let (upstream, id) = match open(shared, proto, &host, port) {
        Opened::Connected { upstream, id } => (upstream, id),
        Opened::Denied(reason) => {
            let body = format!(
                "cage: {} is not allowed: {reason}",
                format_target(&host, port)
            );
            let _ = timed.write_all(&http::response(403, &body));
            return;
        }
        Opened::Failed { reason, .. } => {
            let body = format!("cage: {}: {reason}", format_target(&host, port));
            let _ = timed.write_all(&http::response(502, &body));
            return;
        }
    };
    let started = Instant::now();
    let (first_up, mode) = match &dest {
        Target::Authority { .. } => {
            if timed
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .is_err()
            {
                end(shared, id, &host, port, (0, 0), started);
                return;
            }
            if let Some(vault) = shared.vault.as_ref().filter(|v| v.terminates(&host, port)) {
                terminated(
                    client, upstream, &rest, shared, vault, id, &host, port, started,
                );
                return;
            }
            (rest, relay::Mode::Tunnel)
        }
        Target::Absolute {
            path, authority, ..
        } => {
            let mut up = request.origin_head(path, authority);
            up.extend_from_slice(&rest);
            (up, relay::Mode::OneExchange)
        }
    };
    tunnel(
        client, upstream, &first_up, mode, shared, id, &host, port, started,
    );
}

fn handle_socks(client: &TcpStream, timed: &mut Deadline, shared: &Shared) {
    let (host, port) = match socks::handshake(timed) {
        Ok(x) => x,
        Err(SocksError::Io(_) | SocksError::BadVersion | SocksError::NoAcceptableMethod) => {
            return;
        }
        Err(SocksError::Refused(_) | SocksError::Malformed(_)) => return,
    };
    let (upstream, id) = match open(shared, Proto::Socks5, &host, port) {
        Opened::Connected { upstream, id } => (upstream, id),
        Opened::Denied(_) => {
            let _ = socks::reply(timed, Reply::NotAllowed);
            return;
        }
        Opened::Failed { error, .. } => {
            let code = error
                .as_ref()
                .map(socks::reply_for)
                .unwrap_or(Reply::HostUnreachable);
            let _ = socks::reply(timed, code);
            return;
        }
    };
    let started = Instant::now();
    if socks::reply(timed, Reply::Succeeded).is_err() {
        end(shared, id, &host, port, (0, 0), started);
        return;
    }
    if let Some(vault) = shared.vault.as_ref().filter(|v| v.terminates(&host, port)) {
        terminated(
            client,
            upstream,
            &[],
            shared,
            vault,
            id,
            &host,
            port,
            started,
        );
        return;
    }
    let mode = relay::Mode::Tunnel;
    tunnel(
        client,
        upstream,
        &[],
        mode,
        shared,
        id,
        &host,
        port,
        started,
    );
}

/// A connection to a forwarded host loopback port: the same decision,
/// admission and log as a proxied one, then a raw tunnel.
pub(super) fn forward(client: TcpStream, target: SocketAddr, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let started = Instant::now();
    let host = target.ip().to_string();
    if let Opened::Connected { upstream, id } = open(shared, Proto::Forward, &host, target.port()) {
        // A forwarded port that a secret may go to is terminated too: a
        // program that skips the proxy for loopback still gets the swap.
        if let Some(vault) = shared
            .vault
            .as_ref()
            .filter(|v| v.terminates(&host, target.port()))
        {
            let port = target.port();
            terminated(
                &client,
                upstream,
                &[],
                shared,
                vault,
                id,
                &host,
                port,
                started,
            );
            return;
        }
        tunnel(
            &client,
            upstream,
            &[],
            relay::Mode::Tunnel,
            shared,
            id,
            &host,
            target.port(),
            started,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn tunnel(
    client: &TcpStream,
    upstream: TcpStream,
    first_up: &[u8],
    mode: relay::Mode,
    shared: &Shared,
    id: u64,
    host: &str,
    port: u16,
    started: Instant,
) {
    // Tunnels have no deadline: a model API may stream for minutes.
    let _ = client.set_read_timeout(None);
    let _ = client.set_write_timeout(None);
    let bytes = relay::relay(&shared.pool, client, &upstream, first_up, mode);
    end(shared, id, host, port, bytes, started);
}

/// A connection to a secret's host: TLS terminated, the request head's
/// placeholders swapped (see `tls`).
#[allow(clippy::too_many_arguments)]
fn terminated(
    client: &TcpStream,
    upstream: TcpStream,
    early: &[u8],
    shared: &Shared,
    vault: &std::sync::Arc<crate::secrets::Vault>,
    id: u64,
    host: &str,
    port: u16,
    started: Instant,
) {
    let bytes = super::tls::serve(client, &upstream, early, shared, vault, id, host, port);
    end(shared, id, host, port, bytes, started);
}

fn end(shared: &Shared, id: u64, host: &str, port: u16, bytes: (u64, u64), started: Instant) {
    let _ = shared.log.write(Record::NetEnd(NetEnd {
        id,
        host: host.to_string(),
        port,
        bytes_up: bytes.0,
        bytes_down: bytes.1,
        duration_ms: started.elapsed().as_millis() as u64,
    }));
}

/// Steps 3 and 4: decide, resolve, admit, connect, log.
fn open(shared: &Shared, proto: Proto, host: &str, port: u16) -> Opened {
    let rules = shared.rules();
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let mut rec = Net {
        id,
        proto,
        host: host.to_string(),
        port,
        addr: None,
        decision: Decision::Deny,
        reason: None,
        rule: None,
        source: None,
    };
    let deny = |mut rec: Net, reason: String| {
        rec.decision = Decision::Deny;
        rec.reason = Some(reason.clone());
        let _ = shared.log.write(Record::Net(rec));
        Opened::Denied(reason)
    };
    let rule = match rules.decide(host, port) {
        Verdict::Allow(rule) => rule,
        Verdict::Deny(Some(rule)) => {
            rec.rule = Some(rule.text.clone());
            rec.source = Some(rule.source.clone());
            return deny(rec, "a deny rule matches".to_string());
        }
        Verdict::Deny(None) => {
            return deny(rec, "no allow rule matches".to_string());
        }
    };
    rec.rule = Some(rule.text.clone());
    rec.source = Some(rule.source.clone());
    let addrs = match super::resolve(host, port) {
        Ok(a) => a,
        Err(e) => {
            let reason = format!("cannot resolve {host} on the host: {e}");
            rec.decision = Decision::Allow;
            rec.reason = Some(reason.clone());
            let _ = shared.log.write(Record::Net(rec));
            return Opened::Failed {
                reason,
                error: None,
            };
        }
    };
    let addrs = match rules.admit(&addrs, port) {
        Ok(a) => a,
        Err(why) => return deny(rec, why),
    };
    // Each admitted address in turn, as a resolver-ordered client would.
    let mut last: Option<(IpAddr, io::Error)> = None;
    let mut upstream = None;
    for ip in addrs {
        match TcpStream::connect_timeout(&SocketAddr::new(ip, port), shared.config.connect_timeout)
        {
            Ok(s) => {
                upstream = Some((ip, s));
                break;
            }
            Err(e) => last = Some((ip, e)),
        }
    }
    rec.decision = Decision::Allow;
    let Some((ip, upstream)) = upstream else {
        let (ip, e) = last.unzip();
        let reason = match (&ip, &e) {
            (Some(ip), Some(e)) => format!("connecting to {}: {e}", SocketAddr::new(*ip, port)),
            _ => "no address to connect to".to_string(),
        };
        rec.addr = ip.map(|ip| SocketAddr::new(ip, port).to_string());
        rec.reason = Some(reason.clone());
        let _ = shared.log.write(Record::Net(rec));
        return Opened::Failed { reason, error: e };
    };
    let _ = upstream.set_nodelay(true);
    rec.addr = Some(SocketAddr::new(ip, port).to_string());
    // Fail closed: a connection the log does not show is not made.
    if shared.log.write(Record::Net(rec)).is_err() {
        return Opened::Failed {
            reason: "cage cannot write its audit log".to_string(),
            error: None,
        };
    }
    Opened::Connected { upstream, id }
}
