"""Server settings: one frozen dataclass, filled by ``unweave serve`` or by tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# A separation backend: (model, upload path, output folder, options, progress) -> {stem: path}.
# ``progress(done_fraction, stage)`` may raise ``Cancelled``. Tests inject slow or failing ones.
SeparateFn = Callable[..., dict]


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app`` needs; no module-level state anywhere in the server."""

    # --- storage -------------------------------------------------------------------------
    data_dir: Path = Path("unweave-data")  # holds unweave.db, uploads/ and jobs/<id>/
    # --- work ----------------------------------------------------------------------------
    workers: int = 1  # separations running at the same time (threads)
    queue_limit: int = 8  # jobs waiting for a worker; the next upload gets HTTP 429
    max_attempts: int = 2  # a job interrupted by a crash is retried once, then failed
    # --- limits --------------------------------------------------------------------------
    max_upload_mb: float = 1024.0  # request body limit in MiB (HTTP 413 when over)
    max_duration_seconds: float = 4 * 3600.0  # longest accepted recording (HTTP 413 when over)
    expire_hours: float = 24.0  # finished jobs (files + rows) are deleted after this
    cleanup_interval_seconds: float = 300.0  # how often the expiry task runs
    # --- access --------------------------------------------------------------------------
    token: str | None = None  # when set, every /api call needs it (Bearer header or ?token=)
    # --- models --------------------------------------------------------------------------
    default_model: str | None = None  # preselected on the page; None: the catalog's music default
    models: tuple[str, ...] | None = None  # the offered models (None: the trained catalog)
    device: str = "cpu"
    separate_fn: SeparateFn | None = field(default=None, compare=False)  # None: Separator
    peaks_bins: int = 1200  # waveform resolution sent to the page

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.queue_limit < 1:  # a new job is queued before a worker takes it
            raise ValueError("queue_limit must be >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.max_upload_mb <= 0 or self.max_duration_seconds <= 0:
            raise ValueError("max_upload_mb and max_duration_seconds must be > 0")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def expire_seconds(self) -> float:
        return self.expire_hours * 3600.0
