"""What a route may ask for, as `Annotated` types: the caller's key, the settings, the
service's runtime and a unit of work.

A route declares `uow: UoW, _: StorefrontKey` and gets both; nothing reaches into
`request.app.state` itself. The runtime is made in the lifespan (`shared.web.app`), never at
import. All are async so FastAPI runs them on the event loop, not in its thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.infra.settings import Settings
from shared.messaging.uow import UnitOfWork
from shared.runtime import ServiceRuntime
from shared.web.auth import require_admin, require_storefront

StorefrontKey = Annotated[str, Depends(require_storefront)]
AdminKey = Annotated[str, Depends(require_admin)]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


AppSettings = Annotated[Settings, Depends(_settings)]
Runtime = Annotated[ServiceRuntime, Depends(_runtime)]


async def _uow(runtime: Runtime) -> UnitOfWork:
    return runtime.uow()


UoW = Annotated[UnitOfWork, Depends(_uow)]
