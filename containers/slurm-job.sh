# shellcheck shell=bash
# Shared by slurm/*.sbatch (sourced, never run): site settings, memctl inside the Apptainer
# image, logs under the run directory, and what to do at the time-limit signal.
#
#   source "${MEMCTL_REPO:-$SLURM_SUBMIT_DIR}/containers/slurm-job.sh"
#   job_init                            # read slurm/site.env, check image and launcher
#   job_resolve CONFIG "$@"             # RUN_DIR, STUDY, TRIALS, STORAGE of the config
#   job_log "$RUN_DIR"                  # the rest of the output -> RUN_DIR/logs/slurm/
#   job_run requeue in_image memctl cache build -c CONFIG
#
# Paths are bound at the same place inside the image as outside, so configs, run
# directories and pickled submitit specs mean the same thing on both sides.

MEMCTL_REPO="${MEMCTL_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}"
JOB_BINDS=()

job_die() {
    echo "memctl job: $*" >&2
    exit 2
}

job_init() {
    umask 077  # medical data: everything a job writes is owner-only
    local site="${MEMCTL_SITE_ENV:-$MEMCTL_REPO/slurm/site.env}"
    [[ -f "$site" ]] || job_die "$site not found: copy slurm/site.env.example to" \
        "slurm/site.env and edit it (or point MEMCTL_SITE_ENV at yours)"
    # Exported: the search head's worker jobs inherit MEMCTL_BINDS, MEMCTL_CACHE, ...
    set -a
    # shellcheck disable=SC1090
    source "$site"
    set +a
    [[ -n "${MEMCTL_IMAGE:-}" ]] || job_die "MEMCTL_IMAGE is not set in $site"
    [[ -f "$MEMCTL_IMAGE" ]] || job_die "MEMCTL_IMAGE=$MEMCTL_IMAGE: image not found" \
        "(containers/build.sh builds it; put it where compute nodes can read it)"
    APPTAINER="${MEMCTL_APPTAINER:-apptainer}"
    command -v "$APPTAINER" >/dev/null || job_die "'$APPTAINER' not found on $(hostname);" \
        "set MEMCTL_APPTAINER to its full path or load its module in site.env"
    cd "$MEMCTL_REPO" || job_die "cannot enter $MEMCTL_REPO"
}

job_binds() {  # job_binds [PATH...]: the comma-separated --bind list (site's, cache, repo, PATHs)
    local -a site out=()
    local b
    IFS=',' read -ra site <<<"${MEMCTL_BINDS:-}"
    for b in "${site[@]}" "${MEMCTL_CACHE:-}" "$MEMCTL_REPO" "$@"; do
        b="${b#"${b%%[![:space:]]*}"}"
        [[ -n "$b" ]] || continue
        [[ -e "${b%%:*}" ]] || job_die "bind source ${b%%:*} does not exist on $(hostname)"
        [[ " ${out[*]} " == *" $b "* ]] || out+=("$b")
    done
    (IFS=','; echo "${out[*]}")
}

in_image() {  # in_image CMD [ARGS...]: CMD inside the image, GPUs passed when allocated
    local -a nv=()
    if [[ -n "${SLURM_GPUS_ON_NODE:-}${CUDA_VISIBLE_DEVICES:-}" ]]; then
        nv=(--nv)
    fi
    [[ -z "${MEMCTL_CACHE:-}" ]] || mkdir -p "$MEMCTL_CACHE"
    "$APPTAINER" exec "${nv[@]}" --bind "$(job_binds ${RUN_DIR:+"$RUN_DIR"} "${JOB_BINDS[@]}")" \
        "$MEMCTL_IMAGE" "$@"
}

job_python() {  # job_python ARGS...: a Python with memctl (the head's venv, else the image)
    if [[ -n "${MEMCTL_HEAD_VENV:-}" ]]; then
        "$MEMCTL_HEAD_VENV/bin/python" "$@"
    else
        in_image python "$@"
    fi
}

memctl_head() {  # memctl_head ARGS...: memctl where sbatch works (the search head submits jobs)
    if [[ -n "${MEMCTL_HEAD_VENV:-}" ]]; then
        "$MEMCTL_HEAD_VENV/bin/memctl" "$@"
        return
    fi
    [[ -n "${MEMCTL_SLURM_BINDS:-}" ]] || job_die "the search head runs sbatch: set" \
        "MEMCTL_HEAD_VENV (memctl installed on the host) or MEMCTL_SLURM_BINDS (the SLURM" \
        "client files to bind into the image) in site.env"
    local -a slurm_binds
    IFS=',' read -ra slurm_binds <<<"$MEMCTL_SLURM_BINDS"
    JOB_BINDS+=("${slurm_binds[@]}" "$(dirname "$MEMCTL_IMAGE")")
    in_image memctl "$@"
}

job_resolve() {  # job_resolve CONFIG [ARGS...]: sets RUN_DIR STUDY TRIALS STORAGE, JOB_OVERRIDES
    local config="$1" a out
    shift
    [[ -f "$config" ]] || job_die "config $config not found (relative to $MEMCTL_REPO)"
    JOB_OVERRIDES=()  # the section.field=value arguments among the command's
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z_][A-Za-z0-9_.]*= ]]; then JOB_OVERRIDES+=("$a"); fi
    done
    out="$(job_python - "$config" "${JOB_OVERRIDES[@]}" <<'PY'
import os
import shlex
import sys

from memctl.config import load_config
from memctl.errors import UserError

try:
    cfg = load_config(sys.argv[1], sys.argv[2:])
except UserError as err:
    sys.exit(f"memctl: error: {err}")
from memctl.search.study import storage_url

for key, value in (("RUN_DIR", os.path.abspath(cfg.run_dir)), ("STUDY", cfg.search.study),
                   ("TRIALS", cfg.search.trials), ("STORAGE", storage_url(cfg))):
    print(f"{key}={shlex.quote(str(value))}")
PY
)" || job_die "cannot read $config"
    eval "$out"
    STORAGE="${MEMCTL_STORAGE:-$STORAGE}"  # the site's study server, as the search head uses
}

job_log() {  # job_log DIR: from here on, output is appended to DIR/logs/slurm/<job>-<id>.log
    local dir="$1/logs/slurm" id="${SLURM_JOB_ID:-local}"
    if [[ -n "${SLURM_ARRAY_JOB_ID:-}" ]]; then
        id="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
    fi
    mkdir -p "$dir" || job_die "cannot create $dir"
    JOB_LOG="$dir/${SLURM_JOB_NAME:-memctl}-$id.log"
    echo "log: $JOB_LOG"
    exec >>"$JOB_LOG" 2>&1
    echo "== $(date -Is) job $id on $(hostname), restart ${SLURM_RESTART_COUNT:-0}," \
        "image $MEMCTL_IMAGE"
}

_job_on_usr2() {
    echo "== $(date -Is) time limit close (USR2)"
    if [[ "$JOB_MODE" == requeue ]]; then
        local n="${SLURM_RESTART_COUNT:-0}" max="${MEMCTL_MAX_REQUEUES:-5}"
        if ((n < max)); then
            echo "requeueing job ${SLURM_JOB_ID} (restart $((n + 1)) of at most $max); it resumes"
            scontrol requeue "${SLURM_JOB_ID}" || echo "scontrol requeue failed"
        else
            echo "not requeued: already restarted $n times (MEMCTL_MAX_REQUEUES=$max)"
        fi
    else
        local default="not requeued: this step cannot resume; submit it again with a longer --time"
        echo "${JOB_STOP_MESSAGE:-$default}"
    fi
    kill -TERM "$JOB_CHILD" 2>/dev/null || true
}

_job_on_term() {
    # scancel or the hard limit: pass it on, never requeue (a cancelled job must stay dead)
    kill -TERM "$JOB_CHILD" 2>/dev/null || true
}

job_run() {  # job_run requeue|stop CMD [ARGS...]: CMD in the background, signals handled
    JOB_MODE="$1"
    shift
    # --signal=B:USR2@120 signals this shell only; a foreground child would delay the trap
    # until it ends, so the work runs in the background and the shell waits for it.
    trap _job_on_usr2 USR2
    trap _job_on_term TERM
    "$@" &
    JOB_CHILD=$!
    local rc=0 again
    while :; do
        rc=0
        wait "$JOB_CHILD" || rc=$?
        kill -0 "$JOB_CHILD" 2>/dev/null || break  # still alive: wait was cut short by a trap
    done
    if ((rc > 128)); then  # maybe the trap's status, not the child's: ask once more
        again=0
        wait "$JOB_CHILD" 2>/dev/null || again=$?
        ((again == 127)) || rc=$again
    fi
    trap - USR2 TERM
    echo "== $(date -Is) exit $rc: ${*:1:3} ..."  # not all of it: arguments may hold a URL
    return "$rc"
}
