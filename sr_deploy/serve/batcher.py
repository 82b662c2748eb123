"""Cross-request batching: windows of every in-flight image, run together on one model.

A :class:`Job` is one image cut into windows by the tiler (:func:`sr_deploy.runtime.tiling.plan_tiles`
with one fixed window, so windows of different images have the same ``3 x window x window`` shape; an
image smaller than the window along a side keeps its own size there, and its windows batch with others of
that shape). The :class:`Batcher`'s worker threads take the oldest pending window and every other pending
window of its shape, up to ``max_batch``, waiting at most ``batch_wait_s`` after the oldest one arrived for
the batch to fill; they run the batch in one ``Upscaler.run`` and copy each window's kept core into its
job's output (:func:`sr_deploy.runtime.tiling.place_window`), so each job reassembles its own image.

Failure isolation: when a batch of windows from several jobs fails, each job's windows are run again on
their own, so only the job whose input makes the backend fail fails. A cancelled job (client gone,
timeout) has its pending windows removed at once; a batch already running finishes and is discarded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sr_deploy.backends.base import Upscaler
from sr_deploy.runtime.tiling import Span, TilePlan, place_window, plan_input, plan_windows, window_input


class JobFailed(RuntimeError):
    """The backend failed on this job's windows (the cause is chained)."""


class Job:
    """One image in flight: ``image`` (``3 x H x W`` float32 in [0, 1]) cut by ``plan`` (and padded as it says,
    for models with size rules); its :attr:`output` is ``3 x sH x sW`` float32 (not clamped), filled window by
    window by the batcher threads.

    ``on_done`` is called once, from a batcher thread (or from :meth:`cancel`'s caller), when the job
    succeeded, failed or was cancelled.
    """

    def __init__(self, image: np.ndarray, plan: TilePlan, scale: int) -> None:
        _, self.height, self.width = image.shape
        self.image, self.plan, self.scale = plan_input(image, plan), plan, scale  # padded for size rules
        _, padded_h, padded_w = self.image.shape
        self._output = np.empty((3, padded_h * scale, padded_w * scale), dtype=np.float32)
        self.windows = plan_windows(plan)
        self.error: BaseException | None = None
        self.cancelled = False
        self._remaining = len(self.windows)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._callbacks: list[Callable[[Job], None]] = []

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def output(self) -> np.ndarray:
        """The ``3 x sH x sW`` float32 output (complete once the job succeeded)."""
        return self._output[:, : self.height * self.scale, : self.width * self.scale]

    def add_done_callback(self, callback: Callable[[Job], None]) -> None:
        """Call ``callback(job)`` when the job ends (at once when it already has)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; False when ``timeout`` (s) passed first."""
        return self._done.wait(timeout)

    def _place(self, y: Span, x: Span, tile_out: np.ndarray) -> None:
        with self._lock:
            if self._done.is_set():
                return
            place_window(self._output, y, x, tile_out, self.scale)
            self._remaining -= 1
            finished = self._remaining == 0
        if finished:
            self._finish()

    def _finish(self, error: BaseException | None = None, cancelled: bool = False) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self.error, self.cancelled = error, cancelled
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


@dataclass
class _Window:
    job: Job
    y: Span
    x: Span
    arrived: float
    shape: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.shape = (self.y.stop - self.y.start, self.x.stop - self.x.start)


@dataclass
class BatchStats:
    """What the batcher has done: batches run, windows run, seconds inside ``Upscaler.run``, windows dropped
    from cancelled jobs. Read it under no lock: the counters only grow."""

    batches: int = 0
    windows: int = 0
    model_seconds: float = 0.0
    dropped: int = 0


class Batcher:
    """Worker threads that run the pending windows of all jobs in batches (see the module docstring).

    ``on_batch(size, seconds)`` hears about every batch run and ``on_drop(windows)`` about the pending
    windows of every cancelled job (metrics); ``batch_wait_s`` is how long the
    oldest pending window may wait for its batch to fill.
    """

    def __init__(
        self,
        upscaler: Upscaler,
        max_batch: int,
        batch_wait_s: float,
        workers: int = 1,
        on_batch: Callable[[int, float], None] | None = None,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or workers < 1 or batch_wait_s < 0:
            raise ValueError(f"invalid batcher settings: max_batch {max_batch}, workers {workers}, "
                             f"batch_wait_s {batch_wait_s}")
        self.upscaler, self.max_batch, self.batch_wait_s = upscaler, max_batch, batch_wait_s
        self.stats = BatchStats()
        self._on_batch, self._on_drop = on_batch, on_drop
        self._pending: deque[_Window] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"sr-deploy-batcher-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        """Windows waiting for a batch."""
        return len(self._pending)

    def submit(self, job: Job) -> Job:
        """Queue all of ``job``'s windows; returns ``job``. RuntimeError after :meth:`close`."""
        now = time.monotonic()
        with self._cond:
            if self._closing:
                raise RuntimeError("the batcher is closed")
            self._pending.extend(_Window(job, y, x, now) for y, x in job.windows)
            self._cond.notify_all()
        return job

    def cancel(self, job: Job) -> None:
        """Drop ``job``'s pending windows and end it as cancelled (no effect on a job that has ended)."""
        with self._cond:
            kept = deque(w for w in self._pending if w.job is not job)
            dropped = len(self._pending) - len(kept)
            self.stats.dropped += dropped
            self._pending = kept
        job._finish(cancelled=True)
        if dropped and self._on_drop is not None:
            self._on_drop(dropped)

    def close(self, timeout: float | None = None) -> None:
        """Run what is pending, then stop the worker threads (waits up to ``timeout`` s for them)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _take(self) -> list[_Window] | None:
        """The next batch (None: closed and nothing pending)."""
        with self._cond:
            while True:
                while self._pending and self._pending[0].job.done:
                    self._pending.popleft()
                if not self._pending:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                first = self._pending[0]
                same = [w for w in self._pending if w.shape == first.shape and not w.job.done][: self.max_batch]
                wait = first.arrived + self.batch_wait_s - time.monotonic()
                if len(same) >= self.max_batch or wait <= 0 or self._closing:
                    taken = {id(w) for w in same}
                    self._pending = deque(w for w in self._pending if id(w) not in taken)
                    return same
                self._cond.wait(wait)

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._run(batch)
            except Exception as exc:  # a worker must never die with jobs waiting on it
                for window in batch:
                    window.job._finish(JobFailed(f"the model failed: {type(exc).__name__}"))

    def _run(self, batch: list[_Window]) -> None:
        try:
            outputs = self._infer(batch)
        except Exception as exc:
            jobs = list(dict.fromkeys(w.job for w in batch))
            if len(jobs) == 1:
                failure = JobFailed(f"the model failed: {type(exc).__name__}: {exc}")
                failure.__cause__ = exc
                jobs[0]._finish(failure)
                return
            for job in jobs:  # isolate: only the job whose windows fail on their own fails
                self._run([w for w in batch if w.job is job])
            return
        for window, tile_out in zip(batch, outputs, strict=True):
            window.job._place(window.y, window.x, tile_out)

    def _infer(self, batch: list[_Window]) -> np.ndarray:
        inputs = np.stack([window_input(w.job.image, w.y, w.x) for w in batch])
        start = time.perf_counter()
        outputs = self.upscaler.run(inputs)
        seconds = time.perf_counter() - start
        self.stats.batches += 1
        self.stats.windows += len(batch)
        self.stats.model_seconds += seconds
        if self._on_batch is not None:
            self._on_batch(len(batch), seconds)
        return outputs
