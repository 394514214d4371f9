//! The proxy served in-process on host loopback sockets: every protocol,
//! every refusal, the limits, and what reaches the audit log. Upstreams
//! are test servers on 127.0.0.1, allowed by explicit IP rules.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::Log;
use crate::policy::{HostPattern, HostSpec, PortSpec};
use crate::sandbox::protocol::Listeners;

use super::rules::Rule;
use super::{Config, Proxy, Rules};

struct Harness {
    proxy: Proxy,
    addr: SocketAddr,
    dns: SocketAddr,
    dns_tcp: SocketAddr,
    log: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(dir) = self.log.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Harness {
    fn new(name: &str, allow: Vec<HostPattern>, config: Config) -> Harness {
        let dir = std::env::temp_dir().join(format!("cage-proxy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.jsonl");
        let p = TcpListener::bind("127.0.0.1:0").unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let (addr, dns, dns_tcp) = (
            p.local_addr().unwrap(),
            u.local_addr().unwrap(),
            t.local_addr().unwrap(),
        );
        let listeners = Listeners {
            proxy: OwnedFd::from(p),
            dns_udp: OwnedFd::from(u),
            dns_tcp: OwnedFd::from(t),
            forwards: vec![],
        };
        let rules = Rules {
            allow: allow
                .into_iter()
                .map(|pattern| Rule {
                    text: format!("{pattern:?}"),
                    pattern,
                    source: "flag --allow-host".into(),
                })
                .collect(),
            deny: vec![],
        };
        let log_file = Arc::new(Log::create(&log).unwrap());
        let proxy = Proxy::start(listeners, &[], rules, log_file, config, None).unwrap();
        Harness {
            proxy,
            addr,
            dns,
            dns_tcp,
            log,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn wait_idle(&self) {
        assert_eq!(
            self.proxy.drain(Duration::from_secs(5)),
            0,
            "connections left"
        );
    }
}

fn ip_rule(port: u16) -> HostPattern {
    HostPattern {
        host: HostSpec::Ip(Ipv4Addr::LOCALHOST.into()),
        port: PortSpec::Port(port),
    }
}

/// An upstream that answers each connection with `reply(request bytes)`
/// after reading until the head ends (or EOF when `until_eof`).
fn upstream(until_eof: bool, reply: fn(&[u8]) -> Vec<u8>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if !until_eof && got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = s.write_all(&reply(&got));
            });
        }
    });
    port
}

fn echo_request(req: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        req.len()
    )
    .into_bytes();
    r.extend_from_slice(req);
    r
}

fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn forwards_absolute_form_http_to_an_allowed_ip() {
    let port = upstream(false, echo_request);
    let h = Harness::new("http", vec![ip_rule(port)], Config::default());
    let mut c = h.connect();
    write!(
        c,
        "GET http://127.0.0.1:{port}/x?y HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Proxy-Connection: keep-alive\r\nUser-Agent: t\r\n\r\n"
    )
    .unwrap();
    let resp = read_all(&mut c);
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    // The origin saw an origin-form request, its own Host, and no proxy
    // headers.
    assert!(
        resp.contains("GET /x?y HTTP/1.1\r\nHost: 127.0.0.1:"),
        "{resp}"
    );
    assert!(resp.contains("Connection: close"), "{resp}");
    assert!(
        !resp.to_ascii_lowercase().contains("proxy-connection"),
        "{resp}"
    );
    // The client keeps its side open: the exchange is over all the same.
    h.wait_idle();
    drop(c);
    let log = h.log();
    assert!(
        log.contains(r#""event":"net","id":1,"proto":"http""#),
        "{log}"
    );
    assert!(log.contains(&format!(r#""addr":"127.0.0.1:{port}","decision":"allow""#)));
    assert!(log.contains(r#""event":"net_end""#), "{log}");
}

#[test]
fn connect_tunnels_and_passes_half_close_on() {
    // The upstream answers only after the client's EOF: the client's
    // half-close must reach it, and the answer must still come back.
    let port = upstream(true, |got| format!("got {} bytes", got.len()).into_bytes());
    let h = Harness::new("connect", vec![ip_rule(port)], Config::default());
    let mut c = h.connect();
    write!(c, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 39];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 Connection established\r\n\r\n");
    c.write_all(&[7u8; 100_000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), "got 100000 bytes");
    h.wait_idle();
    let log = h.log();
    assert!(
        log.contains(r#""bytes_up":100000,"bytes_down":16"#),
        "{log}"
    );
}

#[test]
fn tunnels_carry_back_and_forth_exchanges() {
    // An echo server: every answer must come back before the client says
    // more (the relay once held a written request back until the next).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let h = Harness::new("echo", vec![ip_rule(port)], Config::default());
    let mut c = h.connect();
    write!(c, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").unwrap();
    let mut head = [0u8; 39];
    c.read_exact(&mut head).unwrap();
    for round in 1..=50usize {
        let msg = vec![b'x'; round * 997];
        c.write_all(&msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg, "round {round}");
    }
    drop(c);
    h.wait_idle();
}

#[test]
fn socks5_connects_by_ip_and_refuses_unlisted() {
    let port = upstream(false, |_| b"hello".to_vec());
    let h = Harness::new("socks", vec![ip_rule(port)], Config::default());
    let mut c = h.connect();
    c.write_all(&[5, 1, 0]).unwrap();
    let mut r = [0u8; 2];
    c.read_exact(&mut r).unwrap();
    assert_eq!(r, [5, 0]);
    let p = port.to_be_bytes();
    c.write_all(&[5, 1, 0, 1, 127, 0, 0, 1, p[0], p[1]])
        .unwrap();
    let mut rep = [0u8; 10];
    c.read_exact(&mut rep).unwrap();
    assert_eq!(rep[1], 0, "succeeded");
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_all(&mut c), "hello");
    drop(c);

    let mut c = h.connect();
    let mut req = vec![5, 1, 0, 5, 1, 0, 3, 12];
    req.extend_from_slice(b"evil.example");
    req.extend_from_slice(&443u16.to_be_bytes());
    c.write_all(&req).unwrap();
    let mut rep = [0u8; 12];
    c.read_exact(&mut rep).unwrap();
    assert_eq!(rep[3], 2, "not allowed by ruleset");
    h.wait_idle();
    assert!(
        h.log()
            .contains(r#""proto":"socks5","host":"evil.example","port":443"#)
    );
}

#[test]
fn unlisted_hosts_and_names_resolving_to_loopback_are_denied() {
    let port = upstream(false, echo_request);
    let h = Harness::new(
        "deny",
        vec![HostPattern {
            host: HostSpec::Name("localhost".into()),
            port: PortSpec::Port(port),
        }],
        Config::default(),
    );
    let mut c = h.connect();
    write!(c, "CONNECT localhost:{port} HTTP/1.1\r\n\r\n").unwrap();
    let resp = read_all(&mut c);
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("loopback"), "{resp}");
    let mut c = h.connect();
    write!(c, "GET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n").unwrap();
    let resp = read_all(&mut c);
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("no allow rule"), "{resp}");
    h.wait_idle();
    let log = h.log();
    assert_eq!(log.matches(r#""decision":"deny""#).count(), 2, "{log}");
}

#[test]
fn malformed_requests_get_400_and_close() {
    let h = Harness::new("malformed", vec![], Config::default());
    for bad in [
        &b"GET /relative HTTP/1.1\r\n\r\n"[..],
        b"GET http://a/ HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00",
        b"CONNECT nope HTTP/1.1\r\n\r\n",
    ] {
        let mut c = h.connect();
        c.write_all(bad).unwrap();
        let resp = read_all(&mut c);
        assert!(resp.starts_with("HTTP/1.1 400"), "{bad:?}: {resp}");
    }
    let mut c = h.connect();
    let huge = format!(
        "GET http://a/ HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = c.write_all(huge.as_bytes());
    assert!(read_all(&mut c).starts_with("HTTP/1.1 431"));
    h.wait_idle();
}

#[test]
fn slow_request_heads_time_out() {
    let config = Config {
        header_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let h = Harness::new("slow", vec![], config);
    let mut c = h.connect();
    let t = Instant::now();
    c.write_all(b"GET http://a/ HTTP/1.1\r\nX-Slow: ").unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(50));
        let _ = c.write_all(b"a");
    }
    let resp = read_all(&mut c);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(t.elapsed() < Duration::from_secs(2));
    // A client that sends nothing at all is closed too.
    let mut idle = h.connect();
    assert_eq!(read_all(&mut idle), "");
    h.wait_idle();
}

#[test]
fn upstream_failures_answer_502() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = Harness::new("502", vec![ip_rule(closed)], Config::default());
    let mut c = h.connect();
    write!(c, "GET http://127.0.0.1:{closed}/ HTTP/1.1\r\n\r\n").unwrap();
    let resp = read_all(&mut c);
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
    assert!(resp.contains("refused"), "{resp}");
    h.wait_idle();
}

#[test]
fn upstream_reset_ends_the_tunnel() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            // Close with a reset: SO_LINGER with a zero timeout.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Linger, &linger).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            drop(s);
        }
    });
    let h = Harness::new("reset", vec![ip_rule(port)], Config::default());
    let mut c = h.connect();
    write!(c, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").unwrap();
    let mut head = [0u8; 39];
    c.read_exact(&mut head).unwrap();
    let t = Instant::now();
    let _ = read_all(&mut c);
    assert!(t.elapsed() < Duration::from_secs(3));
    h.wait_idle();
}

#[test]
fn connections_over_the_cap_are_closed() {
    let config = Config {
        max_connections: 2,
        header_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let h = Harness::new("cap", vec![], config);
    let _a = h.connect();
    let _b = h.connect();
    std::thread::sleep(Duration::from_millis(100));
    let mut c = h.connect();
    c.write_all(b"GET http://a/ HTTP/1.1\r\n\r\n").ok();
    assert_eq!(read_all(&mut c), "", "closed without an answer");
}

fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = vec![];
    for v in [id, 0x0100, 1, 0, 0, 0] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

#[test]
fn dns_stub_answers_allowed_names_and_refuses_others() {
    let h = Harness::new(
        "dns",
        vec![
            HostPattern {
                host: HostSpec::Name("localhost".into()),
                port: PortSpec::Port(8080),
            },
            ip_rule(8080),
        ],
        Config::default(),
    );
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.send_to(&dns_query(1, "localhost"), h.dns).unwrap();
    let mut buf = [0u8; 512];
    let n = u.recv(&mut buf).unwrap();
    assert_eq!(buf[3] & 0xf, 0, "NOERROR");
    assert_eq!(&buf[6..8], &[0, 1], "one answer");
    assert_eq!(&buf[n - 4..n], &[127, 0, 0, 1]);

    u.send_to(&dns_query(2, "secret-data.evil.example"), h.dns)
        .unwrap();
    let n = u.recv(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0, 2]);
    assert_eq!(buf[3] & 0xf, 5, "REFUSED");
    assert_eq!(&buf[6..8], &[0, 0]);
    assert!(n > 12);

    let mut t = TcpStream::connect(h.dns_tcp).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let q = dns_query(3, "evil.example");
    t.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    t.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    t.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
    t.read_exact(&mut resp).unwrap();
    assert_eq!(resp[3] & 0xf, 5, "REFUSED over TCP");
    drop(t);
    h.wait_idle();
    let log = h.log();
    assert!(log.contains(r#""name":"localhost","qtype":"A","decision":"allow","rcode":"NOERROR","answers":["127.0.0.1"]"#), "{log}");
    assert!(log.contains(r#""proto":"udp","name":"secret-data.evil.example","qtype":"A","decision":"deny","rcode":"REFUSED""#), "{log}");
    assert!(
        log.contains(r#""proto":"tcp","name":"evil.example""#),
        "{log}"
    );
}

/// The graded mode's peer check: an expected client is served once, an
/// unexpected one never (`Peers`).
#[test]
fn only_expected_peers_are_served_once() {
    let peers = super::Peers::default();
    let a: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let b: std::net::SocketAddr = "127.0.0.1:4001".parse().unwrap();
    peers.expect(a);
    peers.expect(b);
    peers.forget(b);
    assert!(peers.take(a));
    assert!(!peers.take(a), "served twice");
    assert!(!peers.take(b), "forgotten, still served");
}

/// The graded mode: the proxy on the host's loopback answers the client
/// the guard announced and closes any other host process's connection
/// without a byte, and without a record.
#[test]
fn unexpected_clients_are_closed_unserved() {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    use std::os::fd::AsRawFd;
    let peers = Arc::new(super::Peers::default());
    let config = Config {
        peers: Some(peers.clone()),
        ..Config::default()
    };
    let h = Harness::new("peers", vec![], config);
    let request = b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n";
    // As the guard does: bound first, announced, then connected.
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    crate::sys::bind_inet(fd.as_raw_fd(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut agent = TcpStream::from(fd);
    peers.expect(agent.local_addr().unwrap());
    crate::sys::connect_inet(agent.as_raw_fd(), h.addr).unwrap();
    agent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    agent.write_all(request).unwrap();
    assert!(read_all(&mut agent).starts_with("HTTP/1.1 403"));
    let mut other = h.connect();
    let _ = other.write_all(request);
    assert_eq!(read_all(&mut other), "", "a host process was answered");
    h.wait_idle();
    assert_eq!(h.log().lines().count(), 1, "{}", h.log());
}
