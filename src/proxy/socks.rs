//! SOCKS5 (RFC 1928), the subset a proxy client needs: no authentication,
//! CONNECT, with IPv4, domain-name and IPv6 targets. BIND and UDP
//! ASSOCIATE are refused with "command not supported".

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::http::valid_name;

pub const VERSION: u8 = 5;

/// Reply codes (RFC 1928 section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    NetworkUnreachable = 3,
    HostUnreachable = 4,
    ConnectionRefused = 5,
    TtlExpired = 6,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

#[derive(Debug)]
pub enum SocksError {
    Io(io::Error),
    /// Not a SOCKS5 greeting.
    BadVersion,
    /// The client offered no method we accept ("no authentication").
    NoAcceptableMethod,
    /// A well-formed request we refuse; this reply has been sent.
    Refused(Reply),
    /// A request we cannot parse (a bad name, say).
    Malformed(&'static str),
}

impl From<io::Error> for SocksError {
    fn from(e: io::Error) -> Self {
        SocksError::Io(e)
    }
}

/// Runs the greeting and reads the CONNECT request; returns the target as
/// asked (a name, or an IP literal without brackets) and its port.
pub fn handshake<S: Read + Write>(s: &mut S) -> Result<(String, u16), SocksError> {
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr)?;
    if hdr[0] != VERSION {
        return Err(SocksError::BadVersion);
    }
    let mut methods = vec![0u8; usize::from(hdr[1])];
    s.read_exact(&mut methods)?;
    if !methods.contains(&0) {
        s.write_all(&[VERSION, 0xff])?;
        return Err(SocksError::NoAcceptableMethod);
    }
    s.write_all(&[VERSION, 0])?;

    let mut req = [0u8; 4];
    s.read_exact(&mut req)?;
    if req[0] != VERSION || req[2] != 0 {
        reply(s, Reply::GeneralFailure)?;
        return Err(SocksError::Malformed("bad request header"));
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a)?;
            Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len)?;
            let mut name = vec![0u8; usize::from(len[0])];
            s.read_exact(&mut name)?;
            match String::from_utf8(name) {
                Ok(n) if n.parse::<std::net::IpAddr>().is_ok() || valid_name(&n) => n,
                _ => {
                    reply(s, Reply::GeneralFailure)?;
                    return Err(SocksError::Malformed("bad domain name"));
                }
            }
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a)?;
            Ipv6Addr::from(a).to_string()
        }
        _ => {
            reply(s, Reply::AddressTypeNotSupported)?;
            return Err(SocksError::Refused(Reply::AddressTypeNotSupported));
        }
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port)?;
    if req[1] != 1 {
        reply(s, Reply::CommandNotSupported)?;
        return Err(SocksError::Refused(Reply::CommandNotSupported));
    }
    Ok((host, u16::from_be_bytes(port)))
}

/// Sends a reply. The bound address is always 0.0.0.0:0: the host-side
/// address of the upstream socket is none of the cage's business.
pub fn reply<W: Write>(w: &mut W, code: Reply) -> io::Result<()> {
    w.write_all(&[VERSION, code as u8, 0, 1, 0, 0, 0, 0, 0, 0])
}

/// The reply for a failed upstream connect.
pub fn reply_for(e: &io::Error) -> Reply {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Reply::ConnectionRefused,
        io::ErrorKind::TimedOut => Reply::TtlExpired,
        io::ErrorKind::NetworkUnreachable => Reply::NetworkUnreachable,
        io::ErrorKind::HostUnreachable => Reply::HostUnreachable,
        _ => Reply::GeneralFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input from a byte string; output collected.
    struct Duplex<'a> {
        input: &'a [u8],
        output: Vec<u8>,
    }
    impl Read for Duplex<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Duplex<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    fn run(input: &[u8]) -> (Result<(String, u16), SocksError>, Vec<u8>) {
        let mut d = Duplex {
            input,
            output: Vec::new(),
        };
        let r = handshake(&mut d);
        (r, d.output)
    }

    #[test]
    fn connect_by_ipv4_domain_and_ipv6() {
        let (r, out) = run(&[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]);
        assert_eq!(r.unwrap(), ("127.0.0.1".into(), 8080));
        assert_eq!(out, [5, 0]);
        let mut dom = vec![5, 2, 2, 0, 5, 1, 0, 3, 11];
        dom.extend_from_slice(b"example.com");
        dom.extend_from_slice(&[1, 187]);
        assert_eq!(run(&dom).0.unwrap(), ("example.com".into(), 443));
        let mut v6 = vec![5, 1, 0, 5, 1, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0, 22]);
        assert_eq!(run(&v6).0.unwrap(), ("::1".into(), 22));
    }

    #[test]
    fn refusals_get_their_reply_codes() {
        let (r, out) = run(&[5, 1, 2]);
        assert!(matches!(r, Err(SocksError::NoAcceptableMethod)));
        assert_eq!(out, [5, 0xff]);
        let (r, out) = run(&[5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80]);
        assert!(matches!(
            r,
            Err(SocksError::Refused(Reply::CommandNotSupported))
        ));
        assert_eq!(out[2..4], [5, 7]);
        let (r, out) = run(&[5, 1, 0, 5, 1, 0, 9]);
        assert!(matches!(
            r,
            Err(SocksError::Refused(Reply::AddressTypeNotSupported))
        ));
        assert_eq!(out[2..4], [5, 8]);
        let mut bad = vec![5, 1, 0, 5, 1, 0, 3, 5];
        bad.extend_from_slice(b"a/b:c");
        bad.extend_from_slice(&[0, 80]);
        assert!(matches!(run(&bad).0, Err(SocksError::Malformed(_))));
        assert!(matches!(run(&[4, 1]).0, Err(SocksError::BadVersion)));
        assert!(matches!(run(&[5, 1]).0, Err(SocksError::Io(_))));
    }
}
