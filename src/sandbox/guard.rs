//! The guard's seccomp program: hands every call that can create a name
//! (open and openat with O_CREAT, creat, openat2, mkdir*, mknod*, rename*,
//! link*, symlink*) to the supervisor as a user notification
//! (SECCOMP_RET_USER_NOTIF), and every execve/execveat, which the
//! supervisor records and always lets go on (`execs`); with `writes` (the
//! graded mode, which has no read-only view), also every call that changes
//! an existing file in place or removes it ([`WRITES`], and open/openat
//! for writing); and in the graded proxy mode every connect, which the
//! supervisor answers itself (`guard::connect`); everything else goes
//! through. In that mode it also
//! refuses outright (EPERM) what would get around the connect handler:
//! bind and listen (the agent has no business serving on the host's
//! loopback) and TCP fast open (sendto, sendmsg, sendmmsg with
//! MSG_FASTOPEN connect without connect(2)). Here and not in the deny
//! list because they belong with the handler they protect.
//!
//! [`build_program`] is pure; [`install`] loads it on the calling thread
//! and returns the listener. Which names are refused is the plan's
//! business (`plan::GuardPlan`), answered by the supervisor (`guard`).
//!
//! Installed after the deny-list filters: the kernel keeps the most severe
//! answer of all filters, so a call another filter denies stays denied.

use std::io;
use std::os::fd::OwnedFd;

use libc::sock_filter;

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

// Offsets in struct seccomp_data.
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// Calls that always create (or replace) a name.
#[cfg(target_arch = "x86_64")]
pub const ALWAYS: &[libc::c_long] = &[
    libc::SYS_creat,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_openat2,
];
#[cfg(target_arch = "aarch64")]
pub const ALWAYS: &[libc::c_long] = &[
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_openat2,
];

/// Calls that create only with O_CREAT, and which argument holds the flags.
#[cfg(target_arch = "x86_64")]
pub const WITH_CREAT: &[(libc::c_long, u32)] = &[(libc::SYS_open, 1), (libc::SYS_openat, 2)];
#[cfg(target_arch = "aarch64")]
pub const WITH_CREAT: &[(libc::c_long, u32)] = &[(libc::SYS_openat, 2)];

/// Calls that change an existing name in place, or remove it: the
/// `writes` watch. Left out: ftruncate (an fd opened for writing, which
/// the open already answered), the utimes family and the xattr family
/// (neither changes what runs; the end-of-session check compares content
/// and mode), chown (an unprivileged user can only pick one of its own
/// groups).
#[cfg(target_arch = "x86_64")]
pub const WRITES: &[libc::c_long] = &[
    libc::SYS_truncate,
    libc::SYS_chmod,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    FCHMODAT2,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rmdir,
];
#[cfg(target_arch = "aarch64")]
pub const WRITES: &[libc::c_long] = &[
    libc::SYS_truncate,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    FCHMODAT2,
    libc::SYS_unlinkat,
];

/// fchmodat2(2) (Linux 6.6), the same number on every architecture; not
/// in every libc's list yet.
pub const FCHMODAT2: libc::c_long = 452;

/// The open flags that write: O_CREAT for `creations`, these for `writes`.
const WRITE_FLAGS: u32 = (libc::O_WRONLY | libc::O_RDWR | libc::O_TRUNC) as u32;

/// Calls that start a program: observed, never refused.
pub const EXECS: &[libc::c_long] = &[libc::SYS_execve, libc::SYS_execveat];

/// What the program hands to the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    /// Calls that can create a name (the plan protects some).
    pub creations: bool,
    /// execve and execveat (a session log records them).
    pub execs: bool,
    /// Calls that change or remove an existing name (the plan keeps some
    /// read-only without a view: `GuardPlan::existing`); link* and
    /// rename* too, whose source can be one.
    pub writes: bool,
    /// connect (the graded proxy mode: the supervisor connects).
    pub connect: bool,
}

impl Watch {
    /// Whether the program hands anything over at all.
    pub fn any(self) -> bool {
        self.creations || self.execs || self.writes || self.connect
    }
}

/// Calls refused in the graded proxy mode.
pub const NO_SERVING: &[libc::c_long] = &[libc::SYS_bind, libc::SYS_listen];

/// Calls that connect with MSG_FASTOPEN, and which argument holds the
/// flags.
pub const FAST_OPEN: &[(libc::c_long, u32)] = &[
    (libc::SYS_sendto, 3),
    (libc::SYS_sendmsg, 2),
    (libc::SYS_sendmmsg, 3),
];

/// x32 calls carry this bit in the number (x86_64 only).
const X32_BIT: u32 = 0x4000_0000;

#[derive(Clone, Copy)]
enum To {
    Next,
    Allow,
    Notify,
    Deny,
    Skip(usize),
}

/// The guard's BPF program, handing over what `watch` names.
pub fn build_program(watch: Watch) -> Vec<sock_filter> {
    let mut ops: Vec<(u16, To, To, u32)> = vec![
        (LD_W_ABS, To::Next, To::Next, ARCH),
        // Another ABI: the deny-list program decides (it kills); let it.
        (JEQ_K, To::Next, To::Allow, NATIVE_ARCH),
        (LD_W_ABS, To::Next, To::Next, NR),
    ];
    if watch.execs {
        for nr in EXECS {
            ops.push((JEQ_K, To::Notify, To::Next, *nr as u32));
        }
    }
    if watch.connect {
        ops.push((JEQ_K, To::Notify, To::Next, libc::SYS_connect as u32));
        for nr in NO_SERVING {
            ops.push((JEQ_K, To::Deny, To::Next, *nr as u32));
        }
    }
    if cfg!(target_arch = "x86_64") {
        // An x32 call is never made by an honest agent; refusing the
        // creating ones here would mean listing them twice, so every x32
        // call goes to the supervisor, which refuses what it cannot decode.
        ops.push((JGE_K, To::Notify, To::Next, X32_BIT));
    }
    // link* and rename* are creations, and their source is a write.
    for nr in ALWAYS.iter().filter(|_| watch.creations || watch.writes) {
        ops.push((JEQ_K, To::Notify, To::Next, *nr as u32));
    }
    for nr in WRITES.iter().filter(|_| watch.writes) {
        ops.push((JEQ_K, To::Notify, To::Next, *nr as u32));
    }
    let flags = if watch.creations {
        libc::O_CREAT as u32
    } else {
        0
    } | if watch.writes { WRITE_FLAGS } else { 0 };
    for (nr, arg) in WITH_CREAT.iter().filter(|_| flags != 0) {
        // Not this call: skip its two-instruction flag test (which ends
        // in a verdict either way, so the number need not be reloaded).
        ops.push((JEQ_K, To::Next, To::Skip(2), *nr as u32));
        ops.push((LD_W_ABS, To::Next, To::Next, arg_low(*arg)));
        ops.push((JSET_K, To::Notify, To::Allow, flags));
    }
    for (nr, arg) in FAST_OPEN.iter().filter(|_| watch.connect) {
        // As for the open flags above: the flag test ends in a verdict.
        ops.push((JEQ_K, To::Next, To::Skip(2), *nr as u32));
        ops.push((LD_W_ABS, To::Next, To::Next, arg_low(*arg)));
        ops.push((JSET_K, To::Deny, To::Allow, libc::MSG_FASTOPEN as u32));
    }
    let allow = ops.len();
    let notify = allow + 1;
    let deny = allow + 2;
    let mut prog: Vec<sock_filter> = ops
        .iter()
        .enumerate()
        .map(|(i, &(code, jt, jf, k))| {
            let rel = |to: To| -> u8 {
                let target = match to {
                    To::Next => i + 1,
                    To::Allow => allow,
                    To::Notify => notify,
                    To::Deny => deny,
                    To::Skip(n) => i + 1 + n,
                };
                // Programs are a few dozen instructions: offsets fit.
                u8::try_from(target - (i + 1)).unwrap_or(u8::MAX)
            };
            sock_filter {
                code,
                jt: rel(jt),
                jf: rel(jf),
                k,
            }
        })
        .collect();
    prog.push(sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    });
    prog.push(sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_USER_NOTIF,
    });
    prog.push(sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
    });
    prog
}

/// Loads `prog` on the calling thread (no_new_privs must be set) and
/// returns the notification listener. The waiting call is killable only
/// (so a signal does not turn one creation into a retry loop) where the
/// kernel offers it (5.19).
pub fn install(prog: &[sock_filter]) -> io::Result<OwnedFd> {
    match crate::sys::seccomp_listener(prog, libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => crate::sys::seccomp_listener(prog, 0),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Watch; 7] = [
        Watch {
            creations: true,
            execs: true,
            writes: false,
            connect: false,
        },
        Watch {
            creations: true,
            execs: false,
            writes: false,
            connect: false,
        },
        Watch {
            creations: false,
            execs: true,
            writes: false,
            connect: false,
        },
        Watch {
            creations: true,
            execs: true,
            writes: true,
            connect: false,
        },
        Watch {
            creations: false,
            execs: false,
            writes: true,
            connect: false,
        },
        Watch {
            creations: true,
            execs: true,
            writes: false,
            connect: true,
        },
        Watch {
            creations: true,
            execs: true,
            writes: true,
            connect: true,
        },
    ];

    #[test]
    fn every_jump_lands_inside_the_program() {
        for watch in ALL {
            let prog = build_program(watch);
            for (i, ins) in prog.iter().enumerate() {
                if ins.code & 0x07 == 0x05 {
                    assert!(i + 1 + (ins.jt as usize) < prog.len());
                    assert!(i + 1 + (ins.jf as usize) < prog.len());
                }
            }
            assert_eq!(
                prog.last().map(|i| i.k),
                Some(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32)
            );
        }
    }

    /// Runs `prog` the way the kernel would on one call (the few opcodes
    /// the builder emits), returning the verdict.
    fn verdict(prog: &[sock_filter], nr: libc::c_long, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
        data[4..8].copy_from_slice(&NATIVE_ARCH.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            let next = |taken: bool| pc + 1 + usize::from(if taken { ins.jt } else { ins.jf });
            match ins.code {
                LD_W_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                JEQ_K => pc = next(acc == ins.k),
                JGE_K => pc = next(acc >= ins.k),
                JSET_K => pc = next(acc & ins.k != 0),
                RET_K => return ins.k,
                other => panic!("opcode {other:#x} not emitted by the builder"),
            }
        }
    }

    #[test]
    fn execs_are_handed_over_only_when_watched_and_creations_likewise() {
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        let creat = libc::O_CREAT as u64;
        for watch in ALL {
            let prog = build_program(watch);
            let expect = |on: bool| if on { notify } else { allow };
            for nr in EXECS {
                assert_eq!(
                    verdict(&prog, *nr, [0; 6]),
                    expect(watch.execs),
                    "{watch:?}"
                );
            }
            assert_eq!(
                verdict(&prog, libc::SYS_mkdirat, [0; 6]),
                expect(watch.creations || watch.writes)
            );
            assert_eq!(
                verdict(&prog, libc::SYS_openat, [0, 0, creat, 0, 0, 0]),
                expect(watch.creations)
            );
            assert_eq!(verdict(&prog, libc::SYS_openat, [0; 6]), allow);
            for flag in [libc::O_WRONLY, libc::O_RDWR, libc::O_TRUNC] {
                let flags = (flag | libc::O_CLOEXEC) as u64;
                assert_eq!(
                    verdict(&prog, libc::SYS_openat, [0, 0, flags, 0, 0, 0]),
                    expect(watch.writes),
                    "{watch:?} {flag:#o}"
                );
            }
            for nr in WRITES {
                assert_eq!(verdict(&prog, *nr, [0; 6]), expect(watch.writes));
            }
            assert_eq!(verdict(&prog, libc::SYS_ftruncate, [0; 6]), allow);
            assert_eq!(
                verdict(&prog, libc::SYS_connect, [0; 6]),
                expect(watch.connect)
            );
            let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
            let refuse = |on: bool| if on { eperm } else { allow };
            assert_eq!(
                verdict(&prog, libc::SYS_bind, [0; 6]),
                refuse(watch.connect)
            );
            assert_eq!(
                verdict(&prog, libc::SYS_listen, [0; 6]),
                refuse(watch.connect)
            );
            let fastopen = libc::MSG_FASTOPEN as u64;
            assert_eq!(
                verdict(&prog, libc::SYS_sendto, [0, 0, 0, fastopen, 0, 0]),
                refuse(watch.connect)
            );
            assert_eq!(
                verdict(&prog, libc::SYS_sendmsg, [0, 0, fastopen, 0, 0, 0]),
                refuse(watch.connect)
            );
            assert_eq!(verdict(&prog, libc::SYS_sendto, [0; 6]), allow);
            assert_eq!(verdict(&prog, libc::SYS_getpid, [0; 6]), allow);
            assert_eq!(verdict(&prog, libc::SYS_clone, [0; 6]), allow);
        }
    }
}
