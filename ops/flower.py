"""`make flower`: Flower on 127.0.0.1 behind basic auth, its broker tab on this project's vhost.

`python -m ops.flower [--port 5555]` runs `celery -A ops.flower flower` with the management
API (`RABBITMQ_MANAGEMENT_URL`). Credentials come from `FLOWER_BASIC_AUTH` (`user:password`,
Flower's own variable); without it a password is generated for this run and printed once, so
Flower is never open to whoever can reach the port.

Flower 2.2.0 asks the management API for `queues/` + the vhost, and for the default vhost `/`
that is `queues//`, which `urljoin` collapses to `queues/`: every vhost's queues, so a machine
that also runs the test stacks showed each queue several times. The vhost is quoted (`%2F`)
here, as the management API expects it.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from urllib.parse import quote

from celery.bin.celery import main as celery_main
from flower.utils import broker

from shared.infra.settings import get_settings
from workers.app import flower_app

app = flower_app()


class ProjectVhostRabbitMQ(broker.RabbitMQ):
    def __init__(self, broker_url: str, http_api: str | None, **kwargs: object) -> None:
        super().__init__(broker_url, http_api, **kwargs)
        self.vhost = quote(broker.unquote(self.vhost), safe="")


def credentials(configured: str | None) -> tuple[str, bool]:
    """`user:password` from the environment, or a fresh one (and True: it was generated)."""
    if configured:
        return configured, False
    return f"doorbuster:{secrets.token_urlsafe(12)}", True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5555)
    args = parser.parse_args(argv)
    settings = get_settings()
    auth, generated = credentials(settings.flower_basic_auth)
    user, _, password = auth.partition(":")
    if not (user and password):
        sys.exit("FLOWER_BASIC_AUTH must be user:password")
    if generated:
        print(f"Flower: user {user!r}, password {password!r} (set FLOWER_BASIC_AUTH to choose)")
    print(f"Flower on http://127.0.0.1:{args.port}", flush=True)
    broker.RabbitMQ = ProjectVhostRabbitMQ
    sys.argv = [
        "celery",
        "-A",
        "ops.flower",
        "flower",
        "--address=127.0.0.1",
        f"--port={args.port}",
        f"--broker_api={settings.rabbitmq_management_url.rstrip('/')}/api/",
        f"--basic_auth={auth}",
    ]
    celery_main()


if __name__ == "__main__":
    main()
