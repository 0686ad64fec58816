//! The node's inventory: every servable file of every category, with size, mtime and the cached sha256 (or null).
//!
//! Walks each category root (blocking: run it off the request threads). Files still being written are left out:
//! names starting with `.` or ending in `.tmp`, `.partial` or `.part` (files and directories alike), SQLite's
//! `-wal`, `-shm` and `-journal` files, any file modified within `settle` (it waits for the next inventory) unless
//! its writer published it by renaming it into place since (then it is complete), and a `.db` whose `-wal` is not
//! empty (a live database is offered only once checkpointed, never torn). Symlinks are
//! listed only when they point to a regular file inside the same root; symlinked directories are not followed, so a
//! link loop cannot hang the walk. Checksums come from the cache; files not yet hashed are hashed while the
//! walk's `hash_for` time lasts (so a puller needs no `/checksum` request per file), the rest are listed with a
//! null sha256 and hashed by a later inventory or `/checksum`. [`WatchedInventory`] walks again only when
//! something changed (crate::tree_watch), so asking an unchanged node for its inventory costs no walk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::checksum::ChecksumCache;
use crate::tree_watch::{Listings, WalkWatch};

/// Directory depth below a category root beyond which the walk stops (a guard, not a limit anyone should meet).
pub const MAX_DEPTH: usize = 32;

/// `GET /inventory.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// The node serving these files.
    pub node: String,
    /// When the inventory was made (RFC 3339, UTC).
    pub generated_at: String,
    /// Every servable file, sorted by category then path.
    pub files: Vec<InventoryEntry>,
}

/// One servable file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// Its category.
    pub category: String,
    /// Its path inside the category, `/`-separated; fetch it at `/files/{category}/{path}`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch (fractional).
    pub mtime: f64,
    /// sha256 (lowercase hex) if already computed for this size and mtime, else null.
    pub sha256: Option<String>,
}

/// True for names of files still being written: `.hidden`, `*.tmp`, `*.partial`, `*.part`.
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.')
        || [".tmp", ".partial", ".part"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// True for names that are still being written or belong to a live SQLite database: [`is_temporary_name`] plus
/// `-wal`, `-shm` and `-journal` files. Never listed, never pulled.
pub fn is_unfinished_name(name: &str) -> bool {
    is_temporary_name(name)
        || ["-wal", "-shm", "-journal"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// True when `path` is a `.db` with a non-empty write-ahead log beside it (its content is not all in the file).
pub fn has_live_wal(path: &Path) -> bool {
    if path.extension().is_none_or(|e| e != "db") {
        return false;
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0)
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// The inventory of `categories` (name → root directory) for `node`, leaving out files modified within
/// `settle`. Files whose sha256 is not cached are hashed (into `cache`) until `hash_for` has passed; zero hashes
/// nothing. Blocking; walks everything every time (see [`WatchedInventory`] for the one that does not).
pub fn build_inventory(
    node: &str,
    categories: &BTreeMap<String, PathBuf>,
    cache: &ChecksumCache,
    settle: Duration,
    hash_for: Duration,
) -> Inventory {
    let mut files = Vec::new();
    for (category, root) in categories {
        let scan = scan_category(category, root, cache, settle, &mut ());
        files.extend(hash_missing(scan.entries, cache, Instant::now() + hash_for));
    }
    assemble(node, files)
}

/// `entries` with the sha256 of those not yet hashed filled in while `hash_until` has not passed.
fn hash_missing(
    entries: Vec<(InventoryEntry, PathBuf, SystemTime)>,
    cache: &ChecksumCache,
    hash_until: Instant,
) -> impl Iterator<Item = InventoryEntry> + '_ {
    entries.into_iter().map(move |(mut entry, path, mtime)| {
        if entry.sha256.is_none() && Instant::now() < hash_until {
            // A file that changes while hashed stays null: it is listed again once it is settled.
            entry.sha256 = cache.checksum_blocking(&path, entry.size, mtime).ok();
        }
        entry
    })
}

fn assemble(node: &str, mut files: Vec<InventoryEntry>) -> Inventory {
    files.sort_by(|a, b| (&a.category, &a.path).cmp(&(&b.category, &b.path)));
    Inventory {
        node: node.to_string(),
        generated_at: humantime::format_rfc3339(SystemTime::now()).to_string(),
        files,
    }
}

/// A serialized inventory and its ETag (a hash of its files: the same files give the same tag, whenever built).
#[derive(Debug, Clone)]
pub struct InventoryBody {
    /// `GET /inventory.json`'s body.
    pub json: bytes::Bytes,
    /// Its strong ETag, quoted.
    pub etag: String,
}

/// The data server's inventory, rebuilt only when a category's tree changed (see crate::tree_watch), a file
/// waiting to settle has settled, a file is still unhashed, or the listing is older than
/// [`crate::tree_watch::MAX_REUSE`]; otherwise the last body is served as it is. Files renamed into place
/// (published by their writer) are offered before they have settled. One per server, behind a lock: concurrent
/// requests for a stale inventory wait for one rebuild.
#[derive(Debug)]
pub struct WatchedInventory {
    listings: Listings<String>,
    body: Option<InventoryBody>,
    rebuilds: u64,
}

impl Default for WatchedInventory {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchedInventory {
    pub fn new() -> Self {
        WatchedInventory {
            listings: Listings::new(),
            body: None,
            rebuilds: 0,
        }
    }

    /// How many times the inventory was walked (the rest were served from the last walk).
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// The current inventory (see [`build_inventory`] for the arguments). Blocking.
    pub fn get(
        &mut self,
        node: &str,
        categories: &BTreeMap<String, PathBuf>,
        cache: &ChecksumCache,
        settle: Duration,
        hash_for: Duration,
    ) -> InventoryBody {
        let now = SystemTime::now();
        self.listings
            .refresh(now.checked_sub(settle).unwrap_or(UNIX_EPOCH));
        let stale = categories
            .keys()
            .find_map(|category| self.listings.fresh(category, now).err());
        if let (None, Some(body)) = (stale, &self.body) {
            return body.clone();
        }
        if let Some(reason) = stale {
            tracing::debug!(%reason, "inventory rebuilt");
        }
        self.rebuilds += 1;
        let hash_until = Instant::now() + hash_for;
        let mut files = Vec::new();
        for (category, root) in categories {
            let canonical = root.canonicalize().unwrap_or_else(|_| root.clone());
            let mut rebuild = self.listings.rebuild(category.clone(), &canonical);
            let scan = scan_category(category, root, cache, settle, &mut rebuild);
            let before = files.len();
            files.extend(hash_missing(scan.entries, cache, hash_until));
            let unhashed = files[before..].iter().any(|f| f.sha256.is_none());
            // A file left unhashed is hashed by the next request, so that one rebuilds.
            rebuild.finish(if unhashed { Some(now) } else { scan.settles_at });
        }
        let inventory = assemble(node, files);
        let etag = inventory_etag(&inventory.files);
        let body = InventoryBody {
            json: serde_json::to_vec(&inventory).unwrap_or_default().into(),
            etag,
        };
        self.body = Some(body.clone());
        body
    }
}

/// What [`scan_category`] found.
#[derive(Debug, Default)]
pub struct CategoryScan {
    /// Every servable file, with the real path and mtime it was listed with (the checksum cache's key).
    pub entries: Vec<(InventoryEntry, PathBuf, SystemTime)>,
    /// When the first file left out for being modified within `settle` will have settled, if any was.
    pub settles_at: Option<SystemTime>,
}

/// Every servable file under one category root not modified within `settle` (or modified but renamed into place
/// since: `watch` says which), telling `watch` of each directory before listing it. A missing root is an empty
/// category; unreadable directories are logged and skipped.
pub fn scan_category(
    category: &str,
    root: &Path,
    cache: &ChecksumCache,
    settle: Duration,
    watch: &mut dyn WalkWatch,
) -> CategoryScan {
    let now = SystemTime::now();
    let settled_before = now.checked_sub(settle).unwrap_or(UNIX_EPOCH);
    let mut settles_at: Option<SystemTime> = None;
    let Ok(root) = root.canonicalize() else {
        tracing::debug!(category, root = %root.display(), "category directory missing; listing nothing for it");
        // Told of the missing directory, the watch cannot vouch for this listing: it is walked again next time.
        watch.dir(root);
        return CategoryScan::default();
    };
    let mut entries = Vec::new();
    let mut pending = vec![(root.clone(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = pending.pop() {
        watch.dir(&dir);
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) => {
                tracing::warn!(category, dir = %dir.display(), %error, "cannot list directory; skipping it");
                continue;
            }
        };
        for item in listing.flatten() {
            let Some(name) = item.file_name().to_str().map(str::to_string) else {
                tracing::warn!(category, dir = %dir.display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if is_unfinished_name(&name) {
                continue;
            }
            let path = item.path();
            let relative = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(link_metadata) = item.metadata() else {
                continue;
            };
            if link_metadata.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    pending.push((path, relative, depth + 1));
                } else {
                    tracing::warn!(category, dir = %path.display(), "directory nesting too deep; not listed");
                }
                continue;
            }
            // The walk starts at the canonical root and never follows a directory link, so a plain file's path
            // is already canonical: only links are resolved (one realpath per file cost most of a large walk).
            let (metadata, canonical) = if link_metadata.file_type().is_symlink() {
                match path.canonicalize() {
                    Ok(target) if target.starts_with(&root) => match std::fs::metadata(&target) {
                        Ok(metadata) => (metadata, target),
                        Err(_) => continue,
                    },
                    _ => {
                        tracing::debug!(category, path = %path.display(), "symlink leaves the root or dangles; not listed");
                        continue;
                    }
                }
            } else {
                (link_metadata, path)
            };
            if !metadata.is_file() {
                continue;
            }
            let Ok(mtime) = metadata.modified() else {
                continue;
            };
            if mtime > settled_before && !watch.is_published(&canonical) {
                tracing::debug!(category, path = %canonical.display(), "modified within data_server.settle; listed in a later inventory");
                let at = mtime + settle;
                settles_at = Some(settles_at.map_or(at, |earlier| earlier.min(at)));
                continue;
            }
            if has_live_wal(&canonical) {
                tracing::debug!(category, path = %canonical.display(), "database has a live write-ahead log; listed once checkpointed");
                continue;
            }
            entries.push((
                InventoryEntry {
                    category: category.to_string(),
                    path: relative,
                    size: metadata.len(),
                    mtime: unix_seconds(mtime),
                    sha256: cache.cached(&canonical, metadata.len(), mtime),
                },
                canonical,
                mtime,
            ));
        }
    }
    CategoryScan {
        entries,
        settles_at,
    }
}

/// The ETag of an inventory's files: a hash of every entry (the same files give the same tag across rebuilds and
/// restarts of the same build).
pub fn inventory_etag(files: &[InventoryEntry]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        (
            &file.category,
            &file.path,
            file.size,
            file.mtime.to_bits(),
            &file.sha256,
        )
            .hash(&mut hasher);
    }
    format!("\"inv-{:016x}-{}\"", hasher.finish(), files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names() {
        let table = [
            ("a.db", false),
            ("model.pth", false),
            ("data.npz", false),
            ("tmp.db", false),
            ("partial", false),
            (".a.db.tmp", true),
            (".hidden", true),
            ("a.db.tmp", true),
            ("a.npz.partial", true),
            ("a.npz.part", true),
        ];
        for (name, temporary) in table {
            assert_eq!(is_temporary_name(name), temporary, "{name}");
        }
    }

    #[test]
    fn lists_files_skips_temporaries_and_escaping_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let games = dir.path().join("games");
        std::fs::create_dir_all(games.join("sub")).expect("mkdir");
        std::fs::create_dir_all(games.join(".staging")).expect("mkdir");
        std::fs::write(games.join("a.db"), b"abc").expect("write");
        std::fs::write(games.join("sub/b.db"), b"hello").expect("write");
        std::fs::write(games.join("c.db.tmp"), b"x").expect("write");
        std::fs::write(games.join(".d.db"), b"x").expect("write");
        std::fs::write(games.join("e.part"), b"x").expect("write");
        std::fs::write(games.join(".staging/f.db"), b"x").expect("write");
        std::fs::write(dir.path().join("secret"), b"secret").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), games.join("escape"))
            .expect("symlink");
        std::os::unix::fs::symlink(games.join("a.db"), games.join("alias.db")).expect("symlink");
        std::os::unix::fs::symlink(dir.path(), games.join("updir")).expect("symlink");

        let categories: BTreeMap<String, PathBuf> = [
            ("games".to_string(), games.clone()),
            ("models".to_string(), dir.path().join("missing")),
        ]
        .into_iter()
        .collect();
        let cache = ChecksumCache::new(1);
        let inventory = build_inventory(
            "node-a",
            &categories,
            &cache,
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_eq!(inventory.node, "node-a");
        let listed: Vec<(&str, &str, u64)> = inventory
            .files
            .iter()
            .map(|f| (f.category.as_str(), f.path.as_str(), f.size))
            .collect();
        assert_eq!(
            listed,
            [
                ("games", "a.db", 3),
                ("games", "alias.db", 3),
                ("games", "sub/b.db", 5)
            ]
        );
        assert!(inventory
            .files
            .iter()
            .all(|f| f.sha256.is_none() && f.mtime > 0.0));
        assert!(
            humantime::parse_rfc3339(&inventory.generated_at).is_ok(),
            "{}",
            inventory.generated_at
        );
    }

    #[test]
    fn files_are_hashed_while_the_hashing_time_lasts_and_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let games = dir.path().join("games");
        std::fs::create_dir_all(&games).expect("mkdir");
        std::fs::write(games.join("a.db"), b"abc").expect("write");
        std::fs::write(games.join("b.db"), b"hello").expect("write");
        let categories: BTreeMap<String, PathBuf> =
            [("games".to_string(), games.clone())].into_iter().collect();
        let cache = ChecksumCache::new(1);
        let unhashed = build_inventory("n", &categories, &cache, Duration::ZERO, Duration::ZERO);
        assert!(unhashed.files.iter().all(|f| f.sha256.is_none()));
        let hashed = build_inventory(
            "n",
            &categories,
            &cache,
            Duration::ZERO,
            Duration::from_secs(60),
        );
        for entry in &hashed.files {
            let want = crate::data_server::checksum::sha256_file(&games.join(&entry.path)).unwrap();
            assert_eq!(
                entry.sha256.as_deref(),
                Some(want.as_str()),
                "{}",
                entry.path
            );
        }
        assert_eq!(cache.computations(), 2);
        // Cached now: listed with its sum without hashing again, even with no hashing time.
        let again = build_inventory("n", &categories, &cache, Duration::ZERO, Duration::ZERO);
        assert!(again.files.iter().all(|f| f.sha256.is_some()));
        assert_eq!(cache.computations(), 2);
    }

    #[test]
    fn unsettled_files_wal_files_and_live_databases_are_not_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let games = dir.path().join("games");
        std::fs::create_dir_all(&games).expect("mkdir");
        let old = SystemTime::now() - Duration::from_secs(60);
        let write_old = |name: &str, content: &[u8]| {
            let path = games.join(name);
            std::fs::write(&path, content).expect("write");
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(old))
                .expect("set mtime");
        };
        write_old("done.db", b"x");
        write_old("live.db", b"x");
        write_old("live.db-wal", b"frames");
        write_old("live.db-shm", b"x");
        write_old("checkpointed.db", b"x");
        write_old("checkpointed.db-wal", b"");
        write_old("x.db-journal", b"x");
        std::fs::write(games.join("fresh.db"), b"x").expect("write");
        let categories: BTreeMap<String, PathBuf> =
            [("games".to_string(), games.clone())].into_iter().collect();
        let cache = ChecksumCache::new(1);
        let listed: Vec<String> = build_inventory(
            "n",
            &categories,
            &cache,
            Duration::from_secs(2),
            Duration::ZERO,
        )
        .files
        .into_iter()
        .map(|f| f.path)
        .collect();
        assert_eq!(listed, ["checkpointed.db", "done.db"]);
        for (name, unfinished) in [("a.db-wal", true), ("a.db-shm", true), ("a.db", false)] {
            assert_eq!(is_unfinished_name(name), unfinished, "{name}");
        }
    }

    fn paths(body: &InventoryBody) -> Vec<String> {
        let inventory: Inventory = serde_json::from_slice(&body.json).expect("inventory json");
        inventory.files.into_iter().map(|f| f.path).collect()
    }

    #[test]
    fn a_watched_inventory_walks_again_only_when_something_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let games = dir.path().join("games");
        std::fs::create_dir_all(games.join("sub")).expect("mkdir");
        std::fs::write(games.join("a.db"), b"abc").expect("write");
        let categories: BTreeMap<String, PathBuf> =
            [("games".to_string(), games.clone())].into_iter().collect();
        let cache = ChecksumCache::new(1);
        let mut watched = WatchedInventory::new();
        let get = |watched: &mut WatchedInventory| {
            watched.get(
                "n",
                &categories,
                &cache,
                Duration::ZERO,
                Duration::from_secs(60),
            )
        };
        let first = get(&mut watched);
        assert_eq!(paths(&first), ["a.db"]);
        let again = get(&mut watched);
        assert_eq!(
            watched.rebuilds(),
            1,
            "nothing changed: served from the first walk"
        );
        assert_eq!(
            (again.etag.as_str(), &again.json),
            (first.etag.as_str(), &first.json)
        );

        std::fs::write(games.join("sub/b.db"), b"hello").expect("write");
        let grown = get(&mut watched);
        assert_eq!(watched.rebuilds(), 2);
        assert_eq!(paths(&grown), ["a.db", "sub/b.db"]);
        assert_ne!(grown.etag, first.etag);

        // A temp file that comes and goes changes nothing listed: walked again, same tag.
        std::fs::write(games.join("c.db.tmp"), b"x").expect("write");
        std::fs::remove_file(games.join("c.db.tmp")).expect("remove");
        let same = get(&mut watched);
        assert_eq!(watched.rebuilds(), 3);
        assert_eq!(same.etag, grown.etag);

        std::fs::remove_file(games.join("a.db")).expect("remove");
        assert_eq!(paths(&get(&mut watched)), ["sub/b.db"]);
    }

    #[test]
    fn a_category_directory_created_after_the_first_inventory_is_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let games = dir.path().join("games");
        let categories: BTreeMap<String, PathBuf> =
            [("games".to_string(), games.clone())].into_iter().collect();
        let cache = ChecksumCache::new(1);
        let mut watched = WatchedInventory::new();
        let get = |watched: &mut WatchedInventory| {
            paths(&watched.get(
                "n",
                &categories,
                &cache,
                Duration::ZERO,
                Duration::from_secs(60),
            ))
        };
        assert!(get(&mut watched).is_empty());
        std::fs::create_dir_all(&games).expect("mkdir");
        std::fs::write(games.join("a.db"), b"abc").expect("write");
        assert_eq!(get(&mut watched), ["a.db"]);
        // Removed and made again: still seen.
        std::fs::remove_dir_all(&games).expect("remove");
        assert!(get(&mut watched).is_empty());
        std::fs::create_dir_all(&games).expect("mkdir");
        std::fs::write(games.join("b.db"), b"abc").expect("write");
        assert_eq!(get(&mut watched), ["b.db"]);
    }

    #[test]
    fn a_file_written_in_place_waits_to_settle_one_renamed_into_place_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let games = dir.path().join("games");
        std::fs::create_dir_all(&games).expect("mkdir");
        let categories: BTreeMap<String, PathBuf> =
            [("games".to_string(), games.clone())].into_iter().collect();
        let cache = ChecksumCache::new(1);
        let mut watched = WatchedInventory::new();
        let settle = Duration::from_millis(600);
        let get = |watched: &mut WatchedInventory| {
            paths(&watched.get("n", &categories, &cache, settle, Duration::from_secs(60)))
        };
        assert!(get(&mut watched).is_empty());
        std::fs::write(games.join("in-place.db"), b"writing").expect("write");
        std::fs::write(games.join(".published.db.tmp"), b"done").expect("write");
        std::fs::rename(games.join(".published.db.tmp"), games.join("published.db"))
            .expect("rename");
        assert_eq!(get(&mut watched), ["published.db"], "published at once");
        // The in-place file is listed once settled, with no event in between: the listing expires then.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listed = get(&mut watched);
            if listed == ["in-place.db", "published.db"] {
                break;
            }
            assert_eq!(listed, ["published.db"]);
            assert!(Instant::now() < deadline, "in-place.db never listed");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(cache.computations() >= 2);
    }

    #[test]
    fn unix_seconds_before_and_after_the_epoch() {
        assert_eq!(
            unix_seconds(UNIX_EPOCH + std::time::Duration::from_millis(1500)),
            1.5
        );
        assert_eq!(
            unix_seconds(UNIX_EPOCH - std::time::Duration::from_secs(2)),
            -2.0
        );
    }
}
