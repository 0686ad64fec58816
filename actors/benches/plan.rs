//! Benchmark of the `plan` dry run: 12 configs over 10, 100, 1 000 and 10 000 nodes, in both
//! node-cap scopes. Not a timed test; figures go to docs/performance.md.

use actors::scheduler::config::SchedulerPolicyConfig;
use actors::scheduler::plan::plan_from_json;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::json;

const GPUS: [(&str, u32); 6] = [
    ("GH200", 96),
    ("H100", 80),
    ("A100", 40),
    ("RTX_4090", 24),
    ("A10", 24),
    ("L40S", 48),
];

const GAME_COUNTS: [u64; 6] = [0, 300, 1200, 2500, 8000, 40000];

fn state(nodes: usize, scope: &str) -> String {
    let configs: Vec<_> = actors::scheduler::board::ConfigKey::all()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "config": c.to_string(),
                "game_count": GAME_COUNTS[i % GAME_COUNTS.len()],
                "cluster_game_count": i * 1500,
                "elo": 1300.0 + 60.0 * i as f64,
                "staleness_hours": (i % 5) as f64 * 3.0,
                "elo_velocity_per_day": (i as f64) * 4.0 - 10.0,
                "elo_velocity_per_hour": (i as f64) * 0.2 - 0.5,
            })
        })
        .collect();
    let nodes: Vec<_> = (0..nodes)
        .map(|i| {
            let (gpu, vram) = GPUS[i % GPUS.len()];
            let prefix = if i % 7 == 0 { "vast-" } else { "node-" };
            json!({
                "name": format!("{prefix}{i}"),
                "gpu": gpu,
                "gpu_memory_gb": vram,
                "load": (i % 10) as f64 / 10.0,
                "healthy": i % 13 != 0,
                "data_lag_seconds": (i % 17) * 5,
            })
        })
        .collect();
    json!({"node_cap_scope": scope, "configs": configs, "nodes": nodes}).to_string()
}

fn bench_plan(c: &mut Criterion) {
    let policy = SchedulerPolicyConfig::default();
    let mut group = c.benchmark_group("plan");
    for scope in ["per_plan", "per_config"] {
        for nodes in [10, 100, 1_000, 10_000] {
            let text = state(nodes, scope);
            group.bench_with_input(BenchmarkId::new(scope, nodes), &text, |b, text| {
                b.iter(|| plan_from_json(text, &policy).map(|out| out.total_games))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
