//! The session's control channel: `cage allow` and `cage deny` change a
//! running proxy session's rules from another terminal, through a unix
//! socket in the session's directory.
//!
//! Why the agent cannot use it:
//! 1. the socket lives in cage's state directory, which the plan hides
//!    from the view (and Landlock mirrors the view), so no path inside the
//!    cage reaches it; the cage has no abstract socket either (its own net
//!    namespace, and Landlock's scope);
//! 2. the socket is mode 0600 in a 0700 directory, and every connection's
//!    peer is checked with SO_PEERCRED: only the user's own uid is served;
//! 3. a rule change is an audit record naming who made it (uid, user name
//!    and pid of the peer) and when it expires.
//!
//! Server ([`Control::start`]) and client ([`request`]); one JSON line
//! each way.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::audit::{self, Log, Record};
use crate::policy::HostPattern;
use crate::proxy::Proxy;
use crate::proxy::rules::{Rule, Rules};

/// The socket's name in the session directory.
pub const SOCKET: &str = "control.sock";

/// Longest request line read.
const MAX_REQUEST: u64 = 4096;

/// How often expiries are checked: the order of events is what matters,
/// not the exact instant.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Allow,
    Deny,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub op: Op,
    pub pattern: String,
    /// Seconds the rule lasts (allow only); none: the session's length.
    pub for_secs: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// A rule added while the session runs.
struct Live {
    rule: Rule,
    deny: bool,
    until: Option<SystemTime>,
}

/// A running control channel; stops with the session (or when dropped).
pub struct Control {
    stop: Arc<AtomicBool>,
    done: Arc<crate::guard::Done>,
    path: PathBuf,
    /// The listener the thread polls: shut down to wake it at once.
    listener: Arc<UnixListener>,
}

/// How long stopping waits for the thread (one tick, and a request in
/// flight), so no rule record lands after the session's end.
const STOP_WAIT: Duration = Duration::from_millis(500);

impl Control {
    /// Listens on `dir/control.sock` and serves on a thread of its own.
    pub fn start(dir: &Path, base: Rules, proxy: Proxy, log: Arc<Log>) -> io::Result<Control> {
        let path = dir.join(SOCKET);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(crate::guard::Done::default());
        let (flag, finished, polled) = (stop.clone(), done.clone(), listener.clone());
        let spawned = std::thread::Builder::new()
            .name("cage:control".into())
            .spawn(move || {
                serve(&polled, &base, &proxy, &log, &flag);
                finished.set();
            });
        if let Err(e) = spawned {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Control {
            stop,
            done,
            path,
            listener,
        })
    }

    /// Stops serving, removes the socket, and waits (bounded) for the
    /// thread.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
        // Wakes the thread's poll now (a listening socket shut down polls
        // readable, and accept then fails), instead of at its next tick:
        // every session's end waited up to a tick for it.
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        self.done.wait(STOP_WAIT);
    }
}

fn serve(listener: &UnixListener, base: &Rules, proxy: &Proxy, log: &Log, stop: &AtomicBool) {
    let mut live: Vec<Live> = Vec::new();
    let me = nix::unistd::getuid().as_raw();
    while !stop.load(Ordering::Relaxed) {
        // Expired rules go first, each with its record.
        let now = SystemTime::now();
        let (gone, kept): (Vec<Live>, Vec<Live>) = live
            .into_iter()
            .partition(|l| l.until.is_some_and(|u| u <= now));
        live = kept;
        if !gone.is_empty() {
            proxy.set_rules(combine(base, &live));
            for l in gone {
                let _ = log.write(Record::RuleChanged(audit::RuleChanged {
                    action: "expired".into(),
                    pattern: l.rule.text.clone(),
                    expires: None,
                    by_uid: None,
                    by_user: None,
                    by_pid: None,
                }));
            }
        }
        match crate::sys::poll_one(listener.as_raw_fd(), libc::POLLIN, TICK.as_millis() as i32) {
            Ok(0) | Err(_) => continue,
            Ok(_) => {}
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let peer =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials);
        let reply = match peer {
            Ok(cred) if cred.uid() == me => {
                handle(&stream, base, &mut live, proxy, log, cred.uid(), cred.pid())
            }
            Ok(cred) => Reply {
                ok: false,
                message: format!(
                    "refused: uid {} is not the session's user (uid {me})",
                    cred.uid()
                ),
            },
            Err(e) => Reply {
                ok: false,
                message: format!("refused: reading the peer's credentials (SO_PEERCRED): {e}"),
            },
        };
        let mut line = serde_json::to_vec(&reply).unwrap_or_default();
        line.push(b'\n');
        let _ = (&stream).write_all(&line);
    }
}

fn handle(
    stream: &UnixStream,
    base: &Rules,
    live: &mut Vec<Live>,
    proxy: &Proxy,
    log: &Log,
    uid: u32,
    pid: i32,
) -> Reply {
    let mut text = String::new();
    let read = io::Read::take(stream, MAX_REQUEST).read_line_into(&mut text);
    let req: Request = match read.ok().and_then(|_| serde_json::from_str(&text).ok()) {
        Some(r) => r,
        None => {
            return Reply {
                ok: false,
                message: "unreadable request".into(),
            };
        }
    };
    let pattern = match HostPattern::parse(&req.pattern) {
        Ok(p) => p,
        Err(e) => {
            return Reply {
                ok: false,
                message: format!("{}: {e}", req.pattern),
            };
        }
    };
    let user = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name);
    let until = req
        .for_secs
        .map(|s| SystemTime::now() + Duration::from_secs(s));
    let text = pattern.to_string();
    let now = audit::rfc3339(SystemTime::now());
    let who = user.clone().unwrap_or_else(|| format!("uid {uid}"));
    let deny = matches!(req.op, Op::Deny);
    // Either way, an earlier live rule for the same pattern is replaced.
    live.retain(|l| l.rule.text != text);
    let rule = Rule {
        pattern,
        text: text.clone(),
        source: format!(
            "cage {} by {who} at {now}",
            if deny { "deny" } else { "allow" }
        ),
    };
    live.push(Live {
        rule,
        deny,
        until: if deny { None } else { until },
    });
    proxy.set_rules(combine(base, live));
    let expires = if deny {
        None
    } else {
        until.map(audit::rfc3339)
    };
    let written = log.write(Record::RuleChanged(audit::RuleChanged {
        action: if deny { "deny" } else { "allow" }.into(),
        pattern: text.clone(),
        expires: expires.clone(),
        by_uid: Some(uid),
        by_user: user,
        by_pid: Some(pid),
    }));
    if let Err(e) = written {
        // A change that cannot be recorded is not made.
        live.retain(|l| l.rule.text != text);
        proxy.set_rules(combine(base, live));
        return Reply {
            ok: false,
            message: format!("not changed: the audit record could not be written: {e}"),
        };
    }
    Reply {
        ok: true,
        message: match (deny, expires) {
            (true, _) => format!("{text} is denied for the rest of the session"),
            (false, Some(t)) => format!("{text} is allowed until {t}"),
            (false, None) => format!("{text} is allowed for the rest of the session"),
        },
    }
}

/// The plan's rules with the live ones: live denials first (a deny wins
/// anyway), live allows after the plan's.
fn combine(base: &Rules, live: &[Live]) -> Rules {
    let mut rules = base.clone();
    for l in live {
        if l.deny {
            rules.deny.push(l.rule.clone());
        } else {
            rules.allow.push(l.rule.clone());
        }
    }
    rules
}

trait ReadLineInto {
    fn read_line_into(self, buf: &mut String) -> io::Result<usize>;
}

impl<R: io::Read> ReadLineInto for R {
    fn read_line_into(self, buf: &mut String) -> io::Result<usize> {
        BufReader::new(self).read_line(buf)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "session {id} has no control channel ({path} is missing): only a running session in \
         proxy network mode takes `cage allow` and `cage deny`"
    )]
    NoChannel { id: String, path: PathBuf },
    #[error("connecting to the control channel {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("talking to the control channel {path}")]
    Talk {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("session {id}: {message}")]
    Refused { id: String, message: String },
}

/// Client side: sends `req` to the session in `dir`; the reply's message.
pub fn request(dir: &Path, id: &str, req: &Request) -> Result<String, ControlError> {
    let path = dir.join(SOCKET);
    if !path.exists() {
        return Err(ControlError::NoChannel {
            id: id.to_string(),
            path,
        });
    }
    let talk = |source| ControlError::Talk {
        path: path.clone(),
        source,
    };
    let stream = UnixStream::connect(&path).map_err(|source| ControlError::Connect {
        path: path.clone(),
        source,
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(talk)?;
    let mut line = serde_json::to_vec(req).map_err(|e| talk(io::Error::other(e)))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(talk)?;
    let mut text = String::new();
    BufReader::new(&stream).read_line(&mut text).map_err(talk)?;
    let reply: Reply = serde_json::from_str(&text).map_err(|e| talk(io::Error::other(e)))?;
    if reply.ok {
        Ok(reply.message)
    } else {
        Err(ControlError::Refused {
            id: id.to_string(),
            message: reply.message,
        })
    }
}
