//! The guard, supervisor side: answers the agent's creating calls that the
//! guard's seccomp program hands over (`sandbox::guard`), refusing with
//! EACCES every creation the plan's [`GuardPlan`] protects, and writing one
//! audit record per refusal; and records every exec it hands over, which
//! always goes on (`execs`); and in the graded proxy mode, connects the
//! agent's sockets to the proxy itself and refuses every other connect
//! (`connect`).
//!
//! In the graded mode, which has no read-only view, it also refuses
//! changing what [`GuardPlan::existing`] keeps read-only: opening it for
//! writing, truncate, chmod (by path or by fd), removing it, a hard link
//! to it (a writable alias), and a rename that moves it (or a directory
//! holding it) away or replaces it.
//!
//! For each notification:
//! 1. read the path arguments from the agent's memory (/proc/PID/mem);
//! 2. resolve the parent directory as the agent would, inside its root
//!    (openat2 with RESOLVE_IN_ROOT on /proc/PID/root), and read back its
//!    real path, so links and `..` cannot disguise where the name lands;
//!    a final link that O_CREAT would follow is followed the same way;
//! 3. check the notification is still live (the pid was not reused);
//! 4. refuse (EACCES) or let the kernel go on (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
//!
//! The race (DESIGN.md, guard): the kernel reads the path again when the
//! call continues, so another thread of the agent can swap the string, or
//! a directory on the way, between steps 2 and 4. The guard does not claim
//! to win that race; what a won race creates is found by the end-of-session
//! rescan and moved into quarantine (`session::quarantine`), so it does not
//! stay on the host; what a won race changes in an existing protected file
//! is put back from the copy taken at the start (`session::originals`). A
//! path the guard cannot resolve is refused (fail closed) with the errno
//! the resolution met.

use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::audit::{self, Log};
use crate::plan::GuardPlan;
use crate::sandbox::guard::Watch;

pub mod connect;
pub mod execs;

/// Most links followed while resolving one name (the kernel's MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// A running guard.
pub struct Guard {
    stop: Arc<AtomicBool>,
    done: Arc<Done>,
    refused: Arc<AtomicUsize>,
}

/// How long [`Guard::finish`] waits for the thread. It can sit in
/// SECCOMP_IOCTL_NOTIF_RECV for a notification that a signal cancelled
/// after poll reported it; the process is about to exit, so it is left.
/// Longer than the exec records' flush (`execs`), which it includes.
const FINISH_WAIT: Duration = Duration::from_millis(2500);

impl Guard {
    /// Serves `listener` on a thread of its own until every process under
    /// the filter is gone (or [`Guard::finish`] is called). `watch` says
    /// what the program hands over; execs are recorded in `log`.
    pub fn start(
        listener: OwnedFd,
        plan: GuardPlan,
        watch: Watch,
        log: Option<Arc<Log>>,
        connects: Option<connect::Connects>,
    ) -> io::Result<Guard> {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(Done::default());
        let refused = Arc::new(AtomicUsize::new(0));
        let (flag, finished, count) = (stop.clone(), done.clone(), refused.clone());
        let tracker = log.clone().filter(|_| watch.execs).map(execs::Tracker::new);
        std::thread::Builder::new()
            .name("cage:guard".into())
            .spawn(move || {
                let mut tracker = tracker;
                serve(
                    &listener,
                    &plan,
                    log.as_deref(),
                    tracker.as_mut(),
                    connects.as_ref(),
                    &flag,
                    &count,
                );
                // Every process under the filter is gone (or the session
                // is over): the ends still waiting, and the queue flushed.
                if let Some(t) = tracker {
                    t.finish();
                }
                finished.set();
            })?;
        Ok(Guard {
            stop,
            done,
            refused,
        })
    }

    /// Stops serving (the cage has exited) and returns how many creations
    /// were refused. Never blocks for long.
    pub fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.done.wait(FINISH_WAIT);
        self.refused.load(Ordering::Relaxed)
    }
}

/// A helper thread's end, as its owner waits for it: set once by the
/// thread as it ends, waited for (bounded) by the owner, who wakes the
/// moment it is set rather than at its next look (a session's end waits
/// for each helper in turn).
#[derive(Default)]
pub(crate) struct Done {
    set: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Done {
    pub(crate) fn set(&self) {
        *self.set.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Waits until set or `limit` has passed; returns whether it was set.
    pub(crate) fn wait(&self, limit: Duration) -> bool {
        let set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        let (set, _) = self
            .changed
            .wait_timeout_while(set, limit, |set| !*set)
            .unwrap_or_else(|p| p.into_inner());
        *set
    }
}

fn serve(
    listener: &OwnedFd,
    plan: &GuardPlan,
    log: Option<&Log>,
    mut tracker: Option<&mut execs::Tracker>,
    connects: Option<&connect::Connects>,
    stop: &AtomicBool,
    refused: &AtomicUsize,
) {
    let fd = listener.as_raw_fd();
    loop {
        // The listener first, then the pidfds of the programs watched.
        let watched = tracker.as_ref().map(|t| t.pollfds()).unwrap_or_default();
        let mut fds = vec![libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.extend(watched.iter().map(|(_, p)| *p));
        match crate::sys::poll_many(&mut fds, 100) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => return,
        }
        if let Some(t) = tracker.as_deref_mut() {
            for ((tgid, _), p) in watched.iter().zip(&fds[1..]) {
                if p.revents != 0 {
                    t.ended(*tgid);
                }
            }
            t.retry_unreaped();
        }
        let revents = fds[0].revents;
        if revents == 0 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            continue;
        }
        if revents & libc::POLLIN == 0 {
            // POLLHUP: no process is left under the filter.
            return;
        }
        let Some(req) = crate::sys::notif_recv(fd) else {
            continue;
        };
        if let Some(to) = connects
            && libc::c_long::from(req.data.nr) == libc::SYS_connect
        {
            connect::answer(fd, &req, to);
            continue;
        }
        if crate::sandbox::guard::EXECS.contains(&libc::c_long::from(req.data.nr)) {
            // Read before the call goes on: the caller's memory is
            // replaced once it succeeds.
            let at = std::time::SystemTime::now();
            let seen = tracker.as_deref().and_then(|t| execs::observe(&req, t));
            // Never refused: observation is not a denial path.
            // A pid reused since the read would have been recorded for
            // another process; a call no longer waiting made no program.
            if !crate::sys::notif_id_valid(fd, req.id) {
                continue;
            }
            let _ = crate::sys::notif_respond(fd, req.id, 0);
            if let (Some(t), Some(seen)) = (tracker.as_deref_mut(), seen) {
                t.exec(seen, at);
            }
            continue;
        }
        let decision = decide(plan, &req);
        let (error, refusal) = match decision {
            Decision::Continue => (0, None),
            Decision::Refuse(why) => (libc::EACCES, Some(why)),
            Decision::Fail(errno) => (errno, None),
        };
        // 3. A pid reused since the read would have answered for another
        //    process's memory.
        if !crate::sys::notif_id_valid(fd, req.id) {
            continue;
        }
        // A failure means the call was interrupted or its process died:
        // nothing is waiting for the answer.
        let _ = crate::sys::notif_respond(fd, req.id, error);
        if let Some((syscall, path, rule)) = refusal {
            refused.fetch_add(1, Ordering::Relaxed);
            if let Some(log) = log {
                let _ = log.write(audit::Record::GuardRefused(audit::GuardRefused {
                    pid: req.pid,
                    syscall: syscall.to_string(),
                    path,
                    rule,
                }));
            }
        }
    }
}

enum Decision {
    Continue,
    /// The call, the path, and the rule.
    Refuse((&'static str, PathBuf, String)),
    /// The guard could not tell; the errno to fail the call with.
    Fail(i32),
}

/// What a creating call does, decoded from its number and arguments.
enum Op {
    /// open/openat/creat/openat2: (dirfd, path, flags).
    Open(u64, u64, u64),
    /// mkdir*, mknod*: (dirfd, path) of the new name.
    Create(u64, u64),
    /// symlink*: (dirfd, path) of the new link.
    Symlink(u64, u64),
    /// rename*: (olddirfd, old, newdirfd, new, flags).
    Rename(u64, u64, u64, u64, u64),
    /// link*: the new name (dirfd, path), and the source (dirfd, path,
    /// linkat's flags).
    Link(u64, u64, (u64, u64, u64)),
    /// truncate, chmod, fchmodat*: (dirfd, path, follow the last link).
    Change(u64, u64, bool),
    /// fchmod, and fchmodat2 with AT_EMPTY_PATH: the file an fd holds.
    ChangeFd(u64),
    /// unlink*, rmdir: (dirfd, path).
    Remove(u64, u64),
}

const AT_FDCWD: u64 = libc::AT_FDCWD as i64 as u64;

fn decode(nr: i64, a: [u64; 6], pid: u32) -> Option<(&'static str, Op)> {
    Some(match nr {
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => ("open", Op::Open(AT_FDCWD, a[0], a[1])),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_creat => ("creat", Op::Open(AT_FDCWD, a[0], libc::O_CREAT as u64)),
        libc::SYS_openat => ("openat", Op::Open(a[0], a[1], a[2])),
        libc::SYS_openat2 => {
            // struct open_how starts with the u64 flags.
            let mut flags = [0u8; 8];
            read_mem(pid, a[2], &mut flags).ok()?;
            ("openat2", Op::Open(a[0], a[1], u64::from_ne_bytes(flags)))
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mkdir => ("mkdir", Op::Create(AT_FDCWD, a[0])),
        libc::SYS_mkdirat => ("mkdirat", Op::Create(a[0], a[1])),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mknod => ("mknod", Op::Create(AT_FDCWD, a[0])),
        libc::SYS_mknodat => ("mknodat", Op::Create(a[0], a[1])),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_symlink => ("symlink", Op::Symlink(AT_FDCWD, a[1])),
        libc::SYS_symlinkat => ("symlinkat", Op::Symlink(a[1], a[2])),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_rename => ("rename", Op::Rename(AT_FDCWD, a[0], AT_FDCWD, a[1], 0)),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_renameat => ("renameat", Op::Rename(a[0], a[1], a[2], a[3], 0)),
        libc::SYS_renameat2 => ("renameat2", Op::Rename(a[0], a[1], a[2], a[3], a[4])),
        // link(2) does not follow a link it is given.
        #[cfg(target_arch = "x86_64")]
        libc::SYS_link => ("link", Op::Link(AT_FDCWD, a[1], (AT_FDCWD, a[0], 0))),
        libc::SYS_linkat => ("linkat", Op::Link(a[2], a[3], (a[0], a[1], a[4]))),
        libc::SYS_truncate => ("truncate", Op::Change(AT_FDCWD, a[0], true)),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_chmod => ("chmod", Op::Change(AT_FDCWD, a[0], true)),
        libc::SYS_fchmod => ("fchmod", Op::ChangeFd(a[0])),
        // fchmodat(2) has no flags: it always follows.
        libc::SYS_fchmodat => ("fchmodat", Op::Change(a[0], a[1], true)),
        crate::sandbox::guard::FCHMODAT2 => {
            let flags = a[3] as i32;
            let empty = read_path(pid, a[1]).is_ok_and(|p| p.is_empty());
            if flags & libc::AT_EMPTY_PATH != 0 && empty {
                ("fchmodat2", Op::ChangeFd(a[0]))
            } else {
                let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
                ("fchmodat2", Op::Change(a[0], a[1], follow))
            }
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_unlink => ("unlink", Op::Remove(AT_FDCWD, a[0])),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_rmdir => ("rmdir", Op::Remove(AT_FDCWD, a[0])),
        libc::SYS_unlinkat => ("unlinkat", Op::Remove(a[0], a[1])),
        _ => return None,
    })
}

fn decide(plan: &GuardPlan, req: &libc::seccomp_notif) -> Decision {
    let pid = req.pid;
    let Some((syscall, op)) = decode(i64::from(req.data.nr), req.data.args, pid) else {
        // An x32 call, or one the program should not have sent.
        return Decision::Fail(libc::ENOSYS);
    };
    let is_gitdir = |p: &Path| p.join("HEAD").symlink_metadata().is_ok();
    let check = |dirfd: u64, addr: u64, follow: bool| -> Result<Option<(PathBuf, String)>, i32> {
        let path = target(pid, dirfd, addr, follow)?;
        Ok(plan.refusal(&path, &is_gitdir).map(|why| (path, why)))
    };
    // What changes or removes an existing name: `rule` is the plan's
    // question for the path (`write_refusal`, or `move_away_refusal`).
    let change = |dirfd: u64,
                  addr: u64,
                  follow: bool,
                  rule: &dyn Fn(&Path) -> Option<String>|
     -> Result<Option<(PathBuf, String)>, i32> {
        if plan.existing.is_empty() {
            return Ok(None);
        }
        match target(pid, dirfd, addr, follow) {
            Ok(path) => Ok(rule(&path).map(|why| (path, why))),
            // An fd that names no path (a pipe behind /proc/self/fd/N),
            // or a component that is no directory, where the kernel fails
            // the same way: nothing the plan keeps.
            Err(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let write = |path: &Path| plan.write_refusal(path);
    let away = |path: &Path| plan.move_away_refusal(path);
    let verdict = match op {
        Op::Open(dirfd, addr, flags) => (|| {
            let flags = flags as i32;
            let creating = flags & libc::O_CREAT != 0;
            let writing = flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_TRUNC) != 0;
            // O_EXCL and O_NOFOLLOW never create through a final link.
            let follow = flags & (libc::O_EXCL | libc::O_NOFOLLOW) == 0;
            if !creating {
                return match writing {
                    true => change(dirfd, addr, follow, &write),
                    false => Ok(None),
                };
            }
            // Resolved once for both questions: a creating open is the
            // common one (every `>` in a shell).
            let path = target(pid, dirfd, addr, follow)?;
            if let Some(why) = plan.refusal(&path, &is_gitdir) {
                return Ok(Some((path, why)));
            }
            Ok(writing
                .then(|| write(&path))
                .flatten()
                .map(|why| (path, why)))
        })(),
        Op::Create(dirfd, addr) => check(dirfd, addr, false),
        // A hard link to a kept file is a writable alias of it.
        Op::Link(dirfd, addr, (odfd, old, flags)) => (|| {
            if let Some(hit) = check(dirfd, addr, false)? {
                return Ok(Some(hit));
            }
            let flags = flags as i32;
            if flags & libc::AT_EMPTY_PATH != 0 && read_path(pid, old).is_ok_and(|p| p.is_empty()) {
                return Ok(fd_target(pid, odfd).and_then(|p| write(&p).map(|why| (p, why))));
            }
            change(odfd, old, flags & libc::AT_SYMLINK_FOLLOW != 0, &write)
        })(),
        Op::Change(dirfd, addr, follow) => change(dirfd, addr, follow, &write),
        Op::ChangeFd(fd) => Ok(fd_target(pid, fd).and_then(|p| write(&p).map(|why| (p, why)))),
        Op::Remove(dirfd, addr) => change(dirfd, addr, false, &away),
        // git makes no links in a git directory; one there (`objects`,
        // `logs`, `rebase-merge` replaced by a link) would send git's reads
        // and writes somewhere the allowlist does not look.
        Op::Symlink(dirfd, addr) => (|| {
            if let Some(hit) = check(dirfd, addr, false)? {
                return Ok(Some(hit));
            }
            let path = target(pid, dirfd, addr, false)?;
            Ok(plan.gitdir_of(&path).filter(|g| *g != path).map(|g| {
                let why = format!("a link in the git directory {}", g.display());
                (path, why)
            }))
        })(),
        Op::Rename(odfd, old, ndfd, new, flags) => (|| {
            if let Some(hit) = check(ndfd, new, false)? {
                return Ok(Some(hit));
            }
            // Moving a kept file (or a directory holding one) away, or
            // replacing one.
            for (dirfd, addr) in [(odfd, old), (ndfd, new)] {
                if let Some(hit) = change(dirfd, addr, false, &away)? {
                    return Ok(Some(hit));
                }
            }
            let src = target(pid, odfd, old, false)?;
            let dst = target(pid, ndfd, new, false)?;
            // RENAME_EXCHANGE puts the old name's place in play too.
            if flags & u64::from(libc::RENAME_EXCHANGE) != 0 {
                if let Some(why) = plan.refusal(&src, &is_gitdir) {
                    return Ok(Some((src, why)));
                }
                if let Some(why) = plan.move_refusal(&dst, &src) {
                    return Ok(Some((dst, why)));
                }
            }
            Ok(plan.move_refusal(&src, &dst).map(|why| (src, why)))
        })(),
    };
    match verdict {
        Ok(None) => Decision::Continue,
        Ok(Some((path, why))) => Decision::Refuse((syscall, path, why)),
        Err(errno) => Decision::Fail(errno),
    }
}

/// The absolute path, as the agent sees it, that a call naming `addr`
/// relative to `dirfd` creates: the parent resolved inside the agent's
/// root, then the last component (followed when `follow` and it is a link).
fn target(pid: u32, dirfd: u64, addr: u64, follow: bool) -> Result<PathBuf, i32> {
    let raw = read_path(pid, addr).map_err(|e| e.raw_os_error().unwrap_or(libc::EFAULT))?;
    if raw.is_empty() {
        return Err(libc::ENOENT);
    }
    let mut path = if raw.first() == Some(&b'/') {
        PathBuf::from(OsStr::from_bytes(&raw))
    } else {
        // An int argument: only the low 32 bits are the caller's.
        let base = if dirfd as i32 == libc::AT_FDCWD {
            format!("/proc/{pid}/cwd")
        } else {
            format!("/proc/{pid}/fd/{}", dirfd as i32)
        };
        let base = std::fs::read_link(&base).map_err(|_| libc::EBADF)?;
        if !base.is_absolute() {
            return Err(libc::ENOTDIR);
        }
        base.join(OsStr::from_bytes(&raw))
    };
    path = through_proc(pid, path)?;
    let root = open_path(libc::AT_FDCWD, Path::new(&format!("/proc/{pid}/root")), 0)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EACCES))?;
    for _ in 0..MAX_LINKS {
        let (parent, last) = split(&path);
        let rel = parent.strip_prefix("/").unwrap_or(&parent);
        let dir = open_path(
            root.as_raw_fd(),
            if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            },
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EACCES))?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .map_err(|_| libc::EACCES)?;
        if !real.is_absolute() || real.to_string_lossy().ends_with(" (deleted)") {
            return Err(libc::ENOENT);
        }
        let Some(last) = last else {
            return Ok(real);
        };
        let full = real.join(&last);
        if !follow {
            return Ok(full);
        }
        match readlinkat(&dir, &last) {
            Some(next) if next.is_absolute() => path = next,
            Some(next) => path = real.join(next),
            None => return Ok(full),
        }
    }
    Err(libc::ELOOP)
}

/// The file the agent's descriptor `fd` holds, by the path it was opened
/// at; `None` when it names no path (a pipe, a socket, a deleted file).
fn fd_target(pid: u32, fd: u64) -> Option<PathBuf> {
    let path = std::fs::read_link(format!("/proc/{pid}/fd/{}", fd as i32)).ok()?;
    (path.is_absolute() && !path.to_string_lossy().ends_with(" (deleted)")).then_some(path)
}

/// A path through the agent's own `/proc/self/{fd/N,cwd,root}` (magic
/// links, which the supervisor's resolution would take for its own), made
/// the path they stand for. Other processes' entries are refused.
fn through_proc(pid: u32, path: PathBuf) -> Result<PathBuf, i32> {
    let parts: Vec<&OsStr> = path.iter().collect();
    if parts.len() < 3 || parts[1] != "proc" {
        return Ok(path);
    }
    let who = parts[2].to_string_lossy();
    let own = who == "self" || who == "thread-self" || ns_pid(pid).is_some_and(|p| p == who);
    if !own {
        return Ok(path);
    }
    let (link, rest) = match parts.get(3).map(|p| p.to_string_lossy()) {
        Some(p) if p == "fd" && parts.len() > 4 => (
            format!("/proc/{pid}/fd/{}", parts[4].to_string_lossy()),
            &parts[5..],
        ),
        Some(p) if p == "cwd" => (format!("/proc/{pid}/cwd"), &parts[4..]),
        Some(p) if p == "root" => {
            return Ok(Path::new("/").join(parts[4..].iter().collect::<PathBuf>()));
        }
        _ => return Err(libc::EACCES),
    };
    let base = std::fs::read_link(link).map_err(|_| libc::EBADF)?;
    if !base.is_absolute() {
        return Err(libc::ENOTDIR);
    }
    Ok(base.join(rest.iter().collect::<PathBuf>()))
}

/// The pid of host process `pid` in its own (the cage's) pid namespace.
fn ns_pid(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last().map(str::to_string)
}

/// `path` split into its parent and last component; `None` for a last
/// component that names no new entry (`.`, `..`, the root).
fn split(path: &Path) -> (PathBuf, Option<PathBuf>) {
    let bytes = path.as_os_str().as_bytes();
    let trimmed = {
        let mut end = bytes.len();
        while end > 1 && bytes[end - 1] == b'/' {
            end -= 1;
        }
        &bytes[..end]
    };
    let path = Path::new(OsStr::from_bytes(trimmed));
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !trimmed.ends_with(b"/.") && !trimmed.ends_with(b"..") => {
            (parent.to_path_buf(), Some(PathBuf::from(name)))
        }
        _ => (path.to_path_buf(), None),
    }
}

fn open_path(dirfd: RawFd, path: &Path, resolve: u64) -> io::Result<OwnedFd> {
    crate::sys::openat2(
        dirfd,
        path,
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        resolve,
    )
}

/// The target of `name` in `dir` if it is a symbolic link.
fn readlinkat(dir: &OwnedFd, name: &Path) -> Option<PathBuf> {
    nix::fcntl::readlinkat(dir, name).ok().map(PathBuf::from)
}

/// A NUL-terminated path from the agent's memory, at most PATH_MAX bytes.
fn read_path(pid: u32, addr: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = read_mem_upto(pid, addr, &mut buf)?;
    match buf[..n].iter().position(|&b| b == 0) {
        Some(end) => {
            buf.truncate(end);
            Ok(buf)
        }
        None => Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG)),
    }
}

fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    let n = read_mem_upto(pid, addr, buf)?;
    if n < buf.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// Reads what is readable at `addr`: a path may end just before an
/// unmapped page, so a short read is not an error.
fn read_mem_upto(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut f = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    f.seek(SeekFrom::Start(addr))?;
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if got > 0 && e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::split;
    use std::path::{Path, PathBuf};

    #[test]
    fn split_names_the_entry_a_call_creates() {
        let s = |p: &str| split(Path::new(p));
        assert_eq!(s("/a/b"), (PathBuf::from("/a"), Some(PathBuf::from("b"))));
        assert_eq!(
            s("/a/b///"),
            (PathBuf::from("/a"), Some(PathBuf::from("b")))
        );
        assert_eq!(s("/a/.."), (PathBuf::from("/a/.."), None));
        assert_eq!(s("/"), (PathBuf::from("/"), None));
    }
}
