"""Reads nova-guest-api's result notifications with a real oslo.messaging notification
listener (exchange nova-guest, topic notifications, its own pool queue).

    listen.py TRANSPORT_URL EXCHANGE POOL

Prints `ready` once its queue is bound, then one JSON line per notification:
{"priority", "publisher_id", "event_type", "payload", "metadata"}.
"""
import json
import sys
import threading

from oslo_config import cfg
import oslo_messaging

url, exchange, pool = sys.argv[1:4]
conf = cfg.ConfigOpts()
conf([])
transport = oslo_messaging.get_notification_transport(conf, url=url)
lock = threading.Lock()


class Endpoint:
    def _out(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        with lock:
            print(json.dumps({"priority": priority, "publisher_id": publisher_id,
                              "event_type": event_type, "payload": payload,
                              "metadata": {k: str(v) for k, v in metadata.items()}}),
                  flush=True)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._out("info", ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._out("error", ctxt, publisher_id, event_type, payload, metadata)


targets = [oslo_messaging.Target(topic="notifications", exchange=exchange)]
listener = oslo_messaging.get_notification_listener(
    transport, targets, [Endpoint()], executor="threading", pool=pool)
listener.start()
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    listener.stop()
    listener.wait()
