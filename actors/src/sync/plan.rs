//! Pure planning: which (peer, category) operations this node runs, and which files of a peer's inventory it
//! fetches. No I/O, no clock (the caller passes `now` as Unix seconds), no actix.
//!
//! Rules (issue 9, items 1 and 2):
//! - A node runs the pull rules whose `to` matches its roles, against every *other* node whose roles match `from`.
//!   A node never pulls from itself.
//! - A peer's file `P` of category `C` lands at `<C's directory>/<peer>/P`, so two peers' `hex8_2p.db` never
//!   collide.
//! - A file already held with the same size and sha256 is not fetched again; a changed one (size or sha256)
//!   replaces the old copy. When sizes match but the peer has not hashed the file yet, the transfer is planned with
//!   the local sha256 so the transport asks the peer's `/checksum` first and skips an identical file.
//! - Skip rules (config `sync.skip`): too old for its category, categories kept once held, relayed copies (first
//!   segment names a cluster node), and names that are unsafe or still being written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::config::{PullRule, Role, SkipRules};
pub use crate::data_server::inventory::is_unfinished_name;
use crate::data_server::inventory::InventoryEntry;

/// Another node as sync sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its node name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// Base URL of its data server (`http` and `aria2` transports, inventory).
    pub data_url: Option<String>,
    /// Base URL of its control API (notices).
    pub api_url: Option<String>,
    /// `user@host` for the `rsync` transport.
    pub ssh: Option<String>,
}

/// One sync operation: one category from one peer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PullOp {
    pub peer: String,
    pub category: String,
}

/// The operations node `this` (with `roles`) runs against `peers`, in rule order, without duplicates;
/// `only_peer` keeps the operations against that peer.
pub fn operations(
    this: &str,
    roles: &[Role],
    peers: &[Peer],
    rules: &[PullRule],
    only_peer: Option<&str>,
) -> Vec<PullOp> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for rule in rules.iter().filter(|r| r.to.matches(roles)) {
        for peer in peers {
            if peer.name == this || !rule.from.matches(&peer.roles) {
                continue;
            }
            if only_peer.is_some_and(|only| only != peer.name) {
                continue;
            }
            let op = PullOp {
                peer: peer.name.clone(),
                category: rule.category.clone(),
            };
            if seen.insert(op.clone()) {
                out.push(op);
            }
        }
    }
    out
}

/// The nodes that should hear of new games written on `this`: every other node whose roles include `training`
/// and that runs a rule pulling `games` from nodes like this one.
pub fn notify_targets<'a>(
    this: &str,
    roles: &[Role],
    peers: &'a [Peer],
    rules: &[PullRule],
) -> Vec<&'a Peer> {
    peers
        .iter()
        .filter(|peer| peer.name != this)
        .filter(|peer| {
            rules.iter().any(|r| {
                r.category == "games" && r.from.matches(roles) && r.to.matches(&peer.roles)
            })
        })
        .collect()
}

/// A file this node holds in a category directory, keyed by its path there (`<peer>/<path>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalFile {
    pub size: u64,
    /// Its sha256, when hashed (the shell hashes every file whose size equals the peer's, see [`files_to_hash`]).
    pub sha256: Option<String>,
}

/// One file to fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub peer: String,
    pub category: String,
    /// Its path on the peer (inside the category).
    pub remote_path: String,
    /// Where it goes, relative to this node's category directory: `<peer>/<remote_path>`.
    pub dest_path: String,
    /// Size announced by the peer's inventory.
    pub size: u64,
    /// mtime announced by the peer (Unix seconds).
    pub mtime: f64,
    /// sha256 announced by the peer, if it had hashed the file.
    pub sha256: Option<String>,
    /// True when a file is already held under `dest_path` (it is replaced once the new one is verified).
    pub replaces: bool,
    /// The held copy's sha256 when its size matches: the transport skips the file if the peer's checksum equals it.
    pub unchanged_if: Option<String>,
}

/// Why a listed file is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Skip {
    /// Held with the same size and sha256.
    Unchanged,
    /// Older than `sync.skip.max_age` of its category.
    TooOld,
    /// Held already, and its category is in `sync.skip.keep_existing`.
    KeptExisting,
    /// A copy the peer pulled from another node (`sync.skip.skip_relayed`).
    Relayed,
    /// A name still being written (temp, `.partial`, `-wal`/`-shm`).
    Temporary,
    /// This version of the file failed its integrity check (dead letter) or was quarantined before: it is not
    /// fetched again until the peer lists another version or its dead letter is replayed.
    GivenUp,
    /// A path that could leave the category directory.
    Unsafe(String),
}

/// One version of a peer's file, as its inventory lists it: the same content is the same size and sha256 (the
/// mtime only tells versions apart while the peer has not hashed the file).
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub size: u64,
    pub mtime: f64,
    pub sha256: Option<String>,
}

impl Version {
    pub fn of(entry: &InventoryEntry) -> Version {
        Version {
            size: entry.size,
            mtime: entry.mtime,
            sha256: entry.sha256.clone(),
        }
    }

    /// True when `other` is the same content as far as both listings tell.
    pub fn same_as(&self, other: &Version) -> bool {
        self.size == other.size
            && match (&self.sha256, &other.sha256) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (None, None) => self.mtime == other.mtime,
                _ => false,
            }
    }

    pub fn of_transfer(transfer: &Transfer) -> Version {
        Version {
            size: transfer.size,
            mtime: transfer.mtime,
            sha256: transfer.sha256.clone(),
        }
    }
}

/// The plan of one operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpPlan {
    pub transfers: Vec<Transfer>,
    pub skipped: Vec<(String, Skip)>,
}

/// Why a peer path is unsafe, if it is: empty, absolute, `.`/`..` or empty segments, backslashes, NUL.
pub fn unsafe_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("empty path".into());
    }
    if path.starts_with('/') {
        return Some("absolute path".into());
    }
    if path.contains('\\') || path.contains('\0') {
        return Some("backslash or NUL in the path".into());
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("empty, '.' or '..' segment".into());
    }
    None
}

/// Where a peer's file lands, relative to the category directory.
pub fn dest_path(peer: &str, remote_path: &str) -> String {
    format!("{peer}/{remote_path}")
}

/// What a diff needs besides the two listings.
#[derive(Debug, Clone, Copy)]
pub struct DiffRules<'a> {
    /// The skip rules (`sync.skip`).
    pub skip: &'a SkipRules,
    /// Every node name of the cluster (for relayed copies).
    pub cluster_nodes: &'a BTreeSet<String>,
    /// Now, in Unix seconds (for ages).
    pub now_unix: f64,
    /// The versions given up on, by peer path (see [`Skip::GivenUp`]).
    pub given_up: &'a BTreeMap<String, Version>,
}

fn skip_reason(op: &PullOp, entry: &InventoryEntry, rules: &DiffRules<'_>) -> Option<Skip> {
    let DiffRules {
        skip,
        cluster_nodes,
        now_unix,
        given_up,
    } = *rules;
    if let Some(reason) = unsafe_path(&entry.path) {
        return Some(Skip::Unsafe(reason));
    }
    if entry.path.split('/').any(is_unfinished_name) {
        return Some(Skip::Temporary);
    }
    if given_up
        .get(&entry.path)
        .is_some_and(|version| version.same_as(&Version::of(entry)))
    {
        return Some(Skip::GivenUp);
    }
    if skip.skip_relayed {
        let mut segments = entry.path.split('/');
        if let (Some(first), Some(_)) = (segments.next(), segments.next()) {
            if cluster_nodes.contains(first) {
                return Some(Skip::Relayed);
            }
        }
    }
    if let Some(max_age) = skip.max_age.get(&op.category) {
        if now_unix - entry.mtime > max_age.as_secs_f64() {
            return Some(Skip::TooOld);
        }
    }
    None
}

/// The local paths whose sha256 [`diff`] needs: held files whose size equals the peer's copy (and that no skip
/// rule excludes first).
pub fn files_to_hash(
    op: &PullOp,
    remote: &[InventoryEntry],
    local: &BTreeMap<String, LocalFile>,
    rules: &DiffRules<'_>,
) -> Vec<String> {
    remote
        .iter()
        .filter(|e| e.category == op.category)
        .filter(|e| skip_reason(op, e, rules).is_none())
        .filter(|_| !rules.skip.keep_existing.contains(&op.category))
        .filter_map(|e| {
            let dest = dest_path(&op.peer, &e.path);
            local
                .get(&dest)
                .filter(|l| l.size == e.size && l.sha256.is_none())
                .map(|_| dest)
        })
        .collect()
}

/// The transfers of operation `op`: the peer's `remote` inventory (entries of other categories are ignored)
/// against the `local` files of the category directory.
pub fn diff(
    op: &PullOp,
    remote: &[InventoryEntry],
    local: &BTreeMap<String, LocalFile>,
    rules: &DiffRules<'_>,
) -> OpPlan {
    let mut plan = OpPlan::default();
    for entry in remote.iter().filter(|e| e.category == op.category) {
        if let Some(reason) = skip_reason(op, entry, rules) {
            plan.skipped.push((entry.path.clone(), reason));
            continue;
        }
        let dest = dest_path(&op.peer, &entry.path);
        let held = local.get(&dest);
        if held.is_some() && rules.skip.keep_existing.contains(&op.category) {
            plan.skipped.push((entry.path.clone(), Skip::KeptExisting));
            continue;
        }
        let mut unchanged_if = None;
        if let Some(held) = held.filter(|h| h.size == entry.size) {
            match (&entry.sha256, &held.sha256) {
                (Some(remote_sum), Some(local_sum))
                    if remote_sum.eq_ignore_ascii_case(local_sum) =>
                {
                    plan.skipped.push((entry.path.clone(), Skip::Unchanged));
                    continue;
                }
                (None, Some(local_sum)) => unchanged_if = Some(local_sum.clone()),
                _ => {}
            }
        }
        plan.transfers.push(Transfer {
            peer: op.peer.clone(),
            category: op.category.clone(),
            remote_path: entry.path.clone(),
            dest_path: dest,
            size: entry.size,
            mtime: entry.mtime,
            sha256: entry.sha256.clone(),
            replaces: held.is_some(),
            unchanged_if,
        });
    }
    plan
}

/// The config key (`hex8_2p`) a games file belongs to, from its path: the first directory, else the file name
/// up to the first `-` or `.` (`hex8_2p/hex8_2p-0001.db`, `hex8_2p.db`, `hex8_2p-0001.db`).
pub fn config_of_games_path(path: &str) -> String {
    let mut segments = path.split('/');
    let first = segments.next().unwrap_or_default();
    if segments.next().is_some() {
        return first.to_string();
    }
    first.split(['-', '.']).next().unwrap_or(first).to_string()
}

/// Free disk too low for a pull: what is free and what the file needs (its size plus `sync.min_free_disk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not enough free disk: {free} bytes free, {needed} needed (the file plus sync.min_free_disk)"
)]
pub struct DiskShort {
    pub free: u64,
    pub needed: u64,
}

/// Whether a file of `size` bytes may be pulled onto a filesystem with `free` bytes free, keeping `reserve`
/// (`sync.min_free_disk`) free beyond it. An unknown `free` (the filesystem could not be asked) lets it through:
/// the write itself then fails cleanly into the temp file.
pub fn check_free_disk(free: Option<u64>, size: u64, reserve: u64) -> Result<(), DiskShort> {
    let needed = size.saturating_add(reserve);
    match free {
        Some(free) if free < needed => Err(DiskShort { free, needed }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_pull_needs_the_file_plus_the_reserve_free() {
        assert_eq!(check_free_disk(Some(150), 100, 50), Ok(()));
        assert_eq!(
            check_free_disk(Some(149), 100, 50),
            Err(DiskShort {
                free: 149,
                needed: 150
            })
        );
        assert_eq!(
            check_free_disk(Some(0), 0, 1),
            Err(DiskShort { free: 0, needed: 1 })
        );
        // A huge reserve never overflows; an unknown free space lets the pull through.
        assert!(check_free_disk(Some(u64::MAX - 1), u64::MAX, u64::MAX).is_err());
        assert_eq!(check_free_disk(None, u64::MAX, u64::MAX), Ok(()));
        let text = check_free_disk(Some(10), 20, 5).unwrap_err().to_string();
        assert!(text.contains("10 bytes free, 25 needed"), "{text}");
    }

    use super::*;
    use crate::sync::config::{default_pulls, RoleFilter};

    fn peer(name: &str, roles: &[Role]) -> Peer {
        Peer {
            name: name.into(),
            roles: roles.to_vec(),
            data_url: Some(format!("http://{name}:8766")),
            api_url: None,
            ssh: None,
        }
    }

    fn entry(
        category: &str,
        path: &str,
        size: u64,
        sha: Option<&str>,
        mtime: f64,
    ) -> InventoryEntry {
        InventoryEntry {
            category: category.into(),
            path: path.into(),
            size,
            mtime,
            sha256: sha.map(str::to_string),
        }
    }

    fn cluster() -> Vec<Peer> {
        vec![
            peer("trainer", &[Role::Training]),
            peer("w1", &[Role::Selfplay]),
            peer("w2", &[Role::Selfplay]),
        ]
    }

    fn op(peer: &str, category: &str) -> PullOp {
        PullOp {
            peer: peer.into(),
            category: category.into(),
        }
    }

    #[test]
    fn training_node_pulls_games_and_training_from_workers_workers_pull_models() {
        let peers = cluster();
        let rules = default_pulls();
        assert_eq!(
            operations("trainer", &[Role::Training], &peers, &rules, None),
            [
                op("w1", "games"),
                op("w2", "games"),
                op("w1", "training"),
                op("w2", "training")
            ]
        );
        assert_eq!(
            operations("w1", &[Role::Selfplay], &peers, &rules, None),
            [op("trainer", "models")]
        );
        assert_eq!(
            operations("trainer", &[Role::Training], &peers, &rules, Some("w2")),
            [op("w2", "games"), op("w2", "training")]
        );
    }

    #[test]
    fn a_node_never_pulls_from_itself() {
        let both = [Role::Selfplay, Role::Training];
        let alone = vec![peer("solo", &both)];
        assert!(operations("solo", &both, &alone, &default_pulls(), None).is_empty());
    }

    #[test]
    fn duplicate_rules_give_one_operation() {
        let rules = vec![
            PullRule {
                category: "models".into(),
                from: RoleFilter::Any,
                to: RoleFilter::Any,
            },
            PullRule {
                category: "models".into(),
                from: RoleFilter::Training,
                to: RoleFilter::Selfplay,
            },
        ];
        assert_eq!(
            operations("w1", &[Role::Selfplay], &cluster(), &rules, None),
            [op("trainer", "models"), op("w2", "models")]
        );
    }

    #[test]
    fn workers_notify_the_training_nodes() {
        let peers = cluster();
        let targets: Vec<&str> = notify_targets("w1", &[Role::Selfplay], &peers, &default_pulls())
            .into_iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(targets, ["trainer"]);
        assert!(notify_targets("trainer", &[Role::Training], &peers, &default_pulls()).is_empty());
    }

    const NOW: f64 = 1_000_000.0;

    const NOTHING_GIVEN_UP: &BTreeMap<String, Version> = &BTreeMap::new();

    fn rules<'a>(skip: &'a SkipRules, nodes: &'a BTreeSet<String>) -> DiffRules<'a> {
        DiffRules {
            skip,
            cluster_nodes: nodes,
            now_unix: NOW,
            given_up: NOTHING_GIVEN_UP,
        }
    }

    fn plan(remote: &[InventoryEntry], local: &[(&str, u64, Option<&str>)]) -> OpPlan {
        let local: BTreeMap<String, LocalFile> = local
            .iter()
            .map(|(p, size, sha)| {
                (
                    p.to_string(),
                    LocalFile {
                        size: *size,
                        sha256: sha.map(str::to_string),
                    },
                )
            })
            .collect();
        let nodes: BTreeSet<String> = ["trainer", "w1", "w2"].map(String::from).into();
        diff(
            &op("w1", "games"),
            remote,
            &local,
            &rules(&SkipRules::default(), &nodes),
        )
    }

    #[test]
    fn new_files_land_under_the_source_node() {
        let p = plan(&[entry("games", "hex8_2p/a.db", 10, Some("aa"), NOW)], &[]);
        assert_eq!(p.transfers.len(), 1);
        let t = &p.transfers[0];
        assert_eq!(t.dest_path, "w1/hex8_2p/a.db");
        assert_eq!(t.remote_path, "hex8_2p/a.db");
        assert!(!t.replaces);
        assert_eq!(t.unchanged_if, None);
    }

    #[test]
    fn a_version_given_up_on_is_skipped_until_the_peer_lists_another() {
        let bad = entry("games", "bad.db", 10, Some("aa"), NOW);
        let given_up: BTreeMap<String, Version> =
            [("bad.db".to_string(), Version::of(&bad))].into();
        let nodes: BTreeSet<String> = ["w1".to_string()].into();
        let skip = SkipRules::default();
        let rules = DiffRules {
            given_up: &given_up,
            ..rules(&skip, &nodes)
        };
        let remote = [
            entry("games", "bad.db", 10, Some("AA"), NOW + 5.0),
            entry("games", "good.db", 10, Some("aa"), NOW),
        ];
        let p = diff(&op("w1", "games"), &remote, &BTreeMap::new(), &rules);
        assert_eq!(
            p.skipped,
            [("bad.db".to_string(), Skip::GivenUp)],
            "the same content touched again is the same version"
        );
        assert_eq!(p.transfers.len(), 1);
        assert!(files_to_hash(&op("w1", "games"), &remote, &BTreeMap::new(), &rules).is_empty());
        for changed in [
            entry("games", "bad.db", 11, Some("aa"), NOW),
            entry("games", "bad.db", 10, Some("bb"), NOW),
            entry("games", "bad.db", 10, None, NOW),
        ] {
            let p = diff(
                &op("w1", "games"),
                std::slice::from_ref(&changed),
                &BTreeMap::new(),
                &rules,
            );
            assert_eq!(p.transfers.len(), 1, "{changed:?} is another version");
        }
        let unhashed = entry("games", "u.db", 10, None, NOW);
        let version = Version::of(&unhashed);
        assert!(version.same_as(&Version::of(&unhashed)));
        assert!(!version.same_as(&Version::of(&entry("games", "u.db", 10, None, NOW + 1.0))));
        assert_eq!(
            Version::of_transfer(&p.transfers[0]),
            Version::of(&remote[1])
        );
    }

    #[test]
    fn same_size_and_sha_is_not_fetched_changed_replaces() {
        let remote = [
            entry("games", "same.db", 10, Some("AA"), NOW),
            entry("games", "resized.db", 11, Some("bb"), NOW),
            entry("games", "rehashed.db", 10, Some("cc"), NOW),
            entry("games", "unhashed.db", 10, None, NOW),
            entry("models", "m.pth", 1, None, NOW),
        ];
        let local = [
            ("w1/same.db", 10, Some("aa")),
            ("w1/resized.db", 10, Some("bb")),
            ("w1/rehashed.db", 10, Some("c0")),
            ("w1/unhashed.db", 10, Some("dd")),
        ];
        let p = plan(&remote, &local);
        assert_eq!(p.skipped, [("same.db".to_string(), Skip::Unchanged)]);
        let fetched: Vec<(&str, bool, Option<&str>)> = p
            .transfers
            .iter()
            .map(|t| {
                (
                    t.remote_path.as_str(),
                    t.replaces,
                    t.unchanged_if.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            fetched,
            [
                ("resized.db", true, None),
                ("rehashed.db", true, None),
                ("unhashed.db", true, Some("dd"))
            ]
        );
    }

    #[test]
    fn skip_rules() {
        let old = NOW - 169.0 * 3600.0;
        let remote = [
            entry("games", "old.db", 1, None, old),
            entry("games", "w2/relayed.db", 1, None, NOW),
            entry("games", "x.db-wal", 1, None, NOW),
            entry("games", "dir/.x.db.tmp", 1, None, NOW),
            entry("games", "../escape.db", 1, None, NOW),
            entry("games", "/abs.db", 1, None, NOW),
            entry("games", "a//b.db", 1, None, NOW),
            entry("games", "w3/not-a-node.db", 1, None, NOW),
        ];
        let p = plan(&remote, &[]);
        let reasons: Vec<(&str, &Skip)> = p.skipped.iter().map(|(p, s)| (p.as_str(), s)).collect();
        assert_eq!(reasons[0], ("old.db", &Skip::TooOld));
        assert_eq!(reasons[1], ("w2/relayed.db", &Skip::Relayed));
        assert_eq!(reasons[2], ("x.db-wal", &Skip::Temporary));
        assert_eq!(reasons[3], ("dir/.x.db.tmp", &Skip::Temporary));
        assert!(matches!(reasons[4].1, Skip::Unsafe(_)));
        assert!(matches!(reasons[5].1, Skip::Unsafe(_)));
        assert!(matches!(reasons[6].1, Skip::Unsafe(_)));
        assert_eq!(p.transfers.len(), 1);
        assert_eq!(p.transfers[0].remote_path, "w3/not-a-node.db");
    }

    #[test]
    fn keep_existing_categories_are_pulled_once() {
        let nodes = BTreeSet::new();
        let local: BTreeMap<String, LocalFile> = [(
            "w1/t.npz".to_string(),
            LocalFile {
                size: 1,
                sha256: None,
            },
        )]
        .into();
        let remote = [
            entry("training", "t.npz", 2, None, NOW),
            entry("training", "u.npz", 2, None, NOW),
        ];
        let op = op("w1", "training");
        let skip = SkipRules::default();
        let p = diff(&op, &remote, &local, &rules(&skip, &nodes));
        assert_eq!(p.skipped, [("t.npz".to_string(), Skip::KeptExisting)]);
        assert_eq!(p.transfers.len(), 1);
        assert!(files_to_hash(&op, &remote, &local, &rules(&skip, &nodes)).is_empty());
    }

    #[test]
    fn only_same_size_unhashed_files_need_hashing() {
        let nodes = BTreeSet::new();
        let local: BTreeMap<String, LocalFile> = [
            ("w1/a.db", 5, None),
            ("w1/b.db", 6, None),
            ("w1/c.db", 5, Some("x".to_string())),
        ]
        .into_iter()
        .map(|(p, size, sha256)| (p.to_string(), LocalFile { size, sha256 }))
        .collect();
        let remote = [
            entry("games", "a.db", 5, None, NOW),
            entry("games", "b.db", 5, None, NOW),
            entry("games", "c.db", 5, None, NOW),
        ];
        let hash = files_to_hash(
            &op("w1", "games"),
            &remote,
            &local,
            &rules(&SkipRules::default(), &nodes),
        );
        assert_eq!(hash, ["w1/a.db"]);
    }

    #[test]
    fn unsafe_paths() {
        for bad in ["", "/a", "a/../b", "./a", "a\\b", "a/", "a\0b"] {
            assert!(unsafe_path(bad).is_some(), "{bad:?}");
        }
        for good in ["a.db", "x/y/z.db", "..a", "a..b/c"] {
            assert_eq!(unsafe_path(good), None, "{good:?}");
        }
    }

    #[test]
    fn config_keys_from_games_paths() {
        let table = [
            ("hex8_2p/hex8_2p-0001.db", "hex8_2p"),
            ("hex8_2p.db", "hex8_2p"),
            ("square8_3p-0001.db", "square8_3p"),
        ];
        for (path, key) in table {
            assert_eq!(config_of_games_path(path), key, "{path}");
        }
    }
}
