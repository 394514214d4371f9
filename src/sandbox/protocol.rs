//! The typed protocol between the supervisor and the cage's processes.
//!
//! A `SOCK_SEQPACKET` socketpair: one message per packet, in order, and an
//! EOF when the other side's last copy closes. The supervisor says "go"
//! once the id maps are written. Init hands over the network listeners it
//! created inside the net namespace (proxy mode); the agent says what the
//! kernel enforced right before exec; either reports a failure before
//! exiting. The agent's copy is close-on-exec, so the EOF after its last
//! message means exec succeeded.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recv,
    recvmsg, send, sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

use super::landlock::LandlockStatus;

/// Which setup step a failure report comes from, so the supervisor can
/// add what it knows about that step (never by matching the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The cage's init: descriptors, hostname, signals.
    Init,
    /// The net namespace's loopback and the proxy's listeners.
    Network,
    /// Mounting the overlay workspace.
    WorkspaceOverlay,
    /// Building the rest of the view.
    View,
    /// Forking the agent from init.
    Fork,
    /// The agent's own confinement: rlimits, Landlock, capabilities,
    /// descriptors, seccomp, the guard.
    Confine,
}

/// What the cage's processes tell the supervisor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    /// A setup step failed; the cage exits with `code`.
    Failed {
        step: Step,
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
    /// Init: the proxy and DNS listeners exist inside the net namespace.
    /// Sent only with their descriptors attached ([`Listeners`]).
    Listening,
    /// The agent: the guard's seccomp listener, attached. Sent before the
    /// agent closes its own copy and execs, so only the supervisor can
    /// answer the notifications.
    Guarding,
    /// The agent, after its last filter and right before execve: what the
    /// kernel actually enforced.
    Enforced {
        landlock: LandlockStatus,
        /// Number of seccomp programs installed.
        seccomp_filters: usize,
        /// Permitted, effective, inheritable, ambient and bounding sets all
        /// read back empty.
        capabilities_cleared: bool,
        /// PR_GET_NO_NEW_PRIVS read back set.
        no_new_privs: bool,
    },
}

/// A message from the cage, as the supervisor receives it.
#[derive(Debug)]
pub enum Incoming {
    Report(Report),
    Listeners(Listeners),
    /// The guard's seccomp notification listener.
    Guard(OwnedFd),
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
    /// TCP: forwarded host loopback ports, in the plan's order.
    pub forwards: Vec<OwnedFd>,
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

    /// Init → supervisor: the listeners, passed with SCM_RIGHTS. The caller
    /// closes its copies afterwards; the kernel holds the passed ones.
    pub fn send_listeners(&self, l: &Listeners) -> io::Result<()> {
        let bytes = serde_json::to_vec(&Report::Listening).map_err(io::Error::other)?;
        let fds: Vec<RawFd> = [&l.proxy, &l.dns_udp, &l.dns_tcp]
            .into_iter()
            .chain(&l.forwards)
            .map(|fd| fd.as_raw_fd())
            .collect();
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// Agent → supervisor: the guard's listener, passed with SCM_RIGHTS.
    pub fn send_guard(&self, listener: &OwnedFd) -> io::Result<()> {
        let bytes = serde_json::to_vec(&Report::Guarding).map_err(io::Error::other)?;
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&[listener.as_raw_fd()])],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// Supervisor: the next message, blocking; `None` once every copy of
    /// the cage's end is closed (the agent exec'd, or the cage is gone).
    /// Unparsable packets are skipped; descriptors that arrive with
    /// anything but `Listening` are closed.
    pub fn recv(&self) -> io::Result<Option<Incoming>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut cmsg = nix::cmsg_space!([RawFd; 3 + crate::plan::MAX_FORWARDS]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let n = msg.bytes;
            let mut fds: Vec<OwnedFd> = Vec::new();
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these
                        // descriptors in our table for this message;
                        // nothing else refers to them.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
            }
            if n == 0 {
                return Ok(None);
            }
            let Ok(report) = serde_json::from_slice::<Report>(&buf[..n]) else {
                continue;
            };
            if let Report::Listening = report {
                let mut it = fds.into_iter();
                if let (Some(proxy), Some(dns_udp), Some(dns_tcp)) =
                    (it.next(), it.next(), it.next())
                {
                    return Ok(Some(Incoming::Listeners(Listeners {
                        proxy,
                        dns_udp,
                        dns_tcp,
                        forwards: it.collect(),
                    })));
                }
                continue;
            }
            if let Report::Guarding = report {
                if let Some(fd) = fds.into_iter().next() {
                    return Ok(Some(Incoming::Guard(fd)));
                }
                continue;
            }
            return Ok(Some(Incoming::Report(report)));
        }
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
