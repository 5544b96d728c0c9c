"""The chat sockets on the production path: an idle socket must survive the Redis channel layer.

channels_redis polls its channel with BZPOPMIN timeout=5 s, while redis-py >= 8 gives every connection
a 5 s socket timeout by default: the blocking read then times out on the client first, and
`receive()` raises redis.exceptions.TimeoutError, which closes every idle chat socket with 1011.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from assistants_app.web.consumers import ChatConsumer

pytestmark = pytest.mark.usefixtures("redis_url")


async def test_idle_channel_layer_receive_outlives_the_poll_interval() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    # Nothing arrives: receive() must keep waiting (past channels_redis' 5 s poll), not raise.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 7)


@pytest.mark.django_db(transaction=True)
async def test_idle_chat_socket_stays_open_on_the_redis_layer(alice) -> None:
    comm = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/?tab=t")
    comm.scope["user"] = alice
    assert (await comm.connect())[0]
    assert await comm.receive_nothing(timeout=7)  # past the 5 s poll: no close, no error
    await comm.send_to(text_data='{"follow": "run_nope"}')
    assert "can" in await comm.receive_from(timeout=5)  # still served
    await comm.disconnect()


async def test_more_readers_than_a_redis_pool_holds(redis_url) -> None:
    """Every chat socket follows its run with a blocking XREAD; a web process must serve more than
    100 sockets at once."""
    from assistants_app.runs.events import RedisEventLog

    log = RedisEventLog(redis_url)

    async def reader(i: int) -> None:
        async for _ in log.read(f"run_bench_reader_{i}", idle_timeout=1.0):
            pass

    await asyncio.gather(*(reader(i) for i in range(150)))
