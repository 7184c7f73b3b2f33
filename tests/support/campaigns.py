"""An admin's view of subscribers and campaigns on the running stack, and what the SMTP sink
received for a campaign."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from devtools.harness.shop import ADMIN, STOREFRONT
from devtools.harness.stack import Stack, db_fetch

IMPORT_LIMIT = 10_000
KEY_HEADER = b"\nX-Doorbuster-Key: "
# Where the key header is found: after the DKIM signature (up to ~600 bytes with RSA-2048) and
# the List-Unsubscribe links.
HEAD_BYTES = 4096


class Campaigns:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def import_subscribers(
        self, emails: list[str], list_id: str | None = None
    ) -> dict[str, int]:
        totals = {"created": 0, "existing": 0}
        for start in range(0, len(emails), IMPORT_LIMIT):
            body: dict[str, Any] = {
                "subscribers": [{"email": e} for e in emails[start : start + IMPORT_LIMIT]]
            }
            if list_id is not None:
                body["list_id"] = list_id
                totals.setdefault("listed", 0)
            response = await self.client.post("/v1/subscribers", json=body, headers=ADMIN)
            assert response.status_code == 200, response.text
            for key, value in response.json().items():
                totals[key] += value
        return totals

    async def unsubscribe(self, email: str) -> httpx.Response:
        return await self.client.post(f"/v1/subscribers/{email}/unsubscribe", headers=STOREFRONT)

    async def complain(self, email: str, campaign_id: str | None = None) -> httpx.Response:
        body = {} if campaign_id is None else {"campaign_id": campaign_id}
        return await self.client.post(
            f"/v1/subscribers/{email}/complaint", json=body, headers=ADMIN
        )

    async def create(
        self, subject: str = "Doorbuster deals", body: str = "50% off!", list_id: str | None = None
    ) -> dict:
        payload = {"subject": subject, "body": body}
        if list_id is not None:
            payload["list_id"] = list_id
        response = await self.client.post("/v1/campaigns", json=payload, headers=ADMIN)
        assert response.status_code == 202, response.text
        return response.json()

    async def create_list(self, name: str) -> dict[str, Any]:
        response = await self.client.post("/v1/lists", json={"name": name}, headers=ADMIN)
        assert response.status_code == 201, response.text
        return response.json()

    async def get(self, campaign_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/campaigns/{campaign_id}", headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()

    async def act(self, campaign_id: str, action: str) -> httpx.Response:
        return await self.client.post(f"/v1/campaigns/{campaign_id}/{action}", headers=ADMIN)

    async def wait_status(
        self, campaign_id: str, statuses: Iterable[str], timeout: float = 60
    ) -> dict[str, Any]:
        wanted, deadline = set(statuses), time.monotonic() + timeout
        while True:
            campaign = await self.get(campaign_id)
            if campaign["status"] in wanted:
                return campaign
            if time.monotonic() > deadline:
                raise AssertionError(f"campaign still {campaign} after {timeout}s")
            await asyncio.sleep(0.2)

    async def wait_sent(self, campaign_id: str, at_least: int, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            campaign = await self.get(campaign_id)
            if campaign["sent"] >= at_least:
                return campaign
            if time.monotonic() > deadline:
                raise AssertionError(f"campaign only {campaign} after {timeout}s")
            await asyncio.sleep(0.05)


async def empty_audience() -> None:
    """A campaign naming no list goes to every subscriber, so each campaign test starts
    from nobody subscribed. Test plumbing only: it writes the test database directly."""
    await db_fetch("notifications", "UPDATE subscribers SET status = 'unsubscribed'")


def campaign_mail(maildir: Path, campaign_id: str) -> Counter[str]:
    """How many mails the sink holds per address for one campaign (`X-Doorbuster-Key`
    `<campaign>:<email>`). Reads raw header bytes: the Maildir holds tens of thousands of
    mails by then and parsing each with `email` (count_by_header) takes seconds."""
    prefix = KEY_HEADER + campaign_id.encode() + b":"
    counts: Counter[str] = Counter()
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            head = entry.read_bytes()[:HEAD_BYTES]
            at = head.find(prefix)
            if at >= 0:
                end = head.index(b"\n", at + len(prefix))
                counts[head[at + len(prefix) : end].decode()] += 1
    return counts


def campaign_message(maildir: Path, campaign_id: str, email: str) -> bytes | None:
    """The raw mail the sink holds for one campaign and address, if any."""
    return message_with_key(maildir, f"{campaign_id}:{email}")


def message_with_key(maildir: Path, key: str) -> bytes | None:
    """The raw mail whose `X-Doorbuster-Key` is `key` (order mail: `<order>:<kind>`)."""
    wanted = KEY_HEADER + key.encode() + b"\n"
    for sub in ("new", "cur"):
        folder = maildir / sub
        for entry in folder.iterdir() if folder.is_dir() else ():
            raw = entry.read_bytes()
            if wanted in raw[:HEAD_BYTES].replace(b"\r\n", b"\n"):
                return raw
    return None


@contextlib.contextmanager
def smtp_down(stack: Stack) -> Iterator[None]:
    """Stop the SMTP sink; whatever happens in the block, it is running again afterwards."""
    stack.stop("smtp")
    try:
        yield
    finally:
        stack.start("smtp")
        stack.wait_healthy()


def addresses(prefix: str, count: int) -> list[str]:
    """`count` distinct addresses, as an import would send them (mixed-case domain)."""
    return [f"{prefix}{index:06d}@Example.COM" for index in range(count)]
