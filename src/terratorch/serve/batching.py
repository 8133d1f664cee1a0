"""Dynamic batching of concurrent requests: many callers, one forward pass.

:class:`RequestBatcher` queues items submitted by concurrent request handlers. A single worker
takes the first waiting item, keeps collecting until ``max_batch`` items are there or
``max_wait_ms`` has passed since the first one, runs ``process`` on the whole batch in one worker
thread (so the event loop keeps answering ``/health`` meanwhile, and the model never runs twice at
once), and resolves each caller's future with its own result. While a batch runs, new requests
queue up and form the next batch, so batches grow with the load without any tuning.

Only standard-library asyncio: no torch, no FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from terratorch.serve.settings import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS

__all__ = ["BatchStats", "RequestBatcher"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """Counters of what the batcher did (served by ``GET /metadata``).

    Attributes:
        requests: Items submitted.
        batches: Calls of ``process``.
        failed: Items answered with an error.
        largest_batch: Size of the largest batch so far.
        batch_sizes: How many batches had each size.
        busy_seconds: Time spent inside ``process``.
    """

    requests: int = 0
    batches: int = 0
    failed: int = 0
    largest_batch: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    busy_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (batch sizes as string keys, in increasing order)."""
        return {
            "requests": self.requests,
            "batches": self.batches,
            "failed": self.failed,
            "largest_batch": self.largest_batch,
            "batch_sizes": {str(k): self.batch_sizes[k] for k in sorted(self.batch_sizes)},
            "busy_seconds": round(self.busy_seconds, 6),
        }


class RequestBatcher(Generic[T, R]):
    """Collect concurrent :meth:`submit` calls into batches for one ``process`` call.

    Args:
        process: Called with a list of items, returns one result per item in the same order; a
            result that is an ``Exception`` instance is raised to that item's caller only. If
            ``process`` itself raises, every caller of the batch gets the error.
        max_batch: Most items per batch (>= 1).
        max_wait_ms: Longest time the first item of a batch waits for company (>= 0; 0 batches
            only what is already queued).

    Raises:
        ValueError: ``max_batch`` < 1 or ``max_wait_ms`` < 0.
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R | Exception]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}.")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}.")
        self.process = process
        self.max_batch = int(max_batch)
        self.max_wait_ms = float(max_wait_ms)
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[tuple[R, int]]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        """Start the worker on the running event loop (idempotent)."""
        if self.running:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="terratorch-batch")
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; callers still waiting get a ``RuntimeError`` saying the server stopped."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(RuntimeError("the server is shutting down; request not processed"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, item: T) -> tuple[R, int]:
        """Queue ``item`` and wait for its result.

        Returns:
            ``(result, size of the batch it ran in)``.

        Raises:
            RuntimeError: The batcher is not running.
            Exception: Whatever ``process`` raised or returned for this item.
        """
        if not self.running or self._queue is None:
            raise RuntimeError("the request batcher is not running (call start() first)")
        future: asyncio.Future[tuple[R, int]] = asyncio.get_running_loop().create_future()
        self.stats.requests += 1
        await self._queue.put((item, future))
        return await future

    async def _collect(self) -> list[tuple[T, asyncio.Future[tuple[R, int]]]]:
        """Wait for one item, then gather more until ``max_batch`` or ``max_wait_ms`` after the first."""
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait_ms / 1000.0
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            batch = [(item, future) for item, future in batch if not future.done()]  # caller gone
            if not batch:
                continue
            items = [item for item, _ in batch]
            started = time.perf_counter()
            try:
                results: Sequence[Any] = await loop.run_in_executor(self._executor, self.process, items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"batch processing returned {len(results)} results for {len(items)} items"
                    )
            except Exception as error:  # every caller of this batch gets the error; the worker lives on
                results = [error] * len(items)
            self._record(len(items), time.perf_counter() - started)
            for (_, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    self.stats.failed += 1
                    future.set_exception(result)
                else:
                    future.set_result((result, len(items)))

    def _record(self, size: int, seconds: float) -> None:
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, size)
        self.stats.batch_sizes[size] += 1
        self.stats.busy_seconds += seconds
