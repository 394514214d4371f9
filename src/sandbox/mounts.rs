//! The view: a fresh tmpfs root holding only what the plan binds.
//!
//! Runs in cage init, inside the new user and mount namespaces, with the
//! capabilities the user namespace grants. It executes `plan.mounts` in
//! order and decides nothing. Two rules it enforces mechanically:
//!
//! 1. Every host path is opened with `RESOLVE_NO_SYMLINKS` and mounted
//!    through its descriptor, so a link planted between plan and mount
//!    cannot redirect a bind.
//! 2. Mount points are created only inside cage's own tmpfs mounts, never
//!    in a host directory: cage leaves no stub files behind.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;

use crate::plan::{Access, FileKind, Mount, Plan};
use crate::sys;

/// Where the staging tmpfs is mounted before the first pivot. Host paths
/// stay reachable under `OLD` afterwards, even ones below /tmp.
const STAGING: &str = "/tmp";
const NEW: &str = "/newroot";
const OLD: &str = "/oldroot";
/// An empty file in the staging tmpfs, bound over hidden files. It stays
/// reachable through those binds only.
const EMPTY_FILE: &str = "/empty";

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{step} {path}")]
    Sys {
        step: &'static str,
        path: PathBuf,
        #[source]
        errno: std::io::Error,
    },
    #[error(
        "mounting the overlay workspace on {dst} (lower {lower}, upper {upper}); overlayfs \
         refused the layers: it needs Linux 5.11 or newer for user namespaces, a workspace on a \
         filesystem it can use as a lower layer (not itself an overlay stacked twice), and the \
         upper and work directories on one filesystem with user extended attributes. Run \
         `cage doctor`, or use --workspace direct"
    )]
    Overlay {
        dst: PathBuf,
        lower: PathBuf,
        upper: PathBuf,
        #[source]
        errno: std::io::Error,
    },
    #[error(
        "mounting the overlay of the agent state directory {dst} (upper {upper}): overlayfs \
         refused the layers (it needs Linux 5.11 or newer for user namespaces, the directory \
         on a filesystem it can use as a lower layer, and cage's state directory on one with \
         user extended attributes). Run `cage doctor`"
    )]
    StateOverlay {
        dst: PathBuf,
        upper: PathBuf,
        #[source]
        errno: std::io::Error,
    },
    #[error(
        "refusing to create the mount point {path}: it would be created in a host directory \
         (cage never leaves files in your directories)"
    )]
    HostMountPoint { path: PathBuf },
}

impl MountError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            MountError::Sys { errno, .. }
            | MountError::Overlay { errno, .. }
            | MountError::StateOverlay { errno, .. } => errno.raw_os_error(),
            MountError::HostMountPoint { .. } => None,
        }
    }
}

fn err<E: Into<std::io::Error>>(step: &'static str, path: &Path) -> impl FnOnce(E) -> MountError {
    let path = shown(path);
    move |e| MountError::Sys {
        step,
        path,
        errno: e.into(),
    }
}

/// Builds the view and enters it. On return the process's root is the new
/// tmpfs, the host's root is detached, and the working directory is
/// `plan.cwd`.
///
/// 1. Stop mount events propagating back to the host.
/// 2. Mount a staging tmpfs and pivot into it; the host root moves to
///    /oldroot, so every source path stays reachable.
/// 3. Mount the new root's tmpfs at /newroot and apply the plan's mounts.
/// 4. Detach the host root, pivot into /newroot and detach the staging root.
/// 5. Make the root tmpfs read-only, and change to the working directory.
pub fn enter_view(plan: &Plan) -> Result<(), MountError> {
    let root = Path::new("/");
    // 1. Slave, not private: unmounts on the host still propagate in, so a
    //    cage never keeps a host filesystem busy.
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err("making the mount tree a slave of the host's", root))?;

    // 2.
    let staging = Path::new(STAGING);
    tmpfs(staging, 0o755)?;
    for dir in ["newroot", "oldroot"] {
        let p = staging.join(dir);
        fs::create_dir(&p).map_err(err("creating", &p))?;
    }
    fs::write(staging.join("empty"), b"").map_err(err("creating", &staging.join("empty")))?;
    fs::set_permissions(staging.join("empty"), fs::Permissions::from_mode(0o444))
        .map_err(err("setting the mode of", &staging.join("empty")))?;
    nix::unistd::pivot_root(staging, &staging.join("oldroot"))
        .map_err(err("pivoting into the staging root", staging))?;
    nix::unistd::chdir(root).map_err(err("changing directory to", root))?;

    // 3.
    let new = Path::new(NEW);
    tmpfs(new, 0o755)?;
    let mut owned: Vec<PathBuf> = vec![PathBuf::from("/")];
    for m in &plan.mounts {
        apply(m, &mut owned).map_err(|e| match (e, m) {
            // The same overlay code serves agent state directories; say
            // which overlay failed.
            (MountError::Overlay { errno, .. }, Mount::Overlay { dst, upper, .. })
                if plan.state.iter().any(|s| &s.dir == dst) =>
            {
                MountError::StateOverlay {
                    dst: dst.clone(),
                    upper: upper.clone(),
                    errno,
                }
            }
            (e, _) => e,
        })?;
    }

    // 4. Detach the host root first: nothing below may reach it again.
    let old = Path::new(OLD);
    umount2(old, MntFlags::MNT_DETACH).map_err(err("detaching the host root", old))?;
    nix::unistd::chdir(new).map_err(err("changing directory to", new))?;
    // pivot_root(".", ".") stacks the staging root on top of the new one;
    // detaching "." then drops it (pivot_root(2), NOTES).
    nix::unistd::pivot_root(".", ".").map_err(err("pivoting into the new root", new))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detaching the staging root", root))?;
    nix::unistd::chdir(root).map_err(err("changing directory to", root))?;

    // 5.
    sys::mount_setattr(root, false, libc::MOUNT_ATTR_RDONLY, 0)
        .map_err(err("making the root read-only", root))?;
    nix::unistd::chdir(&plan.cwd).map_err(err("changing to the working directory", &plan.cwd))?;
    Ok(())
}

/// `dst` as seen from the staging root.
/// A path as the user knows it: the staging names (/newroot, /oldroot) are
/// cage's own and mean nothing outside.
fn shown(path: &Path) -> PathBuf {
    for prefix in [NEW, OLD] {
        if let Ok(rest) = path.strip_prefix(prefix) {
            return Path::new("/").join(rest);
        }
    }
    path.to_path_buf()
}

fn inside(dst: &Path) -> PathBuf {
    Path::new(NEW).join(dst.strip_prefix("/").unwrap_or(dst))
}

/// A host path as seen from the staging root.
fn host(src: &Path) -> PathBuf {
    Path::new(OLD).join(src.strip_prefix("/").unwrap_or(src))
}

fn apply(m: &Mount, owned: &mut Vec<PathBuf>) -> Result<(), MountError> {
    match m {
        Mount::Dir { dst, mode, .. } => {
            make_dir(dst, *mode, owned)?;
        }
        Mount::Tmpfs { dst, mode, .. } => {
            make_dir(dst, 0o755, owned)?;
            tmpfs(&inside(dst), *mode)?;
            owned.push(dst.clone());
        }
        Mount::Bind {
            src,
            dst,
            access,
            kind,
            ..
        } => {
            make_mount_point(dst, *kind, owned)?;
            bind(&host(src), &inside(dst), *access)?;
        }
        // The directory as the view already shows it (the host's through the
        // workspace bind, or the overlay's), onto itself: only the mount
        // point matters.
        Mount::Pin { dst, .. } => bind(&inside(dst), &inside(dst), Access::ReadWrite)?,
        Mount::Overlay {
            dst,
            lower,
            upper,
            work,
            ..
        } => {
            make_mount_point(dst, FileKind::Dir, owned)?;
            overlay(&host(lower), &host(upper), &host(work), &inside(dst))?;
        }
        Mount::Hide { dst, kind, .. } => {
            let target = inside(dst);
            match kind {
                FileKind::Dir => {
                    tmpfs(&target, 0o555)?;
                    sys::mount_setattr(&target, false, libc::MOUNT_ATTR_RDONLY, 0)
                        .map_err(err("making read-only", &target))?;
                }
                FileKind::File => bind(Path::new(EMPTY_FILE), &target, Access::ReadOnly)?,
            }
        }
        Mount::Symlink { target, dst, .. } => {
            if !is_owned(dst, owned) {
                return Err(MountError::HostMountPoint { path: dst.clone() });
            }
            // The link's directory may not exist yet (~/.local/bin on the
            // empty home): it is created on cage's tmpfs, like a mount point.
            if let Some(parent) = dst.parent() {
                make_dir(parent, 0o755, owned)?;
            }
            let link = inside(dst);
            std::os::unix::fs::symlink(target, &link).map_err(err("creating the link", &link))?;
        }
        Mount::File { dst, contents, .. } => {
            // Written in the staging tmpfs, which nothing but this bind
            // reaches once the staging root is detached.
            let staged = PathBuf::from(format!("/file{}", dst.to_string_lossy().replace('/', "_")));
            fs::write(&staged, contents).map_err(err("creating", &staged))?;
            fs::set_permissions(&staged, fs::Permissions::from_mode(0o444))
                .map_err(err("setting the mode of", &staged))?;
            make_mount_point(dst, FileKind::File, owned)?;
            bind(&staged, &inside(dst), Access::ReadOnly)?;
        }
        Mount::Copy { src, dst, .. } => copy(&host(src), dst, owned)?,
        Mount::Proc { dst } => {
            make_dir(dst, 0o555, owned)?;
            proc(&inside(dst))?;
        }
        Mount::Dev { dst } => {
            make_dir(dst, 0o755, owned)?;
            dev(&inside(dst))?;
        }
    }
    Ok(())
}

/// Whether `dst`'s deepest covering mount is one of cage's own tmpfs.
fn is_owned(dst: &Path, owned: &[PathBuf]) -> bool {
    // `owned` lists cage's tmpfs mounts; host binds can sit between them.
    // The plan orders mounts parents first, so compare against the deepest
    // owned prefix and check no host path was bound deeper on the way.
    let deepest = owned
        .iter()
        .filter(|o| dst.starts_with(o))
        .max_by_key(|o| o.components().count());
    match deepest {
        Some(o) => {
            // Walk from the owned mount down to dst's parent: each existing
            // component must still live on that tmpfs (same device).
            let Ok(base) = fs::metadata(inside(o)) else {
                return false;
            };
            use std::os::unix::fs::MetadataExt;
            let mut cur = inside(o);
            let rel = dst.strip_prefix(o).unwrap_or(dst);
            for c in rel.parent().into_iter().flat_map(|p| p.components()) {
                cur.push(c);
                match fs::symlink_metadata(&cur) {
                    Ok(m) if m.dev() == base.dev() && m.is_dir() => {}
                    Ok(_) => return false,
                    Err(_) => break,
                }
            }
            true
        }
        None => false,
    }
}

fn make_dir(dst: &Path, mode: u32, owned: &[PathBuf]) -> Result<(), MountError> {
    let target = inside(dst);
    if target.is_dir() {
        return Ok(());
    }
    if !is_owned(dst, owned) {
        return Err(MountError::HostMountPoint {
            path: dst.to_path_buf(),
        });
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(&target)
        .map_err(err("creating the directory", &target))
}

fn make_mount_point(dst: &Path, kind: FileKind, owned: &[PathBuf]) -> Result<(), MountError> {
    let target = inside(dst);
    if target.symlink_metadata().is_ok() {
        return Ok(());
    }
    match kind {
        FileKind::Dir => make_dir(dst, 0o755, owned),
        FileKind::File => {
            if let Some(parent) = dst.parent() {
                make_dir(parent, 0o755, owned)?;
            }
            if !is_owned(dst, owned) {
                return Err(MountError::HostMountPoint {
                    path: dst.to_path_buf(),
                });
            }
            fs::File::create(&target)
                .map(drop)
                .map_err(err("creating the mount point", &target))
        }
    }
}

fn tmpfs(target: &Path, mode: u32) -> Result<(), MountError> {
    let data = format!("mode={mode:o}");
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(err("mounting a tmpfs on", target))
}

/// Opens `path` as an `O_PATH` descriptor, refusing any symbolic link on
/// the way.
fn open_path(path: &Path) -> Result<OwnedFd, MountError> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(nix::fcntl::AT_FDCWD, path, how).map_err(err("opening", path))
}

/// The path that names an open descriptor to mount(2): /proc here is the
/// host's procfs under /oldroot (staging has none).
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("{OLD}/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A host path under /oldroot, as the user knows it (for messages).
fn unhost(p: &Path) -> PathBuf {
    p.strip_prefix(OLD)
        .map(|p| Path::new("/").join(p))
        .unwrap_or(p.into())
}

/// Recursive bind of `src` on `dst`, through descriptors; read-only applies
/// to every submount. Always nosuid and nodev.
fn bind(src: &Path, dst: &Path, access: Access) -> Result<(), MountError> {
    let s = open_path(src)?;
    let d = open_path(dst)?;
    let step = match access {
        Access::ReadOnly => "bind-mounting read-only",
        Access::ReadWrite => "bind-mounting read-write",
    };
    mount(
        Some(&fd_path(&s)),
        &fd_path(&d),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| MountError::Sys {
        step,
        path: unhost(src),
        errno: e.into(),
    })?;
    let mut set = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    if access == Access::ReadOnly {
        set |= libc::MOUNT_ATTR_RDONLY;
    }
    sys::mount_setattr(dst, true, set, 0).map_err(err("setting mount flags on", dst))
}

/// An overlayfs on `target`. Each layer is opened like a bind's source
/// (no symbolic link anywhere on its path) and named to the kernel by its
/// descriptor, which also spares escaping `,` and `:` in the options.
///
/// `userxattr`: the only way an unprivileged user namespace may mount
/// overlayfs (Linux 5.11); overlay keeps its whiteouts' and opaque
/// directories' marks in `user.overlay.*` xattrs, and it implies
/// `redirect_dir=nofollow` and `metacopy=off`, so the upper directory
/// holds whole files and plain directories that `cage diff` can read:
/// a directory renamed inside is copied (EXDEV), never redirected.
fn overlay(lower: &Path, upper: &Path, work: &Path, target: &Path) -> Result<(), MountError> {
    let l = open_path(lower)?;
    let u = open_path(upper)?;
    let w = open_path(work)?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        fd_path(&l).display(),
        fd_path(&u).display(),
        fd_path(&w).display()
    );
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| MountError::Overlay {
        dst: target
            .strip_prefix(NEW)
            .map(|p| Path::new("/").join(p))
            .unwrap_or(target.into()),
        lower: unhost(lower),
        upper: unhost(upper),
        errno: e.into(),
    })
}

/// A procfs for the new pid namespace, with the parts that reach the
/// kernel's global state read-only (as bubblewrap does).
fn proc(target: &Path) -> Result<(), MountError> {
    mount(
        Some("proc"),
        target,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(err("mounting procfs on", target))?;
    for sub in ["sys", "sysrq-trigger", "irq", "bus"] {
        let p = target.join(sub);
        if p.exists() {
            bind(&p, &p, Access::ReadOnly)?;
        }
    }
    Ok(())
}

/// A minimal /dev: the harmless character devices bound from the host, a
/// private devpts instance, shm, and the usual links.
fn dev(target: &Path) -> Result<(), MountError> {
    tmpfs(target, 0o755)?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = target.join(node);
        fs::File::create(&dst)
            .map(drop)
            .map_err(err("creating the mount point", &dst))?;
        let src = host(&Path::new("/dev").join(node));
        let s = open_path(&src)?;
        mount(
            Some(&fd_path(&s)),
            &dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(err("bind-mounting the device", &src))?;
        sys::mount_setattr(
            &dst,
            false,
            libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC,
            0,
        )
        .map_err(err("setting mount flags on", &dst))?;
    }
    let pts = target.join("pts");
    fs::create_dir(&pts).map_err(err("creating", &pts))?;
    // A new devpts instance: the agent's ptys are its own, and the host's
    // terminals are not listed. No gid= option: the tty group is not mapped.
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .map_err(err("mounting devpts on", &pts))?;
    let shm = target.join("shm");
    fs::create_dir(&shm).map_err(err("creating", &shm))?;
    tmpfs(&shm, 0o1777)?;
    for (name, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let link = target.join(name);
        std::os::unix::fs::symlink(to, &link).map_err(err("creating the link", &link))?;
    }
    sys::mount_setattr(target, false, libc::MOUNT_ATTR_RDONLY, 0)
        .map_err(err("making read-only", target))
}

/// A private copy of the host file `src` at `dst`. In cage's own tmpfs the
/// copy is simply created there (so the agent can also replace it by
/// rename); inside a host bind it is staged and bound over `dst`. Either
/// way nothing the agent writes reaches `src`.
fn copy(src: &Path, dst: &Path, owned: &[PathBuf]) -> Result<(), MountError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = openat2(nix::fcntl::AT_FDCWD, src, how).map_err(err("opening", src))?;
    let mut file = fs::File::from(fd);
    let mode = file
        .metadata()
        .map_err(err("reading the mode of", src))?
        .mode()
        & 0o777;
    let mut contents = Vec::new();
    file.read_to_end(&mut contents)
        .map_err(err("reading", src))?;
    let place = |at: &Path| -> Result<(), MountError> {
        fs::write(at, &contents).map_err(err("writing the copy", at))?;
        fs::set_permissions(at, fs::Permissions::from_mode(mode))
            .map_err(err("setting the mode of", at))
    };
    if let Some(parent) = dst.parent()
        && is_owned(dst, owned)
    {
        make_dir(parent, 0o755, owned)?;
        return place(&inside(dst));
    }
    let staged = PathBuf::from(format!("/copy{}", dst.to_string_lossy().replace('/', "_")));
    place(&staged)?;
    make_mount_point(dst, FileKind::File, owned)?;
    bind(&staged, &inside(dst), Access::ReadWrite)
}
