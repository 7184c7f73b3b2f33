"""Audiences on the running stack (issue 19 item 4): `POST /v1/lists`, an import into a list, a
campaign to one list reaching its subscribed members and nobody else, each address once when it
is in several lists; a campaign naming no list still goes to everyone."""

from __future__ import annotations

import uuid

import pytest

from devtools.harness.shop import ADMIN, STOREFRONT
from devtools.harness.stack import Stack
from tests.support.campaigns import Campaigns, addresses, campaign_mail

pytestmark = pytest.mark.usefixtures("no_subscribers")


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"  # list names are unique across the session


async def test_a_campaign_to_a_list_reaches_its_members_once_each(
    stack: Stack, campaigns: Campaigns
):
    tv = await campaigns.create_list(unique("TV buyers"))
    vip = await campaigns.create_list(unique("VIP"))
    assert (tv["members"], tv["subscribed"]) == (0, 0) and tv["id"].startswith("lst_")
    tv_people = [p.lower() for p in addresses("tv", 700)]
    vip_people = [p.lower() for p in addresses("vip", 400)]
    both = tv_people[:300]  # in both lists
    outsiders = [p.lower() for p in addresses("nolist", 50)]
    assert await campaigns.import_subscribers(tv_people, tv["id"]) == {
        "created": 700,
        "existing": 0,
        "listed": 700,
    }
    assert await campaigns.import_subscribers(vip_people + both, vip["id"]) == {
        "created": 400,
        "existing": 300,
        "listed": 700,
    }
    await campaigns.import_subscribers(outsiders)
    gone = vip_people[0]
    assert (await campaigns.unsubscribe(gone)).status_code == 200

    counted = await campaigns.client.get(f"/v1/lists/{vip['id']}", headers=ADMIN)
    assert (counted.json()["members"], counted.json()["subscribed"]) == (700, 699)

    accepted = await campaigns.create(subject="VIP night", list_id=vip["id"])
    assert (accepted["total"], accepted["list_id"]) == (699, vip["id"])
    done = await campaigns.wait_status(accepted["id"], {"completed"}, timeout=120)
    assert (done["sent"], done["failed"], done["skipped"], done["list_id"]) == (
        699,
        0,
        0,
        vip["id"],
    )
    mail = campaign_mail(stack.maildir, accepted["id"])
    assert set(mail) == set(vip_people[1:]) | set(both) and set(mail.values()) == {1}

    # Named in neither list, and in two lists at once, is all the same to a list-less campaign.
    everyone = await campaigns.create(subject="Everyone")
    assert (everyone["total"], everyone["list_id"]) == (700 + 400 - 1 + 50, None)
    done = await campaigns.wait_status(everyone["id"], {"completed"}, timeout=120)
    mail = campaign_mail(stack.maildir, everyone["id"])
    assert len(mail) == 1_149 and set(mail.values()) == {1}


async def test_list_routes_check_keys_input_and_ids(campaigns: Campaigns):
    client = campaigns.client
    name = unique("Sale")
    assert (await client.post("/v1/lists", json={"name": name})).status_code == 401
    refused = await client.post("/v1/lists", json={"name": name}, headers=STOREFRONT)
    assert refused.status_code == 403
    created = await client.post("/v1/lists", json={"name": f"  {name} "}, headers=ADMIN)
    assert created.status_code == 201 and created.json()["name"] == name
    assert created.headers["Location"] == f"/v1/lists/{created.json()['id']}"
    again = await client.post("/v1/lists", json={"name": name}, headers=ADMIN)
    assert again.status_code == 409
    assert again.json()["type"].endswith("list-name-taken")
    assert again.json()["list_id"] == created.json()["id"]
    for bad in ({"name": ""}, {"name": "a\nb"}, {"name": "x" * 101}, {}, {"name": "ok", "x": 1}):
        response = await client.post("/v1/lists", json=bad, headers=ADMIN)
        assert response.status_code == 422, bad
        assert response.headers["content-type"].startswith("application/problem+json")

    missing = [
        await client.get("/v1/lists/lst_nope", headers=ADMIN),
        await client.post(
            "/v1/subscribers",
            json={"subscribers": [{"email": "z@example.com"}], "list_id": "lst_nope"},
            headers=ADMIN,
        ),
        await client.post(
            "/v1/campaigns",
            json={"subject": "s", "body": "b", "list_id": "lst_nope"},
            headers=ADMIN,
        ),
    ]
    for response in missing:
        assert response.status_code == 404, response.text
        assert response.json()["type"].endswith("list-not-found")
    assert (await campaigns.create())["total"] == 0  # the refused import added nobody

    seen, cursor = [], None
    while True:  # every list, one a page
        params = {"limit": 1} if cursor is None else {"limit": 1, "cursor": cursor}
        page = (await client.get("/v1/lists", params=params, headers=ADMIN)).json()
        assert len(page["items"]) == 1
        seen.append(page["items"][0]["id"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert created.json()["id"] in seen and len(seen) == len(set(seen))
