//! Moving bytes between the cage's connection and upstream once a tunnel
//! is open: one thread per direction, `splice(2)` through a pipe so the
//! data never enters the supervisor's memory (no per-tunnel buffers, so
//! hundreds of idle tunnels cost threads and pipes, not RSS).
//!
//! The connection's own thread pumps the upload; the download runs on a
//! second thread of the proxy's pool ([`super::pool`]). One thread per
//! direction, not two joined by the pipe: the kernel holds a pipe's lock
//! for a whole splice call, so a second thread would wait behind a reader
//! blocked on a quiet socket, and measured on loopback the pair was no
//! faster (the extra TCP hop's kernel work is the cost).
//!
//! Each thread keeps its pipe for the next tunnel it pumps, made and sized
//! once. A pipe goes back only from a pump that ended at EOF, when every
//! byte spliced into it has been spliced out: one tunnel's bytes never
//! reach another. A pump that ended any other way closes its pipe.
//!
//! Half-close is passed on: EOF from one side becomes `shutdown(SHUT_WR)`
//! on the other, and the other direction keeps flowing. An error on either
//! side (a reset) shuts both sockets down completely, which wakes the other
//! direction's thread.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, mpsc};

use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags, splice};

use super::pool::Pool;

/// Bytes per splice call, and the pipe's capacity when the kernel allows
/// it (an unprivileged process may grow a pipe to /proc/sys/fs/pipe-max-size,
/// 1 MiB by default); larger chunks mean fewer syscalls per byte.
const CHUNK: usize = 1 << 20;
/// A pipe: (read end, write end).
type Pipe = (OwnedFd, OwnedFd);

thread_local! {
    /// This thread's pipe, empty, kept between tunnels.
    static PIPE: Cell<Option<Pipe>> = const { Cell::new(None) };
}

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

/// Relays until `mode` says the exchange is over, the download on a
/// thread of `pool`. `first_up` is sent upstream before anything else (a
/// rewritten request head, bytes read past a head). Returns (bytes to
/// upstream, bytes to the cage).
pub fn relay(
    pool: &Arc<Pool>,
    client: &TcpStream,
    upstream: &TcpStream,
    first_up: &[u8],
    mode: Mode,
) -> (u64, u64) {
    let mut up = 0;
    if !first_up.is_empty() {
        if (&*upstream).write_all(first_up).is_err() {
            abort(client, upstream);
            return (0, 0);
        }
        up = first_up.len() as u64;
    }
    let (done, down) = mpsc::sync_channel(1);
    let started = match (client.try_clone(), upstream.try_clone()) {
        (Ok(c), Ok(u)) => pool.run(Box::new(move || {
            let n = pump(&u, &c);
            if mode == Mode::OneExchange {
                abort(&c, &u);
            }
            let _ = done.send(n);
        })),
        _ => false,
    };
    if !started {
        // No thread for the second direction: give up the tunnel rather
        // than run it one way.
        abort(client, upstream);
        return (up, 0);
    }
    let more_up = pump(client, upstream);
    (up + more_up, down.recv().unwrap_or(0))
}

/// This thread's pipe, or a new one sized to [`CHUNK`] if the kernel
/// allows (best effort: a smaller pipe only means more calls).
fn take_pipe() -> Option<Pipe> {
    if let Some(p) = PIPE.with(Cell::take) {
        return Some(p);
    }
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
    let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
    Some((r, w))
}

/// Copies `src` to `dst` until EOF or an error; returns the bytes moved.
fn pump(src: &TcpStream, dst: &TcpStream) -> u64 {
    let Some((pipe_r, pipe_w)) = take_pipe() else {
        return copy(src, dst);
    };
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
                // Every chunk was drained whole: the pipe is empty.
                PIPE.with(|p| p.set(Some((pipe_r, pipe_w))));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected pair of loopback sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (b, _) = l.accept().expect("accept");
        (a, b)
    }

    #[test]
    fn a_pump_ended_at_eof_keeps_its_pipe_and_the_next_gets_only_its_bytes() {
        for payload in [&b"first tunnel"[..], b"second"] {
            let (mut src_peer, src) = pair();
            let (dst, mut dst_peer) = pair();
            src_peer.write_all(payload).expect("write");
            drop(src_peer);
            assert_eq!(pump(&src, &dst), payload.len() as u64);
            let mut got = Vec::new();
            dst_peer.read_to_end(&mut got).expect("read");
            assert_eq!(got, payload);
            let kept = PIPE.with(Cell::take);
            assert!(kept.is_some(), "the pipe is kept after EOF");
            PIPE.with(|p| p.set(kept));
        }
    }

    #[test]
    fn a_pump_that_failed_with_bytes_in_its_pipe_closes_it() {
        let (mut src_peer, src) = pair();
        let (dst, _dst_peer) = pair();
        // Writing to dst fails at once: the bytes stay in the pipe.
        dst.shutdown(Shutdown::Write).expect("shutdown");
        src_peer.write_all(b"left behind").expect("write");
        pump(&src, &dst);
        assert!(
            PIPE.with(Cell::take).is_none(),
            "a pipe with bytes in it is not kept"
        );
    }
}
