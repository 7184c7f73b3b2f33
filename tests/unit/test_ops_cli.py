"""The ops CLI's pieces without a broker: tables, dead-letter parsing, the campaign client
against a stub notifications API, and the redriven copy of a dead letter."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from ops import campaigns, dlq
from ops.rabbit import vhost_of
from ops.render import table
from shared.infra.settings import Settings
from shared.messaging.wire import PUBLISHED_AT_HEADER


def test_tables_align_text_left_and_numbers_right():
    rows = [
        {"queue": "payments", "ready": 12, "age": None},
        {"queue": "orders", "ready": 3, "age": 1.25},
    ]
    assert table(rows, ["queue", "ready", "age"]).splitlines() == [
        "queue     ready  age",
        "payments     12    -",
        "orders        3  1.2",
    ]


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://g:g@h:5672/", "/"),
        ("amqp://g:g@h:5672//", "/"),
        ("amqp://h/shop", "shop"),
        ("amqp://h", "/"),
        ("amqp://h/a%2Fb", "a/b"),
    ],
)
def test_the_vhost_comes_from_the_broker_url(url, vhost):
    assert vhost_of(url) == vhost


def test_dead_letter_queues_are_named_from_the_topology():
    assert dlq.dlq_name("payments") == dlq.dlq_name("payments.dlq") == "payments.dlq"
    with pytest.raises(ValueError):
        dlq.dlq_name("nope")


MANAGEMENT_MESSAGE = {
    "payload": json.dumps([[], {"amount": 5, "order_id": "ord_1"}, {}]),
    "properties": {
        "timestamp": 1795581303,
        "headers": {
            "task": "payments.charge",
            "id": "t1",
            "x-death": [
                {
                    "count": 2,
                    "reason": "rejected",
                    "queue": "payments",
                    "time": 1795581304,
                    "exchange": "doorbuster.tasks",
                    "routing-keys": ["payments"],
                }
            ],
        },
    },
}


def test_a_dead_letter_says_which_task_died_where_and_why():
    management = SimpleNamespace(peek=lambda queue, count: [MANAGEMENT_MESSAGE])
    [letter] = dlq.list_dead_letters(management, "payments")
    assert letter.summary() == {
        "position": 1,
        "task": "payments.charge",
        "task_id": "t1",
        "order_id": "ord_1",
        "reason": "rejected",
        "from_queue": "payments",
        "deaths": 2,
        "died_at": "2026-11-25T04:35:04+00:00",
    }
    assert letter.routing_key == "payments"
    assert dlq.find([letter], "t1") is dlq.find([letter], "1") is letter
    assert dlq.find([letter], "t2") is None


def test_a_redriven_copy_drops_its_death_history_and_gets_a_fresh_stamp():
    message = SimpleNamespace(
        headers={
            "id": "t1",
            "retries": 8,
            "x-death": [{}],
            "x-first-death-queue": "payments",
            PUBLISHED_AT_HEADER: 1.0,
        },
        body=b"[]",
        content_type="application/json",
        content_encoding="utf-8",
        priority=9,
        correlation_id="t1",
        message_id="t1",
    )
    copy = dlq.redriven_copy(message)
    assert "x-death" not in copy.headers and "x-first-death-queue" not in copy.headers
    assert copy.headers["retries"] == 0 and copy.headers[dlq.REDRIVE_HEADER] == 1
    assert copy.headers[PUBLISHED_AT_HEADER] > 1.0 and copy.timestamp is not None
    assert (copy.priority, copy.body, copy.delivery_mode.value) == (9, b"[]", 2)


class StubNotifications(BaseHTTPRequestHandler):
    calls: list = []

    def do_POST(self):
        StubNotifications.calls.append((self.path, self.headers.get("Authorization")))
        if self.path == "/v1/campaigns/cmp_1/pause":
            status, body = 200, {"id": "cmp_1", "status": "paused"}
        else:
            status, body = (
                404,
                {
                    "type": "x",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "No campaign 'cmp_2'.",
                },
            )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


@pytest.fixture
def stub_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubNotifications)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StubNotifications.calls = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_pausing_a_campaign_posts_to_the_api_with_the_admin_key(stub_api):
    settings = Settings(notifications_api_url=stub_api, ops_admin_key="ops-key")
    assert campaigns.campaign_action(settings, "cmp_1", "pause")["status"] == "paused"
    assert StubNotifications.calls == [("/v1/campaigns/cmp_1/pause", "Bearer ops-key")]


def test_the_default_admin_key_is_the_configured_one_or_the_dev_key():
    assert campaigns.admin_key(Settings(admin_api_keys="", storefront_api_keys="")) == "dev-admin"
    assert campaigns.admin_key(Settings(admin_api_keys="a1,a2", storefront_api_keys="s")) == "a1"


def test_a_refusal_carries_the_problem_detail(stub_api):
    settings = Settings(notifications_api_url=stub_api, ops_admin_key="k")
    with pytest.raises(campaigns.CampaignError, match=r"404 .*No campaign 'cmp_2'"):
        campaigns.campaign_action(settings, "cmp_2", "resume")


def test_an_unreachable_api_is_an_error_not_a_traceback():
    settings = Settings(notifications_api_url="http://127.0.0.1:9", ops_admin_key="k")
    with pytest.raises(campaigns.CampaignError):
        campaigns.campaign_action(settings, "cmp_1", "pause", timeout=1)


def test_an_unreachable_management_api_is_one_line_and_exit_1(monkeypatch):
    from typer.testing import CliRunner

    from ops.cli import app
    from shared.infra.settings import get_settings

    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "http://guest:secret@127.0.0.1:9")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["queues"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "error: RabbitMQ management API (127.0.0.1:9)" in result.output
    assert "secret" not in result.output
