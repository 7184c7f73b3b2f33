"""The `payments` pool: Charges and refunds: always first, always fast (prefetch 1, I/O-bound)."""

from shared.queues import Pool
from workers.app import make_celery

POOL = Pool.PAYMENTS
app = make_celery(POOL)
