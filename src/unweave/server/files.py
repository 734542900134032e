"""Where a job's files live under ``data_dir``, and the checks that guard every path.

Layout::

    data_dir/unweave.db            job rows (store.py)
    data_dir/uploads/<id>.<ext>    the upload, removed once the job ends
    data_dir/jobs/<id>/stems/      finished stems, moved in only when the job is done
    data_dir/jobs/<id>/work-<n>/   separator output of attempt n (deleted afterwards)
    data_dir/jobs/<id>/peaks.json  waveform peaks per stem

A path taken from a request never reaches the filesystem unchecked: job ids must parse as
uuid4 and stem names must be among the job's recorded stems.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import uuid
from pathlib import Path

from ..fileio import write_bytes_atomic

_STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")

CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
}


def parse_job_id(text: str) -> str | None:
    """The canonical form of a uuid4 string, or None when ``text`` is not one."""
    try:
        value = uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
    if value.version != 4 or str(value) != text.lower():
        return None
    return str(value)


def new_job_id() -> str:
    return str(uuid.uuid4())


def is_safe_stem(name: str) -> bool:
    """Stem names become file names: letters, digits and ``_.+-``, no leading dot."""
    return bool(_STEM_RE.match(name)) and ".." not in name


def content_type(path: str | Path) -> str:
    return CONTENT_TYPES.get(Path(path).suffix.lstrip(".").lower(), "application/octet-stream")


def clean_filename(name: str | None, default: str = "upload") -> str:
    """A display name: the base name only, no control characters, at most 200 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:200] or default


def upload_suffix(filename: str) -> str:
    """The upload's extension when harmless (decoders use it as a hint), else ``.bin``."""
    ext = Path(filename).suffix.lstrip(".").lower()
    return f".{ext}" if _EXT_RE.match(ext) else ".bin"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it into place (owner-only, as
    the uploads are the users' files)."""
    write_bytes_atomic(path, data, mode=0o600)


class JobFiles:
    """Paths under ``data_dir``; every method takes an already validated job id."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).resolve()
        self.uploads = self.root / "uploads"
        self.jobs = self.root / "jobs"
        for d in (self.uploads, self.jobs):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def db_path(self) -> Path:
        return self.root / "unweave.db"

    def upload(self, upload_name: str) -> Path:
        path = (self.uploads / upload_name).resolve()
        if path.parent != self.uploads:
            raise ValueError(f"bad upload name {upload_name!r}")
        return path

    def job_dir(self, job_id: str) -> Path:
        if parse_job_id(job_id) is None:
            raise ValueError(f"bad job id {job_id!r}")
        return self.jobs / job_id

    def stems_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "stems"

    def work_dir(self, job_id: str, attempt: int) -> Path:
        return self.job_dir(job_id) / f"work-{int(attempt)}"

    def peaks(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "peaks.json"

    def stem(self, job_id: str, relative: str) -> Path:
        """The file of a finished stem (``relative`` comes from the job row, not the request)."""
        base = self.job_dir(job_id).resolve()
        path = (base / relative).resolve()
        if base not in path.parents:
            raise ValueError(f"bad stem path {relative!r}")
        return path

    def clear_work(self, job_id: str) -> None:
        """Remove leftovers of interrupted attempts (half-written separator output)."""
        job_dir = self.job_dir(job_id)
        if job_dir.is_dir():
            for child in job_dir.iterdir():
                if child.name.startswith(("work-", ".")):
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(
                        missing_ok=True
                    )

    def remove_job(self, job_id: str, upload_name: str | None) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        if upload_name:
            self.upload(upload_name).unlink(missing_ok=True)

    def orphans(self, known_ids: set[str]) -> list[Path]:
        """Job folders and uploads that no row refers to (e.g. a crash during an upload)."""
        found = [d for d in self.jobs.iterdir() if d.name not in known_ids]
        for f in self.uploads.iterdir():
            if f.name.split(".", 1)[0] not in known_ids:
                found.append(f)
        return found
