"""``JobManager``: the job life cycle on top of the store, the files and the worker pool.

One instance lives on ``app.state.jobs``. ``start()`` makes a restart safe: rows left
``running`` by a crash are retried once (attempt counter) or failed, queued rows are queued
again and leftovers of interrupted work are removed; ``cleanup_expired()`` deletes old jobs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .files import JobFiles
from .settings import Settings
from .store import QUEUED, RUNNING, Job, JobStore
from .worker import WorkerPool

log = logging.getLogger("unweave.server")


class JobManager:
    """Owns the SQLite store, the data folder and the worker threads of one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files = JobFiles(settings.data_dir)
        self.store = JobStore(self.files.db_path)
        self.pool = WorkerPool(settings, self.store, self.files)
        self._io: ThreadPoolExecutor | None = None
        self._slots_lock = threading.Lock()
        self._uploading = 0  # uploads being received, each holding a queue place
        self.started = False

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking ``fn(*args)`` (probing, zipping, remixing, ...) off the event loop.

        These threads belong to the app and are joined by ``stop()``: a thread that used torch
        and is still alive when the interpreter exits makes it abort ("terminate called").
        """
        if self._io is None:
            self._io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="unweave-io")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, functools.partial(fn, *args))

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Recover from a previous run, then start the workers (called once, at startup)."""
        requeued, failed = self.store.recover(self.settings.max_attempts)
        for job_id in requeued + failed:
            self.files.clear_work(job_id)
        for job_id in failed:
            job = self.store.get(job_id)
            self.files.upload(job.upload).unlink(missing_ok=True)
        if requeued or failed:
            log.warning("recovered %d interrupted job(s): %d retried, %d failed",
                        len(requeued) + len(failed), len(requeued), len(failed))  # fmt: skip
        for orphan in self.files.orphans(self.store.ids()):  # e.g. an upload cut by a crash
            shutil.rmtree(orphan, ignore_errors=True) if orphan.is_dir() else orphan.unlink(
                missing_ok=True
            )
        for job_id in self.store.ids_with_status(QUEUED):
            job = self.store.get(job_id)
            if job is not None and not self.files.upload(job.upload).is_file():
                self.store.finish(job_id, "failed", error=f"{job.filename}: the upload is gone")
                continue
            self.pool.submit(job_id)
        self.pool.start()
        self.started = True

    def stop(self) -> None:
        """Stop the workers (running jobs go back to the queue) and join every thread."""
        if self.started:
            self.pool.stop()
            self.started = False
        if self._io is not None:
            self._io.shutdown(wait=True, cancel_futures=True)
            self._io = None
        self.store.close()

    # --- operations used by the HTTP layer -----------------------------------------------
    def reserve_slot(self) -> bool:
        """Hold a queue place for an upload in progress; False when queued jobs plus uploads
        in progress already fill the queue. Pair with ``release_slot()``."""
        with self._slots_lock:
            if self.store.count(QUEUED) + self._uploading >= self.settings.queue_limit:
                return False
            self._uploading += 1
            return True

    def release_slot(self) -> None:
        with self._slots_lock:
            self._uploading -= 1

    def enqueue(self, job: Job) -> bool:
        """Insert a queued job if the queue has room (atomic) and hand it to the workers."""
        if not self.store.insert(job, queue_limit=self.settings.queue_limit):
            return False
        self.pool.submit(job.id)
        return True

    def cancel(self, job_id: str) -> Job | None:
        job = self.store.request_cancel(job_id)
        if job is not None and job.status == RUNNING:
            self.pool.cancel(job_id)
        elif job is not None and job.terminal:
            self.files.upload(job.upload).unlink(missing_ok=True)
        return job

    def delete(self, job_id: str) -> bool:
        """Remove a job's row and files; a running job is cancelled first."""
        job = self.store.get(job_id)
        if job is None:
            return False
        if job.status in (QUEUED, RUNNING):
            self.cancel(job_id)
        self.store.delete(job_id)
        self.files.remove_job(job_id, job.upload)
        return True

    def stem_paths(self, job: Job) -> dict[str, Path]:
        """Finished stems of a done job (empty otherwise): name -> file."""
        return {name: self.files.stem(job.id, rel) for name, rel in job.stems.items()}

    def cleanup_expired(self, now: float | None = None) -> list[str]:
        """Delete finished jobs older than ``expire_hours`` (rows and files); returns ids."""
        now = time.time() if now is None else now
        removed = []
        for job in self.store.expired(before=now - self.settings.expire_seconds):
            self.store.delete(job.id)
            self.files.remove_job(job.id, job.upload)
            removed.append(job.id)
        if removed:
            log.info("expired %d job(s)", len(removed))
        return removed
