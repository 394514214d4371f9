//! Rendering for people: the plan (`--dry-run`), the policy (`policy
//! show`), an untrusted project file's refusal, the session table and the
//! apply report, each a function of the data it shows. The commands decide
//! what to show; the plan's and the policy's text is escaped by them, the
//! session views escape what they print here.

use std::fmt::Write as _;

use crate::plan::{Mount, Plan};
use crate::policy::{self, Policy};
use crate::session;

/// `--dry-run --json`: the plan, and the policy sources it came from (each
/// with `chosen_for` when the command chose it), as the text's first line
/// says.
#[derive(serde::Serialize)]
pub struct DryRun<'a> {
    pub sources: &'a [policy::Source],
    #[serde(flatten)]
    pub plan: &'a Plan,
}

/// The profiles a run applies, as the first line of a dry run: which were
/// asked for and which the command chose.
pub fn profiles(policy: &Policy) -> String {
    let names: Vec<String> = policy
        .sources
        .iter()
        .filter(|s| s.kind != policy::SourceKind::Flags && s.name != "builtin:base")
        .map(|s| s.describe())
        .collect();
    if names.is_empty() {
        "policy     builtin:base only (no profile: none is named after the command, and no -p)\n"
            .to_string()
    } else {
        format!("policy     builtin:base, {}\n", names.join(", "))
    }
}

/// The graded mode, when the policy allows it: what runs if user
/// namespaces cannot be created.
fn graded(s: &mut String, graded: Option<&crate::plan::graded::Graded>) {
    use crate::plan::graded::Graded;
    match graded {
        None => {}
        Some(Graded::Refused { why, source }) => {
            let _ = writeln!(
                s,
                "graded     allowed [{source}], but this plan cannot run without user \
                 namespaces: {why}"
            );
        }
        Some(Graded::Ready(g)) => {
            let _ = writeln!(
                s,
                "graded     used when user namespaces cannot be created [{}]: no namespaces; \
                 Landlock on host paths ({} read, {} write, {} device rules, TCP denied), \
                 {}, TMPDIR={}",
                g.source,
                g.landlock.read.len(),
                g.landlock.write.len(),
                g.landlock.devices.len(),
                if g.seccomp
                    .deny
                    .iter()
                    .any(|r| { r.name == "socket" && r.when == crate::plan::ArgMatch::Always })
                {
                    "seccomp refuses socket()"
                } else {
                    "seccomp allows plain TCP sockets only, each connect made by the supervisor \
                     to the proxy on the host's loopback"
                },
                g.tmp.display()
            );
            for r in &g.landlock.write {
                let _ = writeln!(s, "  rw   {}  [{}]", r.path.display(), r.source);
            }
            for r in &g.landlock.read {
                let _ = writeln!(s, "  ro   {}  [{}]", r.path.display(), r.source);
            }
            let _ = writeln!(s, "  not isolated: {}", g.not_isolated.join("; "));
        }
    }
}

/// The plan for people: one line per decision, with its rule, by section.
pub fn plan(plan: &Plan) -> String {
    let mut s = String::new();
    for section in [
        plan_head,
        plan_view,
        plan_workspace,
        plan_enforcement,
        plan_network,
        plan_secrets,
        plan_rest,
    ] {
        section(&mut s, plan);
    }
    s
}

/// The command, its program, and where and as whom it runs.
fn plan_head(s: &mut String, plan: &Plan) {
    let _ = writeln!(s, "command    {}", plan.command.argv.join(" "));
    match &plan.command.program {
        Some(p) => {
            let _ = writeln!(s, "program    {}", p.display());
        }
        None => match &plan.command.not_found {
            Some(why) => {
                let _ = writeln!(s, "program    NOT FOUND (exit 127): {why}");
            }
            None => {
                let _ = writeln!(s, "program    NOT FOUND inside the cage (exit 127)");
            }
        },
    }
    let _ = writeln!(s, "cwd        {}", plan.cwd.display());
    let _ = writeln!(
        s,
        "workspace  {} ({:?}, {})",
        plan.workspace.path.display(),
        plan.workspace.mode,
        plan.workspace.source
    );
    let _ = writeln!(
        s,
        "identity   uid {} gid {} (mapped to themselves), hostname {}",
        plan.uid, plan.gid, plan.hostname
    );
}

/// The view: one line per mount, in order.
fn plan_view(s: &mut String, plan: &Plan) {
    let _ = writeln!(
        s,
        "\nview (a fresh tmpfs root; nothing else of the host is visible):"
    );
    for m in &plan.mounts {
        let _ = writeln!(s, "  {}", mount_line(m));
    }
}

/// One mount of the view, with its rule.
fn mount_line(m: &Mount) -> String {
    match m {
        Mount::Pin { dst, source } => format!("pin  {}  [{source}]", dst.display()),
        Mount::Bind {
            src,
            dst,
            access,
            source,
            ..
        } => {
            let how = match access {
                crate::plan::Access::ReadOnly => "ro  ",
                crate::plan::Access::ReadWrite => "rw  ",
            };
            if src == dst {
                format!("{how} {}  [{source}]", dst.display())
            } else {
                format!("{how} {} <- {}  [{source}]", dst.display(), src.display())
            }
        }
        Mount::Tmpfs { dst, source, .. } => format!("tmpfs {}  [{source}]", dst.display()),
        Mount::Overlay {
            dst, upper, source, ..
        } => format!(
            "overlay {} (writes land in {})  [{source}]",
            dst.display(),
            upper.display()
        ),
        Mount::Hide { dst, source, .. } => format!("hide {}  [{source}]", dst.display()),
        Mount::Symlink {
            target,
            dst,
            source,
        } => {
            format!("link {} -> {}  [{source}]", dst.display(), target.display())
        }
        Mount::Dir { dst, source, .. } => format!("dir  {}  [{source}]", dst.display()),
        Mount::File { dst, source, .. } => {
            format!("file {} (written by cage)  [{source}]", dst.display())
        }
        Mount::Copy { src, dst, source } => {
            format!(
                "copy {} <- {} (writes stay inside)  [{source}]",
                dst.display(),
                src.display()
            )
        }
        Mount::Proc { dst } => format!("proc {}", dst.display()),
        Mount::Dev { dst } => format!(
            "dev  {} (null zero full random urandom tty pts shm)",
            dst.display()
        ),
    }
}

/// What cage creates, the state directories, the protected paths and the guard.
fn plan_workspace(s: &mut String, plan: &Plan) {
    if !plan.create.is_empty() {
        let _ = writeln!(s, "\ncreated on the host when missing (mode 0700):");
        for c in &plan.create {
            let _ = writeln!(s, "  {}  [{}]", c.path.display(), c.source);
        }
    }
    for st in &plan.state {
        let _ = writeln!(
            s,
            "\nstate {}: private to the session except {}",
            st.dir.display(),
            st.live
                .iter()
                .map(|p| p.display().to_string())
                .chain(
                    st.files
                        .iter()
                        .map(|f| format!("{} (copied back at the end)", st.dir.join(f).display()))
                )
                .collect::<Vec<_>>()
                .join(", ")
        );
        for set in &st.settings {
            let values: Vec<String> = set
                .values
                .iter()
                .map(|(key, value)| format!("{} = {value}", key.join(".")))
                .collect();
            let _ = writeln!(
                s,
                "  the session's copy of {} sets {}  [{}]",
                st.dir.join(&set.file).display(),
                values.join(", "),
                st.source
            );
        }
    }
    if !plan.workspace.protected.is_empty() {
        let _ = writeln!(s, "\nprotected (read-only inside the workspace):");
        for p in &plan.workspace.protected {
            let _ = writeln!(s, "  {}  [{}]", p.path.display(), p.source);
        }
    }
    if plan.guard.active() {
        let _ = writeln!(
            s,
            "\nguard      refuses creating protected names (at any depth), anything outside git's \
             allowlist in {} git director(ies), and {} hidden or kept path(s), in:",
            plan.guard.gitdirs.len(),
            plan.guard.paths.len()
        );
        for root in &plan.guard.roots {
            let _ = writeln!(s, "  {}", root.display());
        }
    }
}

/// Landlock and seccomp.
fn plan_enforcement(s: &mut String, plan: &Plan) {
    let ll = &plan.landlock;
    let _ = writeln!(
        s,
        "\nlandlock   {} read, {} write, {} device rules; scopes: abstract sockets {}, signals {}; {}",
        ll.read.len(),
        ll.write.len(),
        ll.devices.len(),
        ll.scope_abstract_sockets,
        ll.scope_signals,
        match &ll.requirement {
            crate::plan::Requirement::Required => "required".to_string(),
            crate::plan::Requirement::BestEffort { source } => format!("best effort ({source})"),
        }
    );
    let names: Vec<&str> = plan.seccomp.deny.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(s, "seccomp    deny {}", names.join(" "));
    let _ = writeln!(
        s,
        "           foreign syscall ABIs killed: {}",
        plan.seccomp.kill_foreign_abi
    );
    if let Some(newest) = &plan.seccomp.newest_known {
        let _ = writeln!(s, "           calls newer than {newest}: ENOSYS");
    }
    if let Some(source) = &plan.seccomp.nested_userns {
        let _ = writeln!(
            s,
            "           nested user namespaces ALLOWED: unshare, clone with namespace flags, \
             mount, umount2, pivot_root, chroot (Landlock and the view still hold)  [{source}]"
        );
    }
}

/// The network mode, the proxy and the host rules.
fn plan_network(s: &mut String, plan: &Plan) {
    let _ = writeln!(
        s,
        "network    {:?} [{}]",
        plan.network.mode, plan.network.source
    );
    graded(s, plan.graded.as_ref());
    if let Some(p) = &plan.network.proxy {
        let _ = writeln!(
            s,
            "  proxy {} and DNS stub {} on the cage's loopback, served by cage from outside{}",
            p.listen,
            p.dns,
            match plan.network.mode {
                crate::policy::NetMode::Proxy => "",
                _ => ": they allow nothing, and record each attempt",
            }
        );
    }
    for r in &plan.network.allow {
        let _ = writeln!(s, "  allow {}  [{}]", r.pattern, r.source);
    }
    for r in &plan.network.deny {
        let _ = writeln!(s, "  deny  {}  [{}]", r.pattern, r.source);
    }
}

/// The secrets the proxy swaps in, when there are any.
fn plan_secrets(s: &mut String, plan: &Plan) {
    if let Some(sp) = &plan.secrets {
        let _ = writeln!(
            s,
            "\nsecrets (read on the host at start, held by cage; the cage sees placeholders):"
        );
        for sec in &sp.secrets {
            let hosts: Vec<String> = sec.hosts.iter().map(|h| h.to_string()).collect();
            let _ = writeln!(
                s,
                "  {} from {}, placeholder in {}; swapped in only for HTTPS to {}{}{}  [{}]",
                sec.name,
                sec.from,
                match (sec.env.is_empty(), sec.mask) {
                    (true, true) => "the file's private copy".to_string(),
                    (true, false) => "no variable".to_string(),
                    (false, _) => sec.env.join(", "),
                },
                if hosts.is_empty() {
                    "no host".to_string()
                } else {
                    hosts.join(", ")
                },
                if sec.exclude.is_empty() {
                    String::new()
                } else {
                    let ex: Vec<String> = sec.exclude.iter().map(|h| h.to_string()).collect();
                    format!(" (not {}: tunnels)", ex.join(", "))
                },
                if sec.body { ", in bodies too" } else { "" },
                sec.source
            );
        }
        let _ = writeln!(
            s,
            "  the proxy terminates TLS for those hosts with a session CA, trusted inside \
             through {}; every other host stays an end-to-end tunnel",
            sp.bundle.display()
        );
    }
}

/// The environment, the limits and the notes.
fn plan_rest(s: &mut String, plan: &Plan) {
    let _ = writeln!(s, "\nenvironment (nothing else is passed):");
    for v in &plan.env {
        let _ = writeln!(s, "  {}={}  [{}]", v.name, v.value, v.source);
    }
    let _ = writeln!(s, "\nlimits");
    for r in &plan.limits.rlimits {
        let _ = writeln!(s, "  {:?} = {}  [{}]", r.kind, r.value, r.source);
    }
    for (name, l) in [
        ("memory", &plan.limits.memory),
        ("pids", &plan.limits.pids),
        ("cpu", &plan.limits.cpu),
    ] {
        if let Some(l) = l {
            let _ = writeln!(
                s,
                "  {name} = {} (cgroup v2, where delegated)  [{}]",
                l.value, l.source
            );
        }
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(s, "\nnotes");
        for n in &plan.notes {
            let _ = writeln!(s, "  {n}");
        }
    }
}

/// The merged policy for people, each rule with its source.
pub fn policy(p: &Policy) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "sources (lowest precedence first):");
    for src in &p.sources {
        let _ = writeln!(
            s,
            "  {:?} {}{}",
            src.kind,
            src.describe(),
            src.sha256
                .as_ref()
                .map(|h| format!(" sha256:{}", &h[..12.min(h.len())]))
                .unwrap_or_default()
        );
    }
    let fs = &p.filesystem;
    let sections = [
        ("workspace", workspace_rows(p)),
        ("filesystem.read", path_rows(&fs.read)),
        ("filesystem.write", path_rows(&fs.write)),
        ("filesystem.hide", path_rows(&fs.hide)),
        ("filesystem.tmpfs", path_rows(&fs.tmpfs)),
        ("network", network_rows(p)),
        ("env", env_rows(p)),
        ("secrets", secret_rows(p)),
        ("limits", limit_rows(p)),
        ("process", process_rows(p)),
        ("security", security_rows(p)),
    ];
    for (title, rows) in sections {
        if !rows.is_empty() {
            let _ = writeln!(s, "\n[{title}]");
            for r in rows {
                let _ = writeln!(s, "  {r}");
            }
        }
    }
    s
}

fn path_rows(list: &[policy::Sourced<policy::PathRule>]) -> Vec<String> {
    list.iter()
        .map(|r| {
            format!(
                "{}{}  [{}]",
                if r.value.optional { "?" } else { "" },
                r.value.path.display(),
                r.source
            )
        })
        .collect()
}

fn workspace_rows(p: &Policy) -> Vec<String> {
    let mut ws = Vec::new();
    if let Some(v) = &p.workspace.path {
        ws.push(format!("path = {}  [{}]", v.value.display(), v.source));
    }
    if let Some(v) = &p.workspace.mode {
        ws.push(format!("mode = {:?}  [{}]", v.value, v.source));
    }
    ws.extend(
        p.workspace
            .protect
            .iter()
            .map(|v| format!("protect {}  [{}]", v.value, v.source)),
    );
    ws
}

fn network_rows(p: &Policy) -> Vec<String> {
    let mut net = Vec::new();
    if let Some(m) = &p.network.mode {
        net.push(format!("mode = {:?}  [{}]", m.value, m.source));
    }
    net.extend(
        p.network
            .allow
            .iter()
            .map(|r| format!("allow {}  [{}]", r.value, r.source)),
    );
    net.extend(
        p.network
            .deny
            .iter()
            .map(|r| format!("deny {}  [{}]", r.value, r.source)),
    );
    net
}

fn env_rows(p: &Policy) -> Vec<String> {
    let mut env: Vec<String> = p
        .env
        .pass
        .iter()
        .map(|r| format!("pass {}  [{}]", r.value, r.source))
        .collect();
    env.extend(
        p.env
            .set
            .iter()
            .map(|r| format!("set {}={}  [{}]", r.value.0, r.value.1, r.source)),
    );
    env
}

fn secret_rows(p: &Policy) -> Vec<String> {
    p.secrets
        .iter()
        .map(|r| {
            let s = &r.value;
            let hosts: Vec<String> = s
                .hosts
                .iter()
                .map(|h| h.to_string())
                .chain(
                    s.host_vars
                        .iter()
                        .map(|v| format!("the https host in ${v}")),
                )
                .collect();
            format!(
                "{} from {}{}, only to {}{}  [{}]",
                s.name,
                s.from,
                s.env
                    .as_ref()
                    .map(|e| format!(", placeholder in {e}"))
                    .unwrap_or_default(),
                hosts.join(", "),
                if s.optional { " (optional)" } else { "" },
                r.source
            )
        })
        .collect()
}

fn limit_rows(p: &Policy) -> Vec<String> {
    let l = &p.limits;
    [
        ("nofile", &l.nofile),
        ("nproc", &l.nproc),
        ("fsize", &l.fsize),
        ("memory", &l.memory),
        ("pids", &l.pids),
        ("cpu", &l.cpu),
    ]
    .into_iter()
    .filter_map(|(n, v)| {
        v.as_ref()
            .map(|v| format!("{n} = {}  [{}]", v.value, v.source))
    })
    .collect()
}

fn process_rows(p: &Policy) -> Vec<String> {
    let mut proc_rows = Vec::new();
    if let Some(v) = &p.process.allow_ptrace {
        proc_rows.push(format!("allow_ptrace = {}  [{}]", v.value, v.source));
    }
    if let Some(v) = &p.process.allow_nested_userns {
        proc_rows.push(format!("allow_nested_userns = {}  [{}]", v.value, v.source));
    }
    proc_rows
}

fn security_rows(p: &Policy) -> Vec<String> {
    p.security
        .allow_degraded
        .iter()
        .map(|v| format!("allow_degraded {:?}  [{}]", v.value, v.source))
        .chain(
            p.security
                .allow_shared_dir
                .iter()
                .map(|v| format!("allow_shared_dir {}  [{}]", v.value.display(), v.source)),
        )
        .collect()
}

/// The refusal a run would meet, as the last part of a preview.
pub fn refused(policy: &Policy, refused: &[policy::Widening]) -> String {
    let Some(project) = &policy.project else {
        return String::new();
    };
    let mut s = format!(
        "\nREFUSED    the project policy {} is not trusted, and a run refuses it for what it \
         widens (the lines marked REFUSED above):\n",
        project.file.display()
    );
    for w in refused {
        let _ = writeln!(s, "  {w}");
    }
    let _ = writeln!(
        s,
        "           `cage trust {}` allows these; --no-project-policy runs without the file",
        project.file.display()
    );
    s
}

/// Marks each line that names a refused rule (`[FILE:LINE]`).
pub fn mark_refused(text: &str, refused: &[policy::Widening]) -> String {
    let tags: Vec<String> = refused
        .iter()
        .filter(|w| w.source.is_file_line())
        .map(|w| format!("[{}]", w.source))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        out.push_str(body);
        if tags.iter().any(|t| body.contains(t.as_str())) {
            out.push_str("  REFUSED");
        }
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `cage sessions`: one row per session, oldest first. Every field the
/// agent could choose (the command, the workspace's name) is escaped.
pub fn sessions(all: &[(std::path::PathBuf, session::Record)]) -> String {
    use session::changes;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24}  {:<19}  {:<8}  {:<8}  {:<16}  WORKSPACE  COMMAND",
        "SESSION", "STARTED (UTC)", "MODE", "STATUS", "CHANGES"
    );
    for (dir, r) in all {
        let status = match (r.status(), &r.applied) {
            (_, Some(_)) => "applied".to_string(),
            (session::Status::Running, _) => "running".to_string(),
            (session::Status::Exited(c), _) => format!("exit {c}"),
            (session::Status::Killed, _) => "killed".to_string(),
        };
        let counts = if r.mode == policy::WorkspaceMode::Overlay {
            match changes::collect(&dir.join("upper"), &r.workspace, &r.protect) {
                Ok(list) => {
                    let s = changes::summarize(&list);
                    let mut c = format!("+{} ~{} -{}", s.added, s.modified, s.deleted);
                    if !s.protected.is_empty() {
                        c.push_str(&format!(" !{}", s.protected.len()));
                    }
                    c
                }
                Err(_) => "unreadable".to_string(),
            }
        } else {
            "-".to_string()
        };
        let started: String = r.started.replace('T', " ").chars().take(19).collect();
        let _ = writeln!(
            out,
            "{:<24}  {:<19}  {:<8}  {:<8}  {:<16}  {}  {}",
            crate::term::escape(&r.id),
            crate::term::escape(&started),
            format!("{:?}", r.mode).to_lowercase(),
            status,
            counts,
            crate::term::escape_path(&r.workspace),
            r.command
                .iter()
                .map(|a| crate::term::escape(a))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    out
}

/// `cage apply`'s report: each change applied, what was overwritten,
/// skipped or held back as protected, and the count. Paths are escaped.
pub fn applied(outcome: &session::apply::Outcome, record: &session::Record) -> String {
    use session::changes::Kind;
    let mut out = String::new();
    for c in &outcome.applied {
        if c.old.is_dir() && c.new.is_dir() && c.kind == Kind::Modified {
            let _ = writeln!(out, "  mode {}/", crate::term::escape_path(&c.path));
            continue;
        }
        let mark = match c.kind {
            Kind::Added => "A",
            Kind::Modified => "M",
            Kind::Deleted => "D",
        };
        let suffix = if c.new.is_dir() || (c.kind == Kind::Deleted && c.old.is_dir()) {
            "/"
        } else {
            ""
        };
        let flag = match &c.protected {
            Some(name) => format!("  (protected: {name}; review it before running anything)"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {mark} {}{suffix}{flag}",
            crate::term::escape_path(&c.path)
        );
    }
    for p in &outcome.forced {
        let _ = writeln!(
            out,
            "cage: overwrote {}, which had changed on the host (--force)",
            crate::term::escape_path(p)
        );
    }
    for p in &outcome.skipped {
        let _ = writeln!(
            out,
            "cage: skipped {}: a special file (fifo, socket or device)",
            crate::term::escape_path(p)
        );
    }
    for (p, name) in &outcome.protected {
        let _ = writeln!(
            out,
            "cage: skipped {}: protected ({}): it runs or steers code outside the cage; review \
             it with `cage diff`, then apply it with --include-protected {}",
            crate::term::escape_path(p),
            crate::term::escape(name),
            crate::term::escape_path(p)
        );
    }
    let _ = writeln!(
        out,
        "cage: applied {} change(s) of session {} to {}{}",
        outcome.applied.len(),
        crate::term::escape(&record.id),
        crate::term::escape_path(&record.workspace),
        if outcome.protected.is_empty() {
            String::new()
        } else {
            format!("; skipped {} protected path(s)", outcome.protected.len())
        }
    );
    out
}
