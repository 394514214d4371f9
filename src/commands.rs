//! The subcommands: glue between the CLI, the policy, the plan and the
//! supervisor. The plan's and the policy's renderings live in `render`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::audit;
use crate::cli::{
    ApplyArgs, Cli, ColorArg, Command, DiffArgs, DiscardArgs, LogArgs, PolicyArgs, PolicyCommand,
    RunArgs,
};
use crate::error::Error;
use crate::host::Host;
use crate::plan::{self, Plan, explain};
use crate::policy::{self, FlagRules, LoadRequest, Policy, ProjectMode};
use crate::{session, supervisor};

pub fn dispatch(cli: Cli) -> Result<i32, Error> {
    // Run options before a subcommand (`cage -p claude explain HOST`) apply
    // to the subcommands that build a policy, and are refused elsewhere.
    let outer = cli.run;
    if let Some(command) = &cli.command {
        let takes_policy = matches!(
            command,
            Command::Run(_)
                | Command::Explain(_)
                | Command::Selftest(_)
                | Command::Policy(PolicyCommand::Show { .. })
        );
        if !takes_policy && (!outer.policy.is_empty() || outer.dry_run || outer.json) {
            return Err(Error::RunOptionsMisplaced);
        }
    }
    let merged = |inner: &PolicyArgs| PolicyArgs::merged(&outer.policy, inner);
    match cli.command {
        None => run(outer),
        Some(Command::Run(args)) => run(RunArgs {
            policy: merged(&args.policy),
            dry_run: args.dry_run || outer.dry_run,
            json: args.json || outer.json,
            command: args.command,
        }),
        Some(Command::Policy(PolicyCommand::Show {
            policy,
            json,
            command,
        })) => policy_show(&merged(&policy), json, command.first().map(String::as_str)),
        Some(Command::Policy(PolicyCommand::Check { file })) => policy_check(file),
        Some(Command::Policy(PolicyCommand::Init { profile, force })) => {
            policy_init(profile, force)
        }
        Some(Command::Explain(args)) => explain_cmd(
            &merged(&args.policy),
            &args.target,
            args.command.first().map(String::as_str),
        ),
        Some(Command::Trust(args)) => trust(args.file, args.yes),
        Some(Command::Untrust(args)) => untrust(args.file),
        Some(Command::Doctor) => Ok(crate::doctor::run()),
        Some(Command::Selftest(args)) => crate::selftest::run(
            &merged(&args.policy),
            args.json,
            args.command.first().map(String::as_str),
        ),
        Some(Command::ShellInit(args)) => shell_init(args.shell),
        Some(Command::Log(args)) => log(args),
        Some(Command::Allow(args)) => {
            let secs = args
                .duration
                .as_deref()
                .map(|d| audit::parse_duration(d).map(|d| d.as_secs()))
                .transpose()?;
            control(
                args.session.as_deref(),
                crate::control::Op::Allow,
                args.pattern,
                secs,
            )
        }
        Some(Command::Deny(args)) => control(
            args.session.as_deref(),
            crate::control::Op::Deny,
            args.pattern,
            None,
        ),
        Some(Command::Sessions(args)) if args.prune => prune_sessions(args.keep, args.max_age),
        Some(Command::Sessions(_)) => sessions(),
        Some(Command::Diff(args)) => diff(args),
        Some(Command::Apply(args)) => apply(args),
        Some(Command::Discard(args)) => discard(args),
        Some(Command::Restore(args)) => restore(args),
        Some(Command::Completions(args)) => {
            print(&crate::cli::completions(args.shell), "completions")
        }
        Some(Command::Man) => {
            let page = crate::cli::man_page().map_err(|source| Error::Output {
                what: "the man page",
                source,
            })?;
            print(&page, "the man page")
        }
    }
}

/// Writes `bytes` to stdout. A closed pipe (`| head`) ends the command
/// quietly; a descriptor the agent left non-blocking is waited on.
fn print(bytes: &[u8], what: &'static str) -> Result<i32, Error> {
    match crate::term::write_stdout(bytes) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(source) => Err(Error::Output { what, source }),
    }
}

/// What to load for `args`; `command` is argv[0] of the run, whose
/// profile applies when no `-p` is given.
pub(crate) fn request(args: &PolicyArgs, command: Option<&str>) -> LoadRequest {
    LoadRequest {
        auto_profile: command
            .filter(|_| !args.no_auto_profile)
            .map(str::to_string),
        profiles: args.profiles.clone(),
        policy_files: args.policy_files.clone(),
        project: if args.no_project_policy {
            ProjectMode::Skip
        } else {
            ProjectMode::Discover
        },
        flags: FlagRules {
            ro: args.ro.clone(),
            rw: args.rw.clone(),
            hide: args.hide.clone(),
            allow_host: args.allow_host.clone(),
            net: args.net.map(Into::into),
            env: args.env.clone(),
            workspace: args.workspace.map(Into::into),
            allow_degraded: args.allow_degraded.iter().map(|l| (*l).into()).collect(),
            allow_shared_dir: args.allow_shared_dir.clone(),
            secret: args.secret.clone(),
        },
    }
}

/// A loaded policy, with the request that loaded it (to load it again
/// without the project file).
pub(crate) struct Loaded {
    pub(crate) host: Host,
    pub(crate) request: LoadRequest,
    pub(crate) policy: Policy,
}

/// `preview`: an untrusted project file that widens is applied anyway, so
/// its grants can be shown (marked refused); never for a run.
fn load(args: &PolicyArgs, command: Option<&str>, preview: bool) -> Result<Loaded, Error> {
    let host = Host::current()?;
    let mut request = request(args, command);
    if preview && request.project == ProjectMode::Discover {
        request.project = ProjectMode::Preview;
    }
    Loaded::new(host, request)
}

impl Loaded {
    pub(crate) fn new(host: Host, request: LoadRequest) -> Result<Loaded, Error> {
        let policy = policy::load(&request, &host)?;
        Ok(Loaded {
            host,
            request,
            policy,
        })
    }

    /// The plan for `argv`, and what an untrusted project file widens: the
    /// policy layer's line-by-line findings (a preview only: a run stopped
    /// at them), then everything the plan with the file allows that the
    /// plan without it does not (`plan::widen`). Outside a preview a
    /// widening is refused.
    pub(crate) fn plan(
        &self,
        argv: &[String],
        session: Option<&str>,
    ) -> Result<(Plan, Vec<policy::Widening>), Error> {
        let plan = plan::build_for_session(&self.policy, &self.host, argv, session)?;
        let Some(project) = self.policy.project.as_ref().filter(|p| !p.trusted) else {
            return Ok((plan, Vec::new()));
        };
        let mut refused = project.refused.clone();
        let lower_request = LoadRequest {
            project: ProjectMode::Skip,
            ..self.request.clone()
        };
        let lower = policy::load(&lower_request, &self.host)?;
        let lower = plan::build_for_session(&lower, &self.host, argv, session)?;
        let found = plan::widen::widenings(&lower, &plan, &self.policy, &project.file, &self.host);
        for w in found {
            // A line already refused says it better.
            let named = w.source.is_file_line() && refused.iter().any(|r| r.source == w.source);
            if !named {
                refused.push(w);
            }
        }
        if !refused.is_empty() && self.request.project != ProjectMode::Preview {
            return Err(untrusted(project, refused));
        }
        Ok((plan, refused))
    }
}

/// A preview's end: the refusal the run would meet, if any.
fn refusal(policy: &Policy, refused: Vec<policy::Widening>) -> Result<i32, Error> {
    match &policy.project {
        Some(project) if !refused.is_empty() => Err(untrusted(project, refused)),
        _ => Ok(0),
    }
}

fn untrusted(project: &policy::ProjectPolicy, widenings: Vec<policy::Widening>) -> Error {
    policy::PolicyError::Untrusted {
        path: project.file.clone(),
        widenings,
        changed: project.changed,
    }
    .into()
}

/// Where the plan's cgroup limits can be enforced; when that is a scope of
/// the user's systemd and `may_reexec`, re-executes cage there (and does
/// not return).
pub(crate) fn cgroup_place(
    policy: &Policy,
    may_reexec: bool,
) -> Result<crate::cgroup::Place, Error> {
    use crate::cgroup::{self, Place, Wanted};
    let wanted = Wanted::of_policy(&policy.limits);
    if !wanted.any() {
        return Ok(Place::None);
    }
    Ok(match cgroup::locate(&wanted) {
        Ok(Some(base)) => Place::At(base),
        Ok(None) if !may_reexec => Place::Unavailable(
            "cage's cgroup holds other processes, and this command does not move into a scope"
                .into(),
        ),
        Ok(None) => match cgroup::systemd_run() {
            Some(systemd_run) => {
                let e = cgroup::reexec_in_scope(&systemd_run);
                Place::Unavailable(format!("starting {}: {e}", systemd_run.display()))
            }
            None => Place::Unavailable("systemd-run is gone".into()),
        },
        Err(why) => Place::Unavailable(why),
    })
}

fn run(args: RunArgs) -> Result<i32, Error> {
    let loaded = load(
        &args.policy,
        args.command.first().map(String::as_str),
        args.dry_run,
    )?;
    if args.dry_run {
        let (plan, refused) = loaded.plan(&args.command, None)?;
        let text = if args.json {
            let dry_run = crate::render::DryRun {
                sources: &loaded.policy.sources,
                plan: &plan,
            };
            let mut s = serde_json::to_string_pretty(&dry_run).unwrap_or_default();
            s.push('\n');
            s
        } else {
            let mut s = crate::render::profiles(&loaded.policy);
            s.push_str(&crate::render::plan(&plan));
            let mut s = crate::render::mark_refused(&s, &refused);
            if !refused.is_empty() {
                s.push_str(&crate::render::refused(&loaded.policy, &refused));
            }
            // Paths may come from an untrusted project file: escaped.
            crate::term::escape_text(&s)
        };
        print(text.as_bytes(), "the plan")?;
        // A dry run of a run that would be refused fails like the run.
        return refusal(&loaded.policy, refused);
    }
    // Before anything of the session exists: a cgroup of cage's own for the
    // cgroup limits, from the user's systemd if need be (which starts this
    // cage again, in a new scope).
    let place = cgroup_place(&loaded.policy, true)?;
    let code = launch(&loaded, &args.command, place)?;
    // After the run, so it costs the start nothing; a failure to prune
    // costs the run nothing either.
    if let Some(rules) = prune_rules(None, None) {
        let _ = session::prune(&loaded.host, rules);
    }
    Ok(code)
}

/// Reserves a session, builds the plan for it (refusing what an untrusted
/// project file widens) and runs `argv` caged: the run path after
/// loading, shared with `cage selftest` (which passes a throwaway host).
pub(crate) fn launch(
    loaded: &Loaded,
    argv: &[String],
    place: crate::cgroup::Place,
) -> Result<i32, Error> {
    let (host, policy) = (&loaded.host, &loaded.policy);
    // Before the plan, so the plan finds cage's state directory and hides
    // it from the view like any existing path, and so an overlay plan can
    // name the session's upper directory.
    let reserved = session::reserve(host);
    let id = reserved.as_ref().ok().map(|r| r.id.clone());
    let plan = match loaded.plan(argv, id.as_deref()) {
        Ok((plan, _)) => plan,
        Err(e) => {
            if let Ok(r) = reserved {
                r.release();
            }
            return Err(e);
        }
    };
    // A command that cannot run gets its reason, and leaves no session.
    if let Some(why) = plan.command.not_found.clone() {
        if let Ok(r) = reserved {
            r.release();
        }
        return Err(why.into());
    }
    for note in &plan.notes {
        crate::term::emit(&format!("cage: note: {}", crate::term::escape_text(note)));
    }
    let unenforced = match &place {
        crate::cgroup::Place::Unavailable(why) => {
            let limits = plan.limits.cgroup_limits();
            if let Some(rule) = &plan.limits.required {
                if let Ok(r) = reserved {
                    r.release();
                }
                return Err(Error::LimitsRequired {
                    limits: limits.join(", "),
                    why: why.clone(),
                    rule: rule.to_string(),
                });
            }
            crate::term::emit(&format!(
                "cage: warning: not enforced: [limits] {}: {} (run cage in a systemd user \
                 session for cgroup limits; nofile, nproc, fsize and core are enforced, as \
                 rlimits)",
                limits.join(", "),
                crate::term::escape_text(why)
            ));
            limits
        }
        _ => Vec::new(),
    };
    // The session record is required where it holds the session's work
    // (overlay mode) or records decisions (proxy mode); elsewhere a session
    // without one still runs, and says so.
    let required =
        plan.network.proxy.is_some() || plan.workspace.overlay.is_some() || !plan.state.is_empty();
    let warn = |e: &dyn std::error::Error| {
        crate::term::emit(&format!(
            "cage: warning: running without a session record: {}",
            crate::term::escape_text(&crate::error::chain(e))
        ));
    };
    let reserved = match reserved {
        Ok(r) => Some(r),
        Err(e) if required => return Err(e.into()),
        Err(e) => {
            warn(&e);
            None
        }
    };
    let mut log = None;
    if let Some(r) = &reserved {
        let names = plan
            .workspace
            .watch
            .iter()
            .map(|n| n.value.clone())
            .collect();
        let started = r.start(&plan, names).map_err(Error::from).and_then(|_| {
            audit::Session::create(&r.id, &r.dir, policy, &plan, unenforced.clone())
                .map_err(Error::from)
        });
        match started {
            Ok(s) => log = Some(s),
            Err(e) if required => {
                if let Some(r) = reserved {
                    r.release();
                }
                return Err(e);
            }
            Err(e) => warn(&e),
        }
    }
    // The state directories' layers live in the session's directory.
    if let Err(e) = session::state::prepare(&plan, &host.home) {
        if let Some(r) = reserved {
            r.release();
        }
        return Err(e.into());
    }
    // Last before the run: the real values live from here on, in this
    // process only.
    let mut plan = plan;
    let vault = match crate::secrets::prepare(&mut plan, host) {
        Ok(v) => v,
        Err(e) => {
            if let Some(r) = reserved {
                r.release();
            }
            return Err(e.into());
        }
    };
    Ok(supervisor::run(&plan, log.as_ref(), place, vault)?)
}

/// The pruning rules: the flags, else CAGE_KEEP_SESSIONS and
/// CAGE_SESSION_MAX_DAYS, else the defaults. `None` when
/// CAGE_KEEP_SESSIONS=0 and no flag says otherwise: never prune.
fn prune_rules(keep: Option<usize>, max_days: Option<u64>) -> Option<session::PruneRules> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let keep = keep
        .or_else(|| var("CAGE_KEEP_SESSIONS").map(|n| n as usize))
        .unwrap_or(session::DEFAULT_KEEP);
    let days = max_days.or_else(|| var("CAGE_SESSION_MAX_DAYS"));
    let max_age = match days {
        Some(0) => None,
        Some(d) => Some(d.saturating_mul(24 * 3600)),
        None => Some(session::DEFAULT_MAX_AGE),
    };
    (keep > 0).then_some(session::PruneRules { keep, max_age })
}

fn prune_sessions(keep: Option<usize>, max_days: Option<u64>) -> Result<i32, Error> {
    let host = Host::current()?;
    // Asked for by name, CAGE_KEEP_SESSIONS=0 (no automatic pruning) does
    // not stop it: keep the newest N, or, with neither, the default.
    let rules = match prune_rules(keep, max_days) {
        Some(rules) => rules,
        None => session::PruneRules {
            keep: keep.unwrap_or(session::DEFAULT_KEEP),
            ..prune_rules(Some(1), max_days).unwrap_or_default()
        },
    };
    let removed = session::prune(&host, rules)?;
    let mut out = String::new();
    for id in &removed {
        let _ = writeln!(out, "removed session {id}");
    }
    let _ = writeln!(
        out,
        "pruned {} session(s) in {}",
        removed.len(),
        audit::sessions_dir(&host).display()
    );
    print_lossy(out.as_bytes(), "the prune report")
}

fn policy_show(args: &PolicyArgs, json: bool, command: Option<&str>) -> Result<i32, Error> {
    let loaded = load(args, command, true)?;
    let argv = [command.unwrap_or("true").to_string()];
    // The plan's findings too, when the plan can be built; the policy is
    // shown either way.
    let refused = match loaded.plan(&argv, None) {
        Ok((_, refused)) => refused,
        Err(_) => loaded
            .policy
            .project
            .as_ref()
            .map(|p| p.refused.clone())
            .unwrap_or_default(),
    };
    let policy = &loaded.policy;
    let text = if json {
        let mut s = serde_json::to_string_pretty(policy).unwrap_or_default();
        s.push('\n');
        s
    } else {
        let mut s = crate::render::mark_refused(&crate::render::policy(policy), &refused);
        if !refused.is_empty() {
            s.push_str(&crate::render::refused(policy, &refused));
        }
        crate::term::escape_text(&s)
    };
    print(text.as_bytes(), "the policy")
}

fn project_file(file: Option<PathBuf>, host: &Host) -> Result<PathBuf, Error> {
    match file {
        Some(f) => Ok(f),
        None => policy::find_project_file(host).ok_or(Error::NoProjectFile {
            cwd: host.cwd.clone(),
        }),
    }
}

fn policy_check(file: Option<PathBuf>) -> Result<i32, Error> {
    let host = Host::current()?;
    let file = project_file(file, &host)?;
    policy::check_file(&file, &host)?;
    let line = format!("{}: ok\n", file.display());
    print(crate::term::escape_text(&line).as_bytes(), "the check")
}

fn policy_init(profile: Option<String>, force: bool) -> Result<i32, Error> {
    let host = Host::current()?;
    let path = host.cwd.join(".cage.toml");
    if path.symlink_metadata().is_ok() && !force {
        return Err(Error::Exists { path });
    }
    // The toolchains the project visibly uses, by their manifest files.
    let detected: Vec<&str> = [
        ("package.json", "node"),
        ("Cargo.toml", "rust"),
        ("pyproject.toml", "python"),
        ("requirements.txt", "python"),
        ("setup.py", "python"),
        ("go.mod", "go"),
    ]
    .into_iter()
    .filter(|(file, _)| host.cwd.join(file).exists())
    .map(|(_, profile)| profile)
    .collect();
    let mut extends: Vec<&str> = profile.as_deref().into_iter().collect();
    for p in detected {
        if !extends.contains(&p) {
            extends.push(p);
        }
    }
    let text = policy::starter_policy(&extends);
    std::fs::write(&path, text).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    let line = format!(
        "wrote {}; check it with `cage policy check`\n",
        path.display()
    );
    print(crate::term::escape_text(&line).as_bytes(), "the report")
}

fn explain_cmd(args: &PolicyArgs, target: &str, command: Option<&str>) -> Result<i32, Error> {
    let loaded = load(args, command, true)?;
    let argv = [command.unwrap_or("true").to_string()];
    let (plan, refused) = loaded.plan(&argv, None)?;
    let (host, policy) = (&loaded.host, &loaded.policy);
    if args.profiles.is_empty() && command.is_none() {
        crate::term::emit(&format!(
            "cage: note: no profile applied; name one with -p, or the command a run would \
             start: `cage explain {} -- claude`",
            crate::term::escape_text(target)
        ));
    }
    let e = if explain::is_path(target, &host.cwd) {
        let path = explain::absolute(target, &host.home, &host.cwd);
        explain::explain_path(&plan, policy, &path)
    } else {
        let (name, port) = explain::parse_host_port(target).ok_or_else(|| Error::BadTarget {
            target: target.to_string(),
        })?;
        explain::explain_host(&plan, &name, port)
    };
    let mut s = format!(
        "{target}: {}\n",
        if e.allowed { "allowed" } else { "denied" }
    );
    for line in e.lines {
        let _ = writeln!(s, "  {line}");
    }
    let mut s = crate::render::mark_refused(&s, &refused);
    if !refused.is_empty() {
        let _ = writeln!(
            s,
            "  (refused: a run refuses the untrusted project policy; the answer above is what \
             it would grant)"
        );
        s.push_str(&crate::render::refused(policy, &refused));
    }
    print(crate::term::escape_text(&s).as_bytes(), "the explanation")?;
    Ok(if e.allowed { 0 } else { 1 })
}

fn log(args: LogArgs) -> Result<i32, Error> {
    let host = Host::current()?;
    let now = std::time::SystemTime::now();
    let time = |v: &Option<String>| v.as_deref().map(|v| audit::parse_time(v, now)).transpose();
    let filter = audit::Filter {
        since: time(&args.since)?,
        until: time(&args.until)?,
        workspace: args
            .workspace
            .as_ref()
            .map(|w| plan::normalize_path(&host.cwd.join(w))),
        grep: args.grep.clone(),
        denied: args.denied,
        only: None,
    };
    let mut out = crate::term::Stdout;
    let shown = if filter.is_empty() {
        let path = audit::find_session(&host, args.session.as_deref())?;
        audit::show(&path, args.json, args.follow, &mut out)
    } else if let Some(id) = args.session.as_deref() {
        // --grep or --denied within one session.
        let path = audit::find_session(&host, Some(id))?;
        let id = path
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        audit::show_many(
            &host,
            &audit::Filter { only: id, ..filter },
            args.json,
            &mut out,
        )
    } else {
        audit::show_many(&host, &filter, args.json, &mut out)
    };
    match shown {
        Err(audit::AuditError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        other => other.map(|()| 0).map_err(Error::from),
    }
}

/// `cage allow` / `cage deny`: one request to the running session's
/// control channel.
fn control(
    id: Option<&str>,
    op: crate::control::Op,
    pattern: String,
    for_secs: Option<u64>,
) -> Result<i32, Error> {
    let host = Host::current()?;
    let running = |r: &session::Record| r.status() == session::Status::Running;
    let Some((dir, record)) = session::find(&host, id, running)? else {
        return Err(Error::NoRunningSession {
            cwd: host.cwd.clone(),
        });
    };
    let req = crate::control::Request {
        op,
        pattern,
        for_secs,
    };
    let message = crate::control::request(&dir, &record.id, &req)?;
    print(
        format!(
            "cage: session {}: {}\n",
            record.id,
            crate::term::escape_text(&message)
        )
        .as_bytes(),
        "the reply",
    )?;
    Ok(0)
}

// ---- overlay review: sessions, diff, apply, discard ----

/// Splits `[SESSION] [PATH]...`: the first word is the session when it
/// names one and no existing path.
fn session_and_paths(host: &Host, args: &[String]) -> (Option<String>, Vec<String>) {
    match args.split_first() {
        Some((first, rest))
            if !host.cwd.join(first).exists()
                && session::list(host)
                    .unwrap_or_default()
                    .iter()
                    .any(|(_, r)| r.id.starts_with(first.as_str())) =>
        {
            (Some(first.clone()), rest.to_vec())
        }
        _ => (None, args.to_vec()),
    }
}

/// PATH arguments (relative to the working directory) as paths relative
/// to the session's workspace.
fn workspace_paths(host: &Host, workspace: &Path, paths: &[String]) -> Result<Vec<PathBuf>, Error> {
    paths
        .iter()
        .map(|p| {
            let abs = plan::normalize_path(&host.cwd.join(p));
            abs.strip_prefix(workspace)
                .map(Path::to_path_buf)
                .map_err(|_| Error::OutsideWorkspace {
                    path: abs.clone(),
                    workspace: workspace.to_path_buf(),
                })
        })
        .collect()
}

fn sessions() -> Result<i32, Error> {
    use session::changes;
    let host = Host::current()?;
    let all = session::list(&host)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24}  {:<19}  {:<8}  {:<8}  {:<16}  WORKSPACE  COMMAND",
        "SESSION", "STARTED (UTC)", "MODE", "STATUS", "CHANGES"
    );
    for (dir, r) in &all {
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
    if all.is_empty() {
        out = format!("no sessions in {}\n", audit::sessions_dir(&host).display());
    }
    print_lossy(out.as_bytes(), "the sessions")
}

/// `print`, for the review commands (a closed pipe is not an error).
/// `cage diff` of a direct session: the changed files its record lists,
/// what git shows of the tracked ones (against HEAD, now), and the others
/// named. git runs without external diff drivers or textconv filters,
/// whatever the repository's attributes say.
fn direct_diff(dir: &Path, record: &session::Record) -> Result<i32, Error> {
    use crate::term::{escape_path, escape_text};
    let log = dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).map_err(|source| audit::AuditError::Read {
        path: log.clone(),
        source,
    })?;
    let changed = text
        .lines()
        .filter_map(|l| serde_json::from_str::<audit::Line>(l).ok())
        .find_map(|l| match l.record {
            audit::Record::FilesChanged(f) => Some(f),
            _ => None,
        });
    let Some(changed) = changed else {
        return print(
            format!(
                "direct session {}: no record of changed files (it is running, or ended before \
                 cage could compare)\n",
                record.id
            )
            .as_bytes(),
            "the diff",
        );
    };
    let ws = &record.workspace;
    let mut out = format!(
        "direct session {}: {} added, {} modified, {} deleted, {} mode change(s){}\n\
         (the session's record; git below shows the workspace as it is now)\n",
        record.id,
        changed.added,
        changed.modified,
        changed.deleted,
        changed.mode_changed,
        if changed.complete { "" } else { " (partial)" }
    );
    let rel: Vec<PathBuf> = changed
        .paths
        .iter()
        .filter_map(|p| p.path.strip_prefix(ws).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    let git = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(ws)
            .args(["--no-pager", "-c", "core.fsmonitor=false"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
    };
    fn as_os(p: &Path) -> &std::ffi::OsStr {
        p.as_os_str()
    }
    let mut tracked: Vec<PathBuf> = Vec::new();
    if !rel.is_empty() {
        let mut args: Vec<&std::ffi::OsStr> =
            ["ls-files", "-z", "--"].map(std::ffi::OsStr::new).to_vec();
        args.extend(rel.iter().map(|p| as_os(p)));
        if let Some(list) = git(&args) {
            tracked = list
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(s))
                })
                .collect();
        }
        // Deleted files are no longer in the worktree but still in HEAD.
        let mut args: Vec<&std::ffi::OsStr> = ["ls-tree", "-z", "--name-only", "HEAD", "--"]
            .map(std::ffi::OsStr::new)
            .to_vec();
        args.extend(rel.iter().map(|p| as_os(p)));
        if let Some(list) = git(&args) {
            tracked.extend(list.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| {
                PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(s))
            }));
        }
        tracked.sort();
        tracked.dedup();
    }
    if !tracked.is_empty() {
        let mut args: Vec<&std::ffi::OsStr> = [
            "diff",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "HEAD",
            "--",
        ]
        .map(std::ffi::OsStr::new)
        .to_vec();
        args.extend(tracked.iter().map(|p| as_os(p)));
        if let Some(diff) = git(&args) {
            // File contents are the agent's: escaped, lines kept.
            out.push_str(&escape_text(&String::from_utf8_lossy(&diff)));
        }
    }
    let others: Vec<&audit::FileChange> = changed
        .paths
        .iter()
        .filter(|p| {
            p.path
                .strip_prefix(ws)
                .map_or(true, |r| !tracked.iter().any(|t| t == r))
        })
        .collect();
    if !others.is_empty() {
        out.push_str("not tracked by git (named, not diffed):\n");
        for p in others {
            out.push_str(&format!("  {:<8} {}\n", p.change, escape_path(&p.path)));
        }
    }
    let total = changed.added + changed.modified + changed.deleted + changed.mode_changed;
    if total > changed.paths.len() {
        out.push_str(&format!(
            "... and {} more change(s) the record does not list\n",
            total - changed.paths.len()
        ));
    }
    print(out.as_bytes(), "the diff")
}

fn print_lossy(bytes: &[u8], what: &'static str) -> Result<i32, Error> {
    print(bytes, what)
}

fn use_color(arg: ColorArg) -> session::diff::Color {
    use std::io::IsTerminal;
    let on = match arg {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
        }
    };
    if on {
        session::diff::Color::Always
    } else {
        session::diff::Color::Never
    }
}

fn diff(args: DiffArgs) -> Result<i32, Error> {
    use session::{changes, diff};
    let host = Host::current()?;
    let (id, paths) = session_and_paths(&host, &args.args);
    // A direct session has no layer to diff: its record of changed files,
    // with what git shows of them (a named session, or the newest of this
    // workspace when it has no overlay session).
    let direct = |r: &session::Record| r.mode == crate::policy::WorkspaceMode::Direct;
    let named_direct = match id.as_deref() {
        Some(id) => session::find(&host, Some(id), |_| true)?.filter(|(_, r)| direct(r)),
        None => None,
    };
    let found = match named_direct {
        Some(hit) => Err(hit),
        None => match session::find_overlay(&host, id.as_deref()) {
            Err(session::SessionError::NoSession { .. }) if id.is_none() => {
                match session::find(&host, None, direct)? {
                    Some(hit) => Err(hit),
                    None => Ok(session::find_overlay(&host, None)?),
                }
            }
            other => Ok(other?),
        },
    };
    let (dir, record) = match found {
        Ok(overlay) => overlay,
        Err((dir, record)) => return direct_diff(&dir, &record),
    };
    let only = workspace_paths(&host, &record.workspace, &paths)?;
    let upper = dir.join("upper");
    let list: Vec<changes::Change> = changes::collect(&upper, &record.workspace, &record.protect)?
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|p| c.path.starts_with(p)))
        .collect();
    let color = use_color(args.color);
    let mut out = String::new();
    let mut stats = Vec::new();
    for c in &list {
        let (text, stat) =
            diff::render(c, &upper, &record.workspace, color).map_err(|source| Error::Write {
                path: c.path.clone(),
                source,
            })?;
        if args.stat {
            if let Some(st) = stat {
                stats.push(st);
            } else if !text.is_empty() && c.protected.is_some() {
                out.push_str(&text);
            }
        } else {
            out.push_str(&text);
        }
    }
    if args.stat {
        out.push_str(&diff::render_stat(&stats, color));
    }
    print_lossy(out.as_bytes(), "the diff")
}

fn apply(args: ApplyArgs) -> Result<i32, Error> {
    use session::changes::Kind;
    let host = Host::current()?;
    let (id, paths) = session_and_paths(&host, &args.args);
    let (dir, mut record) = session::find_overlay(&host, id.as_deref())?;
    session::ensure_finished(&record)?;
    let only = workspace_paths(&host, &record.workspace, &paths)?;
    let include = workspace_paths(&host, &record.workspace, &args.include_protected)?;
    let outcome = session::apply::apply(&record, &dir.join("upper"), &only, &include, args.force)?;
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
    if only.is_empty() && outcome.protected.is_empty() {
        record.applied = Some(audit::rfc3339(std::time::SystemTime::now()));
        session::write_record(&dir, &record)?;
    }
    print_lossy(out.as_bytes(), "the apply report")
}

fn restore(args: crate::cli::RestoreArgs) -> Result<i32, Error> {
    let host = Host::current()?;
    let log = crate::audit::find_session(&host, Some(&args.session))?;
    let dir = log.parent().unwrap_or(&log).to_path_buf();
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = crate::plan::normalize_path(&host.cwd.join(&args.path));
    session::quarantine::restore(&dir, &id, &path)?;
    print(
        format!(
            "restored {} from session {}\n",
            crate::term::escape_path(&path),
            crate::term::escape(&id)
        )
        .as_bytes(),
        "the restore report",
    )
}

fn discard(args: DiscardArgs) -> Result<i32, Error> {
    let host = Host::current()?;
    let (dir, record) = session::find_overlay(&host, args.session.as_deref())?;
    session::ensure_finished(&record)?;
    session::discard(&host, &dir)?;
    print(
        format!(
            "discarded session {} ({} removed)\n",
            crate::term::escape(&record.id),
            crate::term::escape_path(&dir)
        )
        .as_bytes(),
        "the discard report",
    )
}

/// Shows what the file widens, asks on a terminal (unless `yes`), pins.
fn trust(file: Option<PathBuf>, yes: bool) -> Result<i32, Error> {
    use std::io::IsTerminal;
    let host = Host::current()?;
    let file = project_file(file, &host)?;
    let preview = policy::trust_preview(&file, &host)?;
    let mut widenings = preview.widenings.clone();
    // When it is this directory's project file, the plan's findings too
    // (what its lines do together), against your own config alone.
    let discovered = policy::find_project_file(&host)
        .and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| p == preview.path);
    if discovered
        && let Ok(loaded) = load(&crate::cli::PolicyArgs::default(), None, true)
        && let Ok((_, found)) = loaded.plan(&["true".to_string()], None)
    {
        for w in found {
            if !widenings.contains(&w) {
                widenings.push(w);
            }
        }
    }
    let mut s = String::new();
    if widenings.is_empty() {
        let _ = writeln!(
            s,
            "{} only narrows what your own policy allows",
            preview.path.display()
        );
    } else {
        let _ = writeln!(
            s,
            "{} widens the sandbox beyond what your own policy allows:",
            preview.path.display()
        );
        for w in &widenings {
            let _ = writeln!(s, "  {w}");
        }
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            print(crate::term::escape_text(&s).as_bytes(), "the trust report")?;
            return Err(Error::TrustNotConfirmed {
                path: preview.path,
                why: "standard input is not a terminal to ask on",
            });
        }
        s.push_str("trust it? [y/N] ");
        print(
            crate::term::escape_text(&s).as_bytes(),
            "the trust question",
        )?;
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES") {
            return Err(Error::TrustNotConfirmed {
                path: preview.path,
                why: "the answer was not yes",
            });
        }
    } else {
        print(crate::term::escape_text(&s).as_bytes(), "the trust report")?;
    }
    let report = policy::trust(&file, &host)?;
    if report.sha256 != preview.sha256 {
        // Changed while the user read it: what they agreed to is not what
        // was pinned. Take the pin back.
        let _ = policy::untrust(&file, &host);
        return Err(Error::TrustNotConfirmed {
            path: report.path,
            why: "the file changed while you were deciding",
        });
    }
    let line = format!(
        "trusted {} (sha256 {})\n",
        report.path.display(),
        &report.sha256[..12]
    );
    print(
        crate::term::escape_text(&line).as_bytes(),
        "the trust report",
    )
}

fn untrust(file: Option<PathBuf>) -> Result<i32, Error> {
    let host = Host::current()?;
    let file = project_file(file, &host)?;
    let line = if policy::untrust(&file, &host)? {
        format!("untrusted {}\n", file.display())
    } else {
        format!("{} was not trusted\n", file.display())
    };
    print(
        crate::term::escape_text(&line).as_bytes(),
        "the trust report",
    )
}

/// The agents `shell-init` aliases, with the profile each runs under.
const AGENTS: &[&str] = &["claude", "codex", "gemini", "aider"];

fn shell_init(shell: crate::cli::InitShell) -> Result<i32, Error> {
    use crate::cli::InitShell;
    let host = Host::current()?;
    let path = host.var("PATH").unwrap_or("/usr/local/bin:/usr/bin:/bin");
    let mut out = String::new();
    let _ = writeln!(out, "# cage: run these agents caged (cage shell-init)");
    for agent in AGENTS {
        let found = path.split(':').any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(Path::new(dir).join(agent))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
        if !found {
            continue;
        }
        let _ = match shell {
            InitShell::Bash | InitShell::Zsh => {
                writeln!(out, "alias {agent}='cage -- {agent}'")
            }
            InitShell::Fish => writeln!(
                out,
                "function {agent} --wraps {agent}; cage -- {agent} $argv; end"
            ),
        };
    }
    print(out.as_bytes(), "the aliases")
}
