"""List routes (admin): create a named audience, read it back. Thin, like campaign_api.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from services.notifications import lists
from services.notifications.schemas import (
    ListIn,
    SubscriberList,
    SubscriberListCounts,
    SubscriberListPage,
)
from shared.web.deps import AdminKey, UoW
from shared.web.pagination import decode_cursor, encode_cursor
from shared.web.problems import Problem

list_router = APIRouter(prefix="/v1/lists", tags=["lists"])
ListId = Annotated[str, Path(max_length=40)]


def list_not_found(list_id: str) -> Problem:
    return Problem(404, "list-not-found", f"No list with id {list_id!r}.")


@list_router.post(
    "",
    status_code=201,
    response_model=SubscriberListCounts,
    responses={409: {"description": "Another list has this name (`list_id` says which)"}},
)
async def create_list(
    body: ListIn, uow: UoW, response: Response, _: AdminKey
) -> SubscriberListCounts:
    """A new, empty list (201, `Location`). Fill it with `POST /v1/subscribers` and its
    `list_id`; aim a campaign at it with `POST /v1/campaigns` and its `list_id`. Names are
    unique: a second list of the same name is 409 `list-name-taken`, naming the first."""
    try:
        row = await lists.create_list(uow, body.name)
    except lists.ListNameTaken as exc:
        raise Problem(
            409,
            "list-name-taken",
            f"A list named {body.name!r} exists.",
            list_id=exc.existing["id"],
        ) from exc
    response.headers["Location"] = f"/v1/lists/{row['id']}"
    return SubscriberListCounts(**row)


@list_router.get("", response_model=SubscriberListPage)
async def list_lists(
    uow: UoW,
    _: AdminKey,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> SubscriberListPage:
    """Every list, by id."""
    position = decode_cursor(cursor, 1)
    rows = await lists.list_lists(uow, position[0] if position else None, limit + 1)
    next_cursor = encode_cursor([rows[limit - 1]["id"]]) if len(rows) > limit else None
    return SubscriberListPage(
        items=[SubscriberList(**row) for row in rows[:limit]], next_cursor=next_cursor
    )


@list_router.get("/{list_id}", response_model=SubscriberListCounts)
async def get_list(list_id: ListId, uow: UoW, _: AdminKey) -> SubscriberListCounts:
    """The list, with how many members it has and how many a campaign would mail now."""
    try:
        row = await lists.get_list(uow, list_id)
    except lists.ListNotFound as exc:
        raise list_not_found(list_id) from exc
    return SubscriberListCounts(**row)
