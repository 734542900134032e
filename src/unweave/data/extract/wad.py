"""Doom WAD lumps (IWAD/PWAD): music lumps ``D_*`` as standard MIDI files.

Layout (little-endian): 4-byte ident ``IWAD``/``PWAD``, int32 lump count, int32 directory
offset; directory of 16-byte entries: int32 offset, int32 size, 8-byte NUL-padded name.
Music lumps are MIDI (``MThd``) or Doom's MUS (``MUS\\x1a``), converted here to MIDI.
"""

from __future__ import annotations

import hashlib
import struct

from ...errors import UnweaveError
from .mus import MUS_MAGIC, mus_to_midi


def read_lumps(data: bytes, *, name: str = "<wad>") -> list[tuple[str, bytes]]:
    """-> [(lump name, lump bytes)] in directory order."""
    if len(data) < 12 or data[:4] not in (b"IWAD", b"PWAD"):
        raise UnweaveError(f"{name}: not a WAD file")
    count, directory = struct.unpack("<ii", data[4:12])
    if count < 0 or directory < 0 or directory + 16 * count > len(data):
        raise UnweaveError(f"{name}: directory is out of range")
    lumps = []
    for i in range(count):
        offset, size, raw = struct.unpack("<ii8s", data[directory + 16 * i:directory + 16 * i + 16])
        if offset < 0 or size < 0 or offset + size > len(data):
            raise UnweaveError(f"{name}: lump {i} is out of range")
        lumps.append((raw.split(b"\0", 1)[0].decode("latin-1").upper(), data[offset:offset + size]))
    return lumps


def music_lumps(data: bytes, *, name: str = "<wad>") -> list[tuple[str, bytes, str]]:
    """Music lumps -> [(lump name, MIDI bytes, sha256 of the original lump bytes)].

    MUS lumps are converted to MIDI; lumps that are neither MIDI nor MUS are skipped.
    """
    out = []
    for lump_name, lump in read_lumps(data, name=name):
        if not lump_name.startswith("D_") or not lump:
            continue
        digest = hashlib.sha256(lump).hexdigest()
        if lump[:4] == b"MThd":
            out.append((lump_name, lump, digest))
        elif lump[:4] == MUS_MAGIC:
            out.append((lump_name, mus_to_midi(lump, name=f"{name}:{lump_name}"), digest))
    return out
