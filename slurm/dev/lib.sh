# shellcheck shell=bash disable=SC2034
# Shared paths and helpers for up.sh, down.sh and pg-restart.sh (sourced, not run).

DEV_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$DEV_DIR/../.." && pwd)
# Absolute, since daemons get these paths in their configs and chdir elsewhere.
STATE=$(realpath -m "${MEMCTL_DEV_STATE:-$REPO_DIR/.dev-cluster}")
# Non-default ports so a system MariaDB/PostgreSQL, if any, is left alone.
PG_PORT=${MEMCTL_DEV_PG_PORT:-55432}
DB_PORT=${MEMCTL_DEV_MARIADB_PORT:-53306}
PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
CLUSTER=memctl

ETC=$STATE/etc
RUN=$STATE/run
LOG=$STATE/log
MUNGE_SOCK=$RUN/munge/munge.socket.2
MYSQL_SOCK=$RUN/mysqld/mysqld.sock
PG_DATA=$STATE/pg/data
PG_SOCKDIR=$RUN/postgresql
ENV_FILE=$STATE/env
# Written at creation: down.sh --wipe deletes only a folder that carries it.
MARKER=$STATE/.memctl-dev-cluster
export SLURM_CONF=$ETC/slurm.conf

log() { echo "[dev-cluster] $*"; }
die() {
    echo "[dev-cluster] ERROR: $*" >&2
    exit 1
}

require_root() {
    ((EUID == 0)) || die "must run as root (daemons switch to their own users)"
}

# alive PID: running and not a zombie. Daemons are re-parented to PID 1, which on these
# machines reaps exited children only every few seconds.
alive() {
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# pid_of NAME PIDFILE: print the pid when the file names a live process called NAME.
# The name check keeps a stale file whose pid was reused from pointing at a stranger.
pid_of() {
    local name=$1 file=$2 pid comm
    [[ -r $file ]] || return 1
    read -r pid <"$file" || [[ -n ${pid:-} ]] || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] && alive "$pid" || return 1
    echo "$pid"
}

# wait_until SECONDS DESCRIPTION LOGFILE CMD...: poll CMD every 0.2 s; on timeout show the log.
wait_until() {
    local secs=$1 what=$2 logfile=$3
    shift 3
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "[dev-cluster] timed out after ${secs}s waiting for $what" >&2
            [[ -f $logfile ]] && tail -n 25 "$logfile" >&2
            return 1
        fi
        sleep 0.2
    done
}

# stop_pid NAME PIDFILE: SIGTERM the daemon named in PIDFILE, SIGKILL after 20 s.
stop_pid() {
    local name=$1 file=$2 pid
    if ! pid=$(pid_of "$name" "$file"); then
        rm -f "$file"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.2
    done
    if alive "$pid"; then
        log "$name did not stop in 20 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# need_port PORT WHAT: die when something else already listens there (a system daemon,
# or a dev cluster started from another checkout).
need_port() {
    if (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "port $1 for $2 is taken by another process; stop it or change the port"
    fi
}

pg_running() {
    [[ -f $PG_DATA/PG_VERSION ]] && runuser -u postgres -- "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}
