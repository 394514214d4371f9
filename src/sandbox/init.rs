//! cage init (pid 1 of the cage) and the agent's last steps before exec.
//!
//! Both run in a cloned copy of the supervisor, so nothing here may unwind
//! or return into the supervisor's code: every path ends in `exit_now`.
//! Setup errors go to the supervisor over the channel first.

use std::ffi::CString;
use std::os::fd::AsRawFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::error::chain;
use crate::plan::{Plan, Requirement, RlimitKind};
use crate::sys;

use super::protocol::{Channel, Report, Step};
use super::{caps, landlock, mounts, network, seccomp};

/// Exit code of a cage failure (DESIGN.md).
pub const EXIT_CAGE: i32 = 125;
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

/// The agent's execve arguments, built by the supervisor before clone so
/// that the child only passes them on.
pub struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Exec {
    /// The exec of the plan's command, or `None` when it was not found.
    /// A NUL byte, which the plan refuses in the environment and the
    /// command line cannot hold, is an error rather than an empty string.
    pub fn of(plan: &Plan) -> Result<Option<Exec>, std::ffi::NulError> {
        let Some(program) = &plan.command.program else {
            return Ok(None);
        };
        let cstr = |s: &str| CString::new(s);
        Ok(Some(Exec {
            path: CString::new(program.as_os_str().as_encoded_bytes())?,
            argv: plan
                .command
                .argv
                .iter()
                .map(|a| cstr(a))
                .collect::<Result<_, _>>()?,
            envp: plan
                .env
                .iter()
                .map(|v| cstr(&format!("{}={}", v.name, v.value)))
                .collect::<Result<_, _>>()?,
        }))
    }
}

/// Runs as pid 1 in the new namespaces. Never returns.
///
/// 1. Die with the supervisor; name the process.
/// 2. Close every inherited descriptor but the channel.
/// 3. Wait until the supervisor has written the id maps; become
///    non-dumpable; bring loopback up and, in proxy mode, hand the
///    supervisor the listeners.
/// 4. Build the view and pivot into it; set the hostname.
/// 5. Fork the agent, then only reap zombies and forward signals until it
///    exits, and exit with its status.
pub fn run(
    plan: &Plan,
    channel: Channel,
    exec: Option<&Exec>,
    seccomp_filters: &[seccompiler::BpfProgram],
    guard: Option<&[libc::sock_filter]>,
) -> ! {
    // 1. PDEATHSIG first: from here on, a supervisor that dies however it
    //    dies takes this process, and with it the whole pid namespace.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = nix::sys::prctl::set_name(c"cage:init");

    // 2. Descriptors the user's shell or an IDE left open must not reach
    //    the agent, nor sit in pid 1 where a bug could expose them.
    // 3. An EOF means the supervisor died before mapping us: just leave.
    close_and_wait(&channel);
    // Non-dumpable: the agent cannot ptrace or read /proc/1/mem, fd/,
    // environ. Only now: it makes /proc/<pid> root-owned, which would have
    // stopped the supervisor writing the id maps.
    let _ = nix::sys::prctl::set_dumpable(false);
    if let Err(e) = network::setup(plan, &channel) {
        let errno = e.errno();
        channel.send(&Report::Failed {
            step: Step::Network,
            message: chain(&e),
            errno,
            code: EXIT_CAGE,
        });
        sys::exit_now(EXIT_CAGE);
    }

    // 4.
    if let Err(e) = mounts::enter_view(plan) {
        let step = match e {
            mounts::MountError::Overlay { .. } => Step::WorkspaceOverlay,
            _ => Step::View,
        };
        report(&channel, step, &e, e.errno());
    }
    if let Err(e) = nix::unistd::sethostname(&plan.hostname) {
        fail(
            &channel,
            Step::Init,
            &format!("setting the hostname to {}", plan.hostname),
            Some(e.into()),
            EXIT_CAGE,
        );
    }

    // 5. The signals stay blocked here (inherited from the supervisor) and
    //    are read from a signalfd; the agent unblocks them before exec.
    let agent = match fork_single_threaded() {
        Ok(ForkResult::Child) => {
            agent(plan, &channel, exec, seccomp_filters, guard, Caps::InUserns)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(
            &channel,
            Step::Fork,
            "forking the agent",
            Some(e.into()),
            EXIT_CAGE,
        ),
    };
    let sfd = match SignalFd::with_flags(&super::watched_signals(), SfdFlags::SFD_CLOEXEC) {
        Ok(s) => s,
        Err(e) => fail(
            &channel,
            Step::Init,
            "creating a signalfd",
            Some(e.into()),
            EXIT_CAGE,
        ),
    };
    drop(channel);
    loop {
        // Reap everything that has exited; the agent's status ends the cage.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == agent => sys::exit_now(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == agent => {
                    sys::exit_now(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // Forward only signals someone sent with kill/sigqueue (si_code <= 0).
        // Terminal signals (SI_KERNEL) already reached the agent, which
        // shares our process group; forwarding them would deliver Ctrl-C
        // twice.
        if let Ok(Some(info)) = sfd.read_signal()
            && info.ssi_code <= 0
            && let Ok(sig) = Signal::try_from(info.ssi_signo as i32)
            && sig != Signal::SIGCHLD
        {
            let _ = kill(agent, sig);
        }
    }
}

/// The agent of the graded mode (no namespaces, no init): forked straight
/// from the supervisor. Never returns.
///
/// 1. Die with the supervisor; close every inherited descriptor but the
///    channel (init does both in the normal mode).
/// 2. Wait until the supervisor has moved it into the session's cgroup.
/// 3. A new session, without a controlling terminal: nothing can push
///    input into the user's terminal (TIOCSTI needs it to be the caller's
///    controlling terminal, and seccomp refuses it too), and the whole
///    group can be killed when the agent ends.
/// 4. The agent's own steps, with the graded plan's Landlock, seccomp and
///    environment.
pub fn graded_agent(
    plan: &Plan,
    channel: Channel,
    exec: Option<&Exec>,
    seccomp_filters: &[seccompiler::BpfProgram],
    guard: Option<&[libc::sock_filter]>,
) -> ! {
    // 1. and 2.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    close_and_wait(&channel);
    // 3.
    if let Err(e) = nix::unistd::setsid() {
        fail(
            &channel,
            Step::Confine,
            "starting a new session (setsid)",
            Some(e.into()),
            EXIT_CAGE,
        );
    }
    // 4.
    agent(
        plan,
        &channel,
        exec,
        seccomp_filters,
        guard,
        Caps::Unprivileged,
    )
}

/// The first steps of cage's first process, in either mode: close every
/// inherited descriptor but the channel, then wait for the supervisor's
/// go (an EOF: it died, so leave quietly).
fn close_and_wait(channel: &Channel) {
    if let Err(e) = close_inherited(channel) {
        fail(
            channel,
            Step::Init,
            "closing inherited file descriptors",
            Some(e),
            EXIT_CAGE,
        );
    }
    if channel.wait_go().is_err() {
        sys::exit_now(EXIT_CAGE);
    }
}

/// Where the agent drops its capabilities from.
#[derive(Clone, Copy)]
enum Caps {
    /// Every capability over its own user namespace: all dropped.
    InUserns,
    /// The graded mode: none held, and no CAP_SETPCAP for the bounding set.
    Unprivileged,
}

/// The agent: the last steps before exec. Never returns.
///
/// 1. Default signal mask and SIGPIPE disposition (both survive exec).
/// 2. Resource limits.
/// 3. Landlock, while the view's paths can still be opened by name.
/// 4. Capabilities dropped, no_new_privs.
/// 5. Every descriptor above 2 close-on-exec (the channel closes at exec,
///    which tells the supervisor exec succeeded).
/// 6. seccomp, last before exec, so the filter need not allow anything
///    cage itself does above; the guard's filter after it, its listener
///    handed to the supervisor and closed here; then tell the supervisor
///    what was enforced.
/// 7. execve.
fn agent(
    plan: &Plan,
    channel: &Channel,
    exec: Option<&Exec>,
    filters: &[seccompiler::BpfProgram],
    guard: Option<&[libc::sock_filter]>,
    held: Caps,
) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // 1.
    reset_signals(channel);
    // 2.
    set_rlimits(plan, channel);
    // 3.
    let landlock_status = match landlock::install(&plan.landlock) {
        Ok(status) => {
            if let Requirement::BestEffort { source } = &plan.landlock.requirement
                && !status.missing.is_empty()
            {
                crate::term::emit(&format!(
                    "cage: warning: Landlock is not fully enforced (kernel ABI {}; missing: {}); \
                     running anyway because of {source}",
                    status.abi,
                    status.missing.join(", ")
                ));
            }
            status
        }
        Err(e) => report(channel, Step::Confine, &e, None),
    };
    // 4.
    let dropped = match held {
        Caps::InUserns => caps::drop_all(),
        Caps::Unprivileged => caps::drop_unprivileged(),
    };
    if let Err(e) = dropped {
        report(channel, Step::Confine, &e, None)
    }
    // 5.
    if let Err(e) = sys::cloexec_from(3) {
        fail(
            channel,
            Step::Confine,
            "marking file descriptors close-on-exec",
            Some(e),
            EXIT_CAGE,
        );
    }
    let Some(exec) = exec else {
        channel.send(&Report::NotFound {
            program: plan.command.argv[0].clone(),
        });
        sys::exit_now(EXIT_NOT_FOUND);
    };
    // 6. Dumpable again, as exec would make it anyway: the guard reads
    //    this process's memory when it execs, and a process forked from
    //    the non-dumpable init keeps init's memory owner (the host's user
    //    namespace), where the supervisor holds no capability. Nothing
    //    else runs in the cage yet, and init stays non-dumpable.
    let _ = nix::sys::prctl::set_dumpable(true);
    // Read back before the filters: nothing below changes them, and the
    // read is a call per capability, each run through every filter after.
    let capabilities_cleared = caps::all_clear();
    if let Err(e) = seccomp::install(filters) {
        report(channel, Step::Confine, &e, None)
    }
    if let Some(program) = guard {
        install_guard(channel, program);
    }
    // The supervisor writes the session's start record from this, before
    // any of the agent's code runs.
    channel.send(&Report::Enforced {
        landlock: landlock_status,
        seccomp_filters: filters.len(),
        capabilities_cleared,
        no_new_privs: nix::sys::prctl::get_no_new_privs().unwrap_or(false),
    });
    // 7.
    let errno = match nix::unistd::execve(&exec.path, &exec.argv, &exec.envp) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let code = if errno == nix::errno::Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXECUTE
    };
    channel.send(&Report::ExecFailed {
        program: exec.path.to_string_lossy().into_owned(),
        errno: errno as i32,
        code,
    });
    sys::exit_now(code)
}

/// The agent's step 1: an empty signal mask and SIGPIPE's default action
/// (Rust's runtime ignores it, and an ignored signal stays ignored across
/// exec).
fn reset_signals(channel: &Channel) {
    if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
        fail(
            channel,
            Step::Confine,
            "resetting the signal mask",
            Some(e.into()),
            EXIT_CAGE,
        );
    }
    if let Err(e) = sys::default_disposition(Signal::SIGPIPE) {
        fail(
            channel,
            Step::Confine,
            "restoring the default action of SIGPIPE",
            Some(e.into()),
            EXIT_CAGE,
        );
    }
}

/// The agent's step 2: the plan's resource limits, never above the
/// current hard limit (lowering needs no privilege).
fn set_rlimits(plan: &Plan, channel: &Channel) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    for r in &plan.limits.rlimits {
        let res = match r.kind {
            RlimitKind::Nofile => Resource::RLIMIT_NOFILE,
            RlimitKind::Nproc => Resource::RLIMIT_NPROC,
            RlimitKind::Fsize => Resource::RLIMIT_FSIZE,
            RlimitKind::Core => Resource::RLIMIT_CORE,
        };
        let hard = getrlimit(res).map(|(_, h)| h).unwrap_or(r.value);
        let v = r.value.min(hard);
        if let Err(e) = setrlimit(res, v, v) {
            fail(
                channel,
                Step::Confine,
                &format!("setting the resource limit {:?}", r.kind),
                Some(e.into()),
                EXIT_CAGE,
            );
        }
    }
}

/// The guard last: its listener goes to the supervisor, and this
/// process's copy is closed before exec, so nothing inside can answer its
/// own notifications.
fn install_guard(channel: &Channel, program: &[libc::sock_filter]) {
    match super::guard::install(program) {
        Ok(listener) => {
            if let Err(e) = channel.send_guard(&listener) {
                fail(
                    channel,
                    Step::Confine,
                    "handing the guard's listener to the supervisor",
                    Some(e),
                    EXIT_CAGE,
                );
            }
            drop(listener);
        }
        Err(e) => fail(
            channel,
            Step::Confine,
            "installing the guard's seccomp filter (SECCOMP_FILTER_FLAG_NEW_LISTENER)",
            Some(e),
            EXIT_CAGE,
        ),
    }
}

fn close_inherited(channel: &Channel) -> std::io::Result<()> {
    // SAFETY: right after clone, the channel is the only descriptor above 2
    // that a live object in this process owns.
    unsafe { sys::close_all_except(channel.as_raw_fd()) }
}

fn fork_single_threaded() -> nix::Result<ForkResult> {
    // SAFETY: cage init is single-threaded (a clone of the single-threaded
    // supervisor), so the child may run arbitrary code.
    unsafe { fork() }
}

/// Reports a setup error with its whole chain and ends the process (125).
fn report(channel: &Channel, step: Step, e: &dyn std::error::Error, errno: Option<i32>) -> ! {
    channel.send(&Report::Failed {
        step,
        message: chain(e),
        errno,
        code: EXIT_CAGE,
    });
    sys::exit_now(EXIT_CAGE)
}

fn fail(channel: &Channel, step: Step, what: &str, e: Option<std::io::Error>, code: i32) -> ! {
    let errno = e.as_ref().and_then(|e| e.raw_os_error());
    let mut message = what.to_string();
    if let Some(e) = e {
        message.push_str(&format!(": {e}"));
    }
    channel.send(&Report::Failed {
        step,
        message,
        errno,
        code,
    });
    sys::exit_now(code)
}
