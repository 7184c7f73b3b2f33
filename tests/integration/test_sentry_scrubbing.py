"""No customer data leaves in an error report: a real sentry-sdk sends to the stub Sentry, and
what arrives holds no email address and no name, from a failing request or a failing task."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator

import pytest
import sentry_sdk
from celery import Celery
from fastapi import APIRouter

from shared.infra.observability import init_sentry
from shared.infra.settings import Settings
from shared.web.app import create_service_app
from tests.support.sentry_stub import SentryStub

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

EMAIL, NAME = "ann.jones@example.com", "Ann Jones"
router = APIRouter()


@router.post("/v1/boom")
async def boom(body: dict) -> dict:
    raise RuntimeError(f"could not mail {body['customer']['email']}")


@pytest.fixture
def sentry() -> Iterator[SentryStub]:
    stub = SentryStub()
    yield stub
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # off again for the rest of the session
    stub.close()


def reported(stub: SentryStub) -> str:
    sentry_sdk.flush(5)
    deadline = time.monotonic() + 5
    while not stub.events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stub.events, "nothing reached Sentry"
    return json.dumps(stub.events)


def assert_no_customer_data(sent: str) -> None:
    assert EMAIL not in sent and "example.com" not in sent
    assert NAME not in sent and "Jones" not in sent


def test_a_failing_request_reports_no_email_or_name(sentry: SentryStub):
    settings = Settings(sentry_dsn=sentry.dsn)
    app = create_service_app("test", "t", lambda _: None, [router], settings)
    body = {"customer": {"id": "cus_1", "email": EMAIL, "name": NAME}, "note": f"for {EMAIL}"}
    with pytest.raises(RuntimeError):
        TestClient(app).post(
            "/v1/boom", json=body, headers={"Authorization": "Bearer dev-storefront"}
        )
    sent = reported(sentry)
    assert "RuntimeError" in sent and "cus_1" in sent  # the report itself arrived, with ids
    assert_no_customer_data(sent)


def test_a_failing_task_reports_no_email_or_name_from_its_kwargs(sentry: SentryStub):
    from sentry_sdk.integrations.celery import CeleryIntegration

    init_sentry(Settings(sentry_dsn=sentry.dsn), "worker", [CeleryIntegration()])
    app = Celery("scrub-test", broker="memory://")
    app.conf.task_always_eager = True

    @app.task(name="test.send_mail")
    def send_mail(order_id: str, to: str, name: str) -> None:
        raise ConnectionError(f"SMTP refused {to}")

    send_mail.apply(kwargs={"order_id": "ord_7", "to": EMAIL, "name": NAME})
    sent = reported(sentry)
    assert "ConnectionError" in sent and "ord_7" in sent
    assert_no_customer_data(sent)
