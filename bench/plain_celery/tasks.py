"""The recipe's Celery app and its three tasks, as Celery's "First steps" and the Stripe and
smtplib docs show them: a module-level app, engine and Stripe configuration, one task per step,
each step `.delay()`-ing the next after its own commit.

Start: `celery -A bench.plain_celery.tasks worker --concurrency 16 --loglevel WARNING`, with
PLAIN_BROKER_URL, PLAIN_DATABASE_URL (a `postgresql+psycopg://` URL), STRIPE_API_BASE, SMTP_HOST
and SMTP_PORT set. The default pool (prefork); the concurrency is raised from the default (the
number of cores) because a charge waits 200 ms on the provider and two processes would cap the
arm at about ten charges a second (bench.e2e's --plain-concurrency).
"""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage

import stripe
from celery import Celery
from sqlalchemy import Connection, Row, create_engine, select, update
from sqlalchemy.sql import func

from bench.plain_celery.tables import orders, products

app = Celery("plain", broker=os.environ.get("PLAIN_BROKER_URL", "amqp://guest@127.0.0.1//"))
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)

engine = create_engine(os.environ.get("PLAIN_DATABASE_URL", "postgresql+psycopg:///plain"))
stripe.api_key = os.environ.get("STRIPE_API_KEY", "sk_test_doorbuster")
stripe.api_base = os.environ.get("STRIPE_API_BASE", "http://127.0.0.1:12111")
SMTP_HOST = os.environ.get("SMTP_HOST", "127.0.0.1")
SMTP_PORT = int(os.environ.get("SMTP_PORT", "1025"))


def read_order(order_id: str) -> Row:
    with engine.connect() as connection:
        return connection.execute(select(orders).where(orders.c.id == order_id)).one()


def set_order(connection: Connection, order_id: str, **values: object) -> None:
    connection.execute(
        update(orders).where(orders.c.id == order_id).values(**values, updated_at=func.now())
    )


@app.task
def reserve(order_id: str) -> None:
    with engine.begin() as connection:
        order = connection.execute(select(orders).where(orders.c.id == order_id)).one()
        price = connection.execute(
            update(products)
            .where(products.c.sku == order.sku, products.c.stock >= order.quantity)
            .values(stock=products.c.stock - order.quantity)
            .returning(products.c.price)
        ).scalar()
        status = "reserved" if price is not None else "rejected"
        total = price * order.quantity if price is not None else None
        set_order(connection, order_id, status=status, total=total)
    if status == "reserved":
        charge.delay(order_id)


@app.task
def charge(order_id: str) -> None:
    order = read_order(order_id)
    try:
        intent = stripe.PaymentIntent.create(
            amount=order.total,
            currency="usd",
            payment_method=order.payment_method,
            confirm=True,
            metadata={"order_id": order_id},
        )
        status, intent_id = "paid", intent.id
    except stripe.CardError:
        status, intent_id = "payment_failed", None
    with engine.begin() as connection:
        set_order(connection, order_id, status=status, intent_id=intent_id)
    if status == "paid":
        send_confirmation.delay(order_id)


@app.task
def send_confirmation(order_id: str) -> None:
    order = read_order(order_id)
    message = EmailMessage()
    message["From"] = "Doorbuster <orders@doorbuster.test>"
    message["To"] = order.email
    message["Subject"] = f"Your order {order_id} is confirmed"
    message.set_content(f"Thank you. We charged {order.total / 100:.2f} USD for order {order_id}.")
    with smtplib.SMTP(SMTP_HOST, SMTP_PORT) as smtp:
        smtp.send_message(message)
