"""Session fixtures: the real stack (RabbitMQ, PostgreSQL, the APIs, the pools, the Stripe
emulator and the SMTP sink) is started once, lazily, for the tests that ask for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devtools.harness.shop import Shop
from devtools.harness.stack import BROKER_PROXY_PORT, Stack, build_stack
from tests.support.campaigns import Campaigns, empty_audience
from tests.support.tcp_proxy import CuttableProxy


@pytest.fixture(scope="session")
def broker_proxy() -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(BROKER_PROXY_PORT, "127.0.0.1", 5672)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def stack(broker_proxy: CuttableProxy) -> Iterator[Stack]:
    with build_stack().started() as running:
        yield running


@pytest.fixture(scope="session")
async def shop(stack: Stack) -> AsyncIterator[Shop]:
    async with Shop(stack) as client:
        yield client


@pytest.fixture(scope="session")
def campaigns(shop: Shop) -> Campaigns:
    return Campaigns(shop.notifications)


@pytest.fixture
async def no_subscribers(stack: Stack) -> None:
    """Campaign tests start from an empty audience (campaigns go to every subscriber)."""
    await empty_audience()
