"""The app Flower and remote control talk through: every task, no queue of its own to consume.

`celery -A workers.monitor flower` (`make flower`). Celery's `-A` needs an app object, not the
`flower_app` factory.
"""

from workers.app import flower_app

app = flower_app()
