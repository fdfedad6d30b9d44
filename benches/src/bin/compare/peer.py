"""Benchmark worker for `compare --python`: python qemu.qmp (PyPI `qemu.qmp`) driving qemu-ga
and QEMU.

qemu.qmp has no separate guest agent client (QEMU's tree has qemu.utils.qemu_ga_client, which
is not on PyPI); its QMPClient speaks QGA when told not to await a greeting nor negotiate
(its own documented settings for QGA servers), so both sides use QMPClient.

Reads one JSON request per line on stdin:
  {"qmp": bool, "sock": path, "cmd": name, "n": calls, "warm": calls}
connects, syncs (QGA: guest-sync with a random id, like qemu_ga_client), runs `warm` untimed
and `n` timed calls, disconnects, and prints one JSON line:
  {"lat_ns": [...], "wall_ns": int, "cpu_ns": int}  or  {"error": text}
"""

import asyncio
import json
import random
import resource
import sys
import time

from qemu.qmp import QMPClient


def cpu_ns():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return int((r.ru_utime + r.ru_stime) * 1e9)


async def block(req):
    client = QMPClient("bench")
    if not req["qmp"]:
        client.await_greeting = False
        client.negotiate = False
    await client.connect(req["sock"])
    try:
        if not req["qmp"]:
            sync_id = random.randrange(1, 2**31)
            got = await client.execute("guest-sync", {"id": sync_id})
            if got != sync_id:
                raise RuntimeError(f"guest-sync echoed {got!r}")
        cmd = req["cmd"]
        for _ in range(req["warm"]):
            await client.execute(cmd)
        lat = []
        perf = time.perf_counter_ns
        c0 = cpu_ns()
        t0 = perf()
        for _ in range(req["n"]):
            t = perf()
            await client.execute(cmd)
            lat.append(perf() - t)
        wall = perf() - t0
        cpu = cpu_ns() - c0
    finally:
        await client.disconnect()
    return {"lat_ns": lat, "wall_ns": wall, "cpu_ns": cpu}


async def main():
    for line in sys.stdin:
        req = json.loads(line)
        try:
            res = await block(req)
        except Exception as e:  # reported to the driver, which stops the run
            res = {"error": repr(e)}
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


asyncio.run(main())
