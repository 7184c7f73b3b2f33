"""Commits wait a moment in the dispatcher and go out together: one `inventory.commit_many`
for the commits a quarter of a second gathers, their outbox rows marked published only once
that message is confirmed; everything else goes out at once, as before."""

from __future__ import annotations

import asyncio

from shared.messages.orders import CommitReservation, CommitReservations, ReleaseReservation
from shared.messaging.message import GATHERED_PER_MESSAGE
from shared.messaging.outbox import Dispatcher
from shared.messaging.publisher import PublisherUnavailable
from shared.messaging.wire import OutgoingTask


class Publisher:
    is_ready = True
    accepting = True

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.published: list[OutgoingTask] = []

    async def publish_many(self, tasks):
        if self.refuse:
            raise PublisherUnavailable("not connected to the broker")
        self.published.extend(tasks)


class Marks:
    def __init__(self) -> None:
        self.marked: list[str] = []

    async def mark_published_alone(self, db, task_ids) -> None:
        self.marked.extend(task_ids)


def commit(order_id: str) -> OutgoingTask:
    return OutgoingTask.of(CommitReservation(order_id=order_id), correlation_id=f"c-{order_id}")


async def test_commits_handed_over_together_go_out_as_one_message_and_mark_every_row():
    publisher, marks = Publisher(), Marks()
    dispatcher = Dispatcher(marks, None, publisher, gather_interval=0.2)
    dispatcher.start()
    commits = [commit(f"ord_{n}") for n in range(3)]
    release = OutgoingTask.of(ReleaseReservation(order_id="ord_x"))
    dispatcher.submit(commits[:2])
    dispatcher.submit([release, commits[2]])
    await asyncio.sleep(0.05)
    # The release went out at once; the commits are held, and the relay must leave them alone.
    assert [task.name for task in publisher.published] == ["inventory.release"]
    assert dispatcher.lag() > 0
    await asyncio.sleep(0.4)
    [gathered] = [task for task in publisher.published if task.name != "inventory.release"]
    assert gathered.name == CommitReservations.name
    assert gathered.kwargs == {"order_ids": ["ord_0", "ord_1", "ord_2"]}
    assert CommitReservations.model_validate(gathered.kwargs)  # what the inventory reads
    await dispatcher.stop()
    # The rows marked are the outbox's own (the commits' ids), never the gathered message's.
    assert sorted(marks.marked) == sorted([release.id, *(task.id for task in commits)])
    assert dispatcher.lag() == 0.0


async def test_stopping_sends_what_is_held():
    publisher, marks = Publisher(), Marks()
    dispatcher = Dispatcher(marks, None, publisher, gather_interval=60)
    dispatcher.start()
    dispatcher.submit([commit("ord_1")])
    await dispatcher.stop()
    assert [task.kwargs for task in publisher.published] == [{"order_ids": ["ord_1"]}]
    assert len(marks.marked) == 1


async def test_a_refused_gathered_message_leaves_its_rows_to_the_relay():
    publisher, marks = Publisher(refuse=True), Marks()
    dispatcher = Dispatcher(marks, None, publisher, gather_interval=0.05)
    dispatcher.start()
    dispatcher.submit([commit("ord_1"), commit("ord_2")])
    await asyncio.sleep(0.3)
    await dispatcher.stop()
    assert publisher.published == [] and marks.marked == []


async def test_more_commits_than_one_message_carries_go_out_as_several():
    publisher, marks = Publisher(), Marks()
    dispatcher = Dispatcher(marks, None, publisher, gather_interval=60)
    dispatcher.start()
    dispatcher.submit([commit(f"ord_{n}") for n in range(GATHERED_PER_MESSAGE + 1)])
    await dispatcher.stop()
    assert [len(task.kwargs["order_ids"]) for task in publisher.published] == [
        GATHERED_PER_MESSAGE,
        1,
    ]
    assert len(marks.marked) == GATHERED_PER_MESSAGE + 1


def test_a_commit_delivered_twice_in_one_gathering_is_named_once():
    gathered = CommitReservation.gathered([{"order_id": "a"}, {"order_id": "b"}, {"order_id": "a"}])
    assert gathered == CommitReservations(order_ids=["a", "b"])
