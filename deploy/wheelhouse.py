#!/usr/bin/env python3
"""Download every package the lab and the hub need into a wheelhouse (``make wheelhouse``).

    python3 deploy/wheelhouse.py [FOLDER]        # default: wheelhouse/

Contents: the wheels of requirements.txt (its ``-e .`` line left out: labkit itself is built
from the checkout at install time, offline, with the setuptools wheel downloaded here), pip,
setuptools and wheel, the hub's deploy/requirements-hub.txt, and an npm cache holding
configurable-http-proxy and its dependencies (``FOLDER/npm-cache``).

With the folder present, ``make lab``/``make install`` and ``make hub`` install with
``pip --no-index --find-links FOLDER`` and ``npm install --offline``: no network needed. The
folder keeps a copy of the requirements it was made for; once ``requirements.txt`` changes,
installs still look in it first but may use the network for what it lacks (without network
they fail, naming the missing package): run ``make wheelhouse`` again.
Wheels are for this Python (3.11) and platform; build the wheelhouse on the same kind of
machine as the learners' laptops or the hub.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROXY = "configurable-http-proxy@5.3.0"


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dest = Path(argv[0] if argv else REPO / "wheelhouse").resolve()
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    reqs = [ln for ln in (REPO / "requirements.txt").read_text().splitlines()
            if ln.strip() and not ln.lstrip().startswith(("#", "-e"))]
    with tempfile.TemporaryDirectory() as tmp:
        filtered = Path(tmp) / "requirements.txt"
        filtered.write_text("\n".join(reqs) + "\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", dest,
                        "-r", filtered, "-r", REPO / "deploy" / "requirements-hub.txt",
                        "pip", "setuptools>=68", "wheel"], check=True)
        if shutil.which("npm"):
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", Path(tmp) / "npm",
                            "--cache", dest / "npm-cache", PROXY], check=True, stdout=subprocess.DEVNULL)
        else:
            print("npm not found: the proxy is not in the wheelhouse", file=sys.stderr)
    # what this wheelhouse was made for: installs use --no-index only while these still match
    shutil.copy2(REPO / "requirements.txt", dest / "requirements.txt")
    shutil.copy2(REPO / "deploy" / "requirements-hub.txt", dest / "requirements-hub.txt")
    wheels = list(dest.glob("*.whl")) + list(dest.glob("*.tar.gz"))
    print(f"wheelhouse {dest}: {len(wheels)} packages, {folder_mb(dest):.0f} MB, "
          f"{time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
