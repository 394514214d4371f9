//! Host-side checks before an overlay session starts, so the failures the
//! kernel would report as a bare EINVAL from inside the cage get a message
//! that names the step, the path, the errno and a fix.
//!
//! Checked: the kernel (overlayfs in user namespaces needs 5.11), the
//! filesystem of the upper and work directories (one filesystem, one
//! overlayfs can write to, with user extended attributes). What is left
//! (the workspace as a lower layer) is left to the mount itself, whose
//! error carries a hint built here.

use std::io;
use std::path::{Path, PathBuf};

use crate::plan::OverlayPlan;
use crate::sys;

const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// Filesystems overlayfs cannot write its upper layer to.
const BAD_UPPER: &[(i64, &str)] = &[
    (OVERLAYFS_MAGIC, "overlayfs"),
    (0x6969, "NFS"),
    (0x6573_5546, "FUSE"),
    (0xff53_4d42, "CIFS"),
    (0xfe53_4d42, "SMB2"),
    (0x0102_1997, "9p"),
];

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "the overlay workspace needs overlayfs in user namespaces, which came with Linux 5.11; \
         this kernel is {release}. Upgrade the kernel, or use --workspace direct"
    )]
    Kernel { release: String },
    #[error("checking {path} for the overlay workspace")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the overlay's upper directory {upper} is on {fs}, which overlayfs cannot use as an \
         upper layer. Set XDG_STATE_HOME to a directory on a local filesystem (ext4, xfs, \
         btrfs), or use --workspace direct"
    )]
    UpperFs { upper: PathBuf, fs: &'static str },
    #[error(
        "the overlay's upper directory {upper} and its work directory {work} are on different \
         filesystems; overlayfs needs both on one. Make sure nothing is mounted inside {dir}"
    )]
    Split {
        upper: PathBuf,
        work: PathBuf,
        dir: PathBuf,
    },
    #[error(
        "setting a user extended attribute on {path}: overlayfs records deletions and replaced \
         directories in user.overlay.* attributes there. Set XDG_STATE_HOME to a directory on a \
         filesystem with user xattrs (ext4, xfs, btrfs; tmpfs from Linux 6.6), or use \
         --workspace direct"
    )]
    NoXattr {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `(major, minor)` of the running kernel.
fn kernel_version() -> Option<((u32, u32), String)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let release = release.trim().to_string();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some(((major, minor), release))
}

// The type of `f_type` differs between architectures and libcs.
#[allow(clippy::unnecessary_cast)]
fn fs_magic(path: &Path) -> Result<i64, PreflightError> {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 as i64)
        .map_err(|e| PreflightError::Stat {
            path: path.to_path_buf(),
            source: e.into(),
        })
}

fn dev(path: &Path) -> Result<u64, PreflightError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.dev())
        .map_err(|source| PreflightError::Stat {
            path: path.to_path_buf(),
            source,
        })
}

/// Runs the checks against the directories `session::Reserved::start`
/// created.
pub fn check(overlay: &OverlayPlan) -> Result<(), PreflightError> {
    if let Some((version, release)) = kernel_version()
        && version < (5, 11)
    {
        return Err(PreflightError::Kernel { release });
    }
    let magic = fs_magic(&overlay.upper)?;
    if let Some((_, fs)) = BAD_UPPER.iter().find(|(m, _)| *m == magic) {
        return Err(PreflightError::UpperFs {
            upper: overlay.upper.clone(),
            fs,
        });
    }
    if dev(&overlay.upper)? != dev(&overlay.work)? {
        return Err(PreflightError::Split {
            upper: overlay.upper.clone(),
            work: overlay.work.clone(),
            dir: overlay.dir.clone(),
        });
    }
    let probe = c"user.cage.probe";
    sys::lsetxattr(&overlay.upper, probe, b"1").map_err(|source| PreflightError::NoXattr {
        path: overlay.upper.clone(),
        source,
    })?;
    let _ = sys::lremovexattr(&overlay.upper, probe);
    Ok(())
}

/// A sentence to add to an overlay mount failure, when the workspace's
/// filesystem explains it.
pub fn lower_hint(workspace: &Path) -> Option<String> {
    (fs_magic(workspace).ok()? == OVERLAYFS_MAGIC).then(|| {
        format!(
            " ({} is itself on overlayfs, as inside a container; overlayfs stacks at most two \
             deep, so use --workspace direct there)",
            workspace.display()
        )
    })
}
