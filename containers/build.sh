#!/usr/bin/env bash
# Build the memctl Apptainer image from this checkout and print its digest.
#
#   containers/build.sh [IMAGE.sif] [apptainer build options, e.g. --build-arg KEY=VALUE]
#
# Run on a machine with Apptainer >= 1.2 and internet (a login or build node); the image
# then goes to storage the compute nodes see. Without root, --fakeroot is added (the site
# must allow it: `apptainer build --fakeroot` needs subuid/subgid entries for you).
# Build arguments are listed at the top of Apptainer.def; MEMCTL_VERSION and SOURCE are
# filled from the checkout unless given.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="memctl.sif"
if [[ $# -gt 0 && "$1" != -* ]]; then
    image="$1"
    shift
fi
apptainer="${MEMCTL_APPTAINER:-apptainer}"
if ! command -v "$apptainer" >/dev/null; then
    echo "build.sh: '$apptainer' not found (install Apptainer >= 1.2 or load its module)" >&2
    exit 2
fi

cd "$repo"  # %files paths are relative to the checkout root
lock=containers/requirements.lock
[[ -s "$lock" ]] || { echo "build.sh: $lock missing: run containers/lock.sh" >&2; exit 2; }
if [[ pyproject.toml -nt "$lock" ]]; then
    echo "build.sh: warning: pyproject.toml is newer than $lock (rerun containers/lock.sh?)" >&2
fi
if [[ -x .venv/bin/python ]]; then  # a def-file mistake fails here in a second, not mid-build
    .venv/bin/python containers/lint_def.py Apptainer.def
fi

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n1)"
source="$(git remote get-url origin 2>/dev/null || echo "$repo")"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- memctl pyproject.toml "$lock" 2>/dev/null)" ]]; then
    commit="$commit-dirty"  # the image holds uncommitted changes: say so in its label
fi

args=(build --build-arg "MEMCTL_VERSION=$version" --build-arg "SOURCE=$source@$commit")
if [[ "$(id -u)" != 0 ]]; then
    args+=(--fakeroot)
fi
# Caller's options last: a --build-arg given here overrides the defaults above.
"$apptainer" "${args[@]}" "$@" "$image" Apptainer.def

digest="$(sha256sum "$image" | cut -d' ' -f1)"
echo "built $image"
echo "sha256:$digest"
echo "record it with your results; compute nodes run: apptainer exec --nv $image memctl --version"
