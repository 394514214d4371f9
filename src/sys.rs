//! Thin wrappers for syscalls no crate covers; the only `unsafe` in cage
//! besides the seccomp and Landlock crates' own.
//!
//! Each wrapper is one syscall, returns `io::Result`, and states the
//! invariant that makes it sound.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
