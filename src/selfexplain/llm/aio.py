"""Bridge from async backends to the synchronous runner, and a worker pool that yields results as they finish.

Why: API backends keep many HTTP requests in flight with asyncio, but the runner is a plain loop that journals
each answer the moment it arrives (so a kill loses only requests in flight). `iterate_async` runs an async
generator on a private event loop in a background thread and hands its items to the caller's thread through a
thread-safe queue. When the caller stops early, raises, or is interrupted (Ctrl-C), the generator is cancelled,
its requests are abandoned, and the thread is joined: no request keeps running (and costing) behind the caller's
back. An exception inside the loop is re-raised in the caller's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")

_DONE = object()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel whatever is left on `loop` and let it clean up (the same steps as asyncio.run)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


def iterate_async(
    factory: Callable[[], AsyncIterator[T]],
    *,
    name: str = "selfexplain-aio",
    poll_s: float = 0.25,
    join_timeout_s: float = 60.0,
    on_consumed: Callable[[], None] | None = None,
) -> Iterator[T]:
    """Yield the items of the async iterator `factory()` (created and run on a background event loop) in this thread.

    `on_consumed` runs on the event loop each time the caller comes back for the next item, i.e. once it has
    finished with (journaled) the previous one; backends use it to bound answers that are not yet journaled.

    Use it as a generator: closing it (break, an exception in the loop body, garbage collection) cancels the
    producer and joins its thread. The thread is a daemon, so even a generator nobody closes cannot keep the
    interpreter (and its requests) alive at exit.
    """
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()

    async def pump() -> None:
        source = factory()
        try:
            async for item in source:
                out.put(item)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    task = loop.create_task(pump())

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            out.put(_Failure(exc))
        finally:
            try:
                _shutdown(loop)
            except BaseException:  # pragma: no cover - cleanup must not hide the real outcome
                log.exception("error while shutting down the background event loop")
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                out.put(_DONE)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = out.get(timeout=poll_s)
            except queue.Empty:
                if thread.is_alive():
                    continue
                try:
                    item = out.get_nowait()
                except queue.Empty:
                    raise RuntimeError("background event loop stopped without finishing") from None
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
            if on_consumed is not None:
                with contextlib.suppress(RuntimeError):  # the loop may have closed after the last item
                    loop.call_soon_threadsafe(on_consumed)
    finally:
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(task.cancel)
        thread.join(join_timeout_s)
        if thread.is_alive():  # pragma: no cover - only if a cancelled request ignores cancellation
            log.warning("background event loop %s did not stop within %.0f s", name, join_timeout_s)


class _Crash:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def run_pool(
    items: Sequence[ItemT],
    work: Callable[[int, ItemT, Callable[[T], None]], Awaitable[None]],
    concurrency: int,
) -> AsyncIterator[T]:
    """Run `work(index, item, emit)` over `items` with at most `concurrency` workers; yield what they emit, as they
    emit it. A worker's exception stops the pool and is re-raised here, after whatever the workers emitted before
    it was seen (answers already paid for reach the journal); leaving early cancels the workers.

    Workers pull the next item only when free, so a job of 100,000 requests holds `concurrency` coroutines, not
    100,000 tasks.
    """
    results: asyncio.Queue[Any] = asyncio.Queue()
    todo = iter(enumerate(items))

    async def worker() -> None:
        try:
            for index, item in todo:
                await work(index, item, results.put_nowait)
        except Exception as exc:
            results.put_nowait(_Crash(exc))
        finally:
            results.put_nowait(_DONE)

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(items))))]
    running = len(workers)
    try:
        while running:
            item = await results.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, _Crash):
                for task in workers:  # start nothing new; keep what already arrived
                    task.cancel()
                while not results.empty():
                    rest = results.get_nowait()
                    if rest is not _DONE and not isinstance(rest, _Crash):
                        yield rest
                raise item.exc
            else:
                yield item
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
