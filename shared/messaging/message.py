"""The base class of every message that crosses a queue, and the registry of them all.

A message is declared once (`shared/messages/<sender>.py`) as a subclass that names itself, its
route (queue and priority, from the topology) and its typed payload (its fields):

    class ChargeOrder(Message):
        name: ClassVar[str] = "payments.charge"
        route: ClassVar[Route] = Route(QueueName.PAYMENTS, priority=9)
        order_id: OrderId

The sender emits the object (`uow.emit(ChargeOrder(order_id=...))`), so a missing or misspelt
field fails where it is built, in a unit test, not as a dead letter; the receiver's task is
declared with the class (`@handles(ChargeOrder)`) and gets the same type back. The Celery task
name, the route of the Celery app, the publisher's queue and priority, and the pool that runs
it are all read from here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.messaging.topology import Route

_REGISTRY: dict[str, type[Message]] = {}
# The most messages one gathered message stands for (`Message.gathered`).
GATHERED_PER_MESSAGE = 500


class Part(BaseModel):
    """A piece of a payload (an order line): strict about its fields, never changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(Part):
    """A command (asks its receiver to do something) or an event (says what happened)."""

    name: ClassVar[str]
    route: ClassVar[Route]
    # A name kept only so that messages already queued under it during a deploy still run;
    # nothing emits it.
    deprecated: ClassVar[bool] = False
    # Whether its sender's dispatcher may hold it for a moment and send the ones it gathered
    # as one message (`gathered`): for a command whose effect nobody waits for.
    gathers: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "name" not in cls.__dict__:  # an abstract part (a shared base of payloads)
            return
        if cls.name in _REGISTRY:
            raise TypeError(f"message {cls.name!r} is declared twice")
        _REGISTRY[cls.name] = cls

    def kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments: the payload as JSON-able values."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def gathered(cls, payloads: list[dict[str, Any]]) -> Message:
        """One message doing what the messages of these payloads (`kwargs()`) do, each of them
        at most once more; only for a class that `gathers`."""
        raise NotImplementedError(f"{cls.name} does not gather")


def _declared() -> dict[str, type[Message]]:
    # The catalog imports this module (its base class), so it is imported here, on first use.
    import shared.messages  # noqa: F401 - declaring a message registers it

    return _REGISTRY


def message_type(name: str) -> type[Message]:
    """The class declared for task `name` (KeyError for a name nobody declared)."""
    return _declared()[name]


def route_of(name: str) -> Route:
    return message_type(name).route


def all_messages() -> list[type[Message]]:
    """Every declared message, in declaration order."""
    return list(_declared().values())
