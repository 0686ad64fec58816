//! Whether anything under a directory tree changed since it was last listed, so a listing of thousands of files
//! (the data server's inventory, the sync coordinator's held files) is rebuilt only when something changed.
//!
//! [`TreeWatch`] is Linux inotify, non-blocking and without a thread: the kernel queues an event inside the system
//! call that changes a file, so draining the queue before reusing a listing sees every change made before that
//! moment. [`Listings`] keeps, per key, whether its tree was touched since its listing was built, and decides with
//! the pure [`freshness`] whether the listing may be reused. A listing is rebuilt in full when its tree changed,
//! when the kernel's queue overflowed, when a directory could not be watched (out of inotify watches:
//! `fs.inotify.max_user_watches`), when the tree is on a network filesystem (another host's writes raise no event
//! here), when a caller-given expiry passed (a file waiting to settle), and at least every [`MAX_REUSE`] whatever
//! the kernel said. Without inotify at all everything is listed in full every time, as before this module.
//!
//! It also notes files renamed into a watched directory (`IN_MOVED_TO`) and not written since: a writer that
//! publishes by rename has finished the file, which the data server uses to offer it before it has settled.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::hash::Hash;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The longest a listing is reused without being rebuilt, even when no event said its tree changed.
pub const MAX_REUSE: Duration = Duration::from_secs(300);

/// Events that change what a listing would show (reads raise none of them).
const MASK: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_DONT_FOLLOW;

/// What one drain of the queue found.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// The queue overflowed or a directory moved: every listing is stale (and the watches were reset).
    pub everything: bool,
    /// Watched directories with an event (a file in them, or the directory itself).
    pub dirs: HashSet<PathBuf>,
    /// Files renamed into a watched directory and not written after, in this drain.
    pub published: HashSet<PathBuf>,
    /// Files written, created or removed in this drain (a file published earlier and written now is not final).
    pub written: HashSet<PathBuf>,
}

impl Changes {
    /// True when the tree at `root` is touched by these changes.
    pub fn touches(&self, root: &Path) -> bool {
        self.everything || self.dirs.iter().any(|dir| dir.starts_with(root))
    }
}

/// Why a directory is not watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchError {
    /// It does not exist (or is not a directory): nothing to watch, nothing to say.
    Missing,
    /// It exists but cannot be watched; the text says why.
    Failed(String),
}

/// One inotify instance watching directories; see the module doc.
#[derive(Debug)]
pub struct TreeWatch {
    fd: OwnedFd,
    dirs: HashMap<i32, PathBuf>,
    watched: HashSet<PathBuf>,
    /// Bumped whenever the watches are reset: a listing built under an older epoch has lost its watches.
    epoch: u64,
}

impl TreeWatch {
    /// A new inotify instance, or why none could be made (`fs.inotify.max_user_instances`, no inotify).
    pub fn new() -> Result<TreeWatch, String> {
        Ok(TreeWatch {
            fd: new_inotify()?,
            dirs: HashMap::new(),
            watched: HashSet::new(),
            epoch: 0,
        })
    }

    /// Which set of watches is in force (see [`Changes::everything`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Watches `dir` (not its subdirectories: add each one as the walk reaches it, before listing it). Adding a
    /// watched directory again costs nothing.
    pub fn watch_dir(&mut self, dir: &Path) -> Result<(), WatchError> {
        if self.watched.contains(dir) {
            return Ok(());
        }
        let c_path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| WatchError::Failed(format!("{} has a NUL byte", dir.display())))?;
        // SAFETY: a valid C string and our own descriptor.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c_path.as_ptr(), MASK) };
        if wd < 0 {
            let error = std::io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) => WatchError::Missing,
                Some(libc::ENOSPC) => WatchError::Failed(format!(
                    "cannot watch {}: out of inotify watches (raise fs.inotify.max_user_watches)",
                    dir.display()
                )),
                _ => WatchError::Failed(format!("cannot watch {}: {error}", dir.display())),
            });
        }
        self.dirs.insert(wd, dir.to_path_buf());
        self.watched.insert(dir.to_path_buf());
        Ok(())
    }

    /// Drains every queued event (never blocks).
    pub fn drain(&mut self) -> Changes {
        let mut changes = Changes::default();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: reads into a buffer we own, at most its length.
            let read = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if read <= 0 {
                break;
            }
            self.parse(&buffer[..read as usize], &mut changes);
        }
        if changes.everything {
            self.reset();
        }
        changes
    }

    fn parse(&mut self, mut bytes: &[u8], changes: &mut Changes) {
        const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
        while bytes.len() >= HEADER {
            // SAFETY: the kernel writes whole events; read_unaligned copes with the byte buffer's alignment.
            let event: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let end = (HEADER + event.len as usize).min(bytes.len());
            let name_bytes = &bytes[HEADER..end];
            let name = name_bytes.split(|b| *b == 0).next().unwrap_or_default();
            bytes = &bytes[end..];
            let is_dir = event.mask & libc::IN_ISDIR != 0;
            if event.mask & libc::IN_Q_OVERFLOW != 0
                || event.mask & libc::IN_MOVE_SELF != 0
                || (is_dir && event.mask & (libc::IN_MOVED_FROM | libc::IN_MOVED_TO) != 0)
            {
                // A moved directory leaves its watch under a wrong path: start over.
                changes.everything = true;
                continue;
            }
            let Some(dir) = self.dirs.get(&event.wd).cloned() else {
                continue;
            };
            if event.mask & libc::IN_IGNORED != 0 {
                self.dirs.remove(&event.wd);
                self.watched.remove(&dir);
            }
            if !name.is_empty() && !is_dir {
                let path = dir.join(std::ffi::OsString::from_vec(name.to_vec()));
                if event.mask & libc::IN_MOVED_TO != 0 {
                    changes.written.remove(&path);
                    changes.published.insert(path);
                } else if event.mask
                    & (libc::IN_MODIFY | libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_FROM)
                    != 0
                {
                    changes.published.remove(&path);
                    changes.written.insert(path);
                }
            }
            changes.dirs.insert(dir);
        }
    }

    /// Drops every watch (a new inotify instance); listings built before are stale from now on.
    fn reset(&mut self) {
        if let Ok(fd) = new_inotify() {
            self.fd = fd;
        }
        self.dirs.clear();
        self.watched.clear();
        self.epoch += 1;
    }
}

fn new_inotify() -> Result<OwnedFd, String> {
    // SAFETY: no pointers; the descriptor is owned below.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "inotify unavailable: {} (see fs.inotify.max_user_instances)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The filesystem name when `path` is on a network or FUSE filesystem (its changes by other hosts raise no
/// inotify event here), else `None`.
pub fn network_filesystem(path: &Path) -> Option<&'static str> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills the struct we own; the path is a valid C string.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let magic = (stat.f_type as u64 & 0xFFFF_FFFF) as u32;
    [
        (0x6969, "nfs"),
        (0x517B, "smb"),
        (0xFF53_4D42, "cifs"),
        (0xFE53_4D42, "smb2"),
        (0x6573_5546, "fuse"),
        (0x00C3_6400, "ceph"),
        (0x0102_1997, "9p"),
        (0x0BD0_0BD0, "lustre"),
        (0x4750_4653, "gpfs"),
        (0x0000_564C, "ncp"),
        (0x5346_414F, "afs"),
    ]
    .into_iter()
    .find(|(known, _)| *known == magic)
    .map(|(_, name)| name)
}

/// What [`freshness`] knows of one listing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListingState {
    /// When it was built.
    pub built_at: SystemTime,
    /// The watch epoch it was built under.
    pub epoch: u64,
    /// An event touched its tree since.
    pub touched: bool,
    /// Every directory of its tree is watched (none failed, none on a network filesystem).
    pub complete: bool,
    /// It must be rebuilt from this moment on (a file in it waiting to settle), if ever.
    pub expires: Option<SystemTime>,
}

/// Why a listing is rebuilt (for a debug line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// None was built yet.
    Never,
    /// Something in its tree changed.
    Changed,
    /// Its watches were reset (queue overflow or a moved directory).
    WatchesReset,
    /// Part of its tree cannot be watched.
    Unwatched,
    /// A file in it was waiting for this moment (it settles now).
    Expired,
    /// It is older than [`MAX_REUSE`].
    TooOld,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stale::Never => "not listed yet",
            Stale::Changed => "changed",
            Stale::WatchesReset => "watches reset",
            Stale::Unwatched => "not watched",
            Stale::Expired => "a file settled",
            Stale::TooOld => "older than the longest reuse",
        })
    }
}

/// Whether a listing in `state` may be reused at `now` under watch epoch `epoch`. Pure.
pub fn freshness(state: Option<&ListingState>, epoch: u64, now: SystemTime) -> Result<(), Stale> {
    let Some(state) = state else {
        return Err(Stale::Never);
    };
    if !state.complete {
        return Err(Stale::Unwatched);
    }
    if state.epoch != epoch {
        return Err(Stale::WatchesReset);
    }
    if state.touched {
        return Err(Stale::Changed);
    }
    if state.expires.is_some_and(|at| now >= at) {
        return Err(Stale::Expired);
    }
    // A clock stepped backwards counts as old too.
    match now.duration_since(state.built_at) {
        Ok(age) if age < MAX_REUSE => Ok(()),
        _ => Err(Stale::TooOld),
    }
}

/// Listings by key, each over its own root, sharing one [`TreeWatch`]; see the module doc.
#[derive(Debug)]
pub struct Listings<K> {
    watch: Option<TreeWatch>,
    states: HashMap<K, (PathBuf, ListingState)>,
    /// Published files (see [`TreeWatch`]) and when their rename was seen.
    published: HashMap<PathBuf, SystemTime>,
    /// Roots already reported as not watchable (said once each).
    reported: HashSet<PathBuf>,
}

impl<K: Hash + Eq + Clone> Default for Listings<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone> Listings<K> {
    /// Listings with a watch, or (inotify unavailable, said once at info) rebuilt every time.
    pub fn new() -> Self {
        Self::with_watch(TreeWatch::new())
    }

    fn with_watch(watch: Result<TreeWatch, String>) -> Self {
        let watch = match watch {
            Ok(watch) => Some(watch),
            Err(error) => {
                tracing::info!(%error, "file listings are rebuilt in full every time");
                None
            }
        };
        Listings {
            watch,
            states: HashMap::new(),
            published: HashMap::new(),
            reported: HashSet::new(),
        }
    }

    /// Drains the watch into every listing's state (and the published files), forgetting publications seen
    /// before `published_after`. Call before [`Listings::fresh`].
    pub fn refresh(&mut self, published_after: SystemTime) {
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        let changes = watch.drain();
        let seen = SystemTime::now();
        for (root, state) in self.states.values_mut() {
            if changes.touches(root) {
                state.touched = true;
            }
        }
        for path in &changes.written {
            self.published.remove(path);
        }
        for path in changes.published {
            self.published.insert(path, seen);
        }
        self.published.retain(|_, at| *at >= published_after);
    }

    /// Whether `key`'s last listing may be reused now (after [`Listings::refresh`]).
    pub fn fresh(&self, key: &K, now: SystemTime) -> Result<(), Stale> {
        let Some(watch) = self.watch.as_ref() else {
            return Err(Stale::Unwatched);
        };
        freshness(self.states.get(key).map(|(_, s)| s), watch.epoch(), now)
    }

    /// True when `path` was renamed into its directory and not written since (within the kept window).
    pub fn is_published(&self, path: &Path) -> bool {
        self.published.contains_key(path)
    }

    /// Starts a new listing of `key` over `root`: call [`Rebuild::dir`] for each directory before listing it,
    /// then [`Rebuild::finish`].
    pub fn rebuild(&mut self, key: K, root: &Path) -> Rebuild<'_, K> {
        let mut complete = self.watch.is_some();
        if let Some(fs) = network_filesystem(root) {
            complete = false;
            if self.reported.insert(root.to_path_buf()) {
                tracing::info!(root = %root.display(), filesystem = fs, "directory is on a network filesystem; it is listed in full every time");
            }
        }
        Rebuild {
            listings: self,
            key,
            root: root.to_path_buf(),
            built_at: SystemTime::now(),
            complete,
        }
    }
}

/// What a directory walk tells the watch, and asks of it.
pub trait WalkWatch {
    /// The walk is about to list `dir`.
    fn dir(&mut self, dir: &Path);
    /// True when `path` was renamed into place and not written since (its writer is done with it).
    fn is_published(&self, _path: &Path) -> bool {
        false
    }
}

/// No watch: walks that list everything every time.
impl WalkWatch for () {
    fn dir(&mut self, _dir: &Path) {}
}

impl<K: Hash + Eq + Clone> WalkWatch for Rebuild<'_, K> {
    fn dir(&mut self, dir: &Path) {
        Rebuild::dir(self, dir)
    }
    fn is_published(&self, path: &Path) -> bool {
        self.listings.is_published(path)
    }
}

/// One listing being built (see [`Listings::rebuild`]).
pub struct Rebuild<'a, K: Hash + Eq + Clone> {
    listings: &'a mut Listings<K>,
    key: K,
    root: PathBuf,
    built_at: SystemTime,
    complete: bool,
}

impl<K: Hash + Eq + Clone> Rebuild<'_, K> {
    /// Watches `dir` (inside the root) before the walk lists it. A directory that cannot be watched leaves the
    /// listing incomplete (rebuilt every time); the reason is said once per root (a missing one says nothing:
    /// listing it again is cheap).
    pub fn dir(&mut self, dir: &Path) {
        if !self.complete {
            return;
        }
        let Some(watch) = self.listings.watch.as_mut() else {
            return;
        };
        match watch.watch_dir(dir) {
            Ok(()) => {}
            Err(WatchError::Missing) => self.complete = false,
            Err(WatchError::Failed(error)) => {
                self.complete = false;
                if self.listings.reported.insert(self.root.clone()) {
                    tracing::warn!(root = %self.root.display(), %error, "directory cannot be watched; it is listed in full every time");
                }
            }
        }
    }

    /// Records the listing as built, to be rebuilt at `expires` if that comes first.
    pub fn finish(self, expires: Option<SystemTime>) {
        let epoch = self.listings.watch.as_ref().map_or(0, TreeWatch::epoch);
        self.listings.states.insert(
            self.key,
            (
                self.root,
                ListingState {
                    built_at: self.built_at,
                    epoch,
                    touched: false,
                    complete: self.complete,
                    expires,
                },
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
    }

    fn state() -> ListingState {
        ListingState {
            built_at: at(0),
            epoch: 3,
            touched: false,
            complete: true,
            expires: None,
        }
    }

    #[test]
    fn an_untouched_complete_listing_is_reused_until_it_is_too_old() {
        assert_eq!(freshness(Some(&state()), 3, at(0)), Ok(()));
        assert_eq!(freshness(Some(&state()), 3, at(299)), Ok(()));
        assert_eq!(freshness(Some(&state()), 3, at(300)), Err(Stale::TooOld));
    }

    #[test]
    fn every_reason_to_rebuild() {
        assert_eq!(freshness(None, 3, at(1)), Err(Stale::Never));
        let touched = ListingState {
            touched: true,
            ..state()
        };
        assert_eq!(freshness(Some(&touched), 3, at(1)), Err(Stale::Changed));
        assert_eq!(
            freshness(Some(&state()), 4, at(1)),
            Err(Stale::WatchesReset)
        );
        let partial = ListingState {
            complete: false,
            ..state()
        };
        assert_eq!(freshness(Some(&partial), 3, at(1)), Err(Stale::Unwatched));
        let settling = ListingState {
            expires: Some(at(2)),
            ..state()
        };
        assert_eq!(freshness(Some(&settling), 3, at(1)), Ok(()));
        assert_eq!(freshness(Some(&settling), 3, at(2)), Err(Stale::Expired));
        let from_the_future = ListingState {
            built_at: at(10),
            ..state()
        };
        assert_eq!(
            freshness(Some(&from_the_future), 3, at(1)),
            Err(Stale::TooOld)
        );
    }

    fn rebuilt(listings: &mut Listings<&'static str>, key: &'static str, dirs: &[&Path]) {
        let mut rebuild = listings.rebuild(key, dirs[0]);
        for dir in dirs {
            rebuild.dir(dir);
        }
        rebuild.finish(None);
    }

    fn fresh_now(listings: &mut Listings<&'static str>, key: &'static str) -> Result<(), Stale> {
        listings.refresh(SystemTime::UNIX_EPOCH);
        listings.fresh(&key, SystemTime::now())
    }

    #[test]
    fn writes_creations_removals_and_renames_make_a_listing_stale_reads_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let sub = a.join("sub");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::create_dir_all(&b).expect("mkdir");
        std::fs::write(sub.join("f"), b"1").expect("write");
        let mut listings = Listings::new();
        assert_eq!(fresh_now(&mut listings, "a"), Err(Stale::Never));
        rebuilt(&mut listings, "a", &[&a, &sub]);
        rebuilt(&mut listings, "b", &[&b]);
        assert_eq!(fresh_now(&mut listings, "a"), Ok(()));
        std::fs::read(sub.join("f")).expect("read");
        assert_eq!(
            fresh_now(&mut listings, "a"),
            Ok(()),
            "a read changes nothing"
        );

        type Step<'a> = (&'a str, Box<dyn Fn() + 'a>);
        let steps: Vec<Step> = vec![
            (
                "append",
                Box::new(|| {
                    use std::io::Write;
                    let mut file = std::fs::OpenOptions::new()
                        .append(true)
                        .open(sub.join("f"))
                        .expect("open");
                    file.write_all(b"2").expect("append");
                }),
            ),
            (
                "create",
                Box::new(|| std::fs::write(sub.join("g"), b"x").expect("write")),
            ),
            (
                "set mtime",
                Box::new(|| {
                    std::fs::File::options()
                        .write(true)
                        .open(sub.join("g"))
                        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(9)))
                        .expect("set mtime")
                }),
            ),
            (
                "rename",
                Box::new(|| std::fs::rename(sub.join("g"), sub.join("h")).expect("rename")),
            ),
            (
                "remove",
                Box::new(|| std::fs::remove_file(sub.join("h")).expect("remove")),
            ),
            (
                "mkdir",
                Box::new(|| std::fs::create_dir(a.join("new")).expect("mkdir")),
            ),
        ];
        for (what, step) in steps {
            step();
            assert_eq!(fresh_now(&mut listings, "a"), Err(Stale::Changed), "{what}");
            assert_eq!(
                fresh_now(&mut listings, "b"),
                Ok(()),
                "{what} in a leaves b alone"
            );
            rebuilt(&mut listings, "a", &[&a, &sub]);
        }
    }

    #[test]
    fn a_moved_directory_resets_every_watch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("x")).expect("mkdir");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&b).expect("mkdir");
        let mut listings = Listings::new();
        rebuilt(&mut listings, "a", &[&a, &a.join("x")]);
        rebuilt(&mut listings, "b", &[&b]);
        std::fs::rename(a.join("x"), a.join("y")).expect("rename");
        assert_eq!(fresh_now(&mut listings, "a"), Err(Stale::WatchesReset));
        assert_eq!(fresh_now(&mut listings, "b"), Err(Stale::WatchesReset));
        rebuilt(&mut listings, "b", &[&b]);
        assert_eq!(fresh_now(&mut listings, "b"), Ok(()));
    }

    #[test]
    fn without_inotify_every_listing_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut listings: Listings<&'static str> =
            Listings::with_watch(Err("inotify unavailable".into()));
        rebuilt(&mut listings, "a", &[dir.path()]);
        assert_eq!(fresh_now(&mut listings, "a"), Err(Stale::Unwatched));
        assert!(!listings.is_published(&dir.path().join("x")));
    }

    #[test]
    fn a_missing_directory_is_not_vouched_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("not-yet");
        let mut listings = Listings::new();
        rebuilt(&mut listings, "a", &[&missing]);
        assert_eq!(fresh_now(&mut listings, "a"), Err(Stale::Unwatched));
    }

    #[test]
    fn an_overflowed_queue_resets_every_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(&b).expect("mkdir");
        let mut listings = Listings::new();
        rebuilt(&mut listings, "a", &[&a]);
        rebuilt(&mut listings, "b", &[&b]);
        let queue: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(16_384);
        // Alternating between two files so the kernel cannot merge the events: more than the queue holds.
        let files: Vec<std::fs::File> = ["x", "y"]
            .iter()
            .map(|name| std::fs::File::create(a.join(name)).expect("create"))
            .collect();
        let base = SystemTime::now() - Duration::from_secs(1_000_000);
        for index in 0..queue + 10 {
            files[index % 2]
                .set_modified(base + Duration::from_secs(index as u64))
                .expect("set mtime");
        }
        assert_eq!(fresh_now(&mut listings, "a"), Err(Stale::WatchesReset));
        assert_eq!(
            fresh_now(&mut listings, "b"),
            Err(Stale::WatchesReset),
            "events may have been lost for any directory"
        );
        rebuilt(&mut listings, "b", &[&b]);
        assert_eq!(fresh_now(&mut listings, "b"), Ok(()));
    }

    #[test]
    fn a_file_renamed_into_place_is_published_until_written_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("games");
        std::fs::create_dir_all(&root).expect("mkdir");
        let mut listings = Listings::new();
        rebuilt(&mut listings, "games", &[&root]);
        std::fs::write(root.join("a.db.tmp"), b"games").expect("write");
        std::fs::rename(root.join("a.db.tmp"), root.join("a.db")).expect("rename");
        std::fs::write(root.join("b.db"), b"in place").expect("write");
        listings.refresh(SystemTime::UNIX_EPOCH);
        assert!(listings.is_published(&root.join("a.db")));
        assert!(
            !listings.is_published(&root.join("b.db")),
            "written in place"
        );
        assert!(!listings.is_published(&root.join("a.db.tmp")));
        // Kept across drains until its window passes.
        listings.refresh(SystemTime::UNIX_EPOCH);
        assert!(listings.is_published(&root.join("a.db")));
        {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(root.join("a.db"))
                .expect("open");
            file.write_all(b"more").expect("append");
        }
        listings.refresh(SystemTime::UNIX_EPOCH);
        assert!(
            !listings.is_published(&root.join("a.db")),
            "written after its rename"
        );
        std::fs::write(root.join("c.tmp"), b"x").expect("write");
        std::fs::rename(root.join("c.tmp"), root.join("c.db")).expect("rename");
        listings.refresh(SystemTime::now() + Duration::from_secs(60));
        assert!(
            !listings.is_published(&root.join("c.db")),
            "forgotten once its window passed"
        );
    }

    #[test]
    fn a_local_filesystem_is_not_a_network_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(network_filesystem(dir.path()), None);
    }
}
