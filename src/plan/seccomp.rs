//! The syscall deny list: which calls the agent loses, and why.
//!
//! A deny-list (not an allow-list) because agents run arbitrary toolchains;
//! it removes what agents do not use and what widens the kernel attack
//! surface or reaches authority outside the cage. Each group below names
//! the threat (DESIGN.md, threat 4 and 5).

use crate::policy::Provenance;

use super::{ArgMatch, Errno, SeccompPlan, SyscallRule};

const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWTIME) as u64;

/// Socket families the agent keeps: unix, inet, inet6, netlink.
const ALLOWED_FAMILIES: [u32; 4] = [
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
    libc::AF_NETLINK as u32,
];

/// `personality()` values that change nothing dangerous: PER_LINUX, and the
/// 0xffffffff query.
const HARMLESS_PERSONAS: [u32; 2] = [0, 0xffff_ffff];

/// The newest syscall cage has reviewed (Linux 6.17, number 469 on every
/// architecture since the tables were unified at 403). Anything numbered
/// above answers ENOSYS. Raise it only after deciding about each new call.
pub const NEWEST_KNOWN: &str = "file_setattr";

/// The calls `[process] allow_nested_userns` gives back: what an inner
/// sandbox (bubblewrap, Chromium's namespace sandbox, `unshare -Ur`) needs
/// to build its own namespaces. Each still needs a capability the agent
/// only holds inside a user namespace of its own, and what it could do
/// there is bounded by the layers that stay:
/// 1. Landlock's domain is inherited by every nested namespace and cannot
///    be dropped; a Landlock-restricted process may not mount, unmount or
///    pivot_root at all (landlock(7), "Filesystem topology modification").
/// 2. The cage's mounts are copied into a nested mount namespace locked
///    (mount_namespaces(7)): a hide cannot be unmounted, a read-only bind
///    cannot be remounted writable, a parent cannot be bound elsewhere
///    without its locked children.
/// 3. The rest of this list (setns, clone3, the new mount API, keyctl, bpf,
///    ptrace...) applies inside too; a new network namespace starts empty.
pub const NESTED_USERNS_CALLS: [&str; 5] = ["unshare", "mount", "umount2", "pivot_root", "chroot"];

/// Builds the deny list. `allow_ptrace` and `allow_nested_userns` come from
/// `[process]` with their provenance.
pub fn build_seccomp(
    allow_ptrace: Option<&Provenance>,
    allow_nested_userns: Option<&Provenance>,
) -> SeccompPlan {
    let mut deny = Vec::new();
    deny_reach_and_surface(&mut deny, allow_ptrace);
    deny_view_and_namespaces(&mut deny, allow_nested_userns);
    deny_machine_and_devices(&mut deny);
    SeccompPlan {
        deny,
        kill_foreign_abi: true,
        // 11. Calls newer than cage (threat 5): nobody reviewed them, so they
        //     fail closed, as on an older kernel, where callers fall back.
        newest_known: Some(NEWEST_KNOWN.to_string()),
        nested_userns: allow_nested_userns.cloned(),
    }
}

fn src(what: &'static str) -> Provenance {
    Provenance::Default { what }
}

/// Denies each of `names` whatever its arguments.
fn always(deny: &mut Vec<SyscallRule>, names: &[&str], errno: Errno, what: &'static str) {
    for name in names {
        deny.push(SyscallRule {
            name: (*name).to_string(),
            errno,
            when: ArgMatch::Always,
            source: src(what),
        });
    }
}

/// Classes 1-3: other processes, the keyring, kernel attack surface.
fn deny_reach_and_surface(deny: &mut Vec<SyscallRule>, allow_ptrace: Option<&Provenance>) {
    // 1. Reaching into another process (threat 1, 4): its memory, and with
    //    pidfd_getfd its descriptors (sockets too, which /proc/PID/fd cannot
    //    reopen). All the calls that check PTRACE_MODE_ATTACH by syscall.
    if allow_ptrace.is_none() {
        always(
            deny,
            &[
                "ptrace",
                "process_vm_readv",
                "process_vm_writev",
                "pidfd_getfd",
            ],
            Errno::EPERM,
            "seccomp: process memory access",
        );
    }
    // 2. The kernel keyring holds credentials (threat 1).
    always(
        deny,
        &["keyctl", "add_key", "request_key"],
        Errno::EPERM,
        "seccomp: kernel keyring",
    );
    // 3. Large kernel attack surface that agents do not use (threat 5).
    always(
        deny,
        &[
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            // Unprivileged since 5.13; agents watch files with inotify.
            "fanotify_init",
            // x86 only: 16-bit segments, the home of several kernel bugs.
            "modify_ldt",
        ],
        Errno::EPERM,
        "seccomp: kernel attack surface",
    );
}

/// Classes 4-5: the view and namespaces.
fn deny_view_and_namespaces(deny: &mut Vec<SyscallRule>, allow_nested_userns: Option<&Provenance>) {
    // 4. Reshaping the view: mounts and the new mount API (threat 2, 5).
    //    With nested user namespaces allowed, the classic calls an inner
    //    sandbox makes are given back (see NESTED_USERNS_CALLS); the new
    //    mount API stays denied: fsopen/fsconfig parse options in code that
    //    has held exploitable bugs (CVE-2022-0185), and bubblewrap and
    //    Chromium do not need it.
    let classic_mounts: &[&str] = if allow_nested_userns.is_some() {
        &[]
    } else {
        &["mount", "umount2", "pivot_root", "chroot"]
    };
    always(deny, classic_mounts, Errno::EPERM, "seccomp: mount API");
    always(
        deny,
        &[
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
            "open_tree_attr",
        ],
        Errno::EPERM,
        "seccomp: mount API",
    );
    // 5. New namespaces: nested user namespaces are the usual first step of
    //    a kernel exploit, and setns could re-enter a wider one (threat 5).
    //    `[process] allow_nested_userns` gives back unshare and clone with
    //    namespace flags, never setns.
    if allow_nested_userns.is_none() {
        always(deny, &["unshare"], Errno::EPERM, "seccomp: namespaces");
    }
    always(deny, &["setns"], Errno::EPERM, "seccomp: namespaces");
    // clone3 passes its flags in memory, which seccomp cannot read: answer
    // ENOSYS so libc falls back to clone, whose flags we can check.
    always(deny, &["clone3"], Errno::ENOSYS, "seccomp: namespaces");
    if allow_nested_userns.is_none() {
        deny.push(SyscallRule {
            name: "clone".to_string(),
            errno: Errno::EPERM,
            when: ArgMatch::AnyBit {
                arg: 0,
                mask: CLONE_NAMESPACES,
            },
            source: src("seccomp: namespaces"),
        });
    }
}

/// Classes 6-10: the machine, file handles, personality, the terminal,
/// socket families.
fn deny_machine_and_devices(deny: &mut Vec<SyscallRule>) {
    // 6. The machine itself (threat 5).
    always(
        deny,
        &[
            "init_module",
            "finit_module",
            "delete_module",
            "kexec_load",
            "kexec_file_load",
            "reboot",
            "swapon",
            "swapoff",
            "acct",
            "quotactl",
            "quotactl_fd",
            "syslog",
        ],
        Errno::EPERM,
        "seccomp: machine administration",
    );
    // 7. File handles bypass path-based checks (the "shocker" escape).
    always(
        deny,
        &["open_by_handle_at", "name_to_handle_at"],
        Errno::EPERM,
        "seccomp: file handles",
    );
    // 8. personality() can disable ASLR or enable READ_IMPLIES_EXEC.
    deny.push(SyscallRule {
        name: "personality".to_string(),
        errno: Errno::EPERM,
        when: ArgMatch::NotIn32 {
            arg: 0,
            values: HARMLESS_PERSONAS.to_vec(),
        },
        source: src("seccomp: personality"),
    });
    // 9. Typing into the controlling terminal: TIOCSTI pushes input the
    //    user's shell runs after the agent exits; TIOCLINUX can do the same
    //    on a virtual console (threat 4).
    deny.push(SyscallRule {
        name: "ioctl".to_string(),
        errno: Errno::EPERM,
        when: ArgMatch::Equals32 {
            arg: 1,
            values: vec![libc::TIOCSTI as u32, libc::TIOCLINUX as u32],
        },
        source: src("seccomp: terminal injection"),
    });
    // 10. Socket families outside unix/inet/inet6/netlink: vsock reaches the
    //     hypervisor, packet sockets sniff, AF_ALG is kernel crypto surface.
    for call in ["socket", "socketpair"] {
        deny.push(SyscallRule {
            name: call.to_string(),
            errno: Errno::EPERM,
            when: ArgMatch::NotIn32 {
                arg: 0,
                values: ALLOWED_FAMILIES.to_vec(),
            },
            source: src("seccomp: socket families"),
        });
    }
}
