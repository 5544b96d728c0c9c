"""backends/client.py: the shared clients per event loop, and the private ones of a block."""

from __future__ import annotations

import asyncio
from typing import Any

from assistants_app.backends import client as client_module
from tests.fakes.upstream import FakeUpstream, text


async def _read(client: Any, up: FakeUpstream) -> bytes:
    up.script(text("hello"))
    async with client.chat.completions.with_streaming_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as response:
        return b"".join([chunk async for chunk in response.iter_bytes()])


async def test_a_private_block_closes_its_own_clients_and_leaves_the_shared_one(up: FakeUpstream) -> None:
    shared = client_module.build_client(up.base_url, "k")
    assert client_module.build_client(up.base_url, "k") is shared  # one per loop and upstream
    async with client_module.private_clients():
        inside = client_module.build_client(up.base_url, "k")

        async def build() -> object:
            await asyncio.sleep(0)
            return client_module.build_client(up.base_url, "k")

        in_task = await asyncio.ensure_future(build())
        assert inside is not shared and in_task is inside  # tasks started in the block share it
        assert b"hello" in await _read(inside, up)
    assert inside.is_closed() and not shared.is_closed()
    assert b"hello" in await _read(shared, up)
    assert client_module.build_client(up.base_url, "k") is shared
