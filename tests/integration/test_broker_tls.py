"""`amqps://` for real: the publisher and Celery reach RabbitMQ through a TLS listener that
presents a certificate from our test CA and demands a client certificate (tests/support
/tls_proxy.py, in front of the local broker, which has no TLS listener of its own)."""

from __future__ import annotations

import pytest

from devtools.harness.stack import SLOT, VHOST, rabbitmqctl
from shared.infra.settings import Settings
from shared.infra.tls import broker_ssl_context
from shared.messages.orders import ChargeOrder
from shared.messaging.publisher import Publisher
from shared.messaging.wire import OutgoingTask
from tests.support.certs import Certs, make_certs
from tests.support.isolated import fresh_vhost
from tests.support.tls_proxy import TlsProxy
from workers.app import make_celery

TLS_PORT = 35671 + SLOT * 100
TLS_VHOST = f"{VHOST}-tls"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_broker(certs: Certs):
    fresh_vhost(TLS_VHOST)
    proxy = TlsProxy(TLS_PORT, certs)
    proxy.start()
    yield proxy
    proxy.close()
    rabbitmqctl("delete_vhost", TLS_VHOST)


def settings(certs: Certs, client_certificate: bool = True, ca: bool = True) -> Settings:
    return Settings(
        rabbitmq_url=f"amqps://guest:guest@localhost:{TLS_PORT}/{TLS_VHOST}",
        rabbitmq_ca_file=str(certs.ca) if ca else None,
        rabbitmq_cert_file=str(certs.client_cert) if client_certificate else None,
        rabbitmq_key_file=str(certs.client_key) if client_certificate else None,
    )


async def test_the_publisher_publishes_over_tls_with_a_client_certificate(tls_broker, certs):
    config = settings(certs)
    publisher = Publisher(config.rabbitmq_url, ssl_context=broker_ssl_context(config))
    await publisher.connect()
    try:
        await publisher.publish(OutgoingTask(ChargeOrder.name, {"order_id": "ord_tls"}))
        assert (await publisher.queue_depths(["payments"]))["payments"] == 1
    finally:
        await publisher.close()
    assert tls_broker.handshakes >= 1


@pytest.mark.parametrize(
    ("client_certificate", "ca"), [(False, True), (True, False)], ids=["no-client-cert", "no-ca"]
)
async def test_the_publisher_fails_closed_without_its_certificate_or_our_ca(
    tls_broker, certs, client_certificate, ca
):
    config = settings(certs, client_certificate, ca)
    publisher = Publisher(config.rabbitmq_url, ssl_context=broker_ssl_context(config))
    with pytest.raises(Exception):  # noqa: B017 - a handshake or verification error, by design
        await publisher.connect()
    await publisher.close()


def test_celery_connects_over_tls_with_the_same_settings(tls_broker, certs):
    app = make_celery(None, settings(certs))
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
        assert connection.connected and connection.transport_cls in ("amqps", "amqp", "pyamqp")


def test_celery_fails_closed_without_its_client_certificate(tls_broker, certs):
    app = make_celery(None, settings(certs, client_certificate=False))
    with pytest.raises(Exception), app.connection_for_write() as connection:  # noqa: B017
        connection.ensure_connection(max_retries=1)
