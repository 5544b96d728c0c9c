from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from assistants_app.backends.client import close_clients
from tests.fakes.upstream import FakeUpstream


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
async def _close_cached_clients() -> AsyncIterator[None]:
    """The shared clients are per event loop: close them before each test's loop goes."""
    yield
    await close_clients()
