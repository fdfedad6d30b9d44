//! Against the real qemu-ga inside a tiny TCG guest (`qga_testing::vm`): the commands that
//! host-mode qemu-ga cannot be trusted with, and what only the virtio-serial path shows
//! (stale replies across connections, agent death, `VSERPORT_CHANGE`).
//!
//! The `shared_*` tests take turns on one VM (a static, locked for the whole test; the last
//! of them to finish shuts it down). The destructive ones (agent kill, shutdown, reboot) boot
//! their own. Timings are printed: run with `--nocapture` to see them.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qga_client::proto::qga::{
    FsfreezeStatus, GuestExec, GuestFileOpen, GuestFileRead, GuestSetTime, GuestSync, ShutdownMode,
};
use qga_client::proto::qmp::{KnownEvent, ShutdownCause, VserportChange};
use qga_client::{
    AgentPresence, Client, Error, ExecRequest, QmpClient, call_if_present, proto::qga::GuestPing,
};
use qga_testing::vm::{DEFAULT_MAC, GUEST_HOSTNAME, GUEST_IP, Vm, VmImage, VmOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Generous: the machine is shared and TCG is slow under load.
const T: Duration = Duration::from_secs(20);
const QMP_T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Fixtures

/// Prints how long a test (or step) took when dropped.
struct Timer(&'static str, Instant);

impl Timer {
    fn start(name: &'static str) -> Self {
        Self(name, Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!("[{}] {:.1} s", self.0, self.1.elapsed().as_secs_f64());
    }
}

fn boot(options: VmOptions) -> Vm {
    let image = VmImage::build().unwrap_or_else(|e| panic!("cannot build the test VM: {e}"));
    let vm = Vm::boot(&image, options).unwrap_or_else(|e| panic!("cannot boot the test VM: {e}"));
    eprintln!(
        "[boot] agent answered {:.1} s after QEMU started",
        vm.boot_time().as_secs_f64()
    );
    vm
}

/// How many tests use the shared VM; the last one to finish kills it. (When a filter runs
/// fewer, QEMU dies with the test process: `qga_testing::vm` starts it with a parent-death
/// signal.)
const SHARED_TESTS: usize = 5;

struct Slot {
    vm: Option<Result<Vm, String>>,
    finished: usize,
}

static SHARED: Mutex<Slot> = Mutex::new(Slot {
    vm: None,
    finished: 0,
});

/// Exclusive use of the shared VM for one test.
struct SharedVm(MutexGuard<'static, Slot>);

impl SharedVm {
    fn lock() -> Self {
        let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.vm.is_none() && slot.finished == 0 {
            let booted = std::panic::catch_unwind(|| boot(VmOptions::default()))
                .map_err(|p| panic_message(&*p));
            slot.vm = Some(booted);
        }
        Self(slot)
    }

    fn vm(&self) -> &Vm {
        match &self.0.vm {
            Some(Ok(vm)) => vm,
            Some(Err(e)) => panic!("the shared VM did not boot: {e}"),
            None => panic!("the shared VM was already shut down"),
        }
    }

    /// A client, with the guest thawed in case an earlier test failed while frozen.
    async fn client(&self) -> Client {
        let client = connect(self.vm()).await;
        if client.fsfreeze_status().await.unwrap() == FsfreezeStatus::Frozen {
            eprintln!("an earlier test left the guest frozen; thawing");
            client.fsfreeze_thaw().await.unwrap();
        }
        client
    }
}

impl Drop for SharedVm {
    fn drop(&mut self) {
        self.0.finished += 1;
        if self.0.finished == SHARED_TESTS {
            self.0.vm = None; // kills QEMU
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}

async fn connect(vm: &Vm) -> Client {
    Client::builder()
        .default_timeout(T)
        .connect(vm.qga_socket())
        .await
        .unwrap_or_else(|e| panic!("connect to the guest agent: {e}\n{}", vm.console_tail(20)))
}

async fn sh(client: &Client, script: &str) -> String {
    let out = client
        .exec(ExecRequest::new("sh").args(["-c", script]).timeout(T))
        .await
        .unwrap_or_else(|e| panic!("guest sh -c {script:?}: {e}"));
    assert!(
        out.status.success(),
        "guest sh -c {script:?}: {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

async fn shadow_hash(client: &Client, user: &str) -> String {
    let shadow = sh(client, "cat /etc/shadow").await;
    shadow
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == user)
        .map(|f| f[1].to_owned())
        .unwrap_or_else(|| panic!("{user} not in /etc/shadow: {shadow}"))
}

/// Polls `check` every 100 ms until it is true or `limit` passes; returns the time taken.
async fn poll_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now_ns() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// The shared VM

#[tokio::test]
async fn shared_set_user_password_plain_crypted_and_unknown_user() {
    let shared = SharedVm::lock();
    let _t = Timer::start("shared_set_user_password_plain_crypted_and_unknown_user");
    let client = shared.client().await;
    let before = shadow_hash(&client, "tester").await;

    // Plain: the guest's chpasswd hashes it (sha512); check by re-hashing with its salt.
    client
        .set_user_password("tester", b"plain pass 1", false)
        .await
        .unwrap();
    let plain = shadow_hash(&client, "tester").await;
    assert_ne!(plain, before);
    assert!(plain.starts_with("$6$"), "{plain}");
    let salt = plain.split('$').nth(2).unwrap();
    let again = sh(
        &client,
        &format!("mkpasswd -m sha512 -S '{salt}' 'plain pass 1'"),
    )
    .await;
    assert_eq!(
        again.trim(),
        plain,
        "the stored hash is not of the password sent"
    );

    // Crypted: a hash made by the guest's mkpasswd is stored verbatim.
    let hash = sh(&client, "mkpasswd -m sha512 'crypted pass 2'").await;
    let hash = hash.trim();
    assert!(hash.starts_with("$6$") && hash != plain, "{hash}");
    client
        .set_user_password("tester", hash.as_bytes(), true)
        .await
        .unwrap();
    assert_eq!(shadow_hash(&client, "tester").await, hash);

    let err = client
        .set_user_password("nosuchuser", b"x", false)
        .await
        .unwrap_err();
    let agent = err
        .agent_error()
        .unwrap_or_else(|| panic!("not an agent error: {err:?}"));
    assert_eq!(agent.class.as_str(), "GenericError", "{agent:?}");
    assert_eq!(
        shadow_hash(&client, "tester").await,
        hash,
        "a failed call changed tester"
    );
    assert_eq!(shadow_hash(&client, "root").await, "!");
}

#[tokio::test]
async fn shared_fsfreeze_thaw_drop_and_hold_deadline() {
    let shared = SharedVm::lock();
    let _t = Timer::start("shared_fsfreeze_thaw_drop_and_hold_deadline");
    let client = shared.client().await;
    let status = |c: Client| async move { c.fsfreeze_status().await.unwrap() };

    // Explicit thaw.
    let guard = client
        .fsfreeze(None, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(guard.frozen() >= 1, "froze {}", guard.frozen());
    assert_eq!(status(client.clone()).await, FsfreezeStatus::Frozen);
    let err = client.hostname().await.unwrap_err();
    assert!(err.is_command_not_found(), "{err:?}");
    client.ping().await.unwrap(); // allowed while frozen
    assert!(guard.thaw().await.unwrap() >= 1);
    assert_eq!(status(client.clone()).await, FsfreezeStatus::Thawed);
    assert_eq!(client.hostname().await.unwrap(), GUEST_HOSTNAME);

    // Dropping the guard thaws (in a background task).
    let guard = client
        .fsfreeze(None, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(status(client.clone()).await, FsfreezeStatus::Frozen);
    drop(guard);
    let took = poll_until("thaw after drop", T, || async {
        status(client.clone()).await == FsfreezeStatus::Thawed
    })
    .await;
    eprintln!("thawed {took:?} after the guard was dropped");

    // The hold deadline thaws while the guard is still held.
    let hold = Duration::from_secs(2);
    let guard = client.fsfreeze(None, hold).await.unwrap();
    let frozen_at = Instant::now();
    assert_eq!(status(client.clone()).await, FsfreezeStatus::Frozen);
    poll_until("thaw at the hold deadline", T + hold, || async {
        status(client.clone()).await == FsfreezeStatus::Thawed
    })
    .await;
    let after = frozen_at.elapsed();
    eprintln!("hold {hold:?}: thawed after {after:?}");
    assert!(
        after >= hold - Duration::from_millis(200),
        "thawed too early: {after:?}"
    );
    drop(guard);
}

#[tokio::test]
async fn shared_set_time_and_get_time() {
    let shared = SharedVm::lock();
    let _t = Timer::start("shared_set_time_and_get_time");
    let client = shared.client().await;
    let slack = 30_000_000_000; // 30 s: TCG under load
    let target = 1_893_456_000_000_000_000; // 2030-01-01T00:00:00Z
    client
        .call(&GuestSetTime { time: Some(target) })
        .await
        .unwrap();
    let read = client.time().await.unwrap();
    assert!(
        (target..target + slack).contains(&read),
        "set {target}, read {read}"
    );
    let date = sh(&client, "date -u +%Y").await;
    assert_eq!(date.trim(), "2030");

    let host = now_ns();
    client
        .call(&GuestSetTime { time: Some(host) })
        .await
        .unwrap();
    let read = client.time().await.unwrap();
    assert!((read - now_ns()).abs() < slack, "host {host}, guest {read}");
}

#[tokio::test]
async fn shared_interfaces_show_the_virtio_nic() {
    let shared = SharedVm::lock();
    let _t = Timer::start("shared_interfaces_show_the_virtio_nic");
    let client = shared.client().await;
    let ifaces = client.network_interfaces().await.unwrap();
    let nic = ifaces
        .iter()
        .find(|i| i.has_mac(DEFAULT_MAC))
        .unwrap_or_else(|| panic!("no interface with {DEFAULT_MAC}: {ifaces:?}"));
    assert!(
        nic.ip_addresses.iter().any(|a| a.ip_address == GUEST_IP
            && a.prefix == 24
            && a.ip_address_type.as_str() == "ipv4"),
        "{nic:?}"
    );
    let lo = ifaces.iter().find(|i| i.name == "lo").expect("lo");
    assert!(lo.ip_addresses.iter().any(|a| a.ip_address == "127.0.0.1"));
}

/// Writes requests on a fresh raw connection and closes it without reading anything.
async fn write_and_abandon(vm: &Vm, requests: &str) {
    let mut s = UnixStream::connect(vm.qga_socket()).await.unwrap();
    s.write_all(requests.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
}

fn stale_pings(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"execute\":\"guest-ping\",\"id\":\"stale-{i}\"}}\n"))
        .collect()
}

/// Raw: 0xFF + guest-sync-delimited on a new connection; returns the bytes before our
/// sentinel (the stale replies).
async fn raw_stale_bytes(vm: &Vm) -> Vec<u8> {
    let mut s = UnixStream::connect(vm.qga_socket()).await.unwrap();
    let id = 777_000_123;
    s.write_all(
        format!("\u{1}{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{id}}}}}\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    // 0x01 also resets the parser (one error reply); 0xFF would be the same.
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let want = format!("{{\"return\": {id}}}");
    tokio::time::timeout(T, async {
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "EOF");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(at) = buf.iter().rposition(|b| *b == 0xFF)
                && String::from_utf8_lossy(&buf[at + 1..]).contains(&want)
            {
                buf.truncate(at);
                return;
            }
        }
    })
    .await
    .expect("no sync reply");
    buf
}

#[tokio::test]
async fn shared_stale_replies_never_reach_a_new_client() {
    let shared = SharedVm::lock();
    let _t = Timer::start("shared_stale_replies_never_reach_a_new_client");
    let vm = shared.vm();
    let client = shared.client().await;
    let mib = 4u64 << 20;
    let handle = client
        .call(&GuestFileOpen {
            path: "/dev/zero".into(),
            mode: None,
        })
        .await
        .unwrap();
    client.disconnect().await;
    drop(client);
    let big_read = format!(
        "{{\"execute\":\"guest-file-read\",\"arguments\":{{\"handle\":{handle},\"count\":{mib}}},\"id\":\"stale-big\"}}\n"
    );

    // First, raw, that there is something stale to trip over.
    write_and_abandon(vm, &stale_pings(50)).await;
    let stale = raw_stale_bytes(vm).await;
    let text = String::from_utf8_lossy(&stale);
    let pings = text.matches("\"stale-").count();
    eprintln!(
        "raw: {pings} of 50 stale ping replies before the sentinel ({} bytes)",
        stale.len()
    );
    assert!(pings >= 40, "{text}");
    write_and_abandon(vm, &format!("{}{big_read}", stale_pings(50))).await;
    let stale = raw_stale_bytes(vm).await;
    eprintln!("raw: {} stale bytes after a {mib}-byte read", stale.len());
    assert!(stale.len() as u64 > mib, "{}", stale.len());

    // Then a new client's first call gets its own answer, small and big stale data alike.
    for (round, requests) in [
        ("pings", stale_pings(50)),
        (
            "pings + 4 MiB",
            format!("{}{big_read}{}", stale_pings(50), stale_pings(5)),
        ),
    ] {
        write_and_abandon(vm, &requests).await;
        let start = Instant::now();
        let client = connect(vm).await;
        let id = 4_242_000 + i64::try_from(requests.len()).unwrap();
        assert_eq!(client.call(&GuestSync { id }).await.unwrap(), id, "{round}");
        assert_eq!(client.hostname().await.unwrap(), GUEST_HOSTNAME, "{round}");
        eprintln!(
            "{round}: new client's first answers after {:?}",
            start.elapsed()
        );
    }
    let client = connect(vm).await;
    let r = client
        .call(&GuestFileRead {
            handle,
            count: Some(16),
        })
        .await
        .unwrap();
    assert_eq!(r.buf_b64.0, vec![0; 16]);
}

// ---------------------------------------------------------------------------------------
// Own VMs

/// Starts `sh -c script` in the guest without waiting for it.
async fn spawn_in_guest(client: &Client, script: &str, timeout: Duration) -> Result<i64, Error> {
    let exec = GuestExec {
        path: "sh".into(),
        arg: Some(vec!["-c".into(), script.into()]),
        env: None,
        input_data: None,
        capture_output: None,
    };
    client.call_timeout(&exec, timeout).await.map(|r| r.pid)
}

async fn agent_pid(client: &Client) -> i64 {
    sh(client, "pidof qemu-ga")
        .await
        .trim()
        .parse()
        .expect("one qemu-ga pid")
}

#[tokio::test]
async fn agent_death_is_silence_then_recovery_and_presence_follows_it() {
    let _t = Timer::start("agent_death_is_silence_then_recovery_and_presence_follows_it");
    let vm = boot(VmOptions::default());
    let qmp = QmpClient::connect(vm.qmp_socket(), QMP_T).await.unwrap();
    let presence = AgentPresence::new(&qmp).await.unwrap();
    assert_eq!(presence.chardev(), "qga0");
    assert!(presence.is_connected(), "{:?}", presence.state());
    let deadline = Duration::from_secs(5);
    let client = Client::builder()
        .default_timeout(deadline)
        .connect(vm.qga_socket())
        .await
        .unwrap();

    // Round 1: a call the agent is busy with when it is killed. qemu-ga waits for chpasswd
    // before it answers guest-set-user-password, so a chpasswd that sleeps holds the call in
    // the agent (this VM is ours alone; the real one is put back below).
    let pid = agent_pid(&client).await;
    sh(
        &client,
        "mv /usr/sbin/chpasswd /usr/sbin/chpasswd.real && \
         printf '#!/bin/sh\\nexec sleep 60\\n' >/usr/sbin/chpasswd && chmod 755 /usr/sbin/chpasswd",
    )
    .await;
    spawn_in_guest(&client, &format!("sleep 1; kill -9 {pid}"), deadline)
        .await
        .unwrap();
    let kill_at = Instant::now() + Duration::from_secs(1);
    let start = Instant::now();
    let (call, gone) = tokio::join!(client.set_user_password("tester", b"x", false), async {
        presence.wait_disconnected(T).await.unwrap();
        Instant::now()
    });
    let failed_after = start.elapsed();
    let err = call.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        failed_after >= deadline && failed_after < deadline + Duration::from_secs(1),
        "the in-flight call failed after {failed_after:?} (deadline {deadline:?})"
    );
    assert!(
        client.is_connected().await,
        "the host saw EOF; a dead agent should be silence"
    );
    let detected = gone.saturating_duration_since(kill_at);
    eprintln!(
        "round 1: in-flight call timed out after {failed_after:?}; presence said disconnected \
         {detected:?} after the scheduled kill (at +1 s)"
    );
    assert!(
        gone < start + failed_after,
        "presence was no faster than the timeout"
    );

    // The next call works once the agent is back, with no reset by the caller.
    let recover = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client.ping().await {
            Ok(()) => break,
            Err(e) if e.is_timeout() && recover.elapsed() < T => {}
            Err(e) => panic!(
                "no recovery after {attempts} attempts: {e:?}\n{}",
                vm.console_tail(20)
            ),
        }
    }
    eprintln!(
        "round 1: next call succeeded after {:?} ({attempts} attempt(s))",
        recover.elapsed()
    );
    assert_ne!(agent_pid(&client).await, pid, "the agent was not restarted");
    sh(&client, "mv -f /usr/sbin/chpasswd.real /usr/sbin/chpasswd").await;
    presence.wait_connected(T).await.unwrap();
    assert!(presence.refresh().await.unwrap());

    // Round 2: the kill itself from guest-exec (its reply may be lost), presence timed against
    // it; calls through call_if_present fail at once while the agent is down.
    presence.attach(&client);
    let pid = agent_pid(&client).await;
    let mut rx = presence.subscribe();
    let changes = rx.borrow_and_update().changes;
    let killed = Instant::now();
    let kill = format!("kill -9 {pid}");
    let (exec, (gone, err, fail_fast)) = tokio::join!(
        spawn_in_guest(&client, &kill, Duration::from_secs(3)),
        async {
            presence.wait_disconnected(T).await.unwrap();
            let gone = killed.elapsed();
            // Right away, not after the exec: when its reply is lost the exec waits its 3 s,
            // and by then the agent is back.
            let fast = Instant::now();
            let err = call_if_present(&client, &presence, &GuestPing)
                .await
                .unwrap_err();
            (gone, err, fast.elapsed())
        }
    );
    eprintln!("round 2: exec of the kill returned {exec:?} (a lost reply is expected)");
    // /init waits 1 s before restarting qemu-ga: it cannot be back yet.
    assert!(matches!(err, Error::NotConnected), "{err:?}");
    presence.wait_connected(T).await.unwrap();
    let back = killed.elapsed();
    call_if_present(&client, &presence, &GuestPing)
        .await
        .unwrap();
    let usable = killed.elapsed();
    assert!(rx.borrow().changes >= changes + 2, "{:?}", presence.state());
    eprintln!(
        "round 2: presence said disconnected {gone:?} after the kill was sent, connected again \
         after {back:?}, first call done after {usable:?}; call_if_present failed in {fail_fast:?} \
         while down, vs {deadline:?} for a call to time out"
    );
    assert!(gone < deadline, "presence took {gone:?}");
}

/// Subscribes to QMP, sends guest-shutdown (`mode`), and returns the events seen until QEMU
/// exits and the QMP connection closes.
async fn shutdown_and_collect(vm: &Vm, mode: Option<ShutdownMode>) -> (Client, Vec<KnownEvent>) {
    let qmp = QmpClient::connect(vm.qmp_socket(), QMP_T).await.unwrap();
    let presence = AgentPresence::new(&qmp).await.unwrap();
    let mut events = qmp.subscribe();
    let client = Client::builder()
        .default_timeout(T)
        .no_reply_grace(Duration::from_secs(1))
        .connect(vm.qga_socket())
        .await
        .unwrap();
    let start = Instant::now();
    client.shutdown(mode.clone()).await.unwrap();
    let accepted = start.elapsed();
    let status = vm.wait_exit(Duration::from_secs(90));
    assert!(
        status.is_some(),
        "QEMU still runs 90 s after guest-shutdown\n{}",
        vm.console_tail(20)
    );
    eprintln!(
        "guest-shutdown {mode:?}: accepted after {accepted:?}, QEMU exited ({}) after {:?}",
        status.unwrap(),
        start.elapsed()
    );
    let mut seen = Vec::new();
    tokio::time::timeout(QMP_T, async {
        while let Some(e) = events.next().await {
            seen.push(e.event);
        }
    })
    .await
    .expect("the QMP stream did not end after QEMU exited");
    assert!(qmp.is_closed());
    presence.wait_disconnected(QMP_T).await.unwrap();
    assert!(presence.state().qmp_closed);
    (client, seen)
}

/// After QEMU exited, the client says so cleanly: closed, then not connected.
async fn assert_client_closed(client: &Client) {
    let first = client.ping().await.unwrap_err();
    assert!(first.is_closed(), "{first:?}");
    assert!(!client.is_connected().await);
    // A client made from a path tries to reconnect, and QEMU's socket is gone.
    let second = client.ping().await.unwrap_err();
    assert!(matches!(second, Error::Connect { .. }), "{second:?}");
    eprintln!("after QEMU exited: first call {first:?}, second {second}");
}

#[tokio::test]
async fn guest_shutdown_gives_no_reply_and_qemu_exits() {
    let _t = Timer::start("guest_shutdown_gives_no_reply_and_qemu_exits");
    let vm = boot(VmOptions::default());
    let (client, events) = shutdown_and_collect(&vm, None).await;
    eprintln!("QMP events: {events:?}");
    let closed = events
        .iter()
        .position(|e| {
            *e == KnownEvent::VserportChange(VserportChange {
                id: "channel0".into(),
                open: false,
            })
        })
        .expect("VSERPORT_CHANGE open:false");
    let shutdown = events
        .iter()
        .position(|e| matches!(e, KnownEvent::Shutdown(i) if i.guest && i.reason == ShutdownCause::GuestShutdown))
        .expect("SHUTDOWN guest-shutdown");
    assert!(closed < shutdown, "{events:?}");
    assert_client_closed(&client).await;
}

#[tokio::test]
async fn guest_shutdown_reboot_exits_qemu_under_no_reboot() {
    let _t = Timer::start("guest_shutdown_reboot_exits_qemu_under_no_reboot");
    // Vm runs QEMU with -no-reboot: a guest reset becomes SHUTDOWN (reason guest-reset) and
    // QEMU exits; no RESET event is sent.
    let vm = boot(VmOptions::default());
    let (client, events) = shutdown_and_collect(&vm, Some(ShutdownMode::Reboot)).await;
    eprintln!("QMP events: {events:?}");
    assert!(
        events.iter().any(|e| matches!(e, KnownEvent::Shutdown(i) if i.guest && i.reason == ShutdownCause::GuestReset)),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, KnownEvent::Reset(_))),
        "{events:?}"
    );
    assert_client_closed(&client).await;
}
