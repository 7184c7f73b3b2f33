"""The `orders` pool: Reservations, releases and order state changes."""

from shared.queues import Pool
from workers.app import make_celery

POOL = Pool.ORDERS
app = make_celery(POOL)
