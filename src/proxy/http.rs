//! HTTP/1.x request heads as the proxy sees them: reading one under a size
//! limit, parsing it strictly, and rewriting an absolute-form request for
//! the origin server.
//!
//! Strict on purpose: anything this parser and an origin server might read
//! differently (folded headers, whitespace before a colon, a bare CR,
//! userinfo in the authority) is a 400, not a guess.

use std::io::{self, Read};

/// Largest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 32 * 1024;

#[derive(Debug)]
pub enum HeadError {
    /// The head did not end within [`MAX_HEAD`] bytes.
    TooLarge,
    /// The client closed before a complete head.
    Eof,
    /// The read deadline passed (slowloris).
    TimedOut,
    Io(io::Error),
}

/// Reads until the blank line that ends the head. Returns the head
/// (including the blank line) and whatever the client sent after it.
pub fn read_head<R: Read>(r: &mut R, max: usize) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                return Err(HeadError::TimedOut);
            }
            Err(e) => return Err(HeadError::Io(e)),
        };
        // Search only the new bytes (and the 3 before them).
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_end(&buf[from..]) {
            let end = from + end;
            if end > max {
                return Err(HeadError::TooLarge);
            }
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > max {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The index just past the first `\r\n\r\n` (or a lenient `\n\n`).
fn find_end(b: &[u8]) -> Option<usize> {
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if b[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    pub headers: Vec<Header>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// Lower-cased.
    pub name: String,
    /// The whole line as sent, without its line ending: forwarded as is.
    pub raw: Vec<u8>,
    /// The value, trimmed.
    pub value: Vec<u8>,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// CONNECT's `host:port`.
    Authority { host: String, port: u16 },
    /// `http://host[:port]/path?query`: forwarded with `path` as the
    /// origin-form target and `authority` as the Host header.
    Absolute {
        host: String,
        port: u16,
        authority: String,
        path: String,
    },
}

/// Parses a request head (as returned by [`read_head`]); the error is the
/// reason given in the 400 response.
pub fn parse_request(head: &[u8]) -> Result<Request, &'static str> {
    let mut lines = split_lines(head)?.into_iter();
    let line = lines.next().ok_or("empty request")?;
    let line = std::str::from_utf8(line).map_err(|_| "request line is not ASCII")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err("malformed method");
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("malformed request target");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("unsupported HTTP version");
    }
    let mut headers = Vec::new();
    for raw in lines {
        if raw.is_empty() {
            break;
        }
        if raw[0] == b' ' || raw[0] == b'\t' {
            return Err("folded header lines are not accepted");
        }
        let colon = raw
            .iter()
            .position(|&b| b == b':')
            .ok_or("header line without a colon")?;
        let name = &raw[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err("malformed header name");
        }
        let value = raw[colon + 1..].trim_ascii();
        if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return Err("control character in a header value");
        }
        headers.push(Header {
            name: String::from_utf8_lossy(name).to_ascii_lowercase(),
            raw: raw.to_vec(),
            value: value.to_vec(),
        });
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
    })
}

/// Lines of the head, without their endings; a CR anywhere but before LF
/// is refused.
fn split_lines(head: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&b'\r') {
            return Err("bare carriage return");
        }
        out.push(line);
    }
    Ok(out)
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Request {
    /// Where the request goes: CONNECT needs `host:port`; every other
    /// method needs an absolute `http://` URL (the proxy is not a server).
    pub fn destination(&self) -> Result<Target, &'static str> {
        if self.method == "CONNECT" {
            let (host, port) = split_authority(&self.target)?;
            let port = port.ok_or("CONNECT needs host:port")?;
            return Ok(Target::Authority { host, port });
        }
        let t = &self.target;
        let scheme_end = t.find("://").ok_or(
            "this is cage's proxy: send absolute-form requests (http://host/path), or CONNECT",
        )?;
        if !t[..scheme_end].eq_ignore_ascii_case("http") {
            return Err("only http:// URLs are forwarded; use CONNECT for anything else");
        }
        let rest = &t[scheme_end + 3..];
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err("user information in the URL is not accepted");
        }
        let (host, port) = split_authority(authority)?;
        let path = path.split('#').next().unwrap_or("");
        let path = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            _ => path.to_string(),
        };
        Ok(Target::Absolute {
            host,
            port: port.unwrap_or(80),
            authority: authority.to_string(),
            path,
        })
    }

    /// The head to send the origin for an absolute-form request: the
    /// origin-form target, Host set from the URL (so the name checked is
    /// the name served), hop-by-hop headers removed, and `Connection:
    /// close`, so every request on a connection is checked and a pipelined
    /// second one is not smuggled to the same upstream.
    pub fn origin_head(&self, path: &str, authority: &str) -> Vec<u8> {
        let mut hop: Vec<String> = [
            "connection",
            "proxy-connection",
            "keep-alive",
            "proxy-authorization",
            "proxy-authenticate",
            "te",
            "trailer",
            "upgrade",
            "host",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for h in self.headers.iter().filter(|h| h.name == "connection") {
            for token in String::from_utf8_lossy(&h.value).split(',') {
                let token = token.trim().to_ascii_lowercase();
                if !token.is_empty() {
                    hop.push(token);
                }
            }
        }
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(format!("{} {path} {}\r\n", self.method, self.version).as_bytes());
        out.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
        for h in &self.headers {
            if !hop.contains(&h.name) {
                out.extend_from_slice(&h.raw);
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. Names are checked for the
/// characters a DNS name may hold; IPv6 needs brackets.
pub fn split_authority(s: &str) -> Result<(String, Option<u16>), &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or("unclosed bracket")?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("bad IPv6 address");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("malformed authority")?),
        };
        (v6.to_string(), port)
    } else {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if !valid_name(host) {
            return Err("malformed host name");
        }
        (host.to_string(), port)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err("malformed port"),
        },
    };
    Ok((host, port))
}

/// Letters, digits, `-`, `_`, `.`; at most 253 bytes; no empty label.
pub fn valid_name(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A complete response from the proxy itself, which then closes.
pub fn response(status: u16, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!("{body}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, &'static str> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn reads_a_head_and_keeps_what_follows() {
        let mut input: &[u8] = b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01";
        let (head, rest) = read_head(&mut input, MAX_HEAD).unwrap();
        assert!(head.ends_with(b"\r\n\r\n"));
        assert_eq!(rest, b"\x16\x03\x01");
    }

    #[test]
    fn head_limits_and_eof() {
        let big = format!(
            "GET http://a/ HTTP/1.1\r\nX: {}\r\n\r\n",
            "y".repeat(MAX_HEAD)
        );
        assert!(matches!(
            read_head(&mut big.as_bytes(), MAX_HEAD),
            Err(HeadError::TooLarge)
        ));
        let endless = vec![b'a'; MAX_HEAD * 2];
        assert!(matches!(
            read_head(&mut endless.as_slice(), MAX_HEAD),
            Err(HeadError::TooLarge)
        ));
        assert!(matches!(
            read_head(&mut &b"GET http://a/ HTTP/1.1\r\n"[..], MAX_HEAD),
            Err(HeadError::Eof)
        ));
    }

    #[test]
    fn head_end_split_across_reads() {
        // One byte per read: the terminator straddles reads.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        let (head, rest) = read_head(
            &mut Trickle(b"GET http://a/ HTTP/1.0\r\n\r\nBODY"),
            MAX_HEAD,
        )
        .unwrap();
        assert_eq!(head, b"GET http://a/ HTTP/1.0\r\n\r\n");
        assert!(rest.is_empty());
    }

    #[test]
    fn connect_targets() {
        let r = parse("CONNECT api.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            r.destination(),
            Ok(Target::Authority {
                host: "api.example.com".into(),
                port: 443
            })
        );
        let r = parse("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(
            r.destination(),
            Ok(Target::Authority {
                host: "::1".into(),
                port: 8443
            })
        );
        for bad in [
            "CONNECT api.example.com HTTP/1.1\r\n\r\n",
            "CONNECT a:0 HTTP/1.1\r\n\r\n",
            "CONNECT a:99999 HTTP/1.1\r\n\r\n",
            "CONNECT a:+1 HTTP/1.1\r\n\r\n",
            "CONNECT [zz]:1 HTTP/1.1\r\n\r\n",
            "CONNECT a..b:1 HTTP/1.1\r\n\r\n",
            "CONNECT a%2fb:1 HTTP/1.1\r\n\r\n",
        ] {
            let r = parse(bad).unwrap();
            assert!(r.destination().is_err(), "{bad}");
        }
    }

    #[test]
    fn absolute_form_targets() {
        let dest = |t: &str| {
            parse(&format!("GET {t} HTTP/1.1\r\n\r\n"))
                .unwrap()
                .destination()
        };
        assert_eq!(
            dest("http://Example.COM:8080/a/b?c=d#frag"),
            Ok(Target::Absolute {
                host: "Example.COM".into(),
                port: 8080,
                authority: "Example.COM:8080".into(),
                path: "/a/b?c=d".into()
            })
        );
        assert_eq!(
            dest("HTTP://127.0.0.1"),
            Ok(Target::Absolute {
                host: "127.0.0.1".into(),
                port: 80,
                authority: "127.0.0.1".into(),
                path: "/".into()
            })
        );
        assert_eq!(
            dest("http://h?q"),
            Ok(Target::Absolute {
                host: "h".into(),
                port: 80,
                authority: "h".into(),
                path: "/?q".into()
            })
        );
        assert!(
            dest("/index.html").is_err(),
            "origin-form is not for a proxy"
        );
        assert!(dest("https://a/").is_err());
        assert!(dest("ftp://a/").is_err());
        assert!(dest("http://user:pw@a/").is_err());
        assert!(dest("http://:80/").is_err());
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            "GET http://a/\r\n\r\n",
            "GET  http://a/ HTTP/1.1\r\n\r\n",
            "GET http://a/ HTTP/2\r\n\r\n",
            "G(T http://a/ HTTP/1.1\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nX: a\rb\r\n\r\n",
            "\u{16}\u{3}\u{1}\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn origin_head_drops_hop_by_hop_and_sets_host() {
        let r = parse(
            "POST http://a.example:8080/up?x=1 HTTP/1.1\r\n\
             Host: evil.example\r\n\
             Proxy-Connection: keep-alive\r\n\
             Proxy-Authorization: Basic Zm9v\r\n\
             Connection: keep-alive, X-Drop\r\n\
             X-Drop: 1\r\n\
             Keep-Alive: timeout=5\r\n\
             Content-Length: 3\r\n\
             X-Keep:  v a l \r\n\
             \r\n",
        )
        .unwrap();
        let Ok(Target::Absolute {
            path, authority, ..
        }) = r.destination()
        else {
            panic!("absolute form");
        };
        let head = String::from_utf8(r.origin_head(&path, &authority)).unwrap();
        assert_eq!(
            head,
            "POST /up?x=1 HTTP/1.1\r\n\
             Host: a.example:8080\r\n\
             Content-Length: 3\r\n\
             X-Keep:  v a l \r\n\
             Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn proxy_responses_are_complete() {
        let r = String::from_utf8(response(403, "no")).unwrap();
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(r.contains("Content-Length: 3\r\n"));
        assert!(r.ends_with("\r\n\r\nno\n"));
    }
}
