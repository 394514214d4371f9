//! A terminated connection: for a host some secret may go to, the proxy
//! is the TLS server the cage talks to (a leaf from the session CA) and a
//! verifying TLS client to the real host, so it can swap placeholders for
//! real values in the request head.
//!
//! 1. TLS handshake with the cage; read one request head under the head
//!    deadline.
//! 2. A placeholder of a secret this host may not receive (anywhere in the
//!    head), or of any secret in the request line: refused with a 403, and
//!    recorded. Placeholders of this host's secrets in header values become
//!    the real values, each swap recorded. The upstream request asks for an
//!    uncompressed response (so it can be scanned) and `Connection: close`
//!    (so every request on a connection is this one: a pipelined second
//!    one reaches the server with its placeholders, never swapped).
//! 3. TLS handshake upstream, verified against the host's trust store for
//!    the name the rules decided on; a failure is a 502 naming it.
//! 4. Relay both ways on one thread (poll(2) over both sockets, rustls
//!    driven by hand), until the server ends its response. The response is
//!    scanned for every real value, which is replaced by its placeholder
//!    (the same length, so framing holds) and recorded.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustls::{ClientConnection, ServerConnection};
use rustls_pki_types::ServerName;

use crate::audit::{Record, SecretUse, SecretUseKind};
use crate::secrets::Vault;
use zeroize::Zeroizing;

use super::Shared;
use super::http;

/// Plaintext moved per step; also the most either side buffers before the
/// other has taken it (backpressure).
const CHUNK: usize = 64 * 1024;

/// Serves one terminated connection; returns (bytes up, bytes down) of
/// plaintext.
#[allow(clippy::too_many_arguments)]
pub(super) fn serve(
    client: &TcpStream,
    upstream: &TcpStream,
    early: &[u8],
    shared: &Shared,
    vault: &Arc<Vault>,
    id: u64,
    host: &str,
    port: u16,
) -> (u64, u64) {
    let names: Vec<&str> = vault
        .secrets
        .iter()
        .filter(|s| s.allowed_for(host, port))
        .map(|s| s.name.as_str())
        .collect();
    let t = Terminated {
        client,
        shared,
        vault,
        id,
        host,
        port,
        names: names.join(","),
    };
    // 1.
    let Some((mut server, head, rest)) = t.accept(early) else {
        return (0, 0);
    };
    // 2.
    let Some((rewritten, forms, mut body)) = t.decide(&mut server, &head) else {
        return (0, 0);
    };
    // 3.
    let Some(rest) = t.body_part(&mut server, &mut body, &rest) else {
        return (0, 0);
    };
    let mut first = rewritten;
    first.extend_from_slice(&rest);
    let Some(mut up) = t.connect(&mut server, upstream, &first) else {
        return (first.len() as u64, 0);
    };
    // 4.
    let mut scan = Scanner::new(vault, forms);
    let mut ends = Ends {
        t: &t,
        upstream,
        server: &mut server,
        up: &mut up,
    };
    let down = relay(&mut ends, &mut scan, &mut body);
    for name in scan.found() {
        let _ = t.record(
            SecretUseKind::Scrubbed,
            &name,
            Some("the response held the real value; the cage got the placeholder".into()),
        );
    }
    (first.len() as u64 + down.0, down.1)
}

/// One terminated connection's facts, for the steps of [`serve`].
struct Terminated<'a> {
    client: &'a TcpStream,
    shared: &'a Shared,
    vault: &'a Vault,
    id: u64,
    host: &'a str,
    port: u16,
    /// The secrets this host may receive, for records about the connection.
    names: String,
}

impl Terminated<'_> {
    /// An audit record; false if the log could not take it.
    fn record(&self, kind: SecretUseKind, secret: &str, reason: Option<String>) -> bool {
        self.shared
            .log
            .write(Record::Secret(SecretUse {
                id: self.id,
                kind,
                secret: secret.to_string(),
                host: self.host.to_string(),
                port: self.port,
                reason,
            }))
            .is_ok()
    }

    /// An answer from the proxy itself, then close_notify.
    fn reply(&self, server: &mut ServerConnection, status: u16, body: &str) {
        let mut sock = Timed {
            stream: self.client,
            until: Instant::now() + self.shared.config.header_timeout,
        };
        let mut tls = rustls::Stream::new(server, &mut sock);
        let _ = tls.write_all(&http::response(status, body));
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }

    /// Step 1: the handshake with the cage and one request head (and what
    /// followed it), under the head deadline.
    fn accept(&self, early: &[u8]) -> Option<(ServerConnection, Vec<u8>, Vec<u8>)> {
        let config = self.vault.ca.server_config(self.host).ok()?;
        let mut server = ServerConnection::new(config).ok()?;
        if !early.is_empty() && server.read_tls(&mut &early[..]).is_err() {
            return None;
        }
        let mut sock = Timed {
            stream: self.client,
            until: Instant::now() + self.shared.config.header_timeout,
        };
        let head = {
            let mut tls = rustls::Stream::new(&mut server, &mut sock);
            http::read_head(&mut tls, self.shared.config.max_head)
        };
        match head {
            Ok((head, rest)) => Some((server, head, rest)),
            Err(http::HeadError::Io(e)) if server.is_handshaking() => {
                // Say why to the client (an alert: unknown CA, bad
                // certificate) and in the log: a client that pins
                // certificates, or one that ignores the bundle.
                let _ = server.write_tls(&mut &*self.client);
                let _ = self.record(
                    SecretUseKind::TlsFailed,
                    &self.names,
                    Some(format!(
                        "the cage's TLS handshake with cage's proxy failed ({e}): a client that \
                         pins certificates or does not read the CA bundle; leave this host out \
                         of the secret's hosts for it"
                    )),
                );
                None
            }
            Err(_) => None,
        }
    }

    /// Step 2: the head to send upstream and the forms to scan for, or a
    /// refusal answered and recorded.
    fn decide(
        &self,
        server: &mut ServerConnection,
        head: &[u8],
    ) -> Option<(Vec<u8>, Forms, BodyScan)> {
        let request = match http::parse_request(head) {
            Ok(r) if r.method != "CONNECT" && r.target.starts_with('/') => r,
            Ok(_) => {
                self.reply(server, 400, "cage: send origin-form requests here");
                return None;
            }
            Err(why) => {
                self.reply(server, 400, &format!("cage: {why}"));
                return None;
            }
        };
        match swap(&request, self.vault, self.host, self.port) {
            Ok((head, swapped, forms)) => {
                // Fail closed: a swap the log does not show is not sent.
                let logged = swapped
                    .iter()
                    .all(|name| self.record(SecretUseKind::Swapped, name, None));
                if !logged {
                    self.reply(server, 503, "cage: cage cannot write its audit log");
                    return None;
                }
                Some((
                    head,
                    forms,
                    BodyScan::new(self.vault, &request, self.host, self.port),
                ))
            }
            Err(refusal) => {
                self.refuse(server, &refusal);
                None
            }
        }
    }

    /// Body bytes on their way up, through `body`: what may be sent, or
    /// `None` when a placeholder in them was refused (answered 403,
    /// recorded) or a swap could not be recorded (503).
    fn body_part(
        &self,
        server: &mut ServerConnection,
        body: &mut BodyScan,
        bytes: &[u8],
    ) -> Option<Vec<u8>> {
        match body.feed(bytes) {
            Ok((out, swapped)) => {
                let logged = swapped
                    .iter()
                    .all(|name| self.record(SecretUseKind::Swapped, name, None));
                if !logged {
                    self.reply(server, 503, "cage: cage cannot write its audit log");
                    return None;
                }
                Some(out)
            }
            Err(refusal) => {
                self.refuse(server, &refusal);
                None
            }
        }
    }

    fn refuse(&self, server: &mut ServerConnection, refusal: &Refusal) {
        let _ = self.record(
            SecretUseKind::Refused,
            &refusal.secret,
            Some(refusal.why.to_string()),
        );
        let body = format!(
            "cage: refused: this request carries the placeholder of the secret {}, which {}",
            refusal.secret, refusal.why
        );
        self.reply(server, 403, &body);
    }

    /// Step 3: TLS upstream, verified for the host, and the first request
    /// sent; a failure answered 502 and recorded.
    fn connect(
        &self,
        server: &mut ServerConnection,
        upstream: &TcpStream,
        first: &[u8],
    ) -> Option<ClientConnection> {
        let (host, port) = (self.host, self.port);
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(name) = ServerName::try_from(name.to_string()) else {
            self.reply(server, 502, "cage: not a TLS server name");
            return None;
        };
        let Ok(mut up) = ClientConnection::new(Arc::clone(&self.vault.upstream), name) else {
            self.reply(server, 502, "cage: cannot start TLS upstream");
            return None;
        };
        let handshake = {
            let mut usock = Timed {
                stream: upstream,
                until: Instant::now() + self.shared.config.connect_timeout,
            };
            let mut tls = rustls::Stream::new(&mut up, &mut usock);
            tls.write_all(first).and_then(|()| tls.flush())
        };
        if let Err(e) = handshake {
            let _ = self.record(
                SecretUseKind::TlsFailed,
                &self.names,
                Some(format!(
                    "TLS to {host}:{port} failed: {e}; nothing was sent"
                )),
            );
            self.reply(
                server,
                502,
                &format!("cage: TLS to {host}:{port} failed: {e}"),
            );
            return None;
        }
        Some(up)
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub secret: String,
    pub why: &'static str,
}

/// Step 2: the head to send upstream, and the secrets swapped into it.
/// The forms of a secret a request carried besides its value.
type Forms = Vec<(Zeroizing<Vec<u8>>, Vec<u8>, String)>;

pub(super) fn swap(
    request: &http::Request,
    vault: &Vault,
    host: &str,
    port: u16,
) -> Result<(Vec<u8>, Vec<String>, Forms), Refusal> {
    for s in &vault.secrets {
        let p = s.placeholder();
        if !s.allowed_for(host, port) && head_contains(request, p) {
            return Err(Refusal {
                secret: s.name.clone(),
                why: "may not go to this host",
            });
        }
        if contains(request.target.as_bytes(), p) {
            return Err(Refusal {
                secret: s.name.clone(),
                why: "is swapped in header values only, not in the URL",
            });
        }
    }
    // The name the rules decided on and the certificate was checked for is
    // the name the request is for: a Host header naming another (domain
    // fronting on a shared front end) gets no secret.
    let for_host = |value: &[u8]| {
        let v = String::from_utf8_lossy(value);
        let Ok((name, _)) = http::split_authority(&v) else {
            return false;
        };
        let want = host.trim_start_matches('[').trim_end_matches(']');
        name.trim_end_matches('.')
            .eq_ignore_ascii_case(want.trim_end_matches('.'))
    };
    let fronted = request
        .headers
        .iter()
        .any(|h| h.name == "host" && !for_host(&h.value));
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(
        format!(
            "{} {} {}\r\n",
            request.method, request.target, request.version
        )
        .as_bytes(),
    );
    let mut hop: Vec<String> = [
        "connection",
        "keep-alive",
        "accept-encoding",
        "te",
        "upgrade",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for h in request.headers.iter().filter(|h| h.name == "connection") {
        for token in String::from_utf8_lossy(&h.value).split(',') {
            let token = token.trim().to_ascii_lowercase();
            if !token.is_empty() {
                hop.push(token);
            }
        }
    }
    let mut swapped = Vec::new();
    let mut forms: Forms = Vec::new();
    for h in &request.headers {
        if hop.contains(&h.name) {
            continue;
        }
        let mut line = h.raw.clone();
        if let Some(mut creds) = basic(h) {
            let before = creds.clone();
            for s in vault.secrets.iter().filter(|s| s.allowed_for(host, port)) {
                if contains(&creds, s.placeholder()) {
                    creds = replace(&creds, s.placeholder(), s.value());
                    if !swapped.contains(&s.name) {
                        swapped.push(s.name.clone());
                    }
                }
            }
            if creds != before {
                let real = base64_encode(&creds);
                line = format!("Authorization: Basic {real}").into_bytes();
                let name = swapped.last().cloned().unwrap_or_default();
                forms.push((
                    Zeroizing::new(real.into_bytes()),
                    base64_encode(&before).into_bytes(),
                    name,
                ));
            }
        }
        for s in vault.secrets.iter().filter(|s| s.allowed_for(host, port)) {
            if contains(&line, s.placeholder()) {
                line = replace(&line, s.placeholder(), s.value());
                if !swapped.contains(&s.name) {
                    swapped.push(s.name.clone());
                }
            }
        }
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Accept-Encoding: identity\r\nConnection: close\r\n\r\n");
    if fronted && let Some(name) = swapped.first() {
        return Err(Refusal {
            secret: name.clone(),
            why: "goes to the host the connection was made for, and the Host header names another",
        });
    }
    Ok((out, swapped, forms))
}

fn head_contains(request: &http::Request, needle: &[u8]) -> bool {
    contains(request.target.as_bytes(), needle)
        || request
            .headers
            .iter()
            .any(|h| contains(&h.raw, needle) || basic(h).is_some_and(|c| contains(&c, needle)))
}

/// The decoded credentials of an `Authorization: Basic` header (git and
/// other HTTP clients send a token as its password).
fn basic(h: &http::Header) -> Option<Vec<u8>> {
    if h.name != "authorization" {
        return None;
    }
    let (scheme, value) = h.value.split_at(h.value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    base64_decode(value.trim_ascii())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding; `None` if `text` is not that.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for quad in text.chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in quad.iter().enumerate() {
            let v = match c {
                b'=' if i >= 2 => {
                    pad += 1;
                    0
                }
                _ if pad > 0 => return None,
                _ => B64.iter().position(|&x| x == c)? as u32,
            };
            n = n << 6 | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle, 0).is_some()
}

/// The first `needle` in `hay` at or after `from`: a scan for its first
/// byte, then a compare (the response scan runs over every byte).
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let at = i + hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while let Some(at) = find(hay, from, i) {
        out.extend_from_slice(&hay[i..at]);
        out.extend_from_slice(to);
        i = at + from.len();
    }
    out.extend_from_slice(&hay[i..]);
    out
}

/// The request body on its way up, in a stream (memory bounded by the
/// longest placeholder, whatever the body's size):
///
/// 1. A placeholder of a secret this host may not receive: refused, as in
///    the head.
/// 2. A placeholder of a secret with `body = true` for this host: its
///    value (the same length, so Content-Length and chunk sizes hold).
/// 3. A placeholder of this host's secret without `body = true`: passed as
///    it is (a conversation that quotes the key goes to the host that
///    receives the real one anyway; the placeholder is worth nothing).
///
/// It holds back only a tail that could still begin a placeholder, and
/// nothing once the body's Content-Length is reached (the client then
/// waits for the answer). A chunked body ends in CRLF, which begins none.
pub(super) struct BodyScan {
    /// (placeholder, value, secret) to swap.
    swaps: Vec<(Vec<u8>, Zeroizing<Vec<u8>>, String)>,
    /// (placeholder, secret) to refuse.
    refused: Vec<(Vec<u8>, String)>,
    held: Vec<u8>,
    /// Body bytes still to come, when Content-Length says.
    left: Option<u64>,
    /// Secrets already swapped on this request (each is recorded once).
    swapped: Vec<String>,
}

impl BodyScan {
    pub(super) fn new(vault: &Vault, request: &http::Request, host: &str, port: u16) -> Self {
        let mut scan = BodyScan {
            swaps: Vec::new(),
            refused: Vec::new(),
            held: Vec::new(),
            left: request
                .headers
                .iter()
                .find(|h| h.name == "content-length")
                .and_then(|h| std::str::from_utf8(&h.value).ok()?.trim().parse().ok()),
            swapped: Vec::new(),
        };
        for s in &vault.secrets {
            let p = s.placeholder().to_vec();
            if !s.allowed_for(host, port) {
                scan.refused.push((p, s.name.clone()));
            } else if s.body {
                let value = Zeroizing::new(s.value().to_vec());
                scan.swaps.push((p, value, s.name.clone()));
            }
        }
        scan
    }

    /// The bytes to send after `chunk`, and the secrets swapped into the
    /// body for the first time; or the refusal.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<(Vec<u8>, Vec<String>), Refusal> {
        if self.swaps.is_empty() && self.refused.is_empty() {
            return Ok((chunk.to_vec(), Vec::new()));
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        for (p, name) in &self.refused {
            if contains(&buf, p) {
                return Err(Refusal {
                    secret: name.clone(),
                    why: "may not go to this host",
                });
            }
        }
        let mut new = Vec::new();
        for (p, value, name) in &self.swaps {
            if contains(&buf, p) {
                buf = replace(&buf, p, value);
                if !self.swapped.contains(name) {
                    self.swapped.push(name.clone());
                    new.push(name.clone());
                }
            }
        }
        self.left = self.left.map(|n| n.saturating_sub(chunk.len() as u64));
        if self.left != Some(0) {
            let patterns = self.swaps.iter().map(|(p, _, _)| p);
            let keep = unfinished_tail(&buf, patterns.chain(self.refused.iter().map(|(p, _)| p)));
            self.held = buf.split_off(buf.len() - keep);
        }
        Ok((buf, new))
    }
}

/// The length of the longest tail of `buf` that is a proper prefix of one
/// of `patterns`: what a stream must hold back, as the next chunk may
/// complete it.
fn unfinished_tail<'p, P: AsRef<[u8]> + 'p>(
    buf: &[u8],
    patterns: impl Iterator<Item = &'p P>,
) -> usize {
    patterns
        .map(|p| {
            let p = p.as_ref();
            (1..p.len().min(buf.len() + 1))
                .rev()
                .find(|&n| buf.ends_with(&p[..n]))
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
}

/// Replaces real values with their placeholders in a stream, across chunk
/// boundaries: it holds back only a tail that could still begin a value.
pub(super) struct Scanner {
    /// (real form, placeholder form of the same length, secret).
    pairs: Vec<(Zeroizing<Vec<u8>>, Vec<u8>, String)>,
    held: Vec<u8>,
    found: Vec<String>,
}

impl Scanner {
    /// Every secret's value, and `extra` forms this connection sent (the
    /// base64 credentials of a swapped `Basic` header).
    pub(super) fn new(vault: &Vault, extra: Vec<(Zeroizing<Vec<u8>>, Vec<u8>, String)>) -> Self {
        let mut pairs: Vec<_> = vault
            .secrets
            .iter()
            .map(|s| {
                (
                    Zeroizing::new(s.value().to_vec()),
                    s.placeholder().to_vec(),
                    s.name.clone(),
                )
            })
            .collect();
        pairs.extend(extra);
        Scanner {
            pairs,
            held: Vec::new(),
            found: Vec::new(),
        }
    }

    /// The bytes safe to pass on after `chunk`.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        for (real, placeholder, name) in &self.pairs {
            if contains(&buf, real) {
                buf = replace(&buf, real, placeholder);
                if !self.found.contains(name) {
                    self.found.push(name.clone());
                }
            }
        }
        let keep = unfinished_tail(&buf, self.pairs.iter().map(|(v, _, _)| v));
        self.held = buf.split_off(buf.len() - keep);
        buf
    }

    /// What is still held at the end of the stream.
    pub(super) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    pub(super) fn found(&self) -> Vec<String> {
        self.found.clone()
    }
}

/// Step 4. Returns plaintext (up, down) moved after the first request.
fn relay(e: &mut Ends, scan: &mut Scanner, body: &mut BodyScan) -> (u64, u64) {
    let (client, upstream) = (e.t.client, e.upstream);
    // Tunnels have no deadline: a model API may stream for minutes.
    for s in [client, upstream] {
        let _ = s.set_read_timeout(None);
        let _ = s.set_write_timeout(None);
        if s.set_nonblocking(true).is_err() {
            return (0, 0);
        }
    }
    e.server.set_buffer_limit(None);
    e.up.set_buffer_limit(None);
    let mut flow = Flow::default();
    let mut buf = vec![0u8; CHUNK];
    while let Ok(go_on) = relay_round(e, &mut flow, &mut buf, scan, body) {
        if !go_on {
            break;
        }
    }
    for s in [client, upstream] {
        let _ = s.set_nonblocking(false);
    }
    let _ = upstream.shutdown(std::net::Shutdown::Both);
    if flow.refused {
        // The refusal's answer, queued in the cage's session: best effort,
        // the socket back in blocking mode.
        let _ = flush(e.server, client);
    }
    (flow.n_up, flow.n_down)
}

/// Both sockets and both TLS sessions of a terminated connection.
struct Ends<'a> {
    t: &'a Terminated<'a>,
    upstream: &'a TcpStream,
    server: &'a mut ServerConnection,
    up: &'a mut ClientConnection,
}

/// Where a relay stands: bytes moved, and which side has ended.
#[derive(Default)]
struct Flow {
    n_up: u64,
    n_down: u64,
    /// The client's plaintext ended (close_notify, or EOF after it).
    client_done: bool,
    /// The server's response ended.
    upstream_done: bool,
    client_tcp_eof: bool,
    upstream_tcp_eof: bool,
    /// The body held a placeholder it may not carry: answered, cut off.
    refused: bool,
}

/// Nothing more to relay: the round found an end or an error.
struct Stop;

/// One round: plaintext across both ways, ciphertext out, then ciphertext
/// in (at once while data flows, else after poll(2)). `Ok(false)` when the
/// response is over and delivered.
fn relay_round(
    e: &mut Ends,
    flow: &mut Flow,
    buf: &mut [u8],
    scan: &mut Scanner,
    body: &mut BodyScan,
) -> Result<bool, Stop> {
    // Whether this round moved plaintext: then there may be more buffered
    // in rustls, which poll(2) cannot see, so go round again before
    // waiting.
    let moved = client_to_upstream(e, flow, buf, body)? | upstream_to_client(e, flow, buf, scan)?;
    // Ciphertext out.
    if flush(e.server, e.t.client).is_err() || flush(e.up, e.upstream).is_err() {
        return Err(Stop);
    }
    // The response is over and delivered: done (Connection: close).
    if flow.upstream_done && !e.server.wants_write() {
        return Ok(false);
    }
    if moved {
        // While data flows, read what the sockets hold without a poll(2)
        // per record (a read that would block costs one call).
        if !flow.upstream_tcp_eof && e.up.wants_read() && !e.server.wants_write() {
            flow.upstream_tcp_eof = !take_tls(e.up, e.upstream).map_err(|_| Stop)?;
        }
        if !flow.client_tcp_eof && e.server.wants_read() && !e.up.wants_write() {
            flow.client_tcp_eof = !take_tls(e.server, e.t.client).map_err(|_| Stop)?;
        }
        return Ok(true);
    }
    wait_and_read(e, flow)
}

/// Plaintext from the cage to the server, only once the server's side has
/// sent what it had (backpressure). Returns whether any moved.
fn client_to_upstream(
    e: &mut Ends,
    flow: &mut Flow,
    buf: &mut [u8],
    body: &mut BodyScan,
) -> Result<bool, Stop> {
    if flow.client_done || e.up.wants_write() {
        return Ok(false);
    }
    match e.server.reader().read(buf) {
        Ok(0) => {
            flow.client_done = true;
            e.up.send_close_notify();
        }
        Ok(n) => {
            let Some(out) = e.t.body_part(e.server, body, &buf[..n]) else {
                flow.refused = true;
                return Err(Stop);
            };
            flow.n_up += out.len() as u64;
            e.up.writer().write_all(&out).map_err(|_| Stop)?;
            return Ok(true);
        }
        Err(err)
            if err.kind() == io::ErrorKind::WouldBlock && flow.client_tcp_eof
                || err.kind() == io::ErrorKind::UnexpectedEof =>
        {
            flow.client_done = true;
            e.up.send_close_notify();
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
        Err(_) => return Err(Stop),
    }
    Ok(false)
}

/// The response to the cage, scanned, likewise; at its end, what the scan
/// held back and close_notify. Returns whether any moved.
fn upstream_to_client(
    e: &mut Ends,
    flow: &mut Flow,
    buf: &mut [u8],
    scan: &mut Scanner,
) -> Result<bool, Stop> {
    if flow.upstream_done || e.server.wants_write() {
        return Ok(false);
    }
    let mut moved = false;
    match e.up.reader().read(buf) {
        Ok(0) => flow.upstream_done = true,
        Ok(n) => {
            moved = true;
            let out = scan.feed(&buf[..n]);
            flow.n_down += out.len() as u64;
            e.server.writer().write_all(&out).map_err(|_| Stop)?;
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
            flow.upstream_done = flow.upstream_tcp_eof;
        }
        // A server that closes without close_notify (many do, with
        // Connection: close): the response is still delivered.
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => flow.upstream_done = true,
        Err(_) => return Err(Stop),
    }
    if flow.upstream_done {
        let tail = scan.finish();
        flow.n_down += tail.len() as u64;
        let _ = e.server.writer().write_all(&tail);
        e.server.send_close_notify();
    }
    Ok(moved)
}

/// Waits in poll(2) for what either side's TLS session wants, then reads
/// the ciphertext that arrived. `Ok(false)` when there is nothing left to
/// wait for.
fn wait_and_read(e: &mut Ends, flow: &mut Flow) -> Result<bool, Stop> {
    let mut cf = PollFlags::empty();
    if !flow.client_tcp_eof && e.server.wants_read() && !e.up.wants_write() {
        cf |= PollFlags::POLLIN;
    }
    if e.server.wants_write() {
        cf |= PollFlags::POLLOUT;
    }
    let mut uf = PollFlags::empty();
    if !flow.upstream_tcp_eof && e.up.wants_read() && !e.server.wants_write() {
        uf |= PollFlags::POLLIN;
    }
    if e.up.wants_write() {
        uf |= PollFlags::POLLOUT;
    }
    if cf.is_empty() && uf.is_empty() {
        // Nothing to wait for: both sides idle with nothing pending.
        if flow.client_done || flow.upstream_done {
            return Ok(false);
        }
        cf |= PollFlags::POLLIN;
        uf |= PollFlags::POLLIN;
    }
    let mut fds = [
        PollFd::new(e.t.client.as_fd(), cf),
        PollFd::new(e.upstream.as_fd(), uf),
    ];
    match poll(&mut fds, PollTimeout::NONE) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(true),
        Err(_) => return Err(Stop),
    }
    let ready = |f: &PollFd| {
        f.revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
        })
    };
    let (c_ready, u_ready) = (ready(&fds[0]), ready(&fds[1]));
    if c_ready && !flow.client_tcp_eof {
        flow.client_tcp_eof = !take_tls(e.server, e.t.client).map_err(|_| Stop)?;
    }
    if u_ready && !flow.upstream_tcp_eof {
        flow.upstream_tcp_eof = !take_tls(e.up, e.upstream).map_err(|_| Stop)?;
    }
    Ok(true)
}

/// Reads ciphertext and processes it; false at the peer's TCP EOF.
fn take_tls<D>(conn: &mut rustls::ConnectionCommon<D>, sock: &TcpStream) -> io::Result<bool> {
    match conn.read_tls(&mut &*sock) {
        Ok(0) => Ok(false),
        Ok(_) => {
            conn.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
        Err(e) => Err(e),
    }
}

/// Writes what ciphertext the socket takes now.
fn flush<D>(conn: &mut rustls::ConnectionCommon<D>, sock: &TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(&mut &*sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket whose reads and writes share one deadline (the handshake and
/// the request head).
struct Timed<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Timed<'_> {
    fn left(&self) -> io::Result<std::time::Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Timed<'_> {
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

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        (&*self.stream).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secret;

    fn vault() -> Vault {
        let upstream = rustls::ClientConfig::builder_with_provider(crate::secrets::ca::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Vault {
            secrets: vec![
                Secret::new(
                    "a",
                    &["api.a.example"],
                    b"sk-REALVALUEaaaa",
                    b"sk-PLACEHOLDaaaa",
                ),
                Secret::new(
                    "b",
                    &["api.b.example"],
                    b"gh-REALVALUEbbbb",
                    b"gh-PLACEHOLDbbbb",
                ),
            ],
            ca: crate::secrets::ca::SessionCa::new().unwrap(),
            upstream: Arc::new(upstream),
        }
    }

    fn request(text: &str) -> http::Request {
        http::parse_request(text.as_bytes()).unwrap()
    }

    #[test]
    fn placeholders_become_values_in_headers_for_their_hosts_only() {
        let v = vault();
        let r = request(
            "POST /v1/x HTTP/1.1\r\nHost: api.a.example\r\nx-api-key: sk-PLACEHOLDaaaa\r\n\
             Accept-Encoding: gzip\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
        );
        let (head, swapped, _) = swap(&r, &v, "api.a.example", 443).unwrap();
        let head = String::from_utf8(head).unwrap();
        assert_eq!(
            head,
            "POST /v1/x HTTP/1.1\r\nHost: api.a.example\r\nx-api-key: sk-REALVALUEaaaa\r\n\
             Content-Length: 2\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(swapped, ["a"]);
        // The same request to b's host: refused, naming a.
        assert_eq!(
            swap(&r, &v, "api.b.example", 443).unwrap_err().secret,
            "a".to_string()
        );
        // Not in a URL, even for its own host.
        let r = request("GET /?key=sk-PLACEHOLDaaaa HTTP/1.1\r\nHost: api.a.example\r\n\r\n");
        assert!(swap(&r, &v, "api.a.example", 443).is_err());
        // A Host header naming another host gets no secret.
        let r =
            request("GET / HTTP/1.1\r\nHost: evil.example\r\nx-api-key: sk-PLACEHOLDaaaa\r\n\r\n");
        assert!(swap(&r, &v, "api.a.example", 443).is_err());
        let r = request(
            "GET / HTTP/1.1\r\nHost: API.A.example:443\r\nx-api-key: sk-PLACEHOLDaaaa\r\n\r\n",
        );
        assert!(swap(&r, &v, "api.a.example", 443).is_ok());
        // Nothing to swap: passed on as it is, plus the two headers.
        let r = request("GET / HTTP/1.1\r\nHost: api.a.example\r\n\r\n");
        let (_, swapped, _) = swap(&r, &v, "api.a.example", 443).unwrap();
        assert!(swapped.is_empty());
    }

    #[test]
    fn bodies_swap_with_the_rule_refuse_other_secrets_and_end_on_time() {
        let mut v = vault();
        let r = request("POST / HTTP/1.1\r\nHost: api.a.example\r\nContent-Length: 40\r\n\r\n");
        // Without the rule: a's placeholder passes as it is.
        let mut scan = BodyScan::new(&v, &r, "api.a.example", 443);
        let (out, swapped) = scan.feed(b"{\"k\":\"sk-PLACEHOLDaaaa\"}").unwrap();
        assert_eq!(out, b"{\"k\":\"sk-PLACEHOLDaaaa\"}");
        assert!(swapped.is_empty());
        // b's placeholder may not go to a's host: refused, rule or not.
        let mut scan = BodyScan::new(&v, &r, "api.a.example", 443);
        let (out, _) = scan.feed(b"x gh-PLACE").unwrap();
        assert_eq!(out, b"x ", "a possible start is held back");
        assert_eq!(scan.feed(b"HOLDbbbb").unwrap_err().secret, "b");
        // With the rule: swapped across a chunk boundary, recorded once.
        v.secrets[0].body = true;
        let mut scan = BodyScan::new(&v, &r, "api.a.example", 443);
        let mut sent = Vec::new();
        let mut names = Vec::new();
        for part in [
            &b"{\"k\":\"sk-PLACE"[..],
            b"HOLDaaaa\",",
            b"\"j\":\"sk-PLACEHOLDaaaa\"}",
        ] {
            let (out, new) = scan.feed(part).unwrap();
            sent.extend(out);
            names.extend(new);
        }
        let sent = String::from_utf8(sent).unwrap();
        assert_eq!(
            sent,
            "{\"k\":\"sk-REALVALUEaaaa\",\"j\":\"sk-REALVALUEaaaa\"}"
        );
        assert_eq!(names, ["a"]);
        // At Content-Length nothing is held, even a possible start.
        let r = request("POST / HTTP/1.1\r\nHost: api.a.example\r\nContent-Length: 5\r\n\r\n");
        let mut scan = BodyScan::new(&v, &r, "api.a.example", 443);
        assert_eq!(scan.feed(b"x sk-").unwrap().0, b"x sk-");
    }

    #[test]
    fn basic_credentials_are_swapped_and_their_echo_scrubbed() {
        let v = vault();
        let sent = base64_encode(b"x-access-token:sk-PLACEHOLDaaaa");
        let r = request(&format!(
            "GET / HTTP/1.1\r\nHost: api.a.example\r\nAuthorization: Basic {sent}\r\n\r\n"
        ));
        let (head, swapped, forms) = swap(&r, &v, "api.a.example", 443).unwrap();
        let real = base64_encode(b"x-access-token:sk-REALVALUEaaaa");
        assert!(
            String::from_utf8(head)
                .unwrap()
                .contains(&format!("Authorization: Basic {real}"))
        );
        assert_eq!(swapped, ["a"]);
        let mut scan = Scanner::new(&v, forms);
        let mut out = scan.feed(format!("echo: {real}").as_bytes());
        out.extend(scan.finish());
        assert_eq!(String::from_utf8(out).unwrap(), format!("echo: {sent}"));
        // To another host: refused.
        assert!(swap(&r, &v, "api.b.example", 443).is_err());
    }

    #[test]
    fn the_scan_replaces_values_split_across_chunks_and_holds_back_little() {
        let v = vault();
        let mut scan = Scanner::new(&v, Vec::new());
        let mut out = Vec::new();
        // A value split at every position, between two chunks.
        for cut in 0..=16 {
            let text = b"before sk-REALVALUEaaaa after";
            let (x, y) = text.split_at(7 + cut);
            out.extend(scan.feed(x));
            out.extend(scan.feed(y));
        }
        out.extend(scan.finish());
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("REALVALUE"), "{out}");
        assert_eq!(out.matches("sk-PLACEHOLDaaaa").count(), 17, "{out}");
        assert_eq!(scan.found(), ["a"]);
        // Text that cannot begin a value passes at once (streams stay live).
        let mut scan = Scanner::new(&v, Vec::new());
        assert_eq!(scan.feed(b"data: {}\n\n"), b"data: {}\n\n");
        // A tail that could is held until the next chunk says otherwise.
        assert_eq!(scan.feed(b"x sk-RE"), b"x ");
        assert_eq!(scan.feed(b"D"), b"sk-RED");
    }

    #[test]
    fn base64_round_trips_and_refuses_what_is_not() {
        for text in [
            "",
            "a",
            "ab",
            "abc",
            "x-access-token:ghp_0123456789",
            "\u{0}\u{ff}",
        ] {
            let enc = base64_encode(text.as_bytes());
            assert_eq!(
                base64_decode(enc.as_bytes()).unwrap(),
                text.as_bytes(),
                "{text}"
            );
        }
        assert_eq!(base64_encode(b"user:pw"), "dXNlcjpwdw==");
        assert!(base64_decode(b"dXNlcjpwdw=").is_none());
        assert!(base64_decode(b"dX=lcjpw").is_none());
        assert!(base64_decode(b"dXNl*jpw").is_none());
    }
}
