//! The proxy's threads: a bounded pool, grown on demand, that keeps a few
//! idle threads for the next connections instead of starting a thread per
//! connection and per tunnel direction.
//!
//! A job runs on an idle thread if there is one, else on a new thread while
//! fewer than `max` run; otherwise it is refused and the caller closes the
//! connection, as the connection cap does. A job is queued only when an
//! idle thread is waiting for it (`jobs.len() < idle` always holds), so a
//! job never waits behind a long tunnel. No thread exists until the first
//! job: a session that never connects pays for none.
//!
//! After a job, a thread waits up to [`IDLE_FOR`] for the next one and
//! exits if none comes; no more than [`IDLE_KEPT`] wait at once, so a
//! burst of tunnels does not leave its threads behind.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What a thread of the pool runs.
pub(super) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Idle threads kept for the next connections.
const IDLE_KEPT: usize = 8;
/// How long an idle thread waits for a job before it exits.
const IDLE_FOR: Duration = Duration::from_secs(30);
/// Stack for a thread: parsing, getaddrinfo (glibc's resolver wants some
/// room), then relaying.
const STACK: usize = 256 * 1024;

pub(super) struct Pool {
    state: Mutex<State>,
    ready: Condvar,
    max: usize,
}

struct State {
    /// Jobs handed to idle threads, not yet taken.
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads alive, idle or not.
    threads: usize,
}

impl Pool {
    /// A pool of at most `max` threads, none started yet.
    pub(super) fn new(max: usize) -> Pool {
        Pool {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
                threads: 0,
            }),
            ready: Condvar::new(),
            max,
        }
    }

    /// Runs `job` on a thread of the pool; false (and `job` dropped
    /// unrun) when `max` threads are busy or no thread could start.
    pub(super) fn run(self: &Arc<Self>, job: Job) -> bool {
        let mut st = self.lock();
        if st.idle > st.jobs.len() {
            st.jobs.push_back(job);
            drop(st);
            self.ready.notify_one();
            return true;
        }
        if st.threads >= self.max {
            return false;
        }
        st.threads += 1;
        drop(st);
        let pool = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("cage:conn".into())
            .stack_size(STACK)
            .spawn(move || pool.work(job));
        if spawned.is_err() {
            self.lock().threads -= 1;
            return false;
        }
        true
    }

    /// Threads alive now (idle or busy).
    #[cfg(test)]
    pub(super) fn threads(&self) -> usize {
        self.lock().threads
    }

    /// A thread's life: its first job, then whatever comes while it is
    /// idle, until it has waited too long or enough others are idle.
    fn work(&self, first: Job) {
        let mut job = first;
        loop {
            job();
            let Some(next) = self.next() else { return };
            job = next;
        }
    }

    /// Waits for the next job; None when this thread should exit (its
    /// count already taken off).
    fn next(&self) -> Option<Job> {
        let mut st = self.lock();
        if st.idle >= IDLE_KEPT {
            st.threads -= 1;
            return None;
        }
        st.idle += 1;
        loop {
            if let Some(job) = st.jobs.pop_front() {
                st.idle -= 1;
                return Some(job);
            }
            let (guard, waited) = self
                .ready
                .wait_timeout(st, IDLE_FOR)
                .unwrap_or_else(|p| p.into_inner());
            st = guard;
            if waited.timed_out() && st.jobs.is_empty() {
                st.idle -= 1;
                st.threads -= 1;
                return None;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A job never runs under the lock, so a poisoned one still holds
        // consistent counts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn reuses_an_idle_thread() {
        let pool = Arc::new(Pool::new(4));
        let (tx, rx) = mpsc::channel();
        for _ in 0..5 {
            let tx = tx.clone();
            assert!(pool.run(Box::new(move || {
                tx.send(std::thread::current().id()).unwrap_or(())
            })));
            // One at a time: the thread is back to idle before the next.
            let id = rx.recv().ok();
            assert!(id.is_some());
            while pool.lock().idle == 0 {
                std::thread::yield_now();
            }
        }
        assert_eq!(pool.threads(), 1);
    }

    #[test]
    fn refuses_past_its_bound() {
        let pool = Arc::new(Pool::new(2));
        let (release, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        for _ in 0..2 {
            let wait = Arc::clone(&wait);
            assert!(pool.run(Box::new(move || {
                let _ = wait.lock().map(|w| w.recv());
            })));
        }
        let ran = Arc::new(Mutex::new(false));
        let r = Arc::clone(&ran);
        assert!(!pool.run(Box::new(move || {
            *r.lock().unwrap_or_else(|p| p.into_inner()) = true
        })));
        assert_eq!(pool.threads(), 2);
        release.send(()).unwrap_or(());
        release.send(()).unwrap_or(());
        assert!(!*ran.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
