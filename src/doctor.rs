//! `cage doctor`: what this host can enforce, and what cage does about each
//! gap. It reads kernel facts, then proves the one that matters by running
//! `cage -- /bin/true` for real. It changes nothing on the host (the probe
//! run's working directory is a temporary directory it removes).

use std::process::Command;

/// One line of the report.
struct Check {
    what: &'static str,
    status: String,
    /// What cage does about it, or how to fix it.
    action: String,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Runs every check, prints the table, and returns the exit status: 0 when
/// `cage -- true` runs here, 1 when it does not.
pub fn run() -> i32 {
    let mut checks = vec![
        userns(),
        landlock(),
        seccomp(),
        kernel_apis(),
        overlay(),
        cgroup(),
        pidfd(),
        tiocsti(),
    ];
    let (works, detail) = probe_run();
    checks.push(Check {
        what: "cage -- true",
        status: if works { "runs".into() } else { "FAILS".into() },
        action: detail,
    });
    let width = checks.iter().map(|c| c.what.len()).max().unwrap_or(0);
    let swidth = checks.iter().map(|c| c.status.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in &checks {
        out.push_str(&format!(
            "{:width$}  {:swidth$}  {}\n",
            c.what, c.status, c.action
        ));
    }
    let apparmor = checks
        .iter()
        .any(|c| c.what == "user namespaces" && c.status.contains("AppArmor"));
    if !works && (apparmor || userns_restricted_by_apparmor()) {
        out.push('\n');
        out.push_str(&apparmor_help());
    }
    out.push_str(
        "\nnext: run `cage selftest` in a project to try escaping the cage a run there gets \
         (against decoys only)\n",
    );
    // `cage doctor | head -2`: a closed pipe ends the report quietly.
    let _ = crate::term::write_stdout(out.as_bytes());
    if works { 0 } else { 1 }
}

fn userns_restricted_by_apparmor() -> bool {
    read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
}

fn userns() -> Check {
    let what = "user namespaces";
    // By trying, as a run would: a sysctl, an AppArmor profile or a
    // container's seccomp filter may each be what refuses.
    let errno = match crate::supervisor::try_userns() {
        Ok(()) => {
            return Check {
                what,
                status: "available".into(),
                action: "identity, view, processes and network layers".into(),
            };
        }
        Err(errno) => errno,
    };
    let hint = crate::supervisor::userns_hint(Some(errno));
    let status = if hint.contains("AppArmor") {
        "denied by AppArmor"
    } else if hint.contains("disabled") {
        "disabled"
    } else {
        "refused"
    };
    // Without namespaces, Landlock is what the graded mode stands on.
    let graded = if crate::sandbox::landlock::kernel_abi() > 0 {
        "; graded mode available: `--allow-degraded namespaces --net none` runs with Landlock \
         and seccomp only (README, graded mode)"
    } else {
        "; no graded mode either: it needs Landlock, which this kernel lacks"
    };
    Check {
        what,
        status: status.into(),
        action: format!(
            "creating one failed ({}): {hint}{graded}",
            std::io::Error::from_raw_os_error(errno)
        ),
    }
}

/// What each Landlock ABI adds, for the report.
const LANDLOCK_ABIS: &[(i32, &str)] = &[
    (1, "filesystem access"),
    (2, "rename/link across directories"),
    (3, "truncate"),
    (4, "TCP bind/connect (not used: the net namespace isolates)"),
    (5, "ioctl on devices"),
    (6, "abstract unix socket and signal scopes"),
    (7, "audit logging of denials"),
];

fn landlock() -> Check {
    let abi = crate::sandbox::landlock::kernel_abi();
    if abi <= 0 {
        return Check {
            what: "Landlock",
            status: "missing".into(),
            action: "cage refuses to run; fix: a kernel with CONFIG_SECURITY_LANDLOCK and \
                     landlock in the lsm= boot parameter, or accept --allow-degraded landlock"
                .into(),
        };
    }
    let missing: Vec<&str> = LANDLOCK_ABIS
        .iter()
        .filter(|(v, _)| *v > abi && *v <= 6)
        .map(|(_, what)| *what)
        .collect();
    let action = if missing.is_empty() {
        "enforced: the access layer mirrors the view".to_string()
    } else {
        format!(
            "cage refuses to run without: {} (ABI 6 needed); or accept --allow-degraded landlock",
            missing.join(", ")
        )
    };
    Check {
        what: "Landlock",
        status: format!("ABI {abi}"),
        action,
    }
}

fn seccomp() -> Check {
    let actions = read("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let ok = actions.contains("errno") && actions.contains("kill_process");
    Check {
        what: "seccomp",
        status: if ok { "available" } else { "missing" }.into(),
        action: if ok {
            "deny-list with errno; foreign syscall ABIs killed".into()
        } else {
            "cage cannot install its filter; fix: a kernel with CONFIG_SECCOMP_FILTER".into()
        },
    }
}

/// (major, minor) of the running kernel.
fn kernel_version() -> Option<(u32, u32)> {
    let release = read("/proc/sys/kernel/osrelease")?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn kernel_apis() -> Check {
    let v = kernel_version();
    let ok = v.is_some_and(|v| v >= (5, 12));
    Check {
        what: "openat2, mount_setattr",
        status: match v {
            Some((a, b)) => format!("kernel {a}.{b}"),
            None => "unknown".into(),
        },
        action: if ok {
            "links refused while building the view; read-only applies to submounts".into()
        } else {
            "cage needs Linux 5.12 or newer".into()
        },
    }
}

fn overlay() -> Check {
    let what = "overlayfs in user namespaces";
    // By mounting one, as the overlay mode does: the module may not be
    // loaded until the first mount asks for it, so /proc/filesystems can
    // say no where a mount works.
    match try_overlay() {
        Ok(()) => Check {
            what,
            status: "available".into(),
            action: "the overlay workspace mode can work here".into(),
        },
        Err(why) => Check {
            what,
            status: "no".into(),
            action: format!(
                "mounting one failed ({why}): the overlay workspace mode would fail; direct and \
                 readonly work"
            ),
        },
    }
}

/// Mounts a throwaway overlay in a child with its own user and mount
/// namespaces, in a temporary directory removed afterwards.
fn try_overlay() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("cage-doctor-overlay-{}", std::process::id()));
    let made = ["lower", "upper", "work", "merged"]
        .iter()
        .try_for_each(|d| std::fs::create_dir_all(dir.join(d)));
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!("creating {}: {e}", dir.display()));
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let options = format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work,userxattr",
        dir.display()
    );
    // SAFETY: doctor has started no thread; the child writes its own id
    // maps, mounts and exits.
    let result = match unsafe { crate::sys::clone_process(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) }
    {
        Ok(None) => {
            let mounted = (|| -> std::io::Result<()> {
                std::fs::write("/proc/self/setgroups", "deny")?;
                std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
                std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
                nix::mount::mount(
                    Some("overlay"),
                    &dir.join("merged"),
                    Some("overlay"),
                    nix::mount::MsFlags::empty(),
                    Some(options.as_str()),
                )?;
                Ok(())
            })();
            crate::sys::exit_now(match mounted {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
            })
        }
        Ok(Some(pid)) => match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => Err(format!(
                "mount: {}",
                std::io::Error::from_raw_os_error(errno)
            )),
            other => Err(format!("the probe ended oddly: {other:?}")),
        },
        Err(e) => Err(format!("creating the namespaces: {e}")),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn cgroup() -> Check {
    use crate::cgroup::{self, Wanted};
    let all = Wanted {
        memory: Some(0),
        pids: Some(0),
        cpu: Some(0),
    };
    let what = "cgroup v2 limits";
    let own = match cgroup::own() {
        Ok(own) => own,
        Err(why) => {
            return Check {
                what,
                status: "none".into(),
                action: format!(
                    "{why}: [limits] memory/pids/cpu cannot be enforced (said at every start; \
                     refused with `required = true`); rlimits (nofile, nproc, fsize, core) \
                     always are"
                ),
            };
        }
    };
    match (cgroup::unusable(&own, &all), cgroup::systemd_run()) {
        (None, _) => Check {
            what,
            status: "enforced".into(),
            action: format!("in cage's own delegated cgroup {}", own.display()),
        },
        (Some(_), Some(run)) => Check {
            what,
            status: "enforced".into(),
            action: format!(
                "in a scope of your systemd user session ({} --user --scope -p Delegate=yes)",
                run.display()
            ),
        },
        (Some(why), None) => Check {
            what,
            status: "none".into(),
            action: format!(
                "{why}, and no systemd user session: [limits] memory/pids/cpu cannot be \
                 enforced (said at every start; refused with `required = true`); rlimits \
                 (nofile, nproc, fsize, core) always are"
            ),
        },
    }
}

fn pidfd() -> Check {
    let ok = crate::sys::has_pidfd();
    Check {
        what: "pidfd",
        status: if ok { "available" } else { "no" }.into(),
        action: "not needed: the supervisor is init's parent, so its pid cannot be reused".into(),
    }
}

fn tiocsti() -> Check {
    match read("/proc/sys/dev/tty/legacy_tiocsti").as_deref() {
        Some("0") => Check {
            what: "TIOCSTI",
            status: "off".into(),
            action: "the kernel refuses terminal injection; cage's filter refuses it too".into(),
        },
        Some(_) => Check {
            what: "TIOCSTI",
            status: "on".into(),
            action: "terminal injection is possible on this host; cage's seccomp filter \
                     refuses TIOCSTI and TIOCLINUX"
                .into(),
        },
        // The switch came with 6.2; before it, injection always works.
        None if kernel_version().is_some_and(|v| v < (6, 2)) => Check {
            what: "TIOCSTI",
            status: "on".into(),
            action: "terminal injection is possible on kernels before 6.2 (they have no \
                     dev.tty.legacy_tiocsti switch); cage's seccomp filter refuses TIOCSTI and \
                     TIOCLINUX"
                .into(),
        },
        None => Check {
            what: "TIOCSTI",
            status: "unknown".into(),
            action: "cage's seccomp filter refuses TIOCSTI and TIOCLINUX".into(),
        },
    }
}

/// Runs `cage --no-project-policy -- /bin/true` in a fresh temporary
/// directory: every layer, for real.
fn probe_run() -> (bool, String) {
    let Ok(exe) = std::env::current_exe() else {
        return (false, "cannot find cage's own executable".into());
    };
    let dir = std::env::temp_dir().join(format!("cage-doctor-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&dir) {
        return (false, format!("creating {}: {e}", dir.display()));
    }
    // The probe's session goes to a state directory of its own, removed
    // with it: doctor leaves nothing in the user's sessions.
    let state = dir.join("state");
    let out = Command::new(exe)
        .args(["--no-project-policy", "--", "/bin/true"])
        .current_dir(&dir)
        .env("XDG_STATE_HOME", &state)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Ok(o) if o.status.success() => (true, "every layer enforced".into()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let first = err.lines().next().unwrap_or("").trim();
            (
                false,
                format!("exit {}: {first}", o.status.code().unwrap_or(-1)),
            )
        }
        Err(e) => (false, format!("starting the probe: {e}")),
    }
}

fn apparmor_help() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/path/to/cage".into());
    format!(
        "AppArmor restricts unprivileged user namespaces on this host. Allow them for cage\n\
         only, with the profile shipped in cage's repository (contrib/apparmor/cage):\n\
         \n\
         \x20 sed 's|@CAGE@|{exe}|' contrib/apparmor/cage | sudo tee /etc/apparmor.d/cage\n\
         \x20 sudo apparmor_parser -r /etc/apparmor.d/cage\n\
         \n\
         The profile needs AppArmor 4.0 or later (apparmor_parser --version); AppArmor 3\n\
         cannot express user namespace rules, and does not restrict them either.\n\
         Or, for every program: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0\n"
    )
}
