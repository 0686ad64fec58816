//! Runtime behaviour under real actix: panic capture and in-place restart, dead letters of in-flight messages,
//! escalation, strategies, the watchdog and ordered shutdown. Every wait has a deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::runtime::dead_letters::record::NewDeadLetter;
use actors::runtime::{
    BackoffConfig, Behavior, ChildOptions, ChildState, Ctx, DeadLetterSink, Drill, HandlerError,
    Handles, Message, RestartType, RootExit, Strategy, SupervisorOptions, SupervisorSpec,
    WorkerSpec,
};
use serde::{Deserialize, Serialize};

#[derive(Default)]
struct Counter {
    total: u64,
    log: Option<Arc<Mutex<Vec<String>>>>,
    name: &'static str,
}

impl Behavior for Counter {
    fn started(&mut self, _ctx: &mut Ctx<'_, Self>) {
        if let Some(log) = &self.log {
            log.lock().unwrap().push(format!("start {}", self.name));
        }
    }
    fn stopping(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Option<futures::future::LocalBoxFuture<'static, ()>> {
        if let Some(log) = &self.log {
            log.lock().unwrap().push(format!("stop {}", self.name));
        }
        None
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Add(u64);
impl Message for Add {
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
impl Message for Boom {
    type Reply = ();
    const NAME: &'static str = "Boom";
}
impl Handles<Boom> for Counter {
    fn handle(&mut self, _msg: &Boom, _ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        panic!("boom requested");
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Refuse;
impl Message for Refuse {
    type Reply = ();
    const NAME: &'static str = "Refuse";
}
impl Handles<Refuse> for Counter {
    fn handle(&mut self, _msg: &Refuse, _ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        Err(HandlerError::fail("refused on purpose"))
    }
}

/// Blocks the cell's thread for a while, so messages pile up behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stall(u64);
impl Message for Stall {
    type Reply = ();
    const NAME: &'static str = "Stall";
}
impl Handles<Stall> for Counter {
    fn handle(&mut self, msg: &Stall, _ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        std::thread::sleep(Duration::from_millis(msg.0));
        Ok(())
    }
}

fn collecting_sink() -> (DeadLetterSink, Arc<Mutex<Vec<NewDeadLetter>>>) {
    let sink = DeadLetterSink::new();
    let letters = Arc::new(Mutex::new(Vec::new()));
    let store = letters.clone();
    sink.install(move |l| {
        store.lock().unwrap().push(l);
        Ok(())
    });
    (sink, letters)
}

fn fast_options() -> SupervisorOptions {
    SupervisorOptions {
        backoff: BackoffConfig {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
            ..BackoffConfig::default()
        },
        watchdog_check_every: Duration::from_millis(20),
        ..SupervisorOptions::default()
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const ASK: Duration = Duration::from_secs(5);

#[actix_rt::test]
async fn panic_restarts_with_fresh_state_keeps_queue_and_dead_letters_the_in_flight_message() {
    let (sink, letters) = collecting_sink();
    let worker = WorkerSpec::<Counter>::new("counter", ChildOptions::default(), &sink);
    let counter = worker.actor_ref();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(worker.factory(Counter::default))
        .start_root();
    root.started().await;

    assert_eq!(counter.ask(Add(5), ASK).await.unwrap(), 5);
    // Pile up: a stall, then the panic, then 20 adds queued behind it.
    counter.tell(Stall(100)).unwrap();
    counter.tell(Boom).unwrap();
    let pending: Vec<_> = (0..20).map(|_| counter.ask(Add(1), ASK)).collect();
    let results = futures::future::join_all(pending).await;
    let totals: Vec<u64> = results
        .into_iter()
        .map(|r| r.expect("queued message handled after restart"))
        .collect();
    assert_eq!(
        totals,
        (1..=20).collect::<Vec<_>>(),
        "fresh state (total restarted from 0), nothing lost, in order"
    );

    assert_eq!(counter.shared().restarts(), 1);
    let letters = letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].msg, "Boom");
    assert_eq!(letters[0].actor, "counter");
    assert!(
        letters[0].error.contains("boom requested"),
        "{}",
        letters[0].error
    );
    assert!(root.shutdown().await);
}

#[actix_rt::test]
async fn handler_error_is_a_dead_letter_not_a_crash() {
    let (sink, letters) = collecting_sink();
    let worker = WorkerSpec::<Counter>::new("counter", ChildOptions::default(), &sink);
    let counter = worker.actor_ref();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(worker.factory(Counter::default))
        .start_root();
    root.started().await;
    counter.ask(Add(3), ASK).await.unwrap();
    let err = counter.ask(Refuse, ASK).await.unwrap_err();
    assert!(err.to_string().contains("refused on purpose"));
    assert_eq!(
        counter.ask(Add(1), ASK).await.unwrap(),
        4,
        "state kept: no restart"
    );
    assert_eq!(counter.shared().restarts(), 0);
    assert_eq!(letters.lock().unwrap().len(), 1);
    assert_eq!(letters.lock().unwrap()[0].msg, "Refuse");
    assert!(root.shutdown().await);
}

#[actix_rt::test]
async fn repeated_panics_escalate_to_the_root() {
    let (sink, _letters) = collecting_sink();
    let worker = WorkerSpec::<Counter>::new("counter", ChildOptions::default(), &sink);
    let counter = worker.actor_ref();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(worker.factory(Counter::default))
        .start_root();
    root.started().await;
    for _ in 0..6 {
        let _ = counter.ask(Boom, ASK).await;
    }
    let exit = tokio::time::timeout(Duration::from_secs(5), root.exited())
        .await
        .expect("root gave up in time");
    let RootExit::GaveUp { reason } = exit;
    assert!(reason.contains("restart intensity exceeded"), "{reason}");
    assert_eq!(root.tree.shared.state(), ChildState::Failed);
    assert!(root.shutdown().await);
}

#[actix_rt::test]
async fn nested_supervisor_escalates_to_its_parent_which_restarts_it() {
    let (sink, _letters) = collecting_sink();
    let worker = WorkerSpec::<Counter>::new("leaf", ChildOptions::default(), &sink);
    let leaf = worker.actor_ref();
    let inner = SupervisorSpec::new(
        "inner",
        SupervisorOptions {
            max_restarts: 1,
            ..fast_options()
        },
    )
    .child(worker.factory(Counter::default));
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(Box::new(inner))
        .start_root();
    root.started().await;
    leaf.ask(Add(7), ASK).await.unwrap();
    let _ = leaf.ask(Boom, ASK).await;
    let _ = leaf.ask(Boom, ASK).await; // second restart within the window: inner gives up
    assert_eq!(
        leaf.ask(Add(1), ASK).await.unwrap(),
        1,
        "inner restarted by root with fresh children"
    );
    let inner_node = root.tree.find("inner").unwrap();
    wait_until("inner restarted", || inner_node.shared.restarts() == 1).await;
    assert_eq!(inner_node.shared.state(), ChildState::Running);
    assert!(root.shutdown().await);
}

#[actix_rt::test]
async fn one_for_all_restarts_siblings_and_rest_for_one_only_later_ones() {
    for (strategy, expect_a, expect_c) in [
        (Strategy::OneForAll, 1, 1),
        (Strategy::RestForOne, 0, 1),
        (Strategy::OneForOne, 0, 0),
    ] {
        let (sink, _letters) = collecting_sink();
        let a = WorkerSpec::<Counter>::new("a", ChildOptions::default(), &sink);
        let b = WorkerSpec::<Counter>::new("b", ChildOptions::default(), &sink);
        let c = WorkerSpec::<Counter>::new("c", ChildOptions::default(), &sink);
        let (ra, rb, rc) = (a.actor_ref(), b.actor_ref(), c.actor_ref());
        let mut root = SupervisorSpec::new(
            "root",
            SupervisorOptions {
                strategy,
                ..fast_options()
            },
        )
        .child(a.factory(Counter::default))
        .child(b.factory(Counter::default))
        .child(c.factory(Counter::default))
        .start_root();
        root.started().await;
        ra.ask(Add(10), ASK).await.unwrap();
        rc.ask(Add(10), ASK).await.unwrap();
        let _ = rb.ask(Boom, ASK).await;
        wait_until("b restarted", || {
            rb.shared().restarts() == 1 && rb.shared().state() == ChildState::Running
        })
        .await;
        let total_a = ra.ask(Add(0), ASK).await.unwrap();
        let total_c = rc.ask(Add(0), ASK).await.unwrap();
        assert_eq!((total_a == 0) as u64, expect_a, "{strategy:?}: a reset?");
        assert_eq!((total_c == 0) as u64, expect_c, "{strategy:?}: c reset?");
        assert_eq!(ra.shared().restarts(), expect_a, "{strategy:?}");
        assert!(root.shutdown().await);
    }
}

#[actix_rt::test]
async fn temporary_child_is_not_restarted() {
    let (sink, _letters) = collecting_sink();
    let options = ChildOptions {
        restart: RestartType::Temporary,
        ..ChildOptions::default()
    };
    let worker = WorkerSpec::<Counter>::new("once", options, &sink);
    let once = worker.actor_ref();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(worker.factory(Counter::default))
        .start_root();
    root.started().await;
    let _ = once.ask(Boom, ASK).await;
    wait_until("temporary child failed for good", || {
        once.shared().state() == ChildState::Failed
    })
    .await;
    assert_eq!(once.shared().restarts(), 0);
    assert!(once.ask(Add(1), Duration::from_millis(500)).await.is_err());
    assert!(root.shutdown().await);
}

#[actix_rt::test]
async fn watchdog_restarts_a_hung_actor_and_dead_letters_its_message() {
    let (sink, letters) = collecting_sink();
    let options = ChildOptions {
        watchdog: Some(Duration::from_millis(200)),
        ..ChildOptions::default()
    };
    let worker = WorkerSpec::<Counter>::new("hangs", options, &sink);
    let hangs = worker.actor_ref();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(worker.factory(Counter::default))
        .start_root();
    root.started().await;
    let directory = root.directory.clone();
    hangs.ask(Add(2), ASK).await.unwrap();
    directory.arm_drill("hangs", Drill::Hang).unwrap();
    // Queued behind the hang: must be handled once the watchdog restarted the actor.
    let after = hangs
        .ask(Add(1), ASK)
        .await
        .expect("handled after the watchdog restart");
    assert_eq!(after, 1, "fresh state");
    assert_eq!(hangs.shared().restarts(), 1);
    let failure = hangs.shared().last_failure().unwrap();
    assert!(failure.reason.contains("watchdog"), "{failure:?}");
    wait_until("hung message dead-lettered", || {
        letters.lock().unwrap().iter().any(|l| l.msg == "Ping")
    })
    .await;
    assert!(root.shutdown().await);
}

/// The heartbeat comes from the cell's timer, not from each message: a cell kept busy by a full mailbox for five
/// watchdog deadlines in a row must still beat, and must not be taken for a hung one.
#[actix_rt::test]
async fn a_busy_actor_is_not_taken_for_a_hung_one() {
    let (sink, _letters) = collecting_sink();
    let options = ChildOptions {
        watchdog: Some(Duration::from_millis(200)),
        ..ChildOptions::default()
    };
    let worker = WorkerSpec::<Counter>::new("busy", options, &sink);
    let busy = worker.actor_ref();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(worker.factory(Counter::default))
        .start_root();
    root.started().await;
    // About 1 s of back-to-back work: 200 messages of 5 ms each, all queued at once.
    for _ in 0..200 {
        busy.tell(Stall(5)).expect("queued");
    }
    busy.tell(Add(7)).expect("queued");
    let total = busy
        .ask(Add(0), ASK)
        .await
        .expect("answered after the busy stretch");
    assert_eq!(total, 7, "the state survived: no restart in between");
    assert_eq!(busy.shared().restarts(), 0);
    assert!(busy.shared().last_failure().is_none());
    assert!(root.shutdown().await);
}

#[actix_rt::test]
async fn shutdown_stops_children_in_reverse_start_order() {
    let (sink, _letters) = collecting_sink();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut root = SupervisorSpec::new("root", fast_options());
    for name in ["first", "second", "third"] {
        let spec = WorkerSpec::<Counter>::new(name, ChildOptions::default(), &sink);
        let log = log.clone();
        root = root.child(spec.factory(move || Counter {
            total: 0,
            log: Some(log.clone()),
            name,
        }));
    }
    let mut root = root.start_root();
    root.started().await;
    assert!(root.shutdown().await);
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            "start first",
            "start second",
            "start third",
            "stop third",
            "stop second",
            "stop first"
        ]
    );
    assert_eq!(root.tree.shared.state(), ChildState::Stopped);
}

/// A behavior whose graceful stop never ends: the supervisor must abort it after its timeout.
struct Stubborn;
impl Behavior for Stubborn {
    fn stopping(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Option<futures::future::LocalBoxFuture<'static, ()>> {
        Some(Box::pin(futures::future::pending()))
    }
}

#[actix_rt::test]
async fn a_child_that_will_not_stop_is_aborted_after_its_timeout() {
    let (sink, _letters) = collecting_sink();
    let options = ChildOptions {
        shutdown_timeout: Duration::from_millis(200),
        ..ChildOptions::default()
    };
    let spec = WorkerSpec::<Stubborn>::new("stubborn", options, &sink);
    let stubborn = spec.actor_ref();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(spec.factory(|| Stubborn))
        .start_root();
    root.started().await;
    let started = std::time::Instant::now();
    assert!(root.shutdown().await);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(stubborn.shared().state(), ChildState::Stopped);
}

#[actix_rt::test]
async fn full_mailbox_stores_the_message_as_a_dead_letter() {
    let (sink, letters) = collecting_sink();
    let options = ChildOptions {
        mailbox_capacity: 2,
        ..ChildOptions::default()
    };
    let spec = WorkerSpec::<Counter>::new("small", options, &sink);
    let small = spec.actor_ref();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(spec.factory(Counter::default))
        .start_root();
    root.started().await;
    small.tell(Stall(300)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut refused = 0;
    for i in 0..10 {
        if small.tell(Add(i)).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0, "a bounded mailbox must refuse");
    assert_eq!(letters.lock().unwrap().len(), refused);
    assert!(letters.lock().unwrap()[0]
        .error
        .contains("mailbox of small is full"));
    assert!(root.shutdown().await);
}

#[actix_rt::test]
async fn correlation_id_follows_a_chain_across_actors() {
    // A forwards to B; B records the correlation id it saw.
    struct Fwd {
        to: actors::runtime::ActorRef<Rec>,
    }
    impl Behavior for Fwd {}
    #[derive(Default)]
    struct Rec {
        seen: Arc<Mutex<Vec<String>>>,
    }
    impl Behavior for Rec {}
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Go;
    impl Message for Go {
        type Reply = String;
        const NAME: &'static str = "Go";
    }
    impl Handles<Go> for Fwd {
        fn handle(&mut self, _m: &Go, ctx: &mut Ctx<'_, Self>) -> Result<String, HandlerError> {
            self.to
                .tell(Go)
                .map_err(|e| HandlerError::fail(e.to_string()))?;
            Ok(ctx.meta().unwrap().correlation_id.to_string())
        }
    }
    impl Handles<Go> for Rec {
        fn handle(&mut self, _m: &Go, ctx: &mut Ctx<'_, Self>) -> Result<String, HandlerError> {
            let id = ctx.meta().unwrap().correlation_id.to_string();
            self.seen.lock().unwrap().push(id.clone());
            Ok(id)
        }
    }
    let (sink, _l) = collecting_sink();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = WorkerSpec::<Rec>::new("rec", ChildOptions::default(), &sink);
    let fwd = WorkerSpec::<Fwd>::new("fwd", ChildOptions::default(), &sink);
    let (rec_ref, fwd_ref) = (rec.actor_ref(), fwd.actor_ref());
    let seen2 = seen.clone();
    let to = rec_ref.clone();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(rec.factory(move || Rec {
            seen: seen2.clone(),
        }))
        .child(fwd.factory(move || Fwd { to: to.clone() }))
        .start_root();
    root.started().await;
    let id = fwd_ref.ask(Go, ASK).await.unwrap();
    wait_until("forwarded", || !seen.lock().unwrap().is_empty()).await;
    assert_eq!(seen.lock().unwrap()[0], id);
    assert!(root.shutdown().await);
}

/// A graceful stop takes its time: a stray wake-up must not cut it short (regression: a stored notify permit
/// from the Stop command aborted stop hooks at once in about 1 run of 7).
struct SlowStop {
    done: Arc<Mutex<bool>>,
}
impl Behavior for SlowStop {
    fn stopping(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Option<futures::future::LocalBoxFuture<'static, ()>> {
        let done = self.done.clone();
        Some(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            *done.lock().unwrap() = true;
        }))
    }
}

#[actix_rt::test]
async fn graceful_stop_runs_to_completion() {
    for _ in 0..20 {
        let (sink, _letters) = collecting_sink();
        let done = Arc::new(Mutex::new(false));
        let spec = WorkerSpec::<SlowStop>::new("slow", ChildOptions::default(), &sink);
        let slow = spec.actor_ref();
        let flag = done.clone();
        let mut root = SupervisorSpec::new("root", fast_options())
            .child(spec.factory(move || SlowStop { done: flag.clone() }))
            .start_root();
        root.started().await;
        // A stray control wake-up before the stop.
        let _ = slow.ask(actors::runtime::Ping, ASK).await;
        assert!(root.shutdown().await);
        assert!(*done.lock().unwrap(), "stop hook was cut short");
    }
}

#[actix_rt::test]
async fn a_factory_that_cannot_build_its_actor_is_a_failed_start_retried_with_backoff() {
    let (sink, _letters) = collecting_sink();
    let worker = WorkerSpec::<Counter>::new("counter", ChildOptions::default(), &sink);
    let counter = worker.actor_ref();
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let tried = attempts.clone();
    let mut root = SupervisorSpec::new("root", fast_options())
        .child(worker.try_factory(move || {
            if tried.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                Err("store unavailable")
            } else {
                Ok(Counter::default())
            }
        }))
        .start_root();
    root.started().await;
    wait_until("third build succeeds", || {
        counter.shared().state() == ChildState::Running
    })
    .await;
    assert_eq!(counter.ask(Add(3), ASK).await.unwrap(), 3);
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(counter.shared().restarts(), 2);
    let failure = counter.shared().last_failure().expect("failure recorded");
    assert!(
        failure
            .reason
            .contains("factory could not build the actor: store unavailable"),
        "{}",
        failure.reason
    );
    assert!(root.shutdown().await);
}
