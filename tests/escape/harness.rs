//! The test harness: one fluent `Cage` builder that runs the real binary as
//! an unprivileged user in a throwaway home and workspace, and helpers to
//! look at the host side afterwards.
//!
//! It owns the choice of user and the skip rule; it must not weaken cage
//! (no extra flags, no policy files): every test states its own arguments.
//!
//! Who runs cage:
//! 1. Tests started as root run cage as `cage-test` (made by `.ci/setup`);
//!    a missing user fails every test, it never skips.
//! 2. Tests started as anyone else run cage as themselves.
//! 3. If that user cannot create a user namespace (`unshare -U true`), each
//!    test prints `SKIPPED: <why>` on the real stderr and returns: the only
//!    skip there is.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The user the tests run cage as when they are started as root.
const TEST_USER: &str = "cage-test";

/// How long one cage run may take before the harness kills it and fails
/// the test. Only a guard against hangs: no test asserts on time.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// PATH for cage itself and for host-side helper commands.
const HOST_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// A git identity for commits made inside the cage (whose home is empty).
pub const IDENTITY: [&str; 8] = [
    "--env",
    "GIT_AUTHOR_NAME=Caged Agent",
    "--env",
    "GIT_AUTHOR_EMAIL=agent@example.invalid",
    "--env",
    "GIT_COMMITTER_NAME=Caged Agent",
    "--env",
    "GIT_COMMITTER_EMAIL=agent@example.invalid",
];

/// A shell prelude for probes: `attempt 'CMD'` runs CMD and prints
/// `ALLOWED: CMD` or `REFUSED: CMD`. Tests assert on those lines.
pub const ATTEMPT: &str = r#"
attempt() {
    if (eval "$1") >/dev/null 2>&1; then echo "ALLOWED: $1"; else echo "REFUSED: $1"; fi
}
"#;

/// Skips the calling test, loudly, when the test user cannot create user
/// namespaces. Must be the first line of every test.
macro_rules! require_userns {
    () => {
        if let Some(why) = $crate::harness::userns_unavailable() {
            $crate::harness::skip(&why);
            return;
        }
    };
}

/// The identity cage runs under, and the binary it runs.
struct Runner {
    /// `Some((uid, gid))` when the harness must switch to the test user.
    switch_to: Option<(u32, u32)>,
    user: String,
    binary: PathBuf,
    userns: Result<(), String>,
}

fn runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| {
        // CAGE_TEST_BINARY runs the suite against another build, such as
        // one without a protection, to see the tests that prove it fail.
        let built = std::env::var_os("CAGE_TEST_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cage")));
        let (switch_to, user, binary) = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name(TEST_USER)
                .expect("reading the passwd database")
                .unwrap_or_else(|| {
                    panic!(
                        "the escape tests run cage as the unprivileged user `{TEST_USER}`, which \
                         does not exist: run `.ci/setup` as root first"
                    )
                });
            let ids = (user.uid.as_raw(), user.gid.as_raw());
            (Some(ids), user.name, reachable_copy(&built))
        } else {
            let me = nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| nix::unistd::getuid().to_string());
            (None, me, built)
        };
        let mut probe = Command::new("unshare");
        probe
            .args(["-U", "true"])
            .env_clear()
            .env("PATH", HOST_PATH)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = switch_to {
            probe.uid(uid).gid(gid);
        }
        let userns = match probe.output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "user `{user}` cannot create user namespaces (`unshare -U true`: {}; {}); \
                 run `cage -- true` as that user for the reason and the fix",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run `unshare -U true` as `{user}`: {e}")),
        };
        Runner {
            switch_to,
            user,
            binary,
            userns,
        }
    })
}

/// The cage binary the test user runs (for tests that start it from a
/// shell of their own, such as an alias).
pub fn cage_binary() -> &'static Path {
    &runner().binary
}

/// Why the escape tests cannot run here, if they cannot.
pub fn userns_unavailable() -> Option<String> {
    runner().userns.clone().err()
}

/// Prints the skip line on the real stderr: libtest captures `eprintln!`,
/// and a skip must be seen even when the test "passes". Under `CI=true` a
/// skipped escape test is a failure: CI must prove the walls, not skip them.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("an escape test")
        .to_string();
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} cannot run here ({why}), and under CI=true a skipped escape test fails"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// The built binary may sit where the test user cannot traverse
/// (`/root/...`): give it a world-readable place of its own, once per test
/// process. A hard link costs nothing; a copy is the fallback.
fn reachable_copy(built: &Path) -> PathBuf {
    remove_stale_copies();
    let dir = PathBuf::from(format!("/tmp/cage-escape-bin.{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("creating the directory for the cage binary");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let dst = dir.join("cage");
    if fs::hard_link(built, &dst).is_err() {
        fs::copy(built, &dst).expect("copying the cage binary");
    }
    fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).expect("chmod 755");
    dst
}

/// Copies left by test processes that are gone (nothing removes a static's
/// directory at exit).
fn remove_stale_copies() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("cage-escape-bin.")
            && pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A name no other test (nor an earlier run) uses: `what-PID-N`.
pub fn unique(what: &str) -> String {
    format!("{what}-{}-{}", std::process::id(), next_id())
}

/// One test's cage: a private host directory under /tmp holding the home
/// (`home/`), the workspace (`home/proj`, a git repository) and the
/// captured output (`out/`), all removed when it drops.
pub struct Cage {
    root: PathBuf,
    home: PathBuf,
    workspace: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    fds: Vec<(i32, PathBuf)>,
}

/// What a run left: the status cage exited with, and its output.
#[derive(Debug)]
pub struct Output {
    /// The exit code, or 128+N when cage itself died of signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cage {
    /// A fresh home and workspace, owned by the test user. Call
    /// `require_userns!()` first.
    pub fn new() -> Cage {
        let r = runner();
        let root = PathBuf::from(format!("/tmp/{}", unique("cage-escape")));
        fs::create_dir(&root).expect("creating the test directory");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        fs::create_dir(root.join("out")).expect("creating out/");
        let home = root.join("home");
        let workspace = home.join("proj");
        let cage = Cage {
            root,
            home,
            workspace,
            args: Vec::new(),
            env: Vec::new(),
            fds: Vec::new(),
        };
        cage.make_dir(&cage.home, 0o700);
        cage.make_dir(&cage.workspace, 0o755);
        let git = cage
            .host_command(["git", "init", "-q", "-b", "main"])
            .output()
            .expect("running git init");
        assert!(
            git.status.success(),
            "git init as {}: {}",
            r.user,
            String::from_utf8_lossy(&git.stderr)
        );
        cage
    }

    /// The host's view of the home directory cage is started with.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The host's view of the workspace (the git top level cage picks).
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// This test's private directory under /tmp (holds home and output).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes a directory `name` in this test's private directory (beside
    /// the home), owned by the test user, and returns its path.
    pub fn user_dir(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        self.make_dir(&dir, 0o700);
        dir
    }

    /// Adds a file to the host home (parents 0700, file 0600), owned by
    /// the test user, before cage runs.
    pub fn home_file(self, rel: &str, content: &str) -> Self {
        let path = self.home.join(rel);
        self.make_file(&path, content, 0o600, 0o700);
        self
    }

    /// Adds a file to the workspace (mode 0644), owned by the test user.
    pub fn workspace_file(self, rel: &str, content: &str) -> Self {
        self.workspace_file_mode(rel, content, 0o644)
    }

    pub fn workspace_file_mode(self, rel: &str, content: &str, mode: u32) -> Self {
        let path = self.workspace.join(rel);
        self.make_file(&path, content, mode, 0o755);
        self
    }

    /// Adds cage options (before `--`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets a variable in the environment cage itself is started with (the
    /// host environment, as a user's shell would pass it).
    pub fn host_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Opens `path` on the host and hands it to cage as descriptor `fd`,
    /// without close-on-exec, as a careless parent (a shell, an IDE) would.
    pub fn inherit_file(mut self, fd: i32, path: &Path) -> Self {
        assert!(fd > 2, "descriptors 0-2 are stdio");
        self.fds.push((fd, path.to_path_buf()));
        self
    }

    /// Runs `cage [ARGS] -- ARGV` to the end.
    pub fn run<I, S>(&self, argv: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spawn(argv).wait()
    }

    /// Runs `cage [ARGS] -- sh -c SCRIPT` to the end.
    pub fn sh(&self, script: &str) -> Output {
        self.run(["sh", "-c", script])
    }

    /// Runs `cage [ARGS] -- python3 -c CODE` to the end.
    pub fn python(&self, code: &str) -> Output {
        self.run(["python3", "-c", code])
    }

    /// Runs `cage SUBCOMMAND...` (no `--`, none of the builder's run
    /// options) as the test user in the workspace, to the end: `cage diff`,
    /// `cage apply`, ...
    pub fn cli<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut cmd = self.cli_command(args);
        let (stdout, stderr) = self.output_files();
        cmd.stdin(Stdio::null()).stdout(stdout.0).stderr(stderr.0);
        let mut child = cmd.spawn().expect("starting cage");
        let status = wait_bounded(&mut child);
        Output::collect(status, &stdout.1, &stderr.1)
    }

    /// cage's session directories for this home.
    pub fn sessions_dir(&self) -> PathBuf {
        self.home.join(".local/state/cage/sessions")
    }

    /// Starts `cage [ARGS] -- ARGV` and returns at once.
    pub fn spawn<I, S>(&self, argv: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cmd = self.cage_command(argv);
        let (stdout, stderr) = self.output_files();
        cmd.stdin(Stdio::null()).stdout(stdout.0).stderr(stderr.0);
        Running {
            child: cmd.spawn().expect("starting cage"),
            stdout: stdout.1,
            stderr: stderr.1,
        }
    }

    /// Runs cage on a new pseudo-terminal that is its controlling
    /// terminal (as in an interactive shell). `stdout` of the result is
    /// everything the terminal showed, echo included.
    pub fn run_in_pty<I, S>(&self, argv: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.in_pty(self.cage_command(argv), "")
    }

    /// Runs `cage SUBCOMMAND...` (as [`Cage::cli`]) on a new controlling
    /// terminal, with `input` typed at it.
    pub fn cli_in_pty<I, S>(&self, args: I, input: &str) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.in_pty(self.cli_command(args), input)
    }

    /// `cage SUBCOMMAND...` as the test user in the workspace.
    fn cli_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut cmd = Command::new(&runner().binary);
        cmd.args(args.into_iter().map(|a| a.as_ref().to_string()));
        self.as_user(&mut cmd);
        cmd
    }

    fn in_pty(&self, mut cmd: Command, input: &str) -> Output {
        use nix::fcntl::OFlag;
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .expect("opening a pty");
        nix::pty::grantpt(&master).expect("grantpt");
        nix::pty::unlockpt(&master).expect("unlockpt");
        let name = nix::pty::ptsname_r(&master).expect("ptsname");
        // Close-on-exec (std's default), so children other tests start
        // meanwhile do not keep the terminal open.
        let slave = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&name)
            .expect("opening the pty's terminal side");
        cmd.stdin(slave.try_clone().expect("dup"))
            .stdout(slave.try_clone().expect("dup"))
            .stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe and touch only the
        // child's own session and descriptor 0.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let shown = Arc::new(Mutex::new(Vec::new()));
        let mut child = cmd.spawn().expect("starting cage on a pty");
        // The parent's copies of the terminal side went with `cmd`.
        drop(cmd);
        // Typed ahead: the terminal holds it until the program reads.
        if !input.is_empty() {
            let typed = nix::unistd::write(&master, input.as_bytes()).expect("typing at the pty");
            assert_eq!(typed, input.len(), "typed in one write");
        }
        let reader = {
            let shown = Arc::clone(&shown);
            let mut master = master;
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // EIO once the last terminal-side descriptor is closed.
                while let Ok(n) = master.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    shown.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            })
        };
        let status = wait_bounded(&mut child);
        // Output still in flight when the last process exits arrives
        // within the same bounded wait; a leaked descriptor must not hang us.
        poll_until(Duration::from_secs(5), || reader.is_finished());
        let stdout = String::from_utf8_lossy(&shown.lock().expect("lock")).into_owned();
        Output {
            code: code_of(status),
            stdout,
            stderr: String::new(),
        }
    }

    /// Runs `cage [ARGS] -- ARGV` with stderr on a pipe that nobody reads
    /// until cage has exited, so the agent can fill it; `stderr` of the
    /// result is what the pipe held by then. Also returns whether the
    /// pipe's write side (the description cage and the agent shared) was
    /// left non-blocking.
    pub fn run_with_unread_stderr<I, S>(&self, argv: I) -> (Output, bool)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        use nix::fcntl::OFlag;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let mut cmd = self.cage_command(argv);
        let (stdout, _) = self.output_files();
        let shared = write.try_clone().expect("dup");
        cmd.stdin(Stdio::null())
            .stdout(stdout.0)
            .stderr(Stdio::from(write));
        let mut child = cmd.spawn().expect("starting cage");
        // The parent's copy of the write end goes with `cmd`.
        drop(cmd);
        let status = wait_bounded(&mut child);
        let mut pipe = fs::File::from(read);
        nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .expect("O_NONBLOCK");
        let mut held = Vec::new();
        // Until EAGAIN: `shared` keeps the pipe open.
        let _ = pipe.read_to_end(&mut held);
        let flags = nix::fcntl::fcntl(&shared, nix::fcntl::FcntlArg::F_GETFL).expect("F_GETFL");
        let nonblocking = OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK);
        let out = Output {
            code: code_of(status),
            stdout: fs::read_to_string(&stdout.1).unwrap_or_default(),
            stderr: String::from_utf8_lossy(&held).into_owned(),
        };
        (out, nonblocking)
    }

    /// Runs ARGV on the host, without cage, exactly as cage would have been
    /// started (user, environment, inherited descriptors): the control that
    /// shows a probe would succeed without the sandbox.
    pub fn run_on_host<I, S>(&self, argv: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        let mut cmd = self.host_command(&argv);
        self.add_inherited_fds(&mut cmd);
        let (stdout, stderr) = self.output_files();
        cmd.stdin(Stdio::null()).stdout(stdout.0).stderr(stderr.0);
        let mut child = cmd.spawn().expect("starting the host command");
        let status = wait_bounded(&mut child);
        Output::collect(status, &stdout.1, &stderr.1)
    }

    /// Starts a long-lived process on the host as the test user; it is
    /// killed when the guard drops.
    pub fn host_process<I, S>(&self, argv: I) -> HostProcess
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        let mut cmd = self.host_command(&argv);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        HostProcess {
            child: cmd.spawn().expect("starting a host process"),
        }
    }

    /// Every path under the home (the workspace included) with its kind,
    /// mode and content.
    pub fn snapshot(&self) -> Snapshot {
        let mut entries = BTreeMap::new();
        walk(&self.home, &self.home, &mut entries);
        Snapshot { entries }
    }

    /// Runs a command on the host as the test user (in the workspace), e.g.
    /// `git log` to check what a caged git did.
    pub fn host_command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|s| s.as_ref().to_string()).collect();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        self.as_user(&mut cmd);
        cmd
    }

    fn cage_command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cmd = Command::new(&runner().binary);
        cmd.args(&self.args)
            .arg("--")
            .args(argv.into_iter().map(Into::into));
        self.as_user(&mut cmd);
        self.add_inherited_fds(&mut cmd);
        cmd
    }

    /// The test user, a minimal login-like environment plus the test's own
    /// variables, in the workspace.
    fn as_user(&self, cmd: &mut Command) {
        let r = runner();
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("USER", &r.user)
            .env("LOGNAME", &r.user)
            .env("PATH", HOST_PATH)
            .env("LANG", "C.UTF-8")
            .current_dir(&self.workspace);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = r.switch_to {
            // std drops supplementary groups, then sets gid and uid.
            cmd.uid(uid).gid(gid);
        }
        // Ignored signals stay ignored across exec: a test runner started
        // under nohup (SIGHUP ignored) would hand that to cage, and then
        // to the agent, and the signal tests would wait for a signal that
        // is discarded. Start cage as a user's shell would.
        // SAFETY: signal(2) is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [
                    libc::SIGHUP,
                    libc::SIGINT,
                    libc::SIGQUIT,
                    libc::SIGTERM,
                    libc::SIGPIPE,
                ] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
    }

    fn add_inherited_fds(&self, cmd: &mut Command) {
        for (target, path) in &self.fds {
            let file = fs::File::open(path).expect("opening the file to inherit");
            let fd: OwnedFd = file.into();
            let target = *target;
            // SAFETY: dup2 and fcntl are async-signal-safe; the source
            // descriptor is owned by the closure (open until `cmd` drops),
            // and the copy is left without close-on-exec, which is the point.
            unsafe {
                cmd.pre_exec(move || {
                    let src = fd.as_raw_fd();
                    // dup2 onto itself is a no-op that keeps close-on-exec.
                    let done = if src == target {
                        libc::fcntl(target, libc::F_SETFD, 0)
                    } else {
                        libc::dup2(src, target)
                    };
                    if done < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }

    fn output_files(&self) -> ((fs::File, PathBuf), (fs::File, PathBuf)) {
        let n = next_id();
        let make = |stream: &str| {
            let path = self.root.join("out").join(format!("{n}.{stream}"));
            let file = fs::File::create(&path).expect("creating an output file");
            (file, path)
        };
        (make("stdout"), make("stderr"))
    }

    fn make_dir(&self, path: &Path, mode: u32) {
        fs::create_dir_all(path).expect("creating a directory");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
        self.chown(path);
    }

    fn make_file(&self, path: &Path, content: &str, mode: u32, dir_mode: u32) {
        let parent = path.parent().expect("a parent");
        let mut missing = Vec::new();
        let mut p = parent;
        while !p.exists() {
            missing.push(p.to_path_buf());
            p = p.parent().expect("a parent");
        }
        for dir in missing.iter().rev() {
            self.make_dir(dir, dir_mode);
        }
        fs::write(path, content).expect("writing a test file");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
        self.chown(path);
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = runner().switch_to {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
        }
    }
}

impl Drop for Cage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A cage that is running.
pub struct Running {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    /// The supervisor's pid on the host.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `sig` to the supervisor.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("signalling cage");
    }

    /// Waits (bounded) for the end of the supervisor.
    pub fn wait(mut self) -> Output {
        let status = wait_bounded(&mut self.child);
        Output::collect(status, &self.stdout, &self.stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process on the host, killed and reaped on drop.
pub struct HostProcess {
    child: Child,
}

impl HostProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running (not exited, not killed)?
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Output {
    fn collect(status: ExitStatus, stdout: &Path, stderr: &Path) -> Output {
        Output {
            code: code_of(status),
            stdout: fs::read_to_string(stdout).unwrap_or_default(),
            stderr: fs::read_to_string(stderr).unwrap_or_default(),
        }
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit status\n{self}");
        self
    }

    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// Asserts stdout has a line equal to `line`.
    pub fn assert_line(&self, line: &str) -> &Self {
        assert!(
            self.stdout
                .lines()
                .any(|l| l.trim_end_matches('\r') == line),
            "expected the line {line:?} on stdout\n{self}"
        );
        self
    }

    /// Asserts `text` appears nowhere in stdout or stderr.
    pub fn assert_absent(&self, text: &str) -> &Self {
        assert!(
            !self.stdout.contains(text) && !self.stderr.contains(text),
            "{text:?} leaked into the output\n{self}"
        );
        self
    }

    /// Asserts every `attempt` (see [`ATTEMPT`]) was refused, and that
    /// there were `count` of them (so a script that stopped early fails).
    pub fn assert_all_refused(&self, count: usize) -> &Self {
        let allowed: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with("ALLOWED: "))
            .collect();
        assert!(allowed.is_empty(), "the cage allowed {allowed:#?}\n{self}");
        let refused = self
            .stdout
            .lines()
            .filter(|l| l.starts_with("REFUSED: "))
            .count();
        assert_eq!(refused, count, "not every attempt ran\n{self}");
        self
    }

    /// The value of `key=value` on a line of stdout.
    pub fn value(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}=");
        // Lines from a terminal end in \r\n.
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.trim_end_matches('\r'))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A listing of a host tree, to compare before and after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<PathBuf, Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, content: Vec<u8> },
    Symlink { target: PathBuf },
    Other,
}

impl Snapshot {
    /// Every path under `dir` (relative to it); empty when it is missing.
    pub fn of(dir: &Path) -> Snapshot {
        let mut entries = BTreeMap::new();
        walk(dir, dir, &mut entries);
        Snapshot { entries }
    }

    /// Paths added, removed or changed since `before`.
    /// What changed under the home, except cage's own session records
    /// (`~/.local/state/cage` and the directories leading to it: DESIGN.md,
    /// "Files on the host").
    pub fn changes_since(&self, before: &Snapshot) -> Vec<PathBuf> {
        let state = Path::new(".local/state/cage");
        let mut out: Vec<PathBuf> = self
            .entries
            .iter()
            .filter(|(p, e)| before.entries.get(*p) != Some(e))
            .map(|(p, _)| p.clone())
            .collect();
        out.extend(
            before
                .entries
                .keys()
                .filter(|p| !self.entries.contains_key(*p))
                .cloned(),
        );
        out.retain(|p| !(p.starts_with(state) || state.starts_with(p)));
        out.sort();
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let rel = path.strip_prefix(base).expect("under base").to_path_buf();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let entry = if meta.file_type().is_symlink() {
            Entry::Symlink {
                target: fs::read_link(&path).unwrap_or_default(),
            }
        } else if meta.is_dir() {
            walk(base, &path, out);
            Entry::Dir { mode }
        } else if meta.is_file() {
            Entry::File {
                mode,
                content: fs::read(&path).unwrap_or_default(),
            }
        } else {
            Entry::Other
        };
        out.insert(rel, entry);
    }
}

/// Calls `done` until it returns true or `limit` passes; returns whether
/// it did. For liveness only: callers assert on the state they waited for,
/// never on how long it took.
pub fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_bounded(child: &mut Child) -> ExitStatus {
    let mut status = None;
    let finished = poll_until(RUN_LIMIT, || {
        status = child.try_wait().expect("waiting for cage");
        status.is_some()
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("cage did not finish within {RUN_LIMIT:?}; killed it");
    }
    status.expect("finished")
}

fn code_of(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .expect("an exit code or a signal")
}

/// Host processes of the test user whose command line contains `needle`,
/// as (pid, command line with spaces for NULs).
pub fn host_processes_with(needle: &str) -> Vec<(u32, String)> {
    let uid = match runner().switch_to {
        Some((uid, _)) => uid,
        None => nix::unistd::getuid().as_raw(),
    };
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // The real uid from status: /proc/PID of a non-dumpable process
        // (cage init) is owned by root.
        let Ok(status) = fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok());
        if real_uid != Some(uid) {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline.trim_end().to_string()));
        }
    }
    found
}
