"""Publishes notifications the way Neutron does, with the real oslo.messaging Notifier.

    publish.py TRANSPORT_URL

Neutron sets `control_exchange = neutron` (neutron/common/config.py:
`oslo_messaging.set_transport_defaults(control_exchange='neutron')`) and notifies through
neutron_lib.rpc's Notifier with `driver = messagingv2`, `topics = notifications`, publisher
`network.<host>`, and a RequestContext (redacted by oslo.messaging before sending).

Reads one JSON object per line on stdin and answers `ok N` on stdout once it is published:
  {"event_type": "port.update.end", "payload": {...}}     a notification (priority info)
  {"raw": "<body>"}                                        a raw body on neutron/notifications.info
                                                           (kombu, for malformed messages)
"""
import json
import sys

import kombu
from oslo_config import cfg
from oslo_context import context
import oslo_messaging

url = sys.argv[1]
oslo_messaging.set_transport_defaults(control_exchange="neutron")
conf = cfg.ConfigOpts()
conf([], project="neutron")
transport = oslo_messaging.get_notification_transport(conf, url=url)
notifier = oslo_messaging.Notifier(
    transport, publisher_id="network.controller-1", driver="messagingv2",
    topics=["notifications"])
ctxt = context.RequestContext(user_id="neutron-user", project_id="neutron-project",
                              auth_token="a-secret-token-never-sent", is_admin=True)

raw_connection = None
n = 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    msg = json.loads(line)
    if "raw" in msg:
        if raw_connection is None:
            raw_connection = kombu.Connection(url.replace("rabbit://", "amqp://"))
        exchange = kombu.Exchange("neutron", type="topic", durable=False)
        producer = raw_connection.Producer()
        producer.publish(msg["raw"], exchange=exchange, routing_key="notifications.info",
                         content_type="application/json", content_encoding="utf-8",
                         declare=[exchange])
    else:
        notifier.info(ctxt, msg["event_type"], msg["payload"])
    n += 1
    print(f"ok {n}", flush=True)
