"""TLS to the broker, one set of settings for both clients.

With an `amqps://` `RABBITMQ_URL`, the aio-pika publisher gets an `ssl.SSLContext` and Celery
gets `broker_use_ssl` options built from the same files: `RABBITMQ_CA_FILE` (verify the broker;
the system's CAs when unset) and `RABBITMQ_CERT_FILE` + `RABBITMQ_KEY_FILE` (a client
certificate, for brokers that ask for one). The broker's certificate and host name are always
verified; there is no setting that turns verification off.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from shared.infra.settings import BrokerSettings


def broker_ssl_context(settings: BrokerSettings) -> ssl.SSLContext | None:
    """The publisher's TLS context, or None for a plain `amqp://` URL."""
    if not settings.broker_uses_tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.rabbitmq_ca_file)
    if settings.rabbitmq_cert_file:
        context.load_cert_chain(settings.rabbitmq_cert_file, settings.rabbitmq_key_file)
    return context


def celery_broker_ssl(settings: BrokerSettings) -> dict[str, Any] | None:
    """Celery's `broker_use_ssl` (py-amqp's options), or None for a plain `amqp://` URL."""
    if not settings.broker_uses_tls:
        return None
    options: dict[str, Any] = {
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": urlsplit(settings.rabbitmq_url).hostname,
    }
    if settings.rabbitmq_ca_file:
        options["ca_certs"] = settings.rabbitmq_ca_file
    if settings.rabbitmq_cert_file:
        options["certfile"] = settings.rabbitmq_cert_file
        options["keyfile"] = settings.rabbitmq_key_file
    return options
