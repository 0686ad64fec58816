//! sha256 of served files, hashed in 64 KiB chunks on the blocking pool (never on a request thread) and cached by
//! (path, size, mtime) so a file is hashed once until it changes.
//!
//! It owns the cache and the hashing; it does not decide which files may be hashed (paths.rs does).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Bytes read per hashing step (the original's 64 KiB).
pub const HASH_CHUNK: usize = 64 * 1024;

/// Why a checksum could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// Reading the file failed.
    #[error("could not read {path} to hash it: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file's size or mtime changed while it was hashed (still being written).
    #[error("{path} changed while it was being hashed; retry once it is complete")]
    ChangedWhileHashing {
        /// The file.
        path: PathBuf,
    },
    /// The hashing task was cancelled or panicked.
    #[error("hashing task failed: {0}")]
    Task(String),
}

/// sha256 (lowercase hex) of everything `reader` yields, read in [`HASH_CHUNK`] pieces.
pub fn sha256_reader(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_CHUNK];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(hex::encode(hasher.finalize())),
            Ok(read) => hasher.update(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// sha256 (lowercase hex) of the file at `path`. Blocking.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    sha256_reader(File::open(path)?)
}

#[derive(Debug, Clone)]
struct CachedSum {
    size: u64,
    mtime: SystemTime,
    sha256: String,
}

/// The checksum cache shared by all request threads. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct ChecksumCache {
    entries: Arc<DashMap<PathBuf, CachedSum>>,
    permits: Arc<Semaphore>,
    computations: Arc<AtomicU64>,
}

impl ChecksumCache {
    /// An empty cache hashing at most `max_parallel` files at once.
    pub fn new(max_parallel: usize) -> Self {
        Self {
            entries: Arc::new(DashMap::new()),
            permits: Arc::new(Semaphore::new(max_parallel.max(1))),
            computations: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The cached sha256 of `path` if it was hashed at this exact size and mtime.
    pub fn cached(&self, path: &Path, size: u64, mtime: SystemTime) -> Option<String> {
        let entry = self.entries.get(path)?;
        (entry.size == size && entry.mtime == mtime).then(|| entry.sha256.clone())
    }

    /// How many files were hashed (not served from the cache) so far.
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }

    /// The sha256 of `path`, known to have `size` and `mtime`: from the cache, or hashed on the blocking pool.
    /// A file that changes while hashed gives [`ChecksumError::ChangedWhileHashing`] and is not cached.
    pub async fn checksum(
        &self,
        path: &Path,
        size: u64,
        mtime: SystemTime,
    ) -> Result<String, ChecksumError> {
        if let Some(sha256) = self.cached(path, size, mtime) {
            return Ok(sha256);
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|error| ChecksumError::Task(error.to_string()))?;
        // Another request may have hashed it while we waited for a permit.
        if let Some(sha256) = self.cached(path, size, mtime) {
            return Ok(sha256);
        }
        let owned = path.to_path_buf();
        let sha256 = tokio::task::spawn_blocking(move || hash_unchanged(&owned, size, mtime))
            .await
            .map_err(|error| ChecksumError::Task(error.to_string()))??;
        self.remember(path, size, mtime, &sha256);
        Ok(sha256)
    }

    /// [`ChecksumCache::checksum`] for callers already on a blocking thread (the sync coordinator's transfer
    /// threads): from the cache, or hashed here and now. No permit is taken.
    pub fn checksum_blocking(
        &self,
        path: &Path,
        size: u64,
        mtime: SystemTime,
    ) -> Result<String, ChecksumError> {
        if let Some(sha256) = self.cached(path, size, mtime) {
            return Ok(sha256);
        }
        let sha256 = hash_unchanged(path, size, mtime)?;
        self.remember(path, size, mtime, &sha256);
        Ok(sha256)
    }

    fn remember(&self, path: &Path, size: u64, mtime: SystemTime, sha256: &str) {
        self.computations.fetch_add(1, Ordering::Relaxed);
        self.entries.insert(
            path.to_path_buf(),
            CachedSum {
                size,
                mtime,
                sha256: sha256.to_string(),
            },
        );
    }
}

/// Hash `path` and check it still has `size` and `mtime` afterwards.
fn hash_unchanged(path: &Path, size: u64, mtime: SystemTime) -> Result<String, ChecksumError> {
    let read_error = |source| ChecksumError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let sha256 = sha256_reader(&file).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    let unchanged =
        metadata.len() == size && metadata.modified().map(|now| now == mtime).unwrap_or(false);
    if !unchanged {
        return Err(ChecksumError::ChangedWhileHashing {
            path: path.to_path_buf(),
        });
    }
    Ok(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_digests_and_multi_chunk_input() {
        assert_eq!(sha256_reader(&b""[..]).expect("hash"), EMPTY_SHA256);
        assert_eq!(sha256_reader(&b"abc"[..]).expect("hash"), ABC_SHA256);
        let big: Vec<u8> = (0..(3 * HASH_CHUNK + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        assert_eq!(
            sha256_reader(&big[..]).expect("hash"),
            hex::encode(Sha256::digest(&big))
        );
    }

    fn stat(path: &Path) -> (u64, SystemTime) {
        let metadata = std::fs::metadata(path).expect("metadata");
        (metadata.len(), metadata.modified().expect("mtime"))
    }

    #[tokio::test]
    async fn hashes_once_then_serves_from_cache_until_the_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"abc").expect("write");
        let cache = ChecksumCache::new(2);
        let (size, mtime) = stat(&path);
        assert_eq!(cache.cached(&path, size, mtime), None);
        assert_eq!(
            cache.checksum(&path, size, mtime).await.expect("hash"),
            ABC_SHA256
        );
        assert_eq!(
            cache.checksum(&path, size, mtime).await.expect("hash"),
            ABC_SHA256
        );
        assert_eq!(cache.computations(), 1);
        assert_eq!(
            cache.cached(&path, size, mtime).as_deref(),
            Some(ABC_SHA256)
        );

        std::fs::write(&path, b"").expect("rewrite");
        let later = mtime + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_modified(later)
            .expect("touch");
        let (size, mtime) = stat(&path);
        assert_eq!(cache.cached(&path, size, mtime), None);
        assert_eq!(
            cache.checksum(&path, size, mtime).await.expect("hash"),
            EMPTY_SHA256
        );
        assert_eq!(cache.computations(), 2);
    }

    #[tokio::test]
    async fn a_file_that_changed_since_stat_is_refused_and_not_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("growing.db");
        std::fs::write(&path, b"abc").expect("write");
        let cache = ChecksumCache::new(1);
        let (_, mtime) = stat(&path);
        let result = cache.checksum(&path, 2, mtime).await;
        assert!(
            matches!(result, Err(ChecksumError::ChangedWhileHashing { .. })),
            "{result:?}"
        );
        assert_eq!(cache.computations(), 0);
    }

    #[tokio::test]
    async fn a_missing_file_is_a_read_error_naming_it() {
        let cache = ChecksumCache::new(1);
        let error = cache
            .checksum(Path::new("/nonexistent/x.db"), 1, SystemTime::UNIX_EPOCH)
            .await
            .expect_err("fails");
        assert!(error.to_string().contains("/nonexistent/x.db"), "{error}");
    }
}
