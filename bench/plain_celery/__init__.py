"""The plain Celery recipe for the whole order flow, the baseline of `bench.e2e`.

What a reader of Celery's and FastAPI's docs would write for "take an order, reserve the stock,
charge the card, mail a confirmation": a FastAPI endpoint that inserts the order with SQLAlchemy
and calls `reserve.delay()`; three Celery tasks on the default queue of a default prefork worker
(`reserve -> charge -> send_confirmation`, each `.delay()`-ing the next), the charge through the
official Stripe SDK, the mail through `smtplib`. No outbox, no publisher confirms, no
idempotency key, no acks late, no priorities, no retries: whatever breaks loses the order or
charges it twice. It is measured, never deployed.
"""
