"""Jobs persisted in SQLite (stdlib ``sqlite3``): one row per job, shared by the API and workers.

Every state change is one short transaction under a lock, so the HTTP handlers, the worker
threads and the cleanup task can share a single connection. The row is the source of truth for
status and progress; files live under ``data_dir`` (see ``JobFiles`` in ``files.py``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
TERMINAL = frozenset({DONE, FAILED, CANCELLED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    filename TEXT NOT NULL,
    upload TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'queued',
    eta_seconds REAL,
    error TEXT,
    stems TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    duration_seconds REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
"""


@dataclass
class Job:
    """One separation job as stored. ``stems`` maps stem name -> file name in the job folder."""

    id: str
    model: str
    filename: str  # the uploaded file's original (sanitised) name, shown to users
    upload: str  # file name under uploads/
    options: dict[str, Any] = field(default_factory=dict)
    status: str = QUEUED
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0
    stage: str = "queued"
    eta_seconds: float | None = None
    error: str | None = None
    stems: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    cancel_requested: bool = False
    duration_seconds: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


_COLUMNS = (
    "id, status, model, filename, upload, options, created_at, started_at, finished_at, "
    "progress, stage, eta_seconds, error, stems, attempts, cancel_requested, duration_seconds"
)


def _row_to_job(row: tuple) -> Job:
    (jid, status, model, filename, upload, options, created, started, finished,
     progress, stage, eta, error, stems, attempts, cancel, duration) = row  # fmt: skip
    return Job(
        id=jid, status=status, model=model, filename=filename, upload=upload,
        options=json.loads(options), created_at=created, started_at=started,
        finished_at=finished, progress=progress, stage=stage, eta_seconds=eta, error=error,
        stems=dict(json.loads(stems)), attempts=attempts, cancel_requested=bool(cancel),
        duration_seconds=duration,
    )  # fmt: skip


class JobStore:
    """Thread-safe SQLite job table at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- reads ---------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _row_to_job(row)

    def recent(self, limit: int = 50) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_row_to_job(r) for r in rows]

    def count(self, status: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE status=?", (status,)).fetchone()[0]

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM jobs").fetchall()}

    def ids_with_status(self, status: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE status=? ORDER BY created_at", (status,)
            ).fetchall()
        return [r[0] for r in rows]

    def expired(self, before: float) -> list[Job]:
        """Finished jobs whose end (or, lacking one, creation) is older than ``before``."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE status IN (?, ?, ?) "
                "AND COALESCE(finished_at, created_at) < ?",
                (*sorted(TERMINAL), before),
            ).fetchall()
        return [_row_to_job(r) for r in rows]

    # --- writes --------------------------------------------------------------------------
    def insert(self, job: Job, *, queue_limit: int | None = None) -> bool:
        """Insert ``job``; with ``queue_limit``, only if fewer jobs are queued (atomic check)."""
        job.created_at = job.created_at or time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if queue_limit is not None:
                    (queued,) = self._db.execute(
                        "SELECT COUNT(*) FROM jobs WHERE status=?", (QUEUED,)
                    ).fetchone()
                    if queued >= queue_limit:
                        self._db.execute("ROLLBACK")
                        return False
                self._db.execute(
                    f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 17)})",
                    (job.id, job.status, job.model, job.filename, job.upload,
                     json.dumps(job.options), job.created_at, job.started_at, job.finished_at,
                     job.progress, job.stage, job.eta_seconds, job.error,
                     json.dumps(list(job.stems.items())), job.attempts,
                     int(job.cancel_requested), job.duration_seconds),
                )  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def _update(self, job_id: str, where: str, params: tuple, **values: Any) -> bool:
        sets = ", ".join(f"{k}=?" for k in values)
        with self._lock:
            cur = self._db.execute(
                f"UPDATE jobs SET {sets} WHERE id=? {where}", (*values.values(), job_id, *params)
            )
        return cur.rowcount > 0

    def claim(self, job_id: str) -> Job | None:
        """queued -> running (attempts + 1); None when the job is gone or no longer queued."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET status=?, started_at=?, attempts=attempts+1, progress=0, "
                "stage='starting', eta_seconds=NULL WHERE id=? AND status=?",
                (RUNNING, time.time(), job_id, QUEUED),
            )
        return self.get(job_id) if cur.rowcount else None

    def set_progress(self, job_id: str, progress: float, stage: str, eta: float | None) -> None:
        self._update(job_id, "AND status=?", (RUNNING,), progress=progress, stage=stage,
                     eta_seconds=eta)  # fmt: skip

    def finish(
        self, job_id: str, status: str, *, error: str | None = None,
        stems: dict[str, str] | None = None,
    ) -> bool:  # fmt: skip
        """queued|running -> terminal ``status``. Stems are recorded only here, once done."""
        if status not in TERMINAL:
            raise ValueError(f"not a terminal status: {status!r}")
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET status=?, stage=?, error=?, stems=?, finished_at=?, "
                "progress=CASE WHEN ?=1 THEN 1.0 ELSE progress END, eta_seconds=NULL "
                "WHERE id=? AND status IN (?, ?)",
                (status, status, error, json.dumps(list((stems or {}).items())), time.time(),
                 int(status == DONE), job_id, QUEUED, RUNNING),
            )  # fmt: skip
        return cur.rowcount > 0

    def requeue(self, job_id: str, *, refund_attempt: bool = False) -> bool:
        """running -> queued (a graceful shutdown interrupted it)."""
        extra = ", attempts=MAX(attempts-1, 0)" if refund_attempt else ""
        with self._lock:
            cur = self._db.execute(
                f"UPDATE jobs SET status=?, progress=0, stage='queued', eta_seconds=NULL{extra} "
                "WHERE id=? AND status=?",
                (QUEUED, job_id, RUNNING),
            )
        return cur.rowcount > 0

    def request_cancel(self, job_id: str) -> Job | None:
        """A queued job is cancelled at once; a running one gets its cancel flag set."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status=?, stage=?, finished_at=?, eta_seconds=NULL "
                "WHERE id=? AND status=?",
                (CANCELLED, CANCELLED, now, job_id, QUEUED),
            )
            self._db.execute(
                "UPDATE jobs SET cancel_requested=1 WHERE id=? AND status=?", (job_id, RUNNING)
            )
        return self.get(job_id)

    def delete(self, job_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,)).rowcount > 0

    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """After a crash: rows left ``running`` are re-queued, or failed past ``max_attempts``.

        Returns (re-queued ids, failed ids). Nothing is left ``running``.
        """
        requeued, failed = [], []
        with self._lock:
            rows = self._db.execute(
                "SELECT id, attempts FROM jobs WHERE status=? ORDER BY created_at", (RUNNING,)
            ).fetchall()
            for job_id, attempts in rows:
                if attempts < max_attempts:
                    self._db.execute(
                        "UPDATE jobs SET status=?, progress=0, stage='queued (retry)', "
                        "eta_seconds=NULL WHERE id=?",
                        (QUEUED, job_id),
                    )
                    requeued.append(job_id)
                else:
                    self._db.execute(
                        "UPDATE jobs SET status=?, stage=?, error=?, finished_at=?, "
                        "eta_seconds=NULL WHERE id=?",
                        (FAILED, FAILED, (f"the server stopped during this job {attempts} "
                         "times; giving up"), time.time(), job_id),
                    )  # fmt: skip
                    failed.append(job_id)
        return requeued, failed
