"""Fetch Debian packages with ``apt-get download`` and unpack them with ``dpkg-deb -x``.

Everything is cached and idempotent: ``<cache>/debs/*.deb`` are downloaded once, and
``<cache>/pkgs/<package>/`` is unpacked once (a ``.unpacked`` marker records completion).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnweaveError
from .reserved import check_package_allowed

DEFAULT_CACHE = Path("~/.cache/unweave").expanduser()

# Licenses of the packages the builders use (from each package's debian/copyright; the
# asterisk prompts are CC-BY-SA-3.0, 0ad-data CC-BY-SA-3.0, wesnoth music GPL-2+...).
LICENSES = {
    "flight-of-the-amazon-queen": "Flight-of-the-Amazon-Queen-License (freeware)",
    "beneath-a-steel-sky": "Beneath-a-Steel-Sky-License (freeware)",
    "0ad-data": "CC-BY-SA-3.0",
    "freedoom": "BSD-3-Clause (freedoom-license)",
    "asterisk-core-sounds-en-g722": "CC-BY-SA-3.0",
    "asterisk-core-sounds-es-g722": "CC-BY-SA-3.0",
    "asterisk-core-sounds-it-g722": "CC-BY-SA-3.0",
    "asterisk-core-sounds-ru-g722": "CC-BY-SA-3.0",
    "wesnoth-1.16-music": "GPL-2+",
    "sonic-pi-samples": "CC0-1.0 / CC-BY-SA-4.0 (see README)",
    "musescore-general-soundfont": "MIT",
    "synthetic": "generated (no license needed)",
}


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    root: Path  # unpacked tree
    deb: Path | None

    @property
    def license(self) -> str:
        return LICENSES.get(self.name) or _license_from_copyright(self.root, self.name)


def _license_from_copyright(root: Path, name: str) -> str:
    copyright_file = root / "usr/share/doc" / name / "copyright"
    if copyright_file.is_file():
        for line in copyright_file.read_text(errors="replace").splitlines():
            if line.startswith("License:") and line[8:].strip():
                return line[8:].strip()
    return "unknown"


def _find_deb(deb_dir: Path, name: str) -> Path | None:
    found = sorted(deb_dir.glob(f"{name}_*.deb"))
    return found[-1] if found else None


def _run(cmd: list[str], cwd: Path | None, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UnweaveError(f"{what}: '{cmd[0]}' is not available on this system "
                           "(building corpora needs Debian's apt-get and dpkg-deb)") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise UnweaveError(f"{what}: {' '.join(cmd[:2])} failed: {' | '.join(tail)}")
    return proc


def download(names: list[str], cache: Path) -> dict[str, Path]:
    """Download the ``.deb`` files not yet in ``cache/debs`` -> {name: deb path}."""
    for name in names:
        check_package_allowed(name)
    deb_dir = cache / "debs"
    deb_dir.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if _find_deb(deb_dir, n) is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise UnweaveError(f"cannot download {', '.join(missing)}: apt-get is not available "
                               f"(put the .deb files in {deb_dir} by hand)")
        _run(["apt-get", "download", *missing], deb_dir, f"downloading {', '.join(missing)}")
    debs = {}
    for name in names:
        deb = _find_deb(deb_dir, name)
        if deb is None:
            raise UnweaveError(f"{name}: apt-get download produced no .deb in {deb_dir}")
        debs[name] = deb
    return debs


def _deb_version(deb: Path) -> str:
    version = deb.name.split("_")[1] if deb.name.count("_") >= 2 else "unknown"
    return version.replace("%3a", ":")


def unpack(name: str, deb: Path, cache: Path) -> Path:
    """Unpack ``deb`` into ``cache/pkgs/name`` once -> that folder."""
    root = cache / "pkgs" / name
    marker = root / ".unpacked"
    if marker.is_file() and marker.read_text().strip() == deb.name:
        return root
    if shutil.which("dpkg-deb") is None:
        raise UnweaveError(f"{name}: cannot unpack {deb.name}: dpkg-deb is not available")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(deb), str(tmp)], None, f"unpacking {deb.name}")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    marker.write_text(deb.name + "\n")
    return root


def fetch(names: list[str], cache: str | Path | None = None) -> dict[str, Package]:
    """Download (if needed) and unpack (if needed) the named packages -> {name: Package}."""
    cache = Path(cache).expanduser() if cache is not None else DEFAULT_CACHE
    debs = download(list(names), cache)
    return {n: Package(n, _deb_version(d), unpack(n, d, cache), d) for n, d in debs.items()}
