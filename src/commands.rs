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
use crate::plan::{self, explain};
use crate::policy;
use crate::session::{self, run};

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

fn run(args: RunArgs) -> Result<i32, Error> {
    let mut loaded = run::load(
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
        return loaded.refusal(refused);
    }
    // Before anything of the session exists: a cgroup of cage's own for the
    // cgroup limits, from the user's systemd if need be (which starts this
    // cage again, in a new scope).
    let place = run::cgroup_place(&loaded.policy, true)?;
    run::Run::open(&mut loaded, &args.command, place)?
        .pruning(run::prune_rules(None, None))
        .run()
}

fn prune_sessions(keep: Option<usize>, max_days: Option<u64>) -> Result<i32, Error> {
    let host = Host::current()?;
    // Asked for by name, CAGE_KEEP_SESSIONS=0 (no automatic pruning) does
    // not stop it: keep the newest N, or, with neither, the default.
    let rules = match run::prune_rules(keep, max_days) {
        Some(rules) => rules,
        None => session::PruneRules {
            keep: keep.unwrap_or(session::DEFAULT_KEEP),
            ..run::prune_rules(Some(1), max_days).unwrap_or_default()
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
    let loaded = run::load(args, command, true)?;
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
    let loaded = run::load(args, command, true)?;
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
    let host = Host::current()?;
    let all = session::list(&host)?;
    let out = if all.is_empty() {
        format!("no sessions in {}\n", audit::sessions_dir(&host).display())
    } else {
        crate::render::sessions(&all)
    };
    print_lossy(out.as_bytes(), "the sessions")
}

/// `print`, for the review commands (a closed pipe is not an error).
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
        Err((dir, record)) => {
            return print(
                session::direct::render(&dir, &record)?.as_bytes(),
                "the diff",
            );
        }
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
    let host = Host::current()?;
    let (id, paths) = session_and_paths(&host, &args.args);
    let (dir, mut record) = session::find_overlay(&host, id.as_deref())?;
    session::ensure_finished(&record)?;
    let only = workspace_paths(&host, &record.workspace, &paths)?;
    let include = workspace_paths(&host, &record.workspace, &args.include_protected)?;
    let outcome = session::apply::apply(&record, &dir.join("upper"), &only, &include, args.force)?;
    let out = crate::render::applied(&outcome, &record);
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
        .and_then(|p| crate::host::canonical(p).ok())
        .is_some_and(|p| p == preview.path);
    if discovered
        && let Ok(loaded) = run::load(&crate::cli::PolicyArgs::default(), None, true)
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
