//! Bench binary (not a timed test): message cost of a plain actix actor vs a supervised, traced cell vs a tokio
//! mpsc channel, measured side by side in one run; and restart latency with zero backoff (panic → next message
//! handled), p50/p99.
//!
//! Run: `cargo bench -p actors --bench runtime` (optionally `-- --messages 200000 --rounds 5 --restarts 2000`).
//! Spans are on (the daemon's own log setup, `actors::logging::install`, at INFO writing JSON into a null sink), so
//! the traced cost is real; a last row times the message span alone, the floor tracing sets.

use std::time::{Duration, Instant};

use ::actors::runtime::{
    BackoffConfig, Behavior, ChildOptions, Ctx, DeadLetterSink, HandlerError, Handles,
    Message as RtMessage, SupervisorOptions, SupervisorSpec, WorkerSpec,
};
use actix::prelude::*;
use serde::{Deserialize, Serialize};

// ---- plain actix ----
struct Plain {
    total: u64,
}
impl Actor for Plain {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
    }
}
#[derive(actix::Message)]
#[rtype(result = "u64")]
struct PlainAdd(u64);
impl Handler<PlainAdd> for Plain {
    type Result = u64;
    fn handle(&mut self, msg: PlainAdd, _ctx: &mut Self::Context) -> u64 {
        self.total += msg.0;
        self.total
    }
}

// ---- supervised cell ----
#[derive(Default)]
struct Counter {
    total: u64,
}
impl Behavior for Counter {}
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Add(u64);
impl RtMessage for Add {
    type Reply = u64;
    const NAME: &'static str = "Add";
}
impl Handles<Add> for Counter {
    fn handle(&mut self, msg: &Add, _ctx: &mut Ctx<'_, Self>) -> Result<u64, HandlerError> {
        self.total += msg.0;
        Ok(self.total)
    }
}
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Boom;
impl RtMessage for Boom {
    type Reply = ();
    const NAME: &'static str = "Boom";
}
impl Handles<Boom> for Counter {
    fn handle(&mut self, _msg: &Boom, _ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        panic!("bench: requested panic");
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn per_msg_ns(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let messages = arg("--messages", 100_000);
    let rounds = arg("--rounds", 5);
    let restarts = arg("--restarts", 2_000);
    // Spans on by default: an INFO subscriber formatting JSON into a null sink (`--subscriber off` or `warn` to compare).
    let subscriber = std::env::args()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0] == "--subscriber")
        .map(|w| w[1].clone())
        .unwrap_or_else(|| "info".to_string());
    // The daemon's own log setup (actors::logging), writing into a null sink: spans are really built.
    match subscriber.as_str() {
        "off" => {}
        level => {
            ::actors::logging::install(::actors::logging::LogFormat::Json, level, std::io::sink)
                .unwrap_or_else(|e| panic!("--subscriber {level}: {e}"))
        }
    }
    println!("subscriber: {subscriber}");
    // Panics are expected in the restart bench; keep stderr quiet.
    std::panic::set_hook(Box::new(|_| {}));

    let system = actix::System::new();
    system.block_on(async move {
        let sink = DeadLetterSink::new();
        sink.install(|_| Ok(()));
        let options = ChildOptions { mailbox_capacity: 1 << 20, dedicated_thread: false, ..ChildOptions::default() };
        let spec = WorkerSpec::<Counter>::new("bench", options, &sink);
        let cell = spec.actor_ref();
        let sup = SupervisorOptions {
            backoff: BackoffConfig { initial: Duration::ZERO, max: Duration::ZERO, ..BackoffConfig::default() },
            max_restarts: u32::MAX,
            ..SupervisorOptions::default()
        };
        let mut root = SupervisorSpec::new("root", sup).child(spec.factory(Counter::default)).start_root();
        root.started().await;
        let plain = Plain { total: 0 }.start();

        let mut rows: Vec<(&str, Vec<f64>)> = vec![
            ("actix plain: send().await (request-reply)", vec![]),
            ("supervised+traced: ask().await (request-reply)", vec![]),
            ("tokio mpsc + oneshot (request-reply)", vec![]),
            ("actix plain: do_send pipelined", vec![]),
            ("supervised+traced: tell pipelined", vec![]),
            ("tokio mpsc pipelined", vec![]),
            ("a message span alone (open, enter, close)", vec![]),
        ];
        let timeout = Duration::from_secs(30);
        for _ in 0..rounds {
            // request-reply
            let t = Instant::now();
            for i in 0..messages {
                let _ = plain.send(PlainAdd(i as u64)).await;
            }
            rows[0].1.push(per_msg_ns(t.elapsed(), messages));

            let t = Instant::now();
            for i in 0..messages {
                let _ = cell.ask(Add(i as u64), timeout).await;
            }
            rows[1].1.push(per_msg_ns(t.elapsed(), messages));

            let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, tokio::sync::oneshot::Sender<u64>)>(1024);
            let task = actix_rt::spawn(async move {
                let mut total = 0u64;
                while let Some((n, reply)) = rx.recv().await {
                    total += n;
                    let _ = reply.send(total);
                }
            });
            let t = Instant::now();
            for i in 0..messages {
                let (rtx, rrx) = tokio::sync::oneshot::channel();
                let _ = tx.send((i as u64, rtx)).await;
                let _ = rrx.await;
            }
            rows[2].1.push(per_msg_ns(t.elapsed(), messages));
            drop(tx);
            let _ = task.await;

            // pipelined: N fire-and-forget, then one request to drain
            let t = Instant::now();
            for i in 0..messages {
                plain.do_send(PlainAdd(i as u64));
            }
            let _ = plain.send(PlainAdd(0)).await;
            rows[3].1.push(per_msg_ns(t.elapsed(), messages));

            let t = Instant::now();
            for i in 0..messages {
                let _ = cell.tell(Add(i as u64));
            }
            let _ = cell.ask(Add(0), timeout).await;
            rows[4].1.push(per_msg_ns(t.elapsed(), messages));

            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(messages + 1);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let task = actix_rt::spawn(async move {
                let mut total = 0u64;
                let mut seen = 0usize;
                while let Some(n) = rx.recv().await {
                    total += n;
                    seen += 1;
                    if seen == messages {
                        break;
                    }
                }
                let _ = done_tx.send(total);
            });
            let t = Instant::now();
            for i in 0..messages {
                let _ = tx.try_send(i as u64);
            }
            let _ = done_rx.await;
            rows[5].1.push(per_msg_ns(t.elapsed(), messages));
            let _ = task.await;

            // The floor tracing itself sets: the span every handled message gets, with the same fields, and no
            // runtime around it.
            let actor = String::from("bench");
            let t = Instant::now();
            for i in 0..messages {
                let correlation = ::actors::runtime::CorrelationId(i as u64).hex();
                let span = tracing::info_span!(
                    "message",
                    actor = actor.as_str(),
                    msg = "Add",
                    id = i as u64,
                    correlation_id = correlation.as_str()
                );
                let _entered = std::hint::black_box(span.enter());
            }
            rows[6].1.push(per_msg_ns(t.elapsed(), messages));
        }

        println!("message cost, ns per message (median of {rounds} rounds of {messages} messages; same process, same run)");
        let medians: Vec<f64> = rows
            .iter()
            .map(|(_, v)| {
                let mut v = v.clone();
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            })
            .collect();
        for ((name, _), median) in rows.iter().zip(&medians) {
            println!("  {name:<48} {median:>9.0} ns");
        }
        println!("  ratio supervised/plain request-reply: {:.2}x", medians[1] / medians[0]);
        println!("  ratio supervised/plain pipelined:     {:.2}x", medians[4] / medians[3]);
        println!(
            "  a span alone / plain actix: {:.2}x of send().await, {:.2}x of do_send",
            medians[6] / medians[0],
            medians[6] / medians[3]
        );

        // restart latency: panic -> next message handled, zero backoff
        let mut samples = Vec::with_capacity(restarts);
        for _ in 0..restarts {
            let t = Instant::now();
            let _ = cell.tell(Boom);
            let _ = cell.ask(Add(0), timeout).await;
            samples.push(t.elapsed());
        }
        // baseline: the same pair of messages without a panic
        let mut base = Vec::with_capacity(restarts);
        for _ in 0..restarts {
            let t = Instant::now();
            let _ = cell.tell(Add(0));
            let _ = cell.ask(Add(0), timeout).await;
            base.push(t.elapsed());
        }
        samples.sort();
        base.sort();
        println!(
            "restart latency (panic -> next message handled, backoff 0, {restarts} restarts): p50 {:?}  p99 {:?}  max {:?}",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            samples[samples.len() - 1]
        );
        println!(
            "  same two messages without a panic:                                 p50 {:?}  p99 {:?}",
            percentile(&base, 0.5),
            percentile(&base, 0.99)
        );
        println!("  restarts counted: {}", cell.shared().restarts());
        root.shutdown().await;
    });
}
