"""Running an async context manager (a proxy) for synchronous code, on a thread of its own.

    with in_thread(DelayProxy(upstream, rtt=0.05)) as proxy:
        subprocess.run([...])          # the proxy serves meanwhile
        proxy.stats.connections        # (ints, read across threads: fine under the GIL)

The object's `__aenter__` and `__aexit__` run on an event loop in a daemon thread; leaving the
`with` block (normally, by an exception, or by KeyboardInterrupt) runs `__aexit__` there and
stops the thread, so nothing it started outlives the block.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TypeVar

T = TypeVar("T")

#: seconds to wait for the object's `__aexit__` on the thread
EXIT_TIMEOUT = 30.0


@contextmanager
def in_thread(manager: AbstractAsyncContextManager[T]) -> Iterator[T]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="nixlift-testbed-loop", daemon=True)
    thread.start()
    try:
        value = asyncio.run_coroutine_threadsafe(manager.__aenter__(), loop).result()
        try:
            yield value
        finally:
            asyncio.run_coroutine_threadsafe(manager.__aexit__(None, None, None), loop).result(
                EXIT_TIMEOUT
            )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(EXIT_TIMEOUT)
        if not thread.is_alive():
            loop.close()
