"""Flight of the Amazon Queen: entries of the ``queen.1c`` resource bundle.

Layout (big-endian): ``"QTBL"``, a 6-byte version string (``"CEM10\\0"``), 2 unused bytes,
a compression byte (1 = MP3 speech), a uint16 entry count, then 21-byte entries: 12-byte
NUL-padded name, bundle byte, uint32 offset, uint32 size. Speech = ``*.SB`` entries, each a raw
MPEG audio stream (11025 Hz mono). Some writers omit the version padding, so the table start is
found by checking that the first entry's data begins right after the table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ...errors import UnweaveError

MAGIC = b"QTBL"
ENTRY_LENGTH = 21


@dataclass(frozen=True)
class BundleEntry:
    name: str
    bundle: int
    offset: int
    size: int


def read_table(data: bytes, *, name: str = "queen.1c") -> tuple[int, list[BundleEntry]]:
    """Parse the bundle's table -> (compression byte, entries)."""
    if data[:4] != MAGIC:
        raise UnweaveError(f"{name}: not a compressed Queen bundle (no 'QTBL' header)")
    # Try the known table positions: compression byte at 12 (ScummVM layout) or right after
    # the version string (9 or 10).
    for comp_at in (12, 10, 9):
        if comp_at + 3 > len(data):
            continue
        compression = data[comp_at]
        (count,) = struct.unpack(">H", data[comp_at + 1:comp_at + 3])
        start = comp_at + 3
        end = start + count * ENTRY_LENGTH
        if count == 0 or end > len(data):
            continue
        first_offset = struct.unpack(">I", data[start + 13:start + 17])[0]
        if first_offset != end:
            continue
        entries = []
        for i in range(count):
            raw = data[start + i * ENTRY_LENGTH:start + (i + 1) * ENTRY_LENGTH]
            offset, size = struct.unpack(">II", raw[13:21])
            if offset + size > len(data):
                raise UnweaveError(f"{name}: entry {i} points past the end of the file")
            entry_name = raw[:12].split(b"\0", 1)[0].decode("latin-1")
            entries.append(BundleEntry(entry_name, raw[12], offset, size))
        return compression, entries
    raise UnweaveError(f"{name}: cannot find the resource table")


def speech_entries(entries: list[BundleEntry]) -> list[BundleEntry]:
    return [e for e in entries if e.name.upper().endswith(".SB")]


def entry_bytes(data: bytes, entry: BundleEntry) -> bytes:
    return data[entry.offset:entry.offset + entry.size]
