//! The daemon executor: the planner hands one attempt of a [`JobSpec`] to the daemon of the node that runs it,
//! through that node's control API, and watches it to its end with the same contract as the local executor
//! ([`JobOutcome`]). The games stay on the worker (sync brings them to the training nodes).
//!
//! The wire protocol (the worker's side is `POST /jobs` and `GET /jobs/{id}` of its control API):
//! - `POST {api}/jobs` with [`DispatchRequest`] → 202 (accepted) or 200 (already known: a retried hand-over is
//!   idempotent); any other answer is a failure to start, with the worker's `error` text.
//! - `GET {api}/jobs/{id}` → [`RemoteJob`] (`queued`, `running`, or `finished` with its outcome); 404 when the
//!   worker does not know the job (it lost its state).
//! - `POST {api}/jobs/{id}/cancel` when the planner withdraws the job (past `max_wait`, or lost contact).
//! - `GET {api}/jobs/handed-over` → [`HandedOverList`]: every job the worker holds from its planner whose end the
//!   planner has not yet seen (queued, running, or finished while nobody asked). A planner that starts (or restarts
//!   after a crash) asks each worker before its first plan and adopts what it finds ([`jobs_to_adopt`]): the jobs
//!   keep running where they are, their ends are collected as usual and their games counted once.
//!
//! A planner that stops leaves the jobs it handed over running: the workers finish them and keep their outcomes
//! until the planner is back to collect them.
//!
//! Every request carries `Authorization: Bearer <token>` when a token is set, and has its own deadline.
//!
//! When to give up is the pure [`RemoteWatch`]: no answer for `lost_after` ends the attempt as failed (the tracker
//! retries or dead-letters it), and so does a job still not finished after `max_wait`.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::outcome::{JobOutcome, JobStatus};
use super::spec::JobSpec;

/// How the planner hands jobs to peer daemons and watches them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// How often the planner asks a worker how a job it handed over is doing.
    #[serde(with = "humantime_serde")]
    pub poll_every: Duration,
    /// Deadline of one request to a worker's control API.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A worker that has not answered for this long has lost the job: the attempt fails (and is retried).
    #[serde(with = "humantime_serde")]
    pub lost_after: Duration,
    /// Longest a handed-over job may take, queued and running, before the planner withdraws it.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// How often a planner asks again a worker that did not answer at start what it holds from it.
    #[serde(with = "humantime_serde")]
    pub reconcile_every: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            poll_every: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            lost_after: Duration::from_secs(120),
            max_wait: Duration::from_secs(2 * 3600),
            reconcile_every: Duration::from_secs(30),
        }
    }
}

/// The body of `POST /jobs`: one job for the receiving node, and who sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchRequest {
    /// The job; `output` is the planner's suggestion, the worker writes under its own `output_dir`.
    pub job: JobSpec,
    /// The node that planned it (the worker reports to it).
    pub planner: String,
}

/// Where a handed-over job is, as the worker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteState {
    Queued,
    Running,
    Finished,
}

/// The answer of `GET /jobs/{id}` for a handed-over job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteJob {
    pub id: String,
    pub state: RemoteState,
    /// Set once `state` is `finished`.
    pub outcome: Option<JobOutcome>,
}

/// One job a worker holds from its planner: the spec as the planner sent it, and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedOver {
    pub job: JobSpec,
    pub state: RemoteState,
}

/// The answer of `GET /jobs/handed-over`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedOverList {
    /// The node the worker takes jobs from.
    pub planner: String,
    pub jobs: Vec<HandedOver>,
}

/// What a planner adopts from `node`'s list: the jobs it does not know itself (`known` says which it does), each
/// placed on `node` whatever the worker wrote. A list from a worker of another planner adopts nothing.
pub fn jobs_to_adopt(
    planner: &str,
    node: &str,
    list: &HandedOverList,
    known: impl Fn(&str) -> bool,
) -> Vec<JobSpec> {
    if list.planner != planner {
        return Vec::new();
    }
    list.jobs
        .iter()
        .filter(|h| !known(&h.job.id))
        .map(|h| JobSpec {
            node: node.to_string(),
            ..h.job.clone()
        })
        .collect()
}

/// One look at a handed-over job.
#[derive(Debug, Clone, PartialEq)]
pub enum PollReply {
    /// The worker answered with the job's state.
    Known(RemoteJob),
    /// The worker answered that it does not know the job.
    Unknown,
    /// No usable answer (unreachable, timed out, garbled), with why.
    NoAnswer(String),
}

/// What to do after a look.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchStep {
    /// Look again after this long.
    PollAfter(Duration),
    /// The attempt is over with this status; `withdraw` says whether to cancel it on the worker first.
    Done { status: JobStatus, withdraw: bool },
}

/// The pure watch over one handed-over attempt: when to look again and when to give up.
#[derive(Debug, Clone)]
pub struct RemoteWatch {
    config: DispatchConfig,
    node: String,
    started: Instant,
    last_contact: Instant,
}

impl RemoteWatch {
    /// A watch over a job handed to `node` at `now`.
    pub fn new(config: DispatchConfig, node: impl Into<String>, now: Instant) -> RemoteWatch {
        RemoteWatch {
            config,
            node: node.into(),
            started: now,
            last_contact: now,
        }
    }

    /// The next step after `reply` came at `now`.
    pub fn on_reply(&mut self, now: Instant, reply: PollReply) -> WatchStep {
        match reply {
            PollReply::Known(job) => {
                self.last_contact = now;
                if job.state == RemoteState::Finished {
                    let status = match job.outcome {
                        Some(outcome) => outcome.status,
                        None => JobStatus::not_started(format!(
                            "{} reported the job finished without an outcome",
                            self.node
                        )),
                    };
                    return WatchStep::Done {
                        status,
                        withdraw: false,
                    };
                }
                if now.duration_since(self.started) >= self.config.max_wait {
                    return WatchStep::Done {
                        status: JobStatus::TimedOut {
                            after: self.config.max_wait,
                            stderr_tail: format!(
                                "withdrawn from {}: still {} after scheduler.jobs.dispatch.max_wait",
                                self.node,
                                match job.state {
                                    RemoteState::Queued => "queued",
                                    _ => "running",
                                }
                            ),
                        },
                        withdraw: true,
                    };
                }
                WatchStep::PollAfter(self.config.poll_every)
            }
            PollReply::Unknown => WatchStep::Done {
                status: JobStatus::not_started(format!(
                    "{} no longer knows the job (its daemon restarted without it); it will be handed over again",
                    self.node
                )),
                withdraw: false,
            },
            PollReply::NoAnswer(why) => {
                let silent = now.duration_since(self.last_contact);
                if silent >= self.config.lost_after {
                    WatchStep::Done {
                        status: JobStatus::not_started(format!(
                            "lost contact with {}'s daemon for {} (last error: {why}); the attempt counts as failed",
                            self.node,
                            humantime::format_duration(Duration::from_secs(silent.as_secs()))
                        )),
                        withdraw: true,
                    }
                } else {
                    WatchStep::PollAfter(self.config.poll_every)
                }
            }
        }
    }
}

/// Hands jobs to peer daemons over their control API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DaemonExecutor {
    config: DispatchConfig,
}

impl DaemonExecutor {
    pub fn new(config: DispatchConfig) -> DaemonExecutor {
        DaemonExecutor { config }
    }

    /// Runs one attempt of `spec` on the daemon at `api_url`, withdrawing it if `cancel` completes first. Needs
    /// an actix/tokio local runtime (the scheduler's arbiter).
    pub async fn run_until(
        &self,
        spec: &JobSpec,
        api_url: &str,
        token: Option<&str>,
        planner: &str,
        cancel: impl Future<Output = ()>,
    ) -> JobOutcome {
        let started = Instant::now();
        let status = self
            .attempt(spec, api_url.trim_end_matches('/'), token, planner, cancel)
            .await;
        JobOutcome::ended(spec, status, started)
    }

    async fn attempt(
        &self,
        spec: &JobSpec,
        api: &str,
        token: Option<&str>,
        planner: &str,
        cancel: impl Future<Output = ()>,
    ) -> JobStatus {
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(self.config.request_timeout)
            .finish();
        let authorize = |request: awc::ClientRequest| match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let body = DispatchRequest {
            job: spec.clone(),
            planner: planner.to_string(),
        };
        let submitted = authorize(client.post(format!("{api}/jobs")))
            .send_json(&body)
            .await;
        match submitted {
            Ok(mut response) if matches!(response.status().as_u16(), 200 | 202) => {
                let _ = response.body().await;
            }
            Ok(mut response) => {
                let code = response.status().as_u16();
                let text = response
                    .body()
                    .await
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                return JobStatus::not_started(format!(
                    "{}'s daemon refused the job with {code}: {}",
                    spec.node,
                    error_text(&text)
                ));
            }
            Err(e) => {
                return JobStatus::not_started(format!(
                    "cannot hand the job to {}'s daemon at {api}: {e}",
                    spec.node
                ))
            }
        }
        tracing::info!(job = %spec.id, node = %spec.node, api = %api, "job handed to the node's daemon");

        let mut watch = RemoteWatch::new(self.config.clone(), spec.node.clone(), Instant::now());
        let mut cancel = std::pin::pin!(cancel);
        let mut wait = self.config.poll_every;
        loop {
            tokio::select! {
                _ = &mut cancel => {
                    // The planner is stopping: the job goes on on the worker, and the planner adopts it again
                    // when it is back (`GET /jobs/handed-over`).
                    tracing::info!(job = %spec.id, node = %spec.node, "planner stopping; the job keeps running on its node and is collected after the restart");
                    return JobStatus::Cancelled;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            let reply = poll(&client, api, token, &spec.id).await;
            match watch.on_reply(Instant::now(), reply) {
                WatchStep::PollAfter(next) => wait = next,
                WatchStep::Done { status, withdraw } => {
                    if withdraw {
                        self.withdraw(&client, api, token, &spec.id).await;
                    }
                    return status;
                }
            }
        }
    }

    /// The jobs the daemon at `api_url` holds from its planner and whose end the planner has not seen.
    pub async fn list_handed_over(
        &self,
        api_url: &str,
        token: Option<&str>,
    ) -> Result<HandedOverList, String> {
        let api = api_url.trim_end_matches('/');
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(self.config.request_timeout)
            .finish();
        let mut request = client.get(format!("{api}/jobs/handed-over"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("GET {api}/jobs/handed-over: {e}"))?;
        let code = response.status().as_u16();
        if code != 200 {
            let text = response
                .body()
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            return Err(format!(
                "GET {api}/jobs/handed-over answered {code}: {}",
                error_text(&text)
            ));
        }
        response
            .json::<HandedOverList>()
            .limit(16 << 20)
            .await
            .map_err(|e| format!("GET {api}/jobs/handed-over: unreadable answer: {e}"))
    }

    async fn withdraw(&self, client: &awc::Client, api: &str, token: Option<&str>, id: &str) {
        let mut request = client.post(format!("{api}/jobs/{id}/cancel"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Err(e) = request.send().await {
            tracing::warn!(job = %id, api = %api, error = %e, "could not withdraw the job from the node's daemon; it stops there at its own timeout");
        }
    }
}

async fn poll(client: &awc::Client, api: &str, token: Option<&str>, id: &str) -> PollReply {
    let mut request = client.get(format!("{api}/jobs/{id}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => return PollReply::NoAnswer(e.to_string()),
    };
    match response.status().as_u16() {
        200 => match response.json::<RemoteJob>().limit(1 << 20).await {
            Ok(job) if job.id == id => PollReply::Known(job),
            Ok(job) => PollReply::NoAnswer(format!("answered for job {} instead of {id}", job.id)),
            Err(e) => PollReply::NoAnswer(format!("unreadable answer: {e}")),
        },
        404 => PollReply::Unknown,
        code => PollReply::NoAnswer(format!("answered {code}")),
    }
}

/// The `error` field of a JSON error body, else the body itself (cut short).
fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DispatchConfig {
        DispatchConfig {
            poll_every: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            lost_after: Duration::from_secs(120),
            max_wait: Duration::from_secs(3600),
            ..DispatchConfig::default()
        }
    }

    fn job(state: RemoteState, outcome: Option<JobOutcome>) -> PollReply {
        PollReply::Known(RemoteJob {
            id: "j".into(),
            state,
            outcome,
        })
    }

    #[test]
    fn a_finished_job_ends_the_watch_with_its_outcome() {
        let t0 = Instant::now();
        let mut watch = RemoteWatch::new(config(), "worker-1", t0);
        assert_eq!(
            watch.on_reply(t0 + Duration::from_secs(2), job(RemoteState::Queued, None)),
            WatchStep::PollAfter(Duration::from_secs(2))
        );
        let outcome = JobOutcome {
            job_id: "j".into(),
            node: "worker-1".into(),
            status: JobStatus::Succeeded { games_written: 50 },
            duration: Duration::from_secs(3),
        };
        assert_eq!(
            watch.on_reply(
                t0 + Duration::from_secs(4),
                job(RemoteState::Finished, Some(outcome))
            ),
            WatchStep::Done {
                status: JobStatus::Succeeded { games_written: 50 },
                withdraw: false
            }
        );
    }

    #[test]
    fn silence_is_tolerated_until_lost_after_then_fails_and_withdraws() {
        let t0 = Instant::now();
        let mut watch = RemoteWatch::new(config(), "worker-1", t0);
        let no = || PollReply::NoAnswer("connection refused".into());
        assert!(matches!(
            watch.on_reply(t0 + Duration::from_secs(119), no()),
            WatchStep::PollAfter(_)
        ));
        // An answer resets the silence.
        watch.on_reply(
            t0 + Duration::from_secs(119),
            job(RemoteState::Running, None),
        );
        assert!(matches!(
            watch.on_reply(t0 + Duration::from_secs(238), no()),
            WatchStep::PollAfter(_)
        ));
        match watch.on_reply(t0 + Duration::from_secs(239), no()) {
            WatchStep::Done {
                status: JobStatus::Failed { reason, .. },
                withdraw: true,
            } => {
                assert!(reason.contains("lost contact with worker-1"), "{reason}");
                assert!(reason.contains("2m"), "{reason}");
                assert!(reason.contains("connection refused"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_job_past_max_wait_is_withdrawn_as_timed_out() {
        let t0 = Instant::now();
        let mut watch = RemoteWatch::new(config(), "worker-1", t0);
        assert!(matches!(
            watch.on_reply(
                t0 + Duration::from_secs(3599),
                job(RemoteState::Running, None)
            ),
            WatchStep::PollAfter(_)
        ));
        assert!(matches!(
            watch.on_reply(
                t0 + Duration::from_secs(3600),
                job(RemoteState::Running, None)
            ),
            WatchStep::Done {
                status: JobStatus::TimedOut { .. },
                withdraw: true
            }
        ));
    }

    #[test]
    fn an_unknown_job_fails_without_withdrawing() {
        let t0 = Instant::now();
        let mut watch = RemoteWatch::new(config(), "worker-1", t0);
        assert!(matches!(
            watch.on_reply(t0, PollReply::Unknown),
            WatchStep::Done {
                status: JobStatus::Failed { .. },
                withdraw: false
            }
        ));
        assert!(matches!(
            watch.on_reply(t0, job(RemoteState::Finished, None)),
            WatchStep::Done {
                status: JobStatus::Failed { .. },
                withdraw: false
            }
        ));
    }

    #[test]
    fn a_planner_adopts_only_the_jobs_it_does_not_know_and_places_them_on_the_worker() {
        let spec = |id: &str| JobSpec {
            id: id.into(),
            node: "written-by-worker".into(),
            ..crate::jobs::spec::tests::sample_spec()
        };
        let list = HandedOverList {
            planner: "t1".into(),
            jobs: vec![
                HandedOver {
                    job: spec("a"),
                    state: RemoteState::Running,
                },
                HandedOver {
                    job: spec("b"),
                    state: RemoteState::Finished,
                },
                HandedOver {
                    job: spec("c"),
                    state: RemoteState::Queued,
                },
            ],
        };
        let adopted = jobs_to_adopt("t1", "w1", &list, |id| id == "c");
        let ids: Vec<_> = adopted.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(adopted.iter().all(|s| s.node == "w1"));
        // A worker of another planner: nothing.
        assert!(jobs_to_adopt("t2", "w1", &list, |_| false).is_empty());
        // Nothing known: everything, in the worker's order.
        assert_eq!(jobs_to_adopt("t1", "w1", &list, |_| false).len(), 3);
    }

    #[test]
    fn error_text_prefers_the_error_field() {
        assert_eq!(
            error_text(r#"{"error":"paused: disk 96%"}"#),
            "paused: disk 96%"
        );
        assert_eq!(error_text("plain"), "plain");
    }

    #[test]
    fn the_wire_types_round_trip() {
        let request = DispatchRequest {
            job: crate::jobs::spec::tests::sample_spec(),
            planner: "train-1".into(),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<DispatchRequest>(&text).unwrap(),
            request
        );
        let job: RemoteJob =
            serde_json::from_str(r#"{"id":"j","state":"running","outcome":null}"#).unwrap();
        assert_eq!(job.state, RemoteState::Running);
    }
}
