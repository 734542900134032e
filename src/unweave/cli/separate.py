"""``unweave separate``: files and folders in, stems out (the Demucs-style command line)."""

from __future__ import annotations

import argparse
import string
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..errors import UnweaveError
from . import add_chunking_arguments, positive_int, refine_request

AUDIO_SUFFIXES = {
    ".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".aif", ".aiff", ".wma",
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v",
}
TEMPLATE_FIELDS = {"track", "stem", "ext", "model", "trackext"}


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_FOLDERS",
                   help="audio or video files, or folders (searched recursively)")
    p.add_argument("-n", "--name", "--model", dest="model", default="default",
                   help="model name (see `unweave models`), checkpoint path or URL")
    add_chunking_arguments(p)
    p.add_argument("--stems", default=None, help="comma-separated stems to write (default all)")
    p.add_argument("--two-stems", default=None, metavar="STEM",
                   help="write STEM and no_STEM (the mixture minus STEM)")
    p.add_argument("--consistent", action="store_true",
                   help="distribute the residual so the stems sum exactly to the mixture")
    p.add_argument("-o", "--out", default="separated", help="output folder (default: separated)")
    p.add_argument("--filename", default="{track}/{stem}.{ext}",
                   help="output name template under OUT/MODEL: {track} {stem} {ext} {model} {trackext}")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--format", choices=["wav", "flac", "mp3"], default="wav")
    fmt.add_argument("--mp3", dest="format", action="store_const", const="mp3")
    fmt.add_argument("--flac", dest="format", action="store_const", const="flac")
    depth = p.add_mutually_exclusive_group()
    depth.add_argument("--int24", action="store_true", help="write 24-bit PCM")
    depth.add_argument("--float32", action="store_true", help="write 32-bit float")
    p.add_argument("--clip-mode", choices=["rescale", "clamp", "none"], default="rescale",
                   help="avoid clipping: rescale each stem, clamp samples, or nothing")
    p.add_argument("-d", "--device", default="cpu", help="cpu, cuda or mps")
    p.add_argument("-j", "--jobs", type=positive_int, default=None,
                   help="CPU threads used by the model (default: torch's choice)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="chunks per forward pass")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--skip-existing", action="store_true",
                          help="skip tracks whose stems all exist already")
    existing.add_argument("--overwrite", action="store_true", help="replace existing stem files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders recursively; returns (files, [(path, error)])."""
    files, errors = [], []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*")
                           if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
                           and not f.name.startswith("."))
            if not found:
                errors.append((raw, "folder contains no audio or video files"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            errors.append((raw, "no such file or folder"))
    return files, errors


def check_template(template: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UnweaveError(f"--filename {template!r}: {exc}") from None
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise UnweaveError(f"--filename {template!r}: unknown field(s) {', '.join(sorted(unknown))} "
                           f"(known: {', '.join(sorted(TEMPLATE_FIELDS))})")
    if "stem" not in fields:
        raise UnweaveError(f"--filename {template!r}: must contain {{stem}}")
    if Path(template).is_absolute() or ".." in Path(template).parts:
        raise UnweaveError(f"--filename {template!r}: must be a relative path without '..'")


def stem_targets(root: Path, template: str, track: Path, names: tuple[str, ...], ext: str,
                 model: str) -> dict[str, Path]:
    fields = {"track": track.stem, "trackext": track.name, "ext": ext, "model": model}
    return {n: root / template.format(stem=n, **fields) for n in names}


def run(args: argparse.Namespace) -> int:
    from ..inference.separator import OutputOptions, Separator, StemPlan

    check_template(args.filename)
    subtype = "PCM_24" if args.int24 else "FLOAT" if args.float32 else "PCM_16"
    stems = tuple(s.strip() for s in args.stems.split(",") if s.strip()) if args.stems else None
    options = OutputOptions(fmt=args.format, subtype=subtype, clip=args.clip_mode, stems=stems,
                            two_stems=args.two_stems, consistent=args.consistent)
    separator = Separator(args.model, shifts=args.shifts, overlap=args.overlap,
                          segment=args.segment, device=args.device, jobs=args.jobs,
                          batch_size=args.batch_size, refine=refine_request(args),
                          band_extension=args.band_extension)
    if not getattr(separator.model, "trained", True):
        print(f"warning: model {separator.model_name!r} is UNTRAINED (random weights): "
              "its stems are not separations", file=sys.stderr)
    names = StemPlan(separator.sources, options).names
    root = Path(args.out) / separator.model_name
    files, failures = collect_inputs(args.inputs)
    for raw, msg in failures:
        print(f"error: {raw}: {msg}", file=sys.stderr)
    started, audio_seconds, done, skipped = time.perf_counter(), 0.0, 0, 0
    seen: dict[Path, Path] = {}
    for path in files:
        targets = stem_targets(root, args.filename, path, names, args.format, separator.model_name)
        try:
            _check_targets(path, targets, seen, args)
        except _Skip:
            skipped += 1
            continue
        except UnweaveError as exc:
            failures.append((str(path), str(exc)))
            print(f"error: {exc}", file=sys.stderr)
            continue
        try:
            seconds = _separate_one(separator, path, targets, options, quiet=args.quiet)
        except UnweaveError as exc:
            failures.append((str(path), str(exc)))
            print(f"error: {exc}", file=sys.stderr)
            continue
        done += 1
        audio_seconds += seconds
        if not args.quiet:
            print(f"{path} -> {targets[names[0]].parent}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    rtf = audio_seconds / elapsed if elapsed > 0 else 0.0
    print(f"separated {done} file(s), {len(failures)} failed, {skipped} skipped in {elapsed:.1f} s "
          f"({audio_seconds:.1f} s of audio, {rtf:.1f}x real time); stems in {root}",
          file=sys.stderr)
    return 1 if failures else 0


class _Skip(Exception):
    pass


def _check_targets(path: Path, targets: dict[str, Path], seen: dict[Path, Path],
                   args: argparse.Namespace) -> None:
    resolved_input = path.resolve()
    for target in targets.values():
        resolved = target.resolve()
        if resolved == resolved_input:
            raise UnweaveError(f"{path}: an output would overwrite the input file")
        if resolved in seen:
            raise UnweaveError(f"{path}: output {target} collides with the output of {seen[resolved]} "
                               "(use --filename with {trackext} or separate them apart)")
    if args.skip_existing and all(t.exists() for t in targets.values()):
        raise _Skip
    existing = [t for t in targets.values() if t.exists()]
    if existing and not args.overwrite:
        raise UnweaveError(f"{path}: output {existing[0]} exists (use --overwrite or --skip-existing)")
    for target in targets.values():
        seen[target.resolve()] = path


def _separate_one(separator, path: Path, targets: dict[str, Path], options, quiet: bool) -> float:
    from ..audio import io

    meta = io.info(path)
    duration = meta.duration_seconds or 0.0
    # a clip under 0.1 s still gets a bar (0.1 s long); a file whose length the container does
    # not tell gets a counter without a total
    total = max(round(duration, 1), 0.1) if duration > 0 else None
    bar_format = ("{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]" if total
                  else "{desc}: {n:.1f} s [{elapsed}]")
    bar = tqdm(total=total, unit="s", desc=path.name, disable=quiet, leave=False,
               bar_format=bar_format)

    def progress(fraction: float, stage: str) -> None:
        if bar.total:
            bar.n = round(min(fraction, 1.0) * bar.total, 1)
            bar.refresh()

    try:
        separator.separate_to_files(path, targets=targets, options=options, progress=progress)
    finally:
        bar.close()
    return duration
