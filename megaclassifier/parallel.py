"""In-order results from a pool with a bounded number of tasks in flight.

``crop`` (threads) and ``run`` (processes) hand one image to a worker at a
time; :func:`bounded_map` keeps at most ``window`` images submitted, so memory
stays flat however many images there are, and yields results in input order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

R = TypeVar("R")


def bounded_map(
    fn: Callable[..., R],
    items: Iterable[tuple[Any, ...]],
    *,
    pool: Callable[[], Executor] | None,
    window: int,
) -> Iterator[R]:
    """Yield ``fn(*item)`` for each item, in order.

    Args:
        fn: the task; must be picklable for a process pool.
        items: argument tuples.
        pool: makes the executor (closed when the iteration ends); None runs every task here, in turn.
        window: at most this many tasks submitted and not yet yielded.
    """
    if pool is None:
        for item in items:
            yield fn(*item)
        return
    with pool() as executor:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(executor.submit(fn, *item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
