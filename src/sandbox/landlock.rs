//! Landlock: makes the kernel enforce the plan's path rules and scopes on
//! the agent, and reports how much of it the kernel could enforce.
//!
//! It owns the mapping from a rule kind to access rights (read: read and
//! execute; write: everything; device: read, write, ioctl) and the check of
//! what the kernel enforced. Which paths, which scopes and whether a weaker
//! sandbox is acceptable are the plan's: this module never widens a rule or
//! skips one.
//!
//! Network access rights are handled only when the plan denies TCP
//! outright (the graded mode, which has no network namespace): in the
//! normal mode the cage's private loopback must keep working, and the
//! network namespace is what isolates.

use std::io;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd,
    PathFdError, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};

use crate::plan::{LandlockPlan, PathRule, Requirement};

/// What the kernel enforced; goes into the audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockStatus {
    /// The kernel's Landlock ABI version, 0 if it has none.
    pub abi: i32,
    pub enforced: Enforcement,
    /// Requested rights and scopes the kernel could not enforce, as
    /// `fs:truncate (ABI 3)` or `scope:signal (ABI 6)`.
    pub missing: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    Full,
    Partial,
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("opening {} for a Landlock rule", .path.display())]
    OpenPath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the file type of {} for a Landlock rule", .path.display())]
    StatPath {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("building the Landlock ruleset")]
    BuildRuleset(#[source] RulesetError),
    #[error("adding the Landlock rule for {}", .path.display())]
    AddRule {
        path: PathBuf,
        #[source]
        source: RulesetError,
    },
    #[error("enforcing the Landlock ruleset")]
    RestrictSelf(#[source] RulesetError),
    #[error(
        "this kernel cannot enforce the Landlock rules cage requires \
         (kernel Landlock ABI {abi}; missing {}). Boot a kernel with Landlock \
         ABI {needed} or newer (Linux {} or later) with landlock in its `lsm=` \
         boot parameter, or accept a weaker sandbox with \
         `--allow-degraded landlock`",
        .missing.join(", "),
        linux_release(*.needed)
    )]
    NotEnforced {
        abi: i32,
        missing: Vec<String>,
        /// The lowest ABI that would enforce everything required.
        needed: i32,
    },
}

/// The kernel's Landlock ABI version; 0 when Landlock is not built in or not
/// enabled (`lsm=`). For `cage doctor`.
pub fn kernel_abi() -> i32 {
    crate::sys::landlock_abi_version().unwrap_or(0)
}

/// Restricts the calling thread (and what it execs) to the plan's paths
/// and scopes. Returns what the kernel enforced; with
/// [`Requirement::Required`], anything short of the required rights is an
/// error instead.
///
/// 1. Assess the kernel first, so a required plan it cannot honour fails
///    with nothing applied.
/// 2. Open every path (O_PATH), so a missing one fails before the ruleset
///    exists.
/// 3. Build the ruleset best-effort, add the rules, restrict.
/// 4. Reconcile with what the landlock crate reports, failing closed on any
///    disagreement.
pub fn install(plan: &LandlockPlan) -> Result<LandlockStatus, LandlockError> {
    let abi = kernel_abi();
    let assessed = assess(abi, plan);
    check(plan, &assessed)?;

    let rules = open_rules(plan)?;

    // Best effort: the crate drops what the kernel lacks (step 1 already
    // decided whether that is acceptable) instead of failing.
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(NEWEST))
        .map_err(LandlockError::BuildRuleset)?;
    // Handled with no port rule: every TCP bind and connect is denied.
    if plan.deny_tcp {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(NEWEST))
            .map_err(LandlockError::BuildRuleset)?;
    }
    let scopes = requested_scopes(plan);
    if !scopes.is_empty() {
        ruleset = ruleset.scope(scopes).map_err(LandlockError::BuildRuleset)?;
    }
    let mut created = ruleset.create().map_err(LandlockError::BuildRuleset)?;
    for OpenRule { path, fd, rights } in rules {
        created = created
            .add_rule(PathBeneath::new(fd, rights))
            .map_err(|source| LandlockError::AddRule {
                path: path.to_path_buf(),
                source,
            })?;
    }
    let restricted = created
        .restrict_self()
        .map_err(LandlockError::RestrictSelf)?;

    let reconciled = assessed.reconcile(&restricted.ruleset);
    check(plan, &reconciled)?;
    Ok(reconciled.status())
}

// ---- rights ----

/// The newest ABI the landlock crate knows: all its filesystem rights are
/// handled, so a newer kernel enforces more without a code change.
const NEWEST: ABI = ABI::V9;

/// Every ABI the crate knows, oldest first, to find when a right appeared.
const ABIS: [ABI; 9] = [
    ABI::V1,
    ABI::V2,
    ABI::V3,
    ABI::V4,
    ABI::V5,
    ABI::V6,
    ABI::V7,
    ABI::V8,
    ABI::V9,
];

/// Rights and scopes that appeared up to this ABI must be enforced when
/// the plan says [`Requirement::Required`]; later ones are enforced when
/// the kernel has them and reported as missing otherwise.
///
/// ABI 6 (Linux 6.12) is the first that can enforce the plan as written:
/// every filesystem right it names plus the signal and abstract-socket
/// scopes. ABI 9's `resolve_unix` (connecting to pathname sockets) is
/// beyond the plan; the mount view already limits which sockets exist.
/// Requiring every right the crate knows would refuse every kernel older
/// than the crate.
const REQUIRED_UP_TO: i32 = 6;

/// Names for the filesystem rights of [`NEWEST`], as in the kernel's
/// `LANDLOCK_ACCESS_FS_*`.
const FS_RIGHTS: [(AccessFs, &str); 17] = [
    (AccessFs::Execute, "execute"),
    (AccessFs::WriteFile, "write_file"),
    (AccessFs::ReadFile, "read_file"),
    (AccessFs::ReadDir, "read_dir"),
    (AccessFs::RemoveDir, "remove_dir"),
    (AccessFs::RemoveFile, "remove_file"),
    (AccessFs::MakeChar, "make_char"),
    (AccessFs::MakeDir, "make_dir"),
    (AccessFs::MakeReg, "make_reg"),
    (AccessFs::MakeSock, "make_sock"),
    (AccessFs::MakeFifo, "make_fifo"),
    (AccessFs::MakeBlock, "make_block"),
    (AccessFs::MakeSym, "make_sym"),
    (AccessFs::Refer, "refer"),
    (AccessFs::Truncate, "truncate"),
    (AccessFs::IoctlDev, "ioctl_dev"),
    (AccessFs::ResolveUnix, "resolve_unix"),
];

const NET_RIGHTS: [(AccessNet, &str); 2] = [
    (AccessNet::BindTcp, "bind_tcp"),
    (AccessNet::ConnectTcp, "connect_tcp"),
];

const SCOPES: [(Scope, &str); 2] = [
    (Scope::AbstractUnixSocket, "abstract_unix_socket"),
    (Scope::Signal, "signal"),
];

/// Read rules: read files, list directories, execute.
fn read_rights() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute
}

/// Write rules: everything.
fn write_rights() -> BitFlags<AccessFs> {
    AccessFs::from_all(NEWEST)
}

/// Device rules: open for reading and writing, and ioctls (TUIs need them
/// on /dev/tty). No directory rights.
fn device_rights() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev
}

/// The rights each kind of plan rule gets, by name: what a plan's `read`,
/// `write`, `devices` and `list` mean to the kernel (for the whole-plan
/// snapshots, which must change when a right does).
pub fn rights_by_kind() -> Vec<(&'static str, Vec<&'static str>)> {
    let names = |rights: BitFlags<AccessFs>| {
        FS_RIGHTS
            .iter()
            .filter(|(r, _)| rights.contains(*r))
            .map(|(_, n)| *n)
            .collect()
    };
    vec![
        ("read", names(read_rights())),
        ("write", names(write_rights())),
        ("devices", names(device_rights())),
        ("list", names(AccessFs::ReadDir.into())),
    ]
}

/// The ABI that introduced `access`.
fn fs_since(access: AccessFs) -> i32 {
    ABIS.iter()
        .find(|abi| AccessFs::from_all(**abi).contains(access))
        .map_or(i32::MAX, |abi| *abi as i32)
}

fn net_since(access: AccessNet) -> i32 {
    ABIS.iter()
        .find(|abi| AccessNet::from_all(**abi).contains(access))
        .map_or(i32::MAX, |abi| *abi as i32)
}

fn scope_since(scope: Scope) -> i32 {
    ABIS.iter()
        .find(|abi| Scope::from_all(**abi).contains(scope))
        .map_or(i32::MAX, |abi| *abi as i32)
}

fn requested_scopes(plan: &LandlockPlan) -> BitFlags<Scope> {
    let mut scopes = BitFlags::empty();
    if plan.scope_abstract_sockets {
        scopes |= Scope::AbstractUnixSocket;
    }
    if plan.scope_signals {
        scopes |= Scope::Signal;
    }
    scopes
}

// ---- assessing the kernel ----

/// What a kernel of a given ABI leaves out of the plan. Pure.
#[derive(Debug, PartialEq, Eq)]
struct Assessment {
    abi: i32,
    enforced: Enforcement,
    missing: Vec<Missing>,
}

#[derive(Debug, PartialEq, Eq)]
struct Missing {
    what: String,
    /// The ABI that brings it; `None` when the cause is unknown.
    since: Option<i32>,
}

impl Missing {
    /// Unknown causes count as required: fail closed.
    fn required(&self) -> bool {
        self.since.is_none_or(|since| since <= REQUIRED_UP_TO)
    }

    fn describe(&self) -> String {
        match self.since {
            Some(since) => format!("{} (ABI {since})", self.what),
            None => self.what.clone(),
        }
    }
}

fn assess(abi: i32, plan: &LandlockPlan) -> Assessment {
    let fs = FS_RIGHTS
        .iter()
        .map(|(access, name)| (format!("fs:{name}"), fs_since(*access)));
    let scopes = SCOPES
        .iter()
        .filter(|(scope, _)| requested_scopes(plan).contains(*scope))
        .map(|(scope, name)| (format!("scope:{name}"), scope_since(*scope)));
    let net = NET_RIGHTS
        .iter()
        .filter(|_| plan.deny_tcp)
        .map(|(access, name)| (format!("net:{name}"), net_since(*access)));
    let missing: Vec<Missing> = fs
        .chain(scopes)
        .chain(net)
        .filter(|(_, since)| *since > abi)
        .map(|(what, since)| Missing {
            what,
            since: Some(since),
        })
        .collect();
    let enforced = if abi <= 0 {
        Enforcement::None
    } else if missing.is_empty() {
        Enforcement::Full
    } else {
        Enforcement::Partial
    };
    Assessment {
        abi,
        enforced,
        missing,
    }
}

impl Assessment {
    /// Folds in the landlock crate's own verdict. Where it is worse than
    /// predicted the cause is unknown, and it counts as required.
    fn reconcile(mut self, crate_says: &RulesetStatus) -> Assessment {
        let verdict = match crate_says {
            RulesetStatus::FullyEnforced => Enforcement::Full,
            RulesetStatus::PartiallyEnforced => Enforcement::Partial,
            RulesetStatus::NotEnforced => Enforcement::None,
        };
        let rank = |e| match e {
            Enforcement::Full => 2,
            Enforcement::Partial => 1,
            Enforcement::None => 0,
        };
        if rank(verdict) < rank(self.enforced) {
            self.missing.push(Missing {
                what: format!(
                    "unknown (the landlock crate reports {} enforcement)",
                    match verdict {
                        Enforcement::None => "no",
                        _ => "partial",
                    }
                ),
                since: None,
            });
            self.enforced = verdict;
        }
        self
    }

    fn status(&self) -> LandlockStatus {
        LandlockStatus {
            abi: self.abi,
            enforced: self.enforced,
            missing: self.missing.iter().map(Missing::describe).collect(),
        }
    }
}

/// Fails a [`Requirement::Required`] plan that the kernel leaves short.
fn check(plan: &LandlockPlan, assessed: &Assessment) -> Result<(), LandlockError> {
    if plan.requirement != Requirement::Required {
        return Ok(());
    }
    let fatal: Vec<&Missing> = assessed.missing.iter().filter(|m| m.required()).collect();
    if fatal.is_empty() {
        return Ok(());
    }
    // Without Landlock at all, listing every right says less than this.
    let missing = if assessed.abi <= 0 {
        vec!["Landlock itself (not built into this kernel, or not enabled)".to_string()]
    } else {
        fatal.iter().map(|m| m.describe()).collect()
    };
    Err(LandlockError::NotEnforced {
        abi: assessed.abi,
        missing,
        needed: fatal
            .iter()
            .filter_map(|m| m.since)
            .max()
            .unwrap_or(REQUIRED_UP_TO),
    })
}

/// The first Linux release with Landlock ABI `abi`.
fn linux_release(abi: i32) -> &'static str {
    match abi {
        ..=1 => "5.13",
        2 => "5.19",
        3 => "6.2",
        4 => "6.7",
        5 => "6.10",
        6 => "6.12",
        7 => "6.15",
        8 => "7.0",
        _ => "7.1",
    }
}

// ---- rules ----

/// One rule, its path open and its rights final.
struct OpenRule<'a> {
    path: &'a Path,
    fd: PathFd,
    rights: BitFlags<AccessFs>,
}

/// Opens every rule's path with O_PATH and pairs it with its rights, file
/// rules limited to the rights a file can carry (the kernel rejects
/// directory rights on a file, and the crate would report that as partial
/// enforcement).
fn open_rules(plan: &LandlockPlan) -> Result<Vec<OpenRule<'_>>, LandlockError> {
    let kinds = [
        (&plan.list, AccessFs::ReadDir.into()),
        (&plan.read, read_rights()),
        (&plan.write, write_rights()),
        (&plan.devices, device_rights()),
    ];
    let mut rules = Vec::new();
    for (paths, rights) in kinds {
        for PathRule { path, .. } in paths {
            let fd = PathFd::new(path).map_err(|e| LandlockError::OpenPath {
                path: path.clone(),
                source: match e {
                    PathFdError::OpenCall { source, .. } => source,
                    other => io::Error::other(other),
                },
            })?;
            let stat = nix::sys::stat::fstat(&fd).map_err(|source| LandlockError::StatPath {
                path: path.clone(),
                source,
            })?;
            let is_dir = stat.st_mode & libc::S_IFMT == libc::S_IFDIR;
            let rights = if is_dir {
                rights
            } else {
                rights & AccessFs::from_file(NEWEST)
            };
            rules.push(OpenRule {
                path: path.as_path(),
                fd,
                rights,
            });
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

    use nix::errno::Errno;
    use nix::fcntl::{OFlag, open};
    use nix::sys::signal::kill;
    use nix::sys::stat::Mode;
    use nix::unistd::getppid;

    use super::*;
    use crate::policy::Provenance;
    use crate::sys::probe::{Outcome, decode, encode, run_in_child};

    fn rules(paths: &[&Path]) -> Vec<PathRule> {
        paths
            .iter()
            .map(|p| PathRule {
                path: p.to_path_buf(),
                source: Provenance::Default { what: "test" },
            })
            .collect()
    }

    fn plan(read: &[&Path], write: &[&Path], devices: &[&Path]) -> LandlockPlan {
        LandlockPlan {
            requirement: Requirement::Required,
            list: vec![],
            read: rules(read),
            write: rules(write),
            devices: rules(devices),
            scope_abstract_sockets: false,
            scope_signals: false,
            deny_tcp: false,
        }
    }

    /// A fresh directory under the temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("cage-landlock-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("creating the test directory");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `probe` in a child, after installing `plan` when given.
    fn in_child(plan: Option<&LandlockPlan>, probe: impl FnOnce() -> Result<(), Errno>) -> Outcome {
        decode(run_in_child(|| {
            if let Some(plan) = plan {
                if install(plan).is_err() {
                    return crate::sys::probe::SETUP_FAILED;
                }
            }
            encode(probe())
        }))
    }

    fn open_read(path: &Path) -> Result<(), Errno> {
        open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map(drop)
    }

    fn create(path: &Path) -> Result<(), Errno> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        open(path, flags, Mode::from_bits_truncate(0o600)).map(drop)
    }

    // ---- in a child: the kernel's answers ----

    #[test]
    fn paths_outside_the_read_rules_are_denied() {
        let hostname = Path::new("/etc/hostname");
        let usr_only = plan(&[Path::new("/usr")], &[], &[]);
        assert_eq!(in_child(None, || open_read(hostname)), Outcome::Ok);
        assert_eq!(
            in_child(Some(&usr_only), || open_read(hostname)),
            Outcome::Err(Errno::EACCES)
        );
        assert_eq!(
            in_child(Some(&usr_only), || open_read(Path::new("/usr/bin/env"))),
            Outcome::Ok
        );
    }

    #[test]
    fn a_read_rule_does_not_grant_writing() {
        let dir = TempDir::new("read-only");
        std::fs::write(dir.0.join("existing"), b"x").expect("writing a test file");
        let read_only = plan(&[&dir.0], &[], &[]);
        assert_eq!(
            in_child(Some(&read_only), || create(&dir.0.join("new"))),
            Outcome::Err(Errno::EACCES)
        );
        assert_eq!(
            in_child(Some(&read_only), || open(
                &dir.0.join("existing"),
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty()
            )
            .map(drop)),
            Outcome::Err(Errno::EACCES)
        );
        assert_eq!(
            in_child(Some(&read_only), || open_read(&dir.0.join("existing"))),
            Outcome::Ok
        );
        assert_eq!(in_child(None, || create(&dir.0.join("new"))), Outcome::Ok);
    }

    #[test]
    fn a_write_rule_allows_creating_files_there_only() {
        let writable = TempDir::new("writable");
        let other = TempDir::new("other");
        let write_tmp = plan(&[], &[&writable.0], &[]);
        assert_eq!(
            in_child(Some(&write_tmp), || create(&writable.0.join("new"))),
            Outcome::Ok
        );
        assert!(writable.0.join("new").exists());
        assert_eq!(
            in_child(Some(&write_tmp), || create(&other.0.join("new"))),
            Outcome::Err(Errno::EACCES)
        );
    }

    #[test]
    fn a_device_rule_grants_that_device_only() {
        let null_only = plan(&[], &[], &[Path::new("/dev/null")]);
        let write = |p: &'static str| {
            move || {
                open(
                    Path::new(p),
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map(drop)
            }
        };
        assert_eq!(in_child(Some(&null_only), write("/dev/null")), Outcome::Ok);
        assert_eq!(
            in_child(Some(&null_only), write("/dev/zero")),
            Outcome::Err(Errno::EACCES)
        );
    }

    #[test]
    fn signal_scope_stops_signals_to_processes_outside() {
        let mut scoped = plan(&[Path::new("/usr")], &[], &[]);
        let signal_parent = || kill(getppid(), None);
        assert_eq!(in_child(Some(&scoped), signal_parent), Outcome::Ok);
        scoped.scope_signals = true;
        assert_eq!(
            in_child(Some(&scoped), signal_parent),
            Outcome::Err(Errno::EPERM)
        );
    }

    #[test]
    fn abstract_socket_scope_stops_connecting_outside() {
        let name = format!("cage-landlock-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let _listener = UnixListener::bind_addr(&addr).expect("binding the abstract socket");
        let connect = || {
            UnixStream::connect_addr(&addr)
                .map(drop)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        };
        let mut scoped = plan(&[Path::new("/usr")], &[], &[]);
        assert_eq!(in_child(Some(&scoped), connect), Outcome::Ok);
        scoped.scope_abstract_sockets = true;
        assert_eq!(in_child(Some(&scoped), connect), Outcome::Err(Errno::EPERM));
    }

    /// The status install returns on this kernel matches the assessment,
    /// with the crate's own verdict folded in.
    #[test]
    fn install_reports_what_this_kernel_enforces() {
        let mut full = plan(&[Path::new("/usr")], &[], &[Path::new("/dev/null")]);
        full.scope_signals = true;
        full.scope_abstract_sockets = true;
        full.requirement = Requirement::BestEffort {
            source: Provenance::flag("--allow-degraded"),
        };
        let expected = assess(kernel_abi(), &full).status();
        let outcome = decode(run_in_child(|| match install(&full) {
            Ok(status) if status == expected => 0,
            Ok(_) => 1,
            Err(_) => 2,
        }));
        assert_eq!(outcome, Outcome::Ok, "expected {expected:?}");
    }

    // ---- before anything is applied ----

    /// Paths are opened before the ruleset exists, so this runs in the test
    /// process itself.
    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let missing = Path::new("/nonexistent/cage-landlock-test");
        let err = install(&plan(&[Path::new("/usr"), missing], &[], &[]))
            .expect_err("a missing path must fail");
        match &err {
            LandlockError::OpenPath { path, source } => {
                assert_eq!(path, missing);
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(err.to_string().contains("/nonexistent/cage-landlock-test"));
    }

    // ---- pure ----

    #[test]
    fn file_rules_carry_only_file_rights() {
        let hostname = Path::new("/etc/hostname");
        let p = plan(&[Path::new("/usr"), hostname], &[hostname], &[]);
        let rights: Vec<_> = open_rules(&p)
            .expect("opening")
            .into_iter()
            .map(|r| (r.path.to_path_buf(), r.rights))
            .collect();
        assert_eq!(
            rights,
            [
                (PathBuf::from("/usr"), read_rights()),
                (
                    hostname.to_path_buf(),
                    AccessFs::ReadFile | AccessFs::Execute
                ),
                (hostname.to_path_buf(), AccessFs::from_file(NEWEST)),
            ]
        );
    }

    #[test]
    fn the_rights_table_covers_the_newest_abi() {
        let table = FS_RIGHTS
            .iter()
            .fold(BitFlags::empty(), |all, (access, _)| all | *access);
        assert_eq!(table, AccessFs::from_all(NEWEST));
        assert_eq!(fs_since(AccessFs::Execute), 1);
        assert_eq!(fs_since(AccessFs::Refer), 2);
        assert_eq!(fs_since(AccessFs::Truncate), 3);
        assert_eq!(fs_since(AccessFs::IoctlDev), 5);
        assert_eq!(fs_since(AccessFs::ResolveUnix), 9);
        assert_eq!(scope_since(Scope::Signal), 6);
    }

    fn scoped_plan() -> LandlockPlan {
        let mut p = plan(&[Path::new("/usr")], &[], &[]);
        p.scope_signals = true;
        p.scope_abstract_sockets = true;
        p
    }

    fn missing_names(a: &Assessment) -> Vec<String> {
        a.status().missing
    }

    #[test]
    fn no_landlock_enforces_nothing_and_fails_a_required_plan() {
        let a = assess(0, &scoped_plan());
        assert_eq!(a.status().enforced, Enforcement::None);
        let err = check(&scoped_plan(), &a).expect_err("required");
        let msg = err.to_string();
        assert!(msg.contains("ABI 0"), "{msg}");
        assert!(msg.contains("lsm="), "{msg}");
        assert!(msg.contains("--allow-degraded landlock"), "{msg}");
    }

    #[test]
    fn an_old_kernel_fails_a_required_plan_naming_what_it_lacks() {
        let a = assess(4, &scoped_plan());
        assert_eq!(a.enforced, Enforcement::Partial);
        assert_eq!(
            missing_names(&a),
            [
                "fs:ioctl_dev (ABI 5)",
                "fs:resolve_unix (ABI 9)",
                "scope:abstract_unix_socket (ABI 6)",
                "scope:signal (ABI 6)"
            ]
        );
        let msg = check(&scoped_plan(), &a).expect_err("required").to_string();
        assert!(msg.contains("kernel Landlock ABI 4"), "{msg}");
        assert!(msg.contains("fs:ioctl_dev (ABI 5)"), "{msg}");
        assert!(msg.contains("scope:signal (ABI 6)"), "{msg}");
        assert!(!msg.contains("resolve_unix"), "{msg}");
        assert!(msg.contains("ABI 6 or newer (Linux 6.12"), "{msg}");
    }

    #[test]
    fn best_effort_returns_the_gaps_instead_of_failing() {
        let mut p = scoped_plan();
        p.requirement = Requirement::BestEffort {
            source: Provenance::flag("--allow-degraded"),
        };
        assert!(check(&p, &assess(0, &p)).is_ok());
        assert!(check(&p, &assess(4, &p)).is_ok());
    }

    #[test]
    fn scopes_are_required_only_when_the_plan_asks() {
        let unscoped = plan(&[Path::new("/usr")], &[], &[]);
        assert!(check(&unscoped, &assess(5, &unscoped)).is_ok());
        assert!(check(&scoped_plan(), &assess(5, &scoped_plan())).is_err());
    }

    #[test]
    fn rights_newer_than_required_are_reported_but_not_fatal() {
        for abi in 6..9 {
            let a = assess(abi, &scoped_plan());
            assert_eq!(a.enforced, Enforcement::Partial);
            assert_eq!(missing_names(&a), ["fs:resolve_unix (ABI 9)"]);
            assert!(check(&scoped_plan(), &a).is_ok());
        }
        for abi in [9, 12] {
            let a = assess(abi, &scoped_plan());
            assert_eq!(a.enforced, Enforcement::Full);
            assert!(a.missing.is_empty());
        }
    }

    #[test]
    fn a_worse_verdict_from_the_crate_fails_closed() {
        let a = assess(9, &scoped_plan()).reconcile(&RulesetStatus::PartiallyEnforced);
        assert_eq!(a.enforced, Enforcement::Partial);
        assert!(check(&scoped_plan(), &a).is_err());
        let a = assess(7, &scoped_plan()).reconcile(&RulesetStatus::NotEnforced);
        assert_eq!(a.enforced, Enforcement::None);
        assert!(check(&scoped_plan(), &a).is_err());
        let a = assess(7, &scoped_plan()).reconcile(&RulesetStatus::PartiallyEnforced);
        assert!(check(&scoped_plan(), &a).is_ok());
    }

    #[test]
    fn status_serialises_for_the_audit_log() {
        let json = serde_json::to_value(assess(7, &scoped_plan()).status()).expect("serialising");
        assert_eq!(
            json,
            serde_json::json!({
                "abi": 7,
                "enforced": "partial",
                "missing": ["fs:resolve_unix (ABI 9)"],
            })
        );
    }
}
