use std::path::PathBuf;

use super::*;
use crate::resources::gpu::parse_nvidia_smi;
use crate::resources::gpu::tests::H100_FIXTURE;
use crate::resources::sample::DiskReading;

fn band() -> BandConfig {
    BandConfig::default()
}

fn input(u: f64, running: u32) -> ControlInput {
    ControlInput {
        utilization: Some(u),
        gpu_primary: false,
        cpu_percent: Some(u),
        gpu_memory_percent: None,
        running: Some(running),
        cap: 64,
    }
}

#[test]
fn rate_negotiation_domain_examples() {
    let (b, r) = (band(), RateConfig::default());
    let rate = |u: Option<f64>, m: Option<f64>| negotiate_rate(1000.0, u, m, &b, &r);
    assert!((rate(Some(35.0), None) - 1500.0).abs() < 1e-9);
    assert!((rate(Some(92.0), None) - 760.0).abs() < 1e-9);
    assert!((rate(Some(70.0), Some(95.0)) - 300.0).abs() < 1e-9);
    assert!((rate(Some(70.0), Some(85.0)) - 700.0).abs() < 1e-9);
    assert!((rate(Some(70.0), None) - 1000.0).abs() < 1e-9);
    assert!((rate(Some(50.0), None) - 1200.0).abs() < 1e-9);
    assert!((rate(None, None) - 1000.0).abs() < 1e-9);
    // Bounded both ways: ×0.5 at worst, ×1.5 at best, and 100..5000 games/hour.
    assert!((rate(Some(100.0), None) - 600.0).abs() < 1e-9);
    assert!((negotiate_rate(80.0, Some(99.0), Some(99.0), &b, &r) - 100.0).abs() < 1e-9);
    assert!((negotiate_rate(4000.0, Some(0.0), None, &b, &r) - 5000.0).abs() < 1e-9);
}

#[test]
fn far_outside_the_band_it_acts_at_once() {
    let b = band();
    // Below 55: +2 jobs (the estimate says 4 jobs at 10 % each land at 60).
    let mut c = BandController::new(4);
    let d = c.step(&input(40.0, 4), &b);
    assert_eq!((d.target, d.change), (6, Change::Up), "{}", d.reason);
    // Above 85: −1 job.
    let mut c = BandController::new(10);
    let d = c.step(&input(90.0, 10), &b);
    assert_eq!((d.target, d.change), (9, Change::Down), "{}", d.reason);
    // Inside the band: nothing, whatever the noise.
    let mut c = BandController::new(7);
    for u in [60.0, 64.0, 70.0, 79.9, 80.0] {
        assert_eq!(c.step(&input(u, 7), &b).change, Change::Hold, "{u}");
    }
}

#[test]
fn hysteresis_edges() {
    let b = band();
    // 55 is not "below 55": it is between the band and the threshold, corrected by one job after 2 samples.
    let mut c = BandController::new(10);
    assert_eq!(c.step(&input(55.0, 10), &b).change, Change::Hold);
    let d = c.step(&input(55.0, 10), &b);
    assert_eq!((d.target, d.change), (11, Change::Up), "{}", d.reason);
    // 85 is not "above 85": one job fewer after 2 samples above 80.
    let mut c = BandController::new(10);
    assert_eq!(c.step(&input(85.0, 10), &b).change, Change::Hold);
    let d = c.step(&input(85.0, 10), &b);
    assert_eq!((d.target, d.change), (9, Change::Down), "{}", d.reason);
    // A sample back inside the band resets the count.
    let mut c = BandController::new(10);
    c.step(&input(82.0, 10), &b);
    c.step(&input(78.0, 10), &b);
    assert_eq!(c.step(&input(82.0, 10), &b).change, Change::Hold);
    // Just under 55 is "below 55".
    let mut c = BandController::new(10);
    assert_eq!(c.step(&input(54.9, 10), &b).change, Change::Up);
}

#[test]
fn no_step_that_would_land_past_the_far_edge() {
    let b = band();
    // 2 jobs at 25 % each: one more lands at 75, two more at 100.
    let mut c = BandController::new(2);
    let d = c.step(&input(50.0, 2), &b);
    assert_eq!(d.target, 3, "{}", d.reason);
    // 1 job at 50 %: one more lands at 100: hold below the band rather than overshoot.
    let mut c = BandController::new(1);
    let d = c.step(&input(50.0, 1), &b);
    assert_eq!(d.change, Change::Hold, "{}", d.reason);
    assert!(d.reason.contains("overshoot"));
    // 3 jobs at 27 %: one fewer lands at 54, under the band: hold just above it instead.
    let mut c = BandController::new(3);
    c.step(&input(82.0, 3), &b);
    let d = c.step(&input(82.0, 3), &b);
    assert_eq!(d.change, Change::Hold, "{}", d.reason);
    // Overloaded always steps down, even in big steps.
    let mut c = BandController::new(2);
    assert_eq!(c.step(&input(95.0, 2), &b).target, 1);
    assert_eq!(c.step(&input(95.0, 1), &b).target, 1, "never below 1");
}

#[test]
fn gpu_before_cpu_and_gpu_memory() {
    let b = band();
    let gpu = |util: f64, cpu: f64, mem: f64| ControlInput {
        utilization: Some(util),
        gpu_primary: true,
        cpu_percent: Some(cpu),
        gpu_memory_percent: Some(mem),
        running: Some(10),
        cap: 32,
    };
    // The GPU's utilization is what is steered: GPU low with the CPU at 50 adds jobs.
    assert_eq!(
        BandController::new(10)
            .step(&gpu(30.0, 50.0, 40.0), &b)
            .target,
        12
    );
    // GPU in the band with a CPU at 90: the CPU forces one off.
    let d = BandController::new(10).step(&gpu(70.0, 90.0, 40.0), &b);
    assert_eq!(d.target, 9, "{}", d.reason);
    assert!(d.reason.contains("CPU"));
    // GPU low but the CPU above the band: no job added.
    let d = BandController::new(10).step(&gpu(30.0, 82.0, 40.0), &b);
    assert_eq!(d.change, Change::Hold, "{}", d.reason);
    // GPU memory warning (above 80): no job added; critical (above 90): one off.
    let d = BandController::new(10).step(&gpu(30.0, 50.0, 85.0), &b);
    assert_eq!(d.change, Change::Hold, "{}", d.reason);
    let d = BandController::new(10).step(&gpu(70.0, 50.0, 91.0), &b);
    assert_eq!(d.target, 9, "{}", d.reason);
    assert!(d.reason.contains("GPU memory"));
}

#[test]
fn the_target_stays_within_1_and_the_cap_and_does_not_wind_up() {
    let b = band();
    let mut c = BandController::new(40);
    let d = c.step(
        &ControlInput {
            cap: 32,
            ..input(70.0, 30)
        },
        &b,
    );
    assert_eq!(d.target, 32);
    assert!(d.reason.contains("hardware cap"), "{}", d.reason);
    // The scheduler runs only 2 of 6: low utilization does not raise the target further.
    let mut c = BandController::new(6);
    assert_eq!(c.step(&input(10.0, 2), &b).target, 6);
    // With 0 running and nothing known per job, it still starts jobs.
    let mut c = BandController::new(1);
    assert_eq!(c.step(&input(5.0, 0), &b).target, 2);
    // No reading: hold.
    let mut c = BandController::new(3);
    let d = c.step(
        &ControlInput {
            utilization: None,
            ..input(0.0, 3)
        },
        &b,
    );
    assert_eq!((d.target, d.change), (3, Change::Hold));
}

/// A node whose utilization follows its job count: `base + per_job × jobs` plus seeded noise, capped at 100; the
/// scheduler runs whatever the target says. The controller must bring it into the band from 10 % and from 95 %
/// within a bounded number of steps, stay there, and never reverse direction (no crossing back and forth).
#[test]
fn simulation_settles_in_the_band_without_oscillating() {
    const MAX_STEPS_TO_BAND: usize = 25;
    const STEPS: usize = 400;
    let b = band();
    let mut runs = 0;
    for per_job in [3.0, 5.0, 8.0, 12.0] {
        for base in [-4.0, 0.0, 5.0] {
            for start in [10.0f64, 95.0] {
                for seed in 0..8u64 {
                    let noise = 2.0;
                    let mut rng = fastrand::Rng::with_seed(seed * 1000 + per_job as u64);
                    let mut jobs = (((start - base) / per_job).round() as u32).max(1);
                    let true_util =
                        |jobs: u32| (base + per_job * f64::from(jobs)).clamp(0.0, 100.0);
                    let mut c = BandController::new(jobs);
                    let mut entered = None;
                    let mut direction = Change::Hold;
                    for step in 0..STEPS {
                        let measured =
                            (true_util(jobs) + (rng.f64() * 2.0 - 1.0) * noise).clamp(0.0, 100.0);
                        let d = c.step(
                            &ControlInput {
                                cap: 64,
                                ..input(measured, jobs)
                            },
                            &b,
                        );
                        if d.change != Change::Hold {
                            assert!(
                                direction == Change::Hold || direction == d.change,
                                "per_job {per_job} base {base} start {start} seed {seed}: reversed at step {step} ({})",
                                d.reason
                            );
                            direction = d.change;
                        }
                        jobs = d.target;
                        let u = true_util(jobs);
                        let inside = (b.low_percent..=b.high_percent).contains(&u);
                        match entered {
                            None if inside => entered = Some(step),
                            Some(at) => assert!(
                                inside,
                                "per_job {per_job} base {base} start {start} seed {seed}: left the band at step {step} (entered at {at}): {u}"
                            ),
                            None => {}
                        }
                    }
                    let at = entered.unwrap_or_else(|| {
                        panic!("per_job {per_job} base {base} start {start} seed {seed}: never reached the band")
                    });
                    assert!(
                        at < MAX_STEPS_TO_BAND,
                        "per_job {per_job} base {base} start {start} seed {seed}: {at} steps to the band"
                    );
                    runs += 1;
                }
            }
        }
    }
    assert_eq!(runs, 4 * 3 * 2 * 8);
}

fn config() -> ResourcesConfig {
    ResourcesConfig::default()
}

fn sample(cpu: Option<f64>, memory: f64, disks: &[Option<f64>]) -> Sample {
    Sample {
        cpu_percent: cpu,
        cpu_cores: 8,
        load: [1.0, 1.0, 1.0],
        memory_total_bytes: 16_000_000_000,
        memory_available_bytes: (16e9 * (1.0 - memory / 100.0)) as u64,
        memory_percent: Some(memory),
        disks: disks
            .iter()
            .enumerate()
            .map(|(i, used)| match used {
                Some(u) => DiskReading {
                    path: PathBuf::from(format!("/data{i}")),
                    mount: Some(PathBuf::from("/")),
                    total_bytes: 100,
                    available_bytes: (100.0 - u) as u64,
                    used_percent: Some(*u),
                    error: None,
                },
                None => DiskReading::unreadable(
                    &PathBuf::from(format!("/data{i}")),
                    "permission denied",
                ),
            })
            .collect(),
    }
}

fn observe(policy: &mut ResourcePolicy, at: Instant, s: Sample, gpu: GpuProbe) -> Vec<Action> {
    policy.observe(
        at,
        Observation {
            sample: s,
            gpu,
            running_jobs: Some(policy.target()),
        },
    )
}

fn has_pause(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Pause { .. }))
}

fn health(actions: &[Action]) -> Option<HealthStatus> {
    actions.iter().find_map(|a| match a {
        Action::Health(h) => Some(h.status),
        _ => None,
    })
}

#[test]
fn disk_pressure_pauses_at_critical_and_resumes_below_warning() {
    let t0 = Instant::now();
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    let a = observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(50.0)]),
        GpuProbe::NotInstalled,
    );
    assert!(!has_pause(&a) && !p.paused());
    assert!(
        a.contains(&Action::Resume),
        "the gate closed until the first round opens"
    );
    assert!(
        !a.contains(&Action::Log(Notice::Resumed)),
        "no 'resumed' line at start"
    );
    assert_eq!(health(&a), Some(HealthStatus::Ok));
    // Warning: logged once, health degraded, no pause.
    let a = observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(50.0), Some(88.0)]),
        GpuProbe::NotInstalled,
    );
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Log(Notice::Warning { .. }))));
    assert_eq!(health(&a), Some(HealthStatus::Degraded));
    let a = observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(50.0), Some(88.5)]),
        GpuProbe::NotInstalled,
    );
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::Log(Notice::Warning { .. }))),
        "once per incident"
    );
    // Critical: paused, failing, the reason names the path and the threshold.
    let a = observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(50.0), Some(95.0)]),
        GpuProbe::NotInstalled,
    );
    let reason = a
        .iter()
        .find_map(|a| match a {
            Action::Pause { reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("paused");
    assert!(
        reason.contains("/data1") && reason.contains("95.0%") && reason.contains("critical 95"),
        "{reason}"
    );
    assert!(p.paused());
    assert_eq!(health(&a), Some(HealthStatus::Failing));
    // Back to warning: still paused (hysteresis).
    let a = observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(50.0), Some(90.0)]),
        GpuProbe::NotInstalled,
    );
    assert!(p.paused() && !a.contains(&Action::Resume));
    // Below warning: resumes.
    let a = observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(50.0), Some(84.9)]),
        GpuProbe::NotInstalled,
    );
    assert!(!p.paused() && a.contains(&Action::Resume));
    assert_eq!(health(&a), Some(HealthStatus::Ok));
    // The job target keeps being sent every round.
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::SetTarget { node, .. } if node == "n")));
}

#[test]
fn the_gate_stays_closed_when_the_first_round_is_critical() {
    let t0 = Instant::now();
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    assert!(p.paused(), "closed until the first round");
    assert_eq!(p.health_check().status, HealthStatus::Degraded);
    let a = observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(97.0)]),
        GpuProbe::NotInstalled,
    );
    assert!(p.paused() && has_pause(&a) && !a.contains(&Action::Resume));
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Log(Notice::Paused { .. }))));
    assert_eq!(health(&a), Some(HealthStatus::Failing));
}

#[test]
fn unreadable_disks_and_memory_are_critical() {
    let t0 = Instant::now();
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    let a = observe(
        &mut p,
        t0,
        sample(None, 40.0, &[None]),
        GpuProbe::NotInstalled,
    );
    assert!(has_pause(&a));
    let report = p.report(t0);
    assert_eq!(report.pressure.level, PressureLevel::Critical);
    assert!(
        report.pressure.reasons[0].contains("unreadable"),
        "{:?}",
        report.pressure.reasons
    );
    // A failed sample (deadline missed) is unreadable too.
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    let a = observe(
        &mut p,
        t0,
        Sample::failed(&[PathBuf::from("/data")], "sample timed out"),
        GpuProbe::NotInstalled,
    );
    assert!(has_pause(&a));
    // Memory: critical at 95, resume under 90.
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    assert!(has_pause(&observe(
        &mut p,
        t0,
        sample(Some(50.0), 96.0, &[]),
        GpuProbe::NotInstalled
    )));
    observe(
        &mut p,
        t0,
        sample(Some(50.0), 91.0, &[]),
        GpuProbe::NotInstalled,
    );
    assert!(p.paused());
    assert!(observe(
        &mut p,
        t0,
        sample(Some(50.0), 89.0, &[]),
        GpuProbe::NotInstalled
    )
    .contains(&Action::Resume));
}

#[test]
fn a_failing_gpu_query_warns_once_and_keeps_the_last_good_reading() {
    let t0 = Instant::now();
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    let gpus = parse_nvidia_smi(H100_FIXTURE).unwrap();
    let mut s = sample(Some(30.0), 40.0, &[Some(50.0)]);
    s.cpu_cores = 64;
    observe(&mut p, t0, s.clone(), GpuProbe::Read(gpus.clone()));
    let report = p.report(t0);
    assert_eq!(report.gpu.source, "nvidia-smi");
    assert_eq!(report.controller.steers, "gpu");
    assert_eq!(report.figures.gpu_count, 2);
    let later = t0 + Duration::from_secs(30);
    let a = observe(
        &mut p,
        later,
        s.clone(),
        GpuProbe::Failed("timed out".into()),
    );
    assert!(a.iter().any(|a| matches!(
        a,
        Action::Log(Notice::GpuFailed { last_good_age: Some(age), .. }) if *age == Duration::from_secs(30)
    )));
    assert_eq!(health(&a), Some(HealthStatus::Degraded));
    let a = observe(
        &mut p,
        later,
        s.clone(),
        GpuProbe::Failed("timed out".into()),
    );
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::Log(Notice::GpuFailed { .. }))),
        "warned once"
    );
    let report = p.report(later);
    assert_eq!(report.gpu.source, "last_good");
    assert_eq!(report.gpu.gpus, gpus, "the last good reading is kept");
    assert_eq!(report.controller.steers, "gpu");
    let a = observe(&mut p, later, s, GpuProbe::Read(gpus));
    assert!(a.contains(&Action::Log(Notice::GpuRecovered)));
}

#[test]
fn hardware_caps_come_from_the_target_jobs_table() {
    let t0 = Instant::now();
    // CPU-only, 8 cores, 16 GB: cap 2 (domain scenario 12).
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 8);
    let a = observe(
        &mut p,
        t0,
        sample(Some(70.0), 40.0, &[Some(10.0)]),
        GpuProbe::NotInstalled,
    );
    assert!(
        a.contains(&Action::SetTarget {
            node: "n".into(),
            jobs: 2
        }),
        "{a:?}"
    );
    assert_eq!(p.report(t0).controller.hardware_cap, 2);
    // Two H100s on 64 cores: min(64 × 0.5, 48) = 32.
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 40);
    let mut s = sample(Some(50.0), 40.0, &[Some(10.0)]);
    s.cpu_cores = 64;
    s.memory_total_bytes = 512_000_000_000;
    let gpus = parse_nvidia_smi("0, NVIDIA H100 80GB HBM3, 70, 20000, 81559\n").unwrap();
    observe(&mut p, t0, s.clone(), GpuProbe::Read(gpus));
    assert_eq!(p.report(t0).controller.hardware_cap, 32);
    assert_eq!(p.target(), 32);
    // Disk at 90 % caps it at 4 (the table's disk rule) before any pause.
    s.disks[0].used_percent = Some(90.0);
    observe(&mut p, t0, s, GpuProbe::NotInstalled);
    assert!(p.target() <= 4, "{}", p.target());
}

#[test]
fn cpu_only_is_said_once() {
    let t0 = Instant::now();
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    let cpu_only = |a: &[Action]| {
        a.iter()
            .any(|a| matches!(a, Action::Log(Notice::CpuOnly { .. })))
    };
    assert!(cpu_only(&observe(
        &mut p,
        t0,
        sample(None, 40.0, &[]),
        GpuProbe::NotInstalled
    )));
    assert!(!cpu_only(&observe(
        &mut p,
        t0,
        sample(None, 40.0, &[]),
        GpuProbe::NotInstalled
    )));
    assert_eq!(p.report(t0).gpu.source, "none");
}

#[test]
fn upward_steps_aim_at_the_optimum() {
    // 5 jobs at 10 % each, at 50 %: one more lands at 60, two more at 70; both fit the band.
    let b = band();
    let d = BandController::new(5).step(&input(50.0, 5), &b);
    assert_eq!(
        d.target, 7,
        "optimum 70: two more land on it ({})",
        d.reason
    );
    let near_low = BandConfig {
        optimum_percent: 62.0,
        ..band()
    };
    let d = BandController::new(5).step(&input(50.0, 5), &near_low);
    assert_eq!(
        d.target, 6,
        "optimum 62: one more lands nearer ({})",
        d.reason
    );
    // Three steps allowed, 7 jobs at 7.5 % each from 52.5 %: +2 lands at 67.5 (2.5 off), +3 at 75 (5 off).
    let wide = BandConfig {
        step_up: 3,
        ..band()
    };
    let d = BandController::new(7).step(&input(52.5, 7), &wide);
    assert_eq!(d.target, 9, "{}", d.reason);
    // The report says how far the node is from the optimum.
    let t0 = Instant::now();
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(10.0)]),
        GpuProbe::NotInstalled,
    );
    assert_eq!(
        p.report(t0).controller.distance_to_optimum_percent,
        Some(-20.0)
    );
}

#[test]
fn the_spawn_rate_multiplier_is_the_negotiated_rate_over_the_request() {
    let (b, r) = (band(), RateConfig::default());
    let m = |u: Option<f64>, mem: Option<f64>| spawn_rate_multiplier(u, mem, &b, &r);
    assert!((m(Some(35.0), None) - 1.5).abs() < 1e-9);
    assert!((m(Some(92.0), None) - 0.76).abs() < 1e-9);
    assert!((m(Some(70.0), Some(95.0)) - 0.3).abs() < 1e-9);
    assert!((m(Some(70.0), Some(85.0)) - 0.7).abs() < 1e-9);
    assert!((m(None, None) - 1.0).abs() < 1e-9);
    // A node whose GPUs are busy and nearly out of memory: the policy reports it, the figures carry it.
    let t0 = Instant::now();
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    let gpus = parse_nvidia_smi("0, NVIDIA H100 80GB HBM3, 92, 77500, 81559\n").unwrap();
    observe(
        &mut p,
        t0,
        sample(Some(50.0), 40.0, &[Some(10.0)]),
        GpuProbe::Read(gpus),
    );
    let report = p.report(t0);
    // u 92 → × 0.76, GPU memory 95 % → × 0.3.
    assert!((report.controller.spawn_rate_multiplier - 0.76 * 0.3).abs() < 1e-9);
    assert!((report.controller.rate_games_per_hour - 228.0).abs() < 1e-9);
    assert_eq!(
        report.figures.rate_multiplier,
        report.controller.spawn_rate_multiplier
    );
}

/// A node of 72 cores and 480 GB, measured with `gpus` (one line each, the real reply format).
fn gh200_node(policy: &mut ResourcePolicy, at: Instant, reply: &str) -> Vec<Action> {
    let mut s = sample(Some(50.0), 40.0, &[Some(10.0)]);
    s.cpu_cores = 72;
    s.memory_total_bytes = 480_000_000_000;
    observe(
        policy,
        at,
        s,
        GpuProbe::Read(parse_nvidia_smi(reply).unwrap()),
    )
}

#[test]
fn the_hardware_cap_comes_from_the_measured_model_unless_the_config_names_one() {
    let t0 = Instant::now();
    let gh200 = "0, NVIDIA GH200 480GB, 70, 50112, 97871\n";
    let mismatch = |a: &[Action]| {
        a.iter().find_map(|a| match a {
            Action::Log(Notice::GpuMismatch { warning }) => Some(warning.clone()),
            _ => None,
        })
    };
    // `gpu: unknown`: the GH200 row (72 cores × 0.8 = 57), not CPU-only (16) nor the unknown row.
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2)
        .with_gpu("unknown", GpuTable::default());
    assert_eq!(mismatch(&gh200_node(&mut p, t0, gh200)), None);
    let c = p.report(t0).controller;
    assert_eq!((c.hardware_cap, c.gpu_model.as_str()), (57, "GH200"));
    assert_eq!(c.gpu_model_source, GpuModelSource::Measured);
    // An explicit H100 wins (min(72 × 0.5, 48) = 36), with one warning naming both.
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2)
        .with_gpu("H100", GpuTable::default());
    let warning = mismatch(&gh200_node(&mut p, t0, gh200)).expect("a mismatch warning");
    assert!(
        warning.contains("H100") && warning.contains("NVIDIA GH200 480GB"),
        "{warning}"
    );
    assert_eq!(
        mismatch(&gh200_node(&mut p, t0, gh200)),
        None,
        "warned once"
    );
    let c = p.report(t0).controller;
    assert_eq!((c.hardware_cap, c.gpu_model.as_str()), (36, "H100"));
    assert_eq!(c.gpu_model_source, GpuModelSource::Configured);
    // The GPU count counts: RTX 4090s allow 8 jobs per GPU (72 cores × 0.3 = 21 otherwise).
    let one = "0, NVIDIA GeForce RTX 4090, 70, 9021, 24564\n";
    let two = "0, NVIDIA GeForce RTX 4090, 70, 9021, 24564\n1, NVIDIA GeForce RTX 4090, 70, 9021, 24564\n";
    let mut p = ResourcePolicy::new(config(), TargetJobsPolicy::default(), "n", 2);
    gh200_node(&mut p, t0, one);
    assert_eq!(p.report(t0).controller.hardware_cap, 8);
    gh200_node(&mut p, t0, two);
    assert_eq!(p.report(t0).controller.hardware_cap, 16);
    assert_eq!(p.report(t0).controller.gpu_model, "RTX_4090");
}
