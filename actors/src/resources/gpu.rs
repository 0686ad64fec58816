//! GPUs as `nvidia-smi` reports them: the query, a pure parser of its CSV reply, and the probe that runs it.
//!
//! The probe runs `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total
//! --format=csv,noheader,nounits` as a child process awaited asynchronously under a deadline (the actor's thread
//! never blocks on it; a reply that misses the deadline is killed). Not on PATH → [`GpuProbe::NotInstalled`], a
//! CPU-only node and not an error; a garbled reply, a failed run or a timeout → [`GpuProbe::Failed`], which the
//! policy turns into one warning and the last good reading.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The `--query-gpu` fields, in the order the parser expects them.
pub const QUERY_FIELDS: &str = "index,name,utilization.gpu,memory.used,memory.total";

/// The arguments given to the GPU command.
pub fn query_args() -> [String; 2] {
    [
        format!("--query-gpu={QUERY_FIELDS}"),
        "--format=csv,noheader,nounits".to_string(),
    ]
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Its index on the node.
    pub index: u32,
    /// Model name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Utilization %, `None` when the driver reports `[N/A]`.
    pub utilization_percent: Option<f64>,
    /// Memory in use (MiB).
    pub memory_used_mib: f64,
    /// Memory in all (MiB).
    pub memory_total_mib: f64,
}

impl GpuInfo {
    /// Memory use %, `None` when the total is unknown.
    pub fn memory_percent(&self) -> Option<f64> {
        (self.memory_total_mib > 0.0).then(|| 100.0 * self.memory_used_mib / self.memory_total_mib)
    }
}

/// What the node's GPUs add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSummary {
    /// Number of GPUs.
    pub count: u32,
    /// Model of the first GPU.
    pub name: String,
    /// Mean utilization % of the GPUs that report one.
    pub utilization_percent: Option<f64>,
    /// Highest memory use % (the GPU closest to running out decides).
    pub memory_percent: Option<f64>,
    /// Memory of all GPUs (GB).
    pub memory_total_gb: f64,
}

impl GpuSummary {
    /// The summary of `gpus`; `None` for an empty list.
    pub fn of(gpus: &[GpuInfo]) -> Option<GpuSummary> {
        let first = gpus.first()?;
        let utils: Vec<f64> = gpus.iter().filter_map(|g| g.utilization_percent).collect();
        let utilization_percent =
            (!utils.is_empty()).then(|| utils.iter().sum::<f64>() / utils.len() as f64);
        let memory_percent = gpus
            .iter()
            .filter_map(GpuInfo::memory_percent)
            .fold(None, |max: Option<f64>, m| {
                Some(max.map_or(m, |x| x.max(m)))
            });
        Some(GpuSummary {
            count: gpus.len() as u32,
            name: first.name.clone(),
            utilization_percent,
            memory_percent,
            memory_total_gb: gpus.iter().map(|g| g.memory_total_mib).sum::<f64>() / 1024.0,
        })
    }
}

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GpuParseError {
    /// A line without the five fields.
    #[error(
        "line {line}: expected 5 comma-separated fields ({QUERY_FIELDS}), got {found}: {text:?}"
    )]
    Fields {
        line: usize,
        found: usize,
        text: String,
    },
    /// A field that is not a number.
    #[error("line {line}: {field} is {value:?}, expected a number")]
    Number {
        line: usize,
        field: &'static str,
        value: String,
    },
    /// No line at all.
    #[error("the reply lists no GPU")]
    Empty,
}

fn number(line: usize, field: &'static str, value: &str) -> Result<f64, GpuParseError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| GpuParseError::Number {
            line,
            field,
            value: value.to_string(),
        })
}

/// `[N/A]`, `[Not Supported]` and friends: the driver has no value.
fn not_available(value: &str) -> bool {
    value.starts_with('[') && value.ends_with(']') || value.eq_ignore_ascii_case("N/A")
}

/// Parses the CSV reply of the query (see [`QUERY_FIELDS`]), one GPU a line.
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<GpuInfo>, GpuParseError> {
    let mut gpus = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split(',').map(str::trim).collect();
        if fields.len() != 5 {
            return Err(GpuParseError::Fields {
                line,
                found: fields.len(),
                text: raw.to_string(),
            });
        }
        let index = number(line, "index", fields[0])? as u32;
        let utilization_percent = if not_available(fields[2]) {
            None
        } else {
            Some(number(line, "utilization.gpu", fields[2])?.min(100.0))
        };
        let memory_used_mib = if not_available(fields[3]) {
            0.0
        } else {
            number(line, "memory.used", fields[3])?
        };
        let memory_total_mib = if not_available(fields[4]) {
            0.0
        } else {
            number(line, "memory.total", fields[4])?
        };
        gpus.push(GpuInfo {
            index,
            name: fields[1].to_string(),
            utilization_percent,
            memory_used_mib,
            memory_total_mib,
        });
    }
    if gpus.is_empty() {
        return Err(GpuParseError::Empty);
    }
    Ok(gpus)
}

/// What one GPU query found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GpuProbe {
    /// The command is not on PATH: a CPU-only node.
    NotInstalled,
    /// The GPUs.
    Read(Vec<GpuInfo>),
    /// The command ran but its answer is unusable (exit status, timeout, garbled reply).
    Failed(String),
}

/// Where `command` is: itself when it names a path, else the first executable match on `path_var`.
pub fn find_on_path(command: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let is_executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let p = PathBuf::from(command);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(command))
        .find(|p| is_executable(p))
}

/// Runs the GPU query with a deadline. Never blocks the calling thread: the child is awaited asynchronously and
/// killed if it misses `timeout`.
pub async fn probe(command: &str, timeout: Duration) -> GpuProbe {
    let Some(program) = find_on_path(command, std::env::var_os("PATH").as_deref()) else {
        return GpuProbe::NotInstalled;
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(query_args())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, cmd.output()).await {
        Err(_) => {
            return GpuProbe::Failed(format!(
                "{} did not answer within {}",
                program.display(),
                humantime::format_duration(timeout)
            ))
        }
        Ok(Err(error)) => {
            return GpuProbe::Failed(format!("{} could not run: {error}", program.display()))
        }
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return GpuProbe::Failed(format!(
            "{} exited with {}: {}",
            program.display(),
            output.status,
            stderr.trim()
        ));
    }
    match parse_nvidia_smi(&String::from_utf8_lossy(&output.stdout)) {
        Ok(gpus) => GpuProbe::Read(gpus),
        Err(error) => GpuProbe::Failed(format!("{} answered garbage: {error}", program.display())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The real reply format of `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total
    /// --format=csv,noheader,nounits` on a two-GPU H100 node (driver 535): comma plus space, no units, no header.
    pub const H100_FIXTURE: &str = "0, NVIDIA H100 80GB HBM3, 35, 20345, 81559\n\
                                    1, NVIDIA H100 80GB HBM3, 91, 74120, 81559\n";
    /// Replies of the same query on other nodes (one line each; names exactly as the drivers print them).
    pub const MODELS_FIXTURE: &str = "0, NVIDIA GH200 480GB, 62, 50112, 97871\n\
                                      0, NVIDIA H100 80GB HBM3, 35, 20345, 81559\n\
                                      0, NVIDIA GeForce RTX 4090, 48, 9021, 24564\n\
                                      0, NVIDIA A100-SXM4-80GB, 70, 40110, 81920\n\
                                      0, NVIDIA A100-SXM4-40GB, 70, 20110, 40960\n\
                                      0, NVIDIA A100 80GB PCIe, 70, 40110, 81920\n\
                                      0, NVIDIA H200, 55, 70000, 143771\n\
                                      0, NVIDIA L40S, 51, 20000, 46068\n\
                                      0, NVIDIA GeForce RTX 3090, 40, 9000, 24576\n\
                                      0, NVIDIA A10, 30, 5000, 23028\n\
                                      0, NVIDIA A10G, 30, 5000, 23028\n\
                                      0, Tesla V100-SXM2-16GB, 20, 3000, 16384\n";
    /// A GPU whose driver has no utilization counter (seen on some vGPUs and Jetsons).
    pub const NA_FIXTURE: &str = "0, NVIDIA A10G, [N/A], 512, 23028\n";

    #[test]
    fn parses_the_real_format() {
        let gpus = parse_nvidia_smi(H100_FIXTURE).unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].utilization_percent, Some(35.0));
        assert_eq!(gpus[1].index, 1);
        assert_eq!(gpus[1].memory_used_mib, 74120.0);
        let summary = GpuSummary::of(&gpus).unwrap();
        assert_eq!(summary.count, 2);
        assert_eq!(summary.utilization_percent, Some(63.0));
        let max_mem = 100.0 * 74120.0 / 81559.0;
        assert!((summary.memory_percent.unwrap() - max_mem).abs() < 1e-9);
        assert!((summary.memory_total_gb - 2.0 * 81559.0 / 1024.0).abs() < 1e-9);
    }

    #[test]
    fn reported_names_map_to_the_scheduler_gpu_table() {
        use crate::scheduler::config::GpuTable;
        use crate::scheduler::target_jobs::HardwareClass;
        let table = GpuTable::default();
        let gpus = parse_nvidia_smi(MODELS_FIXTURE).unwrap();
        let expected = [
            (Some("GH200"), HardwareClass::Gh200),
            (Some("H100"), HardwareClass::H100),
            (Some("RTX_4090"), HardwareClass::Consumer),
            (Some("A100_80"), HardwareClass::A100),
            (Some("A100"), HardwareClass::A100),
            (Some("A100_80"), HardwareClass::A100),
            (Some("H200"), HardwareClass::H100),
            (Some("L40S"), HardwareClass::A100),
            (Some("RTX_3090"), HardwareClass::Consumer),
            (Some("A10"), HardwareClass::Consumer),
            // Not rows of the table: the unknown row plans them, the class table still knows the A10G.
            (None, HardwareClass::Consumer),
            (None, HardwareClass::UnknownGpu),
        ];
        assert_eq!(gpus.len(), expected.len());
        for (gpu, (row, class)) in gpus.iter().zip(expected) {
            let found = table.model_of(&gpu.name).map(|m| m.name.as_str());
            assert_eq!(found, row, "{}", gpu.name);
            let choice = table.choose("unknown", Some(&gpu.name));
            assert_eq!(
                HardwareClass::of(Some(&choice.model)),
                class,
                "{}",
                gpu.name
            );
        }
        // The plan's numbers follow: a GH200 as reported gets the GH200 row, not the unknown one.
        assert_eq!(table.profile("NVIDIA GH200 480GB").games_cap, 2000);
        assert_eq!(table.profile("NVIDIA GeForce RTX 4090").games_cap, 400);
        assert_eq!(table.profile("Tesla V100-SXM2-16GB").games_cap, 500);
    }

    #[test]
    fn not_available_values_are_none() {
        let gpus = parse_nvidia_smi(NA_FIXTURE).unwrap();
        assert_eq!(gpus[0].utilization_percent, None);
        let summary = GpuSummary::of(&gpus).unwrap();
        assert_eq!(summary.utilization_percent, None);
        assert_eq!(summary.name, "NVIDIA A10G");
    }

    #[test]
    fn garbled_replies_name_the_line() {
        let cases = [
            ("", "no GPU"),
            ("0, H100, 35\n", "line 1: expected 5"),
            (
                "0, H100, 35, 1, 2\n1, H100, lots, 1, 2\n",
                "line 2: utilization.gpu",
            ),
            (
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
                "line 1",
            ),
            ("0, H100, -5, 1, 2", "utilization.gpu"),
        ];
        for (text, expected) in cases {
            let error = parse_nvidia_smi(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_query_asks_for_the_parsed_fields() {
        let [query, format] = query_args();
        assert_eq!(
            query,
            "--query-gpu=index,name,utilization.gpu,memory.used,memory.total"
        );
        assert_eq!(format, "--format=csv,noheader,nounits");
    }

    #[test]
    fn finds_commands_on_path_only_when_executable() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-smi");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert_eq!(find_on_path("fake-smi", Some(&path)), None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_on_path("fake-smi", Some(&path)), Some(script.clone()));
        assert_eq!(
            find_on_path(script.to_str().unwrap(), None),
            Some(script.clone())
        );
        assert_eq!(find_on_path("fake-smi", None), None);
        assert_eq!(find_on_path("no-such-smi", Some(&path)), None);
    }

    fn write_script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("nvidia-smi");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn probe_reads_fails_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let script = write_script(dir.path(), &format!("printf '{}'", H100_FIXTURE.replace('\n', "\\n")));
            let command = script.to_str().unwrap().to_string();
            assert!(matches!(probe(&command, Duration::from_secs(10)).await, GpuProbe::Read(g) if g.len() == 2));
            write_script(dir.path(), "echo 'Failed to initialize NVML' >&2; exit 9");
            let failed = probe(&command, Duration::from_secs(10)).await;
            assert!(matches!(&failed, GpuProbe::Failed(e) if e.contains("NVML")), "{failed:?}");
            write_script(dir.path(), "echo garbage");
            assert!(matches!(probe(&command, Duration::from_secs(10)).await, GpuProbe::Failed(e) if e.contains("garbage")));
            write_script(dir.path(), "exec sleep 30");
            let started = std::time::Instant::now();
            let slow = probe(&command, Duration::from_millis(300)).await;
            assert!(matches!(&slow, GpuProbe::Failed(e) if e.contains("did not answer")), "{slow:?}");
            assert!(started.elapsed() < Duration::from_secs(10));
            let missing = dir.path().join("absent").to_str().unwrap().to_string();
            assert_eq!(probe(&missing, Duration::from_secs(1)).await, GpuProbe::NotInstalled);
        });
    }
}
