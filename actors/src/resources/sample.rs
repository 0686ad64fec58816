//! What the OS says about this node: CPU, memory, load, and the disk use of every watched directory, read
//! through `sysinfo` (no hand-parsed /proc). [`OsSampler`] keeps the state `sysinfo` needs between reads (CPU
//! use is measured over the time since the previous sample, so the first sample has none); which disk a
//! directory lives on is the pure [`mount_of`].
//!
//! Disk use is `(total − available) / total`: space reserved for root counts as used, because this daemon (and
//! the jobs it starts) cannot write there. A directory that does not exist yet is measured on its nearest
//! existing parent (where it will be created); a directory whose disk cannot be found or read is an error,
//! which the policy counts as critical.

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
            let disk = &disks.list()[i];
            let total = disk.total_space();
            let available = disk.available_space().min(total);
            if total == 0 {
                return DiskReading::unreadable(
                    root,
                    format!("{} reports a size of 0", disk.mount_point().display()),
                );
            }
            DiskReading {
                path: root.clone(),
                mount: Some(disk.mount_point().to_path_buf()),
                total_bytes: total,
                available_bytes: available,
                used_percent: Some(100.0 * (total - available) as f64 / total as f64),
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
