//! Against a real QEMU monitor (`qemu-system-x86_64 -machine none`).

use std::time::Duration;

use qga_client::proto::RawCommand;
use qga_client::proto::message::ErrorClass;
use qga_client::proto::qmp::{
    Cont, HumanMonitorCommand, KnownEvent, QueryChardev, QueryCommands, QueryStatus, QueryVersion,
    Quit, RunState, ShutdownCause, Stop,
};
use qga_client::{Error, QmpClient};
use qga_testing::QemuQmp;

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn greeting_and_queries() {
    let qemu = QemuQmp::start();
    let qmp = QmpClient::connect(qemu.socket(), T).await.unwrap();
    let g = qmp.greeting();
    assert!(g.qmp.version.qemu.major >= 7, "{g:?}");
    let v = qmp.call(&QueryVersion).await.unwrap();
    assert_eq!(v.qemu, g.qmp.version.qemu);
    let status = qmp.call(&QueryStatus).await.unwrap();
    assert!(
        matches!(status.status, RunState::Running | RunState::Prelaunch),
        "{status:?}"
    );
    let commands = qmp.call(&QueryCommands).await.unwrap();
    assert!(commands.iter().any(|c| c.name == "query-status"));
    let chardevs = qmp.call(&QueryChardev).await.unwrap();
    assert!(
        chardevs.iter().any(|c| c.filename.contains("qmp.sock")),
        "{chardevs:?}"
    );
    let text = qmp
        .call(&HumanMonitorCommand {
            command_line: "info version".into(),
            cpu_index: None,
        })
        .await
        .unwrap();
    assert!(text.contains(&v.qemu.major.to_string()), "{text}");
    let raw = qmp.call_raw(&RawCommand::new("query-name")).await.unwrap();
    assert!(raw.is_object());
}

#[tokio::test]
async fn errors_are_typed() {
    let qemu = QemuQmp::start();
    let qmp = QmpClient::connect(qemu.socket(), T).await.unwrap();
    let err = qmp
        .call_raw(&RawCommand::new("no-such-command"))
        .await
        .unwrap_err();
    assert_eq!(
        err.agent_error().unwrap().class,
        ErrorClass::CommandNotFound
    );
    let err = qmp
        .call_raw(&RawCommand::new("query-status").with_arguments(serde_json::json!({"x": 1})))
        .await
        .unwrap_err();
    assert_eq!(err.agent_error().unwrap().class, ErrorClass::GenericError);
    // Still usable.
    qmp.call(&QueryStatus).await.unwrap();
}

#[tokio::test]
async fn stop_cont_events_and_concurrent_callers() {
    let qemu = QemuQmp::start();
    let qmp = QmpClient::connect(qemu.socket(), T).await.unwrap();
    let mut events = qmp.subscribe();
    qmp.call(&Stop).await.unwrap();
    let stop = events.wait_named("STOP", T).await.unwrap();
    assert_eq!(stop.event, KnownEvent::Stop);
    assert!(stop.timestamp.seconds > 1_600_000_000);
    let status = qmp.call(&QueryStatus).await.unwrap();
    assert_eq!(status.status, RunState::Paused);
    assert!(!status.running);
    qmp.call(&Cont).await.unwrap();
    let resume = events.wait_named("RESUME", T).await.unwrap();
    assert_eq!(resume.event, KnownEvent::Resume);
    // Many callers at once: replies are routed by id.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let q = qmp.clone();
        tasks.push(tokio::spawn(
            async move { q.call(&QueryVersion).await.unwrap() },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let none = events
        .wait_named("RESET", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(none.is_timeout());
}

#[tokio::test]
async fn quit_sends_shutdown_then_closes() {
    let mut qemu = QemuQmp::start();
    let qmp = QmpClient::connect(qemu.socket(), T).await.unwrap();
    let mut events = qmp.subscribe();
    qmp.call(&Quit).await.unwrap();
    let ev = events.wait_named("SHUTDOWN", T).await.unwrap();
    let KnownEvent::Shutdown(info) = ev.event else {
        panic!("{ev:?}")
    };
    assert!(!info.guest);
    assert_eq!(info.reason, ShutdownCause::HostQmpQuit);
    assert!(qemu.wait_exit(T));
    assert!(
        events.next().await.is_none(),
        "the stream ends with the connection"
    );
    let err = qmp.call(&QueryStatus).await.unwrap_err();
    assert!(matches!(err, Error::Closed | Error::Io(_)), "{err:?}");
    assert!(qmp.is_closed());
}

#[tokio::test]
async fn connect_errors_name_the_path() {
    let err = QmpClient::connect("/nonexistent/qmp.sock", T)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }));
    assert!(err.to_string().contains("/nonexistent/qmp.sock"), "{err}");
}
