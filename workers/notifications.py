"""The `notifications` pool: Transactional order mail; never waits behind campaigns."""

from shared.queues import Pool
from workers.app import make_celery

POOL = Pool.NOTIFICATIONS
app = make_celery(POOL)
