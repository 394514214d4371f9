//! The cage's side of the network: loopback up in the new net namespace
//! and, in proxy mode, the listening sockets the supervisor serves from
//! outside. Runs in cage init, which holds every capability over the net
//! namespace it owns (CAP_NET_ADMIN for the interface flags,
//! CAP_NET_BIND_SERVICE for port 53). No decisions: the addresses are the
//! plan's.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;

use crate::plan::Plan;
use crate::policy::NetMode;
use crate::sys;

use super::protocol::{Channel, Listeners};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("bringing up the loopback interface")]
    Loopback(#[source] std::io::Error),
    #[error("listening on {addr} inside the cage ({what})")]
    Listen {
        addr: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("handing the listeners to the supervisor")]
    Send(#[source] std::io::Error),
}

impl NetworkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetworkError::Loopback(e)
            | NetworkError::Listen { source: e, .. }
            | NetworkError::Send(e) => e.raw_os_error(),
        }
    }
}

/// 1. Loopback up (any mode with its own net namespace).
/// 2. Proxy mode: bind the proxy and DNS sockets on the cage's loopback,
///    pass them to the supervisor, and close init's copies, so neither
///    init nor the agent holds them.
pub fn setup(plan: &Plan, channel: &Channel) -> Result<(), NetworkError> {
    if plan.network.mode == NetMode::Host {
        return Ok(());
    }
    sys::loopback_up().map_err(NetworkError::Loopback)?;
    let Some(proxy) = &plan.network.proxy else {
        return Ok(());
    };
    let listen = |addr: SocketAddr, what| {
        TcpListener::bind(addr)
            .map(OwnedFd::from)
            .map_err(|source| NetworkError::Listen { addr, what, source })
    };
    let dns = SocketAddr::V4(proxy.dns);
    let listeners = Listeners {
        proxy: listen(SocketAddr::V4(proxy.listen), "proxy")?,
        dns_udp: UdpSocket::bind(dns).map(OwnedFd::from).map_err(|source| {
            NetworkError::Listen {
                addr: dns,
                what: "DNS over UDP",
                source,
            }
        })?,
        dns_tcp: listen(dns, "DNS over TCP")?,
        forwards: proxy
            .forwards
            .iter()
            .map(|f| listen(f.addr, "a forwarded host port"))
            .collect::<Result<_, _>>()?,
    };
    channel
        .send_listeners(&listeners)
        .map_err(NetworkError::Send)?;
    Ok(())
}
