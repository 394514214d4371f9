//! Thin wrappers for syscalls no crate covers; the only `unsafe` in cage.
//!
//! Each wrapper makes one call and turns its result into a `Result`; every
//! `unsafe` block says which invariant makes it sound. Nothing here decides
//! anything: callers own the order and the meaning of the calls.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

// ---- processes and mounts ----

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `clone(flags | SIGCHLD)` with no new stack: like `fork`, but into new
/// namespaces. Returns `Some(child)` in the parent and `None` in the child.
///
/// # Safety
/// The calling process must be single-threaded: the child is a copy of the
/// calling thread only, and any lock another thread held stays locked.
pub unsafe fn clone_process(flags: libc::c_int) -> io::Result<Option<libc::pid_t>> {
    // SAFETY: a null stack pointer makes the kernel reuse the caller's stack
    // copy-on-write, as fork does; the other pointer arguments are null and
    // unused because no CLONE_*TID/SETTLS flag is passed. Single-threadedness
    // is the caller's promise.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as libc::pid_t)),
    }
}

/// `mount_setattr(2)`: set and clear mount attributes (`MOUNT_ATTR_*`) on
/// the mount at `path`, and on every mount below it when `recursive`.
/// Symbolic links are not followed.
pub fn mount_setattr(path: &Path, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    let path = cstring(path)?;
    let mut attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_SYMLINK_NOFOLLOW | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `path` is a valid NUL-terminated string and `attr` a valid
    // `mount_attr` whose size is passed alongside; both outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags as libc::c_uint,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Closes every file descriptor above 2 except `keep`.
///
/// # Safety
/// No live object may own a closed descriptor: it would be left holding a
/// dead (and later reused) number.
pub unsafe fn close_all_except(keep: RawFd) -> io::Result<()> {
    let keep = keep as libc::c_uint;
    let ranges = [(3, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range only closes descriptors; that no live object
        // owns them is the caller's promise.
        let ret = unsafe { libc::close_range(first, last, 0) };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so none survives
/// into the agent however it was opened.
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    // SAFETY: CLOSE_RANGE_CLOEXEC changes a flag on each descriptor and
    // closes nothing, so no owner is invalidated.
    let ret = unsafe {
        libc::close_range(
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as i32,
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `_exit(2)`: ends the process now, running no destructors or atexit
/// handlers (a cloned child must not flush or drop its parent's state).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes a plain integer and never returns.
    unsafe { libc::_exit(code) }
}

/// Moves the calling thread to `SCHED_IDLE`: it runs only on a CPU
/// nothing else wants. Lowering one's own policy needs no privilege.
pub fn idle_priority() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the duration of the call,
    // and pid 0 names the calling thread; the call changes only how the
    // kernel schedules it.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---- extended attributes ----

/// `lgetxattr(2)`: the value of attribute `name` of `path` itself (a link
/// is not followed); `None` when it has no such attribute (`ENODATA`) or
/// the filesystem has none at all (`EOPNOTSUPP`).
pub fn lgetxattr(path: &Path, name: &std::ffi::CStr) -> io::Result<Option<Vec<u8>>> {
    let path = cstring(path)?;
    let mut buf = vec![0u8; 256];
    // SAFETY: `path` and `name` are valid NUL-terminated strings and `buf`
    // a writable buffer whose length is passed alongside; all outlive the
    // call.
    let ret = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::EOPNOTSUPP) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(ret as usize);
    Ok(Some(buf))
}

/// `lsetxattr(2)`: sets attribute `name` of `path` itself to `value`.
pub fn lsetxattr(path: &Path, name: &std::ffi::CStr, value: &[u8]) -> io::Result<()> {
    let path = cstring(path)?;
    // SAFETY: valid NUL-terminated strings and a readable buffer with its
    // length; all outlive the call.
    let ret = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast::<libc::c_void>(),
            value.len(),
            0,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `lremovexattr(2)`.
pub fn lremovexattr(path: &Path, name: &std::ffi::CStr) -> io::Result<()> {
    let path = cstring(path)?;
    // SAFETY: valid NUL-terminated strings that outlive the call.
    let ret = unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

// ---- network ----

/// Brings the loopback interface of the calling process's network namespace
/// up (`SIOCSIFFLAGS` with `IFF_UP`), so 127.0.0.1 and ::1 work inside a
/// fresh net namespace. Needs CAP_NET_ADMIN over that namespace.
pub fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2) takes integers only; the result is checked below
    // and owned from then on.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor we just opened and nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data (a name array and a union of integers and
    // sockaddrs), for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid, NUL-terminated ifreq that outlives the
    // call; SIOCGIFFLAGS writes only its flags field.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS above initialised the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ---- filters: seccomp / landlock ----

/// `landlock_create_ruleset(2)` flag asking for the ABI version instead of a
/// ruleset (`<linux/landlock.h>`; libc does not export it).
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The running kernel's Landlock ABI version: `EOPNOTSUPP` when Landlock is
/// built in but not enabled by `lsm=`, `ENOSYS` when it is not built in.
pub fn landlock_abi_version() -> Result<i32, Errno> {
    // SAFETY: with a NULL attribute pointer and size 0 the kernel reads no
    // memory; the VERSION flag only returns an integer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    Errno::result(ret).map(|v| i32::try_from(v).unwrap_or(i32::MAX))
}

/// `prctl(PR_CAPBSET_READ, cap)`: whether `cap` is in the bounding set.
/// `EINVAL` means the kernel knows no capability numbered `cap`.
pub fn capbset_read(cap: u32) -> Result<bool, Errno> {
    // SAFETY: integer arguments only; the kernel reads no memory.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
    Errno::result(ret).map(|v| v == 1)
}

/// `prctl(PR_CAPBSET_DROP, cap)`: removes `cap` from the bounding set (needs
/// CAP_SETPCAP).
pub fn capbset_drop(cap: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only; the kernel reads no memory.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// `capget`/`capset`'s header and one 32-bit half of the sets
/// (`_LINUX_CAPABILITY_VERSION_3`: two halves, 64 capabilities).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `capset` with every set empty: the calling thread's effective,
/// permitted and inheritable sets cleared in one call.
pub fn capset_clear() -> Result<(), Errno> {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: the kernel reads the header and two data structs, which live
    // until the call returns; it writes nothing.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// `capget`: whether the calling thread's effective, permitted and
/// inheritable sets are all empty.
pub fn capsets_empty() -> Result<bool, Errno> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: the kernel writes the header's version and two data structs,
    // all owned here and live until the call returns.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    Errno::result(ret)?;
    Ok(data
        .iter()
        .all(|d| d.effective == 0 && d.permitted == 0 && d.inheritable == 0))
}

/// `prctl(PR_GET_SECUREBITS)`: the calling thread's securebits.
pub fn securebits() -> Result<u32, Errno> {
    // SAFETY: no arguments; the kernel reads no memory.
    let ret = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    Errno::result(ret).map(|v| v as u32)
}

/// `prctl(PR_SET_SECUREBITS, bits)`: replaces the calling thread's
/// securebits (needs CAP_SETPCAP; a locked bit cannot change).
pub fn set_securebits(bits: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only; the kernel reads no memory.
    let ret = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, libc::c_ulong::from(bits), 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// Test probes: irreversible effects (filters, Landlock domains, dropped
/// capabilities) and raw syscalls with bad arguments, each confined to a
/// forked child that exits right after.
/// Restores the default disposition of `signal`. Rust's runtime ignores
/// SIGPIPE at start-up, and an ignored signal stays ignored across execve,
/// so the agent would otherwise see EPIPE where shell pipelines expect to
/// be killed (`yes | head -1`).
pub fn default_disposition(signal: nix::sys::signal::Signal) -> Result<(), Errno> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    unsafe { sigaction(signal, &action) }.map(drop)
}

/// `pidfd_open(2)` on the calling process: whether this kernel has pidfds
/// (5.3+). The descriptor is closed at once.
pub fn has_pidfd() -> bool {
    // SAFETY: integer arguments only; on success the kernel returns a new
    // descriptor that this function owns and closes.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: `fd` was just returned to us and nothing else refers to it.
    unsafe { libc::close(fd as libc::c_int) };
    true
}

/// `pidfd_open(2)`: a descriptor that refers to process `pid` (a
/// thread-group leader) for as long as it is held, whatever its pid later
/// names; readable once the process has exited. Always close-on-exec.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: integer arguments only; on success the kernel returns a new
    // descriptor that nobody else owns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `struct pidfd_info` (linux/pidfd.h), as far as PIDFD_INFO_SIZE_VER0.
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    ids: [u32; 11],
    exit_code: i32,
}

/// PIDFD_INFO_EXIT (Linux 6.15).
const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// `_IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info)` with the size of
/// version 0 (64 bytes): 0xFF is pidfs's ioctl magic.
const PIDFD_GET_INFO: libc::c_ulong = (3 << 30) | (64 << 16) | (0xFF << 8) | 11;

/// The wait status (as waitpid gives it) of the process `pidfd` refers
/// to, once it has exited and been reaped: `Ok(None)` while it has not.
/// Needs PIDFD_GET_INFO with PIDFD_INFO_EXIT (Linux 6.15); older kernels
/// fail with ENOTTY or EINVAL. Works for a process that is not our child.
pub fn pidfd_exit_status(pidfd: RawFd) -> io::Result<Option<i32>> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_EXIT,
        ..PidfdInfo::default()
    };
    const _: () = assert!(std::mem::size_of::<PidfdInfo>() == 64);
    // SAFETY: `info` is a writable pidfd_info of the size the request
    // number encodes; the kernel copies that many bytes in and out.
    let r = unsafe { libc::ioctl(pidfd, PIDFD_GET_INFO as _, &mut info) };
    if r < 0 {
        let e = io::Error::last_os_error();
        // Exited, not yet reaped, and nothing else asked for: ESRCH.
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok((info.mask & PIDFD_INFO_EXIT != 0).then_some(info.exit_code))
}

/// poll(2) on several descriptors; returns how many have events.
pub fn poll_many(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, writable slice of pollfd for the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// poll(2) on one descriptor: the returned events (0 on timeout).
pub fn poll_one(
    fd: RawFd,
    events: libc::c_short,
    timeout_ms: libc::c_int,
) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, alive for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if n == 0 { 0 } else { pfd.revents })
}

/// SECCOMP_IOCTL_NOTIF_RECV: the next notification, or `None` when the
/// call failed (its process died, or a signal interrupted the wait).
pub fn notif_recv(listener: RawFd) -> Option<libc::seccomp_notif> {
    // SAFETY: seccomp_notif is plain data; all-zero is what the kernel
    // requires of the buffer.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `req` is a valid, writable seccomp_notif for the ioctl.
    let r = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) };
    (r == 0).then_some(req)
}

/// SECCOMP_IOCTL_NOTIF_ID_VALID: the notification's process still waits.
pub fn notif_id_valid(listener: RawFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one u64 from the pointer.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _, &mut id) == 0 }
}

/// SECCOMP_IOCTL_NOTIF_SEND: fail the call with `error`, or (0) let the
/// kernel carry it out (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
pub fn notif_respond(listener: RawFd, id: u64, error: i32) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -error,
        flags: if error == 0 {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp from the pointer.
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND as _, &resp) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SECCOMP_IOCTL_NOTIF_SEND without CONTINUE: the call returns `0` (the
/// supervisor did it) or fails with `error`, and the kernel never runs it.
pub fn notif_answer(listener: RawFd, id: u64, error: i32) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -error,
        flags: 0,
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp from the pointer.
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND as _, &resp) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `addr` as the kernel reads it: a sockaddr_in or sockaddr_in6.
fn sockaddr_of(addr: std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than, and aligned for,
            // every sockaddr type.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// bind(2) of socket `fd` to an inet address.
pub fn bind_inet(fd: RawFd, addr: std::net::SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr_of(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    if unsafe { libc::bind(fd, (&raw const storage).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// connect(2) of socket `fd` to an inet address.
pub fn connect_inet(fd: RawFd, addr: std::net::SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr_of(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    if unsafe { libc::connect(fd, (&raw const storage).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `pidfd_open(2)` with PIDFD_THREAD (Linux 6.9): a descriptor for thread
/// `tid`, which need not lead its thread group.
pub fn pidfd_open_thread(tid: libc::pid_t) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: integer arguments only; on success the kernel returns a new
    // descriptor that nobody else owns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, libc::O_EXCL) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_getfd(2)`: a duplicate of descriptor `fd` of the process
/// `pidfd` refers to (the same open file description), close-on-exec.
/// Needs PTRACE_MODE_ATTACH over it.
pub fn pidfd_getfd(pidfd: RawFd, fd: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: integer arguments only; on success the kernel returns a new
    // descriptor that nobody else owns.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(got as RawFd) })
}

/// openat2(2) with `flags` and `resolve`, no mode.
pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: u64,
    resolve: u64,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is plain data; zero is a valid value of each field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags;
    how.resolve = resolve;
    // SAFETY: `c` and `how` outlive the call; the kernel copies both.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}

/// seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER |
/// flags, prog): loads the filter and returns its notification listener.
pub fn seccomp_listener(
    prog: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `prog`, alive for the call; the kernel copies
    // the program and does not keep the pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: with NEW_LISTENER the kernel returns a new descriptor, ours
    // alone.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(r as RawFd) })
}

/// For `cage selftest`'s probe, which runs inside the cage: runs `child` in
/// a forked child and returns how it ended (the closure's value is the exit
/// code), so an attempt that succeeds (a new user namespace, a ptrace
/// attach) changes nothing in the probe itself.
pub fn probe_in_child(child: impl FnOnce() -> i32) -> io::Result<nix::sys::wait::WaitStatus> {
    use nix::unistd::ForkResult;
    // SAFETY: the probe is single-threaded (it starts no thread), so the
    // child inherits no lock another thread held. The child leaves through
    // `_exit`, so no destructor runs twice and nothing unwinds past fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(254);
            exit_now(code)
        }
        Ok(ForkResult::Parent { child }) => {
            nix::sys::wait::waitpid(child, None).map_err(io::Error::from)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

/// For the selftest's probe: syscall `nr` with integer arguments. Callers
/// pass integers, and 0 (NULL) or -1 where the kernel expects a pointer or
/// a descriptor, so a call that reaches the kernel fails there (EFAULT,
/// EBADF, EINVAL) and the errno tells a filter's refusal from the kernel's.
pub fn probe_syscall(nr: libc::c_long, args: [libc::c_long; 6]) -> Result<libc::c_long, Errno> {
    // SAFETY: no argument is a valid pointer (see above): the kernel reads
    // and writes no memory of ours; a call that creates something (a
    // keyring id, a descriptor) only returns a number.
    let ret = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    Errno::result(ret)
}

/// For the selftest's probe: getpid through the i386 `int 0x80` gate
/// (eax = 20), which a foreign-ABI seccomp rule kills. Returns eax.
#[cfg(target_arch = "x86_64")]
pub fn int80_getpid() -> i32 {
    const I386_GETPID: i64 = 20;
    let ret: i64;
    // SAFETY: getpid reads and writes no memory; `int 0x80` switches to
    // the kernel stack, and the compat entry may clobber r8-r11, which are
    // declared.
    unsafe {
        core::arch::asm!(
            "int 0x80",
            inlateout("rax") I386_GETPID => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack),
        );
    }
    ret as i32
}

// ---- memory the cage never inherits ----

/// An anonymous private mapping that a cloned child gets zero-filled
/// (`MADV_WIPEONFORK`, Linux 4.14) and that core dumps leave out
/// (`MADV_DONTDUMP`): where the supervisor keeps secret values, so cage
/// init, a copy-on-write clone of the supervisor, never holds them.
/// Zeroed (volatile writes) and unmapped on drop.
pub struct WipeOnFork {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (no aliasing pointer is
// handed out beyond borrows of `self`), like a `Box<[u8]>`.
unsafe impl Send for WipeOnFork {}
// SAFETY: shared access only reads (`as_slice`); writes need `&mut self`.
unsafe impl Sync for WipeOnFork {}

impl WipeOnFork {
    /// A zero-filled mapping of `len` bytes (at least one page is mapped).
    pub fn new(len: usize) -> io::Result<WipeOnFork> {
        let size = len.max(1);
        // SAFETY: a new anonymous private mapping at an address the kernel
        // picks: it overlaps nothing the program uses.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let Some(nn) = std::ptr::NonNull::new(ptr.cast::<u8>()) else {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        };
        // Owned from here: a failed madvise unmaps it through Drop.
        let map = WipeOnFork { ptr: nn, len };
        for advice in [libc::MADV_WIPEONFORK, libc::MADV_DONTDUMP] {
            // SAFETY: advice on the mapping just made, of its own size.
            if unsafe { libc::madvise(ptr, size, advice) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(map)
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes from `ptr` are mapped, readable and
        // initialised (anonymous mappings are zero-filled) while `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only
        // reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for WipeOnFork {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.as_mut_slice());
        // SAFETY: unmaps exactly the mapping `new` made; no borrow of it
        // outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len.max(1)) };
    }
}

/// Overwrites, in place, every occurrence of `value` in this process's
/// environment block (what `/proc/PID/environ` shows, and what a cloned
/// child inherits) with `with`, which must be as long. Returns how many it
/// overwrote.
///
/// # Safety
/// The process must be single-threaded (nothing may read or change the
/// environment at the same time), and nothing may hold a borrow of bytes
/// obtained from the C environment.
pub unsafe fn overwrite_in_env(value: &[u8], with: &[u8]) -> usize {
    if value.is_empty() || value.len() != with.len() {
        return 0;
    }
    let mut done = 0;
    // SAFETY: `environ` is a null-terminated array of pointers to
    // NUL-terminated strings that this process owns (the initial stack
    // block, or copies setenv made); single-threadedness is the caller's
    // promise, so no one changes the array or the strings while this runs.
    // Each write stays within one string's bytes, before its NUL.
    unsafe {
        let mut entry = std::ptr::addr_of!(libc::environ).read().cast_const();
        while !(*entry).is_null() {
            let len = std::ffi::CStr::from_ptr(*entry).to_bytes().len();
            let text = std::slice::from_raw_parts_mut((*entry).cast::<u8>(), len);
            let mut i = 0;
            while i + value.len() <= text.len() {
                if text[i..].starts_with(value) {
                    text[i..i + with.len()].copy_from_slice(with);
                    done += 1;
                    i += value.len();
                } else {
                    i += 1;
                }
            }
            entry = entry.add(1);
        }
    }
    done
}

#[cfg(test)]
pub(crate) mod probe {
    use nix::errno::Errno;
    use nix::sys::signal::Signal;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::ForkResult;

    /// Exit code of a child whose setup (installing a filter, ...) failed.
    pub const SETUP_FAILED: i32 = 255;
    /// Exit code of a child whose closure panicked.
    pub const PANICKED: i32 = 254;

    /// How a probed syscall ended, as the parent saw it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Outcome {
        /// The call returned without error.
        Ok,
        /// The call failed with this errno.
        Err(Errno),
        /// The child was killed by this signal (SIGSYS from a seccomp kill).
        Killed(Signal),
        /// The child's setup failed or it exited with an unexpected code.
        Broken(i32),
    }

    /// Runs `child` in a forked child and returns how the child ended; the
    /// closure's return value is the exit code.
    pub fn run_in_child(child: impl FnOnce() -> i32) -> WaitStatus {
        // Core dumps from seccomp kills would litter the working directory.
        let no_core =
            || nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
        // SAFETY: the test binary is multi-threaded, so the child may only
        // rely on state no other thread held at fork time. The closures make
        // syscalls and allocate; glibc's fork handler re-initialises the
        // malloc locks in the child, and they take no other shared lock (no
        // stdio, no environment). The child leaves through `_exit`, so no
        // destructor or atexit handler runs twice and nothing unwinds past
        // the fork.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Child) => {
                let code = match no_core() {
                    Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(child))
                        .unwrap_or(PANICKED),
                    Err(_) => SETUP_FAILED,
                };
                exit_now(code)
            }
            Ok(ForkResult::Parent { child }) => {
                waitpid(child, None).expect("waiting for the probe child")
            }
            Err(e) => panic!("fork: {e}"),
        }
    }

    /// Runs `setup` then syscall `nr` with integer `args` in a forked child.
    /// The call runs only in the throwaway child, so a kernel write through
    /// an argument that happens to be an address cannot reach the caller.
    pub fn syscall_in_child(
        setup: impl FnOnce() -> bool,
        nr: libc::c_long,
        args: [libc::c_long; 6],
    ) -> Outcome {
        decode(run_in_child(|| {
            if !setup() {
                return SETUP_FAILED;
            }
            // SAFETY: see the function doc: the child exits right after,
            // and the probes pass integers, -1 or NULL where the kernel
            // expects pointers, which it rejects with EFAULT.
            let ret =
                unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
            encode(Errno::result(ret).map(drop))
        }))
    }

    /// Runs `setup` then getpid through the i386 `int 0x80` gate (eax = 20)
    /// in a forked child; the kernel reports it as AUDIT_ARCH_I386.
    #[cfg(target_arch = "x86_64")]
    pub fn int80_getpid_in_child(setup: impl FnOnce() -> bool) -> Outcome {
        const I386_GETPID: i64 = 20;
        decode(run_in_child(|| {
            if !setup() {
                return SETUP_FAILED;
            }
            let ret: i64;
            // SAFETY: getpid reads and writes no memory; `int 0x80` switches
            // to the kernel stack, and the compat entry may clobber r8-r11,
            // which are declared.
            unsafe {
                core::arch::asm!(
                    "int 0x80",
                    inlateout("rax") I386_GETPID => ret,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                    options(nostack),
                );
            }
            // The 32-bit ABI returns -errno in eax.
            let ret = ret as i32;
            encode(if ret < 0 {
                Err(Errno::from_raw(-ret))
            } else {
                Ok(())
            })
        }))
    }

    /// Encodes a result as an exit code: 0 for success, else the errno.
    pub fn encode(res: Result<(), Errno>) -> i32 {
        match res {
            Ok(()) => 0,
            Err(e) => e as i32,
        }
    }

    /// Decodes a child's end as written by [`encode`].
    pub fn decode(status: WaitStatus) -> Outcome {
        match status {
            WaitStatus::Exited(_, 0) => Outcome::Ok,
            WaitStatus::Exited(_, code) if code < PANICKED => Outcome::Err(Errno::from_raw(code)),
            WaitStatus::Exited(_, code) => Outcome::Broken(code),
            WaitStatus::Signaled(_, sig, _) => Outcome::Killed(sig),
            other => panic!("unexpected child status {other:?}"),
        }
    }

    /// `_exit(2)`: ends the child without running destructors or atexit
    /// handlers that belong to the parent's copy of the process.
    fn exit_now(code: i32) -> ! {
        // SAFETY: `_exit` takes an integer and does not return; skipping
        // destructors is the point in a forked child.
        unsafe { libc::_exit(code) }
    }
}
