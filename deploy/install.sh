#!/bin/bash
# deploy/install.sh: builds the release binaries and installs nova-guest on this machine:
#
#   PREFIX/bin/{nova-guest-agent,nova-guest-api,qga}
#   PREFIX/share/man/man8/nova-guest-{agent,api}.8, PREFIX/share/man/man1/qga*.1
#   PREFIX/share/bash-completion/completions/NAME, PREFIX/share/zsh/site-functions/_NAME,
#   PREFIX/share/fish/vendor_completions.d/NAME.fish
#   UNITDIR/nova-guest-{agent,api}.service (ExecStart under PREFIX), SYSUSERSDIR/nova-guest.conf
#   PREFIX/share/doc/nova-guest/ (operators.md, nova-guest.conf.sample, keystone-register.sh)
#   SYSCONFDIR/nova-guest/nova-guest.conf: the sample, only when there is none yet
#
# and creates the system user nova-guest (systemd-sysusers, else useradd). It enables and
# starts nothing, and never writes secrets. Run as root from the checkout:
#
#   deploy/install.sh                         # PREFIX=/usr/local
#   deploy/install.sh --prefix /usr --destdir /tmp/pkg --no-build     # staging, packaging
#
# Options: --prefix DIR (/usr/local), --destdir DIR (none: the live system), --sysconfdir DIR
# (/etc), --unitdir DIR (PREFIX/lib/systemd/system for /usr and /usr/local, where systemd
# looks; else /etc/systemd/system), --no-build (use target/release as it is).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
destdir=
sysconfdir=/etc
unitdir=
build=1
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
        --sysconfdir) sysconfdir=${2:?--sysconfdir needs a directory}; shift 2 ;;
        --unitdir) unitdir=${2:?--unitdir needs a directory}; shift 2 ;;
        --no-build) build=; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
done
case $prefix in /*) ;; *) echo "install.sh: --prefix must be absolute" >&2; exit 64 ;; esac
prefix=${prefix%/}
if [ -z "$unitdir" ]; then
    case $prefix in
        /usr | /usr/local) unitdir=$prefix/lib/systemd/system ;;
        *) unitdir=/etc/systemd/system ;;
    esac
fi
case $unitdir in
    /usr/lib/* | /usr/local/lib/*) sysusersdir=${unitdir%/systemd/system}/sysusers.d ;;
    *) sysusersdir=/etc/sysusers.d ;;
esac

release=$root/target/release
if [ -n "$build" ]; then
    # One package list, no --bin: cargo's target flags would apply to every package.
    (cd "$root" && cargo build --release --locked -p nova-guest-agent -p nova-guest-api \
        -p qga-examples -p nova-guest-tools)
fi
for bin in nova-guest-agent nova-guest-api qga nova-guest-tools; do
    [ -x "$release/$bin" ] || { echo "install.sh: $release/$bin is missing (run without --no-build)" >&2; exit 1; }
done

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$release/nova-guest-tools" man "$gen/man" >/dev/null
"$release/nova-guest-tools" completions "$gen/completions" >/dev/null

d=$destdir
say() { printf '  %s\n' "$1"; }
echo "installing into ${d:-/} (prefix $prefix)"
for bin in nova-guest-agent nova-guest-api qga; do
    install -D -m 0755 "$release/$bin" "$d$prefix/bin/$bin"
    say "$prefix/bin/$bin"
done
for page in "$gen"/man/*; do
    section=${page##*.}
    install -D -m 0644 "$page" "$d$prefix/share/man/man$section/${page##*/}"
done
say "$prefix/share/man/man1/qga*.1, man8/nova-guest-{agent,api}.8"
for name in nova-guest-agent nova-guest-api qga; do
    install -D -m 0644 "$gen/completions/bash/$name" "$d$prefix/share/bash-completion/completions/$name"
    install -D -m 0644 "$gen/completions/zsh/_$name" "$d$prefix/share/zsh/site-functions/_$name"
    install -D -m 0644 "$gen/completions/fish/$name.fish" "$d$prefix/share/fish/vendor_completions.d/$name.fish"
done
say "$prefix/share/{bash-completion/completions,zsh/site-functions,fish/vendor_completions.d}"
for unit in nova-guest-agent.service nova-guest-api.service; do
    install -d -m 0755 "$d$unitdir"
    sed -e "s|/usr/local/bin/|$prefix/bin/|g" -e "s|/etc/nova-guest/|$sysconfdir/nova-guest/|g" \
        "$root/deploy/systemd/$unit" >"$d$unitdir/$unit"
    chmod 0644 "$d$unitdir/$unit"
    say "$unitdir/$unit"
done
install -D -m 0644 "$root/deploy/systemd/nova-guest.sysusers" "$d$sysusersdir/nova-guest.conf"
say "$sysusersdir/nova-guest.conf"
doc=$prefix/share/doc/nova-guest
install -D -m 0644 "$root/docs/operators.md" "$d$doc/operators.md"
install -D -m 0644 "$root/etc/nova-guest.conf" "$d$doc/nova-guest.conf.sample"
install -D -m 0755 "$root/deploy/keystone-register.sh" "$d$doc/keystone-register.sh"
say "$doc/"

# The user first, so that the sample configuration can be given its group.
if [ -z "$d" ]; then
    if ! getent passwd nova-guest >/dev/null; then
        if command -v systemd-sysusers >/dev/null; then
            systemd-sysusers "$sysusersdir/nova-guest.conf"
        else
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
                --user-group nova-guest
        fi
    fi
    say "user $(id nova-guest)"
fi
conf=$sysconfdir/nova-guest/nova-guest.conf
install -d -m 0755 "$d$sysconfdir/nova-guest"
if [ -e "$d$conf" ]; then
    say "$conf exists: left as it is (the new sample is $doc/nova-guest.conf.sample)"
else
    # It will hold the Keystone password: readable by root and the API's group only.
    install -m 0640 "$root/etc/nova-guest.conf" "$d$conf"
    [ -z "$d" ] && chgrp nova-guest "$d$conf"
    say "$conf (the sample: edit it)"
fi
if [ -z "$d" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi

cat <<EOF

Next (docs/operators.md says more):
  controller:   (umask 077; openssl rand -hex 32 > $sysconfdir/nova-guest/api-master-secret)
                chown nova-guest:nova-guest $sysconfdir/nova-guest/api-master-secret
                systemctl enable --now nova-guest-api
  each compute: nova-guest-api --print-agent-token HOST   (on the controller; HOST as Nova names it)
                into $sysconfdir/nova-guest/agent-token, mode 0600, then
                systemctl enable --now nova-guest-agent
EOF
