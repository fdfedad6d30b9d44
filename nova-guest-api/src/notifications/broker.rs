//! The broker side: one connection at a time to the first broker of the transport URL that
//! answers (the next one on each new attempt: failover), reconnected with capped backoff while
//! the REST API keeps serving. On each connection: Neutron's exchange and ours made sure of
//! (passively first, else declared as oslo.messaging declares them: topic, not durable), our
//! durable queue declared and bound with `<topic>.info`, prefetch bounded, one consumer; a
//! second channel in confirm mode publishes the results.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_core::Stream;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::message::{self, Event, Parsed};
use super::results::Trigger;
use super::scheduler::{Claim, Scheduler, ack};
use super::url::Broker;
use super::{Handle, Health};
use crate::apply;
use crate::cloud::PortsOn;
use crate::config::{AutoApply, NotificationsConfig};
use crate::state::App;

/// First wait before reconnecting; doubles up to [`MAX_RECONNECT`].
const FIRST_RECONNECT: Duration = Duration::from_millis(200);
/// The longest wait between two connection attempts.
const MAX_RECONNECT: Duration = Duration::from_secs(10);
/// Connecting and setting up a connection, at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

struct Session {
    connection: Connection,
    consume: Channel,
    publish: Channel,
    consumer: Consumer,
}

fn uri(broker: &Broker, vhost: &str) -> AMQPUri {
    AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: broker.username.clone(),
                password: broker.password.expose().to_owned(),
            },
            host: broker.host.clone(),
            port: broker.port,
        },
        vhost: vhost.to_owned(),
        query: AMQPQueryString {
            heartbeat: Some(30),
            ..AMQPQueryString::default()
        },
    }
}

/// Makes sure `name` exists: declared as oslo.messaging declares notification exchanges
/// (topic, not durable, not auto-deleted: `amqp_durable_queues = false`, its default), else,
/// when it exists with other settings (a durable one), taken as it is (passively).
async fn ensure_exchange(connection: &Connection, name: &str) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    let declared = channel
        .exchange_declare(
            name,
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    if declared.is_ok() {
        let _ = channel.close(200, "ok").await;
        return Ok(());
    }
    // The refused declare closed that channel.
    let channel = connection.create_channel().await?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let found = channel
        .exchange_declare(name, ExchangeKind::Topic, passive, FieldTable::default())
        .await;
    let _ = channel.close(200, "ok").await;
    found
}

/// Like oslo.messaging's notifier, makes sure a queue named as the routing key is bound to
/// our results exchange, so that results wait for a listener (best effort: an existing queue
/// with other settings is left alone).
async fn default_queue(connection: &Connection, exchange: &str, key: &str) {
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    let declared = channel
        .queue_declare(key, QueueDeclareOptions::default(), FieldTable::default())
        .await;
    if declared.is_ok() {
        let _ = channel
            .queue_bind(
                key,
                exchange,
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
    }
    let _ = channel.close(200, "ok").await;
}

async fn connect(broker: &Broker, config: &NotificationsConfig) -> lapin::Result<Session> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current())
        .with_connection_name("nova-guest-api".into());
    let connection =
        Connection::connect_uri(uri(broker, &config.transport_url.vhost), properties).await?;
    ensure_exchange(&connection, &config.neutron_exchange).await?;
    ensure_exchange(&connection, &config.results_exchange).await?;
    for priority in ["info", "error"] {
        let key = format!("{}.{priority}", config.topic);
        default_queue(&connection, &config.results_exchange, &key).await;
    }
    let consume = connection.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    consume
        .queue_declare(&config.queue, durable, FieldTable::default())
        .await?;
    consume
        .queue_bind(
            &config.queue,
            &config.neutron_exchange,
            &format!("{}.info", config.topic),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    consume
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = consume
        .basic_consume(
            &config.queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let publish = connection.create_channel().await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(Session {
        connection,
        consume,
        publish,
        consumer,
    })
}

async fn next(consumer: &mut Consumer) -> Option<lapin::Result<Delivery>> {
    std::future::poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)).await
}

/// Runs the consumer until `shutdown`, then drains for up to `drain`.
pub(super) async fn run(
    app: Arc<App>,
    config: NotificationsConfig,
    handle: Arc<Handle>,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let scheduler = Arc::new(Scheduler::new(
        app.clone(),
        handle.clone(),
        &config,
        CancellationToken::new(),
    ));
    let brokers = &config.transport_url.brokers;
    let mut attempt = 0usize;
    let mut backoff = FIRST_RECONNECT;
    let mut session: Option<Session> = None;
    while !shutdown.is_cancelled() {
        let broker = &brokers[attempt % brokers.len()];
        attempt += 1;
        let connected = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, connect(broker, &config)) => r,
            () = shutdown.cancelled() => break,
        };
        let mut s = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(broker = %broker.address(), error = %e, "cannot connect to the broker");
                handle.set_health(Health::Degraded("no broker reachable"));
                if !pause(&shutdown, &mut backoff).await {
                    break;
                }
                continue;
            }
            Err(_) => {
                tracing::warn!(broker = %broker.address(), "connecting to the broker timed out");
                handle.set_health(Health::Degraded("no broker reachable"));
                if !pause(&shutdown, &mut backoff).await {
                    break;
                }
                continue;
            }
        };
        tracing::info!(broker = %broker.address(), queue = %config.queue, "consuming notifications");
        backoff = FIRST_RECONNECT;
        // The broker that answered is tried first next time.
        attempt -= 1;
        *handle.publish.lock().await = Some(s.publish.clone());
        handle.set_health(Health::Consuming);
        loop {
            let delivery = tokio::select! {
                d = next(&mut s.consumer) => d,
                () = shutdown.cancelled() => break,
            };
            match delivery {
                Some(Ok(d)) => dispatch(&app, &scheduler, d).await,
                Some(Err(e)) => {
                    tracing::warn!(broker = %broker.address(), error = %e,
                        "connection to the broker lost; reconnecting");
                    break;
                }
                None => {
                    tracing::warn!(broker = %broker.address(),
                        "the broker ended the consumer; reconnecting");
                    break;
                }
            }
        }
        if shutdown.is_cancelled() {
            session = Some(s);
            break;
        }
        *handle.publish.lock().await = None;
        handle.set_health(Health::Degraded("connection to the broker lost"));
        let _ = s.connection.close(200, "reconnecting").await;
        if !pause(&shutdown, &mut backoff).await {
            break;
        }
    }
    // Shutdown: take nothing new, let applies in flight finish within the drain deadline
    // (their messages acked), abandon the rest (unacked: delivered again by the broker).
    if let Some(s) = &session {
        let _ = s
            .consume
            .basic_cancel(s.consumer.tag().as_str(), BasicCancelOptions::default())
            .await;
    }
    scheduler.stopping().cancel();
    scheduler.tasks.close();
    if tokio::time::timeout(drain, scheduler.tasks.wait())
        .await
        .is_err()
    {
        scheduler.abandon_all.store(true, Ordering::Release);
        tracing::warn!(
            applies = scheduler.tasks.len(),
            "drain deadline passed: applies still running are abandoned, their messages \
             left to the broker"
        );
    }
    *handle.publish.lock().await = None;
    if let Some(s) = session {
        let _ = s.connection.close(200, "shutting down").await;
    }
    handle.set_health(Health::Stopped);
    tracing::info!("notification consumer stopped");
}

/// Waits `backoff` (doubling it for next time) unless shut down first (false).
async fn pause(shutdown: &CancellationToken, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_RECONNECT);
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = shutdown.cancelled() => false,
    }
}

/// One delivery: parsed; malformed, ignored and (with auto_apply off) every message acked at
/// once; port events become claims on their instances; subnet and network events first find
/// their compute ports.
async fn dispatch(app: &Arc<App>, scheduler: &Arc<Scheduler>, d: Delivery) {
    let parsed = message::parse(&d.data);
    let result = match &parsed {
        Err(_) => "malformed",
        Ok(Parsed::Ignored { .. }) => "ignored",
        Ok(Parsed::Act { .. }) => "accepted",
    };
    app.metrics.inc(
        "nova_guest_api_notifications_total",
        format!("result=\"{result}\""),
    );
    let (message_id, event_type, event) = match parsed {
        Err(e) => {
            tracing::warn!(error = %e, bytes = d.data.len(), redelivered = d.redelivered,
                "malformed notification acked and dropped");
            return ack(&d.acker, &app.metrics).await;
        }
        Ok(Parsed::Ignored { event_type }) => {
            tracing::debug!(event_type, "notification of no interest");
            return ack(&d.acker, &app.metrics).await;
        }
        Ok(Parsed::Act {
            message_id,
            event_type,
            event,
        }) => (message_id, event_type, event),
    };
    if scheduler.auto_apply() == AutoApply::Off {
        tracing::debug!(event_type, message_id, "auto_apply_networking = off");
        return ack(&d.acker, &app.metrics).await;
    }
    tracing::debug!(
        event_type,
        message_id,
        redelivered = d.redelivered,
        "notification"
    );
    let trigger = Trigger::Event {
        event_type,
        message_id,
    };
    match event {
        Event::Ports(ports) => {
            let mut instances: Vec<(Uuid, String)> = Vec::new();
            for p in ports {
                if !instances.iter().any(|(i, _)| *i == p.instance) {
                    instances.push((p.instance, p.project_id));
                }
            }
            submit(scheduler, d.acker, instances, &trigger).await;
        }
        Event::Subnet(id) | Event::Network(id) if app.state().cloud.is_none() => {
            // noauth: no Neutron to ask which ports; every mapped instance.
            let _ = id;
            let instances = apply::mapped(&app.state()).into_iter().collect();
            submit(scheduler, d.acker, instances, &trigger).await;
        }
        event => {
            let (app, scheduler) = (app.clone(), scheduler.clone());
            scheduler.clone().tasks.spawn(async move {
                let on = match &event {
                    Event::Subnet(id) => PortsOn::Subnet(id),
                    Event::Network(id) => PortsOn::Network(id),
                    Event::Ports(_) => return,
                };
                // None: shutting down, the message stays unacked.
                if let Some(instances) = resolve(&app, &scheduler, on).await {
                    submit(&scheduler, d.acker, instances, &trigger).await;
                }
            });
        }
    }
}

async fn submit(
    scheduler: &Arc<Scheduler>,
    acker: lapin::acker::Acker,
    instances: Vec<(Uuid, String)>,
    trigger: &Trigger,
) {
    let projects = instances.iter().map(|(_, p)| p.clone()).collect();
    let claims = Claim::split(
        acker,
        projects,
        trigger,
        &scheduler.abandon_all,
        scheduler.metrics(),
    )
    .await;
    for ((instance, _), claim) in instances.into_iter().zip(claims) {
        scheduler.submit(instance, claim);
    }
}

/// The instances with a compute port on a subnet or network, retried like an apply while
/// Neutron is unavailable (given up after `retry_for`: empty); `None` when shutting down.
async fn resolve(app: &App, scheduler: &Scheduler, on: PortsOn<'_>) -> Option<Vec<(Uuid, String)>> {
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(250);
    let request_id = format!("req-{}", Uuid::new_v4());
    loop {
        let state = app.state();
        let cloud = state.cloud.as_ref()?;
        match cloud.compute_ports(on, None, &request_id).await {
            Ok(found) => return Some(found),
            Err(e)
                if apply::retryable(&e) && started.elapsed() + backoff <= scheduler.retry_for() =>
            {
                tracing::info!(request_id, error = %e, "listing ports failed; retrying");
            }
            Err(e) => {
                tracing::error!(request_id, error = %e, ?on,
                    "cannot list the ports of a changed subnet or network; notification dropped");
                return Some(Vec::new());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = scheduler.stopping().cancelled() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
