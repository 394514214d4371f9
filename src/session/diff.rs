//! Line diffs of an overlay session's changes, in git's unified format
//! (so `git apply` can read the text output too), and `--stat` lines.
//!
//! The line diff is Myers' O(ND) algorithm in its linear-space form (the
//! "middle snake" refinement, Myers 1986, section 4b): minimal, and with
//! memory proportional to the files, not to their product. Lines are
//! compared with their terminators, so a missing final newline is a change.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::Path;

use super::changes::{Change, Kind, Node, open_nofollow};

/// Context lines around each hunk, as `diff -u`.
const CONTEXT: usize = 3;
/// Files larger than this are not diffed line by line.
const MAX_DIFF_BYTES: u64 = 16 << 20;
/// How far git looks for a NUL to call a file binary.
const BINARY_PROBE: usize = 8000;

/// One step of an edit script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Line `a` of the old text equals line `b` of the new one.
    Equal(usize, usize),
    Delete(usize),
    Insert(usize),
}

/// The edit script turning `a` into `b`, in order.
pub fn diff_lines<T: PartialEq>(a: &[T], b: &[T]) -> Vec<Op> {
    let mut matches = Vec::new();
    lcs(a, b, 0, 0, &mut matches);
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    for (x, y) in matches {
        while i < x {
            ops.push(Op::Delete(i));
            i += 1;
        }
        while j < y {
            ops.push(Op::Insert(j));
            j += 1;
        }
        ops.push(Op::Equal(x, y));
        i += 1;
        j += 1;
    }
    ops.extend((i..a.len()).map(Op::Delete));
    ops.extend((j..b.len()).map(Op::Insert));
    ops
}

/// Appends the matched pairs of a longest common subsequence of `a` and
/// `b` (offset by `ao`, `bo`) to `out`, in order.
fn lcs<T: PartialEq>(a: &[T], b: &[T], ao: usize, bo: usize, out: &mut Vec<(usize, usize)>) {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    out.extend((0..pre).map(|k| (ao + k, bo + k)));
    let (a, b) = (&a[pre..], &b[pre..]);
    let (ao, bo) = (ao + pre, bo + pre);
    let suf = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suf], &b[..b.len() - suf]);
    if !a.is_empty() && !b.is_empty() {
        // Both non-empty after trimming: at least two edits, so each half
        // around the middle snake has strictly fewer and the recursion ends.
        let (x, y, u, v) = middle_snake(a, b);
        lcs(&a[..x], &b[..y], ao, bo, out);
        out.extend((0..u - x).map(|k| (ao + x + k, bo + y + k)));
        lcs(&a[u..], &b[v..], ao + u, bo + v, out);
    }
    let (n, m) = (a.len(), b.len());
    out.extend((0..suf).map(|k| (ao + n + k, bo + m + k)));
}

/// The middle snake of an optimal path from (0,0) to (n,m): a diagonal run
/// from (x,y) to (u,v) that some shortest edit script passes through,
/// found by running the greedy search forward from the start and backward
/// from the end until they overlap.
fn middle_snake<T: PartialEq>(a: &[T], b: &[T]) -> (usize, usize, usize, usize) {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (n + m + 1) / 2;
    let delta = n - m;
    let odd = delta % 2 != 0;
    let off = max + 1;
    let size = (2 * max + 3) as usize;
    // Furthest x on each diagonal k = x - y, forward; and backward, in the
    // reversed texts' coordinates.
    let mut vf = vec![0isize; size];
    let mut vb = vec![0isize; size];
    let at = |k: isize| (off + k) as usize;
    for d in 0..=max {
        let mut k = -d;
        while k <= d {
            let x0 = if k == -d || (k != d && vf[at(k - 1)] < vf[at(k + 1)]) {
                vf[at(k + 1)]
            } else {
                vf[at(k - 1)] + 1
            };
            let y0 = x0 - k;
            let (mut x, mut y) = (x0, y0);
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            vf[at(k)] = x;
            let kr = delta - k;
            if odd && kr.abs() < d && x + vb[at(kr)] >= n {
                return (x0 as usize, y0 as usize, x as usize, y as usize);
            }
            k += 2;
        }
        let mut k = -d;
        while k <= d {
            let x0 = if k == -d || (k != d && vb[at(k - 1)] < vb[at(k + 1)]) {
                vb[at(k + 1)]
            } else {
                vb[at(k - 1)] + 1
            };
            let y0 = x0 - k;
            let (mut x, mut y) = (x0, y0);
            while x < n && y < m && a[(n - x - 1) as usize] == b[(m - y - 1) as usize] {
                x += 1;
                y += 1;
            }
            vb[at(k)] = x;
            let kf = delta - k;
            if !odd && kf.abs() <= d && x + vf[at(kf)] >= n {
                return (
                    (n - x) as usize,
                    (m - y) as usize,
                    (n - x0) as usize,
                    (m - y0) as usize,
                );
            }
            k += 2;
        }
    }
    // Unreachable for non-empty inputs: the searches meet by d = max.
    (0, 0, 0, 0)
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
            let text = String::from_utf8_lossy(line);
            let body = text.strip_suffix('\n').unwrap_or(&text);
            let shown = format!("{mark}{body}");
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

fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(BINARY_PROBE)].contains(&0)
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
    let p = change.path.display().to_string();
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
                header(&mut out);
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
        return Ok((out, None));
    }
    let old = content(&change.old, &host.join(&change.path))?;
    let new = content(&change.new, &upper.join(&change.path))?;
    let _ = writeln!(
        out,
        "{}",
        color.paint("1", &format!("diff --git a/{p} b/{p}"))
    );
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
}
