//! Output for people: what the agent chose, made visible, and writes to a
//! terminal the agent may have sabotaged.
//!
//! Escaping. Every string that originates inside the cage (a path, a DNS
//! name, a diff line, a log field) passes through one of the `escape*`
//! functions before it reaches a terminal, so it cannot move the cursor,
//! erase a line, reorder text (bidi overrides) or hide itself (zero-width
//! and tag characters). Control characters become C-style escapes (`\e`,
//! `\r`, `\t`, `\x7f`), dangerous code points `\u{202e}`, invalid UTF-8
//! `\xNN`. JSON output never goes through here: it stays exact.
//!
//! Writing. The supervisor shares stderr with the agent, which can set
//! O_NONBLOCK on it, fill it, or stop the terminal (`tcflow(TCOOFF)`).
//! [`emit`] writes with a bound: a few milliseconds of retries in all, then
//! it gives up on the terminal for the rest of the process, and never
//! panics. Audit records are written before anything is printed, so giving
//! up costs only the copy on the screen.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A single field (a name, a host, a path): every control character is
/// escaped, newlines and tabs included, and a backslash is doubled so the
/// rendering is unambiguous.
pub fn escape(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

/// [`escape`] for an OS string (a file name), which need not be UTF-8.
pub fn escape_os(s: &OsStr) -> String {
    escape_bytes(s.as_bytes())
}

/// [`escape`] for a path.
pub fn escape_path(p: &std::path::Path) -> String {
    escape_os(p.as_os_str())
}

/// [`escape`] for bytes: invalid UTF-8 is shown as `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    render(b, Style::Field)
}

/// One line of file content (a diff body line, without its terminator):
/// like [`escape_bytes`], but a tab stays a tab (it only moves the cursor
/// right, and code is full of them) and a backslash stays single (code is
/// full of those too).
pub fn escape_line(b: &[u8]) -> String {
    render(b, Style::Line)
}

/// A message of several lines that may quote agent-chosen text (an error
/// chain): newlines stay, every other control character is escaped.
pub fn escape_text(s: &str) -> String {
    render(s.as_bytes(), Style::Text)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Field,
    Line,
    Text,
}

fn render(mut b: &[u8], style: Style) -> String {
    let mut out = String::with_capacity(b.len());
    loop {
        match std::str::from_utf8(b) {
            Ok(s) => {
                push_str(&mut out, s, style);
                return out;
            }
            Err(e) => {
                let (good, rest) = b.split_at(e.valid_up_to());
                // `good` is valid UTF-8 by `valid_up_to`.
                push_str(&mut out, std::str::from_utf8(good).unwrap_or(""), style);
                let bad = e.error_len().unwrap_or(rest.len());
                for byte in &rest[..bad] {
                    let _ = write!(out, "\\x{byte:02x}");
                }
                b = &rest[bad..];
            }
        }
    }
}

fn push_str(out: &mut String, s: &str, style: Style) {
    for c in s.chars() {
        match c {
            '\\' if style == Style::Field => out.push_str("\\\\"),
            '\n' if style == Style::Text => out.push('\n'),
            '\t' if style == Style::Line => out.push('\t'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x1b' => out.push_str("\\e"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if dangerous(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Code points a terminal acts on or shows as nothing: C1 controls (CSI
/// and OSC among them), bidi embeddings, overrides, isolates and marks,
/// zero-width and invisible formatting, line and paragraph separators,
/// interlinear annotations, and the tag block (invisible text).
pub fn dangerous(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x9f
        | 0x00ad
        | 0x034f
        | 0x061c
        | 0x115f | 0x1160
        | 0x17b4 | 0x17b5
        | 0x180b..=0x180f
        | 0x200b..=0x200f
        | 0x2028..=0x202e
        | 0x2060..=0x206f
        | 0x3164
        | 0xfe00..=0xfe0f
        | 0xfeff
        | 0xffa0
        | 0xfff0..=0xfffb
        | 0x1d173..=0x1d17a
        | 0xe0000..=0xe0fff
    )
}

/// Whether `text` would reach a terminal inert: no byte below 0x20 but
/// `\n` (and `\t` when `tabs`), no DEL, no C1 or other [`dangerous`] code
/// point. Tests use it as the terminal-like check.
pub fn is_inert(text: &str, tabs: bool) -> bool {
    text.chars().all(|c| {
        !(((c as u32) < 0x20 && c != '\n' && !(tabs && c == '\t')) || c == '\x7f' || dangerous(c))
    })
}

/// The whole budget for retrying a terminal that does not take output
/// (EAGAIN, or a stopped terminal), across the process.
const BUDGET: Duration = Duration::from_millis(5);

/// Set once the terminal is given up on: later writes are dropped at once.
static GAVE_UP: AtomicBool = AtomicBool::new(false);
/// Microseconds of the budget spent so far.
static SPENT_US: AtomicU64 = AtomicU64::new(0);

/// Writes one line (a newline is added) to stderr with the supervisor's
/// bound: see the module comment. Never fails, never panics.
pub fn emit(line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let stderr = io::stderr();
    let _ = write_bounded(stderr.as_fd(), &bytes);
}

/// Writes `bytes` to `fd` without ever blocking for long: the descriptor
/// is switched to O_NONBLOCK for the write (and switched back), EAGAIN is
/// waited out with poll(2) within what is left of [`BUDGET`], EINTR is
/// retried, and anything else (EPIPE, EIO) gives up. (A regular file never
/// answers EAGAIN, so it is written whole.)
pub fn write_bounded(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if GAVE_UP.load(Ordering::Relaxed) {
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    let flags = fcntl(fd, FcntlArg::F_GETFL).map(OFlag::from_bits_truncate);
    // Only switch a descriptor that blocks: one the agent left
    // non-blocking stays so.
    let switched = match flags {
        Ok(f) if !f.contains(OFlag::O_NONBLOCK) => {
            fcntl(fd, FcntlArg::F_SETFL(f | OFlag::O_NONBLOCK)).is_ok()
        }
        _ => false,
    };
    let result = write_nonblocking(fd, bytes);
    if switched && let Ok(f) = flags {
        let _ = fcntl(fd, FcntlArg::F_SETFL(f));
    }
    if result.is_err() {
        GAVE_UP.store(true, Ordering::Relaxed);
    }
    result
}

fn write_nonblocking(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let spent = SPENT_US.load(Ordering::Relaxed);
                let left = (BUDGET.as_micros() as u64).saturating_sub(spent);
                if left == 0 {
                    return Err(io::Error::from_raw_os_error(libc::EAGAIN));
                }
                let start = Instant::now();
                let ms = left.div_ceil(1000).min(u16::MAX as u64) as u16;
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(ms));
                let took = start.elapsed().as_micros() as u64;
                // At least a microsecond per wait, so a poll that returns
                // at once without room cannot loop for ever.
                SPENT_US.fetch_add(took.max(1), Ordering::Relaxed);
            }
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(())
}

/// Whether stdin, stdout and stderr were non-blocking when cage started.
/// The agent shares their file descriptions and can flip O_NONBLOCK on the
/// user's terminal; [`Stdio::restore`] puts the bit back at the end, so the
/// user's shell does not inherit the agent's choice.
pub struct Stdio {
    nonblocking: [Option<bool>; 3],
}

impl Stdio {
    pub fn now() -> Stdio {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let get = |fd: BorrowedFd<'_>| {
            fcntl(fd, FcntlArg::F_GETFL)
                .ok()
                .map(|f| OFlag::from_bits_truncate(f).contains(OFlag::O_NONBLOCK))
        };
        Stdio {
            nonblocking: [
                get(io::stdin().as_fd()),
                get(io::stdout().as_fd()),
                get(io::stderr().as_fd()),
            ],
        }
    }

    pub fn restore(&self) {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let set = |fd: BorrowedFd<'_>, was: Option<bool>| {
            let (Some(was), Ok(f)) = (was, fcntl(fd, FcntlArg::F_GETFL)) else {
                return;
            };
            let mut f = OFlag::from_bits_truncate(f);
            if f.contains(OFlag::O_NONBLOCK) != was {
                f.set(OFlag::O_NONBLOCK, was);
                let _ = fcntl(fd, FcntlArg::F_SETFL(f));
            }
        };
        set(io::stdin().as_fd(), self.nonblocking[0]);
        set(io::stdout().as_fd(), self.nonblocking[1]);
        set(io::stderr().as_fd(), self.nonblocking[2]);
    }
}

/// Writes `bytes` to stdout for a review command (`cage diff`, `log`,
/// `doctor`, ...): waits as long as the reader needs (a pager), also when
/// the agent left the shared descriptor non-blocking, and reports EPIPE as
/// `BrokenPipe` for the caller to end quietly.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let stdout = io::stdout();
    // Rust's own buffer would hold bytes past a failed write; go direct.
    let fd = stdout.as_fd();
    write_patient(fd, bytes)
}

fn write_patient(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(())
}

/// A `Write` over stdout with [`write_stdout`]'s patience, for streaming
/// output (`cage log --follow`).
pub struct Stdout;

impl io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_stdout(buf).map(|()| buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_made_visible() {
        assert_eq!(
            escape("a\x1b[1Ab\rc\nd\te\x7f\0"),
            "a\\e[1Ab\\rc\\nd\\te\\x7f\\0"
        );
        assert_eq!(
            escape("x\u{202e}y\u{2066}z\u{9b}"),
            "x\\u{202e}y\\u{2066}z\\u{009b}"
        );
        assert_eq!(escape_bytes(b"ok\xff\xc3"), "ok\\xff\\xc3");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("caf\u{e9} \u{1f600}"), "caf\u{e9} \u{1f600}");
        assert_eq!(escape_line(b"\tx \\ y\r"), "\tx \\ y\\r");
        assert_eq!(escape_text("one\ntwo\x1b]0;t\x07"), "one\ntwo\\e]0;t\\x07");
        assert_eq!(
            escape("\u{e0041}\u{200b}\u{feff}"),
            "\\u{e0041}\\u{200b}\\u{feff}"
        );
    }

    #[test]
    fn every_byte_and_dangerous_code_point_renders_inert() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert!(is_inert(&escape_bytes(&all), false));
        assert!(is_inert(&escape_line(&all), true));
        let mut s = String::new();
        for c in (0u32..0x11_0000).filter_map(char::from_u32) {
            s.push(c);
        }
        assert!(is_inert(&escape(&s), false));
        assert!(is_inert(&escape_text(&s), false));
        assert!(!is_inert("\x1b", false) && !is_inert("\u{202e}", false));
    }

    #[test]
    fn a_full_nonblocking_pipe_costs_a_bounded_wait_and_no_panic() {
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::fcntl::fcntl(
            &w,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let big = vec![b'x'; 1 << 20];
        assert!(write_bounded(w.as_fd(), &big).is_err());
        // Given up: the next write returns at once, still without panic.
        assert!(write_bounded(w.as_fd(), b"more").is_err());
        drop(r);
    }
}
