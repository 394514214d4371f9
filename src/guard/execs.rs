//! Every program started inside the cage, observed: the guard's program
//! hands each execve/execveat over, [`observe`] reads what it says before
//! the kernel goes on, and the [`Tracker`] writes an `exec` record, holds a
//! pidfd on the process, and writes an `exec_end` record when it ends.
//!
//! Observation never refuses: the call always goes on (CONTINUE), whatever
//! this module fails to read, and records reach the log through a bounded
//! queue ([`Recorder`]) so a slow disk never holds an exec; a full queue or
//! a full log costs records, counted in a `records_dropped` record.
//!
//! What the kernel tells cage, and what the agent can bend (README, "What
//! the log can and cannot say"):
//! 1. that a call was made, by which process, its parent, its working
//!    directory, and what path resolves to: read from the kernel, not from
//!    the agent; every thread and every descendant is under the filter;
//! 2. argv and the path string: read from the agent's memory before the
//!    kernel reads them again, so another thread can change them between
//!    the two reads (the log then shows what the agent wrote first);
//! 3. the end: a pidfd taken while the caller waits in execve refers to
//!    that process whatever its pid names later; its wait status comes
//!    from PIDFD_INFO_EXIT (Linux 6.15) once its parent has reaped it, so a
//!    process whose parent never reaps it ends as "unknown" at the end of
//!    the session, as do all ends on older kernels.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant, SystemTime};

use crate::audit::{self, Exec, ExecEnd, ExitStatus, Log, Record};

/// Processes watched for their end at once (each holds a descriptor);
/// execs beyond are recorded, their ends not.
const MAX_WATCHED: usize = 512;

/// Records waiting for the log's writer; more are dropped and counted.
const QUEUE: usize = 4096;

/// How long the end of the session waits for the writer to empty the
/// queue.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// How long the end of the session waits for exited processes' statuses.
const REAP_WAIT: Duration = Duration::from_millis(250);

/// How long the writer holds records for the session's start record,
/// which must open the log (the first exec can be seen before it).
const START_WAIT: Duration = Duration::from_secs(5);

/// What an exec notification said, read before the call went on.
pub struct Seen {
    tgid: i32,
    /// Inside the cage, read while the caller waits (a quick program is
    /// gone from /proc before the record is made).
    pid: Option<u32>,
    ppid: Option<u32>,
    start_time: Option<u64>,
    /// Taken while the caller waits, so it names this process.
    pidfd: Option<OwnedFd>,
    syscall: &'static str,
    path: PathBuf,
    exe: Option<PathBuf>,
    argv: Vec<String>,
    argv_truncated: bool,
    cwd: Option<PathBuf>,
}

/// Reads an exec notification of thread `req.pid`. `None` when the call
/// cannot start a program (its path names nothing executable inside the
/// cage: a shell trying each directory of PATH), so it is not recorded.
pub fn observe(req: &libc::seccomp_notif, tracker: &Tracker) -> Option<Seen> {
    let tid = req.pid;
    let a = req.data.args;
    let (syscall, dirfd, path_addr, argv_addr, flags) = match i64::from(req.data.nr) {
        libc::SYS_execve => ("execve", super::AT_FDCWD, a[0], a[1], 0),
        libc::SYS_execveat => ("execveat", a[0], a[1], a[2], a[4] as i32),
        _ => return None,
    };
    // Unreadable (the caller made itself non-dumpable where cage holds
    // no capability): the exec is still recorded, with what the kernel
    // says elsewhere.
    let mem = File::open(format!("/proc/{tid}/mem")).ok();
    let raw = mem
        .as_ref()
        .and_then(|m| read_string(m, path_addr, libc::PATH_MAX as usize))
        .map(|(s, _)| s);
    let unread = raw.is_none();
    let raw = raw.unwrap_or_default();
    let exe = if unread {
        None
    } else if raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        // fexecve, or a memfd: the descriptor's target.
        std::fs::read_link(format!("/proc/{tid}/fd/{}", dirfd as i32)).ok()
    } else if raw.is_empty() {
        return None;
    } else {
        match super::target(tid, dirfd, path_addr, true) {
            Ok(p) => {
                if !executable(tid, &p) {
                    return None;
                }
                Some(p)
            }
            // The directory is missing: the call fails with ENOENT.
            Err(libc::ENOENT) | Err(libc::ENOTDIR) => return None,
            Err(_) => None,
        }
    };
    let (argv, argv_truncated) = match &mem {
        Some(m) => read_argv(m, argv_addr),
        None => (Vec::new(), true),
    };
    let tgid = tgid_of(tid).unwrap_or(tid as i32);
    let (pid, ppid) = inside_ids(tgid);
    let pidfd = if tracker.live.contains_key(&tgid) || !tracker.can_watch() {
        None
    } else {
        crate::sys::pidfd_open(tgid).ok()
    };
    Some(Seen {
        tgid,
        pid,
        ppid,
        start_time: start_time(tgid),
        pidfd,
        syscall,
        path: PathBuf::from(OsStr::from_bytes(&raw)),
        exe,
        argv,
        argv_truncated,
        cwd: std::fs::read_link(format!("/proc/{tid}/cwd")).ok(),
    })
}

/// Whether `path` (inside the cage's root) is a file some execute bit
/// allows: what the kernel will at least ask of it.
fn executable(pid: u32, path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let root = format!("/proc/{pid}/root");
    let Ok(root) = crate::sys::openat2(
        libc::AT_FDCWD,
        Path::new(&root),
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        0,
    ) else {
        // Cannot tell: record it.
        return true;
    };
    let rel = path.strip_prefix("/").unwrap_or(path);
    let Ok(fd) = crate::sys::openat2(
        root.as_raw_fd(),
        rel,
        (libc::O_PATH | libc::O_CLOEXEC) as u64,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    ) else {
        return false;
    };
    match File::from(fd).metadata() {
        Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
        Err(_) => true,
    }
}

/// The thread group (process) of host thread `tid`.
fn tgid_of(tid: u32) -> Option<i32> {
    status_field(tid as i32, "Tgid:")?.parse().ok()
}

/// The pid of host process `pid` in the cage's pid namespace (the last
/// NSpid field), and its parent's.
fn inside_ids(pid: i32) -> (Option<u32>, Option<u32>) {
    let inner = |p: i32| {
        status_field(p, "NSpid:")?
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    };
    let ppid: Option<i32> = status_field(pid, "PPid:").and_then(|p| p.parse().ok());
    (inner(pid), ppid.and_then(inner))
}

/// Field 22 of /proc/PID/stat: when the process started.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold anything but ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn status_field(pid: i32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    Some(line[name.len()..].trim().to_string())
}

/// A NUL-terminated string at `addr`, at most `max` bytes: the bytes and
/// whether it was cut.
fn read_string(mem: &File, addr: u64, max: usize) -> Option<(Vec<u8>, bool)> {
    let mut buf = vec![0u8; max];
    let mut got = 0;
    // Page by page: a string may end just before an unmapped page.
    while got < max {
        let at = addr.checked_add(got as u64)?;
        let page_left = 4096 - (at % 4096) as usize;
        let want = page_left.min(max - got);
        match mem.read_at(&mut buf[got..got + want], at) {
            Ok(0) | Err(_) if got == 0 => return None,
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(end) = buf[got..got + n].iter().position(|&b| b == 0) {
                    buf.truncate(got + end);
                    return Some((buf, false));
                }
                got += n;
            }
        }
    }
    buf.truncate(got);
    Some((buf, true))
}

/// argv from the pointer array at `addr`, within the bounds of
/// `audit::MAX_*`: the arguments and whether any bound cut them.
fn read_argv(mem: &File, addr: u64) -> (Vec<String>, bool) {
    let mut argv = Vec::new();
    let mut total = 0;
    if addr == 0 {
        return (argv, false);
    }
    for i in 0..=audit::MAX_ARGS {
        let mut ptr = [0u8; 8];
        let Some(at) = addr.checked_add(8 * i as u64) else {
            return (argv, true);
        };
        if mem.read_at(&mut ptr, at).ok() != Some(8) {
            return (argv, true);
        }
        let ptr = u64::from_ne_bytes(ptr);
        if ptr == 0 {
            return (argv, false);
        }
        if i == audit::MAX_ARGS || total >= audit::MAX_ARGV_BYTES {
            return (argv, true);
        }
        let max = audit::MAX_ARG_BYTES.min(audit::MAX_ARGV_BYTES - total);
        let Some((bytes, cut)) = read_string(mem, ptr, max) else {
            return (argv, true);
        };
        total += bytes.len();
        argv.push(String::from_utf8_lossy(&bytes).into_owned());
        if cut {
            return (argv, true);
        }
    }
    (argv, true)
}

/// A watched process: its latest exec, and the pidfd that tells its end.
struct Watched {
    id: u64,
    pid: Option<u32>,
    program: String,
    started: Instant,
    /// The process's start time (clock ticks since boot, /proc/PID/stat),
    /// which tells a second exec of the same process from a reused pid.
    start_time: Option<u64>,
    pidfd: Option<OwnedFd>,
    /// When its pidfd said it had exited (waiting for its reaping).
    ended: Option<Instant>,
}

/// The processes seen to exec, until they end.
pub struct Tracker {
    recorder: Recorder,
    next_id: u64,
    live: HashMap<i32, Watched>,
    /// Exited, not yet reaped: retried until the end of the session.
    unreaped: Vec<Watched>,
    /// Why ends cannot be watched here, once found out.
    no_status: Option<String>,
}

impl Tracker {
    pub fn new(log: Arc<Log>) -> Tracker {
        Tracker {
            recorder: Recorder::start(log),
            next_id: 1,
            live: HashMap::new(),
            unreaped: Vec::new(),
            no_status: None,
        }
    }

    /// Records an exec that has been let go on.
    pub fn exec(&mut self, seen: Seen, at: SystemTime) {
        let now = Instant::now();
        // A pid seen before: the same process starting another program,
        // unless the old one has ended and the pid been reused.
        if let Some(old) = self.live.remove(&seen.tgid) {
            // exec keeps the start time; a reused pid has another.
            let dead = old.start_time.is_none() || old.start_time != seen.start_time;
            if dead {
                self.exited(old, now);
            } else {
                self.end(&old, ExitStatus::Replaced, now, at);
                if old.pidfd.is_some() {
                    return self.record(seen, old.pidfd, now, at);
                }
            }
        }
        let mut seen = seen;
        let pidfd = seen.pidfd.take().or_else(|| {
            // The pid was watched when the exec was seen, by a process
            // that has since ended: take one now, if it is still there.
            (self.can_watch()
                && start_time(seen.tgid) == seen.start_time
                && seen.start_time.is_some())
            .then(|| crate::sys::pidfd_open(seen.tgid).ok())
            .flatten()
        });
        self.record(seen, pidfd, now, at);
    }

    fn can_watch(&self) -> bool {
        self.live.len() + self.unreaped.len() < MAX_WATCHED
    }

    fn record(&mut self, seen: Seen, pidfd: Option<OwnedFd>, now: Instant, at: SystemTime) {
        let id = self.next_id;
        self.next_id += 1;
        let (pid, ppid) = (seen.pid, seen.ppid);
        let program = seen
            .exe
            .as_deref()
            .unwrap_or(&seen.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.recorder.send(
            Record::Exec(Exec {
                id,
                pid,
                ppid,
                host_pid: seen.tgid as u32,
                syscall: seen.syscall.to_string(),
                path: seen.path,
                exe: seen.exe,
                argv: seen.argv,
                argv_truncated: seen.argv_truncated,
                cwd: seen.cwd,
                watched: pidfd.is_some(),
            }),
            at,
        );
        if pidfd.is_some() {
            self.live.insert(
                seen.tgid,
                Watched {
                    id,
                    pid,
                    program,
                    started: now,
                    start_time: seen.start_time,
                    pidfd,
                    ended: None,
                },
            );
        }
    }

    /// The descriptors to poll for ends, with the pid each stands for.
    pub fn pollfds(&self) -> Vec<(i32, libc::pollfd)> {
        self.live
            .iter()
            .filter_map(|(tgid, w)| {
                let fd = w.pidfd.as_ref()?.as_raw_fd();
                Some((
                    *tgid,
                    libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ))
            })
            .collect()
    }

    /// Process `tgid`'s pidfd is readable: it has exited.
    pub fn ended(&mut self, tgid: i32) {
        if let Some(w) = self.live.remove(&tgid) {
            self.exited(w, Instant::now());
        }
    }

    fn exited(&mut self, mut w: Watched, now: Instant) {
        w.ended.get_or_insert(now);
        if !self.try_status(&w) {
            self.unreaped.push(w);
        }
    }

    /// Writes `w`'s end if the kernel has its status; false if not yet.
    fn try_status(&mut self, w: &Watched) -> bool {
        let Some(fd) = &w.pidfd else { return true };
        let ended = w.ended.unwrap_or_else(Instant::now);
        let at = SystemTime::now() - ended.elapsed();
        match crate::sys::pidfd_exit_status(fd.as_raw_fd()) {
            Ok(Some(status)) => {
                self.end(w, ExitStatus::from_wait(status), ended, at);
                true
            }
            Ok(None) => false,
            Err(e) => {
                let reason = self.no_status.get_or_insert_with(|| {
                    format!(
                        "this kernel does not give the exit status of a process that is not \
                         cage's child (PIDFD_GET_INFO: {e}; Linux 6.15 does)"
                    )
                });
                let status = ExitStatus::Unknown {
                    reason: reason.clone(),
                };
                self.end(w, status, ended, at);
                true
            }
        }
    }

    fn end(&mut self, w: &Watched, status: ExitStatus, ended: Instant, at: SystemTime) {
        self.recorder.send(
            Record::ExecEnd(ExecEnd {
                id: w.id,
                pid: w.pid,
                program: w.program.clone(),
                status,
                duration_ms: ended.saturating_duration_since(w.started).as_millis() as u64,
            }),
            at,
        );
    }

    /// Retries the exited processes waiting to be reaped.
    pub fn retry_unreaped(&mut self) {
        for w in std::mem::take(&mut self.unreaped) {
            if !self.try_status(&w) {
                self.unreaped.push(w);
            }
        }
    }

    /// The session is over: every process still watched gets its end
    /// (or says why not), and the queue is flushed.
    pub fn finish(mut self) {
        // Called once no process is left under the filter, or the cage
        // has exited: each pidfd turns readable soon (the listener's hang-up
        // can come first), unless the process outlived the cage's init.
        let end = Instant::now() + REAP_WAIT;
        let live: Vec<Watched> = self.live.drain().map(|(_, w)| w).collect();
        for w in live {
            let left = end.saturating_duration_since(Instant::now()).as_millis() as i32;
            let gone = w.pidfd.as_ref().is_some_and(|fd| {
                crate::sys::poll_one(fd.as_raw_fd(), libc::POLLIN, left).is_ok_and(|r| r != 0)
            });
            if gone {
                self.exited(w, Instant::now());
            } else {
                let status = ExitStatus::Unknown {
                    reason: "still running when the session ended".into(),
                };
                self.end(&w, status, Instant::now(), SystemTime::now());
            }
        }
        // Reaping and the kernel's note of the status are not one step.
        loop {
            self.retry_unreaped();
            if self.unreaped.is_empty() || Instant::now() >= end {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for w in std::mem::take(&mut self.unreaped) {
            let status = ExitStatus::Unknown {
                reason: "exited, but its parent had not reaped it when the session ended".into(),
            };
            let ended = w.ended.unwrap_or_else(Instant::now);
            let at = SystemTime::now() - ended.elapsed();
            self.end(&w, status, ended, at);
        }
        self.recorder.finish();
    }
}

/// A bounded queue to the log, served by a writer thread of its own, so
/// the guard never waits on the disk. Bounded by a count, not by a
/// preallocated channel: a `sync_channel` of [`QUEUE`] records wrote all
/// of its 800 KiB at the start of every session (page faults on the way
/// to the agent's first exec, and resident memory for the whole session).
pub struct Recorder {
    tx: Option<Sender<(SystemTime, Record)>>,
    /// Records sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    log: Arc<Log>,
    /// Records the full queue refused, not yet reported.
    dropped: Arc<AtomicU64>,
    /// Records the log refused (its cap).
    refused: Arc<AtomicU64>,
    done: Arc<crate::guard::Done>,
}

impl Recorder {
    pub fn start(log: Arc<Log>) -> Recorder {
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let done = Arc::new(crate::guard::Done::default());
        let (l, d, r, f) = (log.clone(), dropped.clone(), refused.clone(), done.clone());
        let q = queued.clone();
        let spawned = std::thread::Builder::new()
            .name("cage:records".into())
            .spawn(move || {
                write_all(&rx, &q, &l, &d, &r);
                f.set();
            });
        Recorder {
            // No thread: every record is dropped, and counted.
            tx: spawned.is_ok().then_some(tx),
            queued,
            log,
            dropped,
            refused,
            done,
        }
    }

    /// Queues `record`; never blocks.
    pub fn send(&self, record: Record, at: SystemTime) {
        let sent = match &self.tx {
            Some(tx) => {
                let room = self.queued.fetch_add(1, Ordering::AcqRel) < QUEUE;
                let sent = room && tx.send((at, record)).is_ok();
                if !sent {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                }
                sent
            }
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the queue, waits (bounded) for the writer, and writes one
    /// last count of what was dropped.
    pub fn finish(mut self) {
        drop(self.tx.take());
        self.done.wait(FLUSH_WAIT);
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        let refused = self.refused.swap(0, Ordering::Relaxed);
        for (count, reason) in [
            (dropped, "the queue to the log was full"),
            (refused, "the log had reached its cap"),
        ] {
            if count > 0 {
                let _ = self
                    .log
                    .write(Record::RecordsDropped(audit::RecordsDropped {
                        count,
                        reason: reason.into(),
                        at_end: true,
                    }));
            }
        }
    }
}

fn write_all(
    rx: &Receiver<(SystemTime, Record)>,
    queued: &AtomicUsize,
    log: &Log,
    dropped: &AtomicU64,
    refused: &AtomicU64,
) {
    let mut waited = false;
    while let Ok((at, record)) = rx.recv() {
        queued.fetch_sub(1, Ordering::AcqRel);
        if !waited {
            waited = true;
            let end = Instant::now() + START_WAIT;
            while !log.opened() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let mark = Record::RecordsDropped(audit::RecordsDropped {
                count: lost,
                reason: "the queue to the log was full".into(),
                at_end: false,
            });
            if log.write(mark).is_err() {
                refused.fetch_add(lost, Ordering::Relaxed);
            }
        }
        if log.write_at(record, at).is_err() {
            refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_read_within_its_bounds() {
        // This process's own memory stands for the agent's.
        let args: Vec<std::ffi::CString> = ["sh", "-c", "echo hi"]
            .iter()
            .map(|s| std::ffi::CString::new(*s).unwrap())
            .collect();
        let mut ptrs: Vec<u64> = args.iter().map(|a| a.as_ptr() as u64).collect();
        ptrs.push(0);
        let mem = File::open("/proc/self/mem").unwrap();
        let (argv, cut) = read_argv(&mem, ptrs.as_ptr() as u64);
        assert_eq!(argv, ["sh", "-c", "echo hi"]);
        assert!(!cut);

        let long = std::ffi::CString::new(vec![b'x'; audit::MAX_ARG_BYTES + 10]).unwrap();
        let many: Vec<u64> = std::iter::repeat_n(long.as_ptr() as u64, 8)
            .chain([0])
            .collect();
        let (argv, cut) = read_argv(&mem, many.as_ptr() as u64);
        assert!(cut);
        assert_eq!(argv.len(), 1);
        assert_eq!(argv[0].len(), audit::MAX_ARG_BYTES);

        let short = std::ffi::CString::new("a").unwrap();
        let lots: Vec<u64> = std::iter::repeat_n(short.as_ptr() as u64, audit::MAX_ARGS + 5)
            .chain([0])
            .collect();
        let (argv, cut) = read_argv(&mem, lots.as_ptr() as u64);
        assert!(cut);
        assert_eq!(argv.len(), audit::MAX_ARGS);
        assert_eq!(read_argv(&mem, 0), (vec![], false));
    }

    #[test]
    fn a_full_queue_drops_and_counts_never_blocks() {
        let path = std::env::temp_dir().join(format!("cage-records-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = Arc::new(Log::create_capped(&path, 64 << 10).unwrap());
        log.assume_opened();
        let recorder = Recorder::start(log.clone());
        let end = |id| {
            Record::ExecEnd(ExecEnd {
                id,
                pid: Some(2),
                program: "true".into(),
                status: ExitStatus::Exited { code: 0 },
                duration_ms: 1,
            })
        };
        for id in 0..(QUEUE as u64 * 4) {
            recorder.send(end(id), SystemTime::now());
        }
        recorder.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<audit::Line> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ends = lines
            .iter()
            .filter(|l| matches!(l.record, Record::ExecEnd(_)))
            .count() as u64;
        let dropped: u64 = lines
            .iter()
            .filter_map(|l| match &l.record {
                Record::RecordsDropped(d) => Some(d.count),
                _ => None,
            })
            .sum();
        // Every record is either in the log or counted as dropped; the cap
        // held.
        assert_eq!(ends + dropped, QUEUE as u64 * 4, "{ends} + {dropped}");
        assert!(dropped > 0);
        assert!(text.len() < (64 << 10) + 4096);
        std::fs::remove_file(&path).unwrap();
    }
}
