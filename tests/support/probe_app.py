"""A plain Celery 5 app with one probe task, for the publisher's contract test.

It shares nothing with our publisher but the queue topology: if it runs what the aio-pika
publisher sent, with the same arguments, any Celery worker will.
"""

from __future__ import annotations

import json
import os

from celery import Celery

from shared.messages.orders import ChargeOrder, RefundOrder
from shared.messaging.wire import CORRELATION_HEADER
from workers.app import celery_queues

app = Celery("probe", broker=os.environ.get("PROBE_BROKER_URL", "amqp://"))
app.conf.update(
    task_queues=celery_queues("classic"),
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)


@app.task(name=ChargeOrder.name, bind=True)
def probe(self, *args, **kwargs) -> None:
    _record(self, args, kwargs)


@app.task(name=RefundOrder.name, bind=True)
def probe_refund(self, *args, **kwargs) -> None:
    _record(self, args, kwargs)


def _record(self, args, kwargs) -> None:
    record = {
        "args": list(args),
        "kwargs": kwargs,
        "id": self.request.id,
        "priority": (self.request.delivery_info or {}).get("priority"),
        "correlation_id": getattr(self.request, CORRELATION_HEADER, None),
    }
    with open(os.environ["PROBE_OUTPUT"], "a") as out:
        out.write(json.dumps(record) + "\n")
