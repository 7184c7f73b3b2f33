"""Every SQL statement of the notifications service, by what it keeps, and its unit of work.

Use cases (handlers.py, campaigns.py, batches.py, subscribers.py, lists.py) reach the database
only through `uow.mail`, `uow.campaigns`, `uow.deliveries`, `uow.subscribers` and `uow.lists`;
a fake unit of work with these in memory (tests/unit/fakes/) runs them with no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from services.notifications.repository.campaigns import CampaignRepository
from services.notifications.repository.deliveries import DeliveryRepository
from services.notifications.repository.lists import ListRepository
from services.notifications.repository.mail import OrderMailRepository
from services.notifications.repository.subscribers import SubscriberRepository
from shared.messaging.uow import UnitOfWork, Work

Row = Mapping[str, Any]


class NotificationsWork(Work, Protocol):
    """What the notifications use cases take: a unit of work with its repositories."""

    mail: OrderMailRepository
    campaigns: CampaignRepository
    deliveries: DeliveryRepository
    subscribers: SubscriberRepository
    lists: ListRepository


class NotificationsUnitOfWork(UnitOfWork):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mail = OrderMailRepository(self)
        self.campaigns = CampaignRepository(self)
        self.deliveries = DeliveryRepository(self)
        self.subscribers = SubscriberRepository(self)
        self.lists = ListRepository(self)
