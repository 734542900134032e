"""Streaming ``multipart/form-data`` receiver: the file part goes straight to disk.

Starlette's form parser spools a whole upload before the handler sees it; here the body is
parsed as it arrives, bytes are counted, and an upload over the limit is stopped at once
(HTTP 413) without reading or storing the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

MAX_FIELD_BYTES = 64 * 1024  # text fields (model, options) are small
MULTIPART_SLACK = 1024 * 1024  # headers and text fields beyond the file itself


class UploadError(Exception):
    """A malformed or oversized upload; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def multipart_boundary(content_type: str | None) -> bytes:
    mime, params = parse_options_header(content_type or "")
    if mime != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(400, "expected a multipart/form-data body with a 'file' part")
    return params[b"boundary"]


class MultipartReceiver:
    """Feed body chunks; the part named ``file`` is written to ``dest``, other parts are kept
    as text in ``fields``. ``filename`` is the client's name for the file (unsanitised)."""

    def __init__(self, boundary: bytes, dest: Path, max_file_bytes: int) -> None:
        self.dest, self.max_file_bytes = dest, max_file_bytes
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_bytes = 0
        self.body_bytes = 0
        self._out = None
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._part: str | None = None  # field name of the current part
        self._is_file = False
        self._buffer = bytearray()
        self._error: UploadError | None = None
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._acc_header("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._acc_header("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        })  # fmt: skip

    # --- parser callbacks ----------------------------------------------------------------
    def _part_begin(self) -> None:
        self._headers, self._part, self._is_file = {}, None, False
        self._buffer = bytearray()

    def _acc_header(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part = params.get(b"name", b"").decode("utf-8", "replace")
        if self._part == "file" and b"filename" in params:
            if self._out is not None:
                raise UploadError(400, "send exactly one 'file' part")
            self._is_file = True
            self.filename = params[b"filename"].decode("utf-8", "replace")
            self._out = open(self.dest, "wb")  # noqa: SIM115 (closed in close())

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.file_bytes += end - start
            if self.file_bytes > self.max_file_bytes:
                raise UploadError(413, f"upload is larger than the limit of "
                                       f"{self.max_file_bytes / 2**20:.0f} MiB")  # fmt: skip
            self._out.write(data[start:end])
        else:
            self._buffer += data[start:end]
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise UploadError(413, f"form field {self._part!r} is too large")

    def _part_end(self) -> None:
        if self._is_file:
            self._out.flush()
        elif self._part:
            self.fields[self._part] = self._buffer.decode("utf-8", "replace")

    # --- driving -------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self.body_bytes += len(chunk)
        if self.body_bytes > self.max_file_bytes + MULTIPART_SLACK:
            raise UploadError(413, f"request body is larger than the limit of "
                                   f"{self.max_file_bytes / 2**20:.0f} MiB")  # fmt: skip
        try:
            self._parser.write(chunk)
        except UploadError:
            raise
        except Exception as exc:  # python-multipart's parse errors
            raise UploadError(400, f"malformed multipart body ({exc})") from exc

    def finish(self) -> None:
        try:
            self._parser.finalize()
        except Exception as exc:
            raise UploadError(400, f"malformed multipart body ({exc})") from exc

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def receive_upload(
    stream: AsyncIterator[bytes], content_type: str | None, dest: Path, max_file_bytes: int
) -> MultipartReceiver:
    """Parse the request ``stream`` into ``dest`` + text fields; removes ``dest`` on error."""
    receiver = MultipartReceiver(multipart_boundary(content_type), dest, max_file_bytes)
    try:
        async for chunk in stream:
            if chunk:
                receiver.feed(chunk)
        receiver.finish()
        if receiver.filename is None:
            raise UploadError(400, "the form has no 'file' part")
    except BaseException:
        receiver.close()
        dest.unlink(missing_ok=True)
        raise
    receiver.close()
    return receiver
