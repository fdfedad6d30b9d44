//! Networking that follows Neutron: an optional consumer of Neutron's notifications
//! (`[notifications] transport_url`), which applies networking inside opted-in instances as
//! their ports, subnets and networks change, and posts the results back.
//!
//! - [`url`]: oslo.messaging's transport URL (several brokers: failover).
//! - [`message`]: the notifications, parsed without IO.
//! - `broker`: one AMQP 0-9-1 connection at a time (lapin), reconnected with capped backoff;
//!   our own durable queue bound to Neutron's exchange, a bounded prefetch, competing
//!   consumers across API replicas. RabbitMQ is the distributed part: nothing is queued here
//!   beyond what the broker has delivered and not yet seen acked.
//! - `scheduler`: per instance, events within `debounce` become one apply; failures that
//!   waiting can cure are retried with capped backoff for `retry_for`. A message is acked
//!   once every apply it caused (or was merged into) finished or was given up; on shutdown
//!   the rest stay unacked, for the broker to deliver again.
//! - [`results`]: the result notifications.

pub mod message;
pub mod results;
pub mod url;

mod broker;
mod scheduler;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::NotificationsConfig;
use crate::state::App;
use results::ApplyResult;

/// The consumer's state, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Connecting for the first time.
    Connecting,
    /// Connected and consuming.
    Consuming,
    /// No broker reachable, or the connection was lost: reconnecting.
    Degraded(&'static str),
    /// Stopped (shutdown).
    Stopped,
}

/// The running consumer, as the rest of the API sees it.
#[derive(Debug)]
pub struct Handle {
    health: Mutex<(Health, Instant)>,
    publish: tokio::sync::Mutex<Option<Channel>>,
    publisher_id: String,
    results_exchange: String,
    topic: String,
}

/// How long a result's publisher confirm is waited for.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

impl Handle {
    fn new(config: &NotificationsConfig) -> Self {
        Self {
            health: Mutex::new((Health::Connecting, Instant::now())),
            publish: tokio::sync::Mutex::new(None),
            publisher_id: results::publisher_id(),
            results_exchange: config.results_exchange.clone(),
            topic: config.topic.clone(),
        }
    }

    fn set_health(&self, health: Health) {
        if let Ok(mut h) = self.health.lock()
            && h.0 != health
        {
            *h = (health, Instant::now());
        }
    }

    /// The consumer's state.
    pub fn health(&self) -> Health {
        self.health
            .lock()
            .map(|h| h.0.clone())
            .unwrap_or(Health::Degraded("unknown"))
    }

    /// The `notifications` member of `/healthz`: `status` (`consuming`, `connecting`,
    /// `degraded`, `stopped`), for how many seconds, and why when degraded (no host names:
    /// `/healthz` is public).
    pub fn health_json(&self) -> Value {
        let (health, since) = self
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or((Health::Degraded("unknown"), Instant::now()));
        let seconds = since.elapsed().as_secs();
        match health {
            Health::Connecting => json!({"status": "connecting", "seconds": seconds}),
            Health::Consuming => json!({"status": "consuming", "seconds": seconds}),
            Health::Degraded(reason) => {
                json!({"status": "degraded", "seconds": seconds, "reason": reason})
            }
            Health::Stopped => json!({"status": "stopped", "seconds": seconds}),
        }
    }

    /// Publishes a result; logged (never raised) when no broker takes it.
    pub async fn publish(&self, result: &ApplyResult) {
        let body = result.envelope(&self.publisher_id, SystemTime::now());
        let key = if result.outcome.is_ok() {
            format!("{}.info", self.topic)
        } else {
            format!("{}.error", self.topic)
        };
        let channel = self.publish.lock().await.clone();
        let Some(channel) = channel else {
            tracing::warn!(instance = %result.instance_id, event_type = result.event_type(),
                "no broker connection: result notification not published");
            return;
        };
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2);
        let sent = async {
            channel
                .basic_publish(
                    &self.results_exchange,
                    &key,
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await?
                .await
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, sent).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(instance = %result.instance_id, error = %e,
                "result notification not published"),
            Err(_) => tracing::warn!(instance = %result.instance_id,
                "result notification not confirmed by the broker in time"),
        }
    }
}

/// The consumer's task and its handle.
#[derive(Debug)]
pub struct Consumer {
    /// What the API reads (health, publishing).
    pub handle: Arc<Handle>,
    task: JoinHandle<()>,
}

impl Consumer {
    /// Starts consuming with `config` until `shutdown`; then it stops taking messages and
    /// gives the applies in flight until `drain` to finish (their messages are acked), and
    /// abandons the rest (unacked: the broker delivers them again).
    pub fn start(
        app: Arc<App>,
        config: NotificationsConfig,
        shutdown: CancellationToken,
        drain: Duration,
    ) -> Self {
        let handle = Arc::new(Handle::new(&config));
        tracing::info!(
            brokers = %config.transport_url.redacted(),
            exchange = %config.neutron_exchange,
            queue = %config.queue,
            auto_apply_networking = ?config.auto_apply,
            "consuming Neutron's notifications"
        );
        let task = tokio::spawn(broker::run(app, config, handle.clone(), shutdown, drain));
        Self { handle, task }
    }

    /// Waits for the consumer to have stopped (after the shutdown token).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}
