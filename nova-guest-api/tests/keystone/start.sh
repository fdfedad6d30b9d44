#!/usr/bin/env bash
# Starts a real Keystone (PyPI `keystone` under gunicorn, sqlite, fernet tokens, Keystone's
# in-process cache on, one worker) on 127.0.0.1 for the nova-guest-api tests, and fills it with
# the projects, users, roles and catalog the tests use (setup.py, plain HTTP).
#
#   start.sh WORKDIR NOVA_URL NEUTRON_URL API_URL
#
# The venv is built once and cached in $KEYSTONE_VENV (default: target/keystone-venv next to
# this repository's target directory). When everything is ready, WORKDIR/state.json holds the
# port and the ids and passwords of what was created, and this script keeps running until
# gunicorn exits or its standard input closes (the test harness holds a pipe to it: when the
# test binary exits, Keystone goes with it). Only loopback addresses are used.
#
#   start.sh --install-only     builds the cached venv and exits
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${KEYSTONE_VENV:-$repo/target/keystone-venv}"
python="${KEYSTONE_PYTHON:-python3}"
# keystone 30.0.0 (2025.2) is the newest release that installs on Python 3.11 here.
pins=(keystone==30.0.0 gunicorn==23.0.0)

install() {
    if [ -f "$venv/.ready" ] && [ "$(cat "$venv/.ready")" = "${pins[*]}" ]; then
        return
    fi
    echo "keystone: building $venv (${pins[*]})" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
    echo "${pins[*]}" >"$venv/.ready"
}

# Serialise installs between test binaries that start at the same time.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
install
flock -u 9
[ "${1:-}" = "--install-only" ] && exit 0

work="$1" nova="$2" neutron="$3" api="$4"
# Background jobs get /dev/null as stdin: keep the harness's pipe on fd 3 for the watcher.
exec 3<&0
mkdir -p "$work"
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/keystone.conf" <<CONF
[DEFAULT]
log_file = $work/keystone.log
[database]
connection = sqlite:///$work/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $work/fernet-keys
[fernet_receipts]
key_repository = $work/fernet-keys
[credential]
key_repository = $work/credential-keys
[cache]
enabled = true
backend = dogpile.cache.memory
[oslo_policy]
enforce_new_defaults = true
enforce_scope = true
CONF
export OS_KEYSTONE_CONFIG_FILES="$work/keystone.conf"
export PYTHONWARNINGS=ignore
manage=("$venv/bin/keystone-manage" --config-file "$work/keystone.conf")
"${manage[@]}" db_sync >>"$work/manage.log" 2>&1
"${manage[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >>"$work/manage.log" 2>&1
"${manage[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >>"$work/manage.log" 2>&1
admin_password="$("$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))')"
"${manage[@]}" bootstrap --bootstrap-password "$admin_password" \
    --bootstrap-admin-url "http://127.0.0.1:$port/v3" \
    --bootstrap-internal-url "http://127.0.0.1:$port/v3" \
    --bootstrap-public-url "http://127.0.0.1:$port/v3" \
    --bootstrap-region-id RegionOne >>"$work/manage.log" 2>&1

"$venv/bin/gunicorn" --bind "127.0.0.1:$port" --workers 1 --threads 1 \
    --access-logfile "$work/access.log" --error-logfile "$work/gunicorn.log" \
    --chdir "$work" --pythonpath "$here" wsgi_app:application \
    </dev/null 3<&- &
gunicorn=$!
trap 'kill "$gunicorn" 2>/dev/null || true' EXIT

"$venv/bin/python" "$here/setup.py" "http://127.0.0.1:$port" "$admin_password" \
    "$nova" "$neutron" "$api" >"$work/state.json.tmp"
mv "$work/state.json.tmp" "$work/state.json"
echo "keystone: ready on 127.0.0.1:$port" >&2

# Stop when the harness goes away (its end of our stdin closes) or gunicorn dies.
( cat <&3 >/dev/null; kill "$gunicorn" 2>/dev/null ) &
wait "$gunicorn"
