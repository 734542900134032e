"""RNC ProPack method 1 unpacker (used by Beneath a Steel Sky's data files).

Format (as documented by ScummVM's ``engines/sky/rnc_deco.cpp``), all integers big-endian::

    0   "RNC" + method byte (1)
    4   uint32 unpacked length
    8   uint32 packed length (bytes after the 18-byte header)
    12  uint16 CRC-16 of the unpacked data
    14  uint16 CRC-16 of the packed data
    16  uint8 leeway, uint8 number of blocks
    18  packed data

The packed data is an LSB-first bit stream read in 16-bit little-endian words, with literal
byte runs interleaved: a literal run starts at the first word that has not yet been needed by
the bit reader; reading words lazily makes that word the reader's next word. The stream opens
with 2 ignored bits. Each block: three Huffman tables (literal-run lengths, match offsets, match
lengths), each as a 5-bit code count then 4-bit code lengths (canonical codes, assigned by
length then symbol, sent bit-reversed); then a 16-bit count of (literal run, match) pairs, the
last pair having no match. A Huffman symbol ``s`` codes value ``s`` if ``s < 2``, else
``(1 << (s - 1)) | bits(s - 1)``. Offsets are coded minus 1, match lengths minus 2.
"""

from __future__ import annotations

import struct

from ...errors import UnweaveError

HEADER_LENGTH = 18
SIGNATURE = b"RNC\x01"


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        value = i
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
        table.append(value)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/ARC (reflected polynomial 0xA001, initial value 0), as ProPack uses."""
    crc = 0
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


class _BitReader:
    """LSB-first bits from 16-bit little-endian words, loaded when needed."""

    __slots__ = ("buf", "count", "data", "pos")

    def __init__(self, data: bytes, pos: int):
        self.data, self.pos, self.buf, self.count = data, pos, 0, 0

    def fill(self, n: int) -> None:
        data = self.data
        while self.count < n:
            word = int.from_bytes(data[self.pos:self.pos + 2], "little")  # zero past the end
            self.buf |= word << self.count
            self.count += 16
            self.pos += 2

    def bits(self, n: int) -> int:
        if self.count < n:
            self.fill(n)
        value = self.buf & ((1 << n) - 1)
        self.buf >>= n
        self.count -= n
        return value

    def literal(self, length: int) -> bytes:
        """Take ``length`` raw bytes starting at the first word the bit reader has not needed."""
        unused_words = self.count // 16  # words loaded ahead by a peek, given back
        self.pos -= 2 * unused_words
        self.count -= 16 * unused_words
        self.buf &= (1 << self.count) - 1
        out = self.data[self.pos:self.pos + length]
        if len(out) != length:
            raise ValueError("literal run past the end of the packed data")
        self.pos += length
        return out


class _Huffman:
    """Canonical prefix code -> lookup table indexed by the next ``max_length`` stream bits."""

    __slots__ = ("max_length", "table")

    def __init__(self, lengths: list[int]):
        self.max_length = max(lengths, default=0)
        self.table: list[tuple[int, int] | None] = [None] * (1 << self.max_length)
        code = 0  # 16-bit left-aligned canonical code
        for length in range(1, 17):
            for symbol, sym_length in enumerate(lengths):
                if sym_length != length:
                    continue
                value = code >> (16 - length)
                reversed_code = int(f"{value:0{length}b}"[::-1], 2)
                for high in range(1 << (self.max_length - length)):
                    self.table[reversed_code | (high << length)] = (length, symbol)
                code += 1 << (16 - length)

    def decode(self, reader: _BitReader) -> int:
        if self.max_length == 0:
            raise ValueError("value read from an empty Huffman table")
        if reader.count < self.max_length:
            reader.fill(self.max_length)
        entry = self.table[reader.buf & ((1 << self.max_length) - 1)]
        if entry is None:
            raise ValueError("invalid Huffman code")
        length, symbol = entry
        reader.buf >>= length
        reader.count -= length
        if symbol < 2:
            return symbol
        return (1 << (symbol - 1)) | reader.bits(symbol - 1)


def _read_table(reader: _BitReader) -> _Huffman:
    count = reader.bits(5)
    return _Huffman([reader.bits(4) for _ in range(count)])


def read_header(packed: bytes) -> tuple[int, int, int, int, int]:
    """-> (unpacked_length, packed_length, unpacked_crc, packed_crc, blocks)."""
    if len(packed) < HEADER_LENGTH or packed[:4] != SIGNATURE:
        raise UnweaveError("not RNC ProPack method 1 data (missing 'RNC\\x01' signature)")
    unpacked_length, packed_length, crc_unpacked, crc_packed = struct.unpack(">IIHH", packed[4:16])
    return unpacked_length, packed_length, crc_unpacked, crc_packed, packed[17]


def unpack(packed: bytes, *, check_crc: bool = True, name: str = "<rnc>") -> bytes:
    """Unpack one RNC method 1 stream (header included) -> the original bytes.

    Raises UnweaveError naming ``name`` on a bad signature, CRC mismatch or corrupt stream.
    """
    try:
        unpacked_length, packed_length, crc_unpacked, crc_packed, blocks = read_header(packed)
    except UnweaveError as exc:
        raise UnweaveError(f"{name}: {exc}") from None
    body = bytes(packed[HEADER_LENGTH:HEADER_LENGTH + packed_length])
    if check_crc and crc16(body) != crc_packed:
        raise UnweaveError(f"{name}: RNC packed-data CRC mismatch")
    out = bytearray()
    reader = _BitReader(body, 0)
    try:
        reader.bits(2)  # lock and key flags, unused
        for _ in range(blocks):
            raw_table, offset_table, length_table = (_read_table(reader) for _ in range(3))
            pairs = reader.bits(16) or 0x10000
            for remaining in range(pairs, 0, -1):
                run = raw_table.decode(reader)
                if run:
                    out += reader.literal(run)
                if remaining > 1:
                    offset = offset_table.decode(reader) + 1
                    length = length_table.decode(reader) + 2
                    if offset > len(out):
                        raise ValueError("match offset before the start of the output")
                    start = len(out) - offset
                    if offset >= length:
                        out += out[start:start + length]
                    else:  # overlapping copy repeats the last `offset` bytes
                        pattern = bytes(out[start:])
                        out += (pattern * (length // offset + 1))[:length]
    except (ValueError, IndexError) as exc:
        raise UnweaveError(f"{name}: corrupt RNC stream ({exc})") from None
    if len(out) < unpacked_length:
        raise UnweaveError(f"{name}: RNC stream ended early "
                           f"({len(out)} of {unpacked_length} bytes)")
    result = bytes(out[:unpacked_length])
    if check_crc and crc16(result) != crc_unpacked:
        raise UnweaveError(f"{name}: RNC unpacked-data CRC mismatch")
    return result
