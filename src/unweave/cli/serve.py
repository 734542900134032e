"""``unweave serve``: start the web app and HTTP API (FastAPI on uvicorn).

Binds 127.0.0.1 by default; pass ``--host 0.0.0.0`` (and preferably ``--token``) to serve a
network. The page is at http://HOST:PORT/ and the API docs at http://HOST:PORT/docs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import UnweaveError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--data-dir", type=Path, default=Path("unweave-data"),
                        help="jobs database, uploads and stems (default ./unweave-data)")
    parser.add_argument("--workers", type=int, default=1,
                        help="separations run at the same time (default 1)")
    parser.add_argument("--queue-limit", type=int, default=8,
                        help="jobs waiting for a worker before uploads get HTTP 429 (default 8)")
    parser.add_argument("--max-upload-mb", type=float, default=1024.0,
                        help="largest upload in MiB (default 1024)")
    parser.add_argument("--max-duration-seconds", type=float, default=4 * 3600.0,
                        help="longest recording accepted, in seconds (default 14400)")
    parser.add_argument("--expire-hours", type=float, default=24.0,
                        help="delete finished jobs and their files after this (default 24)")
    parser.add_argument("--token", default=os.environ.get("UNWEAVE_TOKEN"),
                        help="require this API token (default: $UNWEAVE_TOKEN, none if unset)")
    parser.add_argument("--model", dest="default_model", default=None,
                        help="model preselected on the page (default: the first trained one)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise UnweaveError("unweave serve needs the server extra: pip install 'unweave[server]'")
    from ..server import Settings, create_app

    try:
        settings = Settings(
            data_dir=args.data_dir, workers=args.workers, queue_limit=args.queue_limit,
            max_upload_mb=args.max_upload_mb, max_duration_seconds=args.max_duration_seconds,
            expire_hours=args.expire_hours, token=args.token or None,
            default_model=args.default_model, device=args.device,
        )  # fmt: skip
    except ValueError as exc:
        raise UnweaveError(f"serve: {exc}") from None
    try:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnweaveError(f"{args.data_dir}: cannot create the data folder ({exc.strerror})")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.token:
        print(f"warning: serving on {args.host} without --token: anyone who can reach it can "
              "upload files and run jobs")  # fmt: skip
    print(f"unweave: http://{args.host}:{args.port}/  (API docs at /docs, data in "
          f"{args.data_dir.resolve()})")  # fmt: skip
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=15)  # fmt: skip
    return 0
