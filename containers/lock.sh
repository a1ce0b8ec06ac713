#!/usr/bin/env bash
# Regenerate containers/requirements.lock (memctl's runtime closure, pinned; torch excluded).
#   containers/lock.sh [--venv PATH] [--latest]
# Runs with the venv's Python: it needs `packaging`, and pip resolves for that interpreter.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
for ((i = 1; i <= $#; i++)); do
    if [[ "${!i}" == "--venv" ]]; then j=$((i + 1)); venv="${!j}"; fi
done
exec "$venv/bin/python" "$repo/containers/lock.py" "$@"
