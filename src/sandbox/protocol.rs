//! The typed protocol between the supervisor and the cage's processes.
//!
//! A `SOCK_SEQPACKET` socketpair: one message per packet, in order, and an
//! EOF when the other side's last copy closes. The supervisor says "go"
//! once the id maps are written; init and the agent report failures before
//! exiting. The agent's copy is close-on-exec, so a successful exec says
//! nothing, and failures are the only messages.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, send, socketpair};
use serde::{Deserialize, Serialize};

/// What the cage's processes tell the supervisor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    /// A setup step failed; the cage exits with `code`.
    Failed {
        message: String,
        errno: Option<i32>,
        code: i32,
    },
    /// The command is not on the cage's PATH or not visible.
    NotFound { program: String },
    /// execve failed.
    ExecFailed {
        program: String,
        errno: i32,
        code: i32,
    },
}

/// The listening sockets init creates on the cage's loopback for the
/// supervisor to serve from outside.
#[derive(Debug)]
pub struct Listeners {
    /// TCP: HTTP proxy, CONNECT and SOCKS5 on one port.
    pub proxy: OwnedFd,
    /// UDP: the DNS stub.
    pub dns_udp: OwnedFd,
    /// TCP: the DNS stub, for long answers and TCP-only resolvers.
    pub dns_tcp: OwnedFd,
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel(OwnedFd);

const GO: &[u8] = b"go";

impl Channel {
    /// A connected pair: (supervisor's end, cage's end).
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel(a), Channel(b)))
    }

    /// Supervisor → init: the id maps are written, go on.
    pub fn go(&self) -> io::Result<()> {
        send(self.0.as_raw_fd(), GO, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// Init: blocks until "go"; an EOF (the supervisor died) is an error.
    pub fn wait_go(&self) -> io::Result<()> {
        let mut buf = [0u8; 8];
        let n = recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if &buf[..n] == GO {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::UnexpectedEof))
        }
    }

    /// Best effort: a report that cannot be sent has nowhere else to go.
    pub fn send(&self, report: &Report) {
        if let Ok(bytes) = serde_json::to_vec(report) {
            let _ = send(self.0.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL);
        }
    }

    /// Supervisor: every report queued so far, without blocking.
    pub fn reports(&self) -> Vec<Report> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = recv(self.0.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            if n == 0 {
                break;
            }
            if let Ok(r) = serde_json::from_slice(&buf[..n]) {
                out.push(r);
            }
        }
        out
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
