"""The orders service's runtime: database, outbox, publisher and the payment gateway."""

from __future__ import annotations

from services.orders.db import outbox
from services.orders.payments import StripeGateway
from services.orders.repository import OrdersUnitOfWork
from shared.infra.settings import Settings
from shared.runtime import ServiceRuntime, WorkerRuntime


class OrdersRuntime(ServiceRuntime):
    def __init__(self, settings: Settings | None = None):
        super().__init__("orders", outbox, settings, unit_of_work=OrdersUnitOfWork)
        self.payments = StripeGateway(self.settings)

    async def stop(self) -> None:
        await super().stop()
        await self.payments.aclose()


def make_runtime(settings: Settings | None = None) -> OrdersRuntime:
    return OrdersRuntime(settings)


worker_runtime = WorkerRuntime(make_runtime)
