#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a live nova-guest-api: every operation of the OpenAPI
# document it serves is exercised with generated requests; the run fails on any 5xx that is
# not documented, an undocumented status, content type or header, or a body that does not
# match its schema.
#
#   run.sh SCHEMA_URL [MAX_EXAMPLES] [HEADER...]    (headers as "Name: value")
#   run.sh --install-only
#
# The venv is cached in $SCHEMATHESIS_VENV (default: target/schemathesis-venv).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${SCHEMATHESIS_VENV:-$repo/target/schemathesis-venv}"
pin=schemathesis==4.32.5
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! [ -f "$venv/.ready" ] || [ "$(cat "$venv/.ready")" != "$pin" ]; then
    echo "schemathesis: building $venv ($pin)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$pin" >&2
    echo "$pin" >"$venv/.ready"
fi
flock -u 9
[ "${1:-}" = "--install-only" ] && exit 0
export SCHEMATHESIS_TELEMETRY=false NO_COLOR=1
url="$1" examples="${2:-40}"
shift $(( $# >= 2 ? 2 : $# ))
headers=()
for h in "$@"; do headers+=(-H "$h"); done
exec "$venv/bin/st" run "$url" "${headers[@]}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$examples" --workers 1 --seed 1 --request-timeout 20 --no-color
