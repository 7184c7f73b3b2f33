"""Bearer-key auth: storefront and admin keys, compared in constant time, never logged.

Routes declare what they need with the `StorefrontKey` / `AdminKey` dependencies; the
OpenAPI document shows it as the `StorefrontKey` or `AdminKey` security scheme. The route
guard (`shared.guard`) runs the same check before the body is read, so a caller without a
valid key learns nothing else about the route (401 comes before 413/415/422); the dependency
stays the source of the key a route receives.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.config import Settings
from shared.problems import Problem


class Role(StrEnum):
    STOREFRONT = "storefront"
    ADMIN = "admin"


class Auth:
    def __init__(self, settings: Settings):
        self._storefront = settings.storefront_keys()
        self._admin = settings.admin_keys()

    @staticmethod
    def _matches(key: str, keys: tuple[str, ...]) -> bool:
        # Every candidate is compared, so the time taken does not tell which one matched.
        found = False
        for candidate in keys:
            found |= hmac.compare_digest(key.encode(), candidate.encode())
        return found

    def role_of(self, key: str | None) -> Role | None:
        if not key:
            return None
        if self._matches(key, self._admin):
            return Role.ADMIN
        if self._matches(key, self._storefront):
            return Role.STOREFRONT
        return None

    def check(self, authorization: str | None, needed: Role) -> str:
        """The caller's key if it may call a route that needs `needed`; else 401 or 403."""
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        role = self.role_of(key)
        if role is None:
            raise Problem(
                401,
                "unauthorized",
                "A valid API key is required: `Authorization: Bearer <key>`.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if needed is Role.ADMIN and role is not Role.ADMIN:
            raise Problem(403, "forbidden", "This route needs an admin API key.")
        return key


_storefront_scheme = HTTPBearer(
    scheme_name="StorefrontKey",
    description="A storefront key (or an admin key). Development: `dev-storefront`.",
    auto_error=False,
)
_admin_scheme = HTTPBearer(
    scheme_name="AdminKey",
    description="An admin key. Development: `dev-admin`.",
    auto_error=False,
)


def _authorization(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return f"{credentials.scheme} {credentials.credentials}" if credentials else None


def require_storefront(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_storefront_scheme)],
) -> str:
    """Storefront or admin key; returns the key (idempotency keys are scoped to it)."""
    return request.app.state.auth.check(_authorization(credentials), Role.STOREFRONT)


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_scheme)],
) -> str:
    return request.app.state.auth.check(_authorization(credentials), Role.ADMIN)


StorefrontKey = Annotated[str, Depends(require_storefront)]
AdminKey = Annotated[str, Depends(require_admin)]


def scope_to_filter(request: Request, api_key: str, name: str, value: object) -> None:
    """A storefront key belongs to one storefront backend acting for its signed-in customer:
    its lists must name whose records they are (`name`); only an admin key lists them all.
    400 problem+json otherwise, with the missing query parameter as the offending field."""
    if value is not None or request.app.state.auth.role_of(api_key) is Role.ADMIN:
        return
    raise Problem(
        400,
        f"{name.replace('_', '-')}-required",
        f"A storefront key must filter this list with `?{name}=`; "
        "the unfiltered list needs an admin key.",
        errors=[{"field": f"query.{name}", "message": "required with a storefront key"}],
    )


def dependency_calls(dependant: Dependant) -> Iterator[object]:
    """Every callable a route depends on, however deeply nested."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from dependency_calls(dependency)


def required_role(route: Any) -> Role | None:
    """The key a route (anything with a `dependant`) needs, admin winning over storefront,
    or None for an open route."""
    calls = list(dependency_calls(route.dependant))
    if any(call is require_admin for call in calls):
        return Role.ADMIN
    if any(call is require_storefront for call in calls):
        return Role.STOREFRONT
    return None
