"""A pass-through stand-in for `apptainer exec` (test_container.py, test_sbatch.py), and the
scripts of containers/ loaded as modules.

The shim checks and records its arguments, applies the def file's %environment, then runs
the command on the host.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DEF = REPO / "Apptainer.def"

_SHIM = r"""#!/bin/bash
# Stand-in for `apptainer exec [--nv] [--bind LIST] IMAGE CMD...`: checks the arguments as
# apptainer would, applies the image's %environment, records the call, runs CMD on the host.
set -euo pipefail
here="$(dirname "$0")"
die() { echo "apptainer-shim: $*" >&2; exit 97; }
[[ "${1:-}" == exec ]] || die "expected 'exec', got '${1:-}'"
shift
nv=0
binds=""
while [[ $# -gt 0 && "$1" == -* ]]; do
    case "$1" in
        --nv) nv=1; shift ;;
        --bind | -B) [[ $# -ge 2 ]] || die "--bind needs a value"
            binds="${binds:+$binds,}$2"; shift 2 ;;
        *) die "unexpected option $1" ;;
    esac
done
[[ $# -ge 2 ]] || die "expected IMAGE CMD..."
image="$1"
shift
[[ -f "$image" ]] || die "image $image not found"
IFS=',' read -ra list <<<"$binds"
for b in "${list[@]}"; do
    src="${b%%:*}"
    [[ "$src" == /* ]] || die "bind $src is not absolute"
    [[ -e "$src" ]] || die "bind source $src does not exist"
done
if [[ "${2:-}" == -u && "${4:-}" == submitit.core._submit ]]; then
    # a submitit job reads and writes its folder: it must be bound (same path inside and out)
    folder="${5:-}" covered=0
    for b in "${list[@]}"; do
        if [[ "$folder" == "${b%%:*}" || "$folder" == "${b%%:*}"/* ]]; then covered=1; fi
    done
    ((covered)) || die "submitit folder $folder is not bound"
fi
# shellcheck disable=SC1091
source "$here/environment.sh"
python3 - "$nv" "$binds" "$image" "$@" >>"$here/calls.jsonl" <<'PY'
import json, os, sys
nv, binds, image, *argv = sys.argv[1:]
keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "TORCH_EXTENSIONS_DIR",
        "MEMCTL_CACHE", "PYTHONNOUSERSITE", "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID")
print(json.dumps({"nv": nv == "1", "binds": binds.split(",") if binds else [], "image": image,
                  "argv": argv, "cwd": os.getcwd(),
                  "env": {k: os.environ[k] for k in keys if k in os.environ}}))
PY
exec "$@"
"""


def write_shim(folder: Path) -> tuple[Path, Path]:
    """(shim executable, calls.jsonl it appends to); the def file's %environment beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    lint = load_script("lint_def")
    (folder / "environment.sh").write_text(lint.parse(DEF.read_text()).sections["environment"])
    shim = folder / "apptainer"
    shim.write_text(_SHIM)
    shim.chmod(0o755)
    return shim, folder / "calls.jsonl"


def read_calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def load_script(name: str) -> ModuleType:
    """A script of containers/ (not a package) as a module."""
    key = f"containers_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "containers" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[key]
