//! One session's lifecycle, open → run → finish, for every command that
//! starts one (`cage run`, `cage selftest`): the policy loaded and planned
//! for it, its reservation, record and audit log, the supervisor's run,
//! and its end (the end record, the session record's status, the
//! end-of-session reports and summaries). The supervisor only runs the
//! cage; the commands only call `Run::open` and `Run::run`.

use crate::audit;
use crate::cgroup::Place;
use crate::cli::PolicyArgs;
use crate::error::Error;
use crate::host::Host;
use crate::plan::{self, Plan};
use crate::policy::{self, FlagRules, LoadRequest, Policy, ProjectMode};
use crate::term;

use super::Reserved;

/// What to load for `args`; `command` is argv[0] of the run, whose
/// profile applies when no `-p` is given.
pub fn request(args: &PolicyArgs, command: Option<&str>) -> LoadRequest {
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
pub struct Loaded {
    pub host: Host,
    pub request: LoadRequest,
    pub policy: Policy,
}

/// Loads the policy for `args` on this host. `preview`: an untrusted
/// project file that widens is applied anyway, so its grants can be shown
/// (marked refused); never for a run.
pub fn load(args: &PolicyArgs, command: Option<&str>, preview: bool) -> Result<Loaded, Error> {
    let host = Host::current()?;
    let mut request = request(args, command);
    if preview && request.project == ProjectMode::Discover {
        request.project = ProjectMode::Preview;
    }
    Loaded::new(host, request)
}

impl Loaded {
    pub fn new(host: Host, request: LoadRequest) -> Result<Loaded, Error> {
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
    pub fn plan(
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

    /// A preview's end: the refusal the run would meet, if any.
    pub fn refusal(&self, refused: Vec<policy::Widening>) -> Result<i32, Error> {
        match &self.policy.project {
            Some(project) if !refused.is_empty() => Err(untrusted(project, refused)),
            _ => Ok(0),
        }
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
pub fn cgroup_place(policy: &Policy, may_reexec: bool) -> Result<Place, Error> {
    use crate::cgroup::{self, Wanted};
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

/// The pruning rules: the flags, else CAGE_KEEP_SESSIONS and
/// CAGE_SESSION_MAX_DAYS, else the defaults. `None` when
/// CAGE_KEEP_SESSIONS=0 and no flag says otherwise: never prune.
pub fn prune_rules(keep: Option<usize>, max_days: Option<u64>) -> Option<super::PruneRules> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let keep = keep
        .or_else(|| var("CAGE_KEEP_SESSIONS").map(|n| n as usize))
        .unwrap_or(super::DEFAULT_KEEP);
    let days = max_days.or_else(|| var("CAGE_SESSION_MAX_DAYS"));
    let max_age = match days {
        Some(0) => None,
        Some(d) => Some(d.saturating_mul(24 * 3600)),
        None => Some(super::DEFAULT_MAX_AGE),
    };
    (keep > 0).then_some(super::PruneRules { keep, max_age })
}

/// A reserved session directory, removed again when dropped before the
/// cage ran: a run that stops before it starts leaves no session.
struct Reservation(Option<Reserved>);

impl Reservation {
    fn get(&self) -> Option<&Reserved> {
        self.0.as_ref()
    }

    /// The cage ran: the directory is the session's, whatever follows.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            r.release();
        }
    }
}

/// One session, opened: reserved, planned, recorded, not yet run.
pub struct Run<'a> {
    loaded: &'a mut Loaded,
    plan: Plan,
    place: Place,
    reservation: Reservation,
    log: Option<audit::Session>,
    prune: Option<super::PruneRules>,
}

impl<'a> Run<'a> {
    /// Reserves a session, builds the plan for it (refusing what an
    /// untrusted project file widens), and creates its record and audit
    /// log. Any failure leaves no session behind.
    ///
    /// 1. Reserve first, so the plan finds cage's state directory and
    ///    hides it from the view like any existing path, and so an overlay
    ///    plan can name the session's upper directory.
    /// 2. Plan; a command that cannot run gets its reason.
    /// 3. Limits that have no cgroup: refused when required, else said.
    /// 4. The record and the log: required where they hold the session's
    ///    work (overlay, state directories) or its decisions (proxy);
    ///    elsewhere a session without them still runs, and says so.
    pub fn open(loaded: &'a mut Loaded, argv: &[String], place: Place) -> Result<Run<'a>, Error> {
        // 1.
        let reserved = super::reserve(&loaded.host);
        let id = reserved.as_ref().ok().map(|r| r.id.clone());
        let held = Reservation(reserved.as_ref().ok().cloned());
        // 2.
        let (plan, _) = loaded.plan(argv, id.as_deref())?;
        if let Some(why) = plan.command.not_found.clone() {
            return Err(why.into());
        }
        for note in &plan.notes {
            term::emit(&format!("cage: note: {}", term::escape_text(note)));
        }
        // 3.
        let unenforced = unenforced_limits(&plan, &place)?;
        // 4.
        let required = plan.network.mode == crate::policy::NetMode::Proxy
            || plan.workspace.overlay.is_some()
            || !plan.state.is_empty();
        let reservation = match reserved {
            Ok(_) => held,
            Err(e) if required => return Err(e.into()),
            Err(e) => {
                without_record(&e);
                held
            }
        };
        let log = match reservation.get() {
            Some(r) => match open_log(r, &loaded.policy, &plan, unenforced) {
                Ok(log) => Some(log),
                Err(e) if required => return Err(e),
                Err(e) => {
                    without_record(&e);
                    None
                }
            },
            None => None,
        };
        Ok(Run {
            loaded,
            plan,
            place,
            reservation,
            log,
            prune: None,
        })
    }

    /// Prunes old sessions by `rules` while the agent runs: off the start,
    /// which it would slow, and off the end, where it cost every session
    /// about 0.1 ms per session kept (each record is read). A failure to
    /// prune costs the run nothing.
    pub fn pruning(mut self, rules: Option<super::PruneRules>) -> Run<'a> {
        self.prune = rules;
        self
    }

    /// Runs the cage, then finishes the session: every record is written
    /// before anything is printed (the agent may have sabotaged the shared
    /// terminal, and giving up on it must cost only the copy on the
    /// screen: `term::emit` never blocks for long).
    pub fn run(self) -> Result<i32, Error> {
        let Run {
            loaded,
            mut plan,
            place,
            reservation,
            log,
            prune,
        } = self;
        // The state directories' layers live in the session's directory.
        super::state::prepare(&plan, &loaded.host.home)?;
        // Last before the run: the real values live from here on, in this
        // process only.
        let vault = crate::secrets::prepare(&mut plan, &mut loaded.host)?;
        let session = log.as_ref();
        crate::supervisor::check(&plan, session)?;
        reservation.keep();
        // A second early: file times come from a coarse clock (and some
        // filesystems keep whole seconds); reporting a change the user made
        // just before is the safe side.
        let since = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        // A direct session's trees, before the agent can touch them.
        let before = session
            .filter(|_| plan.workspace.mode == crate::policy::WorkspaceMode::Direct)
            .map(|s| super::finish::before(&plan, s));
        let host = &loaded.host;
        let ran = std::thread::scope(|scope| {
            let pruner = std::sync::OnceLock::new();
            let started = || {
                if let Some(super::finish::Before::Watch(w)) = &before {
                    w.drain_in_background();
                }
                // The running session is never pruned: counting it, the
                // same sessions go as after it. At the idle priority: on a
                // machine with few CPUs it would take one from the start.
                if let Some(rules) = prune {
                    let _ = pruner.set(scope.spawn(move || {
                        let _ = crate::sys::idle_priority();
                        super::prune(host, rules)
                    }));
                }
            };
            let ran = crate::supervisor::run(&plan, session, place, vault, &started);
            if let Some(p) = pruner.into_inner() {
                let _ = p.join();
            }
            ran
        });
        let mut lines = ran.lines;
        let status = ran.status;
        lines.extend(super::finish::reports(
            &plan,
            session,
            status.is_ok(),
            since,
            before,
        ));
        if let Some(session) = session {
            lines.extend(end(session, &status));
        }
        for line in &lines {
            term::emit(line);
        }
        Ok(status?)
    }
}

/// The session's end record and its record's status; the summaries of
/// what it used and what was denied, to print.
fn end(
    session: &audit::Session,
    status: &Result<i32, crate::supervisor::SupervisorError>,
) -> Vec<String> {
    let (code, error) = match status {
        Ok(code) => (*code, None),
        Err(e) => (e.exit_code(), Some(crate::error::chain(e))),
    };
    let _ = session.ended(code, error);
    let _ = super::record_end(&session.dir, code);
    session
        .secrets_summary()
        .into_iter()
        .chain(session.denied_summary())
        .collect()
}

/// Step 3 of `Run::open`: the cgroup limits the place cannot enforce.
fn unenforced_limits(plan: &Plan, place: &Place) -> Result<Vec<String>, Error> {
    let Place::Unavailable(why) = place else {
        return Ok(Vec::new());
    };
    let limits = plan.limits.cgroup_limits();
    if let Some(rule) = &plan.limits.required {
        return Err(Error::LimitsRequired {
            limits: limits.join(", "),
            why: why.clone(),
            rule: rule.to_string(),
        });
    }
    term::emit(&format!(
        "cage: warning: not enforced: [limits] {}: {} (run cage in a systemd user session for \
         cgroup limits; nofile, nproc, fsize and core are enforced, as rlimits)",
        limits.join(", "),
        term::escape_text(why)
    ));
    Ok(limits)
}

/// The session record (`session.toml`) and the audit log.
fn open_log(
    r: &Reserved,
    policy: &Policy,
    plan: &Plan,
    unenforced: Vec<String>,
) -> Result<audit::Session, Error> {
    let names = plan
        .workspace
        .watch
        .iter()
        .map(|n| n.value.clone())
        .collect();
    r.start(plan, names)?;
    Ok(audit::Session::create(
        &r.id, &r.dir, policy, plan, unenforced,
    )?)
}

fn without_record(e: &dyn std::error::Error) {
    term::emit(&format!(
        "cage: warning: running without a session record: {}",
        term::escape_text(&crate::error::chain(e))
    ));
}
