"""The order mail records: one row per (order, kind), claimed before SMTP, `sent` after."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update

from services.notifications.db import notifications
from shared.messages.orders import SendOrderMail
from shared.messaging.uow import UnitOfWork

Row = Mapping[str, Any]


class OrderMailRepository:
    def __init__(self, uow: UnitOfWork):
        self._uow = uow

    async def claim_first(self, mail: SendOrderMail) -> bool:
        """Insert the mail's row as `sending`, committed alone (one round trip, prepared
        asyncpg); False when a row exists (a repeat, decided under `locked`)."""
        created = await self._uow.fetch_alone(
            'INSERT INTO notifications (id, order_id, kind, "to", status, attempts, claimed_at)'
            " VALUES ($1, $2, $3, $4, 'sending', 1, now())"
            " ON CONFLICT DO NOTHING RETURNING id",
            f"ntf_{uuid.uuid4().hex}",
            mail.order_id,
            mail.kind,
            mail.to,
        )
        return bool(created)

    async def locked(self, mail: SendOrderMail) -> Row:
        """The mail's row, locked, with the `age` of its claim."""
        query = (
            select(notifications, (func.now() - notifications.c.claimed_at).label("age"))
            .where(notifications.c.order_id == mail.order_id, notifications.c.kind == mail.kind)
            .with_for_update()
        )
        return (await self._uow.session.execute(query)).mappings().one()

    async def claim_again(self, row_id: str) -> None:
        await self._uow.session.execute(
            update(notifications)
            .where(notifications.c.id == row_id)
            .values(status="sending", claimed_at=func.now(), attempts=notifications.c.attempts + 1)
        )

    async def record_alone(
        self, mail: SendOrderMail, status: str, last_error: str | None = None
    ) -> None:
        """Set the mail's status (`sent`: and when), committed alone."""
        await self._uow.fetch_alone(
            "UPDATE notifications SET status = $3::text, last_error = $4,"
            " sent_at = CASE WHEN $3::text = 'sent' THEN now() ELSE sent_at END"
            " WHERE order_id = $1 AND kind = $2",
            mail.order_id,
            mail.kind,
            status,
            last_error,
        )

    async def known_outcomes(
        self, order_id: str | None, after: str | None, limit: int
    ) -> list[Row]:
        """Mails whose outcome is known (`sent` or `failed`), by id."""
        query = (
            select(notifications)
            .where(notifications.c.status.in_(("sent", "failed")))
            .order_by(notifications.c.id)
            .limit(limit)
        )
        if order_id is not None:
            query = query.where(notifications.c.order_id == order_id)
        if after is not None:
            query = query.where(notifications.c.id > after)
        return list((await self._uow.session.execute(query)).mappings())
