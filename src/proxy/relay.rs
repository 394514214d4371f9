//! Moving bytes between the cage's connection and upstream once a tunnel
//! is open: one thread per direction, `splice(2)` through a pipe so the
//! data never enters the supervisor's memory (no per-tunnel buffers, so
//! hundreds of idle tunnels cost threads and pipes, not RSS).
//!
//! One thread per direction, not two joined by the pipe: the kernel holds
//! a pipe's lock for a whole splice call, so a second thread would wait
//! behind a reader blocked on a quiet socket, and measured on loopback the
//! pair was no faster (the extra TCP hop's kernel work is the cost).
//!
//! Half-close is passed on: EOF from one side becomes `shutdown(SHUT_WR)`
//! on the other, and the other direction keeps flowing. An error on either
//! side (a reset) shuts both sockets down completely, which wakes the other
//! direction's thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags, splice};

/// Bytes per splice call, and the pipe's capacity when the kernel allows
/// it (an unprivileged process may grow a pipe to /proc/sys/fs/pipe-max-size,
/// 1 MiB by default); larger chunks mean fewer syscalls per byte.
const CHUNK: usize = 1 << 20;
/// Stack for the second direction's thread: it only loops over syscalls.
const PUMP_STACK: usize = 64 * 1024;

/// When a relay ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// When both directions have ended (CONNECT, SOCKS5: a raw stream,
    /// half-closes included).
    Tunnel,
    /// When the response has ended (a forwarded `Connection: close`
    /// request): a client that keeps its side open holds nothing.
    OneExchange,
}

/// Relays until `mode` says the exchange is over. `first_up` is sent
/// upstream before anything else (a rewritten request head, bytes read
/// past a head). Returns (bytes to upstream, bytes to the cage).
pub fn relay(client: &TcpStream, upstream: &TcpStream, first_up: &[u8], mode: Mode) -> (u64, u64) {
    let mut up = 0;
    if !first_up.is_empty() {
        if (&*upstream).write_all(first_up).is_err() {
            abort(client, upstream);
            return (0, 0);
        }
        up = first_up.len() as u64;
    }
    let (more_up, down) = std::thread::scope(|s| {
        let down = std::thread::Builder::new()
            .stack_size(PUMP_STACK)
            .spawn_scoped(s, || {
                let n = pump(upstream, client);
                if mode == Mode::OneExchange {
                    abort(client, upstream);
                }
                n
            });
        let up = pump(client, upstream);
        let down = match down {
            Ok(h) => h.join().unwrap_or(0),
            Err(_) => {
                // No thread for the second direction: give up the tunnel
                // rather than run it one way.
                abort(client, upstream);
                0
            }
        };
        (up, down)
    });
    (up + more_up, down)
}

/// Copies `src` to `dst` until EOF or an error; returns the bytes moved.
fn pump(src: &TcpStream, dst: &TcpStream) -> u64 {
    let Ok((pipe_r, pipe_w)) = nix::unistd::pipe2(OFlag::O_CLOEXEC) else {
        return copy(src, dst);
    };
    // Best effort: a smaller pipe only means more calls.
    let _ = nix::fcntl::fcntl(&pipe_w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
    let mut total = 0u64;
    loop {
        match splice(
            src.as_fd(),
            None,
            pipe_w.as_fd(),
            None,
            CHUNK,
            SpliceFFlags::SPLICE_F_MOVE,
        ) {
            Ok(0) => {
                let _ = dst.shutdown(Shutdown::Write);
                return total;
            }
            Ok(n) => {
                if drain(&pipe_r, dst, n).is_err() {
                    abort(src, dst);
                    return total;
                }
                total += n as u64;
            }
            Err(Errno::EINTR) => {}
            // A kernel or socket type without splice: copy instead.
            Err(Errno::EINVAL | Errno::ENOSYS) if total == 0 => {
                return copy(src, dst);
            }
            Err(_) => {
                abort(src, dst);
                return total;
            }
        }
    }
}

/// Moves exactly `n` bytes from the pipe to `dst`.
fn drain(pipe_r: &OwnedFd, dst: &TcpStream, mut n: usize) -> Result<(), Errno> {
    while n > 0 {
        match splice(
            pipe_r.as_fd(),
            None,
            dst.as_fd(),
            None,
            n,
            SpliceFFlags::SPLICE_F_MOVE,
        ) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(m) => n -= m,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The fallback: read and write through a small buffer.
fn copy(src: &TcpStream, dst: &TcpStream) -> u64 {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        match (&*src).read(&mut buf) {
            Ok(0) => {
                let _ = dst.shutdown(Shutdown::Write);
                return total;
            }
            Ok(n) => {
                if (&*dst).write_all(&buf[..n]).is_err() {
                    abort(src, dst);
                    return total;
                }
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                abort(src, dst);
                return total;
            }
        }
    }
}

/// Ends the tunnel both ways: wakes whichever thread is blocked on either
/// socket.
fn abort(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}
