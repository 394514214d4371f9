//! What a project file widens, judged on the plans it produces.
//!
//! A project file that came with the repository may only narrow. Judging
//! its lines one by one is not enough: lines that each look stricter
//! (`mode = "readonly"`, `write = [".git"]`) combine, with the user's own
//! flags, into a plan that lets the agent write what it could not. So the
//! planner is asked twice, with and without the untrusted file (the user's
//! profiles, files and flags in both), and [`widenings`] lists everything
//! the first plan allows that the second does not: host paths the agent
//! can read or write, the workspace mode, protected names and the guard,
//! hosts, forwarded ports, host environment values, limits, and the
//! Landlock and seccomp switches.
//!
//! Both plans are destructured whole, so a new plan field does not compile
//! until it is classified here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{
    Access, CommandPlan, GuardPlan, LandlockPlan, LimitsPlan, Mount, NetworkPlan, Plan,
    Requirement, SeccompPlan, WorkspacePlan,
};
use crate::host::Host;
use crate::policy::{Policy, Provenance, Widening};

/// What the agent can do to one host path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    None,
    Read,
    Write,
}

impl Reach {
    fn word(self) -> &'static str {
        match self {
            Reach::None => "not visible",
            Reach::Read => "read-only",
            Reach::Write => "writable",
        }
    }
}

/// Everything `with` (the plan with the untrusted project file `file`)
/// allows that `without` does not. `policy` is the policy `with` was
/// built from; `host` supplies the environment a pass rule copies.
pub fn widenings(
    without: &Plan,
    with: &Plan,
    policy: &Policy,
    file: &Path,
    host: &Host,
) -> Vec<Widening> {
    let mut out = Findings {
        file,
        list: Vec::new(),
    };
    let Plan {
        // The command inside: a program the file's PATH finds runs in the
        // same cage, with the same view.
        command: CommandPlan { .. },
        // Where the agent starts and what it calls itself: no reach.
        cwd: _,
        hostname: _,
        uid,
        gid,
        workspace,
        mounts,
        landlock,
        seccomp,
        env,
        network,
        limits,
        // Advice for the user, not access.
        notes: _,
        guards,
        guard,
        state,
        create,
        secrets,
        graded,
    } = with;
    if let Some(super::graded::Graded::Ready(g)) = graded
        && without.graded.is_none()
    {
        out.add(
            Some(&g.source),
            "lets cage run without namespaces (the graded mode) where user namespaces are \
             unavailable"
                .into(),
        );
    }
    if (*uid, *gid) != (without.uid, without.gid) {
        out.add(None, "runs the agent under other ids".into());
    }
    let (narrow, wide) = (View::of(without), View::of(with));
    compare_view(&mut out, &narrow, &wide);
    compare_workspace(&mut out, &without.workspace, workspace, mounts);
    compare_landlock(&mut out, &without.landlock, landlock);
    compare_seccomp(&mut out, &without.seccomp, seccomp);
    compare_env(&mut out, without, env, policy, host);
    compare_network(&mut out, &without.network, network);
    compare_limits(&mut out, &without.limits, limits);
    for g in &without.guards {
        if !guards.iter().any(|x| x.path == g.path) {
            out.add(
                None,
                format!(
                    "no longer checks that {} is not created at the end",
                    g.path.display()
                ),
            );
        }
    }
    compare_guard(&mut out, &without.guard, guard, &wide);
    for s in state {
        let known = without.state.iter().find(|x| x.dir == s.dir);
        for live in &s.live {
            if !known.is_some_and(|k| k.live.contains(live)) {
                out.add(
                    Some(&s.source),
                    format!("writes {} through to the host", live.display()),
                );
            }
        }
        for f in &s.files {
            if !known.is_some_and(|k| k.lower == s.lower && k.files.contains(f)) {
                out.add(
                    Some(&s.source),
                    format!(
                        "copies {} to the host when the session ends",
                        s.lower.join(f).display()
                    ),
                );
            }
        }
    }
    compare_secrets(&mut out, without.secrets.as_ref(), secrets.as_ref());
    for c in create {
        if !without.create.iter().any(|x| x.path == c.path) {
            out.add(
                Some(&c.source),
                format!("creates the directory {} on the host", c.path.display()),
            );
        }
    }
    out.list
}

/// The widenings found so far, attributed to the project file.
struct Findings<'a> {
    file: &'a Path,
    list: Vec<Widening>,
}

impl Findings<'_> {
    /// `source` is the rule that produced the entry in the wider plan;
    /// when it is not a line of the project file (the file changed what a
    /// rule below it does), the file as a whole is blamed.
    fn add(&mut self, source: Option<&Provenance>, what: String) {
        let source = match source {
            Some(p @ Provenance::File { path, .. }) if path == self.file => p.clone(),
            _ => Provenance::File {
                path: self.file.to_path_buf(),
                line: 0,
            },
        };
        let w = Widening { source, what };
        if !self.list.contains(&w) {
            self.list.push(w);
        }
    }
}

// ---- the view ----------------------------------------------------------

/// One mount that shows host files: host `src` appears at `dst`.
struct Exposure<'a> {
    src: &'a Path,
    dst: &'a Path,
    reach: Reach,
    /// Its place in the plan's mount order: later mounts cover it.
    index: usize,
    source: Option<&'a Provenance>,
}

fn exposures(mounts: &[Mount]) -> Vec<Exposure<'_>> {
    let mut out = Vec::new();
    for (index, m) in mounts.iter().enumerate() {
        let (src, dst, reach, source) = match m {
            Mount::Bind {
                src,
                dst,
                access,
                source,
                ..
            } => (
                src,
                dst,
                match access {
                    Access::ReadOnly => Reach::Read,
                    Access::ReadWrite => Reach::Write,
                },
                source,
            ),
            // A directory bound onto itself, read-write.
            Mount::Pin { dst, source } => (dst, dst, Reach::Write, source),
            // Writes land in the upper layer, in the session directory.
            Mount::Overlay {
                lower, dst, source, ..
            } => (lower, dst, Reach::Read, source),
            // A private copy: the host file is read once.
            Mount::Copy { src, dst, source } => (src, dst, Reach::Read, source),
            // cage's own files and filesystems: no host path shows.
            Mount::Dir { .. }
            | Mount::Tmpfs { .. }
            | Mount::Hide { .. }
            | Mount::Proc { .. }
            | Mount::Dev { .. }
            | Mount::Symlink { .. }
            | Mount::File { .. } => continue,
        };
        out.push(Exposure {
            src,
            dst,
            reach,
            index,
            source: Some(source),
        });
    }
    out
}

/// Whether a mount hides what an earlier one showed at and below its
/// destination. A directory or link made in cage's tmpfs does not; nor
/// does a file cage writes over a host one (`/etc/resolv.conf`), which
/// replaces it for the agent's use rather than keeping it secret.
fn covers(m: &Mount) -> bool {
    !matches!(
        m,
        Mount::Dir { .. } | Mount::Symlink { .. } | Mount::File { .. }
    )
}

/// A plan with its exposures, found once.
struct View<'a> {
    plan: &'a Plan,
    exps: Vec<Exposure<'a>>,
}

impl<'a> View<'a> {
    fn of(plan: &'a Plan) -> View<'a> {
        View {
            plan,
            exps: exposures(&plan.mounts),
        }
    }

    /// What the agent can do to host path `host`, and the rule that allows
    /// it: the widest exposure not covered by a later mount, capped by
    /// Landlock where Landlock is required.
    fn reach(&self, host: &Path) -> (Reach, Option<&'a Provenance>) {
        let mut best = (Reach::None, None);
        for e in &self.exps {
            let Ok(rel) = host.strip_prefix(e.src) else {
                continue;
            };
            let at = if rel.as_os_str().is_empty() {
                e.dst.to_path_buf()
            } else {
                e.dst.join(rel)
            };
            let covered = self.plan.mounts[e.index + 1..]
                .iter()
                .any(|m| covers(m) && at.starts_with(m.dst()));
            if covered {
                continue;
            }
            let r = e.reach.min(landlock_reach(&self.plan.landlock, &at));
            if r > best.0 {
                best = (r, e.source);
            }
        }
        best
    }
}

fn landlock_reach(l: &LandlockPlan, at: &Path) -> Reach {
    if l.requirement != Requirement::Required {
        return Reach::Write; // may not be enforced: the view decides
    }
    let under = |rules: &[super::PathRule]| rules.iter().any(|r| at.starts_with(&r.path));
    if under(&l.write) {
        Reach::Write
    } else if under(&l.read) {
        Reach::Read
    } else {
        Reach::None
    }
}

/// Every host path where either plan's reach can change: each exposure's
/// source, and each mount destination of either plan seen through each
/// exposure of either plan. Between these points reach is constant.
fn probes(a: &View, b: &View) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let (a, b, exps) = (a.plan, b.plan, a.exps.iter().chain(&b.exps));
    for e in exps {
        out.insert(e.src.to_path_buf());
        for m in a.mounts.iter().chain(&b.mounts) {
            if let Ok(rel) = m.dst().strip_prefix(e.dst) {
                out.insert(e.src.join(rel));
            }
        }
    }
    for p in a.workspace.protected.iter().chain(&b.workspace.protected) {
        out.insert(p.path.clone());
    }
    out
}

fn compare_view(out: &mut Findings, without: &View, with: &View) {
    let protected: BTreeSet<&Path> = without
        .plan
        .workspace
        .protected
        .iter()
        .map(|p| p.path.as_path())
        .collect();
    for host in probes(without, with) {
        let (now, source) = with.reach(&host);
        let (before, _) = without.reach(&host);
        if now > before {
            let kind = if protected.contains(host.as_path()) {
                "the protected path "
            } else {
                ""
            };
            out.add(
                source,
                format!(
                    "{kind}{} becomes {} ({} without this file)",
                    host.display(),
                    now.word(),
                    before.word()
                ),
            );
        }
    }
}

// ---- the rest ----------------------------------------------------------

fn compare_workspace(
    out: &mut Findings,
    without: &WorkspacePlan,
    with: &WorkspacePlan,
    mounts: &[Mount],
) {
    let WorkspacePlan {
        path: _, // the view comparison sees what the path shows
        mode,
        source,
        protected: _, // in the view comparison, by path
        watch,
        // Facts about the workspace at the start, not grants.
        links: _,
        gitdirs: _, // binds: in the view comparison
        known_gitdirs,
        listings: _, // a cache of what the walk read; it decides nothing
        tree: _,     // the same walk's directories, for the watch
        overlay: _,  // follows the mode
    } = with;
    if *mode > without.mode {
        out.add(
            Some(source),
            format!(
                "the workspace mode becomes {} ({} without this file)",
                mode_name(*mode),
                mode_name(without.mode)
            ),
        );
    }
    let writable_ws = mounts.iter().any(
        |m| matches!(m, Mount::Bind { access: Access::ReadWrite, dst, .. } if *dst == with.path),
    );
    for name in &without.watch {
        if writable_ws && !watch.iter().any(|w| w.value == name.value) {
            out.add(
                None,
                format!("the protected name {} is no longer watched", name.value),
            );
        }
    }
    for g in &without.known_gitdirs {
        if !known_gitdirs.contains(g) {
            out.add(
                None,
                format!("the git directory {} is no longer known", g.display()),
            );
        }
    }
}

fn compare_guard(out: &mut Findings, without: &GuardPlan, with: &GuardPlan, view: &View) {
    let GuardPlan {
        roots,
        names,
        gitdirs,
        paths,
        missing,
        // The graded mode's, filled after the plans are compared.
        existing: _,
    } = with;
    for r in &without.roots {
        let checked = roots.iter().any(|x| r.starts_with(x));
        if !checked && view.reach(r).0 == Reach::Write {
            out.add(
                None,
                format!("creations in {} are no longer checked", r.display()),
            );
        }
    }
    for n in &without.names {
        if !names.iter().any(|x| x.value == n.value) {
            out.add(
                None,
                format!("the protected name {} is not guarded", n.value),
            );
        }
    }
    for g in &without.gitdirs {
        if !gitdirs.contains(g) {
            out.add(
                None,
                format!("the git directory {} is not guarded", g.display()),
            );
        }
    }
    for p in &without.paths {
        if !paths.iter().any(|x| x.value == p.value) {
            out.add(None, format!("{} may be created", p.value.display()));
        }
    }
    for m in &without.missing {
        if !missing.contains(m) {
            out.add(None, format!("{} is not checked at the end", m.display()));
        }
    }
}

fn compare_landlock(out: &mut Findings, without: &LandlockPlan, with: &LandlockPlan) {
    let LandlockPlan {
        requirement,
        list,
        read,
        write,
        devices,
        scope_abstract_sockets,
        scope_signals,
        deny_tcp,
    } = with;
    if without.deny_tcp && !deny_tcp {
        out.add(None, "Landlock no longer denies TCP".into());
    }
    if let (Requirement::BestEffort { source }, Requirement::Required) =
        (requirement, &without.requirement)
    {
        out.add(
            Some(source),
            "Landlock becomes best-effort (required without this file)".into(),
        );
    }
    // What the read, write and list rules open on host files is in the
    // view comparison (`reach` caps each mount by them); on cage's own
    // tmpfs mounts they open nothing of the host.
    let _ = (list, read, write);
    for r in devices {
        if !without.devices.iter().any(|x| x.path == r.path) {
            out.add(
                Some(&r.source),
                format!("Landlock opens the device {}", r.path.display()),
            );
        }
    }
    if without.scope_abstract_sockets && !scope_abstract_sockets {
        out.add(
            None,
            "abstract unix sockets outside the cage become reachable".into(),
        );
    }
    if without.scope_signals && !scope_signals {
        out.add(None, "processes outside the cage can be signalled".into());
    }
}

fn compare_seccomp(out: &mut Findings, without: &SeccompPlan, with: &SeccompPlan) {
    let SeccompPlan {
        deny,
        kill_foreign_abi,
        newest_known,
        nested_userns,
    } = with;
    if let (Some(source), None) = (nested_userns, &without.nested_userns) {
        out.add(
            Some(source),
            "the agent may create user namespaces (nested sandboxes)".into(),
        );
    }
    for r in &without.deny {
        let kept = deny
            .iter()
            .any(|x| x.name == r.name && x.errno == r.errno && x.when == r.when);
        if !kept {
            out.add(
                None,
                format!("the system call {} is no longer denied", r.name),
            );
        }
    }
    if without.kill_foreign_abi && !kill_foreign_abi {
        out.add(None, "foreign system call ABIs are no longer killed".into());
    }
    if without.newest_known.is_some() && *newest_known != without.newest_known {
        out.add(
            None,
            "system calls newer than cage knows are no longer refused".into(),
        );
    }
}

/// A host variable the wider plan passes that the narrower does not pass
/// with that value. Values a file sets are its own words, not the host's.
fn compare_env(
    out: &mut Findings,
    without: &Plan,
    env: &[super::EnvVar],
    policy: &Policy,
    host: &Host,
) {
    for v in env {
        let set_by_rule = policy.env.set.iter().any(|s| s.source == v.source);
        let from_host = host.env.iter().any(|(n, x)| *n == v.name && *x == v.value);
        let before = without
            .env
            .iter()
            .any(|x| x.name == v.name && x.value == v.value);
        if from_host && !set_by_rule && !before {
            out.add(
                Some(&v.source),
                format!("passes the host's {} into the cage", v.name),
            );
        }
    }
}

fn compare_network(out: &mut Findings, without: &NetworkPlan, with: &NetworkPlan) {
    let NetworkPlan {
        mode,
        source,
        allow,
        deny,
        proxy,
    } = with;
    if *mode > without.mode {
        out.add(
            Some(source),
            format!(
                "the network mode becomes {} ({} without this file)",
                net_name(*mode),
                net_name(without.mode)
            ),
        );
    }
    for a in allow {
        if !without.allow.iter().any(|x| x.pattern == a.pattern) {
            out.add(Some(&a.source), format!("allows the host {}", a.pattern));
        }
    }
    for d in &without.deny {
        if !deny.iter().any(|x| x.pattern == d.pattern) {
            out.add(None, format!("no longer denies {}", d.pattern));
        }
    }
    if let Some(p) = proxy {
        let before = without
            .proxy
            .as_ref()
            .map(|p| &p.forwards[..])
            .unwrap_or(&[]);
        for f in &p.forwards {
            if !before.iter().any(|x| x.addr == f.addr) {
                out.add(
                    Some(&f.source),
                    format!("forwards the host's {} into the cage", f.addr),
                );
            }
        }
    }
}

/// A secret is read on the host and sent to its hosts: the wider plan may
/// hold no secret, source, variable or host the narrower does not, nor
/// trust another root upstream or show another host file in the bundle.
fn compare_secrets(
    out: &mut Findings,
    without: Option<&super::secrets::SecretsPlan>,
    with: Option<&super::secrets::SecretsPlan>,
) {
    let Some(super::secrets::SecretsPlan {
        secrets,
        bundle: _, // a fixed place inside
        bundle_roots,
        upstream_roots,
    }) = with
    else {
        return;
    };
    let empty = Vec::new();
    let below = without.map_or(&empty, |w| &w.secrets);
    for s in secrets {
        let known = below.iter().find(|b| b.name == s.name);
        let same = known.is_some_and(|b| {
            b.from == s.from
                && b.mask == s.mask
                && s.env.iter().all(|e| b.env.contains(e))
                && s.hosts.iter().all(|h| b.hosts.contains(h))
        });
        if !same {
            out.add(
                Some(&s.source),
                format!(
                    "the secret {} is read on the host or sent to a host it was not",
                    s.name
                ),
            );
        }
    }
    let none: Vec<PathBuf> = Vec::new();
    let (roots, upstream) =
        without.map_or((&none, &none), |w| (&w.bundle_roots, &w.upstream_roots));
    for r in bundle_roots {
        if !roots.contains(r) {
            out.add(None, format!("{} is shown in the CA bundle", r.display()));
        }
    }
    for r in upstream_roots {
        if !upstream.contains(r) {
            out.add(
                None,
                format!("the proxy trusts {} for upstream TLS", r.display()),
            );
        }
    }
}

fn compare_limits(out: &mut Findings, without: &LimitsPlan, with: &LimitsPlan) {
    let LimitsPlan {
        rlimits,
        memory,
        pids,
        cpu,
        required,
    } = with;
    if without.required.is_some() && required.is_none() {
        out.add(None, "the cgroup limits are no longer required".into());
    }
    for b in &without.rlimits {
        match rlimits.iter().find(|r| r.kind == b.kind) {
            Some(r) if r.value <= b.value => {}
            Some(r) => out.add(
                Some(&r.source),
                format!(
                    "raises the {:?} limit to {} ({} without this file)",
                    r.kind, r.value, b.value
                )
                .to_lowercase(),
            ),
            None => out.add(None, format!("drops the {:?} limit", b.kind).to_lowercase()),
        }
    }
    for (name, mine, below) in [
        ("memory", memory, &without.memory),
        ("pids", pids, &without.pids),
        ("cpu", cpu, &without.cpu),
    ] {
        let Some(below) = below else { continue };
        match mine {
            Some(m) if m.value <= below.value => {}
            Some(m) => out.add(
                Some(&m.source),
                format!(
                    "raises the {name} limit to {} ({} without this file)",
                    m.value, below.value
                ),
            ),
            None => out.add(None, format!("drops the {name} limit")),
        }
    }
}

fn mode_name(m: crate::policy::WorkspaceMode) -> &'static str {
    use crate::policy::WorkspaceMode;
    match m {
        WorkspaceMode::Readonly => "readonly",
        WorkspaceMode::Overlay => "overlay",
        WorkspaceMode::Direct => "direct",
    }
}

fn net_name(m: crate::policy::NetMode) -> &'static str {
    use crate::policy::NetMode;
    match m {
        NetMode::None => "none",
        NetMode::Proxy => "proxy",
        NetMode::Host => "host",
    }
}
