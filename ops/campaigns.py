"""Pause and resume a campaign through the notifications API (admin routes of CONTRACT.md)."""

from __future__ import annotations

from typing import Any

import httpx

from shared.infra.settings import Settings


class CampaignError(RuntimeError):
    """The API refused (its problem+json detail) or could not be reached."""


def admin_key(settings: Settings) -> str:
    return settings.ops_admin_key or settings.admin_keys()[0]


def campaign_action(
    settings: Settings, campaign_id: str, action: str, timeout: float = 10.0
) -> dict[str, Any]:
    """`POST /v1/campaigns/{id}/{action}`; the campaign as the API returns it."""
    url = f"{settings.notifications_api_url.rstrip('/')}/v1/campaigns/{campaign_id}/{action}"
    try:
        response = httpx.post(
            url, headers={"Authorization": f"Bearer {admin_key(settings)}"}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise CampaignError(f"{url}: {exc}") from exc
    if response.is_success:
        return response.json() if response.content else {"id": campaign_id}
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    raise CampaignError(f"{response.status_code} from {url}: {detail}")
