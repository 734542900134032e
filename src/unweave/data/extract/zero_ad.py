"""0 A.D. ``public.zip``: Ogg Vorbis members under ``audio/`` (music, ambient, effects).

The real archive has ``audio/music``, ``audio/ambient`` and, for effects, ``audio/attack``,
``audio/actor``, ``audio/resource``, ``audio/interface`` (plus ``audio/sfx`` in other
releases). ``audio/voice`` holds unit voice lines (speech, not effects).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ...errors import UnweaveError

GROUPS = {
    "music": ("audio/music/",),
    "ambient": ("audio/ambient/",),
    "sfx": ("audio/sfx/", "audio/attack/", "audio/actor/", "audio/resource/", "audio/interface/"),
    "voice": ("audio/voice/",),
}
AUDIO_SUFFIXES = (".ogg", ".oga", ".wav", ".flac", ".mp3")


def list_members(archive: zipfile.ZipFile, group: str) -> list[str]:
    """Audio member names of one group (``music``, ``ambient``, ``sfx``, ``voice``), sorted."""
    if group not in GROUPS:
        raise UnweaveError(f"unknown 0 A.D. audio group {group!r}; choose from {sorted(GROUPS)}")
    prefixes = GROUPS[group]
    return sorted(
        info.filename for info in archive.infolist()
        if info.filename.startswith(prefixes) and info.filename.lower().endswith(AUDIO_SUFFIXES)
        and info.file_size > 0
    )


def open_archive(path: str | Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UnweaveError(f"{path}: cannot open zip archive ({exc})") from None
