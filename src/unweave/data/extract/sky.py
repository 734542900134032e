"""Beneath a Steel Sky: files of ``sky.dsk`` through the ``sky.dnr`` index; speech clips.

``sky.dnr``: uint32 LE entry count, then 8-byte entries: uint16 LE file number, 24-bit LE
offset (bit 23: offset is in 16-byte units), 24-bit LE flags (bits 0-21 size in bytes, bit 22:
unpacked data excludes the 22-byte header, bit 23: stored uncompressed).
Each file starts with a 22-byte header of 11 uint16 LE (``flag`` first, ``s_tot_size`` 7th);
``flag`` bit 7 marks RNC-packed data (after the header); the unpacked length is
``(flag & 0xFF00) << 8 | s_tot_size``. Speech: file numbers 50000-55999, 8-bit unsigned PCM
at 11025 Hz after the header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from ...errors import UnweaveError
from . import rnc

HEADER_LENGTH = 22
SPEECH_FIRST, SPEECH_LAST = 50000, 55999
SPEECH_SAMPLE_RATE = 11025


@dataclass(frozen=True)
class DiskEntry:
    number: int
    offset: int  # bytes into sky.dsk
    size: int  # stored bytes
    flags: int


def read_index(dnr: bytes) -> dict[int, DiskEntry]:
    """Parse ``sky.dnr`` -> {file number: entry}."""
    if len(dnr) < 4:
        raise UnweaveError("sky.dnr: file is too short")
    (count,) = struct.unpack("<I", dnr[:4])
    if 4 + 8 * count > len(dnr):
        raise UnweaveError(f"sky.dnr: index of {count} entries is truncated")
    entries = {}
    for i in range(count):
        raw = dnr[4 + 8 * i:12 + 8 * i]
        number = raw[0] | raw[1] << 8
        offset = int.from_bytes(raw[2:5], "little")
        flags = int.from_bytes(raw[5:8], "little")
        if offset & 0x800000:
            offset = (offset & 0x7FFFFF) << 4
        entries[number] = DiskEntry(number, offset, flags & 0x3FFFFF, flags)
    return entries


def load_file(dsk: BinaryIO, entry: DiskEntry, *, check_crc: bool = True) -> bytes:
    """Read one file (header + data), unpacking RNC data when it is packed."""
    dsk.seek(entry.offset)
    stored = dsk.read(entry.size)
    name = f"sky.dsk file {entry.number}"
    if len(stored) != entry.size:
        raise UnweaveError(f"{name}: truncated ({len(stored)} of {entry.size} bytes)")
    if len(stored) < HEADER_LENGTH:
        return stored
    flag = struct.unpack("<H", stored[:2])[0]
    stored_uncompressed = bool(entry.flags >> 23 & 1)
    if stored_uncompressed or not flag >> 7 & 1:
        return stored
    data = rnc.unpack(stored[HEADER_LENGTH:], check_crc=check_crc, name=name)
    if entry.flags >> 22 & 1:  # the packed data carries its own header
        return data
    return stored[:HEADER_LENGTH] + data


def speech_numbers(index: dict[int, DiskEntry]) -> list[int]:
    return sorted(n for n in index if SPEECH_FIRST <= n <= SPEECH_LAST)


def speech_pcm(file_data: bytes) -> bytes:
    """Speech file (header + data) -> its 8-bit unsigned PCM bytes (11025 Hz mono)."""
    if len(file_data) <= HEADER_LENGTH:
        return b""
    fields = struct.unpack("<11H", file_data[:HEADER_LENGTH])
    total = (fields[0] & 0xFF00) << 8 | fields[6]
    body = file_data[HEADER_LENGTH:]
    return body[:total] if 0 < total <= len(body) else body
