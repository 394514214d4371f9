//! Capabilities: leaves the agent holding none, in any set, for good.
//!
//! Inside its user namespace the process that becomes the agent holds every
//! capability over that namespace. [`drop_all`] takes all of them away and
//! closes the ways back: exec of setuid or file-capability programs, the
//! ambient set, and root's special treatment in securebits. It only drops;
//! nothing here raises a capability or decides which to keep (none).

use caps::CapSet;
use nix::errno::Errno;

use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("reading capability {cap} of the bounding set")]
    ReadBounding {
        cap: u32,
        #[source]
        source: Errno,
    },
    #[error("dropping capability {cap} from the bounding set")]
    DropBounding {
        cap: u32,
        #[source]
        source: Errno,
    },
    #[error("clearing the ambient capability set")]
    ClearAmbient(#[source] caps::errors::CapsError),
    #[error("reading the securebits")]
    ReadSecurebits(#[source] Errno),
    #[error("locking the securebits")]
    LockSecurebits(#[source] Errno),
    #[error("checking for CAP_SETPCAP")]
    CheckSetpcap(#[source] caps::errors::CapsError),
    #[error("clearing the inheritable, permitted and effective capability sets")]
    ClearSets(#[source] Errno),
    #[error("setting no_new_privs")]
    NoNewPrivs(#[source] Errno),
}

/// Securebits cage sets and locks (capabilities(7), "The securebits flags"):
/// uid 0 gains nothing at exec (NOROOT), uid changes do not adjust the
/// capability sets (NO_SETUID_FIXUP), keep-caps stays off, and the ambient
/// set cannot be raised again. Each `_LOCKED` bit makes its flag permanent
/// for this process and its children.
const SECUREBITS: u32 = (libc::SECBIT_NOROOT
    | libc::SECBIT_NOROOT_LOCKED
    | libc::SECBIT_NO_SETUID_FIXUP
    | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
    | libc::SECBIT_KEEP_CAPS_LOCKED
    | libc::SECBIT_NO_CAP_AMBIENT_RAISE
    | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) as u32;

/// Drops every capability of the calling thread, for good. Fails rather
/// than leave one behind.
///
/// 1. Empty the bounding set.
/// 2. Empty the ambient set.
/// 3. Set and lock the securebits.
/// 4. Empty the inheritable, permitted and effective sets.
/// 5. Set no_new_privs.
pub fn drop_all() -> Result<(), CapsError> {
    // 1. First, while CAP_SETPCAP (which PR_CAPBSET_DROP needs) is still
    //    effective. The bounding set caps what any later exec can grant, so
    //    a setuid-root or file-capability program gains nothing.
    clear_bounding_set()?;

    // 2. The ambient set is what exec passes on to an ordinary program
    //    unchanged; emptying it needs no privilege.
    caps::clear(None, CapSet::Ambient).map_err(CapsError::ClearAmbient)?;

    // 3. Before step 4, which gives up the CAP_SETPCAP this needs.
    lock_securebits()?;

    // 4. Last of the sets: it ends CAP_SETPCAP, which steps 1 and 3 use.
    //    One capset empties all three (and with them the ambient set,
    //    which must stay within permitted and inheritable).
    sys::capset_clear().map_err(CapsError::ClearSets)?;

    // 5. Exec can no longer raise privileges at all (setuid bits and file
    //    capabilities are ignored), and seccomp and Landlock accept filters
    //    from a process without CAP_SYS_ADMIN. Inherited and irreversible.
    nix::sys::prctl::set_no_new_privs().map_err(CapsError::NoNewPrivs)
}

/// The graded mode's drop (no user namespace, so no CAP_SETPCAP to empty
/// the bounding set with), for a process that holds no capability:
///
/// 1. no_new_privs first: from here no exec can gain a capability (setuid
///    bits and file capabilities are ignored), so the bounding set, which
///    only caps what an exec could gain, bounds nothing.
/// 2. Every other set must read back empty; a process that holds any
///    capability (cage started by root) takes [`drop_all`] instead, which
///    fails rather than leave one behind.
pub fn drop_unprivileged() -> Result<(), CapsError> {
    nix::sys::prctl::set_no_new_privs().map_err(CapsError::NoNewPrivs)?;
    let holds_any = [
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
        CapSet::Ambient,
    ]
    .into_iter()
    .any(|set| caps::read(None, set).map_or(true, |c| !c.is_empty()));
    if holds_any {
        return drop_all();
    }
    Ok(())
}

/// Whether every capability set reads back empty (for the audit record:
/// what was achieved, not what was asked).
pub fn all_clear() -> bool {
    // The kernel keeps the ambient set within permitted and inheritable
    // (capabilities(7)), so with those empty it is empty too: one capget
    // instead of a prctl per capability.
    let sets_empty = sys::capsets_empty() == Ok(true);
    let bounding_empty = (0..64)
        .map(sys::capbset_read)
        .take_while(|r| *r != Err(Errno::EINVAL))
        .all(|r| r == Ok(false));
    sets_empty && bounding_empty
}

/// Drops every capability the kernel knows from the bounding set: one
/// prctl per capability, with no read before it (dropping one already gone
/// succeeds while CAP_SETPCAP is held).
///
/// PR_CAPBSET_DROP answers EINVAL past the kernel's last capability, which
/// finds it without /proc (it may not be mounted at this point) and beyond
/// the caps crate's list, which stops at the capabilities it knows (40).
fn clear_bounding_set() -> Result<(), CapsError> {
    // Capability sets are 64 bits wide.
    for cap in 0..64 {
        match sys::capbset_drop(cap) {
            Ok(()) => {}
            Err(Errno::EINVAL) => break,
            // Without CAP_SETPCAP (a second call, after step 4): fine for
            // a capability that is already gone, an error for one that is
            // not. Past the last capability the read answers EINVAL (the
            // drop's permission check comes first).
            Err(source) => match sys::capbset_read(cap) {
                Ok(false) => {}
                Err(Errno::EINVAL) => break,
                Ok(true) => return Err(CapsError::DropBounding { cap, source }),
                Err(source) => return Err(CapsError::ReadBounding { cap, source }),
            },
        }
    }
    Ok(())
}

/// Sets and locks [`SECUREBITS`], keeping any bit already set (a locked bit
/// cannot be cleared, and PR_SET_SECUREBITS replaces the whole word).
fn lock_securebits() -> Result<(), CapsError> {
    let current = sys::securebits().map_err(CapsError::ReadSecurebits)?;
    let keep_caps = libc::SECBIT_KEEP_CAPS as u32;
    let keep_caps_locked = current & libc::SECBIT_KEEP_CAPS_LOCKED as u32 != 0;
    let mut wanted = current | SECUREBITS;
    if !keep_caps_locked {
        // Locking keep-caps, we lock it off.
        wanted &= !keep_caps;
    }
    if wanted == current {
        return Ok(());
    }
    match sys::set_securebits(wanted) {
        Ok(()) => Ok(()),
        // Without CAP_SETPCAP the bits cannot be set, and there is also no
        // capability left for them to protect: steps 1, 4 and 5 still hold.
        Err(Errno::EPERM) if !has_setpcap()? => Ok(()),
        Err(source) => Err(CapsError::LockSecurebits(source)),
    }
}

fn has_setpcap() -> Result<bool, CapsError> {
    caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .map_err(CapsError::CheckSetpcap)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use nix::sys::wait::WaitStatus;

    use super::*;
    use crate::sys::probe::run_in_child;

    /// Runs `child` in a forked child and returns what it wrote, once it has
    /// exited with status 0.
    fn output_of(child: impl FnOnce(&mut std::fs::File) -> bool) -> String {
        let (rx, tx) = nix::unistd::pipe().expect("pipe");
        let mut tx = std::fs::File::from(tx);
        let status = run_in_child(|| if child(&mut tx) { 0 } else { 1 });
        drop(tx);
        assert!(
            matches!(status, WaitStatus::Exited(_, 0)),
            "child ended with {status:?}"
        );
        let mut out = String::new();
        std::fs::File::from(rx)
            .read_to_string(&mut out)
            .expect("reading the child's output");
        out
    }

    fn enter_user_namespace() -> bool {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok()
    }

    fn field<'a>(status: &'a str, name: &str) -> &'a str {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} missing from:\n{status}"))
    }

    /// In a fresh user namespace, where cage's processes hold every
    /// capability over the namespace; also as root, when the tests run so.
    #[test]
    fn drop_all_leaves_no_capability_and_sets_no_new_privs() {
        let as_root = nix::unistd::geteuid().is_root();
        for userns in [true, false] {
            if !userns && !as_root {
                continue;
            }
            let out = output_of(|out| {
                if userns && !enter_user_namespace() {
                    return false;
                }
                let Ok(()) = drop_all() else { return false };
                let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
                    return false;
                };
                let bits = sys::securebits().unwrap_or(0);
                writeln!(out, "{status}Securebits:\t{bits:x}").is_ok()
            });
            for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                assert_eq!(field(&out, set), "0000000000000000", "{set} in:\n{out}");
            }
            assert_eq!(field(&out, "NoNewPrivs"), "1");
            let bits = u32::from_str_radix(field(&out, "Securebits"), 16).expect("hex");
            assert_eq!(bits & SECUREBITS, SECUREBITS, "securebits {bits:#x}");
            assert_eq!(bits & libc::SECBIT_KEEP_CAPS as u32, 0);
        }
    }

    #[test]
    fn drop_all_twice_is_harmless() {
        let out = output_of(|out| {
            if !enter_user_namespace() {
                return false;
            }
            let twice = drop_all().and_then(|()| drop_all());
            write!(out, "{twice:?}").is_ok()
        });
        assert_eq!(out, "Ok(())");
    }

    /// Without CAP_SETPCAP the bounding set cannot be emptied: that must be
    /// an error, not a skipped step.
    #[test]
    fn a_bounding_set_that_cannot_be_emptied_is_an_error() {
        let out = output_of(|out| {
            let setpcap = caps::Capability::CAP_SETPCAP;
            if caps::drop(None, CapSet::Effective, setpcap).is_err() {
                return false;
            }
            let res = drop_all();
            write!(out, "{res:?}").is_ok()
        });
        assert!(
            out.starts_with("Err(DropBounding { cap: 0, source: EPERM })"),
            "{out}"
        );
    }
}
