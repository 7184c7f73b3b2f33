"""The `bulk` pool: Campaign batches, throttled."""

from shared.queues import Pool
from workers.app import make_celery

POOL = Pool.BULK
app = make_celery(POOL)
