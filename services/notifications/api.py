"""Notifications routes: thin. Validate, call a handler, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.notifications import handlers
from services.notifications.schemas import Notification, NotificationList
from shared.web.deps import StorefrontKey, UoW
from shared.web.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.get("", response_model=NotificationList)
async def list_notifications(
    uow: UoW,
    _: StorefrontKey,
    order_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> NotificationList:
    """Transactional mails (sent or failed), optionally of one order."""
    position = decode_cursor(cursor, 1)
    rows = await handlers.list_notifications(
        uow, order_id, position[0] if position else None, limit + 1
    )
    next_cursor = encode_cursor([rows[limit - 1]["id"]]) if len(rows) > limit else None
    items = [
        Notification(
            id=row["id"],
            order_id=row["order_id"],
            kind=row["kind"],
            to=row["to"],
            status=row["status"],
            sent_at=row["sent_at"],
        )
        for row in rows[:limit]
    ]
    return NotificationList(items=items, next_cursor=next_cursor)
