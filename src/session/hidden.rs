//! Changes a direct session made that `git status` does not show but a
//! host program runs (issue 9 item 7): files created or changed under
//! `node_modules/`, `*.pyc` and `*.pth` files, a virtualenv's `bin/`,
//! `.git/modules/`, and other executables git ignores. Installing packages
//! is the agent's job, so they cannot be refused; they must not be
//! invisible either.
//!
//! One walk of the workspace when the session ends. A file counts as
//! changed when its status-change time (ctime) is at or after the session
//! start: unlike the modification time, no unprivileged call sets it, so
//! `touch -d` cannot hide a change. Symbolic links are never followed.
//! Whether git ignores an executable is decided here, from `.gitignore`
//! files and `info/exclude`, without running git (a host git in a
//! repository the agent wrote to is exactly what must not run).
//!
//! [`Classifier::classify`] is the per-entry test, for a caller that walks
//! the workspace anyway.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

/// Paths kept in the report; more are counted.
pub const MAX_LISTED: usize = 1000;

/// Rules read from one ignore file, and bytes read of it, at most.
const MAX_RULES: usize = 10_000;
const MAX_IGNORE_FILE: u64 = 1 << 20;

/// Steps one pattern match may take before it is treated as a match: a
/// hostile `.gitignore` must not stall the end of the session, and
/// reporting too much is the safe side.
const MATCH_BUDGET: u32 = 20_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    NodeModules,
    Pyc,
    Pth,
    VenvBin,
    GitModules,
    IgnoredExecutable,
}

impl Class {
    pub fn label(self) -> &'static str {
        match self {
            Class::NodeModules => "under node_modules/",
            Class::Pyc => "*.pyc",
            Class::Pth => "*.pth",
            Class::VenvBin => "in a virtualenv's bin/",
            Class::GitModules => "under .git/modules/",
            Class::IgnoredExecutable => "ignored executable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hidden {
    /// Relative to the workspace.
    pub path: PathBuf,
    pub class: Class,
}

/// What one walk found.
#[derive(Debug, Default)]
pub struct Report {
    /// Every hidden change found.
    pub count: usize,
    /// The first [`MAX_LISTED`] of them.
    pub listed: Vec<Hidden>,
    /// How many of each class, all of them counted.
    pub classes: Vec<(Class, usize)>,
    /// Directories the walk could not read: their contents are unknown,
    /// which is reported, never skipped silently.
    pub unreadable: Vec<(PathBuf, io::Error)>,
}

impl Report {
    /// Counts per class, in class order.
    pub fn by_class(&self) -> Vec<(Class, usize)> {
        let mut out = self.classes.clone();
        out.sort();
        out
    }

    fn add(&mut self, h: Hidden) {
        self.count += 1;
        match self.classes.iter_mut().find(|(c, _)| *c == h.class) {
            Some((_, n)) => *n += 1,
            None => self.classes.push((h.class, 1)),
        }
        if self.listed.len() < MAX_LISTED {
            self.listed.push(h);
        }
    }
}

/// Decides, per entry, whether a change is hidden from git.
pub struct Classifier {
    since: SystemTime,
    /// `.git/info/exclude` of the top repository: the lowest precedence.
    exclude: Vec<Rule>,
}

/// Where in the tree a walked entry lies, as the walk knows it.
#[derive(Clone, Copy, Default)]
pub struct Place {
    pub in_node_modules: bool,
    pub in_git_modules: bool,
    /// The entry's parent is the `bin` directory of a virtualenv.
    pub in_venv_bin: bool,
}

impl Classifier {
    /// `since`: the session start; `workspace`: its root (for the top
    /// repository's `info/exclude`).
    pub fn new(workspace: &Path, since: SystemTime) -> Classifier {
        let exclude = read_rules(&workspace.join(".git/info/exclude"));
        Classifier { since, exclude }
    }

    fn changed(&self, meta: &fs::Metadata) -> bool {
        let ctime = SystemTime::UNIX_EPOCH
            + std::time::Duration::new(
                u64::try_from(meta.ctime()).unwrap_or(0),
                u32::try_from(meta.ctime_nsec()).unwrap_or(0),
            );
        ctime >= self.since
    }

    /// The class of a non-directory entry at `rel` (workspace-relative),
    /// or `None` when it is unchanged or git shows it. `ignores` are the
    /// `.gitignore` rules of each directory from the root down to the
    /// entry's parent, with the directory they apply to (relative).
    pub fn classify(
        &self,
        rel: &Path,
        meta: &fs::Metadata,
        place: Place,
        ignores: &[(PathBuf, Vec<Rule>)],
    ) -> Option<Class> {
        if meta.is_dir() || !self.changed(meta) {
            return None;
        }
        if place.in_git_modules {
            return Some(Class::GitModules);
        }
        if place.in_node_modules {
            return Some(Class::NodeModules);
        }
        if place.in_venv_bin {
            return Some(Class::VenvBin);
        }
        let name = rel.file_name()?.as_encoded_bytes();
        if name.ends_with(b".pyc") {
            return Some(Class::Pyc);
        }
        if name.ends_with(b".pth") {
            return Some(Class::Pth);
        }
        if meta.is_file() && meta.mode() & 0o111 != 0 && self.ignored(rel, ignores) {
            return Some(Class::IgnoredExecutable);
        }
        None
    }

    /// Whether git ignores `rel`: it, or a directory above it, is matched
    /// last by an ignoring rule (deeper files override shallower ones,
    /// `info/exclude` is below them all).
    fn ignored(&self, rel: &Path, ignores: &[(PathBuf, Vec<Rule>)]) -> bool {
        let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
        for k in 1..=comps.len() {
            let prefix: PathBuf = comps[..k].iter().collect();
            let is_dir = k < comps.len();
            let mut verdict = None;
            let sources = std::iter::once((Path::new(""), &self.exclude))
                .chain(ignores.iter().map(|(d, r)| (d.as_path(), r)));
            for (dir, rules) in sources {
                let Ok(sub) = prefix.strip_prefix(dir) else {
                    continue;
                };
                if sub.as_os_str().is_empty() {
                    continue;
                }
                for r in rules {
                    if r.matches(sub, is_dir) {
                        verdict = Some(!r.negate);
                    }
                }
            }
            if verdict == Some(true) {
                return true;
            }
        }
        false
    }
}

/// One `.gitignore` line.
#[derive(Clone, Debug)]
pub struct Rule {
    pattern: Vec<u8>,
    negate: bool,
    dir_only: bool,
    /// Contains a `/` before its end: matched against the path relative to
    /// the file's directory, else against the last component.
    anchored: bool,
}

impl Rule {
    pub fn parse(line: &str) -> Option<Rule> {
        let line = line.trim_end_matches(['\r', ' ']);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (negate, line) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line.strip_prefix('\\').unwrap_or(line)),
        };
        let (dir_only, line) = match line.strip_suffix('/') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        if line.is_empty() {
            return None;
        }
        let anchored = line.contains('/');
        let pattern = line.strip_prefix('/').unwrap_or(line).as_bytes().to_vec();
        Some(Rule {
            pattern,
            negate,
            dir_only,
            anchored,
        })
    }

    fn matches(&self, rel: &Path, is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        let subject = if self.anchored {
            rel.as_os_str().as_encoded_bytes()
        } else {
            match rel.file_name() {
                Some(n) => n.as_encoded_bytes(),
                None => return false,
            }
        };
        let mut budget = MATCH_BUDGET;
        glob(&self.pattern, subject, &mut budget) || budget == 0
    }
}

/// gitignore's glob: `*` and `?` stop at `/`, `**/` spans directories
/// (none included), `**` elsewhere spans anything, `[...]` classes,
/// `\` escapes.
fn glob(p: &[u8], s: &[u8], budget: &mut u32) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            if let Some(after) = rest.strip_prefix(b"/") {
                if glob(after, s, budget) {
                    return true;
                }
                (0..s.len()).any(|i| s[i] == b'/' && glob(after, &s[i + 1..], budget))
            } else {
                (0..=s.len()).any(|i| glob(rest, &s[i..], budget))
            }
        }
        Some(b'*') => {
            for i in 0..=s.len() {
                if glob(&p[1..], &s[i..], budget) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    break;
                }
            }
            false
        }
        Some(b'?') => !s.is_empty() && s[0] != b'/' && glob(&p[1..], &s[1..], budget),
        Some(b'[') => match class(&p[1..]) {
            Some((set, negated, used)) => {
                let Some(&c) = s.first() else { return false };
                c != b'/' && set.contains(c) != negated && glob(&p[1 + used..], &s[1..], budget)
            }
            None => s.first() == Some(&b'[') && glob(&p[1..], &s[1..], budget),
        },
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..], budget),
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..], budget),
    }
}

/// A bracket class's ranges.
struct Set(Vec<(u8, u8)>);

impl Set {
    fn contains(&self, c: u8) -> bool {
        self.0.iter().any(|&(a, b)| a <= c && c <= b)
    }
}

/// Parses `[...]` after its `[`: the set, whether it is negated, and the
/// bytes used including the `]`. `None`: no closing `]` (a literal `[`).
fn class(p: &[u8]) -> Option<(Set, bool, usize)> {
    let mut i = 0;
    let negated = matches!(p.first(), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < p.len() {
        let c = p[i];
        if c == b']' && !first {
            return Some((Set(ranges), negated, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            ranges.push((c, p[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

fn read_rules(path: &Path) -> Vec<Rule> {
    let Ok(f) = fs::File::open(path) else {
        return Vec::new();
    };
    let mut text = String::new();
    if f.take(MAX_IGNORE_FILE).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    text.lines()
        .filter_map(Rule::parse)
        .take(MAX_RULES)
        .collect()
}

/// Walks `workspace` once and reports the hidden changes since `since`.
/// Does not descend into gitdirs except their `modules/`, nor follow links.
pub fn scan(workspace: &Path, since: SystemTime) -> Report {
    scan_only(workspace, since, None)
}

/// The same scan, looking only at `focus` (relative to `workspace`): the
/// entries the session's watch saw change and the directories it saw
/// created, walked whole. The directories on the way are read for what
/// decides a class (a `.gitignore`, `pyvenv.cfg`), as the full walk does.
pub fn scan_focused(workspace: &Path, since: SystemTime, focus: &super::watch::Focus) -> Report {
    let mut enter = std::collections::BTreeSet::new();
    for p in focus.entries.iter().chain(&focus.whole) {
        for a in p.ancestors().skip(1) {
            if a.as_os_str().is_empty() || !enter.insert(a.to_path_buf()) {
                break;
            }
        }
    }
    let only = Only {
        enter,
        entries: &focus.entries,
        whole: &focus.whole,
    };
    scan_only(workspace, since, Some(&only))
}

/// What a focused walk looks at.
struct Only<'a> {
    /// Directories to enter: those above an entry or a whole directory.
    enter: std::collections::BTreeSet<PathBuf>,
    entries: &'a std::collections::BTreeSet<PathBuf>,
    whole: &'a std::collections::BTreeSet<PathBuf>,
}

fn scan_only(workspace: &Path, since: SystemTime, only: Option<&Only>) -> Report {
    let classifier = Classifier::new(workspace, since);
    let mut report = Report::default();
    let mut ignores: Vec<(PathBuf, Vec<Rule>)> = Vec::new();
    walk(
        workspace,
        Path::new(""),
        Place::default(),
        &classifier,
        &mut ignores,
        &mut report,
        only,
    );
    report
}

fn walk(
    root: &Path,
    rel: &Path,
    place: Place,
    c: &Classifier,
    ignores: &mut Vec<(PathBuf, Vec<Rule>)>,
    report: &mut Report,
    only: Option<&Only>,
) {
    // Inside a directory the session created, everything is looked at.
    let only = only.filter(|o| !o.whole.iter().any(|w| rel.starts_with(w)));
    let dir = root.join(rel);
    let entries: Vec<fs::DirEntry> = match fs::read_dir(&dir) {
        Ok(it) => match it.collect::<Result<_, _>>() {
            Ok(v) => v,
            Err(e) => {
                report.unreadable.push((dir, e));
                return;
            }
        },
        Err(e) => {
            report.unreadable.push((dir, e));
            return;
        }
    };
    let is_venv = entries.iter().any(|e| e.file_name() == "pyvenv.cfg");
    // A directory's own .gitignore applies below it. Inside node_modules
    // and gitdirs every change is reported anyway: no need to read any.
    let pushed = !place.in_node_modules && !place.in_git_modules && {
        let rules = read_rules(&dir.join(".gitignore"));
        let some = !rules.is_empty();
        if some {
            ignores.push((rel.to_path_buf(), rules));
        }
        some
    };
    for e in entries {
        let name = e.file_name();
        let child = rel.join(&name);
        if let Some(o) = only {
            let wanted = if e.file_type().is_ok_and(|t| t.is_dir()) {
                o.enter.contains(&child) || o.whole.contains(&child)
            } else {
                o.entries.contains(&child)
            };
            if !wanted {
                continue;
            }
        }
        let Ok(meta) = e.metadata() else {
            continue; // gone since the listing
        };
        if meta.is_dir() {
            let mut sub = place;
            sub.in_venv_bin = is_venv && name == "bin";
            if name == "node_modules" {
                sub.in_node_modules = true;
            }
            if name == ".git" && !place.in_git_modules {
                // Only the submodules' gitdirs: the rest is git's own, and
                // the protected-path rescan covers it.
                let modules = child.join("modules");
                if root.join(&modules).is_dir() {
                    let mut m = sub;
                    m.in_git_modules = true;
                    walk(root, &modules, m, c, ignores, report, only);
                }
                continue;
            }
            walk(root, &child, sub, c, ignores, report, only);
            continue;
        }
        if let Some(class) = c.classify(&child, &meta, place, ignores) {
            report.add(Hidden { path: child, class });
        }
    }
    if pushed {
        ignores.pop();
    }
}

/// The one stderr line for a report, or `None` when there is nothing to
/// say. Paths are the agent's choice, so they are printed escaped.
pub fn summary_line(report: &Report, session: Option<&str>) -> Option<String> {
    let mut parts = Vec::new();
    if report.count > 0 {
        let classes: Vec<String> = report
            .by_class()
            .iter()
            .map(|(c, n)| format!("{n} {}", c.label()))
            .collect();
        let examples: Vec<String> = report
            .listed
            .iter()
            .take(3)
            .map(|h| format!("{:?}", h.path.display().to_string()))
            .collect();
        let more = if report.count > report.listed.len() {
            format!(" (first {} listed)", report.listed.len())
        } else {
            String::new()
        };
        parts.push(format!(
            "this session changed {} file(s) that git does not show but host programs run \
             ({}; e.g. {}){more}",
            report.count,
            classes.join(", "),
            examples.join(", ")
        ));
    }
    if !report.unreadable.is_empty() {
        parts.push(format!(
            "{} director(ies) could not be read to look for them (first: {:?}: {})",
            report.unreadable.len(),
            report.unreadable[0].0.display().to_string(),
            report.unreadable[0].1
        ));
    }
    if parts.is_empty() {
        return None;
    }
    let hint = match session {
        Some(id) => format!("; the list: cage log {id}"),
        None => String::new(),
    };
    Some(format!("cage: warning: {}{hint}", parts.join("; ")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ignored(lines: &[&str], path: &str) -> bool {
        let rules: Vec<Rule> = lines.iter().filter_map(|l| Rule::parse(l)).collect();
        let c = Classifier {
            since: SystemTime::UNIX_EPOCH,
            exclude: Vec::new(),
        };
        c.ignored(Path::new(path), &[(PathBuf::new(), rules)])
    }

    #[test]
    fn gitignore_patterns_match_as_git_does() {
        assert!(ignored(&["build/"], "build/run.sh"));
        assert!(ignored(&["build/"], "a/build/run.sh"));
        assert!(!ignored(&["build/"], "build"));
        assert!(ignored(&["*.sh"], "deep/er/x.sh"));
        assert!(ignored(&["/out"], "out/x"));
        assert!(!ignored(&["/out"], "a/out/x"));
        assert!(ignored(&["a/*/c"], "a/b/c"));
        assert!(!ignored(&["a/*/c"], "a/b/d/c"));
        assert!(ignored(&["a/**/c"], "a/c"));
        assert!(ignored(&["a/**/c"], "a/b/d/c"));
        assert!(ignored(&["**/tmp"], "x/y/tmp"));
        assert!(ignored(&["dist/**"], "dist/a/b"));
        assert!(ignored(&["*.[oa]"], "lib.a"));
        assert!(!ignored(&["*.[!oa]"], "lib.a"));
        assert!(ignored(&["bin", "!bin/keep"], "bin/other"));
        // A file cannot be re-included below an ignored directory.
        assert!(ignored(&["bin/", "!bin/keep"], "bin/keep"));
        assert!(!ignored(&["*.sh", "!ok.sh"], "ok.sh"));
        assert!(!ignored(&["# *.sh", ""], "x.sh"));
        assert!(ignored(&["\\#x"], "#x"));
    }

    #[test]
    fn a_hostile_pattern_costs_a_bounded_match_and_reports() {
        let p = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let name = "a".repeat(200);
        assert!(ignored(&[p], &name));
    }

    #[test]
    fn the_walk_finds_each_class_and_only_changes() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("cage-hidden-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let old = ["node_modules/old/index.js", "old.pyc"];
        for f in old {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let since = SystemTime::now();
        // File times come from the kernel's coarse clock, a tick behind.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let files = [
            "node_modules/pkg/index.js",
            "src/__pycache__/m.cpython-312.pyc",
            "venv/lib/python3/site-packages/evil.pth",
            "venv/bin/activate",
            ".git/modules/sub/hooks/post-checkout",
            "build/run.sh",
            "src/tracked.sh",
            "notes.txt",
        ];
        for f in files {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "x").unwrap();
        }
        fs::write(root.join("venv/pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        fs::write(root.join(".gitignore"), "build/\n").unwrap();
        for f in ["build/run.sh", "src/tracked.sh"] {
            fs::set_permissions(root.join(f), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut report = scan(&root, since);
        report.listed.sort_by(|a, b| a.path.cmp(&b.path));
        let got: Vec<(String, Class)> = report
            .listed
            .iter()
            .map(|h| (h.path.display().to_string(), h.class))
            .collect();
        assert_eq!(
            got,
            [
                (
                    ".git/modules/sub/hooks/post-checkout".to_string(),
                    Class::GitModules
                ),
                ("build/run.sh".to_string(), Class::IgnoredExecutable),
                ("node_modules/pkg/index.js".to_string(), Class::NodeModules),
                ("src/__pycache__/m.cpython-312.pyc".to_string(), Class::Pyc),
                ("venv/bin/activate".to_string(), Class::VenvBin),
                (
                    "venv/lib/python3/site-packages/evil.pth".to_string(),
                    Class::Pth
                ),
            ]
        );
        assert_eq!(report.count, 6);
        assert!(report.unreadable.is_empty());
        let _ = fs::remove_dir_all(&root);
    }
}
