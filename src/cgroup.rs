//! cgroup v2 limits for the agent: `memory`, `pids` and `cpu` from
//! `[limits]`, in a child cgroup of a subtree the user owns.
//!
//! An unprivileged process may only create cgroups in a subtree delegated
//! to it, and cgroup v2 lets controllers be enabled for children only in a
//! cgroup with no processes of its own. So cage needs a cgroup that is its
//! own, with no other process in it. Two ways to have one:
//!
//! 1. It already is in one: started by `systemd-run --user --scope`, in a
//!    user service, or in a container that delegates its cgroup.
//! 2. It asks the user's systemd for one: cage re-executes itself through
//!    `systemd-run --user --scope -p Delegate=yes` (the same process, moved
//!    into a new transient scope, then `exec`ed; `CAGE_SCOPE` marks the
//!    second start so this happens at most once).
//!
//! In that cgroup (the base), cage moves itself into `cage-supervisor/`,
//! enables the controllers for the children, and makes `cage-agent/` with
//! the limits; the cage's init joins it before it runs anything. An OOM
//! kill or the pids limit therefore hits only the agent's processes, never
//! the supervisor that keeps the record. At the end cage reads what the
//! limits did (`memory.events`, `pids.events`, `cpu.stat`), kills what is
//! left, and removes both children. If cage itself is killed, the agent's
//! processes die with their pid namespace and systemd removes the emptied
//! scope, children included.
//!
//! Without such a cgroup the limits are not enforced: cage says so on every
//! run, and refuses when the policy says `[limits] required = true`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::plan::LimitsPlan;

/// Marks a cage that `systemd-run` started in a new scope.
pub const SCOPE_ENV: &str = "CAGE_SCOPE";

const SUPERVISOR: &str = "cage-supervisor";
const AGENT: &str = "cage-agent";

/// The cgroup limits of a plan, as the kernel's files want them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// `memory.max`, bytes (and `memory.swap.max` 0: the limit is not
    /// escaped into swap).
    pub memory: Option<u64>,
    /// `pids.max`.
    pub pids: Option<u64>,
    /// `cpu.max`: percent of one CPU (200: two CPUs).
    pub cpu: Option<u64>,
}

impl Wanted {
    pub fn of(limits: &LimitsPlan) -> Wanted {
        Wanted {
            memory: limits.memory.as_ref().map(|l| l.value),
            pids: limits.pids.as_ref().map(|l| l.value),
            cpu: limits.cpu.as_ref().map(|l| l.value),
        }
    }

    /// The same, from the merged policy, for deciding before the plan
    /// exists whether cage must move into a scope first.
    pub fn of_policy(limits: &crate::policy::LimitsPolicy) -> Wanted {
        let value = |v: &Option<crate::policy::Sourced<u64>>| v.as_ref().map(|v| v.value);
        Wanted {
            memory: value(&limits.memory),
            pids: value(&limits.pids),
            cpu: value(&limits.cpu),
        }
    }

    pub fn any(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.cpu.is_some()
    }

    fn controllers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.memory.is_some() {
            out.push("memory");
        }
        if self.pids.is_some() {
            out.push("pids");
        }
        if self.cpu.is_some() {
            out.push("cpu");
        }
        out
    }

    /// Each limit as a `file value` pair, in the order they are written.
    fn files(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(m) = self.memory {
            out.push(("memory.max", m.to_string()));
            out.push(("memory.swap.max", "0".to_string()));
        }
        if let Some(p) = self.pids {
            out.push(("pids.max", p.to_string()));
        }
        if let Some(c) = self.cpu {
            // A 100 ms period; the quota is the share of it.
            out.push(("cpu.max", format!("{} 100000", c.max(1) * 1000)));
        }
        out
    }

    /// For the record: `memory.max = 67108864`, ...
    pub fn describe(&self) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|(f, _)| *f != "memory.swap.max")
            .map(|(f, v)| format!("{f} = {v}"))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{step} {}", path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// This process's cgroup v2 directory: the `0::` line of
/// `/proc/self/cgroup` under the cgroup2 mount from `/proc/self/mountinfo`.
pub fn own() -> Result<PathBuf, String> {
    let text = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2 hierarchy (cgroup v1 only)")?;
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER`
    let mount = mounts
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let mut f = left.split(' ');
            let root = f.nth(3)?;
            let point = f.next()?;
            (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(unescape(point)))
        })
        .ok_or("no cgroup2 filesystem is mounted")?;
    Ok(mount.join(rel.trim_start_matches('/')))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&code, 8) {
                out.push(n as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// Why `dir` cannot hold cage's children for `wanted`, if it cannot: it
/// must be ours, hold no other process, and offer the controllers.
pub fn unusable(dir: &Path, wanted: &Wanted) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => return Some(format!("{}: {e}", dir.display())),
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Some(format!(
            "cage's cgroup {} is not delegated to you (owner uid {})",
            dir.display(),
            meta.uid()
        ));
    }
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let me = std::process::id().to_string();
    if procs.lines().any(|p| p.trim() != me) {
        return Some(format!(
            "cage's cgroup {} holds other processes too",
            dir.display()
        ));
    }
    let have = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let missing: Vec<&str> = wanted
        .controllers()
        .into_iter()
        .filter(|c| !have.split_whitespace().any(|h| h == *c))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "the {} controller(s) are not delegated to cage's cgroup {}",
            missing.join(", "),
            dir.display()
        ));
    }
    None
}

/// Whether `systemd-run --user` could give cage a scope of its own: the
/// program exists and the user's bus is there.
pub fn systemd_run() -> Option<PathBuf> {
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).join("bus").exists());
    if !bus {
        return None;
    }
    ["/usr/bin/systemd-run", "/bin/systemd-run"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Where the limits will be enforced, decided before anything is created:
/// `Ok(Some(base))` a usable cgroup, `Ok(None)` re-execute through
/// systemd-run first, `Err(why)` nowhere.
pub fn locate(wanted: &Wanted) -> Result<Option<PathBuf>, String> {
    let own = own()?;
    let Some(why) = unusable(&own, wanted) else {
        return Ok(Some(own));
    };
    if std::env::var_os(SCOPE_ENV).is_some() {
        return Err(format!("{why}, even in the scope systemd-run made"));
    }
    if systemd_run().is_none() {
        return Err(format!(
            "{why}, and there is no systemd user session to ask for a scope \
             (systemd-run --user needs the user's bus)"
        ));
    }
    Ok(None)
}

/// Replaces this process with itself in a new transient scope of the
/// user's systemd, delegated to it. Returns only on failure.
pub fn reexec_in_scope(systemd_run: &Path) -> io::Error {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = fs::read_link("/proc/self/exe") else {
        return io::Error::other("cannot read /proc/self/exe");
    };
    let unit = format!("cage-{}.scope", std::process::id());
    std::process::Command::new(systemd_run)
        .args([
            "--user",
            "--scope",
            "--quiet",
            "--collect",
            "-p",
            "Delegate=yes",
        ])
        .arg(format!("--unit={unit}"))
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(SCOPE_ENV, "1")
        .exec()
}

/// Where a run's cgroup limits go, decided before the session starts.
#[derive(Debug)]
pub enum Place {
    /// The policy sets no cgroup limit.
    None,
    /// A cgroup of cage's own, to make the session's children in.
    At(PathBuf),
    /// Nowhere, and why.
    Unavailable(String),
}

/// The session's two cgroups, made in `base`.
#[derive(Debug)]
pub struct SessionCgroup {
    base: PathBuf,
    supervisor: PathBuf,
    agent: PathBuf,
    pub wanted: Wanted,
}

/// What the limits did, read before the cgroup goes.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Processes the OOM killer ended inside the cage's cgroup.
    pub oom_kills: u64,
    /// Forks refused at `pids.max`.
    pub pids_refused: u64,
    /// Periods in which the CPU quota held the agent back.
    pub cpu_throttled: u64,
}

impl SessionCgroup {
    /// Moves this process into `base/cage-supervisor`, enables the
    /// controllers for `base`'s children and makes `base/cage-agent` with
    /// the limits. Must run while cage is single-threaded: a cgroup takes
    /// a process's threads only together.
    pub fn create(base: &Path, wanted: Wanted) -> Result<SessionCgroup, CgroupError> {
        let supervisor = base.join(SUPERVISOR);
        let agent = base.join(AGENT);
        for dir in [&supervisor, &agent] {
            match fs::create_dir(dir) {
                Ok(()) => {}
                // Left by a cage that was killed in this same scope.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating the cgroup", dir)(e)),
            }
        }
        let cg = SessionCgroup {
            base: base.to_path_buf(),
            supervisor,
            agent,
            wanted,
        };
        let setup = (|| {
            write(
                &cg.supervisor,
                "cgroup.procs",
                &std::process::id().to_string(),
            )?;
            let enable: Vec<String> = cg
                .wanted
                .controllers()
                .iter()
                .map(|c| format!("+{c}"))
                .collect();
            write(&cg.base, "cgroup.subtree_control", &enable.join(" "))?;
            for (file, value) in cg.wanted.files() {
                // Without swap accounting there is no memory.swap.max.
                if file == "memory.swap.max" && !cg.agent.join(file).exists() {
                    continue;
                }
                write(&cg.agent, file, &value)?;
            }
            Ok(())
        })();
        match setup {
            Ok(()) => Ok(cg),
            // Dropping it removes what was made.
            Err(e) => Err(e),
        }
    }

    /// Puts the cage's init (not yet running anything of the agent's)
    /// into the agent's cgroup; its children are born there.
    pub fn enter(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        write(&self.agent, "cgroup.procs", &pid.to_string())
    }

    /// Reads what the limits did, then removes the cgroups.
    pub fn finish(self) -> Outcome {
        let key = |file: &str, name: &str| -> u64 {
            fs::read_to_string(self.agent.join(file))
                .ok()
                .and_then(|t| {
                    t.lines().find_map(|l| {
                        let (k, v) = l.split_once(' ')?;
                        (k == name).then(|| v.trim().parse().ok())?
                    })
                })
                .unwrap_or(0)
        };
        // Dropping `self` afterwards removes the cgroups.
        Outcome {
            oom_kills: key("memory.events", "oom_kill"),
            pids_refused: key("pids.events", "max"),
            cpu_throttled: key("cpu.stat", "nr_throttled"),
        }
    }

    fn remove(&self) {
        // Anything still in the agent's cgroup (nothing should be: the pid
        // namespace ended with init) goes, then the directories.
        let _ = fs::write(self.agent.join("cgroup.kill"), "1");
        for _ in 0..50 {
            match fs::remove_dir(&self.agent) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                _ => break,
            }
        }
        let _ = fs::write(
            self.base.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = fs::remove_dir(&self.supervisor);
    }
}

impl Drop for SessionCgroup {
    /// Every way out of a session removes its cgroups; after `finish` this
    /// finds nothing left to do.
    fn drop(&mut self) {
        self.remove();
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(io_err("writing", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_the_kernels_values() {
        let w = Wanted {
            memory: Some(64 << 20),
            pids: Some(32),
            cpu: Some(50),
        };
        assert_eq!(
            w.files(),
            [
                ("memory.max", "67108864".to_string()),
                ("memory.swap.max", "0".to_string()),
                ("pids.max", "32".to_string()),
                ("cpu.max", "50000 100000".to_string()),
            ]
        );
        assert_eq!(w.controllers(), ["memory", "pids", "cpu"]);
        assert!(!Wanted::default().any());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/sys/fs/cgroup\040x"), "/sys/fs/cgroup x");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
