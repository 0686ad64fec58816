//! What the OS says about this node: CPU, memory, load, and the disk use of every watched directory, read
//! through `sysinfo` (no hand-parsed /proc). [`OsSampler`] keeps the state `sysinfo` needs between reads (CPU
//! use is measured over the time since the previous sample, so the first sample has none); which disk a
//! directory lives on is the pure [`mount_of`].
//!
//! Disk use is `df`'s `Use%`: used / (used + available to unprivileged users), from `statvfs` of the directory
//! itself (so it is exactly the filesystem that holds it); `sysinfo`'s mount list names that filesystem. At 100 %
//! nothing more can be written by this daemon or its jobs. A directory that does not exist yet is measured on its
//! nearest existing parent (where it will be created); a directory whose disk cannot be found or read is an
//! error, which the policy counts as critical.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};

/// The disk use of one watched directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskReading {
    /// The watched directory, as configured.
    pub path: PathBuf,
    /// Mount point of the filesystem it is on.
    pub mount: Option<PathBuf>,
    /// Size of that filesystem (bytes).
    pub total_bytes: u64,
    /// Space this user can still write (bytes).
    pub available_bytes: u64,
    /// Use %, `None` when unreadable.
    pub used_percent: Option<f64>,
    /// Why it could not be read.
    pub error: Option<String>,
}

impl DiskReading {
    /// A directory whose disk could not be read, and why.
    pub fn unreadable(path: &Path, error: impl Into<String>) -> DiskReading {
        DiskReading {
            path: path.to_path_buf(),
            mount: None,
            total_bytes: 0,
            available_bytes: 0,
            used_percent: None,
            error: Some(error.into()),
        }
    }
}

/// One OS sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// CPU use % over the time since the previous sample (`None` on the first).
    pub cpu_percent: Option<f64>,
    /// Logical CPUs.
    pub cpu_cores: u32,
    /// Load average over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Memory in all (bytes).
    pub memory_total_bytes: u64,
    /// Memory available to new work (bytes).
    pub memory_available_bytes: u64,
    /// Memory use % (`None` when the OS reported no memory).
    pub memory_percent: Option<f64>,
    /// Every watched directory.
    pub disks: Vec<DiskReading>,
}

impl Sample {
    /// A sample that could not be taken at all (deadline missed, sampler busy): every disk unreadable.
    pub fn failed(roots: &[PathBuf], error: &str) -> Sample {
        Sample {
            cpu_percent: None,
            cpu_cores: 0,
            load: [0.0; 3],
            memory_total_bytes: 0,
            memory_available_bytes: 0,
            memory_percent: None,
            disks: roots
                .iter()
                .map(|r| DiskReading::unreadable(r, error))
                .collect(),
        }
    }

    /// Memory in all (GB, 10^9 bytes as the target-jobs table counts them).
    pub fn memory_total_gb(&self) -> f64 {
        self.memory_total_bytes as f64 / 1e9
    }
}

/// Index of the mount point in `mounts` that holds `path` (an absolute, canonical path): the longest one that
/// is a whole-component prefix of it.
pub fn mount_of(path: &Path, mounts: &[&Path]) -> Option<usize> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(m))
        .max_by_key(|(_, m)| m.components().count())
        .map(|(i, _)| i)
}

/// `df`'s use %: used / (used + available), from the filesystem's total, free and available-to-users bytes.
pub fn df_percent(total: u64, free: u64, available: u64) -> Option<f64> {
    let used = total.saturating_sub(free);
    let denominator = used + available.min(free);
    (denominator > 0).then(|| 100.0 * used as f64 / denominator as f64)
}

/// (total, free, available-to-users) bytes of the filesystem holding `path`.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a zeroed statvfs is a valid value of this plain C struct; statvfs only writes into it.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a NUL-terminated string that outlives the call; stats is ours to write.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = if stats.f_frsize > 0 {
        stats.f_frsize
    } else {
        stats.f_bsize
    } as u64;
    Ok((
        stats.f_blocks as u64 * unit,
        stats.f_bfree as u64 * unit,
        stats.f_bavail as u64 * unit,
    ))
}

/// `path` made absolute and canonical, or its nearest existing parent's when it does not exist yet.
fn existing_canonical(path: &Path) -> std::io::Result<PathBuf> {
    let mut candidate = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    loop {
        match candidate.canonicalize() {
            Ok(found) => return Ok(found),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !candidate.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the OS through `sysinfo`. Blocking (it reads /proc and calls statvfs on every mount): run it off the
/// actor's thread, under a deadline.
pub struct OsSampler {
    system: System,
    primed: bool,
}

impl Default for OsSampler {
    fn default() -> Self {
        OsSampler::new()
    }
}

impl OsSampler {
    pub fn new() -> OsSampler {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        OsSampler {
            system,
            primed: false,
        }
    }

    /// One sample of CPU, memory, load and the disks of `roots`.
    pub fn sample(&mut self, roots: &[PathBuf]) -> Sample {
        self.system.refresh_cpu_usage();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let cpu_percent = self
            .primed
            .then(|| f64::from(self.system.global_cpu_usage()).clamp(0.0, 100.0));
        self.primed = true;
        let load = System::load_average();
        let total = self.system.total_memory();
        let available = self.system.available_memory().min(total);
        let memory_percent = (total > 0).then(|| 100.0 * (total - available) as f64 / total as f64);
        Sample {
            cpu_percent,
            cpu_cores: self.system.cpus().len() as u32,
            load: [load.one, load.five, load.fifteen],
            memory_total_bytes: total,
            memory_available_bytes: available,
            memory_percent,
            disks: disk_readings(roots),
        }
    }
}

fn disk_readings(roots: &[PathBuf]) -> Vec<DiskReading> {
    let disks = Disks::new_with_refreshed_list();
    let mounts: Vec<&Path> = disks.list().iter().map(|d| d.mount_point()).collect();
    roots
        .iter()
        .map(|root| {
            let canonical = match existing_canonical(root) {
                Ok(p) => p,
                Err(e) => return DiskReading::unreadable(root, format!("cannot resolve: {e}")),
            };
            let Some(i) = mount_of(&canonical, &mounts) else {
                return DiskReading::unreadable(
                    root,
                    format!("no mounted filesystem holds {}", canonical.display()),
                );
            };
            let mount = disks.list()[i].mount_point().to_path_buf();
            let (total, free, available) = match statvfs(&canonical) {
                Ok(numbers) => numbers,
                Err(e) => return DiskReading::unreadable(root, format!("statvfs failed: {e}")),
            };
            let Some(used_percent) = df_percent(total, free, available) else {
                return DiskReading::unreadable(
                    root,
                    format!("{} reports a size of 0", mount.display()),
                );
            };
            DiskReading {
                path: root.clone(),
                mount: Some(mount),
                total_bytes: total,
                available_bytes: available,
                used_percent: Some(used_percent),
                error: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_whole_component_mount_wins() {
        let mounts = [
            Path::new("/"),
            Path::new("/data"),
            Path::new("/data/games"),
            Path::new("/dat"),
        ];
        let cases = [
            ("/data/games/hex8_2p/x.db", Some(2)),
            ("/data/models", Some(1)),
            ("/database", Some(0)),
            ("/dat/x", Some(3)),
            ("/", Some(0)),
        ];
        for (path, expected) in cases {
            assert_eq!(mount_of(Path::new(path), &mounts), expected, "{path}");
        }
        assert_eq!(mount_of(Path::new("/x"), &[Path::new("/data")]), None);
    }

    #[test]
    fn disk_use_is_dfs() {
        // 252 GB disk, 45 used, 47 available to users (the rest reserved for root): df says 49 %.
        let gb = 1_000_000_000;
        let used = df_percent(252 * gb, 207 * gb, 47 * gb).unwrap();
        assert!((used - 100.0 * 45.0 / 92.0).abs() < 1e-9, "{used}");
        assert_eq!(df_percent(100, 0, 0), Some(100.0));
        assert_eq!(df_percent(100, 100, 100), Some(0.0));
        assert_eq!(df_percent(0, 0, 0), None);
    }

    #[test]
    fn missing_directories_are_measured_where_they_will_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not/yet/there");
        assert_eq!(
            existing_canonical(&missing).unwrap(),
            dir.path().canonicalize().unwrap()
        );
    }

    #[test]
    fn a_real_sample_reads_memory_and_the_temp_disk() {
        let dir = tempfile::tempdir().unwrap();
        let roots = vec![dir.path().to_path_buf(), dir.path().join("later")];
        let mut sampler = OsSampler::new();
        let first = sampler.sample(&roots);
        assert_eq!(
            first.cpu_percent, None,
            "no CPU figure before a second read"
        );
        assert!(first.cpu_cores >= 1);
        assert!(first.memory_total_bytes > 0);
        assert!(first
            .memory_percent
            .is_some_and(|m| (0.0..=100.0).contains(&m)));
        assert_eq!(first.disks.len(), 2);
        for disk in &first.disks {
            assert_eq!(disk.error, None, "{disk:?}");
            assert!(disk
                .used_percent
                .is_some_and(|u| (0.0..=100.0).contains(&u)));
        }
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let second = sampler.sample(&roots);
        assert!(second
            .cpu_percent
            .is_some_and(|c| (0.0..=100.0).contains(&c)));
    }

    #[test]
    fn a_failed_sample_makes_every_disk_unreadable() {
        let sample = Sample::failed(&[PathBuf::from("/data")], "sample timed out");
        assert_eq!(sample.disks[0].used_percent, None);
        assert_eq!(sample.disks[0].error.as_deref(), Some("sample timed out"));
    }
}
