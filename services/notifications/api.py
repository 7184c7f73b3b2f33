"""Notifications routes: thin. Validate, call a handler, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.notifications import handlers
from services.notifications.schemas import Notification, NotificationList
from shared.web.auth import scope_to_filter
from shared.web.deps import StorefrontKey, UoW
from shared.web.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.get(
    "",
    response_model=NotificationList,
    responses={400: {"description": "A storefront key without `order_id`, or a bad cursor"}},
)
async def list_notifications(
    request: Request,
    uow: UoW,
    api_key: StorefrontKey,
    order_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> NotificationList:
    """Transactional mails (sent or failed) of one order. A storefront key must give
    `order_id` (400 without it); the unfiltered list needs an admin key."""
    scope_to_filter(request, api_key, "order_id", order_id)
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
