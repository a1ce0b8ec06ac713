#!/usr/bin/env bash
# Stop what up.sh started, in reverse order, by pid file only. Idempotent.
#   down.sh          stop; keep state (the next up.sh reuses databases and job history)
#   down.sh --wipe   stop and delete the state folder
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wipe=0
case ${1:-} in
"") ;;
--wipe) wipe=1 ;;
*) die "usage: $0 [--wipe]" ;;
esac
require_root

if [[ ! -d $STATE ]]; then
    log "nothing to stop: $STATE does not exist"
    exit 0
fi
# Tests treat a present env file as "cluster is up": remove it first.
rm -f "$ENV_FILE"

# Cancel jobs first so no slurmstepd outlives slurmd and holds the fake GPUs or CPU.
if pid_of slurmctld "$RUN/slurm/slurmctld.pid" >/dev/null; then
    mapfile -t jobs < <(squeue -h -o %A 2>/dev/null || true)
    if ((${#jobs[@]})); then
        log "cancelling ${#jobs[@]} job(s)"
        scancel "${jobs[@]}" 2>/dev/null || true
        for ((i = 0; i < 75; i++)); do
            [[ -z $(squeue -h -t PD,R,CG,S -o %A 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi

stop_pid slurmd "$RUN/slurm/slurmd.pid"
stop_pid slurmctld "$RUN/slurm/slurmctld.pid"
stop_pid slurmdbd "$RUN/slurm/slurmdbd.pid"
stop_pid mariadbd "$RUN/mysqld/mariadbd.pid"
stop_pid munged "$RUN/munge/munged.pid"
if pg_running; then
    log "stopping PostgreSQL"
    runuser -u postgres -- "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 >/dev/null
fi

if ((wipe)); then
    # Refuse to delete a folder up.sh did not create (MEMCTL_DEV_STATE set by mistake).
    [[ -e $MARKER ]] || die "$STATE lacks $(basename "$MARKER"); not deleting it"
    log "deleting $STATE"
    rm -rf "$STATE"
fi
log "down"
