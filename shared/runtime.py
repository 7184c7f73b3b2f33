"""What a service needs at run time: its database, the publisher, its outbox and relay.

Made in the FastAPI lifespan (`start(relay=True)`) or once per worker process on its background
loop (`worker_runtime`), never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from sqlalchemy import Table

from shared.infra.db import Database
from shared.infra.settings import Settings, get_settings
from shared.infra.tls import broker_ssl_context
from shared.messaging.outbox import Dispatcher, Outbox, Relay
from shared.messaging.publisher import Publisher
from shared.messaging.uow import UnitOfWork


class ServiceRuntime:
    def __init__(
        self,
        service: str,
        outbox_table: Table,
        settings: Settings | None = None,
        unit_of_work: type[UnitOfWork] = UnitOfWork,
    ):
        self.service = service
        self._unit_of_work = unit_of_work
        self.settings = settings or get_settings()
        self.db = Database(
            self.settings.service_database_url(service),
            pool_size=self.settings.db_pool_size,
            max_overflow=self.settings.db_max_overflow,
        )
        self.publisher = Publisher(
            self.settings.rabbitmq_url,
            self.settings.queue_type,
            ssl_context=broker_ssl_context(self.settings),
            heartbeat=self.settings.broker_heartbeat_seconds,
        )
        self.outbox = Outbox(outbox_table)
        self.dispatcher = Dispatcher(self.outbox, self.db, self.publisher)
        self._relay: Relay | None = None

    def uow(self) -> UnitOfWork:
        return self._unit_of_work(self.db, self.outbox, self.dispatcher)

    async def start(self, relay: bool) -> None:
        self.publisher.connect_in_background()
        self.dispatcher.start()
        if relay:
            self._relay = Relay(
                self.outbox,
                self.db,
                self.publisher,
                interval=self.settings.outbox_relay_interval_seconds,
                grace=self.settings.outbox_relay_grace_seconds,
                dispatcher=self.dispatcher,
                retention=self.settings.outbox_retention_seconds,
            )
            self._relay.start()

    async def wait_for_broker(self, seconds: float = 10.0) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.publisher.connected.wait()

    async def stop(self) -> None:
        if self._relay is not None:
            await self._relay.stop()
        await self.dispatcher.stop()
        await self.publisher.close()
        await self.db.dispose()


class WorkerRuntime:
    """Lazily builds one `ServiceRuntime` per worker process, on that process's loop."""

    def __init__(self, factory: Callable[[], ServiceRuntime]):
        self._factory = factory
        self._runtime: ServiceRuntime | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> ServiceRuntime:
        if self._runtime is None:
            async with self._lock:
                if self._runtime is None:
                    runtime = self._factory()
                    await runtime.start(relay=False)
                    await runtime.wait_for_broker()
                    self._runtime = runtime
        return self._runtime
