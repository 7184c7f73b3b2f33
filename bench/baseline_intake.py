"""The common recipe, as the baseline for intake: a plain FastAPI endpoint that inserts the
order row with SQLAlchemy and calls `task.delay()` (Celery's blocking client, default settings,
no publisher confirms, the default `celery` queue). No idempotency, no outbox, no auth.

Run: `uvicorn bench.baseline_intake:create_app --factory --port 38101` with DATABASE_URL and
RABBITMQ_URL set like the services'.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from celery import Celery
from fastapi import FastAPI
from sqlalchemy import insert

from services.orders.db import orders
from services.orders.schemas import OrderIn
from shared.infra.db import Database
from shared.infra.settings import get_settings


def create_app() -> FastAPI:
    settings = get_settings()
    celery = Celery("baseline", broker=settings.rabbitmq_url)
    celery.conf.update(task_serializer="json", accept_content=["json"])

    @celery.task(name="baseline.reserve")
    def reserve(order_id: str, items: list[dict]) -> None:  # never consumed here
        raise NotImplementedError

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.service_database_url("orders"))
        yield
        await app.state.db.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/orders", status_code=202)
    async def place_order(body: OrderIn) -> dict[str, str]:
        order_id = f"ord_{uuid.uuid4().hex}"
        async with app.state.db.sessions.begin() as session:
            await session.execute(
                insert(orders).values(
                    id=order_id,
                    status="pending",
                    customer_id=body.customer.id,
                    customer_email=body.customer.email,
                    payment_method=body.payment_method,
                    items=[{**item.model_dump(), "unit_price": None} for item in body.items],
                )
            )
        reserve.delay(order_id=order_id, items=[item.model_dump() for item in body.items])
        return {"id": order_id, "status": "pending"}

    @app.post("/floor", status_code=202)
    async def floor(body: OrderIn) -> dict[str, str]:
        """The framework's floor: parse and validate the same body, answer; no I/O at all.
        No intake on this stack (one uvicorn process) can be cheaper than this."""
        return {"id": f"ord_{uuid.uuid4().hex}", "status": "pending"}

    return app
