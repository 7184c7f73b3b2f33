"""`amqps://` settings reach both broker clients: the publisher's SSL context and Celery's
`broker_use_ssl`. (A real TLS handshake is in tests/integration/test_broker_tls.py.)"""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from services.inventory.runtime import make_runtime
from shared.infra.settings import Settings
from shared.infra.tls import broker_ssl_context, celery_broker_ssl
from tests.support.certs import make_certs
from workers.app import make_celery
from workers.pools import Pool


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def tls_settings(certs) -> Settings:
    return Settings(
        rabbitmq_url="amqps://guest:guest@broker.internal:5671/doorbuster",
        rabbitmq_ca_file=str(certs.ca),
        rabbitmq_cert_file=str(certs.client_cert),
        rabbitmq_key_file=str(certs.client_key),
    )


def test_plain_amqp_uses_no_tls():
    settings = Settings(rabbitmq_url="amqp://guest:guest@127.0.0.1:5672//")
    assert broker_ssl_context(settings) is None
    assert celery_broker_ssl(settings) is None
    assert not make_celery(Pool.ORDERS, settings).conf.broker_use_ssl


def test_the_publisher_verifies_the_broker_with_the_given_ca(certs):
    context = broker_ssl_context(tls_settings(certs))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 1  # our CA only, not the system's


def test_the_runtime_hands_the_context_to_its_publisher(certs):
    runtime = make_runtime(tls_settings(certs))
    assert isinstance(runtime.publisher._ssl_context, ssl.SSLContext)


def test_celery_gets_the_same_files(certs):
    app = make_celery(Pool.PAYMENTS, tls_settings(certs))
    assert app.conf.broker_use_ssl == {
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "broker.internal",
        "ca_certs": str(certs.ca),
        "certfile": str(certs.client_cert),
        "keyfile": str(certs.client_key),
    }
    assert app.conf.broker_url.startswith("amqps://")


def test_without_a_ca_file_the_system_cas_verify_the_broker():
    settings = Settings(rabbitmq_url="amqps://broker.example.com//")
    assert broker_ssl_context(settings).verify_mode == ssl.CERT_REQUIRED
    assert "ca_certs" not in celery_broker_ssl(settings)


def test_a_client_certificate_needs_its_key():
    with pytest.raises(ValidationError, match="RABBITMQ_KEY_FILE"):
        Settings(rabbitmq_url="amqps://x//", rabbitmq_cert_file="/tmp/client.pem")
