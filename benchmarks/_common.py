"""What every benchmark shares: where the data is, stage timing, and the result envelope.

``DATA`` is ``$SEQEMB_DATA`` or ``../shared/data`` beside the repository. A :class:`Run` is started
when a benchmark starts; ``run.stage(name)`` times a stage; ``run.write(path, results)`` writes
the results as JSON with an ``envelope``: the git commit (and whether the tree had changes),
package versions, the CPU model and core count, the thread settings, the load average when the
run started and when it ended, the stage times and the wall time. Standard library only, so a
peer's own environment (``node2vec_speed --peer``) can import it too.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SEQEMB_DATA", ROOT.parent / "shared" / "data"))
PACKAGES = ("seqemb", "torch", "numpy", "polars", "faiss-cpu", "faiss-gpu", "numba", "scikit-learn", "scipy",
            "gensim", "implicit", "torch-geometric", "sqlalchemy")  # fmt: skip
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def data_path(*parts: str) -> Path:
    """A file or folder under ``DATA``; a missing one names its SOURCE.md."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (see {DATA / parts[0] / 'SOURCE.md'}; set SEQEMB_DATA to move it)")
    return path


class Run:
    """One benchmark run: its start, its stages, and the envelope written with its results."""

    def __init__(self) -> None:
        self.started = time.time()
        self._clock = time.perf_counter()
        self.load_at_start = _load()
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (seconds, added up when a name repeats)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - started, 3)

    def envelope(self) -> dict[str, Any]:
        """Where, on what and how the run ran (see the module doc)."""
        return {
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "wall_seconds": round(time.perf_counter() - self._clock, 3),
            "stages_seconds": dict(self.stages),
            "git": _git(),
            "python": platform.python_version(),
            "packages": _versions(),
            "cpu": {"model": _cpu_model(), "cores": os.cpu_count(), "machine": platform.machine()},
            "threads": _threads(),
            "load_average": {"start": self.load_at_start, "end": _load()},
        }

    def write(self, path: str | os.PathLike | None, results: dict[str, Any]) -> None:
        """Write ``{"envelope": ..., **results}`` as JSON to ``path`` (nothing when ``path`` is None)."""
        if path is None:
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"envelope": self.envelope(), **results}, indent=2, default=str) + "\n")
        os.replace(tmp, path)
        print(f"wrote {path}")


def size_label(n: int) -> str:
    """A size as the benchmark JSON keys name it: ``10M`` for ten million, else the number."""
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else str(n)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _git() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _threads() -> dict[str, Any]:
    threads: dict[str, Any] = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch = sys.modules.get("torch")
    if torch is not None:
        threads["torch_intra_op"] = torch.get_num_threads()
        threads["torch_inter_op"] = torch.get_num_interop_threads()
    numba = sys.modules.get("numba")
    if numba is not None:
        threads["numba"] = numba.get_num_threads()
    return threads
