"""The orders service's runtime: database, outbox, publisher and the payment gateway."""

from __future__ import annotations

from services.orders.db import outbox
from services.orders.payments import StripeGateway
from shared.infra.settings import Settings
from shared.runtime import ServiceRuntime, WorkerRuntime


class OrdersRuntime(ServiceRuntime):
    def __init__(self, settings: Settings | None = None):
        super().__init__("orders", outbox, settings)
        self.payments = StripeGateway(self.settings)


def make_runtime(settings: Settings | None = None) -> OrdersRuntime:
    return OrdersRuntime(settings)


worker_runtime = WorkerRuntime(make_runtime)
