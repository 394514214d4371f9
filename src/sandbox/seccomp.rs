//! seccomp: compiles the plan's syscall deny list to BPF and installs it.
//!
//! [`build_filters`] is pure: it turns a [`SeccompPlan`] into the programs
//! to load, in order. [`install`] loads them on the calling thread. Which
//! calls are denied, and with which errno, is the plan's business
//! (`plan::seccomp`); this module only translates, and fails on a name it
//! cannot translate rather than dropping the rule (only calls this
//! architecture lacks, listed in `ABSENT`, are skipped).
//!
//! The programs, in order:
//!
//! 1. A foreign-ABI guard (when the plan asks): kill the process on any
//!    syscall made through another ABI than the native one. A deny-list
//!    keyed on native numbers is bypassed otherwise:
//!    - i386 `int 0x80` from a 64-bit process is reported with
//!      AUDIT_ARCH_I386 and i386 numbers;
//!    - x32 calls are reported as AUDIT_ARCH_X86_64 with bit 30 of the
//!      number set (`__X32_SYSCALL_BIT`), which no native rule matches.
//! 2. A guard for calls newer than cage (when the plan names the newest
//!    call it knows): native calls numbered above it answer ENOSYS, so a
//!    call added to the kernel after cage's review fails closed.
//! 3. One filter per errno in the deny list (seccompiler has one match
//!    action per filter), each allowing what it does not match.
//!
//! The kernel runs every installed filter and keeps the most severe answer,
//! so the order only matters for reading.

use std::collections::BTreeMap;

use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch, sock_filter,
};

use crate::plan::{ArgMatch, Errno, SeccompPlan};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("translating syscall {name:?}: no such syscall on {arch}", arch = std::env::consts::ARCH)]
    UnknownSyscall { name: String },
    #[error("building the seccomp condition on argument {arg} of {name}")]
    Condition {
        name: String,
        arg: u8,
        #[source]
        source: BackendError,
    },
    #[error("compiling the seccomp filter that answers {errno:?}")]
    Compile {
        errno: Errno,
        #[source]
        source: BackendError,
    },
    #[error("installing seccomp program {index} of {count}")]
    Install {
        index: usize,
        count: usize,
        #[source]
        source: seccompiler::Error,
    },
}

/// Compiles the plan into the BPF programs [`install`] loads, in order.
/// Pure: no kernel calls.
pub fn build_filters(plan: &SeccompPlan) -> Result<Vec<BpfProgram>, SeccompError> {
    let mut programs = Vec::new();
    if plan.kill_foreign_abi {
        programs.push(foreign_abi_guard());
    }
    if let Some(newest) = &plan.newest_known {
        let Some(nr) = syscall_number(newest)? else {
            return Err(SeccompError::UnknownSyscall {
                name: newest.clone(),
            });
        };
        programs.push(newer_calls_guard(nr));
    }

    // Group by errno in order of first appearance, so the output is
    // deterministic and reads like the plan.
    let mut by_errno: Vec<(Errno, BTreeMap<i64, Matcher>)> = Vec::new();
    for rule in &plan.deny {
        let Some(nr) = syscall_number(&rule.name)? else {
            continue;
        };
        let matcher = Matcher::from_arg_match(&rule.name, &rule.when)?;
        let idx = match by_errno.iter().position(|(e, _)| *e == rule.errno) {
            Some(i) => i,
            None => {
                by_errno.push((rule.errno, BTreeMap::new()));
                by_errno.len() - 1
            }
        };
        let syscalls = &mut by_errno[idx].1;
        let merged = match syscalls.remove(&nr) {
            Some(prev) => prev.merge(matcher),
            None => matcher,
        };
        syscalls.insert(nr, merged);
    }

    for (errno, syscalls) in by_errno {
        let rules: BTreeMap<i64, Vec<SeccompRule>> = syscalls
            .into_iter()
            .filter_map(|(nr, m)| m.into_rules().map(|rules| (nr, rules)))
            .collect();
        if rules.is_empty() {
            // Every rule for this errno can never match: nothing to load.
            continue;
        }
        let compile = |source| SeccompError::Compile { errno, source };
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno_value(errno)),
            TARGET_ARCH,
        )
        .map_err(compile)?;
        programs.push(BpfProgram::try_from(filter).map_err(compile)?);
    }
    Ok(programs)
}

/// Loads `filters` on the calling thread, in order. Other threads are not
/// filtered: call this in the single-threaded agent process, last before
/// exec, so the filter need not allow anything cage itself does later.
pub fn install(filters: &[BpfProgram]) -> Result<(), SeccompError> {
    for (index, program) in filters.iter().enumerate() {
        // seccompiler::apply_filter sets no_new_privs itself before each
        // load (an unprivileged filter needs it); caps::drop_all sets it too.
        seccompiler::apply_filter(program).map_err(|source| SeccompError::Install {
            index,
            count: filters.len(),
            source,
        })?;
    }
    Ok(())
}

fn errno_value(errno: Errno) -> u32 {
    match errno {
        Errno::EPERM => libc::EPERM as u32,
        Errno::ENOSYS => libc::ENOSYS as u32,
    }
}

/// One comparison on the argument a rule is about.
type Cond = (SeccompCmpArgLen, SeccompCmpOp, u64);

/// When one syscall's rules match, for one errno.
enum Matcher {
    /// Whatever the arguments.
    Always,
    /// When any rule matches (conditions within a rule are ANDed). Empty
    /// means never: it must not reach seccompiler, where an empty rule list
    /// means "always".
    AnyOf(Vec<SeccompRule>),
}

impl Matcher {
    fn from_arg_match(name: &str, when: &ArgMatch) -> Result<Matcher, SeccompError> {
        use SeccompCmpArgLen::{Dword, Qword};
        use SeccompCmpOp::{Eq, MaskedEq, Ne};
        // Each inner list is one rule, whose conditions are ANDed; a syscall
        // matches when any of its rules does.
        let (arg, rules): (u8, Vec<Vec<Cond>>) = match when {
            ArgMatch::Always => return Ok(Matcher::Always),
            // One rule per set bit: "any bit of mask" is an OR of bits.
            // Qword, because clone's flags reach above bit 31.
            ArgMatch::AnyBit { arg, mask } => (
                *arg,
                (0..64)
                    .map(|i| 1u64 << i)
                    .filter(|bit| mask & bit != 0)
                    .map(|bit| vec![(Qword, MaskedEq(bit), bit)])
                    .collect(),
            ),
            // Dword: seccompiler then compares only the low 32 bits, as the
            // kernel reads `unsigned int` arguments (ioctl's cmd), so high
            // bits set by the caller cannot dodge the rule.
            ArgMatch::Equals32 { arg, values } => (
                *arg,
                values
                    .iter()
                    .map(|v| vec![(Dword, Eq, u64::from(*v))])
                    .collect(),
            ),
            // Nothing to exclude: matches always.
            ArgMatch::NotIn32 { values, .. } if values.is_empty() => return Ok(Matcher::Always),
            // One rule: not this value AND not that one.
            ArgMatch::NotIn32 { arg, values } => (
                *arg,
                vec![values.iter().map(|v| (Dword, Ne, u64::from(*v))).collect()],
            ),
        };
        let err = |source| SeccompError::Condition {
            name: name.to_string(),
            arg,
            source,
        };
        rules
            .into_iter()
            .map(|conds| {
                let conds = conds
                    .into_iter()
                    .map(|(len, op, value)| SeccompCondition::new(arg, len, op, value))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                // Fails only on an empty list, which none of the above makes.
                SeccompRule::new(conds).map_err(err)
            })
            .collect::<Result<_, _>>()
            .map(Matcher::AnyOf)
    }

    /// Two rules for the same syscall and errno: either may match.
    fn merge(self, other: Matcher) -> Matcher {
        match (self, other) {
            (Matcher::AnyOf(mut a), Matcher::AnyOf(b)) => {
                a.extend(b);
                Matcher::AnyOf(a)
            }
            _ => Matcher::Always,
        }
    }

    /// seccompiler's form: `Some(vec![])` matches always, `None` never.
    fn into_rules(self) -> Option<Vec<SeccompRule>> {
        match self {
            Matcher::Always => Some(Vec::new()),
            Matcher::AnyOf(rules) if rules.is_empty() => None,
            Matcher::AnyOf(rules) => Some(rules),
        }
    }
}

// ---- the foreign-ABI guard ----

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("cage's seccomp filter knows x86_64 and aarch64 only");

#[cfg(target_arch = "x86_64")]
const TARGET_ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const TARGET_ARCH: TargetArch = TargetArch::aarch64;

/// `AUDIT_ARCH_*` from `<linux/audit.h>`: the ELF machine, ORed with
/// `__AUDIT_ARCH_64BIT` (0x8000_0000) and `__AUDIT_ARCH_LE` (0x4000_0000).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// `__X32_SYSCALL_BIT` from `<asm/unistd.h>`.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
const NR_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, nr) as u32;
const ARCH_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, arch) as u32;

fn stmt(code: u32, k: u32) -> sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        // BPF opcodes fit in 16 bits; libc types the constants as u32.
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Kills the process on a syscall through any ABI but the native one.
fn foreign_abi_guard() -> BpfProgram {
    let kill = || stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS);
    let mut prog = vec![
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARCH_OFFSET),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_NATIVE,
            1,
            0,
        ),
        kill(),
    ];
    #[cfg(target_arch = "x86_64")]
    prog.extend([
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET),
        // Below the x32 bit: native.
        jump(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            X32_SYSCALL_BIT,
            0,
            2,
        ),
        // Except -1, which is no call at all (the kernel answers ENOSYS) and
        // is how a tracer skips a syscall; killing it would break strace's
        // fault injection for no gain.
        jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, u32::MAX, 1, 0),
        kill(),
    ]);
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    prog
}

/// Answers ENOSYS to a native call numbered above `newest`: a call the
/// kernel gained after cage's review fails closed, as on an older kernel
/// (libc and runtimes fall back then). Foreign ABIs pass here: the foreign
/// ABI guard kills them, and seccompiler's filters check the arch too.
fn newer_calls_guard(newest: i64) -> BpfProgram {
    let ret = |k| stmt(libc::BPF_RET | libc::BPF_K, k);
    // Syscall numbers are small and positive; the table is checked by a test.
    let newest = u32::try_from(newest).unwrap_or(u32::MAX);
    vec![
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARCH_OFFSET),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_NATIVE,
            0,
            4,
        ),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET),
        // -1 is no call (a tracer skipping one, with its own return value):
        // answering it would overwrite what the tracer chose.
        jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, u32::MAX, 2, 0),
        jump(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K, newest, 0, 1),
        ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ret(libc::SECCOMP_RET_ALLOW),
    ]
}

// ---- syscall names ----

/// The number of syscall `name` on this architecture; `None` for a name in
/// [`ABSENT`] (nothing to deny there).
fn syscall_number(name: &str) -> Result<Option<i64>, SeccompError> {
    if let Some((_, nr)) = SYSCALLS
        .iter()
        .chain(NEWER_THAN_LIBC)
        .find(|(n, _)| *n == name)
    {
        return Ok(Some(*nr));
    }
    if ABSENT.contains(&name) {
        return Ok(None);
    }
    Err(SeccompError::UnknownSyscall {
        name: name.to_string(),
    })
}

/// Syscalls the plan may name that this architecture does not have.
#[cfg(target_arch = "x86_64")]
const ABSENT: &[&str] = &[];
#[cfg(target_arch = "aarch64")]
const ABSENT: &[&str] = &["modify_ldt"];

/// Calls newer than the libc crate's tables. Since Linux 5.1 (number 403)
/// a new call has one number on every architecture but alpha, so one list
/// serves both. From the kernel's `syscall_64.tbl`.
const NEWER_THAN_LIBC: &[(&str, i64)] = &[
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
];

/// Name → number, from libc's `SYS_*` for the build target. Every name the
/// plan can produce must be here (a test checks); the two architectures
/// share this list, as both have every call on it.
const SYSCALLS: &[(&str, i64)] = &[
    ("acct", libc::SYS_acct),
    ("add_key", libc::SYS_add_key),
    ("bpf", libc::SYS_bpf),
    ("chroot", libc::SYS_chroot),
    ("clone", libc::SYS_clone),
    ("clone3", libc::SYS_clone3),
    ("delete_module", libc::SYS_delete_module),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("finit_module", libc::SYS_finit_module),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fsopen", libc::SYS_fsopen),
    ("fspick", libc::SYS_fspick),
    ("init_module", libc::SYS_init_module),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("ioctl", libc::SYS_ioctl),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("kexec_load", libc::SYS_kexec_load),
    ("keyctl", libc::SYS_keyctl),
    #[cfg(target_arch = "x86_64")]
    ("modify_ldt", libc::SYS_modify_ldt),
    ("mount", libc::SYS_mount),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("move_mount", libc::SYS_move_mount),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("open_tree", libc::SYS_open_tree),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("personality", libc::SYS_personality),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("pivot_root", libc::SYS_pivot_root),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("ptrace", libc::SYS_ptrace),
    ("quotactl", libc::SYS_quotactl),
    ("quotactl_fd", libc::SYS_quotactl_fd),
    ("reboot", libc::SYS_reboot),
    ("request_key", libc::SYS_request_key),
    ("setns", libc::SYS_setns),
    ("socket", libc::SYS_socket),
    ("socketpair", libc::SYS_socketpair),
    ("swapoff", libc::SYS_swapoff),
    ("swapon", libc::SYS_swapon),
    ("syslog", libc::SYS_syslog),
    ("umount2", libc::SYS_umount2),
    ("unshare", libc::SYS_unshare),
    ("userfaultfd", libc::SYS_userfaultfd),
];

#[cfg(test)]
mod tests {
    use nix::errno::Errno as E;
    use nix::sys::signal::Signal;

    use super::*;
    use crate::plan::SyscallRule;
    use crate::plan::seccomp::build_seccomp;
    use crate::policy::Provenance;
    use crate::sys::probe::{Outcome, syscall_in_child};

    fn default_plan() -> SeccompPlan {
        build_seccomp(None, None)
    }

    /// The default plan minus every rule for `name`: what the kernel says
    /// when exactly that rule is missing.
    fn plan_without(name: &str) -> SeccompPlan {
        let mut plan = default_plan();
        plan.deny.retain(|r| r.name != name);
        plan
    }

    fn filters(plan: &SeccompPlan) -> Vec<BpfProgram> {
        build_filters(plan).expect("building the filters")
    }

    fn rule(name: &str, errno: Errno, when: ArgMatch) -> SyscallRule {
        SyscallRule {
            name: name.to_string(),
            errno,
            when,
            source: Provenance::Default { what: "test" },
        }
    }

    fn plan_of(deny: Vec<SyscallRule>) -> SeccompPlan {
        SeccompPlan {
            deny,
            kill_foreign_abi: false,
            newest_known: None,
            nested_userns: None,
        }
    }

    /// Syscall `nr(args)` in a child that first installs `programs`.
    fn call(programs: &[BpfProgram], nr: i64, args: [i64; 6]) -> Outcome {
        syscall_in_child(|| install(programs).is_ok(), nr, args)
    }

    /// The probe under the default plan, then under the plan without
    /// `name`'s rules. Both built before forking.
    fn with_and_without(name: &str, nr: i64, args: [i64; 6]) -> (Outcome, Outcome) {
        let with = filters(&default_plan());
        let without = filters(&plan_without(name));
        (call(&with, nr, args), call(&without, nr, args))
    }

    // ---- pure ----

    #[test]
    fn every_planned_syscall_has_a_number() {
        let allowed = Provenance::flag("--allow-ptrace");
        for plan in [
            build_seccomp(None, None),
            build_seccomp(Some(&allowed), None),
            build_seccomp(None, Some(&allowed)),
        ] {
            for r in &plan.deny {
                assert!(
                    matches!(syscall_number(&r.name), Ok(Some(_)))
                        || ABSENT.contains(&r.name.as_str()),
                    "{} has no number on {}",
                    r.name,
                    std::env::consts::ARCH
                );
            }
            build_filters(&plan).expect("the default plan compiles");
        }
    }

    #[test]
    fn unknown_syscall_is_an_error() {
        let plan = plan_of(vec![rule("no_such_call", Errno::EPERM, ArgMatch::Always)]);
        assert!(matches!(
            build_filters(&plan),
            Err(SeccompError::UnknownSyscall { name }) if name == "no_such_call"
        ));
    }

    #[test]
    fn argument_index_past_five_is_an_error() {
        let plan = plan_of(vec![rule(
            "ioctl",
            Errno::EPERM,
            ArgMatch::Equals32 {
                arg: 6,
                values: vec![1],
            },
        )]);
        assert!(matches!(
            build_filters(&plan),
            Err(SeccompError::Condition { arg: 6, .. })
        ));
    }

    #[test]
    fn guard_comes_first_then_one_filter_per_errno() {
        let mut plan = default_plan();
        let errnos = [Errno::EPERM, Errno::ENOSYS];
        assert!(
            errnos
                .iter()
                .all(|e| plan.deny.iter().any(|r| r.errno == *e))
        );
        assert_eq!(filters(&plan).len(), 2 + errnos.len());
        assert_eq!(filters(&plan)[0], foreign_abi_guard());
        assert_eq!(filters(&plan)[1], newer_calls_guard(469));
        plan.kill_foreign_abi = false;
        assert_eq!(filters(&plan).len(), 1 + errnos.len());
        plan.newest_known = None;
        assert_eq!(filters(&plan).len(), errnos.len());
    }

    #[test]
    fn always_wins_over_conditional_rules_for_the_same_call() {
        let equals = ArgMatch::Equals32 {
            arg: 1,
            values: vec![7],
        };
        let merged = filters(&plan_of(vec![
            rule("ioctl", Errno::EPERM, equals.clone()),
            rule("ioctl", Errno::EPERM, ArgMatch::Always),
            rule("ioctl", Errno::EPERM, equals),
        ]));
        let always = filters(&plan_of(vec![rule(
            "ioctl",
            Errno::EPERM,
            ArgMatch::Always,
        )]));
        assert_eq!(merged, always);
    }

    #[test]
    fn conditional_rules_for_the_same_call_are_merged() {
        let eq = |v| ArgMatch::Equals32 {
            arg: 1,
            values: vec![v],
        };
        let two = filters(&plan_of(vec![
            rule("ioctl", Errno::EPERM, eq(7)),
            rule("ioctl", Errno::EPERM, eq(8)),
        ]));
        let one = filters(&plan_of(vec![rule(
            "ioctl",
            Errno::EPERM,
            ArgMatch::Equals32 {
                arg: 1,
                values: vec![7, 8],
            },
        )]));
        assert_eq!(two, one);
    }

    /// seccompiler reads an empty rule list as "always": a rule that can
    /// never match must not turn into one.
    #[test]
    fn a_rule_that_never_matches_denies_nothing() {
        for when in [
            ArgMatch::AnyBit { arg: 0, mask: 0 },
            ArgMatch::Equals32 {
                arg: 0,
                values: vec![],
            },
        ] {
            assert!(filters(&plan_of(vec![rule("keyctl", Errno::EPERM, when)])).is_empty());
        }
    }

    #[test]
    fn not_in_an_empty_list_is_always() {
        let not_in = ArgMatch::NotIn32 {
            arg: 0,
            values: vec![],
        };
        assert_eq!(
            filters(&plan_of(vec![rule("socket", Errno::EPERM, not_in)])),
            filters(&plan_of(vec![rule(
                "socket",
                Errno::EPERM,
                ArgMatch::Always
            )]))
        );
    }

    // ---- in a child: the kernel's answers ----

    const BAD_FD: i64 = -1;

    #[test]
    fn keyring_is_denied() {
        let unknown_op = 9999;
        let (with, without) =
            with_and_without("keyctl", libc::SYS_keyctl, [unknown_op, 0, 0, 0, 0, 0]);
        assert_eq!(with, Outcome::Err(E::EPERM));
        assert_eq!(without, Outcome::Err(E::EOPNOTSUPP));
    }

    #[test]
    fn tiocsti_is_denied_and_other_ioctls_reach_the_kernel() {
        let sti = libc::TIOCSTI as i64;
        let (with, without) = with_and_without("ioctl", libc::SYS_ioctl, [BAD_FD, sti, 0, 0, 0, 0]);
        assert_eq!(with, Outcome::Err(E::EPERM));
        assert_eq!(without, Outcome::Err(E::EBADF));

        let tcgets = libc::TCGETS as i64;
        let (with, _) = with_and_without("ioctl", libc::SYS_ioctl, [BAD_FD, tcgets, 0, 0, 0, 0]);
        assert_eq!(with, Outcome::Err(E::EBADF));
    }

    /// The kernel reads ioctl's cmd as 32 bits; so must the filter.
    #[test]
    fn tiocsti_with_high_bits_set_is_still_denied() {
        let sti = libc::TIOCSTI as i64 | 0x1_0000_0000;
        let (with, without) = with_and_without("ioctl", libc::SYS_ioctl, [BAD_FD, sti, 0, 0, 0, 0]);
        assert_eq!(with, Outcome::Err(E::EPERM));
        assert_eq!(without, Outcome::Err(E::EBADF));
    }

    #[test]
    fn exotic_socket_families_are_denied() {
        // A type past SOCK_MAX: the kernel answers EINVAL before looking for
        // (or loading) the family's module.
        let bad_type = 9999;
        for family in [libc::AF_VSOCK, libc::AF_PACKET, libc::AF_ALG] {
            let args = [family as i64, bad_type, 0, 0, 0, 0];
            let (with, without) = with_and_without("socket", libc::SYS_socket, args);
            assert_eq!(with, Outcome::Err(E::EPERM), "socket family {family}");
            assert_eq!(without, Outcome::Err(E::EINVAL), "socket family {family}");
            let (with, without) = with_and_without("socketpair", libc::SYS_socketpair, args);
            assert_eq!(with, Outcome::Err(E::EPERM), "socketpair family {family}");
            assert_eq!(
                without,
                Outcome::Err(E::EINVAL),
                "socketpair family {family}"
            );
        }
    }

    #[test]
    fn unix_inet_and_netlink_sockets_work() {
        let programs = filters(&default_plan());
        for (family, ty, proto) in [
            (libc::AF_UNIX, libc::SOCK_STREAM, 0),
            (libc::AF_INET, libc::SOCK_STREAM, 0),
            (libc::AF_INET6, libc::SOCK_DGRAM, 0),
            (libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
        ] {
            let args = [family as i64, ty as i64, proto as i64, 0, 0, 0];
            assert_eq!(
                call(&programs, libc::SYS_socket, args),
                Outcome::Ok,
                "family {family}"
            );
        }
    }

    #[test]
    fn clone_into_new_namespaces_is_denied() {
        // With CLONE_FS the kernel refuses both flags (EINVAL), so nothing
        // is created if the filter lets the call through.
        for ns in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS] {
            let flags = (ns | libc::CLONE_FS) as i64;
            let (with, without) =
                with_and_without("clone", libc::SYS_clone, [flags, 0, 0, 0, 0, 0]);
            assert_eq!(with, Outcome::Err(E::EPERM), "flags {flags:#x}");
            assert_eq!(without, Outcome::Err(E::EINVAL), "flags {flags:#x}");
        }
    }

    #[test]
    fn clone_without_namespace_flags_reaches_the_kernel() {
        // CLONE_THREAD without CLONE_SIGHAND: EINVAL from the kernel.
        let flags = libc::CLONE_THREAD as i64;
        let programs = filters(&default_plan());
        assert_eq!(
            call(&programs, libc::SYS_clone, [flags, 0, 0, 0, 0, 0]),
            Outcome::Err(E::EINVAL)
        );
    }

    #[test]
    fn unshare_is_denied() {
        // Bit 0 is not an unshare flag: EINVAL from the kernel.
        let (with, without) = with_and_without("unshare", libc::SYS_unshare, [1, 0, 0, 0, 0, 0]);
        assert_eq!(with, Outcome::Err(E::EPERM));
        assert_eq!(without, Outcome::Err(E::EINVAL));
    }

    #[test]
    fn clone3_answers_enosys_so_libc_falls_back_to_clone() {
        // A NULL, zero-sized clone_args: EINVAL from the kernel.
        let (with, without) = with_and_without("clone3", libc::SYS_clone3, [0; 6]);
        assert_eq!(with, Outcome::Err(E::ENOSYS));
        assert_eq!(without, Outcome::Err(E::EINVAL));
    }

    #[test]
    fn personality_cannot_disable_aslr_but_can_be_queried() {
        let no_aslr = libc::ADDR_NO_RANDOMIZE as i64;
        let (with, without) = with_and_without(
            "personality",
            libc::SYS_personality,
            [no_aslr, 0, 0, 0, 0, 0],
        );
        assert_eq!(with, Outcome::Err(E::EPERM));
        assert_eq!(without, Outcome::Ok);

        let programs = filters(&default_plan());
        for harmless in [0xffff_ffff, 0] {
            let args = [harmless, 0, 0, 0, 0, 0];
            assert_eq!(call(&programs, libc::SYS_personality, args), Outcome::Ok);
        }
    }

    #[test]
    fn mount_is_denied() {
        // A NULL target: EFAULT from the kernel.
        let (with, without) = with_and_without("mount", libc::SYS_mount, [0; 6]);
        assert_eq!(with, Outcome::Err(E::EPERM));
        assert_eq!(without, Outcome::Err(E::EFAULT));
    }

    /// Every unconditional rule blocks its call before the kernel reads the
    /// arguments (all -1: invalid pointers, fds and flags, in case a rule
    /// were broken).
    #[test]
    fn every_unconditional_rule_is_enforced() {
        let plan = default_plan();
        let programs = filters(&plan);
        for r in plan.deny.iter().filter(|r| r.when == ArgMatch::Always) {
            let nr = match syscall_number(&r.name) {
                Ok(Some(nr)) => nr,
                Ok(None) => continue,
                Err(e) => panic!("{e}"),
            };
            let expected = match r.errno {
                Errno::EPERM => E::EPERM,
                Errno::ENOSYS => E::ENOSYS,
            };
            assert_eq!(
                call(&programs, nr, [-1; 6]),
                Outcome::Err(expected),
                "{}",
                r.name
            );
        }
    }

    /// Calls added to the deny list for issue 10: each probed with
    /// arguments the kernel rejects with another errno.
    #[test]
    fn newer_and_fd_stealing_calls_are_denied() {
        let probes: &[(&str, i64, [i64; 6], E)] = &[
            // Unknown flags: EINVAL.
            (
                "open_tree_attr",
                467,
                [-1, 0, 0xffff_ffff, 0, 0, 0],
                E::EINVAL,
            ),
            // Not a pidfd: EBADF.
            (
                "pidfd_getfd",
                libc::SYS_pidfd_getfd,
                [BAD_FD, 0, 0, 0, 0, 0],
                E::EBADF,
            ),
            // Unknown flags: EINVAL.
            (
                "fanotify_init",
                libc::SYS_fanotify_init,
                [0xffff_ffff, 0, 0, 0, 0, 0],
                E::EINVAL,
            ),
        ];
        for (name, nr, args, kernel) in probes {
            let (with, without) = with_and_without(name, *nr, *args);
            assert_eq!(with, Outcome::Err(E::EPERM), "{name}");
            assert_eq!(without, Outcome::Err(*kernel), "{name}");
        }
        // A write whose byte count is no `struct user_desc`: the kernel's
        // EINVAL, which modify_ldt returns zero-extended from 32 bits, so
        // the raw call reads as a success; the filter's EPERM does not.
        #[cfg(target_arch = "x86_64")]
        {
            let args = [1, 0, 0, 0, 0, 0];
            let (with, without) = with_and_without("modify_ldt", libc::SYS_modify_ldt, args);
            assert_eq!(with, Outcome::Err(E::EPERM));
            assert_eq!(without, Outcome::Ok);
        }
    }

    /// A call newer than the newest cage knows answers ENOSYS, even though
    /// the kernel has it. Proven with a lower bound (mseal, 462) so the
    /// kernel running the test has the calls above it (463-469: Linux
    /// 6.13-6.17); the real bound's neighbours are checked after.
    #[test]
    fn calls_newer_than_cage_answer_enosys() {
        let guarded = [newer_calls_guard(libc::SYS_mseal)];
        let open_tree_attr = [-1, 0, 0xffff_ffff, 0, 0, 0];
        assert_eq!(call(&guarded, 467, open_tree_attr), Outcome::Err(E::ENOSYS));
        assert_eq!(
            call(&[], 467, open_tree_attr),
            Outcome::Err(E::EINVAL),
            "the kernel running this test predates open_tree_attr (6.15)"
        );
        // The bound itself and what is below still reach the kernel.
        let mseal = [0, 0, 0xffff_ffff, 0, 0, 0];
        assert_eq!(
            call(&guarded, libc::SYS_mseal, mseal),
            Outcome::Err(E::EINVAL)
        );
        // -1 is the kernel's own ENOSYS, and x32 is still killed.
        assert_eq!(call(&guarded, -1, [0; 6]), Outcome::Err(E::ENOSYS));

        // The default plan: the newest known call reaches the kernel; the
        // next number is refused (here ENOSYS either way on a kernel that
        // lacks it: the lower bound above is what proves the filter).
        let default = filters(&default_plan());
        let file_setattr = [BAD_FD, 0, 0, 0, 0xffff_ffff, 0];
        assert!(matches!(
            call(&default, 469, file_setattr),
            Outcome::Err(E::EBADF | E::EINVAL | E::EFAULT)
        ));
        assert_eq!(call(&default, 470, [0; 6]), Outcome::Err(E::ENOSYS));
        assert_eq!(call(&default, 1000, [0; 6]), Outcome::Err(E::ENOSYS));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_syscalls_kill_the_process() {
        let x32_getpid = X32_SYSCALL_BIT as i64 | libc::SYS_getpid;
        let guarded = filters(&default_plan());
        assert_eq!(
            call(&guarded, x32_getpid, [0; 6]),
            Outcome::Killed(Signal::SIGSYS)
        );
        // -1 is no syscall, and not x32: the kernel's ENOSYS, not a kill.
        assert_eq!(call(&guarded, -1, [0; 6]), Outcome::Err(E::ENOSYS));
        // Without the guard the number matches no rule and reaches the
        // kernel: ENOSYS without CONFIG_X86_X32_ABI, getpid with it.
        let mut plan = default_plan();
        plan.kill_foreign_abi = false;
        let unguarded = filters(&plan);
        assert!(matches!(
            call(&unguarded, x32_getpid, [0; 6]),
            Outcome::Ok | Outcome::Err(E::ENOSYS)
        ));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn i386_syscalls_kill_the_process() {
        use crate::sys::probe::int80_getpid_in_child;

        let guard = [foreign_abi_guard()];
        assert_eq!(
            int80_getpid_in_child(|| install(&guard).is_ok()),
            Outcome::Killed(Signal::SIGSYS)
        );
        // Without any filter the gate works (unless the kernel was booted
        // with ia32_emulation=0, which faults it).
        assert!(matches!(
            int80_getpid_in_child(|| true),
            Outcome::Ok | Outcome::Killed(Signal::SIGSEGV)
        ));
        // seccompiler's filters check the arch too, so the errno filters
        // alone also kill it; the guard is what covers x32.
        let mut plan = default_plan();
        plan.kill_foreign_abi = false;
        let unguarded = filters(&plan);
        assert_eq!(
            int80_getpid_in_child(|| install(&unguarded).is_ok()),
            Outcome::Killed(Signal::SIGSYS)
        );
    }
}
