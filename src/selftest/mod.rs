//! `cage selftest`: proof, on the user's own host, that the walls hold.
//!
//! It builds the plan a run in the working directory would get (the same
//! loading: profiles, user config, project policy, flags), but against a
//! throwaway host: a copy of the workspace's *shape* (directories and empty
//! files, a minimal git directory, the project's `.cage.toml`) and an empty
//! temporary home, both under the temporary directory, so no real file and
//! no real secret is ever inside. There it plants its own decoys, runs the
//! cage binary as `cage __probe SPEC` (main.rs) as the caged command (the
//! command resolution grants the binary read-only, as it would any
//! command), and compares what the probe saw with what the plan promised.
//!
//! What it must not do: touch the real workspace or home, leave a file or
//! a session behind (the throwaway host's state directory is inside the
//! temporary directory too, so the session goes with it), or call
//! anything blocked that got through by another name: a line is EXPOSED
//! whenever the attempt succeeded, and the expected column says when the
//! plan itself allows it (`--net host`).

pub mod probe;
mod shadow;

use std::fmt::Write as _;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::PolicyArgs;
use crate::error::Error;
use crate::host::Host;
use crate::plan::Plan;
use crate::policy::{self, NetMode, Policy, ProjectMode, WorkspaceMode};

use shadow::Shadow;

/// argv[1] of the probe: `cage __probe SPEC` runs the inside half.
pub const PROBE_ARG: &str = "__probe";

/// Exit status when an attempt got through.
pub const EXIT_EXPOSED: i32 = 1;

/// Every way to write "this host's loopback" that the probe tries.
pub const LOOPBACK_SPELLINGS: &[&str] = &[
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "localhost",
];

/// A name no allow rule can match (`.invalid` is reserved, RFC 2606).
pub const DENIED_HOST: &str = "cage-selftest-denied.invalid";

/// The decoy variable's name; its value holds the run's token.
const DECOY_ENV: &str = "CAGE_SELFTEST_DECOY";

/// What the probe is told: where the decoys are. Nothing secret: the
/// token only marks the decoys as this run's.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    pub token: String,
    pub decoy_key: PathBuf,
    pub decoy_env: String,
    pub tcp_port: u16,
    pub abstract_name: String,
    pub unix_path: PathBuf,
    /// The supervisor's pid on the host (the process running selftest).
    pub supervisor_pid: u32,
    /// Files to create or append to, each with its attempt id.
    pub writes: Vec<(String, PathBuf)>,
    /// Proxy mode: where cage's proxy listens inside.
    pub proxy: Option<std::net::SocketAddrV4>,
}

/// One attempt as the probe saw it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Observed {
    pub id: String,
    /// The attempt got through (read the decoy, connected, the call
    /// reached the kernel, the write landed).
    pub reached: bool,
    /// The errno or the fact behind `reached`.
    pub detail: String,
}

/// One line of the report.
#[derive(Debug, Serialize)]
struct Line {
    /// A stable name for the attempt (`tcp 127.0.0.1`, `hidden-key`).
    id: String,
    what: String,
    /// What the plan promises: blocked (and by which layer) or allowed.
    expected: String,
    expected_blocked: bool,
    observed: String,
    /// "blocked" or "EXPOSED".
    verdict: &'static str,
}

#[derive(Debug, Serialize)]
struct Report {
    workspace: PathBuf,
    network: NetMode,
    workspace_mode: WorkspaceMode,
    /// The run took the graded mode (no user namespaces here).
    graded: bool,
    attempts: Vec<Line>,
    blocked: usize,
    exposed: usize,
    host_listener_connections: usize,
    exit_code: i32,
}

/// Runs the selftest and prints the report; returns the exit status.
pub fn run(args: &PolicyArgs, json: bool, command: Option<&str>) -> Result<i32, Error> {
    let real = Host::current()?;
    let shadow = Shadow::create(&real).map_err(|source| Error::Selftest {
        step: "making the throwaway workspace and home",
        source,
    })?;
    let result = run_in(&real, &shadow, args, json, command);
    // Whatever happened: the decoys, the copy and the session go.
    let removed = shadow.remove();
    let code = result?;
    removed.map_err(|source| Error::Selftest {
        step: "removing the throwaway workspace and home",
        source,
    })?;
    Ok(code)
}

fn run_in(
    real: &Host,
    shadow: &Shadow,
    args: &PolicyArgs,
    json: bool,
    command: Option<&str>,
) -> Result<i32, Error> {
    let fail = |step: &'static str| move |source| Error::Selftest { step, source };
    let exe = std::env::current_exe().map_err(fail("finding cage's own binary"))?;
    let host = shadow.host(real, DECOY_ENV);
    let mut loaded = load(real, &host, shadow, args, command, &exe)?;
    let policy = loaded.policy.clone();

    let listeners = Listeners::open(shadow).map_err(fail("opening the decoy listeners"))?;
    let writes = planned_writes(&host, shadow);
    // The proxy's address is fixed by the plan's mode, not the session.
    let proxy = build_plan(
        &policy,
        &host,
        &[exe.to_string_lossy().into_owned()],
        real,
        shadow,
    )?
    .network
    .proxy
    .map(|p| p.listen);
    let spec = Spec {
        token: shadow.token().to_string(),
        decoy_key: shadow.decoy_key(),
        decoy_env: DECOY_ENV.to_string(),
        tcp_port: listeners.port,
        abstract_name: listeners.abstract_name.clone(),
        unix_path: listeners.unix_path.clone(),
        supervisor_pid: std::process::id(),
        writes,
        proxy,
    };
    let spec_json = serde_json::to_string(&spec).unwrap_or_default();
    let argv = vec![
        exe.to_string_lossy().into_owned(),
        PROBE_ARG.to_string(),
        spec_json,
    ];
    // The plan's promises, read before the run (the run builds its own,
    // for its session, from the same inputs).
    let plan = build_plan(&policy, &host, &argv, real, shadow)?;
    let before = Snapshot::take(&spec.writes);
    // The selftest never moves into a new scope: its decoys would be left
    // behind by the exec.
    let place = crate::session::run::cgroup_place(&loaded.policy, false)?;
    let mode = Mode {
        graded: crate::supervisor::graded_here(&plan),
        cgroup: matches!(place, crate::cgroup::Place::At(_)),
    };

    let (status, output, errors) =
        capture_output(|| crate::session::run::Run::open(&mut loaded, &argv, place)?.run())
            .map_err(fail("capturing the probe's output"))?;
    // Written only if the cage let it through; ours (it holds the token).
    let _ = std::fs::remove_file(tmp_write(&spec.token));
    let observed: Vec<Observed> = output
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    relay_notes(&errors);
    let status = status?;
    if observed.is_empty() {
        // What the cage said is the only clue left.
        for l in String::from_utf8_lossy(&errors).lines() {
            crate::term::emit(&crate::term::escape_text(l));
        }
        return Err(Error::SelftestProbe { status });
    }
    let accepted = listeners.accepted();
    let observed = with_survivors(observed, &spec.token);
    let mut lines = judge(&plan, &policy, &spec, &observed, &before, &mode);
    let missing = add_missing(&mut lines, &spec, &observed);
    let exposed = lines.iter().filter(|l| l.verdict == "EXPOSED").count();
    // A connection the host's listeners saw counts even if the probe
    // missed it.
    let code = if exposed > 0 || accepted > 0 || missing > 0 {
        EXIT_EXPOSED
    } else {
        0
    };
    let report = Report {
        workspace: real.repo_root.clone().unwrap_or_else(|| real.cwd.clone()),
        network: plan.network.mode,
        workspace_mode: plan.workspace.mode,
        graded: mode.graded.is_some(),
        blocked: lines.len() - exposed - missing,
        exposed,
        attempts: lines,
        host_listener_connections: accepted,
        exit_code: code,
    };
    print_report(&report, json, &policy, shadow)?;
    Ok(code)
}

/// The policy as the run loads it, for the shadow host. First as the run
/// would load it and plan it on the real host: what the run refuses (an
/// untrusted project file that widens, a bad line, a shared directory as
/// the workspace) is refused here with the same words and the real paths.
/// Nothing runs; that plan is dropped.
fn load(
    real: &Host,
    host: &Host,
    shadow: &Shadow,
    args: &PolicyArgs,
    command: Option<&str>,
    exe: &Path,
) -> Result<crate::session::run::Loaded, Error> {
    // The command only chooses the profile, as in a run; the probe runs.
    let mut request = crate::session::run::request(args, command);
    let as_run = crate::session::run::Loaded::new(real.clone(), request.clone())?;
    as_run.plan(&[exe.to_string_lossy().into_owned()], None)?;
    // The project's policy as a run would load it: an untrusted file is
    // found by discovery in the copy and may only narrow, as in a run; a
    // trusted one is applied as a named (trusted) file from the copy, so
    // its relative paths land in the copy too.
    if request.project == ProjectMode::Discover
        && let Some(file) = policy::find_project_file(real)
        && policy::is_trusted(&file, real).unwrap_or(false)
        && let Some(copy) = shadow.mirror(&file)
    {
        request.project = ProjectMode::Skip;
        request.policy_files.push(copy);
    }
    crate::session::run::Loaded::new(host.clone(), request)
}

/// The files the probe tries to write or plant, by attempt id.
fn planned_writes(host: &Host, shadow: &Shadow) -> Vec<(String, PathBuf)> {
    let mut writes = vec![
        ("write-home".to_string(), host.home.join(".bashrc")),
        (
            "write-outside".to_string(),
            shadow.root().join("outside-the-workspace"),
        ),
    ];
    // /tmp itself: private in a cage, denied in the graded mode.
    writes.push(("write-tmp".to_string(), tmp_write(shadow.token())));
    let ws = shadow.workspace();
    if ws.join(".git").is_dir() {
        writes.push(("plant-hook".into(), ws.join(".git/hooks/pre-commit")));
        writes.push(("git-config".into(), ws.join(".git/config")));
    }
    writes.push(("plant-envrc".into(), ws.join(".envrc")));
    writes.push(("plant-vscode".into(), ws.join(".vscode/tasks.json")));
    writes
}

/// The file the probe tries to leave in the host's /tmp: named by the
/// run's token, so it is no one else's.
fn tmp_write(token: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/cage-selftest-{token}"))
}

/// How the run is made, beyond its plan.
struct Mode<'a> {
    /// The graded mode's plan, when the run takes it.
    graded: Option<&'a crate::plan::graded::GradedPlan>,
    /// The session gets a cgroup of its own (killed whole at the end).
    cgroup: bool,
}

/// cage's own lines about the session (what the guard refused, a state
/// directory created, an overlay to review) name the throwaway session,
/// which is gone: the report says the same per attempt. Notes and warnings
/// about the plan are the user's, and pass. The stream is shared with the
/// cage, so each line is escaped again.
fn relay_notes(errors: &[u8]) {
    let errors = String::from_utf8_lossy(errors);
    for l in errors.lines() {
        if l.starts_with("cage: note:") || l.starts_with("cage: warning:") {
            crate::term::emit(&crate::term::escape_text(l));
        }
    }
}

/// The probe's detached process, judged from outside: still running on
/// the host is an escape (and is killed, being ours: it carries this
/// run's token).
fn with_survivors(observed: Vec<Observed>, token: &str) -> Vec<Observed> {
    let survivors = survivors(token);
    let observed = observed
        .into_iter()
        .map(|o| match o.id.as_str() {
            "outlive" if !survivors.is_empty() => Observed {
                reached: true,
                detail: format!("still running on the host: pid {survivors:?}"),
                ..o
            },
            "outlive" if o.detail == "left a detached process" => Observed {
                detail: "gone with the cage".into(),
                ..o
            },
            _ => o,
        })
        .collect();
    for pid in &survivors {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    observed
}

/// An attempt the probe did not report proves nothing: it fails the
/// selftest as an escape would. Returns how many.
fn add_missing(lines: &mut Vec<Line>, spec: &Spec, observed: &[Observed]) -> usize {
    let mut missing = 0;
    for id in expected_ids(spec) {
        if !observed.iter().any(|o| o.id == id) {
            missing += 1;
            lines.push(Line {
                what: id.clone(),
                id,
                expected: "-".into(),
                expected_blocked: true,
                observed: "the probe did not report it".into(),
                verdict: "NOT RUN",
            });
        }
    }
    missing
}

/// The report on stdout, as text or JSON; a closed pipe is not an error.
fn print_report(
    report: &Report,
    json: bool,
    policy: &Policy,
    shadow: &Shadow,
) -> Result<(), Error> {
    let text = if json {
        let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
        s.push('\n');
        s
    } else {
        render(report, policy, shadow)
    };
    match crate::term::write_stdout(text.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(Error::Output {
            what: "the selftest report",
            source,
        }),
    }
}

/// Builds the plan; a path a rule requires in the home that the empty
/// home lacks but the real one has gets its shape there (an empty file or
/// directory, never the content), as the workspace's did, and the build is
/// tried again. A path the real home lacks too fails as the run would.
fn build_plan(
    policy: &Policy,
    host: &Host,
    argv: &[String],
    real: &Host,
    shadow: &Shadow,
) -> Result<Plan, Error> {
    let mut tries = 0;
    loop {
        match crate::plan::build(policy, host, argv) {
            Err(crate::plan::BuildError::MissingPath { path, rule }) if tries < 32 => {
                tries += 1;
                let made = path
                    .strip_prefix(&host.home)
                    .ok()
                    .and_then(|rel| shadow.mirror_home(&real.home.join(rel), &path).ok())
                    .unwrap_or(false);
                if !made {
                    // Named as the run would name it.
                    let path = match path.strip_prefix(&host.home) {
                        Ok(rel) => real.home.join(rel),
                        Err(_) => path,
                    };
                    return Err(crate::plan::BuildError::MissingPath { path, rule }.into());
                }
            }
            other => return Ok(other?),
        }
    }
}

/// Runs `f` with stdout and stderr on pipes, and returns its result and
/// what was written on each. The probe's report and cage's end-of-session
/// lines are small (a few KiB, well under a pipe's buffer), so nothing
/// needs to read while `f` runs.
fn capture_output<T>(f: impl FnOnce() -> T) -> std::io::Result<(T, Vec<u8>, Vec<u8>)> {
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    use std::io::Read;
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let saved_out = nix::unistd::dup(std::io::stdout())?;
    fcntl(&saved_out, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    let saved_err = nix::unistd::dup(std::io::stderr())?;
    fcntl(&saved_err, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    nix::unistd::dup2_stdout(&out_w)?;
    if let Err(e) = nix::unistd::dup2_stderr(&err_w) {
        nix::unistd::dup2_stdout(&saved_out)?;
        return Err(e.into());
    }
    drop((out_w, err_w));
    let result = f();
    // Back to the user's descriptors; this closes our copies of the
    // pipes' write ends, and the cage's processes are gone, so reads end.
    nix::unistd::dup2_stdout(&saved_out)?;
    nix::unistd::dup2_stderr(&saved_err)?;
    let read = |fd: std::os::fd::OwnedFd| {
        let mut buf = Vec::new();
        std::fs::File::from(fd)
            .take(1 << 20)
            .read_to_end(&mut buf)
            .map(|_| buf)
    };
    Ok((result, read(out_r)?, read(err_r)?))
}

/// The host side of the decoy services: a TCP port on three loopback
/// addresses, an abstract and a path unix socket. Nothing ever accepts
/// while the cage runs (the kernel completes a connection into the
/// backlog), so after the run the backlog says whether anything arrived.
struct Listeners {
    port: u16,
    tcp: Vec<TcpListener>,
    abstract_name: String,
    unix: Vec<UnixListener>,
    unix_path: PathBuf,
}

impl Listeners {
    fn open(shadow: &Shadow) -> std::io::Result<Listeners> {
        let mut last = None;
        for _ in 0..16 {
            match Self::tcp() {
                Ok((port, tcp)) => {
                    use std::os::linux::net::SocketAddrExt;
                    let abstract_name = format!("cage-selftest-{}", shadow.token());
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(
                        abstract_name.as_bytes(),
                    )?;
                    let unix_path = shadow.workspace().join(".cage-selftest-agent.sock");
                    let unix = vec![
                        UnixListener::bind_addr(&addr)?,
                        UnixListener::bind(&unix_path)?,
                    ];
                    return Ok(Listeners {
                        port,
                        tcp,
                        abstract_name,
                        unix,
                        unix_path,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
    }

    /// 127.0.0.1:P, then 127.1.2.3:P and [::1]:P on the same port (a host
    /// without IPv6 has no [::1] listener, and says nothing of it).
    fn tcp() -> std::io::Result<(u16, Vec<TcpListener>)> {
        let first = TcpListener::bind("127.0.0.1:0")?;
        let port = first.local_addr()?.port();
        let second = TcpListener::bind(("127.1.2.3", port))?;
        let mut all = vec![first, second];
        match TcpListener::bind(("::1", port)) {
            Ok(v6) => all.push(v6),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(e),
            Err(_) => {}
        }
        Ok((port, all))
    }

    /// How many connections reached the host's listeners.
    fn accepted(&self) -> usize {
        let mut n = 0;
        for l in &self.tcp {
            if l.set_nonblocking(true).is_ok() {
                while l.accept().is_ok() {
                    n += 1;
                }
            }
        }
        for l in &self.unix {
            if l.set_nonblocking(true).is_ok() {
                while l.accept().is_ok() {
                    n += 1;
                }
            }
        }
        n
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.unix_path);
    }
}

/// The write targets before the run, to tell a write that landed on the
/// host from one that stayed in the cage's own tmpfs.
struct Snapshot(Vec<Option<Vec<u8>>>);

impl Snapshot {
    fn take(writes: &[(String, PathBuf)]) -> Snapshot {
        Snapshot(writes.iter().map(|(_, p)| std::fs::read(p).ok()).collect())
    }
}

/// Every attempt the probe makes, by id.
fn expected_ids(spec: &Spec) -> Vec<String> {
    let mut ids: Vec<String> = ["outlive", "hidden-key", "decoy-env"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    ids.extend(LOOPBACK_SPELLINGS.iter().map(|s| format!("tcp {s}")));
    ids.extend(["abstract-socket", "path-socket"].map(String::from));
    if spec.proxy.is_some() {
        ids.extend(["proxy-denied", "proxy-loopback"].map(String::from));
    }
    ids.extend(
        [
            "ptrace-init",
            "init-mem",
            "process-vm-readv",
            "supervisor-mem",
            "signal-host",
            "tiocsti",
            "tioclinux",
            "userns",
            "mount",
            "fsopen",
            "raw-socket",
            "packet-socket",
            "keyctl",
            "bpf",
            "perf",
            "io-uring",
            "userfaultfd",
        ]
        .map(String::from),
    );
    if cfg!(target_arch = "x86_64") {
        ids.push("foreign-abi".into());
    }
    ids.extend(spec.writes.iter().map(|(id, _)| id.clone()));
    ids
}

/// Host processes whose command line holds `token`: the probe's, if any
/// outlived the cage (cage init's exit kills its pid namespace, and the
/// supervisor's wait returns only after that).
fn survivors(token: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(token.len()).any(|w| w == token.as_bytes()))
        })
        .collect()
}

fn denies(filter: &crate::plan::SeccompPlan, call: &str) -> bool {
    filter.deny.iter().any(|r| r.name == call)
}

fn denies_ioctl(filter: &crate::plan::SeccompPlan, cmd: libc::c_ulong) -> bool {
    filter.deny.iter().any(|r| {
        r.name == "ioctl"
            && match &r.when {
                crate::plan::ArgMatch::Always => true,
                crate::plan::ArgMatch::Equals32 { arg: 1, values } => {
                    values.contains(&(cmd as u32))
                }
                _ => false,
            }
    })
}

/// Each attempt: what it is, what the plan promises, what happened.
fn judge(
    plan: &Plan,
    policy: &Policy,
    spec: &Spec,
    observed: &[Observed],
    before: &Snapshot,
    mode: &Mode,
) -> Vec<Line> {
    let j = Judge::new(plan, policy, spec, before, mode);
    let mut lines = Vec::new();
    for o in observed {
        if let Some((what, expected)) = j.expected(&o.id) {
            lines.push(line(&o.id, what, expected, o.reached, o.detail.clone()));
        } else if let Some(l) = j.write(o) {
            lines.push(l);
        }
    }
    lines
}

/// An attempt in words, and whether the plan should block it, with the
/// layer that should (or why it does not).
type Expected = (String, (bool, String));

/// What the plan says of each attempt the probe made.
struct Judge<'a> {
    plan: &'a Plan,
    policy: &'a Policy,
    spec: &'a Spec,
    before: &'a Snapshot,
    /// Whether the decoy key is visible inside.
    key_visible: bool,
    home: Option<String>,
    /// The graded mode's plan, when the run takes it: other layers say no.
    graded: Option<&'a crate::plan::graded::GradedPlan>,
    cgroup: bool,
}

const LET_THROUGH: &str = "allowed by the plan (seccomp lets it through)";

impl<'a> Judge<'a> {
    fn new(
        plan: &'a Plan,
        policy: &'a Policy,
        spec: &'a Spec,
        before: &'a Snapshot,
        mode: &Mode<'a>,
    ) -> Self {
        let key_visible = crate::plan::explain::explain_path(plan, policy, &spec.decoy_key).allowed;
        let home = plan
            .env
            .iter()
            .find(|v| v.name == "HOME")
            .map(|v| v.value.clone());
        Judge {
            plan,
            policy,
            spec,
            before,
            key_visible,
            home,
            graded: mode.graded,
            cgroup: mode.cgroup,
        }
    }

    fn expected(&self, id: &str) -> Option<Expected> {
        let full = self
            .process(id)
            .or_else(|| self.network(id))
            .or_else(|| self.kernel(id))?;
        Some(match self.graded {
            Some(g) => self.in_graded(g, id, full),
            None => full,
        })
    }

    /// The seccomp program the agent runs under.
    fn filter(&self) -> &crate::plan::SeccompPlan {
        self.graded.map_or(&self.plan.seccomp, |g| &g.seccomp)
    }

    /// The graded mode's promise for an attempt whose full-mode promise is
    /// `full`: where a namespace or the view refused, another layer does,
    /// or nothing.
    fn in_graded(&self, g: &crate::plan::graded::GradedPlan, id: &str, full: Expected) -> Expected {
        let blocked = |s: &str| (true, format!("blocked: {s}"));
        let proxy = self.plan.network.mode == NetMode::Proxy;
        let sockets = if proxy {
            "seccomp (plain TCP sockets only)"
        } else {
            "seccomp (no sockets)"
        };
        let (what, expected) = full;
        let expected = match id {
            _ if !expected.0 => expected,
            "outlive" if self.cgroup => blocked("the session's cgroup is killed at the end"),
            "outlive" => (
                false,
                "not in the graded mode: no pid namespace, no cgroup".to_string(),
            ),
            "hidden-key" => blocked("Landlock (not granted)"),
            "decoy-env" => expected,
            id if id.starts_with("tcp ") && proxy => {
                blocked("guard (connect goes to the proxy only)")
            }
            "proxy-denied" | "proxy-loopback" if proxy => expected,
            id if id.starts_with("tcp ") || id.starts_with("proxy-") => blocked(sockets),
            "abstract-socket" | "path-socket" => blocked(sockets),
            "ptrace-init" | "process-vm-readv" => {
                let call = if id == "ptrace-init" {
                    "ptrace"
                } else {
                    "process_vm_readv"
                };
                self.seccomp(call, Some("Landlock (ptrace restriction)"))
            }
            "init-mem" | "supervisor-mem" => blocked("Landlock (ptrace restriction)"),
            "signal-host"
                if g.landlock.scope_signals && crate::sandbox::landlock::kernel_abi() >= 6 =>
            {
                blocked("Landlock scope")
            }
            "signal-host" => (
                false,
                "not in the graded mode: no pid namespace, and no Landlock signal scope (ABI \
                 6) here"
                    .to_string(),
            ),
            "raw-socket" | "packet-socket" => self.seccomp("socket", Some("no capabilities")),
            _ => expected,
        };
        let what = match id {
            "ptrace-init" => "ptrace pid 1 (the host's init)".to_string(),
            "init-mem" => "read /proc/1/mem (the host's init)".to_string(),
            "process-vm-readv" => "process_vm_readv the host's init".to_string(),
            _ => what,
        };
        (what, expected)
    }

    /// `otherwise`: the layer that still refuses when seccomp lets the
    /// call through; `None` when nothing in the plan does.
    fn seccomp(&self, call: &str, otherwise: Option<&str>) -> (bool, String) {
        match otherwise {
            _ if denies(self.filter(), call) => (true, "blocked: seccomp".to_string()),
            Some(layer) => (true, format!("blocked: {layer}")),
            None => (false, LET_THROUGH.to_string()),
        }
    }

    fn ioctl(&self, cmd: libc::c_ulong) -> (bool, String) {
        if denies_ioctl(self.filter(), cmd) {
            (true, "blocked: seccomp".to_string())
        } else {
            (false, LET_THROUGH.to_string())
        }
    }

    fn tilde(&self, p: &Path) -> String {
        match self.home.as_ref().map(|h| p.strip_prefix(h)) {
            Some(Ok(rest)) => format!("~/{}", rest.display()),
            _ => p.display().to_string(),
        }
    }

    /// Other processes, the terminal, secrets in files and variables.
    fn process(&self, id: &str) -> Option<Expected> {
        let blocked = |s: &str| (true, format!("blocked: {s}"));
        let spec = self.spec;
        Some(match id {
            "outlive" => (
                "outlive the cage (a detached process)".to_string(),
                blocked("pid namespace dies with init"),
            ),
            "hidden-key" => (
                format!("read the decoy key {}", self.tilde(&spec.decoy_key)),
                if self.key_visible {
                    (
                        false,
                        "allowed by the plan: the path is visible".to_string(),
                    )
                } else {
                    blocked("view (hidden)")
                },
            ),
            "decoy-env" => (
                format!("read ${} (a decoy)", spec.decoy_env),
                match self.plan.env.iter().find(|v| v.name == spec.decoy_env) {
                    Some(v) => (false, format!("allowed by the plan ({})", v.source)),
                    None => blocked("environment allowlist"),
                },
            ),
            "tiocsti" => (
                "TIOCSTI (type into the terminal)".to_string(),
                self.ioctl(libc::TIOCSTI),
            ),
            "tioclinux" => (
                "TIOCLINUX (the console's selection)".to_string(),
                self.ioctl(libc::TIOCLINUX),
            ),
            "ptrace-init" => (
                "ptrace cage init (pid 1)".to_string(),
                self.seccomp("ptrace", Some("init not dumpable")),
            ),
            "init-mem" => (
                "read /proc/1/mem (cage init)".to_string(),
                blocked("init not dumpable"),
            ),
            "process-vm-readv" => (
                "process_vm_readv cage init".to_string(),
                self.seccomp("process_vm_readv", Some("init not dumpable")),
            ),
            "supervisor-mem" => (
                format!("open /proc/{}/mem (the supervisor)", spec.supervisor_pid),
                blocked("pid namespace"),
            ),
            "signal-host" => (
                format!("signal the supervisor (host pid {})", spec.supervisor_pid),
                blocked("pid namespace, Landlock scope"),
            ),
            _ => return None,
        })
    }

    /// The network: the proxy, host addresses and sockets.
    fn network(&self, id: &str) -> Option<Expected> {
        let plan = self.plan;
        let net_blocked = match plan.network.mode {
            NetMode::Host => (
                false,
                format!(
                    "allowed by the plan: network host ({})",
                    plan.network.source
                ),
            ),
            NetMode::None => (true, "blocked: net namespace".to_string()),
            NetMode::Proxy => (true, "blocked: net namespace, proxy".to_string()),
        };
        Some(match id {
            "proxy-denied" => (
                format!("CONNECT {DENIED_HOST}:443 via the proxy"),
                (true, "blocked: proxy (no allow rule)".to_string()),
            ),
            "proxy-loopback" => (
                format!("CONNECT 127.0.0.1:{} via the proxy", self.spec.tcp_port),
                (true, "blocked: proxy refuses loopback".to_string()),
            ),
            id if id.starts_with("tcp ") => {
                let spelling = &id[4..];
                let shown = if spelling.contains(':') {
                    format!("[{spelling}]")
                } else {
                    spelling.to_string()
                };
                (
                    format!("connect to host {shown}:{}", self.spec.tcp_port),
                    net_blocked,
                )
            }
            "abstract-socket" => (
                "connect to a host abstract socket".to_string(),
                match plan.network.mode {
                    NetMode::Host if plan.landlock.scope_abstract_sockets => {
                        (true, "blocked: Landlock scope".to_string())
                    }
                    NetMode::Host => (false, net_blocked.1),
                    _ => (true, "blocked: net namespace, Landlock scope".to_string()),
                },
            ),
            "path-socket" => (
                "connect to a socket in the workspace".to_string(),
                (true, "blocked: view (socket hidden)".to_string()),
            ),
            "raw-socket" => (
                "open a raw IPv4 socket".to_string(),
                (true, "blocked: no capabilities".to_string()),
            ),
            "packet-socket" => (
                "open a packet socket".to_string(),
                self.seccomp("socket", Some("no capabilities")),
            ),
            _ => return None,
        })
    }

    /// The kernel's wider surface: namespaces, mounts, keyring, bpf, ABIs.
    fn kernel(&self, id: &str) -> Option<Expected> {
        let call =
            |what: &str, call: &str, otherwise| (what.to_string(), self.seccomp(call, otherwise));
        Some(match id {
            "userns" => call(
                "create a user namespace",
                "unshare",
                Some("no capabilities"),
            ),
            "mount" => call("mount a tmpfs", "mount", Some("no capabilities")),
            "fsopen" => call(
                "fsopen (the new mount API)",
                "fsopen",
                Some("no capabilities"),
            ),
            "keyctl" => call("keyctl (the kernel keyring)", "keyctl", None),
            "bpf" => call("bpf", "bpf", None),
            "perf" => call("perf_event_open", "perf_event_open", None),
            "io-uring" => call("io_uring_setup", "io_uring_setup", None),
            "userfaultfd" => call("userfaultfd", "userfaultfd", None),
            "foreign-abi" => (
                "an i386 syscall (int 0x80)".to_string(),
                // Each filter program also kills on an architecture it
                // was not built for.
                if self.filter().kill_foreign_abi || !self.filter().deny.is_empty() {
                    (true, "blocked: seccomp (kill)".to_string())
                } else {
                    (false, "allowed by the plan".to_string())
                },
            ),
            _ => return None,
        })
    }

    /// A write the probe attempted: whether it landed on the host.
    fn write(&self, o: &Observed) -> Option<Line> {
        let (plan, id) = (self.plan, o.id.as_str());
        let i = self.spec.writes.iter().position(|(w, _)| w == id)?;
        let path = &self.spec.writes[i].1;
        let changed = std::fs::read(path).ok() != self.before.0[i];
        let in_ws = path.starts_with(&plan.workspace.path);
        let what = match id {
            "write-home" => format!("write {}", self.tilde(path)),
            "write-outside" => "write a file beside the workspace".to_string(),
            "write-tmp" => "write a file in the host's /tmp".to_string(),
            _ => format!("plant {}", rel(path, &plan.workspace.path)),
        };
        // The file's directory: the file itself may not exist.
        let dir = path.parent().unwrap_or(path);
        let graded = self.graded.is_some();
        let blocked = |s: &str| (true, format!("blocked: {s}"));
        let expected = if in_ws && graded {
            blocked("guard (refused, or put back at the end)")
        } else if in_ws {
            blocked("protected (mount, guard)")
        } else if graded {
            blocked("Landlock (not granted)")
        } else if id == "write-tmp" {
            blocked("/tmp is the cage's own tmpfs")
        } else if crate::plan::explain::explain_path(plan, self.policy, dir).allowed {
            blocked("guard (kept read-only)")
        } else {
            blocked("view (not granted)")
        };
        // A write the probe made that is not on the host stayed in the
        // cage (its tmpfs, the overlay's upper layer); one the session's
        // end moved into quarantine was on the host.
        let landed =
            changed || (o.reached && in_ws && plan.workspace.mode == WorkspaceMode::Direct);
        let observed = if landed {
            "written on the host".to_string()
        } else if o.reached {
            "stayed inside the cage".to_string()
        } else {
            o.detail.clone()
        };
        Some(line(id, what, expected, landed, observed))
    }
}

fn rel(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

fn line(id: &str, what: String, expected: (bool, String), reached: bool, observed: String) -> Line {
    Line {
        id: id.to_string(),
        what,
        expected_blocked: expected.0,
        expected: expected.1,
        observed,
        verdict: if reached { "EXPOSED" } else { "blocked" },
    }
}

fn render(report: &Report, policy: &Policy, shadow: &Shadow) -> String {
    let mut s = String::new();
    let copy = shadow.workspace().to_string_lossy().into_owned();
    let real = report.workspace.to_string_lossy().into_owned();
    let sources: Vec<String> = policy
        .sources
        .iter()
        .map(|src| src.describe().replace(&copy, &real))
        .collect();
    let _ = writeln!(
        s,
        "cage selftest: the plan of a run in {real} ({}; network {}, workspace {}{})",
        sources.join(", "),
        format!("{:?}", report.network).to_lowercase(),
        format!("{:?}", report.workspace_mode).to_lowercase(),
        if report.graded {
            "; the graded mode: user namespaces are unavailable here"
        } else {
            ""
        },
    );
    let _ = writeln!(
        s,
        "against a copy of the workspace's shape ({} entries) and a temporary home with decoys\n",
        shadow.entries()
    );
    let width = |f: fn(&Line) -> &str| {
        report
            .attempts
            .iter()
            .map(|l| f(l).chars().count())
            .max()
            .unwrap_or(0)
            .min(40)
    };
    let (w1, w2) = (width(|l| &l.what), width(|l| &l.expected));
    let _ = writeln!(
        s,
        "{:7}  {:w1$}  {:w2$}  observed",
        "verdict", "attempt", "expected"
    );
    for l in &report.attempts {
        let _ = writeln!(
            s,
            "{:7}  {:w1$}  {:w2$}  {}",
            l.verdict, l.what, l.expected, l.observed
        );
    }
    s.push('\n');
    if report.exit_code == 0 {
        let _ = writeln!(
            s,
            "all {} attempts blocked; the throwaway workspace, home and session are removed",
            report.attempts.len()
        );
    } else {
        let not_run = report.attempts.len() - report.exposed - report.blocked;
        let _ = writeln!(
            s,
            "EXPOSED: {} of {} attempts got through (marked EXPOSED above){}; exit status {}",
            report.exposed,
            report.attempts.len(),
            if not_run > 0 {
                format!(", {not_run} did not run")
            } else {
                String::new()
            },
            report.exit_code
        );
        if report.host_listener_connections > 0 {
            let _ = writeln!(
                s,
                "the host's decoy listeners accepted {} connection(s) from the cage",
                report.host_listener_connections
            );
        }
    }
    // Paths come from the user's workspace and policy.
    crate::term::escape_text(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outlive check finds a host process by the token in its
    /// command line (a check that found nothing would pass vacuously).
    #[test]
    fn survivors_finds_a_process_carrying_the_token() {
        let token = format!("cage-selftest-unit-{}", std::process::id());
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg0(&token)
            .arg("30")
            .spawn()
            .unwrap();
        // Until the child has exec'd, its command line is ours (bounded
        // wait, for liveness only).
        let mut found = Vec::new();
        for _ in 0..500 {
            found = survivors(&token);
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, vec![child.id()]);
        assert!(survivors(&token).is_empty());
    }

    #[test]
    fn every_spelling_is_an_address_or_localhost() {
        for s in LOOPBACK_SPELLINGS {
            assert!(
                s.parse::<std::net::IpAddr>().is_ok() || *s == "localhost",
                "{s}"
            );
        }
    }
}
