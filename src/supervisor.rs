//! The supervisor: the host side of a run. It owns the plan, clones the
//! cage into its namespaces, writes the id maps, serves the proxy, writes
//! the session's audit records, forwards signals, waits, and turns the
//! cage's end into an exit status.
//!
//! It stays single-threaded until the child exists: clone with
//! CLONE_NEWUSER fails in a multi-threaded process, and the cloned child is
//! a copy of one thread. The proxy's threads start after clone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::audit::{self, Session};
use crate::error::chain;
use crate::guard::Guard;
use crate::plan::Plan;
use crate::proxy::{self, Proxy, Rules};
use crate::sandbox::init::{EXIT_CAGE, EXIT_NOT_FOUND};
use crate::sandbox::protocol::{Channel, Incoming, Report};
use crate::sandbox::{self, init, seccomp};
use crate::secrets::Vault;
use crate::{sys, term};

/// How long open proxy connections get to finish, and write their end
/// records, once the cage has exited.
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("creating the channel to the cage")]
    Channel(#[source] std::io::Error),
    #[error("blocking signals")]
    Signals(#[source] nix::Error),
    #[error(
        "creating the namespaces (clone): {hint}; or, with less isolation, \
         `--allow-degraded namespaces` (see README, graded mode)"
    )]
    Clone {
        hint: String,
        #[source]
        errno: std::io::Error,
    },
    #[error("writing {path}{hint}")]
    IdMap {
        path: PathBuf,
        hint: String,
        #[source]
        errno: std::io::Error,
    },
    #[error("waiting for the cage")]
    Wait(#[source] nix::Error),
    #[error("building the seccomp filter")]
    Seccomp(#[source] seccomp::SeccompError),
    #[error("building the agent's command line and environment (a NUL byte)")]
    Nul(#[source] std::ffi::NulError),
    #[error("{message}")]
    Setup { message: String, code: i32 },
    #[error("{program}: command not found inside the cage")]
    NotFound { program: String },
    #[error("executing {program}")]
    Exec {
        program: String,
        code: i32,
        #[source]
        errno: std::io::Error,
    },
    #[error(transparent)]
    Preflight(crate::session::preflight::PreflightError),
    #[error("starting the guard's thread")]
    Guard(#[source] std::io::Error),
    #[error("starting the proxy")]
    Proxy(#[source] std::io::Error),
    #[error(
        "the proxy network mode needs the session's audit log, and it could not be created \
         (requested by {rule})"
    )]
    NoAuditLog { rule: String },
    #[error(
        "user namespaces cannot be created here ({why}), and cage refuses to run without \
         them. Fix that, or accept the graded mode (Landlock and seccomp only, no namespaces, \
         --net none or proxy) with `--allow-degraded namespaces`"
    )]
    NoUserns { why: String },
    #[error(
        "user namespaces cannot be created here ({why}); the graded mode is allowed ({rule}), \
         but this plan cannot run without namespaces: {refused}"
    )]
    GradedRefused {
        why: String,
        refused: String,
        rule: String,
    },
    #[error(
        "user namespaces cannot be created here ({why}), and the graded mode needs Landlock, \
         which this kernel lacks (not built in, or not in the `lsm=` boot parameter): without \
         both there is nothing left to isolate with"
    )]
    GradedNoLandlock { why: String },
    #[error("binding the graded proxy mode's listener on the host's loopback")]
    GradedProxy(#[source] std::io::Error),
    #[error("creating the graded mode's private tmp directory {}", .path.display())]
    GradedTmp {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up the cgroup limits, which [limits] requires ({rule})")]
    Cgroup {
        rule: String,
        #[source]
        source: crate::cgroup::CgroupError,
    },
}

impl SupervisorError {
    pub fn exit_code(&self) -> i32 {
        match self {
            SupervisorError::Setup { code, .. } | SupervisorError::Exec { code, .. } => *code,
            SupervisorError::NotFound { .. } => EXIT_NOT_FOUND,
            _ => EXIT_CAGE,
        }
    }
}

/// Before anything of the cage exists: what makes a run impossible.
/// Proxy mode requires the session's log; an overlay, a host that can
/// mount it (the kernel would say only EINVAL from inside).
pub fn check(plan: &Plan, session: Option<&Session>) -> Result<(), SupervisorError> {
    // Network none's proxy only refuses: without a log, its listeners are
    // closed and connections fail as in an empty namespace.
    if plan.network.mode == crate::policy::NetMode::Proxy && session.is_none() {
        return Err(SupervisorError::NoAuditLog {
            rule: plan.network.source.to_string(),
        });
    }
    if let Some(overlay) = &plan.workspace.overlay {
        crate::session::preflight::check(overlay).map_err(SupervisorError::Preflight)?;
    }
    Ok(())
}

/// What a run leaves: the exit status to pass on (the agent's own, or
/// 128+N when it was killed by signal N) or cage's failure, and the
/// supervisor's end-of-session lines (the guard's tally, what the cgroup
/// limits stopped), to print once every record is written.
pub struct Ran {
    pub status: Result<i32, SupervisorError>,
    pub lines: Vec<String>,
}

/// Runs the plan (after `check`). `session` receives the audit records.
///
/// 1. Compile everything the children need (they must not fail to allocate
///    or parse after clone).
/// 2. Block the forwarded signals and SIGCHLD; read them from a signalfd.
/// 3. clone into the new namespaces; the child runs cage init.
/// 4. Write the id maps, then tell init to go on.
/// 5. Read the cage's messages until its end of the channel closes: serve
///    the listeners init hands over, record the enforcement the agent
///    reports, keep a failure report.
/// 6. Forward signals that were sent to us until init exits.
/// 7. Turn the end of init, or a report from the cage, into a status.
///
/// Closing the session's record and telling the user what happened is the
/// session's (`session::run`).
pub fn run(
    plan: &Plan,
    session: Option<&Session>,
    cgroup: crate::cgroup::Place,
    vault: Option<Arc<Vault>>,
    started: &dyn Fn(),
) -> Ran {
    let stdio = term::Stdio::now();
    let mut lines = Vec::new();
    let status = run_cage(plan, session, cgroup, vault, started, &mut lines);
    // The agent shared stdio; what it set on them is not the user's.
    stdio.restore();
    Ran { status, lines }
}

/// Step 2b: the session's cgroups, when the limits have a place. Failing
/// to make them is fatal only when the policy requires the limits.
fn make_cgroup(
    plan: &Plan,
    place: crate::cgroup::Place,
) -> Result<Option<crate::cgroup::SessionCgroup>, SupervisorError> {
    use crate::cgroup::{Place, SessionCgroup, Wanted};
    let Place::At(base) = place else {
        return Ok(None);
    };
    match SessionCgroup::create(&base, Wanted::of(&plan.limits)) {
        Ok(cg) => Ok(Some(cg)),
        Err(source) => match &plan.limits.required {
            Some(rule) => Err(SupervisorError::Cgroup {
                rule: rule.to_string(),
                source,
            }),
            None => {
                term::emit(&format!(
                    "cage: warning: not enforced: [limits] {}: {}",
                    plan.limits.cgroup_limits().join(", "),
                    term::escape_text(&chain(&source))
                ));
                Ok(None)
            }
        },
    }
}

/// The end of the session's cgroups: what the limits did, as a record and
/// a line for the user when they stopped something.
fn finish_cgroup(cg: crate::cgroup::SessionCgroup, session: Option<&Session>) -> Option<String> {
    let enforced = cg.wanted.describe();
    let o = cg.finish();
    if let Some(s) = session {
        let _ = s
            .log
            .write(crate::audit::Record::Limits(crate::audit::LimitsOutcome {
                enforced,
                oom_kills: o.oom_kills,
                pids_refused: o.pids_refused,
                cpu_throttled: o.cpu_throttled,
            }));
    }
    let mut said = Vec::new();
    if o.oom_kills > 0 {
        said.push(format!(
            "the memory limit ended {} process(es) (out of memory)",
            o.oom_kills
        ));
    }
    if o.pids_refused > 0 {
        said.push(format!("the pids limit refused {} fork(s)", o.pids_refused));
    }
    (!said.is_empty()).then(|| format!("cage: {}", said.join("; ")))
}

/// Test only: makes cage act as if user namespaces could not be created.
/// It can only make cage refuse, or take the graded mode where the user
/// allowed it; it never adds anything (README, testing).
const FORCE_NO_USERNS: &str = "CAGE_TEST_FORCE_NO_USERNS";

/// How the cage is made.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Cloned into new namespaces, under cage init.
    Namespaces,
    /// Forked without namespaces (`plan::graded`), with the record that
    /// says what is not isolated, for the log once the start record is in.
    Graded(&'a audit::GradedRun),
}

impl Mode<'_> {
    fn graded(self) -> bool {
        matches!(self, Mode::Graded(_))
    }
}

/// Why user namespaces are unavailable, found by trying (as a run would:
/// a sysctl, an AppArmor profile or a container's seccomp filter may each
/// be what refuses), or forced by [`FORCE_NO_USERNS`]. `probe` false: only
/// the forcing is looked at.
fn userns_refused(probe: bool) -> Option<String> {
    if std::env::var_os(FORCE_NO_USERNS).is_some_and(|v| v == "1") {
        return Some(format!("{FORCE_NO_USERNS}=1, a test setting"));
    }
    if !probe {
        return None;
    }
    try_userns().err().map(|errno| {
        format!(
            "{}: {}",
            std::io::Error::from_raw_os_error(errno),
            userns_hint(Some(errno))
        )
    })
}

/// Creates a user namespace in a child that exits at once: `Err(errno)`
/// when the kernel refuses. Call only while single-threaded.
pub fn try_userns() -> Result<(), i32> {
    // SAFETY: callers have started no thread; the child only exits.
    match unsafe { sys::clone_process(libc::CLONE_NEWUSER) } {
        Ok(None) => sys::exit_now(0),
        Ok(Some(pid)) => {
            let _ = waitpid(Pid::from_raw(pid), None);
            Ok(())
        }
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EPERM)),
    }
}

/// The graded plan a run of `plan` would take here: the policy allows it
/// and user namespaces are refused. Call only while single-threaded (it
/// tries one).
pub fn graded_here(plan: &Plan) -> Option<&crate::plan::graded::GradedPlan> {
    match &plan.graded {
        Some(crate::plan::graded::Graded::Ready(g)) if userns_refused(true).is_some() => Some(g),
        _ => None,
    }
}

fn run_cage(
    plan: &Plan,
    session: Option<&Session>,
    place: crate::cgroup::Place,
    vault: Option<Arc<Vault>>,
    started: &dyn Fn(),
    lines: &mut Vec<String>,
) -> Result<i32, SupervisorError> {
    use crate::plan::graded::Graded;
    // Probed only where the graded mode is allowed; elsewhere clone's own
    // failure says why.
    if let Some(why) = userns_refused(plan.graded.is_some()) {
        return match &plan.graded {
            Some(Graded::Ready(g)) => {
                run_graded(plan, g, &why, session, place, vault, started, lines)
            }
            Some(Graded::Refused {
                why: refused,
                source,
            }) => Err(SupervisorError::GradedRefused {
                why,
                refused: refused.clone(),
                rule: source.to_string(),
            }),
            None => Err(SupervisorError::NoUserns { why }),
        };
    }
    // 1.
    let filters = seccomp::build_filters(&plan.seccomp).map_err(SupervisorError::Seccomp)?;
    // 2b. While cage is single-threaded: a cgroup moves whole processes.
    let cgroup = make_cgroup(plan, place)?;
    let result = run_in(
        plan,
        session,
        filters,
        cgroup.as_ref(),
        vault,
        Mode::Namespaces,
        None,
        started,
        lines,
    );
    if let Some(cg) = cgroup {
        lines.extend(finish_cgroup(cg, session));
    }
    result
}

/// The graded proxy mode's listeners, bound by the supervisor on the
/// host's loopback (there is no cage loopback to bind them in), served
/// only for the clients the guard's connect handler makes (`peers`).
struct HostProxy {
    listeners: crate::sandbox::protocol::Listeners,
    addr: std::net::SocketAddrV4,
    peers: Arc<proxy::Peers>,
}

impl HostProxy {
    /// Ephemeral ports on 127.0.0.1: the proxy's, and the DNS stub's that
    /// `Proxy::start` serves too (the agent can reach neither DNS socket:
    /// it cannot send UDP, and connect reaches only the proxy's).
    fn bind() -> std::io::Result<HostProxy> {
        use std::net::{SocketAddr, TcpListener, UdpSocket};
        let loopback = (std::net::Ipv4Addr::LOCALHOST, 0);
        let proxy = TcpListener::bind(loopback)?;
        let SocketAddr::V4(addr) = proxy.local_addr()? else {
            return Err(std::io::ErrorKind::AddrNotAvailable.into());
        };
        Ok(HostProxy {
            listeners: crate::sandbox::protocol::Listeners {
                proxy: proxy.into(),
                dns_udp: UdpSocket::bind(loopback)?.into(),
                dns_tcp: TcpListener::bind(loopback)?.into(),
                forwards: Vec::new(),
            },
            addr,
            peers: Arc::default(),
        })
    }
}

/// The graded mode: the plan's graded Landlock, seccomp and environment,
/// no namespaces. Refuses without Landlock; says what is not isolated,
/// on stderr and in the record, before the agent starts. In proxy mode
/// the proxy's listener is bound first, so the environment names it.
#[allow(clippy::too_many_arguments)]
fn run_graded(
    plan: &Plan,
    g: &crate::plan::graded::GradedPlan,
    why: &str,
    session: Option<&Session>,
    place: crate::cgroup::Place,
    vault: Option<Arc<Vault>>,
    started: &dyn Fn(),
    lines: &mut Vec<String>,
) -> Result<i32, SupervisorError> {
    use std::os::unix::fs::DirBuilderExt;
    let abi = sandbox::landlock::kernel_abi();
    if abi <= 0 {
        return Err(SupervisorError::GradedNoLandlock { why: why.into() });
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&g.tmp)
        .map_err(|source| SupervisorError::GradedTmp {
            path: g.tmp.clone(),
            source,
        })?;
    term::emit(&term::escape_text(&crate::plan::graded::statement(
        g, abi, why,
    )));
    // Written right after the start record (`read_setup`), which stays
    // the log's first line.
    let record = audit::GradedRun {
        reason: why.to_string(),
        allowed_by: g.source.to_string(),
        not_isolated: g.not_isolated.clone(),
    };
    // Before the fork: its port goes in the agent's environment.
    let host_proxy = (plan.network.mode == crate::policy::NetMode::Proxy)
        .then(HostProxy::bind)
        .transpose()
        .map_err(SupervisorError::GradedProxy)?;
    let mut env = g.env.clone();
    if let (Some(hp), Some(p)) = (&host_proxy, &plan.network.proxy) {
        let (planned, real) = (
            format!("http://{}", p.listen),
            format!("http://{}", hp.addr),
        );
        for v in env.iter_mut().filter(|v| v.value == planned) {
            v.value.clone_from(&real);
        }
    }
    let caged = Plan {
        landlock: g.landlock.clone(),
        seccomp: g.seccomp.clone(),
        env,
        guard: g.guard.clone(),
        ..plan.clone()
    };
    let filters = seccomp::build_filters(&caged.seccomp).map_err(SupervisorError::Seccomp)?;
    let cgroup = make_cgroup(&caged, place)?;
    // The guard's backstop: what it keeps, recorded before the agent runs.
    let existing: Vec<PathBuf> = g.guard.existing.iter().map(|e| e.value.clone()).collect();
    let originals =
        session.map(|s| crate::session::originals::Originals::record(&existing, &s.dir));
    let result = run_in(
        &caged,
        session,
        filters,
        cgroup.as_ref(),
        vault,
        Mode::Graded(&record),
        host_proxy,
        started,
        lines,
    );
    if let Some(cg) = cgroup {
        lines.extend(finish_cgroup(cg, session));
    }
    // After the cgroup's end, which kills what the session left running
    // (where there is one: else `originals` says so).
    if let (Some(o), Some(s)) = (originals, session) {
        lines.extend(o.finish(s));
    }
    // The agent's scratch files go with the session; links in it are
    // removed, never followed.
    let _ = std::fs::remove_dir_all(&g.tmp);
    result
}

// Both modes' one sequence; each argument is one thing a mode brings,
// and `host_proxy` is moved into the proxy, so it cannot ride in `Mode`.
#[allow(clippy::too_many_arguments)]
fn run_in(
    plan: &Plan,
    session: Option<&Session>,
    filters: Vec<seccompiler::BpfProgram>,
    cgroup: Option<&crate::cgroup::SessionCgroup>,
    vault: Option<Arc<Vault>>,
    mode: Mode,
    host_proxy: Option<HostProxy>,
    started: &dyn Fn(),
    lines: &mut Vec<String>,
) -> Result<i32, SupervisorError> {
    // Execs are watched where a session log can record them; connects
    // where the supervisor makes them (the graded proxy mode).
    let watch = crate::sandbox::guard::Watch {
        creations: plan.guard.active(),
        execs: session.is_some(),
        writes: !plan.guard.existing.is_empty(),
        connect: host_proxy.is_some(),
    };
    let guard_program = watch
        .any()
        .then(|| crate::sandbox::guard::build_program(watch));
    let exec = init::Exec::of(plan).map_err(SupervisorError::Nul)?;
    let (ours, theirs) = Channel::pair().map_err(SupervisorError::Channel)?;

    // 2. Blocked before clone, so no signal falls between clone and the
    //    signalfd; init inherits the mask and reads its own signalfd.
    let mask = sandbox::watched_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(SupervisorError::Signals)?;

    // 3. The graded mode forks, with no namespace.
    let flags = match mode {
        Mode::Namespaces => sandbox::clone_flags(plan),
        Mode::Graded(_) => 0,
    };
    // SAFETY: the supervisor has started no thread; cage is
    // single-threaded up to here.
    let child = match unsafe { sys::clone_process(flags) } {
        Ok(None) => {
            drop(ours);
            let (exec, guard) = (exec.as_ref(), guard_program.as_deref());
            match mode {
                Mode::Namespaces => init::run(plan, theirs, exec, &filters, guard),
                Mode::Graded(_) => init::graded_agent(plan, theirs, exec, &filters, guard),
            }
        }
        Ok(Some(pid)) => Pid::from_raw(pid),
        Err(errno) => {
            return Err(SupervisorError::Clone {
                hint: userns_hint(errno.raw_os_error()),
                errno,
            });
        }
    };
    drop(theirs);

    // 4. Init joins the agent's cgroup before it runs anything.
    if let Some(Err(source)) = cgroup.map(|cg| cg.enter(child.as_raw())) {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        return Err(SupervisorError::Cgroup {
            rule: plan
                .limits
                .required
                .as_ref()
                .map_or_else(|| "the policy".to_string(), |r| r.to_string()),
            source,
        });
    }
    if let Err(e) = write_id_maps(child, plan, mode) {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        return Err(e);
    }
    let sfd =
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(SupervisorError::Signals)?;
    // If init already died, the send fails and the wait below reports it.
    let _ = ours.go();

    // 5. Threads may start from here on (the caller's too: `started`).
    started();
    let (proxy, control, guard, failure) =
        match read_setup(&ours, plan, watch, session, vault, mode, host_proxy) {
            Ok(x) => x,
            Err(e) => {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(e);
            }
        };

    // 6.
    let status = wait_forwarding(child, &sfd, mode)?;
    if mode.graded() {
        // No pid namespace ends the rest with the agent: its process group
        // (its own session's) goes with it.
        let _ = kill(Pid::from_raw(-child.as_raw()), Signal::SIGKILL);
    }

    // 7. A report explains a cage failure; without one, the status is the
    //    agent's.
    lines.extend(stop_helpers(proxy, control, guard));
    match failure {
        Some(report) => Err(failure_error(plan, report)),
        None => Ok(status),
    }
}

/// Step 6: waits for init, passing on the signals sent to us.
fn wait_forwarding(child: Pid, sfd: &SignalFd, mode: Mode) -> Result<i32, SupervisorError> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SupervisorError::Wait(e)),
        }
        if let Ok(Some(info)) = sfd.read_signal()
            && (info.ssi_code <= 0 || mode.graded())
            && let Ok(sig) = Signal::try_from(info.ssi_signo as i32)
            && sig != Signal::SIGCHLD
        {
            // Sent to us with kill(2): pass it on. Terminal signals
            // (SI_KERNEL) reach the agent directly through the process
            // group, except in the graded mode, where the agent has its own
            // session and gets them from here.
            let _ = kill(child, sig);
        }
    }
}

/// Step 7a: the control channel, the proxy (its open connections get
/// `DRAIN` to write their end records) and the guard stop; the guard's
/// tally is the line returned.
fn stop_helpers(
    proxy: Option<Proxy>,
    control: Option<crate::control::Control>,
    guard: Option<Guard>,
) -> Option<String> {
    if let Some(control) = control {
        control.finish();
    }
    if let Some(proxy) = &proxy {
        proxy.drain(DRAIN);
    }
    let refused = guard.map_or(0, Guard::finish);
    (refused > 0).then(|| {
        format!(
            "cage: the guard refused {refused} attempt(s) to create or change protected paths \
             (`cage log` lists them)"
        )
    })
}

/// Step 7b: the cage's failure report as the run's error, with the hints
/// that fit its step.
fn failure_error(plan: &Plan, report: Report) -> SupervisorError {
    match report {
        Report::Failed {
            step,
            mut message,
            errno,
            code,
        } => {
            if errno == Some(libc::EPERM) {
                message.push_str(&userns_hint_suffix());
            }
            if step == crate::sandbox::protocol::Step::WorkspaceOverlay
                && let Some(hint) = crate::session::preflight::lower_hint(&plan.workspace.path)
            {
                message.push_str(&hint);
            }
            SupervisorError::Setup { message, code }
        }
        Report::NotFound { program } => SupervisorError::NotFound { program },
        Report::ExecFailed {
            program,
            errno,
            code,
        } => SupervisorError::Exec {
            program,
            code,
            errno: std::io::Error::from_raw_os_error(errno),
        },
        Report::Listening | Report::Guarding | Report::Enforced { .. } => SupervisorError::Setup {
            message: "unexpected message from the cage".to_string(),
            code: EXIT_CAGE,
        },
    }
}

/// What the cage's setup messages leave running, and its failure report.
type Setup = (
    Option<Proxy>,
    Option<crate::control::Control>,
    Option<Guard>,
    Option<Report>,
);

/// Step 5: the cage's messages until its end of the channel closes (the
/// agent exec'd, or the cage failed). Returns the running proxy, if any,
/// and the first failure report. The graded proxy mode's proxy starts
/// first: the supervisor bound it, and the guard connects to it.
fn read_setup(
    channel: &Channel,
    plan: &Plan,
    watch: crate::sandbox::guard::Watch,
    session: Option<&Session>,
    vault: Option<Arc<Vault>>,
    mode: Mode,
    host_proxy: Option<HostProxy>,
) -> Result<Setup, SupervisorError> {
    let mut proxy = None;
    let mut control = None;
    let mut guard = None;
    let mut failure = None;
    let mut started = false;
    let mut connects = None;
    if let (Some(hp), Some(session)) = (host_proxy, session) {
        let config = proxy::Config {
            peers: Some(hp.peers.clone()),
            ..proxy::Config::default()
        };
        let (running, c) = start_proxy(plan, session, hp.listeners, config, vault.clone())?;
        connects = Some(crate::guard::connect::Connects {
            addr: hp.addr,
            peers: hp.peers,
            proxy: running.clone(),
        });
        (proxy, control) = (Some(running), c);
    }
    // EOF, or a broken channel: either way the cage is done talking.
    while let Ok(Some(msg)) = channel.recv() {
        match msg {
            Incoming::Listeners(listeners) => {
                let Some(session) = session else { continue };
                let (running, c) = start_proxy(
                    plan,
                    session,
                    listeners,
                    proxy::Config::default(),
                    vault.clone(),
                )?;
                (proxy, control) = (Some(running), c);
            }
            Incoming::Guard(listener) => {
                let log = session.map(|s| s.log.clone());
                guard = Some(
                    Guard::start(listener, plan.guard.clone(), watch, log, connects.take())
                        .map_err(SupervisorError::Guard)?,
                );
            }
            Incoming::Report(Report::Enforced {
                landlock,
                seccomp_filters,
                capabilities_cleared,
                no_new_privs,
            }) => {
                if let Some(session) = session {
                    let enforcement = audit::Enforcement {
                        namespaces: match mode {
                            Mode::Namespaces => namespaces(plan),
                            Mode::Graded(_) => Vec::new(),
                        },
                        landlock,
                        seccomp_filters,
                        seccomp_denied_calls: plan.seccomp.deny.len(),
                        nested_userns: plan.seccomp.nested_userns.as_ref().map(|p| p.to_string()),
                        foreign_abi_killed: plan.seccomp.kill_foreign_abi && seccomp_filters > 0,
                        capabilities_dropped: capabilities_cleared,
                        no_new_privs,
                    };
                    let _ = session.started(Some(enforcement));
                    write_graded(session, mode);
                }
                started = true;
            }
            Incoming::Report(r) => {
                failure.get_or_insert(r);
            }
        }
    }
    // Without an Enforced report the start record says nothing was
    // enforced; Session::started writes it once either way.
    if !started && let Some(session) = session {
        let _ = session.started(None);
        write_graded(session, mode);
    }
    if watch.any() && guard.is_none() && started {
        // The agent reported its enforcement without handing over the
        // guard: it cannot happen, but if it did, nothing would answer.
        return Err(SupervisorError::Setup {
            message: "the cage did not hand over the guard's listener".into(),
            code: EXIT_CAGE,
        });
    }
    Ok((proxy, control, guard, failure))
}

/// The proxy on `listeners`, and the control channel for `cage allow`
/// and `cage deny` from another terminal (a warning without it).
fn start_proxy(
    plan: &Plan,
    session: &Session,
    listeners: crate::sandbox::protocol::Listeners,
    config: proxy::Config,
    vault: Option<Arc<Vault>>,
) -> Result<(Proxy, Option<crate::control::Control>), SupervisorError> {
    // Many tunnels, each a few descriptors: lift the soft limit to the
    // hard one. After clone, so the cage keeps its own.
    raise_nofile_limit();
    let rules = Rules::from_plan(&plan.network);
    let forwards: Vec<std::net::SocketAddr> = plan
        .network
        .proxy
        .iter()
        .flat_map(|p| p.forwards.iter().map(|f| f.addr))
        .collect();
    let running = Proxy::start(
        listeners,
        &forwards,
        rules.clone(),
        session.log.clone(),
        config,
        vault,
    )
    .map_err(SupervisorError::Proxy)?;
    let control = match crate::control::Control::start(
        &session.dir,
        rules,
        running.clone(),
        session.log.clone(),
    ) {
        Ok(c) => Some(c),
        Err(e) => {
            term::emit(&format!(
                "cage: warning: no control channel for `cage allow` in {}: {e}",
                term::escape_path(&session.dir)
            ));
            None
        }
    };
    Ok((running, control))
}

/// The graded mode's record, when this run is one.
fn write_graded(session: &Session, mode: Mode) {
    if let Mode::Graded(g) = mode {
        let _ = session.log.write(audit::Record::Graded(g.clone()));
    }
}

/// The namespaces the cage was cloned into, by their /proc/PID/ns names.
fn namespaces(plan: &Plan) -> Vec<String> {
    let flags = sandbox::clone_flags(plan);
    [
        (libc::CLONE_NEWUSER, "user"),
        (libc::CLONE_NEWNS, "mnt"),
        (libc::CLONE_NEWPID, "pid"),
        (libc::CLONE_NEWNET, "net"),
        (libc::CLONE_NEWIPC, "ipc"),
        (libc::CLONE_NEWUTS, "uts"),
        (libc::CLONE_NEWCGROUP, "cgroup"),
    ]
    .into_iter()
    .filter(|(f, _)| flags & f != 0)
    .map(|(_, name)| name.to_string())
    .collect()
}

fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Identity maps: the agent keeps the user's uid and gid. setgroups is
/// denied first, as the kernel requires for an unprivileged gid map, and so
/// the cage cannot drop supplementary groups to dodge a deny ACL.
fn write_id_maps(child: Pid, plan: &Plan, mode: Mode) -> Result<(), SupervisorError> {
    if mode.graded() {
        return Ok(());
    }
    let dir = PathBuf::from(format!("/proc/{child}"));
    for (file, content) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("{0} {0} 1\n", plan.uid)),
        ("gid_map", format!("{0} {0} 1\n", plan.gid)),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, content).map_err(|errno| SupervisorError::IdMap {
            hint: if errno.raw_os_error() == Some(libc::EPERM) {
                userns_hint_suffix()
            } else {
                String::new()
            },
            path,
            errno,
        })?;
    }
    Ok(())
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Why unprivileged user namespaces may be unavailable here, and the fix,
/// from what the kernel said (`errno` of clone or unshare, when known) and
/// what can be read: the sysctls, AppArmor's restriction, and the AppArmor
/// profile cage runs under.
pub fn userns_hint(errno: Option<i32>) -> String {
    if read_sysctl("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "user namespaces are disabled (user.max_user_namespaces = 0); enable them with \
                `sudo sysctl -w user.max_user_namespaces=15000`"
            .to_string();
    }
    if read_sysctl("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0); \
                enable them with `sudo sysctl -w kernel.unprivileged_userns_clone=1`"
            .to_string();
    }
    if read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
    {
        return "AppArmor restricts unprivileged user namespaces \
                (kernel.apparmor_restrict_unprivileged_userns = 1); install the AppArmor profile \
                for cage (`cage doctor` prints the commands), or run \
                `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
            .to_string();
    }
    // AppArmor answers EACCES when a profile denies `userns`.
    if errno == Some(libc::EACCES)
        && let Some(label) = apparmor_label().filter(|l| l != "unconfined")
    {
        return format!(
            "AppArmor denies user namespaces to cage: it runs under the AppArmor profile \
             `{label}`, which does not allow `userns`. Run cage outside that profile, or allow \
             `userns,` in it (AppArmor 4)"
        );
    }
    if errno == Some(libc::ENOSPC) {
        return "the limit on user namespaces is reached (user.max_user_namespaces, or \
                max_user_namespaces of a parent namespace); raise it with \
                `sudo sysctl -w user.max_user_namespaces=15000`"
            .to_string();
    }
    "the kernel refused to create user namespaces (are you inside a container that forbids them?)"
        .to_string()
}

/// The AppArmor label of this process (`unconfined`, or a profile name
/// and its mode), when AppArmor is active.
pub fn apparmor_label() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/self/attr/apparmor/current")
        .or_else(|_| std::fs::read_to_string("/proc/self/attr/current"))
        .ok()?;
    let label = raw.trim_end_matches(['\n', '\0']).trim();
    (!label.is_empty()).then(|| label.to_string())
}

fn userns_hint_suffix() -> String {
    if read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
    {
        format!(" ({})", userns_hint(None))
    } else {
        String::new()
    }
}
