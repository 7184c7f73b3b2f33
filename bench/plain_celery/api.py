"""The recipe's API: FastAPI, the order inserted with SQLAlchemy (async, as FastAPI's docs
pair it), then `reserve.delay()` (Celery's blocking client, no confirms). It takes the same
checkout body as the orders service (validated by the same pydantic model) so the load
generator drives both arms alike; it checks no key and keeps no Idempotency-Key.

Run: `uvicorn bench.plain_celery.api:create_app --factory --no-access-log --port PORT`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from bench.plain_celery.tables import orders
from bench.plain_celery.tasks import reserve
from services.orders.schemas import OrderIn


def create_app() -> FastAPI:
    url = os.environ["PLAIN_DATABASE_URL"].replace("+psycopg", "+asyncpg", 1)
    engine = create_async_engine(url, pool_size=10)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/orders", status_code=202)
    async def place_order(body: OrderIn) -> dict[str, str]:
        order_id = f"ord_{uuid.uuid4().hex}"
        line = body.items[0]
        async with engine.begin() as connection:
            await connection.execute(
                insert(orders).values(
                    id=order_id,
                    status="pending",
                    sku=line.sku,
                    quantity=line.quantity,
                    email=body.customer.email,
                    payment_method=body.payment_method,
                )
            )
        reserve.delay(order_id)
        return {"id": order_id, "status": "pending"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
