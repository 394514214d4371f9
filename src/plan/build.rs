//! `build`: merged policy + host facts → plan. Pure apart from reading the
//! host filesystem's metadata (existence, kind, symlinks), which is part of
//! the facts the plan resolves against.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Component, Path, PathBuf};

use crate::host::Host;
use crate::policy::{self, Layer, NetMode, Policy, Provenance, Sourced, WorkspaceMode};

use super::deepest_cover;
use super::seccomp::build_seccomp;
use super::{
    Access, CommandPlan, CreateDir, EnvVar, FileKind, HostRule, LandlockPlan, Limit, LimitsPlan,
    LinkedGitdir, Mount, NetworkPlan, OverlayPlan, PathRule, Plan, ProxyPlan, Requirement, Rlimit,
    RlimitKind, StatePlan, WorkspacePlan,
};

/// The PATH the agent gets when no policy sets one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// The proxy's port on the cage's loopback. Fixed, so the environment can
/// name it before the listener exists; 3128 is the customary proxy port.
pub const PROXY_PORT: u16 = 3128;

/// The PATH a shell searches when none is set (execvp's default).
const HOST_DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Variables that name the CA certificates a corporate TLS proxy needs: the
/// file or directory each names is shown read-only and the variable passed.
pub(crate) const CA_VARS: &[&str] = &[
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
];

/// The cage's hosts file: its own hostname resolves, as on any host.
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                     127.0.1.1\tcage\n";

/// The cage's resolver file: the DNS stub on the cage's loopback.
const RESOLV_CONF: &str = "nameserver 127.0.0.1\noptions attempts:2 timeout:2\n";

/// Device nodes the agent may open for reading and writing.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no command given: usage is `cage [OPTIONS] -- COMMAND [ARGS...]`")]
    NoCommand,
    #[error(
        "the environment variable {name} ({rule}) holds a NUL byte, which exec cannot pass: \
         remove it from the value"
    )]
    EnvNul { name: String, rule: Provenance },
    #[error(
        "{path}: required by {rule} but it does not exist (prefix the path with `?` to make it optional)"
    )]
    MissingPath { path: PathBuf, rule: Provenance },
    #[error("{path}: resolving the path required by {rule}")]
    Resolve {
        path: PathBuf,
        rule: Provenance,
        #[source]
        error: std::io::Error,
    },
    #[error(
        "refusing to make {path} the workspace: it is {what}, so the agent would see and change \
         everything below it. Run cage from a project directory, or name it explicitly with \
         [workspace] path in a policy file passed with -f"
    )]
    WorkspaceTooBroad { path: PathBuf, what: &'static str },
    #[error(
        "refusing {path} as {role} ({rule}): it is {what}, where other programs keep their \
         sockets (tmux, ssh-agent, D-Bus, X11), which the agent could then drive. Run cage from \
         a project directory, or accept it with --allow-shared-dir {path}"
    )]
    SharedDir {
        path: PathBuf,
        role: &'static str,
        what: String,
        rule: Provenance,
    },
    #[error(
        "{path} ({rule}) resolves to {real}, outside the project root {root}: an untrusted \
         project policy may not reach there through a link. Run 'cage trust' on that file if \
         you mean it, or pass --no-project-policy"
    )]
    UntrustedEscape {
        path: PathBuf,
        real: PathBuf,
        root: PathBuf,
        rule: Provenance,
    },
    #[error(
        "the working directory {cwd} is not visible inside the cage (workspace {workspace}); \
         run cage from inside the workspace or grant the directory with --ro/--rw"
    )]
    CwdNotVisible { cwd: PathBuf, workspace: PathBuf },
    #[error(
        "the overlay workspace cannot be used for {workspace}: the session's upper directory \
         {upper} would lie inside it (or it inside the upper directory), and overlayfs refuses \
         overlapping layers. Point XDG_STATE_HOME outside the workspace, or use --workspace direct"
    )]
    OverlayInsideWorkspace { workspace: PathBuf, upper: PathBuf },
    #[error(
        "{path} is protected, but it has {links} hard links: the agent could change it through \
         another name that no read-only view covers. Break the link first (for example \
         `cp --remove-destination \"$(readlink -f {path})\" {path}` on a copy) and run cage again"
    )]
    HardLinked { path: PathBuf, links: u64 },
    #[error(transparent)]
    Secrets(#[from] super::secrets::SecretsError),
    #[error("{0}")]
    TrustedRelinked(Box<Relinked>),
}

/// A trusted project rule that a link now leads elsewhere.
#[derive(Debug)]
pub struct Relinked {
    path: PathBuf,
    real: PathBuf,
    link: PathBuf,
    target: PathBuf,
    /// Where it led when the file was trusted, if it existed then.
    was: Option<PathBuf>,
    rule: Provenance,
}

impl std::fmt::Display for Relinked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) now leads through the link {} -> {} to {}",
            self.path.display(),
            self.rule,
            self.link.display(),
            self.target.display(),
            self.real.display()
        )?;
        if let Some(was) = &self.was {
            write!(f, " (it led to {} when trusted)", was.display())?;
        }
        write!(
            f,
            ": the project policy was trusted for where its paths led then, and a link made \
             since (by an earlier session, perhaps) must not widen it. Remove the link, or check \
             it and run 'cage trust' on the file again"
        )
    }
}

/// Resolves a merged policy against the host into a plan.
///
/// Order of decisions:
/// 1. the workspace (path, mode, refusal of `/` and `$HOME`);
/// 2. the view: binds from read/write rules and the workspace, tmpfs, hides,
///    protected paths, sorted parents first; hide beats read/write;
/// 3. the Landlock sets, mirroring the view;
/// 4. the syscall deny list, environment, network, limits;
/// 5. the command, resolved against the final PATH and view.
pub fn build(policy: &Policy, host: &Host, argv: &[String]) -> Result<Plan, BuildError> {
    build_for_session(policy, host, argv, None)
}

/// The session id an overlay plan names when it is built for no session
/// (`--dry-run`, `cage explain`).
pub const SESSION_PLACEHOLDER: &str = "<session>";

/// [`build`] for session `session` (its id): an overlay workspace's upper
/// and work directories live in `state_dir/sessions/<session>/`. Without a
/// session the overlay names [`SESSION_PLACEHOLDER`].
pub fn build_for_session(
    policy: &Policy,
    host: &Host,
    argv: &[String],
    session: Option<&str>,
) -> Result<Plan, BuildError> {
    if argv.is_empty() {
        return Err(BuildError::NoCommand);
    }
    let mut notes = Vec::new();

    // 1. Workspace. Neither it nor a grant may be a shared directory.
    let shared = shared_dirs(host);
    let ws = Workspace::resolve(policy, host, &shared, session)?;

    // 2. The view: grants, agent state, the workspace, the command, then
    //    what is protected inside the writable trees, hides over all of
    //    it, and the system files last.
    let network = build_network(policy);
    let secrets = super::secrets::build(policy, host, network.mode, &mut notes)?;
    let mut view = View::default();
    let hides = resolve_hides(policy, host, &mut notes)?;
    let mut guards = build_guards(policy);
    let mut create = Vec::new();
    add_grants(&mut view, policy, host, &shared, &hides, &mut notes)?;
    let session_dir = host
        .state_dir
        .join("sessions")
        .join(session.unwrap_or(SESSION_PLACEHOLDER));
    let mut state = add_state(
        &mut view,
        policy,
        host,
        &session_dir,
        &hides,
        &mut create,
        &mut notes,
    )?;
    if let Some(secrets) = &secrets {
        super::secrets::mask_state(&mut state, secrets, &mut notes)?;
    }
    ws.add_to(&mut view);
    // The command where the user's shell finds it, and its interpreter;
    // after the workspace, so a command inside it needs nothing more.
    let facts = crate::host::CommandFacts::probe(
        &argv[0],
        host.var("PATH").unwrap_or(HOST_DEFAULT_PATH),
        &host.cwd,
    );
    add_command(&mut view, &facts, host, &ws.path.value, &hides, &mut notes)?;
    add_ca_files(&mut view, host, &hides, &mut notes)?;
    let prot = Protection::find(&mut view, policy, host, &ws, &mut notes)?;
    keep_host_files(&mut view, host, &mut create, &mut guards);
    add_hides(&mut view, &hides);
    let granted_dirs = granted_dirs_to_walk(policy, &ws.path.value, &hides)?;
    hide_sockets(&mut view, &prot.sockets, &granted_dirs, &hides);
    let resolv = resolv_conf_path();
    add_system_files(&mut view, &network, &resolv, secrets.is_some());
    let mounts = view.finish();
    if secrets.is_some() {
        super::secrets::check_bundle(&mounts)?;
    }
    let guard = build_guard(
        policy,
        host,
        &mounts,
        &prot.names,
        &prot.known_gitdirs,
        &prot.gitdirs,
        &guards,
    );
    check_view(&mounts, host, &ws, &network, &resolv, &mut notes)?;

    // 3. Landlock mirrors the view.
    let landlock = build_landlock(policy, &mounts);

    // 4. Syscalls, environment, network, limits.
    let seccomp = seccomp_for(policy);
    let mut env = build_env(policy, host, &mounts, &network);
    finish_env(&mut env, host, &mounts);
    if let Some(secrets) = &secrets {
        super::secrets::apply_env(&mut env, secrets);
    }
    refuse_nul(&env)?;
    let limits = build_limits(policy);

    // 5. The command.
    let command = resolve_plan_command(argv, &facts, host, &env, &mounts, &hides, &mut notes);

    let mut plan = Plan {
        command,
        cwd: host.cwd.clone(),
        hostname: "cage".to_string(),
        uid: host.uid,
        gid: host.gid,
        workspace: ws.into_plan(prot),
        mounts,
        landlock,
        seccomp,
        env,
        network,
        limits,
        notes,
        guards,
        guard,
        state,
        create,
        secrets,
        graded: None,
    };
    add_graded(&mut plan, policy, &session_dir);
    Ok(plan)
}

/// The plan without namespaces, when a rule allows it: made from the
/// finished plan, so both modes grant the same paths.
fn add_graded(plan: &mut Plan, policy: &Policy, session_dir: &Path) {
    if let Some(l) = policy
        .security
        .allow_degraded
        .iter()
        .find(|l| l.value == Layer::Namespaces)
    {
        plan.graded = Some(super::graded::build(plan, &l.source, session_dir));
    }
}

/// The hides a rule asked for, resolved against the host.
type Hides = [Sourced<(PathBuf, FileKind)>];

/// The workspace, its mode, and in overlay mode where the upper layer goes.
struct Workspace {
    path: Sourced<PathBuf>,
    mode: WorkspaceMode,
    mode_source: Provenance,
    overlay: Option<OverlayPlan>,
}

impl Workspace {
    fn resolve(
        policy: &Policy,
        host: &Host,
        shared: &[PathBuf],
        session: Option<&str>,
    ) -> Result<Self, BuildError> {
        let path = resolve_workspace(policy, host, shared)?;
        let (mode, mode_source) = match &policy.workspace.mode {
            Some(m) => (m.value, m.source.clone()),
            None => (
                WorkspaceMode::Direct,
                Provenance::Default {
                    what: "workspace mode",
                },
            ),
        };
        let overlay = (mode == WorkspaceMode::Overlay).then(|| {
            let session = session.unwrap_or(SESSION_PLACEHOLDER).to_string();
            let dir = host.state_dir.join("sessions").join(&session);
            OverlayPlan {
                upper: dir.join("upper"),
                work: dir.join("work"),
                dir,
                session,
            }
        });
        if let Some(o) = &overlay
            && (o.dir.starts_with(&path.value) || path.value.starts_with(&o.dir))
        {
            return Err(BuildError::OverlayInsideWorkspace {
                workspace: path.value.clone(),
                upper: o.upper.clone(),
            });
        }
        Ok(Workspace {
            path,
            mode,
            mode_source,
            overlay,
        })
    }

    /// The workspace's part of the plan, with what the walk protected.
    fn into_plan(self, prot: Protection) -> WorkspacePlan {
        WorkspacePlan {
            path: self.path.value,
            mode: self.mode,
            source: self.path.source,
            protected: prot.protected,
            // Rescanned at the end where the session's writes land on the
            // host; in overlay mode, the names `cage diff` flags.
            watch: prot.names,
            links: prot.links,
            gitdirs: prot.gitdirs,
            known_gitdirs: prot.known_gitdirs,
            listings: prot.listings,
            tree: prot.tree,
            overlay: self.overlay,
        }
    }

    /// The workspace itself: an overlay, or a bind writable unless the
    /// mode is readonly.
    fn add_to(&self, view: &mut View) {
        let dst = self.path.value.clone();
        match &self.overlay {
            Some(o) => view.push(Mount::Overlay {
                lower: dst.clone(),
                dst,
                upper: o.upper.clone(),
                work: o.work.clone(),
                source: self.mode_source.clone(),
            }),
            None => view.push(Mount::Bind {
                src: dst.clone(),
                dst,
                access: if self.mode == WorkspaceMode::Readonly {
                    Access::ReadOnly
                } else {
                    Access::ReadWrite
                },
                kind: FileKind::Dir,
                source: self.path.source.clone(),
            }),
        }
    }
}

/// What the workspace holds that the view must protect, from one walk.
struct Protection {
    /// The names protected at any depth.
    names: Vec<Sourced<String>>,
    /// Protected paths found, bound read-only.
    protected: Vec<super::Protected>,
    /// Protected names that are links (noted, not protected).
    links: Vec<PathBuf>,
    /// Verified linked worktrees, granted.
    gitdirs: Vec<LinkedGitdir>,
    /// Every git directory the walk found.
    known_gitdirs: Vec<PathBuf>,
    /// Unix sockets found in the workspace.
    sockets: Vec<PathBuf>,
    /// Where the walk's directory listings are cached.
    listings: PathBuf,
    /// What the walk saw, for a direct session's watch.
    tree: Option<std::sync::Arc<super::listing::Tree>>,
}

impl Protection {
    /// Walks the workspace once for protected names, refuses hard-linked
    /// protected files, grants genuine linked worktrees, and binds what it
    /// found read-only with the directories leading to it pinned.
    fn find(
        view: &mut View,
        policy: &Policy,
        host: &Host,
        ws: &Workspace,
        notes: &mut Vec<String>,
    ) -> Result<Self, BuildError> {
        let names = protected_names(policy, host, &ws.path.value);
        // A direct session watches what it writes; the watch takes the
        // walk's directories instead of walking them again. Its walk keeps
        // every name hashed, in a file of its own: switching modes leaves
        // each mode's cache as it was.
        let direct = ws.mode == WorkspaceMode::Direct;
        let mut listings = super::listing::cache_file(&host.state_dir, &ws.path.value);
        if direct {
            listings.set_extension("hashed");
        }
        let scan = super::protect::scan(&ws.path.value, &names, Some(&listings), None, direct);
        refuse_hard_links(&scan.found)?;
        for (dir, e) in &scan.unreadable {
            notes.push(format!(
                "{} cannot be read ({e}), so cage cannot see whether it holds protected paths",
                dir.display()
            ));
        }
        let gitdirs = linked_gitdirs(&scan.outside, ws, notes);
        add_gitdirs(view, &gitdirs);
        let protected = add_protected(view, &ws.path.value, &scan.found, &gitdirs);
        for link in &scan.links {
            notes.push(format!(
                "{} is a symbolic link, so cage cannot protect it; check where it points \
                 before trusting it",
                link.display()
            ));
        }
        Ok(Protection {
            names,
            protected,
            links: scan.links,
            gitdirs,
            known_gitdirs: scan.gitdirs,
            sockets: scan.sockets,
            listings,
            tree: scan.tree.map(std::sync::Arc::new),
        })
    }
}

/// The finished view must show the working directory; in proxy mode, a
/// resolv.conf that could not be replaced is noted.
fn check_view(
    mounts: &[Mount],
    host: &Host,
    ws: &Workspace,
    network: &NetworkPlan,
    resolv: &Path,
    notes: &mut Vec<String>,
) -> Result<(), BuildError> {
    if network.proxy.is_some()
        && !mounts
            .iter()
            .any(|m| matches!(m, Mount::File { dst, .. } if dst == resolv))
    {
        notes.push(format!(
            "{} does not exist in a directory the cage sees, so it cannot be pointed at \
             cage's DNS stub; programs that resolve names themselves will fail",
            resolv.display()
        ));
    }
    if !is_visible(mounts, &host.cwd) {
        return Err(BuildError::CwdNotVisible {
            cwd: host.cwd.clone(),
            workspace: ws.path.value.clone(),
        });
    }
    Ok(())
}

/// An empty private home, `[filesystem] tmpfs`, and the read, write and
/// copy grants, each checked against shared directories and the project.
fn add_grants(
    view: &mut View,
    policy: &Policy,
    host: &Host,
    shared: &[PathBuf],
    hides: &Hides,
    notes: &mut Vec<String>,
) -> Result<(), BuildError> {
    view.push(Mount::Tmpfs {
        dst: host.home.clone(),
        mode: 0o700,
        source: Provenance::Default {
            what: "an empty, private home",
        },
    });
    for rule in &policy.filesystem.tmpfs {
        view.push(Mount::Tmpfs {
            dst: normalize(&rule.value.path),
            mode: 0o1777,
            source: rule.source.clone(),
        });
    }
    for (rules, access) in [
        (&policy.filesystem.read, Access::ReadOnly),
        (&policy.filesystem.write, Access::ReadWrite),
    ] {
        for rule in rules {
            if let Some((real, _)) = existing(&rule.value.path, &rule.source)? {
                check_shared_dir(policy, shared, &real, "a grant", &rule.source)?;
            }
            add_bind(view, rule, access, hides, notes)?;
            check_project_reach(policy, &rule.value.path, &rule.source)?;
        }
    }
    for rule in &policy.filesystem.copy {
        add_copy(view, rule, hides, notes)?;
        check_project_reach(policy, &rule.value.path, &rule.source)?;
    }
    Ok(())
}

/// The names protected at any depth of the workspace: the built-in list,
/// `[workspace] protect`, and any `core.hooksPath` git would use.
fn protected_names(policy: &Policy, host: &Host, workspace: &Path) -> Vec<Sourced<String>> {
    super::BUILTIN_PROTECTED
        .iter()
        .map(|n| {
            Sourced::new(
                n.to_string(),
                Provenance::Default {
                    what: "protected paths",
                },
            )
        })
        .chain(policy.workspace.protect.iter().cloned())
        .chain(hooks_path_names(host, workspace))
        .collect()
}

/// Linked worktrees: git needs the gitdir the `.git` file names, which
/// lies outside the workspace. Granted only once the link is shown to be
/// genuine; writable only where the workspace's writes land on the host
/// (in overlay mode they must wait for review, so it is read-only).
fn linked_gitdirs(
    outside: &[(PathBuf, PathBuf)],
    ws: &Workspace,
    notes: &mut Vec<String>,
) -> Vec<LinkedGitdir> {
    let access = match ws.mode {
        WorkspaceMode::Direct => Access::ReadWrite,
        WorkspaceMode::Overlay | WorkspaceMode::Readonly => Access::ReadOnly,
    };
    let mut gitdirs = Vec::new();
    for (dotgit, target) in outside {
        match super::protect::verify_linked(dotgit, target) {
            Ok((gitdir, common)) => {
                if ws.mode == WorkspaceMode::Overlay {
                    notes.push(format!(
                        "{} is a linked worktree of {}: in overlay mode its gitdir is \
                         read-only (git can read, not commit)",
                        ws.path.value.display(),
                        common.display()
                    ));
                }
                gitdirs.push(LinkedGitdir {
                    dotgit: dotgit.clone(),
                    gitdir,
                    common,
                    access,
                });
            }
            Err(why) => notes.push(format!(
                "{} points at the gitdir {}, outside the workspace, which is not granted: {why} \
                 (git will not work there inside the cage)",
                dotgit.display(),
                target.display()
            )),
        }
    }
    gitdirs
}

/// A verified linked worktree's common dir and gitdir, bound with the
/// access [`linked_gitdirs`] chose.
fn add_gitdirs(view: &mut View, gitdirs: &[LinkedGitdir]) {
    let source = Provenance::Default {
        what: "linked worktree: the gitdir its .git file names, verified",
    };
    for g in gitdirs {
        for dir in [&g.common, &g.gitdir] {
            view.push(Mount::Bind {
                src: dir.clone(),
                dst: dir.clone(),
                access: g.access,
                kind: FileKind::Dir,
                source: source.clone(),
            });
        }
    }
}

/// The protected paths found in the workspace and in writable linked
/// gitdirs, each bound read-only over its tree, with the directories
/// leading to it pinned. In every mode, readonly included: a write rule
/// (`write = [".git"]`) can open part of a read-only workspace again, and
/// the protected paths under it must stay read-only there.
fn add_protected(
    view: &mut View,
    workspace: &Path,
    found: &[super::Protected],
    gitdirs: &[LinkedGitdir],
) -> Vec<super::Protected> {
    let mut protected = found.to_vec();
    for g in gitdirs.iter().filter(|g| g.access == Access::ReadWrite) {
        protected.extend(super::protect::protect_linked(g));
    }
    for dst in pins(workspace, &protected, gitdirs) {
        view.push(Mount::Pin {
            dst,
            source: Provenance::Default {
                what: "pinned: holds protected paths",
            },
        });
    }
    for p in &protected {
        let kind = if p.path.is_dir() {
            FileKind::Dir
        } else {
            FileKind::File
        };
        view.push(Mount::Bind {
            src: p.path.clone(),
            dst: p.path.clone(),
            access: Access::ReadOnly,
            kind,
            source: p.source.clone(),
        });
    }
    protected
}

/// Every directory between a grant root (the workspace, a linked gitdir)
/// and a protected path: pinned, as otherwise `mv .git x && mkdir -p
/// .git/hooks` swaps the protected path out from under its read-only bind.
/// A worktree's gitdir usually lies inside the common dir: then the common
/// dir is its root, and the gitdir itself is pinned.
fn pins(
    workspace: &Path,
    protected: &[super::Protected],
    gitdirs: &[LinkedGitdir],
) -> BTreeSet<PathBuf> {
    let roots: Vec<&Path> = std::iter::once(workspace)
        .chain(gitdirs.iter().flat_map(|g| {
            let inner = g.gitdir.starts_with(&g.common);
            std::iter::once(g.common.as_path()).chain((!inner).then_some(g.gitdir.as_path()))
        }))
        .collect();
    let mut pins = BTreeSet::new();
    for p in protected {
        let Some(root) = roots
            .iter()
            .filter(|r| p.path.starts_with(r))
            .max_by_key(|r| r.components().count())
        else {
            continue;
        };
        for a in p.path.ancestors().skip(1) {
            if a == *root || !a.starts_with(root) {
                break;
            }
            pins.insert(a.to_path_buf());
        }
    }
    pins
}

/// Hides go over whatever granted tree they fall in; a hide outside every
/// grant needs no mount, since nothing shows it.
fn add_hides(view: &mut View, hides: &Hides) {
    for hide in hides {
        if view.covering_bind(&hide.value.0).is_some() {
            view.push(Mount::Hide {
                dst: hide.value.0.clone(),
                kind: hide.value.1,
                source: hide.source.clone(),
            });
        }
    }
}

/// Unix sockets in granted trees at start (a tmux server's, an
/// ssh-agent's) are host services: hidden, as Landlock before ABI 9
/// cannot refuse connect(2) to a path socket.
fn hide_sockets(view: &mut View, found: &[PathBuf], granted_dirs: &[PathBuf], hides: &Hides) {
    for socket in host_sockets(found, granted_dirs, hides) {
        let Some(bind) = view.covering_bind(&socket).map(|m| m.dst().to_path_buf()) else {
            continue;
        };
        // Under a tmpfs laid inside the grant, the socket is not there.
        let under_tmpfs = view.mounts.iter().any(|m| {
            matches!(m, Mount::Tmpfs { .. })
                && socket.starts_with(m.dst())
                && m.dst().starts_with(&bind)
                && m.dst() != bind
        });
        if !under_tmpfs {
            view.push(Mount::Hide {
                dst: socket,
                kind: FileKind::File,
                source: Provenance::Default {
                    what: "unix sockets in granted trees are hidden",
                },
            });
        }
    }
}

/// /proc without the keyring listings, /dev, the DNS stub's resolv.conf
/// in proxy mode, /etc/hosts, and the CA bundle when a secret is swapped.
fn add_system_files(view: &mut View, network: &NetworkPlan, resolv: &Path, secrets: bool) {
    view.push(Mount::Proc {
        dst: "/proc".into(),
    });
    // The keyring listings name the user's keys and keyrings; keyctl is
    // denied, so only the names would leak, but there is no reason to.
    for listing in ["/proc/keys", "/proc/key-users"] {
        view.push(Mount::Hide {
            dst: listing.into(),
            kind: FileKind::File,
            source: Provenance::Default {
                what: "kernel keyring listings",
            },
        });
    }
    view.push(Mount::Dev { dst: "/dev".into() });
    if network.proxy.is_some() {
        view.push(Mount::File {
            dst: resolv.to_path_buf(),
            contents: RESOLV_CONF.to_string(),
            source: Provenance::Default {
                what: match network.mode {
                    NetMode::Proxy => "proxy mode: names resolve through cage's DNS stub",
                    _ => {
                        "network none: names go to cage's DNS stub, which refuses and records them"
                    }
                },
            },
        });
    }
    let hosts =
        crate::host::canonical("/etc/hosts").unwrap_or_else(|_| PathBuf::from("/etc/hosts"));
    view.push(Mount::File {
        dst: hosts,
        contents: HOSTS.to_string(),
        source: Provenance::Default {
            what: "the cage's hostname, cage, resolves",
        },
    });
    if secrets {
        view.push(super::secrets::bundle_mount());
    }
}

/// The syscall filter, with the switches the policy turned on.
fn seccomp_for(policy: &Policy) -> super::SeccompPlan {
    let on = |p: &Option<Sourced<bool>>| p.as_ref().filter(|p| p.value).map(|p| p.source.clone());
    build_seccomp(
        on(&policy.process.allow_ptrace).as_ref(),
        on(&policy.process.allow_nested_userns).as_ref(),
    )
}

/// The command resolved against the final PATH and view, with a note when
/// it is not the file the user's shell would run.
fn resolve_plan_command(
    argv: &[String],
    facts: &crate::host::CommandFacts,
    host: &Host,
    env: &[EnvVar],
    mounts: &[Mount],
    hides: &Hides,
    notes: &mut Vec<String>,
) -> CommandPlan {
    let path_var = env
        .iter()
        .find(|v| v.name == "PATH")
        .map(|v| v.value.as_str())
        .unwrap_or(DEFAULT_PATH);
    let program = resolve_command(&argv[0], path_var, &host.cwd, mounts);
    // Found inside, but not the file the user's shell would run: say so.
    if let (Some(program), Some(found)) = (&program, &facts.found)
        && crate::host::canonical(program).ok().as_ref() != Some(&found.real)
        && !is_visible(mounts, &found.real)
        && let super::command::NotFound::NotVisible { why, .. } = not_found(facts, host, hides)
    {
        notes.push(format!(
            "your shell runs {}, which is not visible inside the cage ({why}); {} runs instead",
            found.path.display(),
            program.display()
        ));
    }
    let not_found = program.is_none().then(|| not_found(facts, host, hides));
    CommandPlan {
        argv: argv.to_vec(),
        program,
        not_found,
    }
}

/// A protected file with another hard link could be changed through the
/// other name, which no read-only bind covers: refused (the user breaks
/// the link once, e.g. with `cp --remove-destination`, and every later
/// session is safe).
fn refuse_hard_links(found: &[super::Protected]) -> Result<(), BuildError> {
    use std::os::unix::fs::MetadataExt;
    for p in found {
        if let Ok(m) = p.path.symlink_metadata()
            && m.is_file()
            && m.nlink() > 1
        {
            return Err(BuildError::HardLinked {
                path: p.path.clone(),
                links: m.nlink(),
            });
        }
    }
    Ok(())
}

/// `core.hooksPath` from the repository's and the user's git config, as a
/// protected name: git runs the hooks there like those in `.git/hooks`.
/// Relative values are relative to the top of the worktree.
fn hooks_path_names(host: &Host, workspace: &Path) -> Vec<Sourced<String>> {
    let configs = [
        workspace.join(".git/config"),
        host.home.join(".gitconfig"),
        host.home.join(".config/git/config"),
        PathBuf::from("/etc/gitconfig"),
    ];
    let mut out = Vec::new();
    for file in configs {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for value in super::protect::hooks_paths(&text) {
            let value = match value.strip_prefix("~/") {
                Some(rest) => host.home.join(rest).to_string_lossy().into_owned(),
                None => value,
            };
            let rel = match Path::new(&value).strip_prefix(workspace) {
                Ok(r) => r.to_string_lossy().into_owned(),
                Err(_) if Path::new(&value).is_absolute() => continue,
                Err(_) => value.trim_start_matches("./").to_string(),
            };
            if rel.is_empty() || rel.split('/').any(|c| c == "..") {
                continue;
            }
            out.push(Sourced::new(
                rel,
                Provenance::Default {
                    what: "protected paths: core.hooksPath in the git config",
                },
            ));
        }
    }
    out
}

/// What the guard refuses to let the agent create: in every writable tree
/// of the view, protected names at any depth and gitdirs by allowlist;
/// anywhere, what a rule hides or keeps read-only and cage's own
/// directories.
fn build_guard(
    policy: &Policy,
    host: &Host,
    mounts: &[Mount],
    names: &[Sourced<String>],
    known_gitdirs: &[PathBuf],
    linked: &[LinkedGitdir],
    guards: &[PathRule],
) -> super::GuardPlan {
    let roots: Vec<PathBuf> = mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Bind {
                dst,
                access: Access::ReadWrite,
                kind: FileKind::Dir,
                ..
            } => Some(dst.clone()),
            // An overlay workspace's writes wait for review (`cage diff`
            // flags protected paths, `cage apply` skips them).
            _ => None,
        })
        .collect();
    let own = Provenance::Default {
        what: "cage's own files are never written inside",
    };
    let paths: Vec<Sourced<PathBuf>> = policy
        .filesystem
        .hide
        .iter()
        .map(|h| Sourced::new(normalize(&h.value.path), h.source.clone()))
        .chain(
            [&host.config_dir, &host.state_dir]
                .into_iter()
                .map(|d| Sourced::new(normalize(d), own.clone())),
        )
        // The user's git config is read by every git on the host: it can
        // name a fsmonitor, a pager, hooks. Never created from inside.
        .chain([".gitconfig", ".config/git"].into_iter().map(|rel| {
            Sourced::new(
                host.home.join(rel),
                Provenance::Default {
                    what: "the user's git config runs code in every repository",
                },
            )
        }))
        .chain(
            guards
                .iter()
                .map(|g| Sourced::new(g.path.clone(), g.source.clone())),
        )
        .collect();
    let gitdirs = known_gitdirs
        .iter()
        .cloned()
        .chain(
            linked
                .iter()
                .flat_map(|g| [g.common.clone(), g.gitdir.clone()]),
        )
        .collect();
    let missing = paths
        .iter()
        .map(|p| p.value.clone())
        .filter(|p| roots.iter().any(|r| p.starts_with(r)) && p.symlink_metadata().is_err())
        .collect();
    super::GuardPlan {
        roots,
        names: names.to_vec(),
        gitdirs,
        paths,
        missing,
        existing: Vec::new(),
    }
}

/// The workspace: `[workspace] path`, else the git top level, else the
/// working directory. Refuses `/`, the home directory and its ancestors
/// unless a policy names them explicitly.
fn resolve_workspace(
    policy: &Policy,
    host: &Host,
    shared: &[PathBuf],
) -> Result<Sourced<PathBuf>, BuildError> {
    let (path, source, explicit) = match &policy.workspace.path {
        Some(p) => (p.value.clone(), p.source.clone(), true),
        None => match &host.repo_root {
            Some(root) => (
                root.clone(),
                Provenance::Default {
                    what: "workspace: the git top level",
                },
                false,
            ),
            None => (
                host.cwd.clone(),
                Provenance::Default {
                    what: "workspace: the working directory",
                },
                false,
            ),
        },
    };
    check_project_reach(policy, &path, &source)?;
    let path = crate::host::canonical(&path).map_err(|error| BuildError::Resolve {
        path: path.clone(),
        rule: source.clone(),
        error,
    })?;
    if !explicit {
        let home = crate::host::canonical(&host.home).unwrap_or_else(|_| host.home.clone());
        let what = if path == Path::new("/") {
            Some("the root directory")
        } else if path == home {
            Some("your home directory")
        } else if home.starts_with(&path) {
            Some("a parent of your home directory")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(BuildError::WorkspaceTooBroad { path, what });
        }
    }
    check_shared_dir(policy, shared, &path, "the workspace", &source)?;
    Ok(Sourced::new(path, source))
}

/// System trees the built-in profiles grant read-only, where no service
/// keeps a socket; walking them at every start would cost more than the
/// rest of the start together.
const SOCKETLESS_SYSTEM_TREES: &[&str] = &[
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc",
    "/opt",
    "/nix/store",
];

/// Granted directories (read and write rules) outside the workspace, which
/// the protected-path scan already walked, and outside the system trees.
/// A socket named by a grant itself is the user's explicit choice and stays.
fn granted_dirs_to_walk(
    policy: &Policy,
    workspace: &Path,
    hides: &[Sourced<(PathBuf, FileKind)>],
) -> Result<Vec<PathBuf>, BuildError> {
    let mut dirs = Vec::new();
    for rule in policy
        .filesystem
        .read
        .iter()
        .chain(&policy.filesystem.write)
    {
        let Some((real, FileKind::Dir)) = existing(&rule.value.path, &rule.source)? else {
            continue;
        };
        let system = SOCKETLESS_SYSTEM_TREES.iter().any(|t| real.starts_with(t));
        let hidden = hides.iter().any(|h| real.starts_with(&h.value.0));
        if !system && !hidden && !real.starts_with(workspace) && !dirs.contains(&real) {
            dirs.push(real);
        }
    }
    Ok(dirs)
}

/// The sockets to hide: those the workspace scan found, and those under
/// `dirs` (walked here, links not followed), minus any inside a hidden
/// tree (nothing shows them, and their mount point would not exist).
fn host_sockets(
    workspace_sockets: &[PathBuf],
    dirs: &[PathBuf],
    hides: &[Sourced<(PathBuf, FileKind)>],
) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut out: Vec<PathBuf> = workspace_sockets.to_vec();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_socket() => out.push(entry.path()),
                _ => {}
            }
        }
    }
    out.retain(|s| !hides.iter().any(|h| s.starts_with(&h.value.0)));
    out.sort();
    out.dedup();
    out
}

/// Directories every program of the user (and others) shares, and keeps
/// its unix sockets in: tmux, ssh-agent, gpg-agent, D-Bus, X11, Wayland.
fn shared_dirs(host: &Host) -> Vec<PathBuf> {
    let runtime = host
        .env
        .iter()
        .find(|(k, _)| k == "XDG_RUNTIME_DIR")
        .map(|(_, v)| PathBuf::from(v))
        .filter(|p| p.is_absolute());
    ["/tmp", "/var/tmp", "/dev/shm", "/run"]
        .into_iter()
        .map(PathBuf::from)
        .chain(runtime)
        .filter_map(|p| crate::host::canonical(&p).ok())
        .collect()
}

/// Refuses `real` (canonical) as the workspace or a grant when it is one
/// of the `shared` directories or a parent of one, unless
/// `--allow-shared-dir` names it: a socket there (`/tmp/tmux-UID/default`)
/// is a way out of the cage that Landlock before ABI 9 cannot close.
fn check_shared_dir(
    policy: &Policy,
    shared: &[PathBuf],
    real: &Path,
    role: &'static str,
    rule: &Provenance,
) -> Result<(), BuildError> {
    let accepted = policy
        .security
        .allow_shared_dir
        .iter()
        .any(|a| crate::host::canonical(&a.value).is_ok_and(|a| a == real));
    if accepted {
        return Ok(());
    }
    let what = shared.iter().find_map(|shared| {
        if shared == real {
            Some(format!("the shared directory {}", shared.display()))
        } else if shared.starts_with(real) {
            Some(format!(
                "a parent of the shared directory {}",
                shared.display()
            ))
        } else {
            None
        }
    });
    match what {
        Some(what) => Err(BuildError::SharedDir {
            path: real.to_path_buf(),
            role,
            what,
            rule: rule.clone(),
        }),
        None => Ok(()),
    }
}

/// Only the plan sees where links lead. A rule of the project file must
/// stay inside the project root once links are resolved, or a committed
/// `docs -> ~/.aws` link would widen the sandbox without `cage trust`.
/// A trusted file's rule may lead where it led when the user trusted it
/// (its pin records that), and, for a path inside the root, anywhere
/// inside the root; anything else is a link made since (by an earlier
/// session, say) and is refused with the link named.
fn check_project_reach(
    policy: &Policy,
    path: &Path,
    source: &Provenance,
) -> Result<(), BuildError> {
    let Some(project) = policy.project.as_ref() else {
        return Ok(());
    };
    let Provenance::File { path: file, .. } = source else {
        return Ok(());
    };
    if *file != project.file {
        return Ok(());
    }
    let Ok(real) = crate::host::canonical(path) else {
        return Ok(()); // missing: nothing is granted
    };
    let root = crate::host::canonical(&project.root).unwrap_or_else(|_| project.root.clone());
    if path.starts_with(&project.root) && real.starts_with(&root) {
        return Ok(());
    }
    if !project.trusted {
        if project.preview {
            // Shown, and refused by the plan comparison (`widen`): the
            // real path is what the view binds.
            return Ok(());
        }
        return Err(BuildError::UntrustedEscape {
            path: path.to_path_buf(),
            real,
            root,
            rule: source.clone(),
        });
    }
    let pinned = project.resolved.get(path);
    if pinned == Some(&Some(real.clone())) {
        return Ok(());
    }
    // Outside the root and never a link: the path the user trusted.
    if !path.starts_with(&project.root) && real == path {
        return Ok(());
    }
    let (link, target) = first_link(path).unwrap_or_else(|| (path.to_path_buf(), real.clone()));
    Err(BuildError::TrustedRelinked(Box::new(Relinked {
        path: path.to_path_buf(),
        real,
        link,
        target,
        was: pinned.cloned().flatten(),
        rule: source.clone(),
    })))
}

/// The first component of `path` that is a symbolic link, and what it
/// points to.
fn first_link(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut at = PathBuf::new();
    for c in path.components() {
        at.push(c);
        if let Ok(target) = std::fs::read_link(&at) {
            return Some((at, target));
        }
    }
    None
}

/// Hidden paths that exist, canonical, with their kind. Missing ones need
/// nothing: they cannot be shown.
fn resolve_hides(
    policy: &Policy,
    host: &Host,
    notes: &mut Vec<String>,
) -> Result<Vec<Sourced<(PathBuf, FileKind)>>, BuildError> {
    let mut out = Vec::new();
    let defaults = [&host.config_dir, &host.state_dir].map(|dir| {
        Sourced::new(
            policy::PathRule {
                path: dir.clone(),
                optional: true,
            },
            Provenance::Default {
                what: "cage's own files are never visible inside",
            },
        )
    });
    let secret_files = super::secrets::hides(policy);
    for rule in policy
        .filesystem
        .hide
        .iter()
        .chain(defaults.iter())
        .chain(secret_files.iter())
    {
        let Some((path, kind)) = existing(&rule.value.path, &rule.source)? else {
            continue;
        };
        if rule.value.path != path {
            notes.push(format!(
                "{} is a link to {}; hiding the target ({})",
                rule.value.path.display(),
                path.display(),
                rule.source
            ));
        }
        if !out
            .iter()
            .any(|h: &Sourced<(PathBuf, FileKind)>| h.value.0 == path)
        {
            out.push(Sourced::new((path, kind), rule.source.clone()));
        }
    }
    Ok(out)
}

/// A grant's path as (literal, canonical, kind), or `None` when nothing is
/// to be granted: an optional path that is missing, or one inside a hidden
/// tree (hide beats read, write and copy; the user is told). A required
/// path that is missing is an error.
fn resolve_grant(
    rule: &Sourced<policy::PathRule>,
    hides: &[Sourced<(PathBuf, FileKind)>],
    notes: &mut Vec<String>,
) -> Result<Option<(PathBuf, PathBuf, FileKind)>, BuildError> {
    let literal = normalize(&rule.value.path);
    let Some((path, kind)) = existing(&literal, &rule.source)? else {
        if rule.value.optional {
            return Ok(None);
        }
        return Err(BuildError::MissingPath {
            path: literal,
            rule: rule.source.clone(),
        });
    };
    if let Some(hide) = hides.iter().find(|h| path.starts_with(&h.value.0)) {
        notes.push(format!(
            "{} ({}) is not granted: it is hidden by {}",
            literal.display(),
            rule.source,
            hide.source
        ));
        return Ok(None);
    }
    Ok(Some((literal, path, kind)))
}

fn add_bind(
    view: &mut View,
    rule: &Sourced<policy::PathRule>,
    access: Access,
    hides: &[Sourced<(PathBuf, FileKind)>],
    notes: &mut Vec<String>,
) -> Result<(), BuildError> {
    let Some((literal, path, kind)) = resolve_grant(rule, hides, notes)? else {
        return Ok(());
    };
    // A link whose own parent is real (merged /usr: /bin -> usr/bin) is
    // recreated as a link, and its target bound where it really lives.
    if literal != path
        && let Some(parent) = literal.parent()
        && crate::host::canonical(parent).ok().as_deref() == Some(parent)
        && let Ok(target) = std::fs::read_link(&literal)
    {
        view.push(Mount::Symlink {
            target,
            dst: literal.clone(),
            source: rule.source.clone(),
        });
    }
    view.push(Mount::Bind {
        src: path.clone(),
        dst: path,
        access,
        kind,
        source: rule.source.clone(),
    });
    Ok(())
}

/// The agents' state directories (`[[filesystem.state]]`), entries for one
/// directory merged. Each becomes an overlay of the host directory whose
/// upper layer lies in the session's directory: the agent sees everything
/// and may change anything, but only the `keep` paths reach the host (the
/// directories bound read-write over the overlay, the files copied back at
/// the end). A new `statusline-command.sh`, `local/claude` or `rules/` stays
/// in the session. A missing directory is created on first use.
fn add_state(
    view: &mut View,
    policy: &Policy,
    host: &Host,
    session_dir: &Path,
    hides: &Hides,
    create: &mut Vec<CreateDir>,
    notes: &mut Vec<String>,
) -> Result<Vec<StatePlan>, BuildError> {
    let mut out = Vec::new();
    for entry in merge_state(policy) {
        let (dir, source) = (&entry.value.dir, &entry.source);
        check_project_reach(policy, dir, source)?;
        let Some(lower) = state_lower(dir, source, &entry.value.about, host, hides, create, notes)?
        else {
            continue;
        };
        let layer = session_dir.join("state").join(out.len().to_string());
        let mut plan = StatePlan {
            dir: dir.clone(),
            lower: lower.clone(),
            upper: layer.join("upper"),
            work: layer.join("work"),
            live: Vec::new(),
            files: Vec::new(),
            settings: entry.value.settings.clone(),
            masked: Vec::new(),
            source: source.clone(),
        };
        for keep in &entry.value.keep {
            if keep.dir {
                add_kept_dir(view, &mut plan, &keep.path, hides, create, notes)?;
            } else {
                plan.files.push(keep.path.clone());
            }
        }
        view.push(Mount::Overlay {
            dst: dir.clone(),
            lower,
            upper: plan.upper.clone(),
            work: plan.work.clone(),
            source: source.clone(),
        });
        out.push(plan);
    }
    Ok(out)
}

/// `[[filesystem.state]]` entries, those for one directory merged: their
/// `keep` lists joined, the first `about` kept.
fn merge_state(policy: &Policy) -> Vec<Sourced<policy::StatePolicy>> {
    let mut merged: Vec<Sourced<policy::StatePolicy>> = Vec::new();
    for entry in &policy.filesystem.state {
        let dir = normalize(&entry.value.dir);
        match merged.iter_mut().find(|m| m.value.dir == dir) {
            Some(m) => {
                for k in &entry.value.keep {
                    if !m.value.keep.contains(k) {
                        m.value.keep.push(k.clone());
                    }
                }
                if m.value.about.is_none() {
                    m.value.about.clone_from(&entry.value.about);
                }
            }
            None => {
                let mut e = entry.clone();
                e.value.dir = dir;
                merged.push(e);
            }
        }
    }
    merged
}

/// The host directory a state directory overlays: its real path, or the
/// path itself, to be created, when missing. `None` (with a note) when it
/// is not a directory, is hidden, or holds cage's own files.
fn state_lower(
    dir: &Path,
    source: &Provenance,
    about: &Option<String>,
    host: &Host,
    hides: &Hides,
    create: &mut Vec<CreateDir>,
    notes: &mut Vec<String>,
) -> Result<Option<PathBuf>, BuildError> {
    let (lower, missing) = match existing(dir, source)? {
        Some((real, FileKind::Dir)) => (real, false),
        Some((real, FileKind::File)) => {
            notes.push(format!(
                "{} ({source}) is not a directory ({}), so it is not granted",
                dir.display(),
                real.display()
            ));
            return Ok(None);
        }
        None => (dir.to_path_buf(), true),
    };
    let hidden = |p: &Path| hides.iter().find(|h| p.starts_with(&h.value.0));
    if let Some(h) = hidden(&lower).or_else(|| hidden(dir)) {
        notes.push(format!(
            "{} ({source}) is not granted: it is hidden by {}",
            dir.display(),
            h.source
        ));
        return Ok(None);
    }
    if [&host.state_dir, &host.config_dir]
        .iter()
        .any(|c| c.starts_with(&lower) || c.starts_with(dir))
    {
        notes.push(format!(
            "{} ({source}) holds cage's own files, so it is not granted as a state directory",
            dir.display()
        ));
        return Ok(None);
    }
    if missing {
        create.push(CreateDir {
            path: dir.to_path_buf(),
            about: about.clone(),
            source: source.clone(),
        });
    }
    Ok(Some(lower))
}

/// A `keep` directory of a state directory: bound read-write over the
/// overlay, so what the agent writes there reaches the host; kept private
/// when it is not a plain directory.
fn add_kept_dir(
    view: &mut View,
    plan: &mut StatePlan,
    keep: &Path,
    hides: &Hides,
    create: &mut Vec<CreateDir>,
    notes: &mut Vec<String>,
) -> Result<(), BuildError> {
    let (dir, source) = (&plan.dir, &plan.source);
    let host_path = plan.lower.join(keep);
    let hidden = |p: &Path| hides.iter().any(|h| p.starts_with(&h.value.0));
    match existing(&host_path, source)? {
        Some((real, FileKind::Dir)) if real == host_path && !hidden(&real) => {}
        None => create.push(CreateDir {
            path: host_path.clone(),
            about: None,
            source: source.clone(),
        }),
        Some((real, _)) => {
            notes.push(format!(
                "{} ({source}) is kept private: it is not a plain directory (it resolves to {}), \
                 so cage does not write through to it",
                dir.join(keep).display(),
                real.display()
            ));
            return Ok(());
        }
    }
    view.push(Mount::Bind {
        src: host_path,
        dst: dir.join(keep),
        access: Access::ReadWrite,
        kind: FileKind::Dir,
        source: source.clone(),
    });
    plan.live.push(dir.join(keep));
    Ok(())
}

/// Files that stay read-only wherever a writable grant holds them (`--rw
/// ~`): git's user config names commands git runs in every repository
/// outside the cage (core.fsmonitor, aliases, hooksPath).
const READONLY_IN_GRANTS: &[&str] = &["~/.gitconfig", "~/.config/git"];

/// What a writable grant (`--rw ~`) must not let the agent change or
/// create: git's user config (read-only when it exists; a guard when it
/// does not), and cage's own config and state directories, which are
/// hidden; a missing one is created first (cage owns them), so there is
/// something to hide. Every directory between the grant and them is
/// pinned, so `mv ~/.config x && mkdir -p ~/.config/cage` cannot get round
/// the mount.
fn keep_host_files(
    view: &mut View,
    host: &Host,
    create: &mut Vec<CreateDir>,
    guards: &mut Vec<PathRule>,
) {
    let writable_cover = |view: &View, p: &Path| -> Option<PathBuf> {
        match view.covering_bind(p) {
            Some(Mount::Bind {
                dst,
                access: Access::ReadWrite,
                ..
            }) => Some(dst.clone()),
            _ => None,
        }
    };
    let pin = |view: &mut View, root: &Path, p: &Path| {
        for a in p.ancestors().skip(1) {
            if a == root || !a.starts_with(root) {
                break;
            }
            view.push(Mount::Pin {
                dst: a.to_path_buf(),
                source: Provenance::Default {
                    what: "pinned: holds a path a writable grant must not reach",
                },
            });
        }
    };
    for dir in [&host.config_dir, &host.state_dir] {
        let dir = normalize(dir);
        let Some(root) = writable_cover(view, &dir) else {
            continue;
        };
        if dir.symlink_metadata().is_err() {
            create.push(CreateDir {
                path: dir.clone(),
                about: None,
                source: Provenance::Default {
                    what: "cage's own files: created so they can be hidden",
                },
            });
            view.push(Mount::Hide {
                dst: dir.clone(),
                kind: FileKind::Dir,
                source: Provenance::Default {
                    what: "cage's own files are never visible inside",
                },
            });
        }
        pin(view, &root, &dir);
    }
    for name in READONLY_IN_GRANTS {
        let literal = host.expand_tilde(name);
        let source = Provenance::Default {
            what: "git's user config: read-only even in a writable grant",
        };
        match existing(&literal, &source) {
            Ok(Some((real, kind))) => {
                let Some(root) = writable_cover(view, &real) else {
                    continue;
                };
                pin(view, &root, &real);
                view.push(Mount::Bind {
                    src: real.clone(),
                    dst: real,
                    access: Access::ReadOnly,
                    kind,
                    source,
                });
            }
            Ok(None) => {
                if writable_cover(view, &literal).is_some() {
                    guards.push(PathRule {
                        path: literal,
                        source,
                    });
                }
            }
            Err(_) => {}
        }
    }
}

/// The command's installation and its interpreter's, read-only, where the
/// view does not already show them; the links on the way recreated as links.
/// Hide beats these grants as any other; none is ever writable.
fn add_command(
    view: &mut View,
    facts: &crate::host::CommandFacts,
    host: &Host,
    workspace: &Path,
    hides: &[Sourced<(PathBuf, FileKind)>],
    notes: &mut Vec<String>,
) -> Result<(), BuildError> {
    let (grants, links) =
        super::command::build_command_grants(facts, &host.home, workspace, &|p: &Path| p.exists());
    let hidden = |p: &Path| hides.iter().any(|h| p.starts_with(&h.value.0));
    for g in grants {
        if view.covering_bind(&g.path).is_some() {
            continue;
        }
        let rule = Sourced::new(
            policy::PathRule {
                path: g.path,
                optional: true,
            },
            Provenance::Default { what: g.reason },
        );
        add_bind(view, &rule, Access::ReadOnly, hides, notes)?;
    }
    for l in links {
        if view.covering_bind(&l.path).is_some() || hidden(&l.path) {
            continue;
        }
        view.push(Mount::Symlink {
            target: l.target,
            dst: l.path,
            source: Provenance::Default { what: l.reason },
        });
    }
    Ok(())
}

/// The files CA variables name, read-only (hide still beats them).
fn add_ca_files(
    view: &mut View,
    host: &Host,
    hides: &[Sourced<(PathBuf, FileKind)>],
    notes: &mut Vec<String>,
) -> Result<(), BuildError> {
    for name in CA_VARS {
        let Some(value) = host.var(name).filter(|v| v.starts_with('/')) else {
            continue;
        };
        let rule = Sourced::new(
            policy::PathRule {
                path: PathBuf::from(value),
                optional: true,
            },
            Provenance::Default {
                what: "CA trust: the certificates a CA variable names",
            },
        );
        let covered = existing(&rule.value.path, &rule.source)?
            .is_some_and(|(real, _)| view.covering_bind(&real).is_some());
        if !covered {
            add_bind(view, &rule, Access::ReadOnly, hides, notes)?;
        }
    }
    Ok(())
}

/// A variable with a NUL byte cannot reach the agent (exec takes C
/// strings): refused with the rule that set it, never cut short.
fn refuse_nul(env: &[EnvVar]) -> Result<(), BuildError> {
    match env
        .iter()
        .find(|v| v.name.contains('\0') || v.value.contains('\0'))
    {
        Some(v) => Err(BuildError::EnvNul {
            name: v.name.replace('\0', "\\0"),
            rule: v.source.clone(),
        }),
        None => Ok(()),
    }
}

/// What the environment needs once the view is known: PATH is the user's
/// entries the cage shows, in the user's order, then the policy's; an
/// activated virtualenv and the CA variables pass when what they name is
/// visible.
fn finish_env(env: &mut Vec<EnvVar>, host: &Host, mounts: &[Mount]) {
    let set = |env: &mut Vec<EnvVar>, name: &str, value: String, what: &'static str| {
        env.retain(|v| v.name != name);
        env.push(EnvVar {
            name: name.to_string(),
            value,
            source: Provenance::Default { what },
        });
    };
    // A directory the view does not show whole still holds what was
    // granted in it (a command's link, its file).
    let shown = |dir: &Path| {
        is_visible(mounts, dir)
            || mounts.iter().any(|m| {
                matches!(m, Mount::Symlink { .. } | Mount::Bind { .. })
                    && m.dst().parent() == Some(dir)
            })
    };
    // A value a rule set (`--env SSL_CERT_FILE=...`, `[env] set`) is the
    // user's choice: the host's own does not replace it.
    let chosen = |env: &Vec<EnvVar>, name: &str| {
        env.iter()
            .any(|v| v.name == name && !matches!(v.source, Provenance::Default { .. }))
    };
    for name in CA_VARS {
        if chosen(env, name) {
            continue;
        }
        if let Some(value) = host.var(name).filter(|v| is_visible(mounts, Path::new(v))) {
            set(
                env,
                name,
                value.to_string(),
                "CA trust: passed with the file it names",
            );
        }
    }
    if let Some(venv) = host
        .var("VIRTUAL_ENV")
        .filter(|v| v.starts_with('/') && is_visible(mounts, Path::new(v)))
    {
        set(
            env,
            "VIRTUAL_ENV",
            venv.to_string(),
            "your activated virtualenv, visible inside",
        );
    }
    let policy_path = env
        .iter()
        .find(|v| v.name == "PATH")
        .map(|v| v.value.clone())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let mut entries: Vec<&str> = Vec::new();
    for dir in host.var("PATH").unwrap_or_default().split(':') {
        if dir.starts_with('/') && !entries.contains(&dir) && shown(Path::new(dir)) {
            entries.push(dir);
        }
    }
    if entries.is_empty() {
        env.sort_by(|a, b| a.name.cmp(&b.name));
        return;
    }
    for dir in policy_path.split(':') {
        if !dir.is_empty() && !entries.contains(&dir) {
            entries.push(dir);
        }
    }
    let value = entries.join(":");
    set(
        env,
        "PATH",
        value,
        "PATH: your PATH's entries the cage shows, then the policy's",
    );
    env.sort_by(|a, b| a.name.cmp(&b.name));
}

/// Why the command does not run inside: missing on the host too, or hidden
/// or otherwise outside the view.
fn not_found(
    facts: &crate::host::CommandFacts,
    host: &Host,
    hides: &[Sourced<(PathBuf, FileKind)>],
) -> super::command::NotFound {
    use super::command::NotFound;
    let Some(found) = &facts.found else {
        return NotFound::OnHost {
            name: facts.name.clone(),
            searched: facts.searched.clone(),
        };
    };
    let root = super::command::installation_root(&found.real, &host.home, &|p: &Path| p.exists());
    let why = match hides
        .iter()
        .find(|h| found.real.starts_with(&h.value.0) || root.starts_with(&h.value.0))
    {
        Some(h) => format!(
            "{} is hidden by {} (hide beats every grant; drop that rule to run it)",
            h.value.0.display(),
            h.source
        ),
        None => format!("--ro {} would show it", root.display()),
    };
    NotFound::NotVisible {
        name: facts.name.clone(),
        host_path: found.path.clone(),
        why,
    }
}

/// Optional read rules for missing paths under an existing write grant:
/// the agent could create what the rule would have kept read-only.
fn build_guards(policy: &Policy) -> Vec<PathRule> {
    let writable: Vec<PathBuf> = policy
        .filesystem
        .write
        .iter()
        .filter_map(|w| crate::host::canonical(&w.value.path).ok())
        .collect();
    policy
        .filesystem
        .read
        .iter()
        .filter(|r| r.value.optional && r.value.path.symlink_metadata().is_err())
        .filter_map(|r| {
            // Resolve through the nearest existing ancestor, so the guard
            // names the path the agent would write.
            let path = normalize(&r.value.path);
            let parent = path
                .ancestors()
                .skip(1)
                .find_map(|a| crate::host::canonical(a).ok())?;
            let rest = path
                .strip_prefix(path.ancestors().skip(1).find(|a| a.exists())?)
                .ok()?;
            let real = parent.join(rest);
            writable
                .iter()
                .any(|w| real.starts_with(w))
                .then(|| PathRule {
                    path: real,
                    source: r.source.clone(),
                })
        })
        .collect()
}

/// A private copy of a host file at the same path. Hide beats copy; a
/// missing optional file is skipped; directories are not copied.
fn add_copy(
    view: &mut View,
    rule: &Sourced<policy::PathRule>,
    hides: &[Sourced<(PathBuf, FileKind)>],
    notes: &mut Vec<String>,
) -> Result<(), BuildError> {
    let Some((literal, path, kind)) = resolve_grant(rule, hides, notes)? else {
        return Ok(());
    };
    if kind == FileKind::Dir {
        notes.push(format!(
            "{} ({}) is a directory; [filesystem] copy takes files only, so it is skipped",
            literal.display(),
            rule.source
        ));
        return Ok(());
    }
    view.push(Mount::Copy {
        src: path.clone(),
        dst: path,
        source: rule.source.clone(),
    });
    Ok(())
}

/// Canonical path and kind when `path` exists; `None` when it does not.
fn existing(path: &Path, source: &Provenance) -> Result<Option<(PathBuf, FileKind)>, BuildError> {
    // Most rules (the hide list above all) name paths that do not exist;
    // one lstat settles those, where canonicalize costs a call per
    // component. A dangling link falls through to canonicalize's NotFound.
    if let Err(e) = path.symlink_metadata()
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Ok(None);
    }
    match crate::host::canonical(path) {
        Ok(c) => {
            let kind = if c.is_dir() {
                FileKind::Dir
            } else {
                FileKind::File
            };
            Ok(Some((c, kind)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(BuildError::Resolve {
            path: path.to_path_buf(),
            rule: source.clone(),
            error,
        }),
    }
}

/// Lexical normalisation: drops `.` and resolves `..` without touching the
/// filesystem.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Mounts being collected; `finish` orders them parents first.
#[derive(Default)]
struct View {
    mounts: Vec<Mount>,
}

impl View {
    /// Adds a mount; a later mount on the same destination replaces an
    /// earlier one (later rules win), except that hides are never replaced.
    fn push(&mut self, mount: Mount) {
        if let Some(i) = self.mounts.iter().position(|m| m.dst() == mount.dst()) {
            if matches!(self.mounts[i], Mount::Hide { .. }) {
                return;
            }
            self.mounts.remove(i);
        }
        self.mounts.push(mount);
    }

    /// The bind whose destination is the deepest prefix of `path`.
    fn covering_bind(&self, path: &Path) -> Option<&Mount> {
        self.mounts
            .iter()
            .filter(|m| {
                matches!(m, Mount::Bind { .. } | Mount::Overlay { .. }) && path.starts_with(m.dst())
            })
            .max_by_key(|m| m.dst().components().count())
    }

    /// Orders mounts so every parent comes before its children: by depth,
    /// then by kind (a tmpfs before what lands on it; hides and protected
    /// binds last), then by path for a stable plan.
    fn finish(mut self) -> Vec<Mount> {
        let rank = |m: &Mount| match m {
            Mount::Tmpfs { .. } | Mount::Dir { .. } => 0,
            Mount::Proc { .. } | Mount::Dev { .. } => 1,
            Mount::Bind {
                access: Access::ReadWrite,
                ..
            }
            | Mount::Symlink { .. }
            | Mount::Overlay { .. }
            | Mount::Pin { .. } => 1,
            Mount::Bind {
                access: Access::ReadOnly,
                ..
            } => 1,
            Mount::Hide { .. } | Mount::File { .. } | Mount::Copy { .. } => 2,
        };
        self.mounts.sort_by(|a, b| {
            let depth = |m: &Mount| m.dst().components().count();
            (depth(a), rank(a), a.dst()).cmp(&(depth(b), rank(b), b.dst()))
        });
        // A mount on a path that lies inside a host bind needs that path to
        // exist on the host: cage never creates mount points in the user's
        // directories. Such paths exist by construction (they come from
        // canonicalised host paths), except tmpfs rules; drop those.
        let mut out: Vec<Mount> = Vec::new();
        for m in self.mounts {
            let cover = deepest_cover(&out, m.dst());
            if let Mount::Tmpfs { dst, .. } | Mount::File { dst, .. } = &m
                && let Some(Mount::Bind { .. } | Mount::Overlay { .. }) = cover
                && dst.symlink_metadata().is_err()
            {
                continue;
            }
            // A link inside a host bind is already there: the bind shows it.
            if let Mount::Symlink { .. } = &m
                && let Some(Mount::Bind { .. } | Mount::Overlay { .. }) = cover
            {
                continue;
            }
            // A bind inside an identical bind of the same access adds
            // nothing (the merged-/usr targets under /usr, for example).
            if let Mount::Bind {
                src, dst, access, ..
            } = &m
                && src == dst
                && let Some(Mount::Bind {
                    src: psrc,
                    dst: pdst,
                    access: paccess,
                    ..
                }) = cover
                && psrc == pdst
                && paccess == access
            {
                continue;
            }
            out.push(m);
        }
        out
    }
}

/// Whether `path` exists inside the view and is not hidden.
pub(crate) fn is_visible(mounts: &[Mount], path: &Path) -> bool {
    let real = crate::host::canonical(path).unwrap_or_else(|_| path.to_path_buf());
    let path = real.as_path();
    match deepest_cover(mounts, path) {
        Some(Mount::Bind { .. }) | Some(Mount::Pin { .. }) | Some(Mount::Overlay { .. }) => {
            path.exists()
        }
        Some(Mount::Tmpfs { dst, .. })
        | Some(Mount::Dir { dst, .. })
        | Some(Mount::File { dst, .. })
        | Some(Mount::Copy { dst, .. }) => dst == path,
        Some(Mount::Proc { .. }) | Some(Mount::Dev { .. }) => true,
        Some(Mount::Symlink { .. }) | Some(Mount::Hide { .. }) | None => false,
    }
}

fn build_landlock(policy: &Policy, mounts: &[Mount]) -> LandlockPlan {
    let mut read = Vec::new();
    let mut write = Vec::new();
    let rule = |path: &Path, source: &Provenance| PathRule {
        path: path.to_path_buf(),
        source: source.clone(),
    };
    for m in mounts {
        match m {
            Mount::Bind {
                dst,
                access: Access::ReadOnly,
                source,
                ..
            } => read.push(rule(dst, source)),
            Mount::Bind {
                dst,
                access: Access::ReadWrite,
                source,
                ..
            } => write.push(rule(dst, source)),
            Mount::Tmpfs { dst, source, .. } | Mount::Overlay { dst, source, .. } => {
                write.push(rule(dst, source))
            }
            // Inside the writable workspace, whose rule covers it.
            Mount::Pin { .. } => {}
            Mount::File { dst, source, .. } => read.push(rule(dst, source)),
            Mount::Copy { dst, source, .. } => write.push(rule(dst, source)),
            Mount::Proc { dst } => {
                read.push(rule(dst, &Provenance::Default { what: "procfs" }));
            }
            Mount::Dev { dst } => {
                read.push(rule(dst, &Provenance::Default { what: "/dev" }));
                write.push(rule(
                    &dst.join("shm"),
                    &Provenance::Default { what: "/dev/shm" },
                ));
            }
            // A hide is enforced by the mount alone: Landlock grants cannot
            // subtract a subtree from a granted one.
            Mount::Hide { .. } | Mount::Symlink { .. } | Mount::Dir { .. } => {}
        }
    }
    let mut devices: Vec<PathRule> = DEVICES
        .iter()
        .map(|d| {
            rule(
                Path::new(d),
                &Provenance::Default {
                    what: "device nodes",
                },
            )
        })
        .collect();
    // A nested user namespace is usable only once its creator writes
    // /proc/PID/{uid_map,gid_map,setgroups}: with the switch, files in the
    // cage's own procfs (its pid namespace: the agent's processes only)
    // may be opened for writing. Still no directory rights, and DAC keeps
    // the root-owned files (/proc/sys, sysrq-trigger) out of reach.
    if let Some(p) = policy
        .process
        .allow_nested_userns
        .as_ref()
        .filter(|p| p.value)
    {
        for m in mounts {
            if let Mount::Proc { dst } = m {
                devices.push(rule(dst, &p.source));
            }
        }
    }
    let requirement = match policy
        .security
        .allow_degraded
        .iter()
        .find(|l| l.value == Layer::Landlock)
    {
        Some(l) => Requirement::BestEffort {
            source: l.source.clone(),
        },
        None => Requirement::Required,
    };
    // Listing the root shows only the names of what the view holds; tools
    // that walk up from the working directory or list / expect it.
    let list = vec![rule(
        Path::new("/"),
        &Provenance::Default {
            what: "list the root",
        },
    )];
    LandlockPlan {
        requirement,
        list,
        read,
        write,
        devices,
        scope_abstract_sockets: true,
        scope_signals: true,
        deny_tcp: false,
    }
}

/// The agent's whole environment: identity defaults, then names passed from
/// the host, then the proxy's variables, then fixed values; later entries
/// replace earlier ones. The proxy's come after passed names because a
/// host's proxy settings mean nothing inside the cage, and before fixed
/// values so a policy can still set NO_PROXY.
fn build_env(policy: &Policy, host: &Host, mounts: &[Mount], network: &NetworkPlan) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = Vec::new();
    let mut set = |name: &str, value: &str, source: Provenance| {
        env.retain(|v| v.name != name);
        env.push(EnvVar {
            name: name.to_string(),
            value: value.to_string(),
            source,
        });
    };
    let ident = || Provenance::Default { what: "identity" };
    set("HOME", &host.home.to_string_lossy(), ident());
    set("USER", &host.user, ident());
    set("LOGNAME", &host.user, ident());
    let shell = host
        .var("SHELL")
        .filter(|s| is_visible(mounts, Path::new(s)))
        .unwrap_or("/bin/sh");
    set("SHELL", shell, ident());
    set("PATH", DEFAULT_PATH, Provenance::Default { what: "PATH" });
    set(
        "CAGE",
        "1",
        Provenance::Default {
            what: "tells programs they run in a cage",
        },
    );
    for pass in &policy.env.pass {
        let pattern = pass.value.as_str();
        for (name, value) in &host.env {
            let hit = match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            };
            if hit {
                set(name, value, pass.source.clone());
            }
        }
    }
    if let Some(proxy) = &network.proxy {
        let url = format!("http://{}", proxy.listen);
        let source = || Provenance::Default {
            what: match network.mode {
                NetMode::Proxy => "proxy mode: the cage reaches the network through cage's proxy",
                _ => "network none: connections go to cage's proxy, which refuses and records them",
            },
        };
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            set(name, &url, source());
            set(&name.to_ascii_lowercase(), &url, source());
        }
        // The cage's own loopback stays local (the proxy would refuse it).
        for name in ["NO_PROXY", "no_proxy"] {
            set(name, "localhost,127.0.0.1,::1", source());
        }
    }
    for s in &policy.env.set {
        set(&s.value.0, &s.value.1, s.source.clone());
    }
    env.sort_by(|a, b| a.name.cmp(&b.name));
    env
}

/// At most this many forwarded ports (each is a listener and a thread).
pub const MAX_FORWARDS: usize = 16;

/// Allow rules that name a host loopback IP and one port, such as
/// `--allow-host 127.0.0.1:8080`: forwarded into the cage's loopback. Not
/// the proxy's or DNS stub's own ports, which the cage needs.
fn build_forwards(policy: &Policy) -> Vec<super::Forward> {
    use crate::policy::{HostSpec, PortSpec};
    let mut out: Vec<super::Forward> = Vec::new();
    for rule in &policy.network.allow {
        let (HostSpec::Ip(ip), PortSpec::Port(port)) = (&rule.value.host, rule.value.port) else {
            continue;
        };
        if !ip.is_loopback() || port == PROXY_PORT || port == 53 {
            continue;
        }
        let addr = std::net::SocketAddr::new(*ip, port);
        if out.len() < MAX_FORWARDS && !out.iter().any(|f| f.addr == addr) {
            out.push(super::Forward {
                addr,
                source: rule.source.clone(),
            });
        }
    }
    out
}

fn build_network(policy: &Policy) -> NetworkPlan {
    let (mode, source) = match &policy.network.mode {
        Some(m) => (m.value, m.source.clone()),
        None => (NetMode::None, Provenance::Default { what: "network" }),
    };
    let rules = |list: &[Sourced<policy::HostPattern>]| {
        list.iter()
            .map(|r| HostRule {
                pattern: r.value.clone(),
                source: r.source.clone(),
            })
            .collect()
    };
    // None mode has the proxy too, with nothing allowed (`Rules::from_plan`)
    // and nothing forwarded: an attempt to reach a host is refused by cage
    // with a record and its `cage allow` line, instead of failing unseen in
    // an empty net namespace. Nothing leaves unless the host's user opens
    // a host for the running session with `cage allow`.
    let proxy = (mode != NetMode::Host).then(|| ProxyPlan {
        listen: SocketAddrV4::new(Ipv4Addr::LOCALHOST, PROXY_PORT),
        dns: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 53),
        forwards: match mode {
            NetMode::Proxy => build_forwards(policy),
            _ => Vec::new(),
        },
    });
    NetworkPlan {
        mode,
        source,
        allow: rules(&policy.network.allow),
        deny: rules(&policy.network.deny),
        proxy,
    }
}

/// Where the cage's resolver file goes: `/etc/resolv.conf`, or the file it
/// links to (systemd-resolved's stub file, say), since a bind mount over a
/// link lands on the link's target.
fn resolv_conf_path() -> PathBuf {
    let link = Path::new("/etc/resolv.conf");
    if let Ok(real) = crate::host::canonical(link) {
        return real;
    }
    match std::fs::read_link(link) {
        Ok(target) => normalize(&Path::new("/etc").join(target)),
        Err(_) => link.to_path_buf(),
    }
}

fn build_limits(policy: &Policy) -> LimitsPlan {
    let mut rlimits = vec![Rlimit {
        kind: RlimitKind::Core,
        value: 0,
        source: Provenance::Default {
            what: "no core dumps: they would hold the agent's memory",
        },
    }];
    let l = &policy.limits;
    for (kind, value) in [
        (RlimitKind::Nofile, &l.nofile),
        (RlimitKind::Nproc, &l.nproc),
        (RlimitKind::Fsize, &l.fsize),
    ] {
        if let Some(v) = value {
            rlimits.push(Rlimit {
                kind,
                value: v.value,
                source: v.source.clone(),
            });
        }
    }
    let limit = |v: &Option<Sourced<u64>>| {
        v.as_ref().map(|v| Limit {
            value: v.value,
            source: v.source.clone(),
        })
    };
    LimitsPlan {
        rlimits,
        memory: limit(&l.memory),
        pids: limit(&l.pids),
        cpu: limit(&l.cpu),
        required: l
            .required
            .as_ref()
            .filter(|r| r.value)
            .map(|r| r.source.clone()),
    }
}

/// `argv0` resolved like execvp would inside the cage: a path with a slash
/// as is (relative to the working directory), else the first visible,
/// executable match on PATH.
fn resolve_command(argv0: &str, path_var: &str, cwd: &Path, mounts: &[Mount]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let usable = |p: &Path| {
        let real = crate::host::canonical(p).ok()?;
        let meta = real.metadata().ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0 && is_visible(mounts, &real))
            .then(|| p.to_path_buf())
    };
    if argv0.contains('/') {
        let p = normalize(&cwd.join(argv0));
        return Some(usable(&p).unwrap_or(p));
    }
    let mut seen = BTreeSet::new();
    path_var
        .split(':')
        .filter(|d| d.starts_with('/') && seen.insert(*d))
        .find_map(|d| usable(&Path::new(d).join(argv0)))
}
