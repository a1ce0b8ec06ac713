"""Run submitit jobs inside the Apptainer image: the python command and what it binds.

    python_command("/shared/memctl.sif", ["/scratch/me/runs", "/shared/models/sd15"])
    # -> "apptainer exec --nv --bind /scratch/me/runs,/shared/models/sd15 /shared/memctl.sif python"

submitit runs `<python> -u -m submitit.core._submit <folder>` in each job, so this prefix is
all a job needs to run inside the image. Paths are bound at the same location inside and out:
the pickled job specs hold absolute host paths (run dir, model, cache, storage file) and must
resolve unchanged in the job. Only the job runs in the image; the head stays where it is.

Environment knobs (the host side of slurm/site.env):
  MEMCTL_APPTAINER  launcher binary (default `apptainer`; tests substitute a pass-through shim)
  MEMCTL_BINDS      extra binds, comma-separated, `SRC` or `SRC:DST[:OPTS]` as in --bind
  MEMCTL_CACHE      writable cache root (HF_HOME, TORCH_EXTENSIONS_DIR in the image); bound
  MEMCTL_SLURM_BINDS  the host's SLURM client files, bound so that submitit inside the image
                    can `scontrol requeue` a preempted or timed-out worker
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

from memctl.config import Config
from memctl.errors import UserError

LAUNCHER_ENV = "MEMCTL_APPTAINER"
BINDS_ENV = "MEMCTL_BINDS"
CACHE_ENV = "MEMCTL_CACHE"
SLURM_BINDS_ENV = "MEMCTL_SLURM_BINDS"


def launcher() -> str:
    return os.environ.get(LAUNCHER_ENV) or "apptainer"


def _split(spec: str) -> tuple[str, str]:
    """('/abs/src', ':dst:opts' or '') for one bind spec."""
    src, sep, rest = spec.partition(":")
    return os.path.abspath(os.path.expanduser(src)), sep + rest


def _covered(path: str, by: str) -> bool:
    return path == by or path.startswith(by.rstrip("/") + "/")


def normalise_binds(specs: Iterable[str | Path]) -> list[str]:
    """Absolute, existing, de-duplicated bind specs; a path under a same-place bind is dropped.

    Sources must exist: apptainer refuses a missing one only when the job starts, on a
    compute node, long after the mistake was made.
    """
    same_place: list[str] = []
    remapped: list[str] = []
    missing: list[str] = []
    for raw in specs:
        spec = str(raw).strip()
        if not spec:
            continue
        if "," in spec:
            raise UserError(f"container bind {spec!r}: paths with commas cannot be bound")
        src, rest = _split(spec)
        if not os.path.exists(src):
            missing.append(src)
        elif rest:
            if src + rest not in remapped:
                remapped.append(src + rest)
        else:
            same_place.append(src)
    if missing:
        raise UserError(f"container binds: not found: {', '.join(dict.fromkeys(missing))}")
    kept: list[str] = []
    for path in sorted(set(same_place), key=len):  # parents first
        if not any(_covered(path, k) for k in kept):
            kept.append(path)
    return sorted(kept) + remapped


def env_binds() -> list[str]:
    """Binds the site asks for: $MEMCTL_BINDS, $MEMCTL_SLURM_BINDS and the $MEMCTL_CACHE root."""
    specs = [s for var in (BINDS_ENV, SLURM_BINDS_ENV)
             for s in os.environ.get(var, "").split(",") if s.strip()]
    cache = os.environ.get(CACHE_ENV, "").strip()
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        specs.append(cache)
    return specs


def _storage_file(url: str) -> str:
    """The file behind a sqlite or journal storage URL ('' for a server)."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    if url.startswith("journal:") or url.endswith((".journal", ".log")):
        return url.removeprefix("journal:")
    return ""


def config_binds(cfg: Config) -> list[str]:
    """What a job of `cfg` reads or writes: run dir, model, data, extractor weights, storage.

    A file is bound through its folder (sqlite and journal files need their folder for locks
    and journals; a CSV manifest usually sits beside its images).
    """
    paths: list[str] = [cfg.run_dir]
    for value in (cfg.model.path, cfg.data.path, cfg.data.reports_path, cfg.data.class_names,
                  cfg.data.dmem_file, cfg.eval.extractor_weights,
                  _storage_file(cfg.search.storage)):
        if value:
            p = Path(value).expanduser()
            paths.append(str(p if p.is_dir() else p.parent))
    return [p for p in paths if os.path.exists(p)]


def apptainer_argv(image: str, binds: Sequence[str], *, gpus: bool = True) -> list[str]:
    """`apptainer exec [--nv] [--bind a,b] IMAGE` as a list (the caller appends the command)."""
    path = Path(image).expanduser()
    if not path.is_file():
        raise UserError(f"slurm.container: {image}: image not found (build it with "
                        f"containers/build.sh, on storage the compute nodes see)")
    argv = [launcher(), "exec"]
    if gpus:  # --nv binds the host's NVIDIA driver libraries and devices
        argv.append("--nv")
    if binds:
        argv += ["--bind", ",".join(binds)]
    return argv + [os.path.abspath(path)]


def python_command(image: str, binds: Iterable[str | Path], *, gpus: bool = True) -> str:
    """The `python=` string for submitit: the image's python, with `binds` (plus the site's)."""
    all_binds = normalise_binds([*binds, *env_binds()])
    return shlex.join([*apptainer_argv(image, all_binds, gpus=gpus), "python"])
