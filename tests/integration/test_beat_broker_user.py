"""The scheduler publishes its periodic tasks as a broker user that may only write to the
task exchange (deploy/k8s/base/rabbitmq-users.yaml, doorbuster-beat): it declares nothing,
since declaring a queue with a dead-letter exchange needs read permission on that queue."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from devtools.harness.stack import SLOT, rabbitmqctl
from shared.infra.settings import Settings
from shared.messages.orders import ExpireReservations
from shared.messaging.publisher import declare_topology
from shared.messaging.topology import QueueName
from tests.support.broker import queue_depths
from workers.app import beat_app

VHOST = f"doorbuster-beat{SLOT or ''}"
USER = f"doorbuster-beat-probe{SLOT or ''}"
ADMIN_URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
BEAT_URL = f"amqp://{USER}:beat-password@127.0.0.1:5672/{VHOST}"
# As deployed (deploy/k8s: quorum queues, a topic task exchange). With classic queues and a
# direct exchange Celery publishes to the default exchange instead (amq.default).
QUEUE_TYPE = "quorum"


async def declare_as_admin() -> None:
    connection = await aio_pika.connect(ADMIN_URL)
    try:
        await declare_topology(await connection.channel(), QUEUE_TYPE)
    finally:
        await connection.close()


@pytest.fixture
def publish_only_user():
    rabbitmqctl("delete_vhost", VHOST)
    rabbitmqctl("delete_user", USER)
    assert rabbitmqctl("add_vhost", VHOST).returncode == 0
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    assert rabbitmqctl("add_user", USER, "beat-password").returncode == 0
    granted = rabbitmqctl("set_permissions", "-p", VHOST, USER, "^$", r"^doorbuster\.tasks$", "^$")
    assert granted.returncode == 0, granted.stderr
    asyncio.run(declare_as_admin())  # the APIs and pools declare the topology
    yield BEAT_URL
    rabbitmqctl("delete_user", USER)
    rabbitmqctl("delete_vhost", VHOST)


def test_beat_publishes_the_sweep_with_write_permission_on_the_exchange_only(publish_only_user):
    app = beat_app(Settings(rabbitmq_url=publish_only_user, queue_type=QUEUE_TYPE))
    entry = app.conf.beat_schedule[ExpireReservations.name]
    with app.connection_for_write() as connection, app.producer_or_acquire() as producer:
        connection.ensure_connection(max_retries=3)
        app.send_task(entry["task"], producer=producer, **entry["options"])
    depths = asyncio.run(queue_depths(ADMIN_URL))
    assert depths[QueueName.ORDERS.value] == 1
    assert sum(depths.values()) == 1
