//! Per-instance applies: debounce, retries, and the acks they hold back.
//!
//! Each instance has at most one job. A claim (one message's interest in one instance) joins
//! the job's pending list; an attempt takes every pending claim with it, so claims that
//! arrive while the job debounces or waits to retry ride on the next attempt, and claims that
//! arrive during an attempt (which may have read Neutron before their change) make another
//! cycle. A message is acked when the last of its claims is released: its applies finished,
//! failed for good, or were given up after `retry_for`. On shutdown, claims not yet released
//! are abandoned and their messages stay unacked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::acker::Acker;
use lapin::options::BasicAckOptions;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::Handle;
use super::results::{ApplyResult, Trigger};
use crate::apply;
use crate::config::{AutoApply, NotificationsConfig};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::App;

/// First wait before a retry; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One delivered message, acked once every claim on it is released.
#[derive(Debug)]
struct Ticket {
    acker: Acker,
    remaining: AtomicUsize,
    abandoned: AtomicBool,
    abandon_all: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

/// Acks `acker` (a closed channel's ack fails: the broker delivers the message again).
pub(super) async fn ack(acker: &Acker, metrics: &Metrics) {
    match acker.ack(BasicAckOptions::default()).await {
        Ok(_) => metrics.inc("nova_guest_api_notifications_acked_total", String::new()),
        Err(e) => {
            tracing::debug!(error = %e, "ack failed (the broker will deliver the message again)");
        }
    }
}

/// One message's interest in one instance.
#[derive(Debug)]
pub(super) struct Claim {
    ticket: Arc<Ticket>,
    /// The project the event says the instance's port belongs to.
    pub(super) project: String,
    /// What the message was.
    pub(super) trigger: Trigger,
}

impl Claim {
    /// `n` claims on one message (none: the message is acked at once).
    pub(super) async fn split(
        acker: Acker,
        projects: Vec<String>,
        trigger: &Trigger,
        abandon_all: &Arc<AtomicBool>,
        metrics: &Arc<Metrics>,
    ) -> Vec<Self> {
        if projects.is_empty() {
            ack(&acker, metrics).await;
            return Vec::new();
        }
        let ticket = Arc::new(Ticket {
            acker,
            remaining: AtomicUsize::new(projects.len()),
            abandoned: AtomicBool::new(false),
            abandon_all: abandon_all.clone(),
            metrics: metrics.clone(),
        });
        projects
            .into_iter()
            .map(|project| Self {
                ticket: ticket.clone(),
                project,
                trigger: trigger.clone(),
            })
            .collect()
    }

    /// This claim is done with: the last one acks the message (unless it was abandoned).
    pub(super) async fn release(self) {
        let t = &self.ticket;
        if t.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && !t.abandoned.load(Ordering::Acquire)
            && !t.abandon_all.load(Ordering::Acquire)
        {
            ack(&t.acker, &t.metrics).await;
        }
    }

    /// This claim will not be served here: the message is never acked by this process.
    pub(super) fn abandon(self) {
        self.ticket.abandoned.store(true, Ordering::Release);
    }
}

#[derive(Debug, Default)]
struct Slot {
    pending: Vec<Claim>,
}

/// How one attempt ended.
enum Attempt {
    /// Nothing more to do (applied, failed for good, or nothing to apply).
    Done(Option<ApplyResult>),
    /// Worth trying again.
    Retry(ApiError),
}

/// The per-instance jobs.
#[derive(Debug)]
pub(super) struct Scheduler {
    app: Arc<App>,
    handle: Arc<Handle>,
    slots: Mutex<HashMap<Uuid, Slot>>,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
    /// Every job and resolution task.
    pub(super) tasks: TaskTracker,
    pub(super) abandon_all: Arc<AtomicBool>,
    debounce: Duration,
    retry_for: Duration,
    auto_apply: AutoApply,
    tag: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Scheduler {
    pub(super) fn new(
        app: Arc<App>,
        handle: Arc<Handle>,
        config: &NotificationsConfig,
        stop: CancellationToken,
    ) -> Self {
        Self {
            app,
            handle,
            slots: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(config.max_concurrent_applies)),
            stop,
            tasks: TaskTracker::new(),
            abandon_all: Arc::new(AtomicBool::new(false)),
            debounce: config.debounce,
            retry_for: config.retry_for,
            auto_apply: config.auto_apply,
            tag: config.auto_apply_tag.clone(),
        }
    }

    /// Process metrics.
    pub(super) fn metrics(&self) -> &Arc<Metrics> {
        &self.app.metrics
    }

    /// The opt-in mode.
    pub(super) fn auto_apply(&self) -> AutoApply {
        self.auto_apply
    }

    /// The retry window (also for finding a subnet's or network's ports).
    pub(super) fn retry_for(&self) -> Duration {
        self.retry_for
    }

    /// The token cancelled on shutdown.
    pub(super) fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// Adds `claim` to `instance`'s job, starting one if none runs.
    pub(super) fn submit(self: &Arc<Self>, instance: Uuid, claim: Claim) {
        if self.stop.is_cancelled() {
            claim.abandon();
            return;
        }
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get_mut(&instance) {
            slot.pending.push(claim);
            return;
        }
        slots.insert(
            instance,
            Slot {
                pending: vec![claim],
            },
        );
        drop(slots);
        let me = self.clone();
        self.tasks.spawn(async move { me.job(instance).await });
    }

    /// Sleeps `d` unless stopped first (false).
    async fn sleep(&self, d: Duration) -> bool {
        if d.is_zero() {
            return !self.stop.is_cancelled();
        }
        tokio::select! {
            () = tokio::time::sleep(d) => !self.stop.is_cancelled(),
            () = self.stop.cancelled() => false,
        }
    }

    /// Abandons `covered` and whatever is pending, and ends the job.
    fn abandon(&self, instance: Uuid, covered: Vec<Claim>) {
        let slot = lock(&self.slots).remove(&instance).unwrap_or_default();
        let n = covered.len() + slot.pending.len();
        for c in covered.into_iter().chain(slot.pending) {
            c.abandon();
        }
        tracing::info!(%instance, messages = n,
            "shutting down: apply abandoned, its messages left to the broker");
    }

    fn take_pending(&self, instance: Uuid) -> Vec<Claim> {
        lock(&self.slots)
            .get_mut(&instance)
            .map(|s| std::mem::take(&mut s.pending))
            .unwrap_or_default()
    }

    async fn job(self: Arc<Self>, instance: Uuid) {
        loop {
            if !self.sleep(self.debounce).await {
                return self.abandon(instance, Vec::new());
            }
            let started = Instant::now();
            let request_id = format!("req-{}", Uuid::new_v4());
            let mut covered: Vec<Claim> = Vec::new();
            let mut attempts = 0u32;
            let mut backoff = FIRST_BACKOFF;
            let result = loop {
                covered.extend(self.take_pending(instance));
                attempts += 1;
                let permit = tokio::select! {
                    p = self.permits.clone().acquire_owned() => p.ok(),
                    () = self.stop.cancelled() => None,
                };
                let Some(permit) = permit else {
                    return self.abandon(instance, covered);
                };
                let outcome = self.attempt(instance, &mut covered, &request_id).await;
                drop(permit);
                let error = match outcome {
                    Attempt::Done(result) => {
                        break result.map(|mut r| {
                            r.attempts = attempts;
                            r
                        });
                    }
                    Attempt::Retry(e) => e,
                };
                let project = covered.first().map(|c| c.project.clone());
                if started.elapsed() + backoff > self.retry_for {
                    tracing::error!(%instance, request_id, attempts, error = %error,
                        retry_for_s = self.retry_for.as_secs_f64(),
                        "automatic apply-networking given up");
                    self.app.metrics.inc(
                        "nova_guest_api_auto_applies_total",
                        "result=\"given_up\"".into(),
                    );
                    break project.map(|project_id| ApplyResult {
                        instance_id: instance,
                        project_id,
                        trigger: covered[0].trigger.clone(),
                        merged_events: covered.len(),
                        attempts,
                        outcome: Err(error),
                    });
                }
                tracing::info!(%instance, request_id, attempts, error = %error,
                    retry_in_ms = backoff.as_millis() as u64, "automatic apply-networking will be retried");
                if !self.sleep(backoff).await {
                    return self.abandon(instance, covered);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            };
            if let Some(result) = &result {
                self.handle.publish(result).await;
            }
            for c in covered {
                c.release().await;
            }
            let mut slots = lock(&self.slots);
            let more = slots.get(&instance).is_some_and(|s| !s.pending.is_empty());
            if !more {
                slots.remove(&instance);
                return;
            }
            drop(slots);
            if self.stop.is_cancelled() {
                return self.abandon(instance, Vec::new());
            }
        }
    }

    /// One lookup and apply for the claims in `covered` (claims that turn out not to be
    /// this instance's are released and removed from it).
    async fn attempt(&self, id: Uuid, covered: &mut Vec<Claim>, request_id: &str) -> Attempt {
        let state = self.app.state();
        let found = match &state.cloud {
            None => state.config.instances.get(&id).map(|i| {
                (
                    i.project_id.clone(),
                    "ACTIVE".to_owned(),
                    Some(i.host.clone()),
                    Vec::new(),
                )
            }),
            Some(cloud) => {
                let server = if self.auto_apply == AutoApply::Tagged {
                    cloud.server_with_tags(id, request_id).await
                } else {
                    cloud.server(id, request_id).await
                };
                match server {
                    Ok(s) => s.map(|s| (s.project_id, s.status, s.host, s.tags)),
                    Err(e) if apply::retryable(&e) => return Attempt::Retry(e),
                    Err(e) => {
                        tracing::warn!(instance = %id, request_id, error = %e, "instance lookup failed");
                        return Attempt::Done(None);
                    }
                }
            }
        };
        let Some((project, status, host, tags)) = found else {
            tracing::info!(instance = %id, request_id,
                "notification names an unknown instance (device id); nothing applied");
            return Attempt::Done(None);
        };
        // Tenant isolation: only events about the instance's own project's ports count.
        let (ours, foreign): (Vec<Claim>, Vec<Claim>) = std::mem::take(covered)
            .into_iter()
            .partition(|c| c.project == project);
        for c in foreign {
            tracing::warn!(instance = %id, request_id, port_project = %c.project,
                "notification about another project's port naming this instance; ignored");
            c.release().await;
        }
        *covered = ours;
        if covered.is_empty() {
            return Attempt::Done(None);
        }
        if status != "ACTIVE" {
            tracing::info!(instance = %id, request_id, status, "instance not ACTIVE; nothing applied");
            return Attempt::Done(None);
        }
        let opted_in = match self.auto_apply {
            AutoApply::Off => false,
            AutoApply::All => true,
            AutoApply::Tagged => tags.contains(&self.tag),
        };
        if !opted_in {
            tracing::debug!(instance = %id, request_id, "instance not opted in; nothing applied");
            return Attempt::Done(None);
        }
        let Some(host) = host else {
            return Attempt::Retry(ApiError::Conflict(format!(
                "Instance {id} has no compute host yet."
            )));
        };
        let result = |outcome| {
            Attempt::Done(Some(ApplyResult {
                instance_id: id,
                project_id: project.clone(),
                trigger: covered[0].trigger.clone(),
                merged_events: covered.len(),
                attempts: 0,
                outcome,
            }))
        };
        match apply::networking(&state, id, &project, &host, request_id).await {
            Ok(reply) => {
                tracing::info!(instance = %id, request_id, merged_events = covered.len(),
                    "automatic apply-networking done");
                self.app.metrics.inc(
                    "nova_guest_api_auto_applies_total",
                    "result=\"success\"".into(),
                );
                result(Ok(apply::reply_value(&reply)))
            }
            Err(e) if apply::retryable(&e) => Attempt::Retry(e),
            Err(e) => {
                tracing::warn!(instance = %id, request_id, error = %e,
                    "automatic apply-networking failed");
                self.app.metrics.inc(
                    "nova_guest_api_auto_applies_total",
                    "result=\"failed\"".into(),
                );
                result(Err(e))
            }
        }
    }
}
