"""A TCP proxy the tests can cut or stall: a real network partition between one process and
RabbitMQ.

Nothing is mocked: bytes flow to the real broker until `cut()` closes every connection and
drops new ones at once; `restore()` lets clients reconnect. The proxy keeps its listening
socket through a cut: a released port in the ephemeral range can be taken by any outgoing
connection on a busy machine, and the restore then failed with "address already in use".

`stall()` is the messier partition, a path that drops packets: every socket stays open and
nothing is closed, but no byte crosses in either direction, and a connection opened meanwhile
gets no answer (its AMQP handshake never starts). Bytes already written wait in the kernel's
buffers, as TCP retransmits a dropped segment until the path heals: after `resume()` they
arrive, late, unless a side gave up on its peer meanwhile (a missed heartbeat), closed its
socket, and the other side learns it only then. (The machine's kernel has no netem and no
iptables binary: a proxy that stops forwarding is what drops packets here, FACTS.md.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class CuttableProxy:
    """One listening port in front of one target, or of several (`more_targets`): then each
    new connection goes to the next target that accepts it, round robin, as a Kubernetes
    Service spreads clients over a cluster's live nodes."""

    def __init__(
        self,
        listen_port: int,
        target_host: str,
        target_port: int,
        more_targets: tuple[tuple[str, int], ...] = (),
    ):
        self.listen_port = listen_port
        self.targets = [(target_host, target_port), *more_targets]
        self._next_target = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._partitioned = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def cut(self) -> None:
        """Drop every open connection, and each new one as it opens (a partition)."""
        self._call(self._cut())

    def restore(self) -> None:
        self._partitioned = False

    def stall(self) -> None:
        """Stop forwarding, both ways, on every connection open or opened (packets dropped)."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        """Forward again: whatever waited in the buffers goes through, late."""
        self._loop.call_soon_threadsafe(self._flowing.set)

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)

    async def _close(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _cut(self) -> None:
        self._partitioned = True
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._partitioned:  # the connection opens and drops before the broker says hello
            writer.close()
            return
        self._writers.add(writer)
        await self._flowing.wait()  # stalled: the broker never hears of it until resumed
        upstream = await self._open_upstream()
        if upstream is None:
            writer.close()
            return
        upstream_reader, upstream_writer = upstream
        self._writers.update({writer, upstream_writer})
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.targets)):
            target = self.targets[self._next_target % len(self.targets)]
            self._next_target += 1
            try:
                return await asyncio.open_connection(*target)
            except OSError:
                continue  # that node is down: the next one
        return None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                await self._flowing.wait()  # stalled: leave the bytes in the kernel's buffers
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()  # read just before a stall: held until resumed
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)
