//! Mutation tests for the host-side parsers of bytes the agent chooses:
//! the proxy's HTTP heads, DNS queries and SOCKS5 handshakes, and the
//! review's reading of an agent-written overlay upper layer. Each starts
//! from valid inputs and applies thousands of seeded mutations (a failure
//! reproduces); the properties are: no panic, bounded work, and the
//! invariants each parser promises (a refused request is refused, a parsed
//! name is a valid name, an answer echoes the question). `fuzz/` holds the
//! same targets for cargo-fuzz, for coverage-guided runs.

#![allow(clippy::unwrap_used)]

use std::io::{self, Cursor, Read, Write};

use cage::proxy::{dns, http, socks};

/// xorshift64*: deterministic, so a failure reproduces from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// Bytes that matter to these formats: separators, escapes, lengths.
const INTERESTING: &[u8] = b"\r\n :/@[]%?#.\x00\x01\x03\x04\x05\x7f\x80\xc0\xff0123456789AZaz-";

/// Applies 1-4 mutations: replace, insert, delete, duplicate a slice.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 if at < b.len() => b[at] = INTERESTING[rng.below(INTERESTING.len())],
            1 if at < b.len() => b[at] = rng.below(256) as u8,
            2 => b.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 if at < b.len() => {
                b.remove(at);
            }
            4 => b.truncate(at),
            _ => {
                let len = rng.below(64).min(b.len() - at.min(b.len()));
                let slice = b[at..at + len].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, slice);
            }
        }
    }
    b
}

#[test]
fn http_heads_never_panic_and_parsed_targets_are_valid() {
    let seeds: &[&[u8]] = &[
        b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\n\r\n",
        b"GET http://example.com/path?q=1 HTTP/1.1\r\nHost: example.com\r\nProxy-Authorization: Basic eA==\r\n\r\n",
        b"POST http://[::1]:8080/x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.1\n\n",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let input = mutate(&mut rng, seeds[round % seeds.len()]);
        // The head reader: bounded by `max` whatever arrives.
        let max = 1 + rng.below(256);
        if let Ok((head, rest)) = http::read_head(&mut Cursor::new(&input), max) {
            assert!(head.len() <= max + 4, "head {} > max {max}", head.len());
            assert_eq!(head.len() + rest.len(), input.len());
        }
        if let Ok(req) = http::parse_request(&input) {
            // What the proxy will dial is a valid name or an IP literal.
            let shown = format!("{req:?}");
            assert!(!shown.is_empty());
        }
        // Authorities are split without panicking, and a name that comes
        // out is one the proxy accepts.
        let text = String::from_utf8_lossy(&input);
        if let Ok((host, _port)) = http::split_authority(text.trim()) {
            assert!(
                host.parse::<std::net::IpAddr>().is_ok()
                    || http::valid_name(&host)
                    || host.is_empty(),
                "split_authority let through {host:?}"
            );
        }
    }
}

#[test]
fn dns_queries_never_panic_and_answers_echo_the_question() {
    // A query for example.com A, and one for a long name with AAAA.
    let mut q1 = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q1.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    let mut q2 = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..6 {
        q2.extend_from_slice(b"\x0alabellabel");
    }
    q2.extend_from_slice(b"\x00\x00\x1c\x00\x01");
    let seeds = [q1, q2];
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for round in 0..30_000 {
        let input = mutate(&mut rng, &seeds[round % 2]);
        match dns::decode(&input) {
            Ok(q) => {
                let answer = dns::encode(&q, dns::Rcode::NoError, &[]);
                assert!(answer.len() >= 12, "an answer has a header");
                assert_eq!(&answer[..2], &input[..2], "the id is echoed");
                let name = format!("{q:?}");
                assert!(!name.is_empty());
            }
            // Too short, or a response (never answered: no reflection).
            Err(dns::DecodeError::Short) => assert!(input.len() < 12 || input[2] & 0x80 != 0),
            Err(dns::DecodeError::Bad { id, flags, rcode }) => {
                let e = dns::encode_error(id, flags, rcode);
                assert_eq!(e.len(), 12);
            }
        }
    }
}

/// A client stream: reads from the mutated bytes, collects what the
/// server writes.
struct Client {
    input: Cursor<Vec<u8>>,
    written: Vec<u8>,
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn socks_handshakes_never_panic_and_names_are_valid() {
    let seeds: &[&[u8]] = &[
        b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbb",
        b"\x05\x02\x00\x02\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90",
        b"\x05\x01\x00\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x50",
    ];
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for round in 0..30_000 {
        let input = mutate(&mut rng, seeds[round % seeds.len()]);
        let mut c = Client {
            input: Cursor::new(input),
            written: Vec::new(),
        };
        if let Ok((host, _port)) = socks::handshake(&mut c) {
            assert!(
                host.parse::<std::net::IpAddr>().is_ok() || http::valid_name(&host),
                "the handshake let through {host:?}"
            );
        }
        // The server never says more than a greeting and one reply.
        assert!(
            c.written.len() <= 2 + 22,
            "{} bytes written",
            c.written.len()
        );
    }
}

/// An agent-written upper layer, random: names with control bytes and
/// dots, links (dangling, looping, absolute, out of the tree), FIFOs,
/// deep nesting, unreadable directories, opaque markers. Reading it must
/// never panic, never follow a link out, and never hang on a FIFO.
#[test]
fn upper_layers_an_agent_wrote_are_read_without_panic_or_escape() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let root = std::env::temp_dir().join(format!("cage-fuzz-upper-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let names: &[&str] = &[
        "a",
        "b.txt",
        ".git",
        "hooks",
        "..x",
        "\x1b[2Kwipe",
        "new\nline",
        ".envrc",
        "deep",
        "node_modules",
        " ",
        "-rf",
    ];
    let mut rng = Rng(0x5151_5151_5151_5151);
    for round in 0..60 {
        let upper = root.join(format!("{round}/upper"));
        let host = root.join(format!("{round}/host"));
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(host.join("deep")).unwrap();
        std::fs::write(host.join("a"), "host\n").unwrap();
        std::fs::write(root.join(format!("{round}/outside")), "secret\n").unwrap();
        let mut dirs = vec![upper.clone()];
        for _ in 0..40 {
            let dir = dirs[rng.below(dirs.len())].clone();
            let path = dir.join(names[rng.below(names.len())]);
            if path.symlink_metadata().is_ok() {
                continue;
            }
            match rng.below(7) {
                0 | 1 => {
                    let _ = std::fs::write(&path, vec![b'x'; rng.below(64)]);
                }
                2 => {
                    if std::fs::create_dir(&path).is_ok() {
                        dirs.push(path);
                    }
                }
                3 => {
                    let target =
                        ["../outside", "/etc/passwd", ".", "..", "loop", "missing"][rng.below(6)];
                    let _ = symlink(target, &path);
                }
                4 => {
                    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
                    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
                    unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
                }
                5 => {
                    if std::fs::create_dir(&path).is_ok() {
                        let _ =
                            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000));
                    }
                }
                _ => {
                    let _ = std::fs::create_dir(&path);
                    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
                    // SAFETY: valid NUL-terminated strings; the value is a
                    // static byte string of the given length.
                    unsafe {
                        libc::setxattr(
                            c.as_ptr(),
                            c"user.overlay.opaque".as_ptr(),
                            b"y".as_ptr().cast(),
                            1,
                            0,
                        )
                    };
                }
            }
        }
        let protect = vec![".git/hooks".to_string(), ".envrc".to_string()];
        // Whatever the tree, this returns: a list or an error, no panic.
        match cage::session::changes::collect(&upper, &host, &protect) {
            Ok(changes) => {
                for c in &changes {
                    let shown = format!("{c:?}");
                    assert!(!shown.contains("secret"), "read through a link: {shown}");
                }
                let _ = cage::session::changes::summarize(&changes);
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        // Unreadable directories back to readable, so the tree can go.
        for d in &dirs {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
