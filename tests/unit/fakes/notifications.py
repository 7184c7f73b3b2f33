"""The notifications repositories in memory, and an SMTP server that answers as told."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

from services.notifications.domain import ACTIVE, CampaignStatus
from services.notifications.mailer import (
    BulkSession,
    MailDeliveryError,
    Mailer,
    MailResult,
    OutcomeUnknown,
    RecipientRefused,
)
from services.notifications.repository.campaigns import CampaignRepository
from services.notifications.repository.deliveries import Batch, DeliveryRepository, Row
from services.notifications.repository.lists import ListRepository
from services.notifications.repository.mail import OrderMailRepository
from services.notifications.repository.subscribers import SubscriberRepository
from services.notifications.signing import DkimSigner
from shared.messages.notifications import SendCampaignBatch
from shared.messages.orders import SendOrderMail
from tests.unit.fakes.uow import FakeUnitOfWork


def _now() -> datetime:
    return datetime.now(UTC)


class FakeMail(OrderMailRepository):
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.outage = 0  # how many of the next writes fail as a database restart would

    def _write(self) -> None:
        if self.outage:
            self.outage -= 1
            raise ConnectionRefusedError("the database is restarting")

    async def claim_first(self, mail: SendOrderMail) -> bool:
        self._write()
        if (mail.order_id, mail.kind) in self.rows:
            return False
        self.rows[(mail.order_id, mail.kind)] = {
            "id": f"ntf_{len(self.rows) + 1}",
            "order_id": mail.order_id,
            "kind": mail.kind,
            "to": mail.to,
            "status": "sending",
            "attempts": 1,
            "claimed_at": _now(),
            "sent_at": None,
            "last_error": None,
        }
        return True

    async def locked(self, mail: SendOrderMail) -> Row:
        row = self.rows[(mail.order_id, mail.kind)]
        return {**row, "age": _now() - row["claimed_at"]}

    async def claim_again(self, row_id: str) -> None:
        row = next(row for row in self.rows.values() if row["id"] == row_id)
        row.update(status="sending", claimed_at=_now(), attempts=row["attempts"] + 1)

    async def record_alone(self, mail: SendOrderMail, status: str, last_error=None) -> None:
        self._write()
        row = self.rows[(mail.order_id, mail.kind)]
        row.update(status=status, last_error=last_error)
        if status == "sent":
            row["sent_at"] = _now()

    async def known_outcomes(self, order_id, after, limit) -> list[Row]:
        rows = sorted(self.rows.values(), key=lambda row: row["id"])
        return [
            dict(row)
            for row in rows
            if row["status"] in ("sent", "failed")
            and (order_id is None or row["order_id"] == order_id)
            and (after is None or row["id"] > after)
        ][:limit]


class FakeLists(ListRepository):
    def __init__(self, people: dict[int, dict[str, Any]]) -> None:
        self.people = people
        self.rows: dict[str, dict[str, Any]] = {}
        self.members: dict[tuple[str, int], datetime] = {}  # (list id, subscriber id): added

    async def add(self, list_id: str, name: str) -> Row | None:
        if await self.named(name) is not None:
            return None
        self.rows[list_id] = {"id": list_id, "name": name, "created_at": _now()}
        return dict(self.rows[list_id])

    async def get(self, list_id: str) -> Row | None:
        row = self.rows.get(list_id)
        return dict(row) if row else None

    async def named(self, name: str) -> Row | None:
        return next((dict(row) for row in self.rows.values() if row["name"] == name), None)

    async def page(self, after: str | None, limit: int) -> list[Row]:
        ids = sorted(i for i in self.rows if after is None or i > after)
        return [dict(self.rows[i]) for i in ids[:limit]]

    async def counts(self, list_id: str) -> tuple[int, int]:
        ids = [s for lid, s in self.members if lid == list_id]
        return len(ids), sum(self.people[i]["status"] == "subscribed" for i in ids)

    async def add_members(self, list_id: str, emails) -> int:
        wanted = set(emails)
        ids = {i for i, person in self.people.items() if person["email"] in wanted}
        new = {(list_id, i) for i in ids} - self.members.keys()
        self.members.update(dict.fromkeys(new, _now()))
        return len(new)


class FakeCampaigns(CampaignRepository):
    def __init__(self, subscribers: dict[int, dict[str, Any]], lists: FakeLists) -> None:
        self.subscribers = subscribers
        self.lists = lists
        self.rows: dict[str, dict[str, Any]] = {}
        self.batches: dict[tuple[str, int], dict[str, Any]] = {}

    async def add(self, campaign_id: str, **values: Any) -> None:
        counters = {"sent": 0, "failed": 0, "skipped": 0, "bounced": 0, "complained": 0}
        self.rows[campaign_id] = {
            "id": campaign_id,
            **counters,
            "started_at": None,
            "completed_at": None,
            **values,
        }

    async def snapshot_audience(
        self, campaign_id: str, batch_size: int, list_id: str | None = None
    ) -> dict[int, int]:
        ids = sorted(
            i
            for i, s in self.subscribers.items()
            if s["status"] == "subscribed"
            and (list_id is None or (list_id, i) in self.lists.members)
        )
        slices = [ids[start : start + batch_size] for start in range(0, len(ids), batch_size)]
        for batch_no, subscriber_ids in enumerate(slices):
            self.batches[(campaign_id, batch_no)] = {
                "subscriber_ids": subscriber_ids,
                "status": "pending",
            }
        return {batch_no: len(part) for batch_no, part in enumerate(slices)}

    async def get(self, campaign_id: str, lock: bool = False) -> Row | None:
        row = self.rows.get(campaign_id)
        return dict(row) if row else None

    async def update(self, campaign_id: str, values: dict[str, Any], completes: bool = False):
        self.rows[campaign_id].update(values)
        if completes:
            self.rows[campaign_id]["completed_at"] = _now()
        return dict(self.rows[campaign_id])

    async def count_complaint(self, campaign_id: str) -> None:
        self.rows[campaign_id]["complained"] += 1

    async def pending_batches(self, campaign_id: str) -> list[int]:
        return sorted(
            no
            for (cid, no), b in self.batches.items()
            if cid == campaign_id and b["status"] == "pending"
        )


class FakeDeliveries(DeliveryRepository):
    def __init__(self, campaigns: FakeCampaigns) -> None:
        self.campaigns = campaigns
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}

    async def batch(self, command: SendCampaignBatch) -> Row | None:
        part = self.campaigns.batches.get((command.campaign_id, command.batch))
        if part is None:
            return None
        campaign = self.campaigns.rows[command.campaign_id]
        return {
            "status": campaign["status"],
            "subject": campaign["subject"],
            "body": campaign["body"],
            "batch_status": part["status"],
            "size": len(part["subscriber_ids"]),
        }

    def _audience(self, batch: Batch, positions: tuple[int, int] | None) -> list[int]:
        ids = self.campaigns.batches[(batch.campaign_id, batch.batch_no)]["subscriber_ids"]
        return ids if positions is None else ids[positions[0] - 1 : positions[1]]

    def _insert(self, batch: Batch, ids: list[int], claimed_as: str, error=None) -> list[Row]:
        claimed = []
        for subscriber_id in ids:
            if (batch.campaign_id, subscriber_id) in self.rows:
                continue
            person = self.campaigns.subscribers[subscriber_id]
            subscribed = person["status"] == "subscribed"
            row = {
                "subscriber_id": subscriber_id,
                "email": person["email"],
                "batch_no": batch.batch_no,
                "status": claimed_as if subscribed else "skipped",
                "error": error if subscribed else None,
                "claimed_at": _now(),
            }
            self.rows[(batch.campaign_id, subscriber_id)] = row
            claimed.append(dict(row))
        return claimed

    async def claim(self, batch: Batch, positions: tuple[int, int]) -> list[Row]:
        if not await self.is_active(batch.campaign_id):
            return []
        return self._insert(batch, self._audience(batch, positions), "sending")

    async def claim_rest_failed(self, batch: Batch, error: str) -> list[Row]:
        return self._insert(batch, self._audience(batch, None), "failed", error)

    async def is_active(self, campaign_id: str) -> bool:
        return self.campaigns.rows[campaign_id]["status"] in ACTIVE

    def _claims(self, campaign_id: str, subscriber_ids: Sequence[int]) -> list[dict[str, Any]]:
        rows = (self.rows.get((campaign_id, i)) for i in subscriber_ids)
        return [row for row in rows if row is not None and row["status"] == "sending"]

    async def finish(self, campaign_id, subscriber_ids, values) -> int:
        claims = self._claims(campaign_id, subscriber_ids)
        for row in claims:
            row.update(values)
        return len(claims)

    async def finish_each(self, campaign_id, status, errors) -> int:
        claims = self._claims(campaign_id, list(errors))
        for row in claims:
            row.update(status=status, error=errors[row["subscriber_id"]][:500])
        return len(claims)

    async def complaint(self, campaign_id: str, subscriber_id: int) -> bool:
        row = self.rows.get((campaign_id, subscriber_id))
        if row is None or row["status"] != "sent" or row.get("complained_at"):
            return False
        row["complained_at"] = _now()
        return True

    async def release(self, campaign_id: str, subscriber_ids: Sequence[int]) -> None:
        for row in self._claims(campaign_id, subscriber_ids):
            del self.rows[(campaign_id, row["subscriber_id"])]

    async def count(
        self, campaign_id, sent=0, failed=0, skipped=0, starting=False, bounced=0
    ) -> None:
        moved = sent + failed + skipped
        row = self.campaigns.rows[campaign_id]
        if not moved and (not starting or row["status"] != CampaignStatus.QUEUED):
            return
        done = row["sent"] + row["failed"] + row["skipped"] + moved >= row["total"]
        if row["status"] in ACTIVE and done:
            row.update(status=CampaignStatus.COMPLETED, completed_at=_now())
        elif row["status"] == CampaignStatus.QUEUED:
            row["status"] = CampaignStatus.SENDING
        row.update(sent=row["sent"] + sent, failed=row["failed"] + failed)
        row.update(skipped=row["skipped"] + skipped, started_at=row["started_at"] or _now())
        row["bounced"] += bounced

    def _of_batch(self, batch: Batch) -> list[dict[str, Any]]:
        return [
            row
            for (campaign_id, _), row in self.rows.items()
            if campaign_id == batch.campaign_id and row["batch_no"] == batch.batch_no
        ]

    async def fail_lost_claims(self, batch: Batch, lease_seconds: float) -> int:
        cutoff = _now() - timedelta(seconds=lease_seconds)
        lost = [
            r
            for r in self._of_batch(batch)
            if r["status"] == "sending" and r["claimed_at"] < cutoff
        ]
        for row in lost:
            row.update(status="failed", error="outcome unknown: the sending process was lost")
        return len(lost)

    async def claims_of(self, batch: Batch) -> tuple[int, int]:
        rows = self._of_batch(batch)
        return len(rows), sum(row["status"] == "sending" for row in rows)

    async def mark_done(self, batch: Batch) -> None:
        self.campaigns.batches[(batch.campaign_id, batch.batch_no)]["status"] = "done"


class FakeSubscribers(SubscriberRepository):
    def __init__(self, people: dict[int, dict[str, Any]]) -> None:
        self.people = people

    async def add_new(self, people: Mapping[str, str | None]) -> int:
        known = {person["email"] for person in self.people.values()}
        new = [email for email in people if email not in known]
        for email in new:
            self.people[len(self.people) + 1] = new_person(email, people[email])
        return len(new)

    def _by_email(self, email: str) -> tuple[int, dict[str, Any]] | None:
        return next(((i, p) for i, p in self.people.items() if p["email"] == email), None)

    async def unsubscribe(self, email: str) -> Row | None:
        found = self._by_email(email)
        if found is None:
            return None
        person = found[1]
        if person["status"] == "subscribed":
            person.update(status="unsubscribed", unsubscribed_at=_now())
        return {key: person[key] for key in _SUBSCRIPTION}

    async def bounce(self, reasons: Mapping[int, str]) -> int:
        bounced = [i for i in reasons if self.people[i]["status"] == "subscribed"]
        for subscriber_id in bounced:
            self.people[subscriber_id].update(
                status="bounced", suppressed_at=_now(), suppression=reasons[subscriber_id]
            )
        return len(bounced)

    async def complain(self, email: str, reason: str) -> Row | None:
        found = self._by_email(email)
        if found is None:
            return None
        subscriber_id, person = found
        if person["status"] != "complained":
            person.update(status="complained", suppressed_at=_now(), suppression=reason)
        return {"id": subscriber_id, **{key: person[key] for key in _SUBSCRIPTION}}

    async def locked(self, subscriber_id: int) -> Row | None:
        person = self.people.get(subscriber_id)
        return None if person is None else {k: person[k] for k in _SUBSCRIPTION}

    async def unsubscribe_id(self, subscriber_id: int) -> Row:
        person = self.people[subscriber_id]
        person.update(status="unsubscribed", unsubscribed_at=_now())
        return {k: person[k] for k in _SUBSCRIPTION}


_SUBSCRIPTION = ("email", "status", "unsubscribed_at", "suppressed_at", "suppression")


def new_person(email: str, name: str | None = None) -> dict[str, Any]:
    return {
        "email": email,
        "name": name,
        "status": "subscribed",
        "unsubscribed_at": None,
        "suppressed_at": None,
        "suppression": None,
    }


class FakeNotificationsWork(FakeUnitOfWork):
    def __init__(self) -> None:
        self.people: dict[int, dict[str, Any]] = {}  # the subscribers' rows, by id
        self.mail = FakeMail()
        self.lists = FakeLists(self.people)
        self.campaigns = FakeCampaigns(self.people, self.lists)
        self.deliveries = FakeDeliveries(self.campaigns)
        self.subscribers = FakeSubscribers(self.people)
        super().__init__(
            self.people,
            self.mail.rows,
            self.campaigns.rows,
            self.campaigns.batches,
            self.deliveries.rows,
            self.lists.rows,
            self.lists.members,
        )

    def subscribe(self, *emails: str) -> None:
        for email in emails:
            self.people[len(self.people) + 1] = new_person(email)


class FakeSmtp(BulkSession):
    """One connection to a fake server, answering per address: 'ok' (the default), 'refused'
    (5xx to RCPT), 'rejected' (5xx to the content), 'sender' (5xx to MAIL), 'blocked' (a 5.7.x
    policy refusal to RCPT; neither of the last two is the address's fault), 'down' (the
    connection fails before this mail) or 'lost' (lost during DATA)."""

    def __init__(self, server: FakeSmtpServer):
        self.server = server
        self.delivered: list[str] = []  # by this connection

    async def __aenter__(self) -> FakeSmtp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send_all(self, mails: Sequence[tuple[str, bytes]]) -> list[MailResult]:
        results: list[MailResult] = []
        for to, message in mails:
            answer = self.server.answers.get(to, "ok")
            if answer in _REFUSALS:
                results.append(RecipientRefused(*_REFUSALS[answer]))
                continue
            if answer == "down":
                return [*results, MailDeliveryError("connection refused")]
            if answer == "lost":
                return [*results, OutcomeUnknown("connection lost during DATA")]
            self.server.delivered.append(to)
            self.server.raw.append(message)
            self.delivered.append(to)
            results.append(None)
        return results


_REFUSALS = {
    "refused": ("550 5.1.1 no such user", "RCPT"),
    "rejected": ("550 5.1.1 no such user (checked after DATA)", "DATA"),
    "sender": ("553 5.1.8 sender refused", "MAIL"),
    "blocked": ("554 5.7.1 relay access denied", "RCPT"),
}


class FakeSmtpServer(Mailer):
    """A mailer whose server keeps what it accepted: `delivered` (the addresses), `raw` (each
    mail's bytes as they went out) and `sent` (those parsed). Only the connection is fake:
    order mail goes through `Mailer.send` (DKIM signing with `signer`, the kept connection)."""

    def __init__(self, answers: dict[str, str] | None = None, signer: DkimSigner | None = None):
        super().__init__("smtp.test", 25, "Shop <news@shop.test>", signer=signer)
        self.answers = answers or {}
        self.delivered: list[str] = []
        self.raw: list[bytes] = []

    def session(self) -> BulkSession:
        return FakeSmtp(self)

    @property
    def sent(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, _class=EmailMessage, policy=default) for raw in self.raw]
