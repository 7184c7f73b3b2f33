"""Bearer-key auth: storefront and admin keys, compared in constant time, never logged.

Routes declare what they need with the `StorefrontKey` / `AdminKey` dependencies
(`shared.web.deps`); the OpenAPI document shows it as the `StorefrontKey` or `AdminKey`
security scheme. The key is checked once per request, by the route guard (`shared.web.guard`)
before the body is read, so a caller without a valid key learns nothing else about the route
(401 comes before 413/415/422). The guard leaves the `Caller` it found in the request state,
and the dependency hands its key to the route without comparing it again.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.infra.settings import Settings
from shared.web.problems import Problem


class Role(StrEnum):
    STOREFRONT = "storefront"
    ADMIN = "admin"


@dataclass(frozen=True)
class Caller:
    key: str
    role: Role


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

    def authenticate(self, authorization: str | None) -> Caller:
        """Who sends this `Authorization` header; 401 for no key or an unknown one."""
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
        return Caller(key, role)

    def check(self, authorization: str | None, needed: Role) -> Caller:
        """The caller, if it may call a route that needs `needed`; else 401 or 403."""
        caller = self.authenticate(authorization)
        authorize(caller, needed)
        return caller


def authorize(caller: Caller, needed: Role) -> None:
    if needed is Role.ADMIN and caller.role is not Role.ADMIN:
        raise Problem(403, "forbidden", "This route needs an admin API key.")


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


def _key_of(
    request: Request, credentials: HTTPAuthorizationCredentials | None, needed: Role
) -> str:
    """The key the guard checked for this request. An app without the guard in front (none
    that `create_service_app` builds) gets it checked here instead: still once."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None:
        caller = request.app.state.auth.authenticate(_authorization(credentials))
    authorize(caller, needed)
    return caller.key


# Async, so FastAPI calls them on the event loop instead of handing each to a worker thread.
async def require_storefront(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_storefront_scheme)],
) -> str:
    """Storefront or admin key; returns the key (idempotency keys are scoped to it)."""
    return _key_of(request, credentials, Role.STOREFRONT)


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_scheme)],
) -> str:
    return _key_of(request, credentials, Role.ADMIN)


def scope_to_filter(request: Request, api_key: str, name: str, value: object) -> None:
    """A storefront key belongs to one storefront backend acting for its signed-in customer:
    its lists must name whose records they are (`name`); only an admin key lists them all.
    400 problem+json otherwise, with the missing query parameter as the offending field."""
    if value is not None or _role_of(request, api_key) is Role.ADMIN:
        return
    raise Problem(
        400,
        f"{name.replace('_', '-')}-required",
        f"A storefront key must filter this list with `?{name}=`; "
        "the unfiltered list needs an admin key.",
        errors=[{"field": f"query.{name}", "message": "required with a storefront key"}],
    )


def _role_of(request: Request, api_key: str) -> Role | None:
    """The role the guard found for this request's key; compared again only without it."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is not None and caller.key == api_key:
        return caller.role
    return request.app.state.auth.role_of(api_key)


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
