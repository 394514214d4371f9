//! What a direct session changed on the host, seen as it happens rather
//! than found by walking every file twice (issue 16 item 1).
//!
//! Before the cage starts, [`Watch::start`] puts an inotify watch on every
//! directory of the workspace and the writable grants. The workspace's
//! directories, and the names each holds (hashed), come from the plan's
//! walk for protected paths, which a direct session makes keep them
//! (`plan::listing::Tree`); below the git directories that walk does not
//! enter, and in the writable grants, the watch finds them itself through
//! the listing cache (`plan::listing`, its own file per root). Either way
//! a directory unchanged since the last session costs one `lstat` and one
//! `inotify_add_watch`, and no file is visited at all. Once the supervisor may run threads, one thread
//! drains the events ([`Watch::drain_in_background`]), so the kernel's
//! queue (16384 events by default) does not overflow while the agent works.
//! At the end, [`Watch::finish`] turns what the events name into the same
//! `files_changed` record the snapshot gave, looking only at those paths,
//! and says which paths the end's scan for hidden changes must look at.
//!
//! What it can miss, and what then happens:
//! - the queue overflowed, or a watch could not be added mid-way: the
//!   record says it is partial and the hidden-change scan walks everything;
//! - watches cannot be set up at all (the per-user limit,
//!   `fs.inotify.max_user_watches`, is reached): the caller falls back to
//!   the metadata snapshot, which walks every file;
//! - a file written through a hard link whose other name lies outside the
//!   watched trees: not seen (nor was it by the snapshot's walk of names).
//!
//! The watches are spread over one inotify instance per CPU (up to
//! [`MAX_SHARDS`]) when there are many: the kernel adds a directory's watch
//! under its instance's lock, marking every cached entry of the directory,
//! so one instance adds them one at a time. At the end the instances are
//! closed on a thread of their own ([`Watch::stop`]): closing one waits for
//! the kernel's SRCU grace period, which the end's scans need not wait for.
//!
//! A directory created or moved in during the session is not watched: it
//! is walked at the end, and everything in it is new there. A directory
//! moved away takes its watch along; events under it after the move are
//! dropped, and the move itself is seen in its old parent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::audit::FilesChanged;
use crate::plan::listing::{Listing, Listings, Tree};

use super::snapshot::MAX_ENTRIES;

/// What each directory's watch reports: its entries' creation, removal,
/// renames, writes and metadata changes, and its own move or removal.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW
}

/// A file's mtime may lag the clock read before the watch by up to a tick
/// of the filesystem's timestamp (the kernel's coarse clock).
const FILE_CLOCK_LAG: Duration = Duration::from_millis(20);

/// One watched directory.
struct Dir {
    path: PathBuf,
    /// Its parent's watch (`None` for a root).
    parent: Option<Wd>,
    /// Its names when the watch was set.
    listing: Arc<Listing>,
}

/// What the events said of one name in one watched directory.
#[derive(Clone, Copy, Default)]
struct Seen {
    /// Created, or moved in (over an old name or not).
    created: bool,
    modified: bool,
    closed_written: bool,
    attrib: bool,
    /// A directory created or moved in: walked at the end.
    new_dir: bool,
}

/// A watch: its instance's index among the shards, and its descriptor
/// there.
type Wd = (usize, WatchDescriptor);

#[derive(Default)]
struct Events {
    seen: HashMap<(Wd, OsString), Seen>,
    /// Watched directories moved away: events under them name paths that
    /// no longer hold what they name.
    moved: BTreeSet<Wd>,
    /// Events were dropped: the kernel's queue overflowed, or more names
    /// changed than [`MAX_ENTRIES`].
    lost: bool,
}

impl Events {
    /// Reads what every instance has queued.
    fn take(&mut self, shards: &[Inotify]) {
        for (shard, inotify) in shards.iter().enumerate() {
            self.take_one(shard, inotify);
        }
    }

    fn take_one(&mut self, shard: usize, inotify: &Inotify) {
        loop {
            match inotify.read_events() {
                Ok(events) if !events.is_empty() => {
                    for e in events {
                        self.add(shard, e);
                    }
                }
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    self.lost = true;
                    return;
                }
            }
        }
    }

    fn add(&mut self, shard: usize, e: nix::sys::inotify::InotifyEvent) {
        let m = e.mask;
        if m.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            self.lost = true;
            return;
        }
        let Some(name) = e.name else {
            if m.contains(AddWatchFlags::IN_MOVE_SELF) {
                self.moved.insert((shard, e.wd));
            }
            return;
        };
        let key = ((shard, e.wd), name);
        // Bounded as the snapshot is: past it the record is partial (and
        // the scan for hidden changes walks everything).
        if self.seen.len() >= MAX_ENTRIES && !self.seen.contains_key(&key) {
            self.lost = true;
            return;
        }
        let s = self.seen.entry(key).or_default();
        let is_dir = m.contains(AddWatchFlags::IN_ISDIR);
        if m.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO) {
            s.created = true;
            s.new_dir |= is_dir;
        }
        s.modified |= m.contains(AddWatchFlags::IN_MODIFY);
        s.closed_written |= m.contains(AddWatchFlags::IN_CLOSE_WRITE);
        s.attrib |= m.contains(AddWatchFlags::IN_ATTRIB);
    }
}

/// How the events are being read.
enum Drain {
    /// Not yet: they wait in the kernel's queue.
    Queued,
    /// By a thread, until `stop` is written to.
    Running(OwnedFd, std::thread::JoinHandle<()>),
}

/// The watches of one session.
pub struct Watch {
    /// The instances, until [`Watch::stop`] hands them to `closing`.
    shards: Arc<Vec<Inotify>>,
    closing: Option<std::thread::JoinHandle<()>>,
    events: Arc<Mutex<Events>>,
    drain: Mutex<Option<Drain>>,
    dirs: HashMap<Wd, Dir>,
    roots: Vec<PathBuf>,
    skip: Vec<PathBuf>,
    started: SystemTime,
    /// A directory could not be watched: what happens in it is unseen.
    incomplete: bool,
}

/// What the end of the session needs from the watch.
pub struct Outcome {
    pub changed: FilesChanged,
    /// The paths the hidden-change scan must look at (entries created or
    /// changed, and directories created, to walk whole); `None`: look at
    /// everything, the watch missed something.
    pub focus: Option<Focus>,
}

/// Where the session changed anything, relative to the workspace.
#[derive(Debug, Default)]
pub struct Focus {
    /// Entries created or changed.
    pub entries: BTreeSet<PathBuf>,
    /// Directories created or moved in: everything in them is new.
    pub whole: BTreeSet<PathBuf>,
}

impl Watch {
    /// Watches every directory under `roots` (links not followed, `skip`
    /// not entered), finding them and their names through the listing
    /// caches in `cache_dir`. Call while single-threaded. Fails when the
    /// trees hold fewer than `smallest` entries (walking them costs less:
    /// [`SMALL`]), when inotify cannot be had or the watch limit is
    /// reached: the caller then takes the snapshot.
    ///
    /// A root that `tree` walked already (the plan's walk of the
    /// workspace) is not walked again: its directories are taken from the
    /// tree, and only those below the ones the tree did not enter (git
    /// directories) are found here.
    pub fn start(
        roots: &[PathBuf],
        skip: &[PathBuf],
        cache_dir: &Path,
        smallest: usize,
        tree: Option<&Tree>,
    ) -> Result<Watch, NotWatched> {
        Watch::start_sharded(roots, skip, cache_dir, smallest, tree, None)
    }

    /// [`Watch::start`], over `shards` instances if given, else as many as
    /// [`shards_for`] says.
    fn start_sharded(
        roots: &[PathBuf],
        skip: &[PathBuf],
        cache_dir: &Path,
        smallest: usize,
        tree: Option<&Tree>,
        shards: Option<usize>,
    ) -> Result<Watch, NotWatched> {
        let started = SystemTime::now();
        let mut roots: Vec<PathBuf> = roots.to_vec();
        roots.sort();
        roots.dedup_by(|b, a| b.starts_with(a));
        // 1. Every directory, with its names, before the agent runs.
        let mut found = Vec::new();
        let mut incomplete = false;
        for root in &roots {
            let file = crate::plan::listing::cache_file(cache_dir, root).with_extension("tree");
            let mut listings = Listings::open_hashed(Some(&file), root);
            let result = match tree {
                Some(t) if t.root == *root && !t.dirs.is_empty() => {
                    from_tree(t, skip, &mut listings, &mut found, &mut incomplete)
                }
                _ => collect(
                    vec![(root.clone(), None)],
                    skip,
                    &mut listings,
                    &mut found,
                    &mut incomplete,
                ),
            };
            listings.save();
            result.map_err(NotWatched::Failed)?;
        }
        let names: usize = found.iter().map(|f| f.listing.hashes.len()).sum();
        if names < smallest {
            return Err(NotWatched::Small);
        }
        // 2. A watch on each: the directories in runs, a run to each
        //    instance, added side by side.
        let total = found.len();
        let count = shards
            .unwrap_or_else(|| shards_for(total))
            .clamp(1, MAX_SHARDS);
        let instances = (0..count)
            .map(|_| Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NotWatched::Failed(format!("inotify_init1: {e}")))?;
        let run = total.div_ceil(count).max(1);
        let added = add_watches(&instances, &found, run);
        let mut wds: Vec<Option<Wd>> = Vec::with_capacity(total);
        let mut dirs = HashMap::with_capacity(total);
        for (i, (f, result)) in found.into_iter().zip(added).enumerate() {
            let parent = f.parent.and_then(|p| wds[p]);
            match result {
                Ok(wd) => {
                    let wd = (i / run, wd);
                    wds.push(Some(wd));
                    dirs.insert(
                        wd,
                        Dir {
                            path: f.path,
                            parent,
                            listing: f.listing,
                        },
                    );
                }
                Err(nix::errno::Errno::ENOSPC) => {
                    return Err(NotWatched::Failed(format!(
                        "the inotify watch limit (fs.inotify.max_user_watches) was reached at \
                         directory {} of {total} (raise it: sudo sysctl -w \
                         fs.inotify.max_user_watches=524288)",
                        i + 1
                    )));
                }
                // Gone, or a link now: seen from its parent.
                Err(_) if f.parent.is_some() => {
                    incomplete = true;
                    wds.push(None);
                }
                Err(e) => {
                    return Err(NotWatched::Failed(format!(
                        "inotify_add_watch {}: {e}",
                        f.path.display()
                    )));
                }
            }
        }
        Ok(Watch {
            shards: Arc::new(instances),
            closing: None,
            events: Arc::default(),
            drain: Mutex::new(Some(Drain::Queued)),
            dirs,
            roots,
            skip: skip.to_vec(),
            started,
            incomplete,
        })
    }

    /// From here on a thread reads the events as they come. Call once the
    /// supervisor may run threads.
    pub fn drain_in_background(&self) {
        let mut drain = self.drain.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*drain, Some(Drain::Queued)) {
            return;
        }
        let Ok((stop_read, stop_write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            return;
        };
        let (shards, events) = (Arc::clone(&self.shards), Arc::clone(&self.events));
        let thread = std::thread::Builder::new()
            .name("cage-watch".into())
            .spawn(move || read_until_stopped(&shards, &events, &stop_read));
        if let Ok(handle) = thread {
            *drain = Some(Drain::Running(stop_write, handle));
        }
    }

    /// Once the cage is gone: reads the last events and closes the
    /// instances on a thread, which [`Watch::finish`] joins. Closing waits
    /// for the kernel's SRCU grace period (about 13 ms here); the end's
    /// scans run meanwhile. Changes made after this are not seen.
    pub fn stop(&mut self) {
        // Stopped already: the instances are gone (there is always one).
        if self.shards.is_empty() {
            return;
        }
        if let Some(Drain::Running(stop, handle)) =
            self.drain.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = nix::unistd::write(&stop, b"x");
            let _ = handle.join();
        }
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(&self.shards);
        let shards = std::mem::take(&mut self.shards);
        // Without a thread, the instances close here, as the closure drops.
        let closing = std::thread::Builder::new()
            .name("cage-unwatch".into())
            .spawn(move || drop(shards));
        self.closing = closing.ok();
    }

    /// The session's changes, once the cage is gone.
    pub fn finish(mut self) -> Outcome {
        self.stop();
        let events = std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()));
        let outcome = self.judge(&events);
        if let Some(closing) = self.closing.take() {
            let _ = closing.join();
        }
        outcome
    }

    /// Whether `wd`, or a directory above it, was moved away.
    fn moved(&self, wd: Wd, moved: &BTreeSet<Wd>) -> bool {
        let mut at = Some(wd);
        while let Some(w) = at {
            if moved.contains(&w) {
                return true;
            }
            at = self.dirs.get(&w).and_then(|d| d.parent);
        }
        false
    }

    fn judge(&self, events: &Events) -> Outcome {
        let since = self.started - FILE_CLOCK_LAG;
        let mut changes: BTreeMap<PathBuf, &'static str> = BTreeMap::new();
        let mut whole = BTreeSet::new();
        let mut entries = BTreeSet::new();
        for ((wd, name), s) in &events.seen {
            let Some(dir) = self.dirs.get(wd) else {
                continue;
            };
            // Its new place, if watched, saw it moved in (and walks it).
            if self.moved(*wd, &events.moved) {
                continue;
            }
            let path = dir.path.join(name);
            if self.skip.iter().any(|k| path.starts_with(k)) {
                continue;
            }
            let had = dir.listing.had(name);
            let now = path.symlink_metadata().ok();
            let change = match (had, &now) {
                (false, None) => None,
                (false, Some(m)) => {
                    if m.is_dir() && s.new_dir {
                        whole.insert(path.clone());
                    }
                    Some("added")
                }
                (true, None) => Some("deleted"),
                (true, Some(m)) => {
                    if m.is_dir() && s.new_dir {
                        whole.insert(path.clone());
                    }
                    let written =
                        s.modified || (s.closed_written && m.modified().is_ok_and(|t| t >= since));
                    // A directory's times move with its entries, which are
                    // listed themselves.
                    if !m.is_dir() && (s.created || written) {
                        Some("modified")
                    } else if s.attrib {
                        Some("mode")
                    } else {
                        None
                    }
                }
            };
            if let Some(c) = change {
                if now.is_some() {
                    entries.insert(path.clone());
                }
                changes.insert(path, c);
            }
        }
        // What new directories hold is new too.
        let mut complete = !events.lost && !self.incomplete;
        for dir in &whole {
            complete &= walk_new(dir, &mut changes);
        }
        let out = super::snapshot::tally(
            self.roots.clone(),
            complete,
            changes.iter().map(|(p, c)| (p.as_path(), *c)),
        );
        let focus = complete.then_some(Focus { entries, whole });
        Outcome {
            changed: out,
            focus,
        }
    }
}

/// Why a session is walked instead of watched.
#[derive(Debug)]
pub enum NotWatched {
    /// Fewer entries than [`SMALL`]: walking costs less.
    Small,
    /// The watch could not be set up, and why.
    Failed(String),
}

/// Trees with fewer entries than this are walked at both ends instead of
/// watched: closing an inotify instance waits for the kernel's SRCU grace
/// period (about 13 ms measured here, whatever the number of watches),
/// while the snapshot's walks cost about 1.5 µs an entry.
pub const SMALL: usize = 10_000;

/// The most inotify instances a session's watches are spread over.
const MAX_SHARDS: usize = 4;

/// Directories per instance below which one instance adds them all: a
/// thread costs more than a few hundred watches.
const SHARD_FROM: usize = 512;

/// How many instances `dirs` directories are spread over: one per CPU,
/// each with at least [`SHARD_FROM`] of them.
fn shards_for(dirs: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.min(dirs / SHARD_FROM).clamp(1, MAX_SHARDS)
}

/// Adds a watch for each of `found`, the `i`-th by instance `i / run`,
/// each instance's run on a thread of its own; joined before it returns,
/// so the caller is single-threaded again. The threads allocate nothing.
fn add_watches(
    instances: &[Inotify],
    found: &[Found],
    run: usize,
) -> Vec<nix::Result<WatchDescriptor>> {
    let mut added: Vec<nix::Result<WatchDescriptor>> =
        vec![Err(nix::errno::Errno::EINVAL); found.len()];
    let add = |inotify: &Inotify, dirs: &[Found], out: &mut [nix::Result<WatchDescriptor>]| {
        for (f, slot) in dirs.iter().zip(out) {
            *slot = inotify.add_watch(&f.path, mask());
        }
    };
    if instances.len() == 1 {
        add(&instances[0], found, &mut added);
        return added;
    }
    std::thread::scope(|scope| {
        for ((inotify, dirs), out) in instances
            .iter()
            .zip(found.chunks(run))
            .zip(added.chunks_mut(run))
        {
            scope.spawn(move || add(inotify, dirs, out));
        }
    });
    added
}

/// A directory found for watching, and its parent's index among them.
struct Found {
    path: PathBuf,
    parent: Option<usize>,
    listing: Arc<Listing>,
}

/// The directories of `tree` into `found`, less those under `skip`, then,
/// through `listings`, every directory below those the tree did not enter.
/// The tree's listings were read (or confirmed by `lstat`) by the plan's
/// walk, moments before; like a change between this walk and the watches
/// being added, a change between the two is not seen. Either is the
/// host's: the agent does not run yet.
fn from_tree(
    tree: &Tree,
    skip: &[PathBuf],
    listings: &mut Listings,
    found: &mut Vec<Found>,
    incomplete: &mut bool,
) -> Result<(), String> {
    *incomplete |= tree.incomplete;
    // Each tree directory's index in `found`; none where it is left out.
    let mut at: Vec<Option<usize>> = Vec::with_capacity(tree.dirs.len());
    let mut below = Vec::new();
    for d in &tree.dirs {
        let parent = d.parent.and_then(|p| at[p]);
        let left_out = d.parent.is_some() && parent.is_none();
        if left_out || skip.iter().any(|s| d.path.starts_with(s)) {
            at.push(None);
            continue;
        }
        if found.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} directories"));
        }
        let me = found.len();
        at.push(Some(me));
        if !d.entered {
            below.extend(d.listing.subdirs.iter().map(|s| (d.path.join(s), Some(me))));
        }
        found.push(Found {
            path: d.path.clone(),
            parent,
            listing: d.listing.clone(),
        });
    }
    below.retain(|(p, _)| !skip.iter().any(|s| p.starts_with(s)));
    collect(below, skip, listings, found, incomplete)
}

/// Every directory from `stack` down, depth first, into `found`; a root
/// (no parent) that cannot be listed fails the walk.
fn collect(
    mut stack: Vec<(PathBuf, Option<usize>)>,
    skip: &[PathBuf],
    listings: &mut Listings,
    found: &mut Vec<Found>,
    incomplete: &mut bool,
) -> Result<(), String> {
    while let Some((path, parent)) = stack.pop() {
        if found.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} directories"));
        }
        let listing = match listings.list(&path) {
            Ok(l) => l,
            // Unreadable: what happens in it is unseen.
            Err(_) if parent.is_some() => {
                *incomplete = true;
                continue;
            }
            Err(e) => return Err(format!("listing {}: {e}", path.display())),
        };
        let me = found.len();
        for sub in &listing.subdirs {
            let sub = path.join(sub);
            if !skip.iter().any(|s| sub.starts_with(s)) {
                stack.push((sub, Some(me)));
            }
        }
        found.push(Found {
            path,
            parent,
            listing,
        });
    }
    Ok(())
}

impl Focus {
    /// The focus relative to `workspace`, leaving out what lies outside it
    /// (the writable grants).
    pub fn within(&self, workspace: &Path) -> Focus {
        let rel = |set: &BTreeSet<PathBuf>| {
            set.iter()
                .filter_map(|p| p.strip_prefix(workspace).ok())
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .collect()
        };
        Focus {
            entries: rel(&self.entries),
            whole: rel(&self.whole),
        }
    }
}

/// Everything under the new directory `dir`, as added; false when the
/// bound cut it short.
fn walk_new(dir: &Path, into: &mut BTreeMap<PathBuf, &'static str>) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if into.len() >= MAX_ENTRIES {
                return false;
            }
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            into.insert(path, "added");
        }
    }
    true
}

/// The drain thread: reads events as they come until `stop` is readable.
fn read_until_stopped(shards: &[Inotify], events: &Mutex<Events>, stop: &OwnedFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut fds: Vec<PollFd> = std::iter::once(stop.as_fd())
            .chain(shards.iter().map(|i| i.as_fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let stopped = fds[0].any().unwrap_or(true);
        events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(shards);
        if stopped {
            return;
        }
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fds: Vec<i32> = self.shards.iter().map(|i| i.as_fd().as_raw_fd()).collect();
        write!(
            f,
            "Watch({} directories, inotify fds {fds:?})",
            self.dirs.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cage-watch-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        d
    }

    fn changes(root: &Path, o: &Outcome) -> Vec<(String, String)> {
        o.changed
            .paths
            .iter()
            .map(|p| {
                let rel = p.path.strip_prefix(root).unwrap_or(&p.path);
                (rel.display().to_string(), p.change.clone())
            })
            .collect()
    }

    fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Each kind of change is told apart as the snapshot told it, an edit
    /// by rename (as `sed -i` and editors make it) is a modification, not
    /// an addition, and reading changes nothing. With `walked`, the watch
    /// starts from the plan's walk, which does not enter git directories.
    fn every_kind(drained: bool, shards: usize, walked: bool) {
        let base = tmp(&format!("kinds-{drained}-{shards}-{walked}"));
        let (root, cache) = (base.join("ws"), base.join("state"));
        fs::create_dir_all(root.join("sub/deep")).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(root.join("skipped")).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("{e}"));
        for f in [
            "same",
            "edit",
            "gone",
            "chmod",
            "renamed",
            "sub/deep/f",
            "moved/x",
            "repo/.git/HEAD",
            "repo/.git/objects/ab/obj",
        ] {
            if let Some(p) = root.join(f).parent() {
                fs::create_dir_all(p).unwrap_or_else(|e| panic!("{e}"));
            }
            fs::write(root.join(f), "x").unwrap_or_else(|e| panic!("{e}"));
        }
        let skip = [root.join("skipped")];
        let tree = walked.then(|| {
            let scan = crate::plan::protect_scan(&root, &[], None, None, true);
            let tree = scan.tree.unwrap_or_else(|| panic!("no tree"));
            assert!(
                tree.dirs
                    .iter()
                    .all(|d| !d.path.starts_with(root.join("repo/.git/objects"))),
                "the walk entered the git directory"
            );
            tree
        });
        let mut w = Watch::start_sharded(
            std::slice::from_ref(&root),
            &skip,
            &cache,
            0,
            tree.as_ref(),
            Some(shards),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(w.shards.len(), shards);
        if drained {
            w.drain_in_background();
        }
        let _ = fs::read(root.join("same"));
        fs::write(root.join("edit"), "longer").unwrap_or_else(|e| panic!("{e}"));
        fs::remove_file(root.join("gone")).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(root.join("chmod"), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("renamed.tmp"), "new").unwrap_or_else(|e| panic!("{e}"));
        fs::rename(root.join("renamed.tmp"), root.join("renamed"))
            .unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("sub/deep/new"), "n").unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(root.join("made/inner")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("made/inner/file"), "n").unwrap_or_else(|e| panic!("{e}"));
        fs::rename(root.join("moved"), root.join("sub/moved")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("sub/moved/y"), "n").unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("skipped/noise"), "n").unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("repo/.git/objects/ab/new"), "n").unwrap_or_else(|e| panic!("{e}"));
        w.stop();
        // After the stop: not the session's.
        fs::write(root.join("same"), "late").unwrap_or_else(|e| panic!("{e}"));
        let o = w.finish();
        assert_eq!(
            changes(&root, &o),
            pairs(&[
                ("chmod", "mode"),
                ("edit", "modified"),
                ("gone", "deleted"),
                ("made", "added"),
                ("made/inner", "added"),
                ("made/inner/file", "added"),
                ("moved", "deleted"),
                ("renamed", "modified"),
                ("repo/.git/objects/ab/new", "added"),
                ("sub/deep/new", "added"),
                ("sub/moved", "added"),
                ("sub/moved/x", "added"),
                ("sub/moved/y", "added"),
            ])
        );
        assert!(o.changed.complete);
        let focus = o
            .focus
            .unwrap_or_else(|| panic!("a complete watch has a focus"));
        let rel = focus.within(&root);
        assert!(rel.entries.contains(Path::new("sub/deep/new")), "{rel:?}");
        assert!(rel.whole.contains(Path::new("made")), "{rel:?}");
        assert!(!rel.entries.contains(Path::new("same")), "{rel:?}");
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn changes_are_told_apart_from_the_queued_events() {
        every_kind(false, 1, false);
    }

    #[test]
    fn changes_are_told_apart_when_a_thread_drains_them() {
        every_kind(true, 1, false);
    }

    /// Spread over instances, each directory's events still name it: the
    /// directories fall in different runs (the root, `sub`, `sub/deep`,
    /// `moved`), one instance each.
    #[test]
    fn changes_are_told_apart_over_several_instances() {
        every_kind(false, 3, false);
        every_kind(true, 4, false);
    }

    /// Started from the plan's walk, the watch still sees every kind of
    /// change, under the git directories the walk did not enter too, and
    /// leaves out what it skips though the walk went there.
    #[test]
    fn changes_are_told_apart_from_the_plans_walk() {
        every_kind(false, 1, true);
        every_kind(true, 3, true);
    }

    /// More events than the kernel queues (16384 by default), with no
    /// thread draining them: the record says it is partial, and there is
    /// no focus, so the scan for hidden changes walks everything.
    #[test]
    fn an_overflowed_queue_makes_the_record_partial_and_drops_the_focus() {
        let base = tmp("overflow");
        let (root, cache) = (base.join("ws"), base.join("state"));
        fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("{e}"));
        let w = Watch::start(std::slice::from_ref(&root), &[], &cache, 0, None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let queued = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(16384);
        // Each new file is two events (create, close after writing).
        for i in 0..queued / 2 + 100 {
            fs::write(root.join(format!("f{i}")), "x").unwrap_or_else(|e| panic!("{e}"));
        }
        let o = w.finish();
        assert!(!o.changed.complete);
        assert!(o.focus.is_none());
        let _ = fs::remove_dir_all(&base);
    }

    /// A name added on the host between two sessions counts as there at
    /// the second one's start (its directory's listing is read again, or
    /// found unchanged in the cache): changing it is a modification.
    #[test]
    fn a_name_added_between_sessions_is_known_at_the_next_start() {
        let base = tmp("cache");
        let (root, cache) = (base.join("ws"), base.join("state"));
        fs::create_dir_all(root.join("a")).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("{e}"));
        let first = Watch::start(std::slice::from_ref(&root), &[], &cache, 0, None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(first.dirs.len(), 2);
        drop(first.finish());
        fs::write(root.join("a/between"), "host").unwrap_or_else(|e| panic!("{e}"));
        let second = Watch::start(std::slice::from_ref(&root), &[], &cache, 0, None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        fs::write(root.join("a/between"), "agent").unwrap_or_else(|e| panic!("{e}"));
        let o = second.finish();
        assert_eq!(changes(&root, &o), pairs(&[("a/between", "modified")]));
        let _ = fs::remove_dir_all(&base);
    }
}
