"""Messaging: the queue topology (`topology`), Celery's wire format (`wire`), the transactional
outbox and its relay (`outbox`), the confirming publisher (`publisher`), the task shell
(`tasks`) and the unit of work that writes state and outbox rows together (`uow`)."""
