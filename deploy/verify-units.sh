#!/bin/bash
# deploy/verify-units.sh: checks deploy/systemd/*.service with systemd-analyze, then starts
# them for real under systemd — this machine's PID 1 is not systemd, so systemd runs as PID 1
# of a podman container (a debootstrap of bookworm with systemd) — and prints what was
# verified.
#
# NOT run by CI or ./scripts/test: it downloads about 60 MB (debootstrap, qemu-guest-agent)
# and takes a few minutes. Run it by hand, as root, on Debian 12, after changing the units:
#
#   deploy/verify-units.sh            # KEEP=1 keeps the work directory
#
# Steps, each a row of the table: install.sh --no-build into a staging tree (release
# binaries must exist: `cargo build --release -p nova-guest-agent -p nova-guest-api
# -p qga-examples -p nova-guest-tools`); `systemd-analyze verify` of the installed units and
# their exposure scores (`systemd-analyze security --offline`); then in the container:
# systemd-sysusers creates the API's user, both units start (Type=notify: "Started" only after
# READY=1) as root with only CAP_DAC_OVERRIDE / as nova-guest with none, under seccomp and
# no_new_privs; the API → agent → qemu-ga chain answers a ping (a host-mode qemu-ga socket of
# another user, mode 0700, under ProtectSystem=strict); systemd records keep-alives
# (WatchdogTimestamp moves); `systemctl reload` with an invalid file fails and the daemon goes
# on; a stopped (SIGSTOP) agent is killed by the watchdog and restarted; `systemctl stop`
# ends both with status 0. Everything it made is removed at the end.
# Functions below are called through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${NOVA_GUEST_VERIFY_DIR:-/var/tmp/nova-guest-verify-units}
api_port=${API_PORT:-24224}
agent_port=${AGENT_PORT:-24225}
uuid=5d9b9c3e-6f63-4c5e-9a43-7a1d2f0b9e11
project=f4edce581ecb4eaabbb68fea5fee5b81
blocked=guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-time,guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,guest-ssh-add-authorized-keys,guest-ssh-remove-authorized-keys,guest-fstrim,guest-exec,guest-file-open,guest-file-write

[ "$(id -u)" = 0 ] || { echo "verify-units: run as root" >&2; exit 1; }

rows=()
failed=0
record() {
    rows+=("$1|$2|$3")
    [ "$1" = FAIL ] && failed=1
    printf '%-5s %s\n' "$1" "$2" >&2
}
check() {
    local what=$1 how=$2
    shift 2
    if "$@" >>"$work/log" 2>&1; then record PASS "$what" "$how"; else record FAIL "$what" "$how (see $work/log)"; fi
}
P() { podman --storage-driver vfs --root "$work/storage" --runroot "$work/runroot" \
    --runtime runc --cgroup-manager=cgroupfs --log-level=fatal "$@"; }
E() { P exec ngunits "$@"; }

cleanup() {
    set +e
    if [ -d "$work/storage" ]; then
        P rm -a -f -t 5 >/dev/null 2>&1
        P rmi -a -f >/dev/null 2>&1
    fi
    if [ -n "${KEEP:-}" ]; then echo "verify-units: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work"
: >"$work/log"

need=()
for pair in podman:podman runc:runc debootstrap:debootstrap systemd-analyze:systemd curl:curl; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq >>"$work/log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >>"$work/log" 2>&1
fi

# --- the installed units, checked offline ------------------------------------------------------
stage=$work/stage
check "install.sh --no-build into a staging tree" "deploy/install.sh --destdir STAGE --no-build" \
    "$root/deploy/install.sh" --destdir "$stage" --no-build
units=$stage/usr/local/lib/systemd/system
mkdir -p "$work/units"
for u in nova-guest-agent nova-guest-api; do
    # verify wants the ExecStart binaries to exist: point them into the staging tree.
    sed "s|/usr/local/bin/|$stage/usr/local/bin/|g" "$units/$u.service" >"$work/units/$u.service"
done
verify_units() {
    local out
    out=$(systemd-analyze verify --man=no "$work/units/nova-guest-agent.service" "$work/units/nova-guest-api.service" 2>&1)
    echo "$out"
    [ -z "$out" ]
}
check "systemd-analyze verify: both units, no warning" "systemd $(systemd-analyze --version | head -1 | cut -d' ' -f2)" \
    verify_units
score() { systemd-analyze security --offline=yes "$work/units/$1.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]* [A-Z]*\).*/\1/p'; }
record INFO "exposure (systemd-analyze security --offline): agent $(score nova-guest-agent), API $(score nova-guest-api)" "0 is the most confined, 10 the least"

# --- systemd as PID 1 of a container -----------------------------------------------------------
rootfs=$work/rootfs
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps,qemu-guest-agent \
    bookworm "$rootfs" http://deb.debian.org/debian >>"$work/log" 2>&1
cp -a "$stage/usr/local/." "$rootfs/usr/local/"
cp "$stage/usr/local/lib/sysusers.d/nova-guest.conf" "$rootfs/usr/lib/sysusers.d/"
rm -f "$rootfs/etc/systemd/system/multi-user.target.wants/qemu-guest-agent.service"
mkdir -p "$rootfs/etc/nova-guest"
head -c 48 /dev/urandom | base64 >"$rootfs/etc/nova-guest/api-master-secret"
chmod 0600 "$rootfs/etc/nova-guest/api-master-secret"
cat >"$rootfs/etc/nova-guest/nova-guest.conf" <<EOF
[DEFAULT]
host = 127.0.0.1

[agent]
listen_address = 127.0.0.1
listen_port = $agent_port
auth_token_file = /etc/nova-guest/agent-token
transport = socket
socket_path_template = /run/nova-guest/qga/{uuid}.sock

[api]
listen_address = 127.0.0.1
listen_port = $api_port
auth_strategy = noauth
agent_url_template = http://{host}:$agent_port
allow_insecure_agent_http = true
agent_auth_token_file = /etc/nova-guest/api-master-secret

[instances]
$uuid = 127.0.0.1 $project
EOF
chmod 0640 "$rootfs/etc/nova-guest/nova-guest.conf"
chroot "$rootfs" /usr/local/bin/nova-guest-api --config-file /etc/nova-guest/nova-guest.conf \
    --print-agent-token 127.0.0.1 >"$rootfs/etc/nova-guest/agent-token"
chmod 0600 "$rootfs/etc/nova-guest/agent-token"
sock=/run/nova-guest/qga/$uuid.sock
cat >"$rootfs/etc/systemd/system/stand-in-guest.service" <<EOF
[Unit]
Description=A host-mode qemu-ga standing in for a guest's socket (verification only)
[Service]
RuntimeDirectory=nova-guest/qga
RuntimeDirectoryPreserve=yes
ExecStart=/usr/sbin/qemu-ga -m unix-listen -p $sock -t /var/tmp -b $blocked
ExecStartPost=/bin/sh -c 'while [ ! -S $sock ]; do sleep 0.1; done; chown nobody $sock; chmod 0700 $sock'
EOF
tar -C "$rootfs" -c . | P import - localhost/nova-guest-units:verify >>"$work/log" 2>&1
rm -rf "$rootfs"
P run -d --name ngunits --privileged --systemd=always --network host \
    --ulimit nofile=16384:16384 --ulimit nproc=16384:16384 \
    localhost/nova-guest-units:verify /lib/systemd/systemd >>"$work/log" 2>&1
booted() { for _ in $(seq 60); do [ "$(E systemctl is-system-running 2>/dev/null)" = running ] && return 0; sleep 0.5; done; return 1; }
check "systemd boots as PID 1 of a podman container" "podman run --systemd=always --privileged (runc, cgroupfs)" booted

start_both() {
    E systemd-sysusers &&
        E chown nova-guest:nova-guest /etc/nova-guest/api-master-secret &&
        E chgrp nova-guest /etc/nova-guest/nova-guest.conf &&
        E systemctl start stand-in-guest &&
        E systemctl start nova-guest-agent nova-guest-api &&
        E systemctl is-active nova-guest-agent nova-guest-api
}
check "systemctl start: both Type=notify units active (systemd waited for READY=1)" "systemd-sysusers; systemctl start; is-active" start_both
sandbox() { # sandbox UNIT CAPBND
    local pid
    pid=$(E systemctl show -p MainPID --value "$1")
    E grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status" | tee /dev/stderr |
        tr -s '\t ' ' ' | tr '\n' ' ' | grep -q "CapEff: $2 CapBnd: $2 NoNewPrivs: 1 Seccomp: 2"
}
check "agent: root, capabilities CAP_DAC_OVERRIDE only, no_new_privs, seccomp filter" "/proc/PID/status" \
    sandbox nova-guest-agent 0000000000000002
api_sandbox() {
    sandbox nova-guest-api 0000000000000000 && [ "$(E systemctl show -p User --value nova-guest-api)" = nova-guest ]
}
check "API: user nova-guest, no capability, no_new_privs, seccomp filter" "/proc/PID/status; systemctl show -p User" \
    api_sandbox
ping_chain() {
    curl -sS --max-time 30 -H 'Content-Type: application/json' -d '{"ping": null}' \
        "http://127.0.0.1:$api_port/v1/$project/servers/$uuid/actions" | tee /dev/stderr | grep -q '"success":true'
}
check "chain under systemd: API -> agent -> qemu-ga socket (nobody, 0700) under ProtectSystem=strict: ping 200" \
    "curl POST /v1/PROJECT/servers/UUID/actions {\"ping\": null}" ping_chain
keepalive() {
    local first
    first=$(E systemctl show -p WatchdogTimestampMonotonic --value nova-guest-api)
    sleep 17
    [ "$(E systemctl show -p WatchdogTimestampMonotonic --value nova-guest-api)" != "$first" ] &&
        [ "$(E systemctl show -p WatchdogUSec --value nova-guest-agent)" = 30s ]
}
check "watchdog: systemd records the daemons' keep-alives (WatchdogSec=30s, every 15 s)" \
    "systemctl show -p WatchdogTimestampMonotonic, 17 s apart" keepalive
bad_reload() {
    E cp /etc/nova-guest/nova-guest.conf /var/tmp/good.conf
    E sed -i 's/^\[agent\]$/[agent]\nbogus_key = 1/' /etc/nova-guest/nova-guest.conf
    local rc=0
    E systemctl reload nova-guest-agent || rc=$?
    E sh -c 'cat /var/tmp/good.conf > /etc/nova-guest/nova-guest.conf'
    [ "$rc" != 0 ] && E systemctl is-active nova-guest-agent && E systemctl reload nova-guest-agent
}
check "systemctl reload: an invalid file fails the reload (exit 78), the agent goes on; a valid one reloads" \
    "ExecReload=--check-config, then SIGHUP" bad_reload
watchdog_kill() {
    E mkdir -p /etc/systemd/system/nova-guest-agent.service.d
    E sh -c 'printf "[Service]\nWatchdogSec=4s\n" > /etc/systemd/system/nova-guest-agent.service.d/verify.conf'
    E systemctl daemon-reload
    E systemctl restart nova-guest-agent
    E kill -STOP "$(E systemctl show -p MainPID --value nova-guest-agent)"
    # Up to 4 s to notice, the abort (and its core dump), RestartSec=2s, the new start: wait
    # for all of it, up to 40 s.
    local ok=1 waited
    for waited in $(seq 1 40); do
        sleep 1
        if E journalctl -u nova-guest-agent --no-pager -o cat | grep -q "Failed with result 'watchdog'" &&
            [ "$(E systemctl show -p NRestarts --value nova-guest-agent)" -ge 1 ] &&
            E systemctl is-active nova-guest-agent >/dev/null; then
            ok=0
            echo "watchdog: killed and restarted within $waited s" >&2
            break
        fi
    done
    E rm -rf /etc/systemd/system/nova-guest-agent.service.d
    E systemctl daemon-reload
    E systemctl restart nova-guest-agent
    return "$ok"
}
check "watchdog: a stopped (SIGSTOP) agent is killed and restarted (WatchdogSec=4s in a drop-in)" \
    "journal: Failed with result 'watchdog'; NRestarts" watchdog_kill
stop_both() {
    E systemctl stop nova-guest-agent nova-guest-api
    local u
    for u in nova-guest-agent nova-guest-api; do
        [ "$(E systemctl show -p ExecMainStatus --value "$u")" = 0 ] &&
            [ "$(E systemctl show -p Result --value "$u")" = success ] || return 1
    done
}
check "systemctl stop: both drain and exit 0 (Result=success)" "systemctl show -p ExecMainStatus -p Result" stop_both

echo
printf '| %-4s | %s | %s |\n' result "what was verified" how
printf '|------|---|---|\n'
for row in "${rows[@]}"; do
    IFS='|' read -r status what how <<<"$row"
    printf '| %-4s | %s | %s |\n' "$status" "$what" "$how"
done
echo
echo "Not verified here: systemd as this machine's own PID 1 (a container's systemd 252 stands in),"
echo "libvirt's socket and real guests (a host-mode qemu-ga socket stands in), and the"
echo "RHEL/SELinux side of a compute host."
exit "$failed"
