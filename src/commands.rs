//! The subcommands: glue between the CLI, the policy, the plan and the
//! supervisor. Output formatting for people lives here too.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::audit;
use crate::cli::{Cli, Command, LogArgs, PolicyArgs, PolicyCommand, RunArgs};
use crate::error::Error;
use crate::host::Host;
use crate::plan::{self, Mount, Plan, explain};
use crate::policy::{self, FlagRules, LoadRequest, Policy, ProjectMode};
use crate::supervisor;

pub fn dispatch(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Policy(PolicyCommand::Show { policy, json })) => policy_show(&policy, json),
        Some(Command::Policy(PolicyCommand::Check { file })) => policy_check(file),
        Some(Command::Policy(PolicyCommand::Init { profile, force })) => {
            policy_init(profile, force)
        }
        Some(Command::Explain(args)) => explain_cmd(&args.policy, &args.target),
        Some(Command::Trust(args)) => trust(args.file, true),
        Some(Command::Untrust(args)) => trust(args.file, false),
        Some(Command::Doctor) => Ok(crate::doctor::run()),
        Some(Command::ShellInit(args)) => shell_init(args.shell),
        Some(Command::Log(args)) => log(args),
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

fn print(bytes: &[u8], what: &'static str) -> Result<i32, Error> {
    std::io::stdout()
        .write_all(bytes)
        .and_then(|_| std::io::stdout().flush())
        .map_err(|source| Error::Output { what, source })?;
    Ok(0)
}

fn request(args: &PolicyArgs) -> LoadRequest {
    LoadRequest {
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
        },
    }
}

fn load(args: &PolicyArgs) -> Result<(Host, Policy), Error> {
    let host = Host::current()?;
    let policy = policy::load(&request(args), &host)?;
    Ok((host, policy))
}

fn run(args: RunArgs) -> Result<i32, Error> {
    let (host, policy) = load(&args.policy)?;
    if !args.dry_run {
        // Before the plan, so the plan finds cage's state directory and
        // hides it from the view like any existing path.
        let _ = audit::prepare(&host);
    }
    let plan = plan::build(&policy, &host, &args.command)?;
    if args.dry_run {
        let text = if args.json {
            let mut s = serde_json::to_string_pretty(&plan).unwrap_or_default();
            s.push('\n');
            s
        } else {
            render_plan(&plan)
        };
        return print(text.as_bytes(), "the plan");
    }
    for note in &plan.notes {
        eprintln!("cage: note: {note}");
    }
    let unenforced = plan.limits.unenforced();
    if !unenforced.is_empty() {
        eprintln!(
            "cage: warning: not enforced: [limits] {} (cgroup limits are not implemented yet; \
             nofile, nproc, fsize and core are, as rlimits)",
            unenforced.join(", ")
        );
    }
    // The audit log is required where it records decisions (proxy mode);
    // elsewhere a session without one still runs, and says so.
    let session = match audit::Session::create(&host, &policy, &plan) {
        Ok(s) => Some(s),
        Err(e) if plan.network.proxy.is_some() => return Err(e.into()),
        Err(e) => {
            eprintln!(
                "cage: warning: running without a session record: {}",
                crate::sandbox::init::chain(&e)
            );
            None
        }
    };
    Ok(supervisor::run(&plan, session.as_ref())?)
}

/// The plan for people: one line per decision, with its rule.
pub fn render_plan(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "command    {}", plan.command.argv.join(" "));
    match &plan.command.program {
        Some(p) => {
            let _ = writeln!(s, "program    {}", p.display());
        }
        None => {
            let _ = writeln!(s, "program    NOT FOUND inside the cage (exit 127)");
        }
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
    let _ = writeln!(
        s,
        "\nview (a fresh tmpfs root; nothing else of the host is visible):"
    );
    for m in &plan.mounts {
        let line = match m {
            Mount::Pin { dst, source } => format!("pin  {}  [{source}]", dst.display()),
            Mount::Bind {
                src,
                dst,
                access,
                source,
                ..
            } => {
                let how = match access {
                    plan::Access::ReadOnly => "ro  ",
                    plan::Access::ReadWrite => "rw  ",
                };
                if src == dst {
                    format!("{how} {}  [{source}]", dst.display())
                } else {
                    format!("{how} {} <- {}  [{source}]", dst.display(), src.display())
                }
            }
            Mount::Tmpfs { dst, source, .. } => format!("tmpfs {}  [{source}]", dst.display()),
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
        };
        let _ = writeln!(s, "  {line}");
    }
    if !plan.workspace.protected.is_empty() {
        let _ = writeln!(s, "\nprotected (read-only inside the workspace):");
        for p in &plan.workspace.protected {
            let _ = writeln!(s, "  {}  [{}]", p.path.display(), p.source);
        }
    }
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
            plan::Requirement::Required => "required".to_string(),
            plan::Requirement::BestEffort { source } => format!("best effort ({source})"),
        }
    );
    let names: Vec<&str> = plan.seccomp.deny.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(s, "seccomp    deny {}", names.join(" "));
    let _ = writeln!(
        s,
        "           foreign syscall ABIs killed: {}",
        plan.seccomp.kill_foreign_abi
    );
    let _ = writeln!(
        s,
        "network    {:?} [{}]",
        plan.network.mode, plan.network.source
    );
    if let Some(p) = &plan.network.proxy {
        let _ = writeln!(
            s,
            "  proxy {} and DNS stub {} on the cage's loopback, served by cage from outside",
            p.listen, p.dns
        );
    }
    for r in &plan.network.allow {
        let _ = writeln!(s, "  allow {}  [{}]", r.pattern, r.source);
    }
    for r in &plan.network.deny {
        let _ = writeln!(s, "  deny  {}  [{}]", r.pattern, r.source);
    }
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
                "  {name} = {} (cgroup; not enforced yet)  [{}]",
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
    s
}

fn policy_show(args: &PolicyArgs, json: bool) -> Result<i32, Error> {
    let (_, policy) = load(args)?;
    let text = if json {
        let mut s = serde_json::to_string_pretty(&policy).unwrap_or_default();
        s.push('\n');
        s
    } else {
        render_policy(&policy)
    };
    print(text.as_bytes(), "the policy")
}

fn render_policy(p: &Policy) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "sources (lowest precedence first):");
    for src in &p.sources {
        let _ = writeln!(
            s,
            "  {:?} {}{}",
            src.kind,
            src.name,
            src.sha256
                .as_ref()
                .map(|h| format!(" sha256:{}", &h[..12.min(h.len())]))
                .unwrap_or_default()
        );
    }
    let mut section = |title: &str, rows: Vec<String>| {
        if !rows.is_empty() {
            let _ = writeln!(s, "\n[{title}]");
            for r in rows {
                let _ = writeln!(s, "  {r}");
            }
        }
    };
    let paths = |list: &[policy::Sourced<policy::PathRule>]| -> Vec<String> {
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
    };
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
    section("workspace", ws);
    let fs = &p.filesystem;
    section("filesystem.read", paths(&fs.read));
    section("filesystem.write", paths(&fs.write));
    section("filesystem.hide", paths(&fs.hide));
    section("filesystem.tmpfs", paths(&fs.tmpfs));
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
    section("network", net);
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
    section("env", env);
    let l = &p.limits;
    let lim: Vec<String> = [
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
    .collect();
    section("limits", lim);
    let mut proc_rows = Vec::new();
    if let Some(v) = &p.process.allow_ptrace {
        proc_rows.push(format!("allow_ptrace = {}  [{}]", v.value, v.source));
    }
    section("process", proc_rows);
    section(
        "security",
        p.security
            .allow_degraded
            .iter()
            .map(|v| format!("allow_degraded {:?}  [{}]", v.value, v.source))
            .collect(),
    );
    s
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
    println!("{}: ok", file.display());
    Ok(0)
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
    println!(
        "wrote {}; check it with `cage policy check`",
        path.display()
    );
    Ok(0)
}

fn explain_cmd(args: &PolicyArgs, target: &str) -> Result<i32, Error> {
    let (host, policy) = load(args)?;
    let plan = plan::build(&policy, &host, &["true".to_string()])?;
    let e = if explain::is_path(target, &host.cwd) {
        let path = explain::absolute(target, &host.home, &host.cwd);
        explain::explain_path(&plan, &policy, &path)
    } else {
        let (name, port) = explain::parse_host_port(target).ok_or_else(|| Error::BadTarget {
            target: target.to_string(),
        })?;
        explain::explain_host(&plan, &name, port)
    };
    println!("{target}: {}", if e.allowed { "allowed" } else { "denied" });
    for line in e.lines {
        println!("  {line}");
    }
    Ok(if e.allowed { 0 } else { 1 })
}

fn log(args: LogArgs) -> Result<i32, Error> {
    let host = Host::current()?;
    let path = audit::find_session(&host, args.session.as_deref())?;
    let mut out = std::io::stdout().lock();
    match audit::show(&path, args.json, args.follow, &mut out) {
        Err(audit::AuditError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        other => other.map(|()| 0).map_err(Error::from),
    }
}

fn trust(file: Option<PathBuf>, pin: bool) -> Result<i32, Error> {
    let host = Host::current()?;
    let file = project_file(file, &host)?;
    let file: &Path = &file;
    if pin {
        let report = policy::trust(file, &host)?;
        println!("trusted {}", file.display());
        if !report.widenings.is_empty() {
            println!("it widens access beyond the workspace:");
            for w in &report.widenings {
                println!("  {w}");
            }
        }
    } else if policy::untrust(file, &host)? {
        println!("untrusted {}", file.display());
    } else {
        println!("{} was not trusted", file.display());
    }
    Ok(0)
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
                writeln!(out, "alias {agent}='cage -p {agent} -- {agent}'")
            }
            InitShell::Fish => writeln!(
                out,
                "function {agent} --wraps {agent}; cage -p {agent} -- {agent} $argv; end"
            ),
        };
    }
    print(out.as_bytes(), "the aliases")
}
