#!/usr/bin/env python3
"""Regenerates the seed corpus in fuzz/corpus/<target>/ (python3 stdlib only).

Two kinds of seeds are written:

* ``t-*``: replies quoted in the protocol notes' transcripts (section 8), embedded below;
* ``cap-*``: replies captured here and now from a real qemu-ga (host mode, unix-listen, in a
  temporary directory, with every destructive command blocked) and a real QEMU QMP monitor
  (``-machine none``, no guest).

Seed layouts (see qga-proto/src/fuzz.rs and its per-target files in qga-proto/src/fuzz/):

* decoder_splits: ``[n] [n chunk lengths] [max] data``
* typed_replies:  ``[selector] data``, the selector being the index of the command in
  ``TYPED_REPLY_COMMANDS`` (read from fuzz/typed_replies.rs)
* handshake:      ``[id selector] [max] [n] [n chunk lengths] data``, the id selector being the
  index of the expected id in ``SYNC_IDS`` (read from fuzz/handshake.rs)
* qmp_messages:   ``data``

Usage: fuzz/capture-corpus.py   (replaces every seed except crash-*; needs qemu-ga and QEMU)

SAFETY: the agent runs on this machine. It is started with the destructive commands blocked
(-b ...) and this script sends only read-only queries, file operations inside its own temporary
directory and harmless guest-exec programs (echo, sh -c 'exit 3', sh -c 'kill -9 $$').
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
CORPUS = FUZZ / "corpus"
FUZZ_RS = FUZZ.parent / "qga-proto" / "src" / "fuzz"
MAX_SEED = 64 * 1024

QEMU_GA = shutil.which("qemu-ga") or "/usr/sbin/qemu-ga"
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
BLOCKED = ",".join([
    "guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
    "guest-set-time", "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-thaw", "guest-set-user-password", "guest-set-vcpus",
    "guest-set-memory-blocks", "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys", "guest-fstrim",
])


def rust_section(file, begin, end):
    """The text between two marker comments of qga-proto/src/fuzz/<file>."""
    text = (FUZZ_RS / file).read_text()
    return text[text.index(begin):text.index(end)]


COMMANDS = re.findall(r'^\s*"([^"]+)" =>',
                      rust_section("typed_replies.rs", "BEGIN TYPED REPLIES", "END TYPED REPLIES"),
                      re.M)
COMMANDS.append("*raw*")
# The array's value, however rustfmt lays it out: `SYNC_IDS: [u64; N] = [a, b, ...];`.
SYNC_IDS = [int(x) for x in re.findall(
    r"\d+",
    re.search(r"=\s*\[([^\]]*)\]",
              rust_section("handshake.rs", "BEGIN SYNC IDS", "END SYNC IDS")).group(1))]


def selector(command):
    return bytes([COMMANDS.index(command)])


# Chunk headers for decoder_splits/handshake: whole, one byte at a time, odd sizes.
SPLITS = [b"\x00", b"\x01\x00", b"\x02\x02\x06", b"\x03\x0f\x00\x3f"]
# Limits (see small_max in qga-proto/src/fuzz.rs): 4096, 129, 64, 18.
MAXES = [b"\xff", b"\x7f", b"\x81", b"\x10"]


def split_header(i):
    return SPLITS[i % len(SPLITS)]


class Writer:
    """Collects seeds, then replaces every generated seed on disk (files named ``crash-*``,
    inputs that once crashed a target, are kept)."""

    def __init__(self):
        self.typed = {}  # command -> every reply to it, in order: one typed_replies seed
        self.seeds = {}  # (target, name) -> bytes

    def add(self, target, name, data):
        self.seeds[(target, name)] = data

    def decoder(self, name, data):
        i = sum(1 for t, _ in self.seeds if t == "decoder_splits")
        self.add("decoder_splits", name, split_header(i) + MAXES[i % len(MAXES)] + data)

    def reply(self, name, command, data, decoder=False):
        """A QGA/QMP reply stream to `command` (None: not a reply to one command)."""
        if command is not None:
            self.typed[command] = self.typed.get(command, b"") + data
        if decoder:
            self.decoder(name, data)

    def sync(self, name, sync_id, data, max_byte):
        i = sum(1 for t, _ in self.seeds if t == "handshake")
        header = bytes([SYNC_IDS.index(sync_id)]) + max_byte + split_header(i)
        self.add("handshake", name, header + data)

    def qmp(self, name, data):
        self.add("qmp_messages", name, data)

    def flush(self):
        for (command, data) in self.typed.items():
            name = "raw-json" if command == "*raw*" else command
            self.add("typed_replies", name, selector(command) + data)
        for d in CORPUS.glob("*"):
            for f in d.iterdir():
                if not f.name.startswith("crash-"):
                    f.unlink()
        count = {}
        for (target, name), data in sorted(self.seeds.items()):
            if len(data) > MAX_SEED:
                print(f"skip {target}/{name}: {len(data)} bytes", file=sys.stderr)
                continue
            d = CORPUS / target
            d.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(data)
            count[target] = count.get(target, 0) + 1
        for target, n in sorted(count.items()):
            print(f"{target}: {n} seeds")


# --- Seeds from the protocol notes (section 8 transcripts, 4.2 examples) -------------------

STRAY = b'{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}\n'
T_REPLIES = [
    # (name, command, reply bytes)
    ("t1-sync-fresh", "guest-sync-delimited", STRAY + b'\xff{"return": 123456789}\n'),
    ("t1-sync-id", "guest-sync-delimited", b'\xff{"return": 5, "id": "s5"}\n'),
    ("t1-sync-bad-arg", "guest-sync-delimited",
     b'{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'id\', expected: integer"}}\n'),
    ("t2-ping-id", "guest-ping", b'{"return": {}, "id": {"k": [1, 2]}}\n'),
    ("t2-nosuch", "guest-ping",
     b'{"id": 7, "error": {"class": "CommandNotFound", "desc": "The command guest-nosuch has not been found"}}\n'),
    ("t4-disabled", "guest-get-timezone",
     b'{"error": {"class": "CommandNotFound", "desc": "Command guest-get-timezone has been disabled"}}\n'),
    ("t5-pipelined", "guest-ping", b'{"return": {}}\n{"return": {}, "id": 2}\n'),
    ("t6-interrupted", "guest-ping", STRAY + b'{"return": {}, "id": 7}\n'),
    ("t6-three-ff", "guest-ping", STRAY * 3),
    ("t7-exec", "guest-exec", b'{"return": {"pid": 12419}}\n'),
    ("t7-status-hi", "guest-exec-status",
     b'{"return": {"exitcode": 0, "out-data": "aGkK", "out-truncated": false, "exited": true}}\n'),
    ("t7-status-running", "guest-exec-status", b'{"return": {"exited": false}}\n'),
    ("t7-status-exit3", "guest-exec-status",
     b'{"return": {"exitcode": 3, "err-data": "ZXJyCg==", "out-data": "b3V0Cg==", "err-truncated": false, "out-truncated": false, "exited": true}}\n'),
    ("t7-status-signal", "guest-exec-status", b'{"return": {"signal": 9, "exited": true}}\n'),
    ("t7-status-reaped", "guest-exec-status",
     b'{"error": {"class": "GenericError", "desc": "Invalid parameter \'pid\'"}}\n'),
    ("t9-open", "guest-file-open", b'{"return": 1000}\n'),
    ("t9-write", "guest-file-write", b'{"return": {"count": 13, "eof": false}}\n'),
    ("t9-seek", "guest-file-seek", b'{"return": {"eof": false, "position": 0}}\n'),
    ("t9-read", "guest-file-read", b'{"return": {"count": 5, "buf-b64": "aGVsbG8=", "eof": false}}\n'),
    ("t9-read-rest", "guest-file-read",
     b'{"return": {"count": 11, "buf-b64": "AP93b3JsZApBQkM=", "eof": true}}\n'),
    ("t9-read-eof", "guest-file-read", b'{"return": {"count": 0, "buf-b64": "", "eof": true}}\n'),
    ("t9-close-twice", "guest-file-close",
     b'{"error": {"class": "GenericError", "desc": "handle \'1000\' has not been found"}}\n'),
    ("t9b-partial", "guest-sync-delimited", STRAY + b'\xff{"return": 777}\n'),
    ("n42-osinfo", "guest-get-osinfo",
     b'{"return": {"name": "Debian GNU/Linux", "kernel-release": "6.18", "version": "12 (bookworm)", "pretty-name": "Debian GNU/Linux 12 (bookworm)", "version-id": "12", "kernel-version": "#1 SMP", "machine": "x86_64", "id": "debian"}}\n'),
    ("n42-host-name", "guest-get-host-name", b'{"return": {"host-name": "vm"}}\n'),
    ("n42-users", "guest-get-users", b'{"return": []}\n'),
    ("n42-time", "guest-get-time", b'{"return": 1795348020058666000}\n'),
    ("n42-fsinfo", "guest-get-fsinfo",
     b'{"return": [{"name": "vda", "total-bytes": 100, "mountpoint": "/", "disk": [{"bus-type": "virtio", "bus": 0, "unit": 0, "pci-controller": {"bus": 0, "slot": 2, "domain": 0, "function": 0}, "dev": "/dev/vdX", "target": 0}], "used-bytes": 50, "type": "ext4"}]}\n'),
    ("n42-fsfreeze-status", "guest-fsfreeze-status", b'{"return": "thawed"}\n'),
    ("x-unknown-members", "guest-exec-status",
     b'{"return": {"exited": true, "exitcode": 0, "new-member": {"a": [1]}}, "id": 1, "extra": null}\n'),
    ("x-unknown-enum", "guest-fsfreeze-status", b'{"return": "half-frozen"}\n'),
]
T_QMP = [
    ("t11-session",
     b'{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}\r\n'
     b'{"id": 1, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}\r\n'
     b'{"return": {}, "id": "neg"}\r\n'
     b'{"return": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "id": {"any": "json"}}\r\n'),
    ("t11-errors",
     b'{"id": 4, "error": {"class": "CommandNotFound", "desc": "The command no-such-command has not been found"}}\r\n'
     b'{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}\r\n'
     b'{"id": 7, "error": {"class": "GenericError", "desc": "The command query-status does not support OOB"}}\r\n'),
    ("t11-stop-cont-quit",
     b'{"timestamp": {"seconds": 1795348828, "microseconds": 339949}, "event": "STOP"}\r\n{"return": {}, "id": 10}\r\n'
     b'{"timestamp": {"seconds": 1795348829, "microseconds": 1}, "event": "RESUME"}\r\n{"return": {}, "id": 12}\r\n'
     b'{"timestamp": {"seconds": 1795348830, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}\r\n{"return": {}, "id": "bye"}\r\n'),
    ("x-events",
     b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "VSERPORT_CHANGE", "data": {"id": "channel0", "open": true}}\r\n'
     b'{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "RESET", "data": {"guest": true, "reason": "brand-new-cause"}}\r\n'
     b'{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "BLOCK_JOB_READY", "data": {"device": "d"}}\r\n'),
]
T_SYNC = [
    ("t1-fresh", 123456789, STRAY + b'\xff{"return": 123456789}\n'),
    ("t1-again", 42, b'\xff{"return": 42}\n'),
    ("t1-with-id", 5, b'\xff{"return": 5, "id": "s5"}\n'),
    ("t9b", 777, STRAY + b'\xff{"return": 777}\n'),
    ("t12-stale", 987654321,
     b'{"return": {"version": "7.2.22", "supported_commands": [{"enabled": true, "name": "guest-ping", "success-response": true}]}}\n'
     b'{"return": {}, "id": "old"}\n' + STRAY + b'\xff{"return": 987654321}\n'),
    ("x-older-sync-first", 42, b'\xff{"return": 41}\n\xff{"return": 42}\n'),
    ("x-interrupted", 5, b'{"return": {"buf-b64": "AAAA\xff{"return": 5}\n'),
]


# Transcript replies that also seed decoder_splits.
T_DECODER = {"t1-sync-fresh", "t5-pipelined", "t6-interrupted", "t6-three-ff", "t9-read-rest",
             "x-unknown-members"}


def write_transcripts(w):
    for name, command, data in T_REPLIES:
        w.reply("t-" + name, command, data, decoder=name in T_DECODER)
    for name, data in T_QMP:
        w.qmp("t-" + name, data)
        w.reply("t-" + name, "*raw*", data, decoder=True)
    for i, (name, sync_id, data) in enumerate(T_SYNC):
        w.sync("t-" + name, sync_id, data, MAXES[i % 2])


# --- Live captures ----------------------------------------------------------------------------

class Conn:
    def __init__(self, path, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.buf = b""

    def read_until(self, done, timeout=10.0):
        """Reads until done(bytes) is true; returns and consumes everything read so far."""
        deadline = time.monotonic() + timeout
        while not done(self.buf):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete reply, have {self.buf[:200]!r}")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                break
            self.buf += data
        out, self.buf = self.buf, b""
        return out

    def lines(self, request, n=1):
        """Sends `request` and returns the raw bytes of the next `n` lines."""
        if request:
            self.sock.sendall(request)
        return self.read_until(lambda b: b.count(b"\n") >= n)

    def close(self):
        self.sock.close()


def req(command, arguments=None, id=None):
    msg = {"execute": command}
    if arguments is not None:
        msg["arguments"] = arguments
    if id is not None:
        msg["id"] = id
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


# Captured replies that also seed decoder_splits.
DECODER_CMDS = {"guest-get-osinfo", "guest-get-fsinfo", "guest-get-cpustats",
                "guest-network-get-interfaces", "guest-get-diskstats", "guest-get-memory-blocks"}


def capture_qga(w, tmp):
    state = tmp / "state"
    state.mkdir()
    conf = tmp / "empty.conf"  # QGA_CONF=/dev/null is refused ("Not a regular file")
    conf.write_bytes(b"")
    sock = str(tmp / "qga.sock")
    env = dict(os.environ, QGA_CONF=str(conf))
    agent = subprocess.Popen(
        [QEMU_GA, "-m", "unix-listen", "-p", sock, "-t", str(state),
         "-f", str(tmp / "qga.pid"), "-l", str(tmp / "qga.log"), "-b", BLOCKED],
        env=env, stdin=subprocess.DEVNULL)
    try:
        c = Conn(sock)
        def reply(name, command, request, n=1, decoder=False):
            data = c.lines(request, n)
            w.reply("cap-" + name, command, data, decoder)
            return data

        def value(data):
            return json.loads(data.rsplit(b"\xff", 1)[-1])

        # Handshakes.
        c.sock.sendall(b"\xff" + req("guest-sync-delimited", {"id": SYNC_IDS[0]}))
        data = c.read_until(lambda b: b"\xff" in b and b.endswith(b"\n"))
        w.sync("cap-sync-fresh", SYNC_IDS[0], data, MAXES[0])
        w.reply("cap-sync-fresh", "guest-sync-delimited", data)
        # T12: two unread replies and an unterminated request, then the handshake.
        c.sock.sendall(req("guest-info") + req("guest-ping", id="old")
                       + b'{"execute":"guest-exec","arguments":{"path":"true"}')
        time.sleep(0.3)
        c.sock.sendall(b"\xff" + req("guest-sync-delimited", {"id": SYNC_IDS[1]}))
        marker = b'\xff{"return": %d}\n' % SYNC_IDS[1]
        data = c.read_until(lambda b: b.endswith(marker))
        w.sync("cap-t12-stale", SYNC_IDS[1], data, MAXES[0])
        w.sync("cap-t12-stale-small", SYNC_IDS[1], data, MAXES[1])
        w.decoder("cap-t12-stale", data)
        # An earlier sync's reply before ours.
        c.sock.sendall(req("guest-sync-delimited", {"id": SYNC_IDS[3]})
                       + b"\xff" + req("guest-sync-delimited", {"id": SYNC_IDS[2]}))
        marker = b'\xff{"return": %d}\n' % SYNC_IDS[2]
        data = c.read_until(lambda b: b.endswith(marker))
        w.sync("cap-older-sync-first", SYNC_IDS[2], data, MAXES[1])
        reply("sync", "guest-sync", req("guest-sync", {"id": 99}))

        # Information.
        reply("ping-id", "guest-ping", req("guest-ping", id={"k": [1, 2]}))
        reply("info", "guest-info", req("guest-info"), decoder=True)
        for cmd in ["guest-get-osinfo", "guest-get-host-name", "guest-get-users",
                    "guest-get-time", "guest-get-timezone", "guest-get-fsinfo",
                    "guest-get-disks", "guest-get-cpustats", "guest-get-vcpus",
                    "guest-get-memory-block-info", "guest-fsfreeze-status",
                    "guest-network-get-interfaces", "guest-get-diskstats",
                    "guest-get-memory-blocks"]:
            reply(cmd.removeprefix("guest-"), cmd, req(cmd), decoder=cmd in DECODER_CMDS)

        # Errors of both classes.
        reply("err-nosuch", "guest-ping", req("guest-nosuch", id=7))
        reply("err-disabled", "guest-get-devices", req("guest-get-devices"))
        reply("fsfreeze-status-id", "guest-fsfreeze-status", req("guest-fsfreeze-status", id="s"))
        reply("err-ssh-user", "guest-ssh-get-authorized-keys",
              req("guest-ssh-get-authorized-keys", {"username": "nosuchuser-qga-fuzz"}))
        reply("err-malformed", "guest-ping",
              b'{"execute": }\nabc\n42\n{}\n{"execute":"guest-ping","bogus":1}\n', 5,
              decoder=True)
        reply("err-ff-mid", "guest-ping",
              b'{"execute":"guest-ping","id":6' + b'\xff' + req("guest-ping", id=7), 2,
              decoder=True)
        reply("err-ff-in-string", "guest-ping", b'{"execute":"guest-ping","id":"ab\xffcd"}\n', 2,
              decoder=True)

        # Files, inside the temporary directory.
        path = str(tmp / "rt.txt")
        data = reply("file-open", "guest-file-open", req("guest-file-open", {"path": path, "mode": "w+"}))
        handle = value(data)["return"]
        reply("file-write", "guest-file-write",
              req("guest-file-write", {"handle": handle, "buf-b64": "aGVsbG8A/3dvcmxkCg=="}))
        reply("file-flush", "guest-file-flush", req("guest-file-flush", {"handle": handle}))
        reply("file-seek", "guest-file-seek",
              req("guest-file-seek", {"handle": handle, "offset": 0, "whence": "set"}))
        reply("file-read-5", "guest-file-read", req("guest-file-read", {"handle": handle, "count": 5}))
        reply("file-read-rest", "guest-file-read", req("guest-file-read", {"handle": handle}),
              decoder=True)
        reply("file-read-eof", "guest-file-read", req("guest-file-read", {"handle": handle}))
        reply("file-close", "guest-file-close", req("guest-file-close", {"handle": handle}))
        reply("file-close-again", "guest-file-close", req("guest-file-close", {"handle": handle}))

        # Programs.
        def run(name, args, wait):
            data = reply(name, "guest-exec", req("guest-exec", args))
            pid = value(data)["return"]["pid"]
            for _ in range(100):
                data = c.lines(req("guest-exec-status", {"pid": pid}))
                if value(data).get("return", {}).get("exited", True):
                    break
                if wait:
                    w.reply("cap-" + name + "-running", "guest-exec-status", data)
                    wait = False
                time.sleep(0.05)
            w.reply("cap-" + name + "-status", "guest-exec-status", data, decoder=True)

        run("exec-echo", {"path": "/bin/echo", "arg": ["hi"], "capture-output": True}, False)
        run("exec-exit3", {"path": "/bin/sh", "arg": ["-c", "sleep 0.5; echo out; echo err >&2; exit 3"],
                           "capture-output": True}, True)
        run("exec-signal", {"path": "/bin/sh", "arg": ["-c", "kill -9 $$"]}, False)
        reply("exec-bad-capture", "guest-exec",
              req("guest-exec", {"path": "/bin/true", "capture-output": "merged"}))
        c.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def capture_qmp(w, tmp):
    sock = str(tmp / "qmp.sock")
    qemu = subprocess.Popen(
        [QEMU, "-machine", "none", "-display", "none", "-nodefaults",
         "-qmp", f"unix:{sock},server=on,wait=off"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        c = Conn(sock)
        session = c.lines(None)
        w.reply("cap-qmp-greeting", "*raw*", session)

        def reply(name, command, request, n=1):
            data = c.lines(request, n)
            w.reply("cap-qmp-" + name, command, data)
            return data

        session += reply("before-negotiation", "query-version", req("query-version", id=1))
        session += reply("capabilities", "qmp_capabilities",
                         req("qmp_capabilities", {"enable": ["oob"]}, id="neg"))
        session += reply("version", "query-version", req("query-version", id={"any": "json"}))
        session += reply("status", "query-status", req("query-status", id=3))
        session += reply("chardev", "query-chardev", req("query-chardev", id=4))
        session += reply("commands", "query-commands", req("query-commands", id=5))
        session += reply("hmp", "human-monitor-command",
                         req("human-monitor-command", {"command-line": "info version"}, id=6))
        session += reply("nosuch", "stop", req("no-such-command", id=7))
        session += reply("parse-error", "stop", b'{"execute": }\n')
        session += reply("oob-refused", "query-status", b'{"exec-oob":"query-status","id":8}\n')
        events = reply("stop", "stop", req("stop", id=10), 2)
        events += reply("cont", "cont", req("cont", id=12), 2)
        events += reply("quit", "quit", req("quit", id="bye"), 2)
        session += events
        w.qmp("cap-qmp-session", session)
        w.qmp("cap-qmp-events", events)
        w.decoder("cap-qmp-session", session)
        w.decoder("cap-qmp-events", events)
        c.close()
    finally:
        try:
            qemu.wait(timeout=10)
        except subprocess.TimeoutExpired:
            qemu.terminate()
            qemu.wait(timeout=10)


def main():
    w = Writer()
    write_transcripts(w)
    with tempfile.TemporaryDirectory(prefix="qga-corpus-") as tmp:
        capture_qga(w, Path(tmp))
        capture_qmp(w, Path(tmp))
    w.flush()


if __name__ == "__main__":
    main()
