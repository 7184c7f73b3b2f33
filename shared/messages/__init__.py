"""Every message that crosses a queue, declared once, in a module per sending service.

A message is declared beside its sender (STYLE.md), but here in `shared/` rather than in
`services/<sender>/`: its receiver is another service, which must get the same class without
importing the sender's code. Importing this package registers them all, which the publisher,
the outbox relay, the Celery app and the pool table rely on to route a message by its name.
"""

from shared.messages import inventory, notifications, orders  # noqa: F401 - registers each
