//! The graded mode: what cage does when user namespaces cannot be created
//! and the user allowed running without them (`--allow-degraded
//! namespaces`). Pure: derived from the normal plan, so both modes grant
//! the same paths, and decided here, not in the sandbox.
//!
//! Without namespaces there is no mount view, so:
//! 1. Landlock rules go on the host paths the view would bind (same path
//!    inside and outside), read or write as bound; cage's own tmpfs
//!    mounts (the empty home, /tmp, /dev/shm) have no host path and are
//!    denied; a private per-session directory stands in for /tmp (TMPDIR).
//! 2. Landlock cannot take a path back out of a granted tree: a hide
//!    inside a grant (a secret in `~/.claude`) refuses the mode, except the
//!    unix sockets the view hides, which point 3 covers, and the keyring
//!    listings in /proc, which say only names.
//! 3. No network namespace, so no private loopback: the agent shares the
//!    host's. With `--net none`, seccomp refuses socket(2) for every family
//!    (no TCP, UDP, raw, netlink or packet socket, and no AF_UNIX socket
//!    that could connect to a path socket such as the systemd user
//!    manager's bus, ssh-agent or docker.sock); socketpair(2) stays,
//!    AF_UNIX only. With `--net proxy`, seccomp lets socket(2) make only
//!    plain TCP sockets (AF_INET or AF_INET6, SOCK_STREAM, protocol 0 or
//!    IPPROTO_TCP: no SCTP or MPTCP); the guard's program refuses bind(2),
//!    listen(2) and TCP fast open (MSG_FASTOPEN connects without
//!    connect(2)), and the guard answers every connect(2) itself
//!    (`guard::connect`): only the
//!    proxy's listener, which the supervisor binds on the host's loopback
//!    at run time, can be connected to, by the supervisor on the agent's
//!    behalf. Direct DNS is refused (no UDP); programs that use the proxy
//!    let it resolve names. Landlock ABI ≥ 4 denies every TCP bind and
//!    connect the agent makes itself, in both modes.
//! 4. What needs a mount namespace refuses the mode: an overlay workspace,
//!    agent state directories (overlays), the proxy's secrets (the CA
//!    bundle that lets the cage trust the proxy lives in the view).
//! 5. A writable workspace needs the guard: Landlock cannot keep
//!    `.git/hooks` read-only inside it, so creating protected names is
//!    refused live by the guard and the end-of-session rescan is the
//!    backstop.
//! 6. What the view binds read-only inside a writable tree and exists at
//!    the start (`.git/config`, `.git/hooks`, `.envrc`, a `--ro` grant
//!    inside the workspace) is the guard's too: [`GuardPlan::existing`]
//!    (`super::GuardPlan`), at most [`MAX_EXISTING`] entries, else the
//!    mode is refused. The guard refuses writing, truncating, chmod,
//!    linking, moving and removing them; a change that wins the race
//!    against it is put back at the end (`session::originals`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    ArgMatch, EnvVar, Errno, LandlockPlan, Mount, PathRule, Plan, SeccompPlan, SyscallRule,
};
use crate::policy::{NetMode, Provenance, Sourced, WorkspaceMode};

/// Most read-only paths inside writable trees the graded guard keeps
/// (point 6): each is one more prefix checked on every write the agent
/// opens, and one more tree the session's end compares.
pub const MAX_EXISTING: usize = 4096;

/// The graded mode of a plan, when the policy allows it.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Graded {
    /// What runs when user namespaces are unavailable.
    Ready(Box<GradedPlan>),
    /// The plan needs something only namespaces give: cage refuses to run
    /// without them, for this reason.
    Refused { why: String, source: Provenance },
}

#[derive(Clone, Debug, Serialize)]
pub struct GradedPlan {
    /// The rule that allowed it.
    pub source: Provenance,
    /// Rules on host paths.
    pub landlock: LandlockPlan,
    pub seccomp: SeccompPlan,
    /// The agent's environment: the plan's, with TMPDIR.
    pub env: Vec<EnvVar>,
    /// The private directory TMPDIR names, made 0700 before the run.
    pub tmp: PathBuf,
    /// The plan's guard, less the paths that hold `tmp` (cage's state
    /// directory): Landlock grants only `tmp` in them.
    pub guard: super::GuardPlan,
    /// What is not isolated, for the one line on stderr and the record.
    pub not_isolated: Vec<String>,
}

/// The graded mode of `plan`; `session_dir` holds the private tmp.
pub fn build(plan: &Plan, source: &Provenance, session_dir: &Path) -> Graded {
    match build_ready(plan, source, session_dir) {
        Ok(g) => Graded::Ready(Box::new(g)),
        Err(why) => Graded::Refused {
            why,
            source: source.clone(),
        },
    }
}

fn build_ready(plan: &Plan, source: &Provenance, session_dir: &Path) -> Result<GradedPlan, String> {
    refusals(plan)?;
    let tmp = session_dir.join("tmp");
    let landlock = build_landlock(plan, &tmp)?;
    let mut env: Vec<EnvVar> = plan
        .env
        .iter()
        .filter(|v| v.name != "TMPDIR")
        .filter(|v| !loopback_skips_proxy(plan, v))
        .cloned()
        .collect();
    env.push(EnvVar {
        name: "TMPDIR".into(),
        value: tmp.display().to_string(),
        source: Provenance::Default {
            what: "graded mode: a private tmp directory instead of /tmp",
        },
    });
    env.sort_by(|a, b| a.name.cmp(&b.name));
    let mut guard = plan.guard.clone();
    guard.paths.retain(|p| !tmp.starts_with(&p.value));
    guard.missing.retain(|p| !tmp.starts_with(p));
    guard.existing = existing(plan, &guard.roots)?;
    Ok(GradedPlan {
        source: source.clone(),
        landlock,
        seccomp: build_seccomp(&plan.seccomp, plan.network.mode),
        env,
        guard,
        tmp,
        not_isolated: not_isolated(plan),
    })
}

/// The proxy mode's NO_PROXY, which keeps the cage's private loopback
/// local: in the graded mode the loopback is the host's, reachable only
/// through the proxy (which admits only what an allow rule names), so the
/// variable goes. A value the policy set stays.
fn loopback_skips_proxy(plan: &Plan, v: &EnvVar) -> bool {
    plan.network.mode == NetMode::Proxy
        && v.name.eq_ignore_ascii_case("NO_PROXY")
        && matches!(v.source, Provenance::Default { what } if what.starts_with("proxy mode"))
}

/// Step 4 and 5, and the network: what only namespaces can do.
fn refusals(plan: &Plan) -> Result<(), String> {
    if plan.network.mode == NetMode::Host {
        return Err(format!(
            "--net host ({}) is not supported in the graded mode; use --net proxy or --net none",
            plan.network.source
        ));
    }
    if plan.workspace.mode == WorkspaceMode::Overlay {
        return Err(format!(
            "the overlay workspace mode ({}) needs a mount namespace; use --workspace direct \
             or --workspace readonly",
            plan.workspace.source
        ));
    }
    if let Some(s) = plan.state.first() {
        return Err(format!(
            "the agent state directory {} ({}) is an overlay, which needs a mount namespace",
            s.dir.display(),
            s.source
        ));
    }
    if plan.secrets.is_some() {
        return Err(
            "secrets need the CA bundle that lets the cage trust cage's proxy, which lives in \
             the mount view"
                .into(),
        );
    }
    if plan.workspace.mode == WorkspaceMode::Direct && !plan.guard.active() {
        return Err(
            "a writable workspace needs the guard in the graded mode (Landlock cannot keep its \
             protected paths read-only), and the plan has no guard roots"
                .into(),
        );
    }
    Ok(())
}

/// Hides that the graded mode may drop: point 2 of the module doc.
fn hide_may_go(source: &Provenance) -> bool {
    matches!(
        source,
        Provenance::Default {
            what: "unix sockets in granted trees are hidden" | "kernel keyring listings"
        }
    )
}

/// Step 1 and 2: the view's host binds as Landlock rules on host paths.
fn build_landlock(plan: &Plan, tmp: &Path) -> Result<LandlockPlan, String> {
    let rule = |path: &Path, source: &Provenance| PathRule {
        path: path.to_path_buf(),
        source: source.clone(),
    };
    let (mut read, mut write) = (Vec::new(), Vec::new());
    for m in &plan.mounts {
        match m {
            Mount::Bind {
                src,
                access,
                source,
                ..
            } => match access {
                super::Access::ReadOnly => read.push(rule(src, source)),
                super::Access::ReadWrite => write.push(rule(src, source)),
            },
            // The host file itself, read-only: its private copy needs a
            // mount.
            Mount::Copy { src, source, .. } => read.push(rule(src, source)),
            Mount::Proc { dst } => read.push(rule(
                dst,
                &Provenance::Default {
                    what: "graded mode: the host's procfs",
                },
            )),
            Mount::Hide { dst, source, .. } => {
                if !hide_may_go(source) {
                    return Err(format!(
                        "{} is hidden inside a granted tree ({source}), and Landlock cannot \
                         hide a path inside a granted directory",
                        dst.display()
                    ));
                }
            }
            Mount::Overlay { .. } => {
                return Err("the workspace overlay needs a mount namespace".into());
            }
            // cage's own tmpfs and files: no host path to grant.
            Mount::Dir { .. }
            | Mount::Tmpfs { .. }
            | Mount::Pin { .. }
            | Mount::Dev { .. }
            | Mount::Symlink { .. }
            | Mount::File { .. } => {}
        }
    }
    write.push(rule(
        tmp,
        &Provenance::Default {
            what: "graded mode: a private tmp directory instead of /tmp",
        },
    ));
    Ok(LandlockPlan {
        requirement: plan.landlock.requirement.clone(),
        // The normal mode lists the view's root; the host's root would
        // list every directory beneath it (Landlock rights are inherited).
        list: Vec::new(),
        read,
        write,
        // The same device nodes, the host's, but for the terminals: the
        // host's /dev/pts holds the user's other terminals (writable by the
        // same uid), where the normal mode has a private devpts. /dev
        // itself is not listed.
        devices: plan
            .landlock
            .devices
            .iter()
            .filter(|d| d.path.starts_with("/dev"))
            .filter(|d| !d.path.starts_with("/dev/pts") && d.path != Path::new("/dev/ptmx"))
            .cloned()
            .collect(),
        scope_abstract_sockets: true,
        scope_signals: true,
        deny_tcp: true,
    })
}

/// Point 6: what the view keeps read-only strictly inside a writable
/// tree (`roots`, the guard's), as it exists at the start; more than
/// [`MAX_EXISTING`] refuses the mode (fail closed: an entry left out
/// would be writable).
fn existing(plan: &Plan, roots: &[PathBuf]) -> Result<Vec<Sourced<PathBuf>>, String> {
    let mut out: Vec<Sourced<PathBuf>> = plan
        .mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Bind {
                src,
                access: super::Access::ReadOnly,
                source,
                ..
            }
            | Mount::Copy { src, source, .. } => Some((src, source)),
            _ => None,
        })
        .filter(|(src, _)| roots.iter().any(|r| src.starts_with(r) && *src != r))
        .filter(|(src, _)| src.symlink_metadata().is_ok())
        .map(|(src, source)| Sourced::new(src.clone(), source.clone()))
        .collect();
    out.sort_by(|a, b| a.value.cmp(&b.value));
    out.dedup_by(|a, b| a.value == b.value);
    if out.len() > MAX_EXISTING {
        return Err(format!(
            "the writable trees hold {} read-only paths (protected files, read-only grants), and \
             the graded mode's guard keeps at most {MAX_EXISTING}",
            out.len()
        ));
    }
    Ok(out)
}

/// Step 3: the plan's deny list, with socket(2) refused for every family
/// (`--net none`) or limited to plain TCP (`--net proxy`), and
/// socketpair(2) for all but AF_UNIX.
fn build_seccomp(normal: &SeccompPlan, mode: NetMode) -> SeccompPlan {
    let mut deny: Vec<SyscallRule> = normal
        .deny
        .iter()
        .filter(|r| r.name != "socket" && r.name != "socketpair")
        .cloned()
        .collect();
    let rule = |name: &str, when: ArgMatch, what: &'static str| SyscallRule {
        name: name.into(),
        errno: Errno::EPERM,
        when,
        source: Provenance::Default { what },
    };
    if mode == NetMode::Proxy {
        deny_all_but_tcp(&mut deny, rule);
    } else {
        deny.push(rule(
            "socket",
            ArgMatch::Always,
            "graded mode: no sockets, socketpair(AF_UNIX) only",
        ));
    }
    deny.push(rule(
        "socketpair",
        ArgMatch::NotIn32 {
            arg: 0,
            values: vec![libc::AF_UNIX as u32],
        },
        "graded mode: socketpair(AF_UNIX) only",
    ));
    SeccompPlan {
        deny,
        ..normal.clone()
    }
}

/// `--net proxy`: socket(2) makes only plain TCP sockets, each part of the
/// triple checked by its own rule (a call matching any rule is denied).
/// bind(2), listen(2) and TCP fast open (sendto, sendmsg, sendmmsg with
/// MSG_FASTOPEN, which connects without the connect(2) the guard answers)
/// are refused by the guard's program (`sandbox::guard`, `Watch::connect`),
/// which the supervisor installs with the connect handler.
fn deny_all_but_tcp(
    deny: &mut Vec<SyscallRule>,
    rule: impl Fn(&str, ArgMatch, &'static str) -> SyscallRule,
) {
    const WHAT: &str = "graded proxy mode: plain TCP sockets only, connected by the guard";
    let stream = libc::SOCK_STREAM as u32;
    let (nonblock, cloexec) = (libc::SOCK_NONBLOCK as u32, libc::SOCK_CLOEXEC as u32);
    for (arg, values) in [
        (0, vec![libc::AF_INET as u32, libc::AF_INET6 as u32]),
        (
            1,
            vec![
                stream,
                stream | nonblock,
                stream | cloexec,
                stream | nonblock | cloexec,
            ],
        ),
        (2, vec![0, libc::IPPROTO_TCP as u32]),
    ] {
        deny.push(rule("socket", ArgMatch::NotIn32 { arg, values }, WHAT));
    }
}

/// What the graded mode leaves shared with the host, in the words of the
/// one line printed on every run.
fn not_isolated(plan: &Plan) -> Vec<String> {
    let mut out = vec![
        "host processes are visible (no pid namespace; Landlock refuses ptrace and \
         /proc/PID/mem|environ of processes outside the cage)"
            .to_string(),
        "no mount view (Landlock rules on the host's paths instead)".to_string(),
        "no private /tmp (TMPDIR is a private directory; /tmp itself is denied)".to_string(),
        "hostname, System V and POSIX IPC and the cgroup tree are the host's".to_string(),
        "/proc/keys and /proc/key-users are readable".to_string(),
        "directories above the grants cannot be listed (no `ls /`)".to_string(),
        "no new pseudo-terminals (the host's /dev/pts holds the user's other terminals)"
            .to_string(),
        "processes the agent starts outlive cage if killed with it, unless a cgroup holds \
         them"
            .to_string(),
    ];
    if plan.network.mode == NetMode::Proxy {
        out.push(
            "the host's loopback is shared: its services are reachable through the proxy only, \
             as any host is, by allow rule; no direct DNS (the proxy resolves names)"
                .to_string(),
        );
    }
    if plan.workspace.mode == WorkspaceMode::Direct {
        out.push(
            "protected files in the workspace (.git/config, .envrc, ...) are kept by the guard, \
             not a read-only view: a change that races it, or sets their times or extended \
             attributes, lasts until the session ends, when cage puts the original back"
                .to_string(),
        );
    }
    out
}

/// The line printed on every graded run: `abi` is the kernel's Landlock
/// ABI, which decides what the scopes cover.
pub fn statement(g: &GradedPlan, abi: i32, why: &str) -> String {
    let mut lost = g.not_isolated.clone();
    if abi < 6 {
        lost.push(format!(
            "signals and abstract unix sockets reach host processes (Landlock ABI {abi} < 6)"
        ));
    }
    if abi < 4 {
        lost.push(format!(
            "TCP is refused by seccomp and the guard only (Landlock ABI {abi} < 4)"
        ));
    }
    format!(
        "cage: warning: graded mode ({why}; allowed by {}): not isolated: {}",
        g.source,
        lost.join("; ")
    )
}
