"""A real pool process with one more task, `doorbuster.tests.crash`, which kills its process
(`os._exit`, no cleanup, no ack) every time it runs: the crash-looping message of fault k.

    python -m tests.support.crash_pool <pool> [the options of python -m workers]

The message class is declared only in that process (`register`), never in the test session's
own registry of messages.
"""

from __future__ import annotations

import os
import sys
from typing import ClassVar

CRASH_TASK = "doorbuster.tests.crash"
CRASH_EXIT_CODE = 70


def register() -> None:
    from shared.messaging.message import Message
    from shared.messaging.tasks import handles
    from shared.messaging.topology import QueueName, Route

    class CrashWorker(Message):
        name: ClassVar[str] = CRASH_TASK
        route: ClassVar[Route] = Route(QueueName.PAYMENTS, priority=9)

    @handles(CrashWorker)
    async def crash(_: CrashWorker) -> None:
        """Dies mid-task, as a segfaulting extension or the OOM killer would."""
        os._exit(CRASH_EXIT_CODE)


if __name__ == "__main__":
    from workers.__main__ import main

    register()
    main(sys.argv[1:])
