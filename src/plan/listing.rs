//! Directory listings for the protected-path walk, cached per workspace so
//! that an unchanged workspace costs one `lstat` per directory and no
//! `getdents` at all (issue 16 item 1).
//!
//! What the walk needs from a directory is a function of the directory's
//! entries (their names and kinds), and those change only by adding,
//! removing or renaming an entry of that directory, which moves the
//! directory's own change time (ctime). So each listing is kept with the
//! directory's identity and times, and reused only while `lstat` still says
//! the same: a change in a subdirectory moves only that subdirectory's
//! ctime, and the walk stats every directory it reaches, so it is seen
//! there. ctime, unlike mtime, cannot be set by an unprivileged process
//! (`touch -d` moves it to now), so the agent cannot date a change back.
//!
//! Two limits keep this sound:
//! - a directory whose ctime is within [`RACY`] of the walk's start is never
//!   stored: a change in the same clock tick as the read would leave its
//!   ctime unchanged (git's "racy index" problem);
//! - only local filesystems whose ctime the kernel keeps are cached
//!   ([`TRUSTED_FS`]); on NFS, FUSE, overlayfs and the rest every directory
//!   is read each time.
//!
//! A direct session walks its workspace twice, at its start and its end.
//! The end's walk starts from what the start's stored, kept in memory
//! ([`Kept`]), rather than reading the file again; every directory is
//! still checked with `lstat`.
//!
//! The cache is host-side data: it lives in cage's state directory, which is
//! hidden inside every cage and which the guard refuses to let the agent
//! create. Any damage (truncation, another version, another root) makes it
//! read as empty: the walk then reads every directory, as without a cache.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How recent a directory's ctime may be for its listing to be stored:
/// past the coarsest timestamp granularity cached filesystems have.
const RACY: Duration = Duration::from_secs(2);

/// Filesystems (statfs `f_type`) whose directory ctime the kernel keeps on
/// every entry change: ext2/3/4, xfs, btrfs, tmpfs, f2fs, zfs, bcachefs.
const TRUSTED_FS: &[i64] = &[
    0xef53,
    0x5846_5342,
    0x9123_683e,
    0x0102_1994,
    0xf2f5_2010,
    0x2fc1_2fc1,
    0xca45_1a4e,
];

const MAGIC: &[u8] = b"cage listing cache 2\n";

/// What the walk uses of one directory: its subdirectories, its sockets,
/// and those of its other names the walk asks about (protected names'
/// first components, `HEAD`, `objects`, `refs`, `.git`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    pub subdirs: Vec<OsString>,
    pub sockets: Vec<OsString>,
    pub names: BTreeSet<OsString>,
    /// With [`Listings::hash_names`]: every name's [`name_hash`], sorted,
    /// to tell later whether a name was there (`session::watch`).
    pub hashes: Vec<u64>,
}

/// FNV-1a: stable across builds (the cache outlives the binary), and a
/// collision only mislabels a change as modified rather than added.
pub(crate) fn name_hash(name: &OsStr) -> u64 {
    name.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Listing {
    /// Whether `name` was in the directory when it was listed (only with
    /// hashed names).
    pub fn had(&self, name: &OsStr) -> bool {
        self.hashes.binary_search(&name_hash(name)).is_ok()
    }
}

/// Listings by their directory's full path (raw bytes: hashed and compared
/// as bytes, where a `Path` would be component by component).
type Dirs = HashMap<OsString, (Key, Arc<Listing>)>;

/// A directory's identity and times, as `lstat` gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
}

#[cfg(test)]
impl Key {
    fn of(m: &std::fs::Metadata) -> Key {
        use std::os::unix::fs::MetadataExt;
        Key {
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// The listings of one workspace: those loaded from the cache file, and
/// those this walk read or confirmed, to be stored.
pub(crate) struct Listings {
    file: Option<PathBuf>,
    root: PathBuf,
    /// The names the walk asks about; a cache made for others is unused.
    wanted: BTreeSet<OsString>,
    /// Every name is kept, hashed ([`Listing::hashes`]); part of the
    /// cache's identity as `wanted` is.
    hash_names: bool,
    /// Shared: the end of a session starts from what its start kept.
    old: Arc<Dirs>,
    new: Dirs,
    /// ctimes at or after this are too recent to store.
    cutoff: (i64, i64),
    trusted: HashMap<u64, bool>,
    /// Directories read with getdents, for the tests and the bench.
    pub reads: usize,
}

impl Listings {
    /// Listings that keep every name, hashed, and no name in full.
    pub fn open_hashed(file: Option<&Path>, root: &Path) -> Listings {
        Self::open_with(file, root, BTreeSet::new(), true)
    }

    /// Listings for a walk of `root` asking about `wanted`, with the cache
    /// in `file` (none: every directory is read, nothing is stored); with
    /// `hash_names`, every name is kept hashed as well.
    pub fn open_with(
        file: Option<&Path>,
        root: &Path,
        wanted: BTreeSet<OsString>,
        hash_names: bool,
    ) -> Listings {
        let start = SystemTime::now()
            .checked_sub(RACY)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default();
        let mut l = Listings {
            file: file.map(Path::to_path_buf),
            root: root.to_path_buf(),
            wanted,
            hash_names,
            old: Arc::default(),
            new: HashMap::new(),
            cutoff: (
                i64::try_from(start.as_secs()).unwrap_or(i64::MAX),
                i64::from(start.subsec_nanos()),
            ),
            trusted: HashMap::new(),
            reads: 0,
        };
        if let Some(bytes) = file.and_then(|f| std::fs::read(f).ok()) {
            l.old = Arc::new(decode(&bytes, root, &l.wanted, hash_names).unwrap_or_default());
        }
        // An unchanged workspace stores what it loaded.
        l.new.reserve(l.old.len());
        l
    }

    /// `dir`'s listing: the cached one while `lstat` agrees, else read.
    /// Shared, not copied: a listing is kept for the cache, and the walks
    /// keep it too.
    pub fn list(&mut self, dir: &Path) -> std::io::Result<Arc<Listing>> {
        let key = Self::stat(dir)?;
        if let Some((k, listing)) = self.old.get(dir.as_os_str())
            && *k == key
        {
            let listing = listing.clone();
            self.new
                .insert(dir.as_os_str().to_os_string(), (key, listing.clone()));
            return Ok(listing);
        }
        let listing = Arc::new(self.read(dir)?);
        self.reads += 1;
        if key.ctime < self.cutoff && key.mtime < self.cutoff && self.trusted(dir, key.dev) {
            self.new
                .insert(dir.as_os_str().to_os_string(), (key, listing.clone()));
        }
        Ok(listing)
    }

    /// `dir`'s key. By its whole path, not relative to an opened root: a
    /// root swapped for another directory (before the end's rescan) must
    /// read as changed, not as the tree that was moved away.
    fn stat(dir: &Path) -> std::io::Result<Key> {
        let st = nix::sys::stat::lstat(dir).map_err(std::io::Error::from)?;
        Ok(Key {
            dev: st.st_dev,
            ino: st.st_ino,
            ctime: (st.st_ctime, st.st_ctime_nsec),
            mtime: (st.st_mtime, st.st_mtime_nsec),
        })
    }

    fn read(&self, dir: &Path) -> std::io::Result<Listing> {
        let mut listing = Listing::default();
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let kind = entry.file_type().ok();
            if kind.is_some_and(|t| t.is_dir()) {
                listing.subdirs.push(name.clone());
            } else if kind.is_some_and(|t| t.is_socket()) {
                listing.sockets.push(name.clone());
            }
            if self.hash_names {
                listing.hashes.push(name_hash(&name));
            }
            if self.wanted.contains(&name) {
                listing.names.insert(name);
            }
        }
        listing.hashes.sort_unstable();
        Ok(listing)
    }

    // The type of `f_type` differs between architectures and libcs.
    #[allow(clippy::unnecessary_cast)]
    fn trusted(&mut self, dir: &Path, dev: u64) -> bool {
        *self.trusted.entry(dev).or_insert_with(|| {
            nix::sys::statfs::statfs(dir)
                .is_ok_and(|s| TRUSTED_FS.contains(&(s.filesystem_type().0 as i64)))
        })
    }

    /// Listings for a walk that follows one made earlier by this process
    /// (the end of a session, after its start): `kept` stands for the
    /// cache file, which then holds the same, and saves reading it again.
    pub fn resume(file: Option<&Path>, kept: &Kept) -> Listings {
        let mut l = Self::open_with(None, &kept.root, kept.wanted.clone(), kept.hash_names);
        l.file = file.map(Path::to_path_buf);
        l.old = kept.dirs.clone();
        l.new.reserve(l.old.len());
        l
    }

    /// Stores what this walk read or confirmed (and only that: a directory
    /// no longer reached is dropped), replacing the file atomically, and
    /// returns it. Failing to store costs only the next start's speed, so
    /// it is silent.
    pub fn save(self) -> Kept {
        // None read and every stored listing confirmed: the file already
        // holds exactly this.
        let unchanged = self.reads == 0 && self.new.len() == self.old.len();
        if let Some(file) = &self.file
            && !unchanged
        {
            self.write(file);
        }
        Kept {
            // Without a file nothing is cached, so nothing stands for it.
            dirs: if self.file.is_some() {
                Arc::new(self.new)
            } else {
                Arc::default()
            },
            root: self.root,
            wanted: self.wanted,
            hash_names: self.hash_names,
        }
    }

    fn write(&self, file: &Path) {
        let bytes = encode(&self.root, &self.wanted, self.hash_names, &self.new);
        // Inside cage's state directory, never creating it: planning alone
        // (`--dry-run`, before any session) leaves nothing behind.
        let Some(dir) = file.parent() else { return };
        if !dir.parent().is_some_and(Path::is_dir) {
            return;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return,
        }
        let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes));
        if written.is_err() || std::fs::rename(&tmp, file).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// What a walk stored in the cache file, kept in memory for the next walk
/// of the same root by this process ([`Listings::resume`]).
#[derive(Clone, Default)]
pub(crate) struct Kept {
    root: PathBuf,
    wanted: BTreeSet<OsString>,
    hash_names: bool,
    dirs: Arc<Dirs>,
}

impl Kept {
    /// Whether this stands for the cache of a walk of `root` asking about
    /// `wanted`, with names hashed or not.
    pub fn is_for(&self, root: &Path, wanted: &BTreeSet<OsString>, hash_names: bool) -> bool {
        self.root == root && self.wanted == *wanted && self.hash_names == hash_names
    }
}

/// The directories one walk of `root` reached, each with its listing and
/// its parent's index, parents first. The plan's walk of the workspace
/// hands it to the session's watch (`session::watch`), so that a direct
/// session's start walks the workspace once, not twice.
#[derive(Default)]
pub struct Tree {
    pub(crate) root: PathBuf,
    pub(crate) dirs: Vec<TreeDir>,
    /// A directory below the root could not be read: what it holds is
    /// not in the tree.
    pub(crate) incomplete: bool,
    /// What the walk stored, for the end of the session's walk.
    pub(crate) kept: Kept,
}

pub(crate) struct TreeDir {
    pub(crate) path: PathBuf,
    pub(crate) parent: Option<usize>,
    pub(crate) listing: Arc<Listing>,
    /// False where the walk did not go into the subdirectories (a git
    /// directory, whose entries it judges by name).
    pub(crate) entered: bool,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tree({} directories under {:?})",
            self.dirs.len(),
            self.root
        )
    }
}

/// The cache file of the workspace `root` in cage's state directory.
pub(crate) fn cache_file(state_dir: &Path, root: &Path) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(root.as_os_str().as_bytes());
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    state_dir.join("listings").join(name)
}

// The file: MAGIC, the root, the wanted names, then each directory's path,
// key and listing. Every length is a little-endian u32, every number an
// i64/u64; names are raw bytes.

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_names<'a>(out: &mut Vec<u8>, names: impl ExactSizeIterator<Item = &'a OsString>) {
    out.extend_from_slice(&u32::try_from(names.len()).unwrap_or(0).to_le_bytes());
    for n in names {
        put(out, n.as_bytes());
    }
}

fn encode(root: &Path, wanted: &BTreeSet<OsString>, hash_names: bool, dirs: &Dirs) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put(&mut out, root.as_os_str().as_bytes());
    put_names(&mut out, wanted.iter());
    out.push(u8::from(hash_names));
    out.extend_from_slice(&u32::try_from(dirs.len()).unwrap_or(0).to_le_bytes());
    for (path, (key, listing)) in dirs {
        put(&mut out, path.as_bytes());
        for n in [key.dev, key.ino] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for n in [key.ctime.0, key.ctime.1, key.mtime.0, key.mtime.1] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        put_names(&mut out, listing.subdirs.iter());
        put_names(&mut out, listing.sockets.iter());
        put_names(&mut out, listing.names.iter());
        out.extend_from_slice(
            &u32::try_from(listing.hashes.len())
                .unwrap_or(0)
                .to_le_bytes(),
        );
        for h in &listing.hashes {
            out.extend_from_slice(&h.to_le_bytes());
        }
    }
    out
}

/// A reader over the file's bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_le_bytes(b.try_into().ok()?)).ok()
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n)
    }
    fn hashes(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()?;
        let bytes = self.take(n.checked_mul(8)?)?;
        let hashes: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        // Sorted, as `had` searches them.
        hashes.is_sorted().then_some(hashes)
    }
    fn names(&mut self) -> Option<Vec<OsString>> {
        let n = self.u32()?;
        // Each name takes at least its length's four bytes.
        if n > self.0.len() / 4 {
            return None;
        }
        (0..n)
            .map(|_| Some(OsString::from_vec(self.bytes()?.to_vec())))
            .collect()
    }
}

fn decode(
    bytes: &[u8],
    root: &Path,
    wanted: &BTreeSet<OsString>,
    hash_names: bool,
) -> Option<Dirs> {
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    if r.bytes()? != root.as_os_str().as_bytes() {
        return None;
    }
    if r.names()?.into_iter().collect::<BTreeSet<_>>() != *wanted {
        return None;
    }
    if r.take(1)? != [u8::from(hash_names)] {
        return None;
    }
    let count = r.u32()?;
    let mut dirs = HashMap::with_capacity(count.min(bytes.len() / 64));
    for _ in 0..count {
        let path = OsStr::from_bytes(r.bytes()?).to_os_string();
        let key = Key {
            dev: r.u64()?,
            ino: r.u64()?,
            ctime: (r.i64()?, r.i64()?),
            mtime: (r.i64()?, r.i64()?),
        };
        let listing = Listing {
            subdirs: r.names()?,
            sockets: r.names()?,
            names: r.names()?.into_iter().collect(),
            hashes: r.hashes()?,
        };
        dirs.insert(path, (key, Arc::new(listing)));
    }
    r.0.is_empty().then_some(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> BTreeSet<OsString> {
        [".envrc", "HEAD"].into_iter().map(OsString::from).collect()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cage-listing-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        d
    }

    #[test]
    fn the_file_round_trips_and_damage_reads_as_empty() {
        let root = Path::new("/w");
        let listing = Listing {
            subdirs: vec!["a".into(), OsString::from_vec(vec![0xff, b'x'])],
            sockets: vec!["s".into()],
            names: [OsString::from(".envrc")].into_iter().collect(),
            hashes: vec![1, 5, 9],
        };
        let key = Key {
            dev: 1,
            ino: 2,
            ctime: (3, 4),
            mtime: (5, 6),
        };
        let dirs: Dirs = [(OsString::from("/w/a"), (key, Arc::new(listing)))]
            .into_iter()
            .collect();
        let bytes = encode(root, &wanted(), true, &dirs);
        assert_eq!(decode(&bytes, root, &wanted(), true), Some(dirs));
        for n in 0..bytes.len() {
            assert!(
                decode(&bytes[..n], root, &wanted(), true).is_none(),
                "cut at {n}"
            );
        }
        assert!(decode(&bytes, Path::new("/other"), &wanted(), true).is_none());
        assert!(decode(&bytes, root, &BTreeSet::new(), true).is_none());
        assert!(decode(&bytes, root, &wanted(), false).is_none());
    }

    /// Waits, writing probes in `root`, until the clock has moved past the
    /// tick of `dir`'s ctime (what RACY is for), so that a change to `dir`
    /// now moves its ctime.
    fn past_ctime_of(root: &Path, dir: &Path) {
        let stored = Key::of(&dir.symlink_metadata().unwrap_or_else(|e| panic!("{e}"))).ctime;
        let probe = root.join("probe");
        for _ in 0..10_000 {
            std::fs::write(&probe, "").unwrap_or_else(|e| panic!("{e}"));
            let m = probe.symlink_metadata().unwrap_or_else(|e| panic!("{e}"));
            if Key::of(&m).ctime > stored {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_unchanged_directory_is_not_read_again_and_a_changed_one_is() {
        let root = tmp("reuse");
        let sub = root.join("sub");
        std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("{e}"));
        let file = root.join("cache");
        let mut l = Listings::open_with(Some(&file), &root, wanted(), false);
        // Every directory is too recent to store: nothing is cached.
        l.list(&sub).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.reads, 1);
        // Stored as if the walk had started long after (the racy window
        // is the clock's, not the test's).
        l.cutoff = (i64::MAX, 0);
        l.list(&sub).unwrap_or_else(|e| panic!("{e}"));
        l.save();
        let mut l = Listings::open_with(Some(&file), &root, wanted(), false);
        let got = l.list(&sub).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((l.reads, got.names.len()), (0, 0), "reused");
        // Past the stored ctime's clock tick (what RACY is for), then a
        // protected name appears.
        past_ctime_of(&root, &sub);
        std::fs::write(sub.join(".envrc"), "").unwrap_or_else(|e| panic!("{e}"));
        let mut l = Listings::open_with(Some(&file), &root, wanted(), false);
        let got = l.list(&sub).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.reads, 1, "read again: its ctime moved");
        assert!(got.names.contains(OsStr::new(".envrc")));
        let _ = std::fs::remove_dir_all(&root);
    }

    /// What a walk kept in memory stands for the file, and is checked the
    /// same way: a directory changed since is read again.
    #[test]
    fn a_kept_walk_is_checked_like_the_file() {
        let root = tmp("kept");
        let (a, b) = (root.join("a"), root.join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap_or_else(|e| panic!("{e}"));
        }
        let file = root.join("cache");
        let mut l = Listings::open_with(Some(&file), &root, wanted(), true);
        l.cutoff = (i64::MAX, 0);
        for d in [&a, &b] {
            l.list(d).unwrap_or_else(|e| panic!("{e}"));
        }
        let kept = l.save();
        assert!(kept.is_for(&root, &wanted(), true));
        assert!(!kept.is_for(&root, &wanted(), false));
        past_ctime_of(&root, &a);
        std::fs::write(a.join(".envrc"), "").unwrap_or_else(|e| panic!("{e}"));
        // The file is gone: only what was kept can stand for it.
        std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
        let mut l = Listings::resume(Some(&file), &kept);
        let got = l.list(&a).unwrap_or_else(|e| panic!("{e}"));
        assert!(got.names.contains(OsStr::new(".envrc")));
        l.list(&b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.reads, 1, "only the changed directory is read");
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A root swapped for another directory once the listings are open (an
    /// agent left running could, before the end's rescan) reads as changed:
    /// each directory is checked by its path, not through an opened root,
    /// which would still show the tree that was moved away.
    #[test]
    fn a_root_swapped_after_the_start_is_read_again() {
        let base = tmp("swap");
        let root = base.join("w");
        let sub = root.join("sub");
        std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
        let file = base.join("cache");
        let mut l = Listings::open_with(Some(&file), &root, wanted(), true);
        l.cutoff = (i64::MAX, 0);
        l.list(&sub).unwrap_or_else(|e| panic!("{e}"));
        let kept = l.save();
        let mut l = Listings::resume(Some(&file), &kept);
        std::fs::rename(&root, base.join("moved")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(sub.join(".envrc"), "").unwrap_or_else(|e| panic!("{e}"));
        let got = l.list(&sub).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            got.names.contains(OsStr::new(".envrc")),
            "the new tree is read"
        );
        assert_eq!(l.reads, 1);
        let _ = std::fs::remove_dir_all(&base);
    }
}
