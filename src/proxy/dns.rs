//! The DNS stub: answers A and AAAA for names the rules allow, with
//! addresses resolved on the host and filtered like the proxy's, and
//! REFUSED for everything else. Every query is logged: DNS is an
//! exfiltration channel (a name can carry data), so a refused name's query
//! never leaves the supervisor.
//!
//! The codec handles what a stub resolver sends: one question, no name
//! compression in the question, EDNS records in the additional section
//! ignored.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::audit::{Decision, Dns, Proto, Record};

use super::Shared;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Seconds resolvers may cache an answer.
const TTL: u32 = 60;
/// Answers per response: keeps every UDP response under 512 bytes.
const MAX_ANSWERS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

impl Rcode {
    pub fn name(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
        }
    }
}

/// A parsed query.
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The header flags as received (opcode and RD are echoed).
    pub flags: u16,
    /// Lower-cased, dot-separated, no trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question section as received, echoed in the response.
    question: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Too short to hold a header: nothing to answer.
    Short,
    /// A header, but a query we cannot read: answered with this rcode.
    Bad { id: u16, flags: u16, rcode: Rcode },
}

/// Decodes a query.
pub fn decode(msg: &[u8]) -> Result<Query, DecodeError> {
    if msg.len() < 12 {
        return Err(DecodeError::Short);
    }
    let be = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let (id, flags) = (be(0), be(2));
    let bad = |rcode| DecodeError::Bad { id, flags, rcode };
    if flags & 0x8000 != 0 {
        // A response sent to us: never answer it (no reflection loops).
        return Err(DecodeError::Short);
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(bad(Rcode::NotImp));
    }
    if be(4) != 1 {
        return Err(bad(Rcode::FormErr));
    }
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i).ok_or(bad(Rcode::FormErr))?);
        i += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (0xc0) and the reserved label types have
        // no place in a question.
        if len > 63 {
            return Err(bad(Rcode::FormErr));
        }
        let label = msg.get(i..i + len).ok_or(bad(Rcode::FormErr))?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
    }
    let fixed = msg.get(i..i + 4).ok_or(bad(Rcode::FormErr))?;
    let name = labels.join(".");
    if name.len() > 253 {
        return Err(bad(Rcode::FormErr));
    }
    Ok(Query {
        id,
        flags,
        name,
        qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
        question: msg[12..i + 4].to_vec(),
    })
}

/// A response to `q`: the question echoed, `answers` of the query's type.
pub fn encode(q: &Query, rcode: Rcode, answers: &[IpAddr]) -> Vec<u8> {
    let answers: Vec<&IpAddr> = answers
        .iter()
        .filter(|a| match a {
            IpAddr::V4(_) => q.qtype == TYPE_A,
            IpAddr::V6(_) => q.qtype == TYPE_AAAA,
        })
        .take(MAX_ANSWERS)
        .collect();
    let mut out = header(q.id, q.flags, rcode, 1, answers.len() as u16);
    out.extend_from_slice(&q.question);
    for a in answers {
        out.extend_from_slice(&[0xc0, 12]); // the name, by pointer to the question
        let (rtype, data) = match a {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// A header-only response (for queries we could not read).
pub fn encode_error(id: u16, flags: u16, rcode: Rcode) -> Vec<u8> {
    header(id, flags, rcode, 0, 0)
}

fn header(id: u16, flags: u16, rcode: Rcode, qd: u16, an: u16) -> Vec<u8> {
    // QR, the query's opcode and RD, RA; AA, TC and Z clear.
    let flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode as u16;
    let mut out = Vec::with_capacity(512);
    for v in [id, flags, qd, an, 0, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

pub fn type_name(qtype: u16) -> String {
    match qtype {
        TYPE_A => "A".to_string(),
        TYPE_AAAA => "AAAA".to_string(),
        5 => "CNAME".to_string(),
        12 => "PTR".to_string(),
        15 => "MX".to_string(),
        16 => "TXT".to_string(),
        33 => "SRV".to_string(),
        65 => "HTTPS".to_string(),
        n => format!("TYPE{n}"),
    }
}

/// Answers one query message; returns the response (if any) and logs it.
pub(super) fn answer(shared: &Shared, msg: &[u8], proto: Proto) -> Option<Vec<u8>> {
    let q = match decode(msg) {
        Ok(q) => q,
        Err(DecodeError::Short) => return None,
        Err(DecodeError::Bad { id, flags, rcode }) => {
            return Some(encode_error(id, flags, rcode));
        }
    };
    let rules = shared.rules();
    let mut rec = Dns {
        proto,
        name: q.name.clone(),
        qtype: type_name(q.qtype),
        decision: Decision::Deny,
        rcode: String::new(),
        answers: Vec::new(),
        reason: None,
        rule: None,
        source: None,
    };
    let (rcode, answers) = if q.qclass != CLASS_IN {
        rec.reason = Some("only class IN is served".into());
        (Rcode::NotImp, Vec::new())
    } else if let Some((rule, port)) = rules.decide_name(&q.name) {
        rec.rule = Some(rule.text.clone());
        rec.source = Some(rule.source.clone());
        if q.qtype != TYPE_A && q.qtype != TYPE_AAAA {
            // An allowed name, a type cage does not serve: "no data".
            rec.decision = Decision::Allow;
            (Rcode::NoError, Vec::new())
        } else {
            match super::resolve(&q.name, port) {
                Err(e) => {
                    rec.decision = Decision::Allow;
                    rec.reason = Some(format!("resolving on the host: {e}"));
                    (Rcode::ServFail, Vec::new())
                }
                Ok(addrs) => match rules.admit(&addrs, port) {
                    Ok(ok) => {
                        rec.decision = Decision::Allow;
                        let ok: Vec<IpAddr> = ok
                            .into_iter()
                            .filter(|a| (q.qtype == TYPE_A) == a.is_ipv4())
                            .take(MAX_ANSWERS)
                            .collect();
                        (Rcode::NoError, ok)
                    }
                    Err(why) => {
                        rec.reason = Some(why);
                        (Rcode::Refused, Vec::new())
                    }
                },
            }
        }
    } else {
        rec.reason = Some("no allow rule matches the name".into());
        (Rcode::Refused, Vec::new())
    };
    rec.rcode = rcode.name().to_string();
    rec.answers = answers.iter().map(|a| a.to_string()).collect();
    // A query that cannot be logged is not answered.
    shared.log.write(Record::Dns(rec)).ok()?;
    Some(encode(&q, rcode, &answers))
}

/// Answers one query waiting on the UDP socket, on a thread of the pool
/// (resolving blocks), at most `max_dns` at a time; queries beyond that
/// are dropped, as a busy server would, and the client retries. False if
/// the socket failed for good.
pub(super) fn read_udp(sock: &Arc<UdpSocket>, buf: &mut [u8], shared: &Arc<Shared>) -> bool {
    // Blocking, but poll(2) said a datagram is waiting and this thread is
    // the only reader.
    let (n, peer) = match sock.recv_from(buf) {
        Ok(x) => x,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
        Err(_) => return false,
    };
    // Graded: the agent cannot send UDP, so this came from the host.
    if shared.config.peers.is_some() {
        return true;
    }
    if shared.dns_active.fetch_add(1, Ordering::SeqCst) >= shared.config.max_dns {
        shared.dns_active.fetch_sub(1, Ordering::SeqCst);
        return true;
    }
    let msg = buf[..n].to_vec();
    let (sock, sh) = (Arc::clone(sock), Arc::clone(shared));
    let job = move || {
        if let Some(resp) = answer(&sh, &msg, Proto::Udp) {
            let _ = sock.send_to(&resp, peer);
        }
        sh.dns_active.fetch_sub(1, Ordering::SeqCst);
    };
    if !shared.pool.run(Box::new(job)) {
        shared.dns_active.fetch_sub(1, Ordering::SeqCst);
    }
    true
}

/// One DNS-over-TCP connection: length-prefixed messages, idle
/// connections closed after the header timeout.
pub(super) fn serve_tcp_conn(stream: TcpStream, shared: &Shared) {
    let _ = tcp_exchanges(stream, shared);
}

fn tcp_exchanges(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(shared.config.header_timeout))?;
    stream.set_write_timeout(Some(shared.config.header_timeout))?;
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return Ok(());
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut msg)?;
        let Some(resp) = answer(shared, &msg, Proto::Tcp) else {
            return Ok(());
        };
        let mut out = (resp.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&resp);
        stream.write_all(&out)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![];
        for v in [id, 0x0100, 1, 0, 0, 0] {
            m.extend_from_slice(&v.to_be_bytes());
        }
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn decodes_a_query() {
        let q = decode(&query(0xbeef, "Api.Example.COM", TYPE_AAAA)).unwrap();
        assert_eq!(q.id, 0xbeef);
        assert_eq!(q.name, "api.example.com");
        assert_eq!(q.qtype, TYPE_AAAA);
        assert_eq!(q.qclass, CLASS_IN);
    }

    #[test]
    fn bad_queries_get_error_codes_or_nothing() {
        assert_eq!(decode(&[0; 5]), Err(DecodeError::Short));
        let mut resp = query(1, "a.b", TYPE_A);
        resp[2] |= 0x80;
        assert_eq!(
            decode(&resp),
            Err(DecodeError::Short),
            "responses are ignored"
        );
        let mut two = query(2, "a.b", TYPE_A);
        two[5] = 2;
        assert!(matches!(
            decode(&two),
            Err(DecodeError::Bad {
                rcode: Rcode::FormErr,
                ..
            })
        ));
        let mut truncated = query(3, "abc.def", TYPE_A);
        truncated.truncate(16);
        assert!(matches!(
            decode(&truncated),
            Err(DecodeError::Bad {
                rcode: Rcode::FormErr,
                ..
            })
        ));
        let mut pointer = query(4, "a.b", TYPE_A);
        pointer[12] = 0xc0;
        assert!(matches!(
            decode(&pointer),
            Err(DecodeError::Bad {
                rcode: Rcode::FormErr,
                ..
            })
        ));
        let mut opcode = query(5, "a.b", TYPE_A);
        opcode[2] |= 0x10; // opcode 2 (STATUS)
        assert!(matches!(
            decode(&opcode),
            Err(DecodeError::Bad {
                rcode: Rcode::NotImp,
                ..
            })
        ));
        let e = encode_error(7, 0x0100, Rcode::FormErr);
        assert_eq!(e, [0, 7, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn encodes_answers_of_the_asked_type() {
        let q = decode(&query(9, "a.example", TYPE_A)).unwrap();
        let addrs: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let r = encode(&q, Rcode::NoError, &addrs);
        // Header: id, QR|RD|RA, NOERROR, 1 question, 1 answer.
        assert_eq!(&r[..12], &[0, 9, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        let question_end = 12 + q.question.len();
        assert_eq!(&r[12..question_end], &query(9, "a.example", TYPE_A)[12..]);
        assert_eq!(
            &r[question_end..],
            &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]
        );
        let refused = encode(&q, Rcode::Refused, &[]);
        assert_eq!(refused[3] & 0xf, 5);
        assert_eq!(&refused[6..8], &[0, 0]);
        assert_eq!(type_name(65), "HTTPS");
        assert_eq!(type_name(99), "TYPE99");
    }
}
