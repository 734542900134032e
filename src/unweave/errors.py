"""User-facing error types: each carries a one-line message naming the file and the problem."""


class UnweaveError(Exception):
    """Base class for errors shown to users as one line (CLI exit code 1)."""


class AudioReadError(UnweaveError):
    """A file could not be decoded (missing, empty, truncated, not audio, no audio track, ...)."""


class AudioWriteError(UnweaveError):
    """An output could not be written (unwritable folder, disk full, ...)."""


class ModelError(UnweaveError):
    """Unknown model name, bad checkpoint, checksum mismatch."""
