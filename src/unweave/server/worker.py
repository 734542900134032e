"""A bounded pool of worker threads that run separations outside the event loop.

Each worker takes a job id from a queue, claims the row (queued -> running, attempt + 1),
runs the separator into a private ``work-<attempt>/`` folder, moves the finished stems into
``stems/`` and only then marks the row done with its stems. A cancel flag (or a server
shutdown) makes the progress callback raise ``Cancelled``; a crash leaves the row ``running``
for ``JobManager.recover`` to retry once on the next start.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UnweaveError
from .files import JobFiles, is_safe_stem
from .settings import Settings
from .store import CANCELLED, DONE, FAILED, Job, JobStore

log = logging.getLogger("unweave.server")

PROGRESS_INTERVAL_SECONDS = 0.25  # at most this often a progress row update


class Cancelled(Exception):
    """Raised from the progress callback to stop a separation."""


class SeparatorCache:
    """Loaded ``Separator`` objects by (model, shifts), the least recently used dropped."""

    def __init__(self, device: str, size: int = 2) -> None:
        self.device, self.size = device, size
        self._items: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, shifts: int) -> Any:
        from ..inference.separator import Separator  # torch is imported by workers only

        key = (model, shifts)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        separator = Separator(model, shifts=shifts, device=self.device)
        with self._lock:
            self._items[key] = separator
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return separator


def run_separator(cache: SeparatorCache, model: str, path: Path, out_dir: Path,
                  options: dict[str, Any], progress: Callable[[float, str], None]) -> dict:
    """The one place the server calls the separation pipeline: upload -> {stem: path}."""
    progress(0.0, "loading model")
    separator = cache.get(model, int(options.get("shifts", 0)))
    return separator.separate_to_files(
        path, out_dir, stems=options.get("stems") or None, fmt=options.get("format", "wav"),
        progress=progress,
    )  # fmt: skip


class _Progress:
    """Progress callback for one running job: throttled row updates, ETA, cancel checks."""

    def __init__(self, store: JobStore, job_id: str, cancel: threading.Event,
                 shutdown: threading.Event) -> None:  # fmt: skip
        self.store, self.job_id, self.cancel, self.shutdown = store, job_id, cancel, shutdown
        self.started = time.monotonic()
        self.first: tuple[float, float] | None = None  # (time, fraction) at first real progress
        self.last_write = 0.0
        self.last_stage = ""

    def __call__(self, fraction: float, stage: str) -> None:
        if self.cancel.is_set() or self.shutdown.is_set():
            raise Cancelled(self.job_id)
        now = time.monotonic()
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.first is None and fraction > 0:
            self.first = (now, fraction)
        if stage == self.last_stage and now - self.last_write < PROGRESS_INTERVAL_SECONDS:
            return
        eta = None
        if self.first is not None and fraction > self.first[1] and fraction < 1:
            rate = (fraction - self.first[1]) / max(now - self.first[0], 1e-6)
            eta = round((1.0 - fraction) / rate, 1)
        self.store.set_progress(self.job_id, round(fraction * 0.98, 4), stage, eta)
        self.last_write, self.last_stage = now, stage


class WorkerPool:
    """``settings.workers`` threads pulling job ids; ``submit`` never blocks."""

    def __init__(self, settings: Settings, store: JobStore, files: JobFiles) -> None:
        self.settings, self.store, self.files = settings, store, files
        self.cache = SeparatorCache(settings.device)
        self.separate = settings.separate_fn or functools.partial(run_separator, self.cache)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._shutdown = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._loop, name=f"unweave-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            flag = self._cancel.get(job_id)
        if flag is not None:
            flag.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Interrupt running jobs (they go back to the queue) and join the threads."""
        self._shutdown.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    # --- inside a worker thread ----------------------------------------------------------
    def _loop(self) -> None:
        while not self._shutdown.is_set():
            job_id = self._queue.get()
            if job_id is None or self._shutdown.is_set():
                return
            job = self.store.claim(job_id)
            if job is None:  # cancelled or deleted while queued
                continue
            flag = threading.Event()
            with self._lock:
                self._cancel[job_id] = flag
            try:
                self._run(job, flag)
            except Exception as exc:  # never let one job kill the worker
                log.exception("job %s: unexpected error", job_id)
                self.store.finish(job_id, FAILED, error=f"internal error ({type(exc).__name__}; "
                                                        "see the server log)")  # fmt: skip
                self._drop_upload(job)
            finally:
                with self._lock:
                    self._cancel.pop(job_id, None)

    def _run(self, job: Job, cancel: threading.Event) -> None:
        upload = self.files.upload(job.upload)
        work = self.files.work_dir(job.id, job.attempts)
        self.files.clear_work(job.id)
        work.mkdir(parents=True)
        if cancel.is_set() or self.store.get(job.id).cancel_requested:
            cancel.set()
        progress = _Progress(self.store, job.id, cancel, self._shutdown)
        try:
            outputs = self.separate(job.model, upload, work, dict(job.options), progress)
            progress(0.99, "waveforms")
            stems = self._publish(job, outputs)
        except Cancelled:
            self._discard(job)
            if self._shutdown.is_set() and not cancel.is_set():
                self.store.requeue(job.id, refund_attempt=True)  # resumes on the next start
            elif self.store.finish(job.id, CANCELLED):
                self._drop_upload(job)
            return
        except UnweaveError as exc:
            self._discard(job)
            message = str(exc).replace(str(upload), job.filename)  # no server paths in replies
            self.store.finish(job.id, FAILED, error=message)
            self._drop_upload(job)
            return
        except BaseException:
            self._discard(job)
            raise
        if self.store.finish(job.id, DONE, stems=stems):
            self._drop_upload(job)
        else:  # deleted while it ran
            self.files.remove_job(job.id, job.upload)

    def _publish(self, job: Job, outputs: dict) -> dict[str, str]:
        """Move finished separator outputs into ``stems/`` (renames) and write the peaks."""
        from . import media  # imports torch: only once work arrives, not at server start

        stems_dir = self.files.stems_dir(job.id)
        shutil.rmtree(stems_dir, ignore_errors=True)
        stems_dir.mkdir(parents=True)
        stems: dict[str, str] = {}
        for name, path in outputs.items():
            path = Path(path)
            ext = path.suffix.lstrip(".").lower()
            if not is_safe_stem(name) or not ext.isalnum():
                raise UnweaveError(f"{job.filename}: the model produced a bad stem name {name!r}")
            os.replace(path, stems_dir / f"{name}.{ext}")
            stems[name] = f"stems/{name}.{ext}"
        shutil.rmtree(self.files.work_dir(job.id, job.attempts), ignore_errors=True)
        media.write_peaks({n: stems_dir / Path(rel).name for n, rel in stems.items()},
                          self.settings.peaks_bins, self.files.peaks(job.id))  # fmt: skip
        return stems

    def _discard(self, job: Job) -> None:
        """Remove everything an unfinished attempt wrote (separator output, moved stems)."""
        self.files.clear_work(job.id)
        shutil.rmtree(self.files.stems_dir(job.id), ignore_errors=True)
        self.files.peaks(job.id).unlink(missing_ok=True)

    def _drop_upload(self, job: Job) -> None:
        self.files.upload(job.upload).unlink(missing_ok=True)
