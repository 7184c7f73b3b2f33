"""The Locust side of a surge run: its command-line options, the files it writes into the run
folder, and the two timed events of the run (user-count samples, the mid-run campaign).

Imported by the locustfile only (gevent)."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from bench.surge import journal
from bench.surge.profile import Profile
from bench.surge.shape import profile_of

DEFAULT_URLS = {
    "orders": "http://127.0.0.1:8001",
    "inventory": "http://127.0.0.1:8002",
    "notifications": "http://127.0.0.1:8003",
}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    # On the parser itself: only Locust's add_argument knows `is_secret` (the web UI form).
    for service, url in DEFAULT_URLS.items():
        parser.add_argument(f"--{service}-url", default=url, help=f"the {service} API")
    parser.add_argument("--storefront-key", env_var="STOREFRONT_KEY", default="dev-storefront")
    parser.add_argument("--admin-key", env_var="ADMIN_KEY", default="dev-admin", is_secret=True)
    parser.add_argument("--surge-profile", default="step", help="step | flat | 30s:10,60s:100")
    parser.add_argument("--surge-users", type=int, default=100, help="peak users")
    parser.add_argument("--surge-duration", type=float, default=100.0, help="seconds")
    parser.add_argument("--surge-spawn-rate", type=float, default=None)
    parser.add_argument("--run-dir", default="var/surge/adhoc", help="where the run's files go")
    parser.add_argument("--run-id", default="adhoc", help="names customers and mail subjects")
    parser.add_argument("--skus", default="", help="catalog skus, comma-separated")
    parser.add_argument("--flash-sku", default="", help="the flash-sale sku (small stock)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="order-status polls, s")
    parser.add_argument("--follow-timeout", type=float, default=60.0, help="give up following, s")


class Run:
    """What every simulated user of this process shares: options, timeline, output files."""

    def __init__(self) -> None:
        self.options: Any = None
        self.profile: Profile | None = None
        self.started = 0.0
        self.recent_orders: deque[str] = deque(maxlen=500)
        self.requests: journal.CsvAppender | None = None
        self.accepted: journal.CsvAppender | None = None
        self.seen_final: journal.CsvAppender | None = None
        self._greenlets: list[gevent.Greenlet] = []

    @property
    def flash_open(self) -> bool:
        """The flash sale opens with the surge (before it, its page is only refreshed)."""
        assert self.profile is not None
        return time.time() - self.started >= self.profile.surge_starts_at

    def start(self, environment: Environment) -> None:
        self.options = environment.parsed_options
        self.profile = profile_of(self.options)
        self.started = time.time()
        folder = Path(self.options.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.requests = journal.CsvAppender(folder / journal.REQUESTS, journal.REQUEST_COLUMNS)
        self.accepted = journal.CsvAppender(folder / journal.ACCEPTED, journal.ACCEPTED_COLUMNS)
        self.seen_final = journal.CsvAppender(folder / journal.SEEN_FINAL, journal.ORDER_COLUMNS)
        self._greenlets = [
            gevent.spawn(sample_users, environment, folder),
            gevent.spawn_later(self.profile.midpoint, launch_campaign, environment, folder),
        ]

    def stop(self) -> None:
        gevent.killall(self._greenlets)
        self._greenlets = []
        for appender in (self.requests, self.accepted, self.seen_final):
            if appender is not None:
                appender.close()
        self.requests = self.accepted = self.seen_final = None

    def order_accepted(self, order_id: str, kind: str) -> None:
        self.recent_orders.append(order_id)
        if self.accepted is not None:
            self.accepted.row(order_id, kind, f"{time.time():.3f}")

    def order_final(self, row: dict[str, Any]) -> None:
        if self.seen_final is not None:
            self.seen_final.dict_row(row)


RUN = Run()


@events.test_start.add_listener
def _test_start(environment: Environment, **_: Any) -> None:
    RUN.start(environment)


@events.test_stop.add_listener
def _test_stop(environment: Environment, **_: Any) -> None:
    RUN.stop()


@events.request.add_listener
def _request(
    request_type: str,
    name: str,
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    """Every request and custom event, one CSV line: the report's raw material."""
    if RUN.requests is None:
        return
    code = getattr(response, "status_code", "") if response is not None else ""
    RUN.requests.row(
        f"{time.time():.3f}", request_type, name, round(response_time, 1), code, _short(exception)
    )


def _short(exception: BaseException | None) -> str:
    if exception is None:
        return ""
    text = str(exception).strip()
    return text.splitlines()[0][:120] if text else type(exception).__name__


def sample_users(environment: Environment, folder: Path) -> None:
    users = journal.CsvAppender(folder / journal.USERS, journal.USER_COLUMNS)
    try:
        while True:
            count = environment.runner.user_count if environment.runner else 0
            users.row(f"{time.time():.3f}", count)
            gevent.sleep(1.0)
    finally:
        users.close()


def launch_campaign(environment: Environment, folder: Path) -> None:
    """The marketing campaign goes out once, in the middle of the run. Until the campaign routes
    exist on the target (404/405), the run records that instead of failing."""
    options = environment.parsed_options
    session = FastHttpSession(options.notifications_url, environment.events.request, user=None)
    body = {
        "subject": f"Doorbuster: the deals are live ({options.run_id})",
        "body": "Everything must go. Only while stocks last.",
    }
    headers = {"Authorization": f"Bearer {options.admin_key}"}
    outcome: dict[str, Any] = {"launched_at": time.time()}
    with session.post(
        "/v1/campaigns", json=body, headers=headers, name="POST /v1/campaigns", catch_response=True
    ) as response:
        outcome["http"] = response.status_code
        if response.status_code in (404, 405):
            response.success()
            outcome["note"] = f"campaigns not available (HTTP {response.status_code})"
        elif response.status_code == 202:
            outcome.update(response.json())
        else:
            outcome["note"] = f"campaign refused: HTTP {response.status_code} {response.text[:200]}"
    journal.write_json(folder / journal.CAMPAIGN, outcome)
