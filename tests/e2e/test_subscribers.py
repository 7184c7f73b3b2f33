"""Subscriber import and unsubscribe over HTTP: normalised, idempotent, validated."""

from __future__ import annotations

import time

from devtools.harness.shop import ADMIN, STOREFRONT
from devtools.harness.stack import db_fetch
from tests.support.campaigns import Campaigns, addresses


async def test_an_import_is_normalised_and_idempotent(campaigns: Campaigns):
    people = addresses("import", 10_000)
    started = time.monotonic()
    first = await campaigns.import_subscribers(people)
    elapsed = time.monotonic() - started
    print(f"\nimported 10,000 subscribers in {elapsed:.2f} s")
    assert first == {"created": 10_000, "existing": 0}

    again = people[:10] + [person.upper() for person in people[10:20]] + ["new-one@example.com"]
    assert await campaigns.import_subscribers(again) == {"created": 1, "existing": 20}
    stored = await db_fetch(
        "notifications",
        "SELECT email FROM subscribers WHERE email = ANY($1::text[])",
        [person.lower() for person in people[:3]],
    )
    assert sorted(row["email"] for row in stored) == [person.lower() for person in people[:3]]


async def test_repeats_in_one_request_count_once_and_keep_the_first_name(campaigns: Campaigns):
    body = {
        "subscribers": [
            {"email": "Twice@Example.com", "name": "First"},
            {"email": "twice@example.COM", "name": "Second"},
        ]
    }
    response = await campaigns.client.post("/v1/subscribers", json=body, headers=ADMIN)
    assert response.json() == {"created": 1, "existing": 1}
    rows = await db_fetch(
        "notifications", "SELECT name FROM subscribers WHERE email = 'twice@example.com'"
    )
    assert [row["name"] for row in rows] == ["First"]


async def test_bad_input_is_a_problem_and_changes_nothing(campaigns: Campaigns):
    client = campaigns.client
    body = {"subscribers": [{"email": "fine@example.com"}, {"email": "not-an-address"}]}
    response = await client.post("/v1/subscribers", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in response.json()["errors"]] == ["body.subscribers.1.email"]
    assert (
        await db_fetch(
            "notifications", "SELECT 1 FROM subscribers WHERE email = 'fine@example.com'"
        )
        == []
    )

    too_many = {"subscribers": [{"email": f"x{i}@example.com"} for i in range(10_001)]}
    assert (await client.post("/v1/subscribers", json=too_many, headers=ADMIN)).status_code == 422
    empty = {"subscribers": []}
    assert (await client.post("/v1/subscribers", json=empty, headers=ADMIN)).status_code == 422
    unknown_field = {"subscribers": [{"email": "a@example.com", "age": 3}]}
    assert (
        await client.post("/v1/subscribers", json=unknown_field, headers=ADMIN)
    ).status_code == 422


async def test_importing_needs_an_admin_key(campaigns: Campaigns):
    body = {"subscribers": [{"email": "a@example.com"}]}
    client = campaigns.client
    assert (await client.post("/v1/subscribers", json=body)).status_code == 401
    assert (await client.post("/v1/subscribers", json=body, headers=STOREFRONT)).status_code == 403


async def test_unsubscribe_is_idempotent_and_survives_a_reimport(campaigns: Campaigns):
    await campaigns.import_subscribers(["Leaver@Example.com"])
    first = await campaigns.unsubscribe("LEAVER@example.com")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "unsubscribed"
    again = await campaigns.unsubscribe("leaver@example.com")
    assert again.json() == first.json()

    assert await campaigns.import_subscribers(["leaver@example.com"]) == {
        "created": 0,
        "existing": 1,
    }
    rows = await db_fetch(
        "notifications", "SELECT status FROM subscribers WHERE email = 'leaver@example.com'"
    )
    assert rows[0]["status"] == "unsubscribed"

    assert (await campaigns.unsubscribe("nobody-here@example.com")).status_code == 404
    assert (await campaigns.unsubscribe("not-an-address")).status_code == 422
