#!/usr/bin/env bash
# Restart the dev PostgreSQL server in place (same data, same port), cutting every open
# connection, so tests can check that workers survive a database restart.
#   pg-restart.sh            restart at once
#   pg-restart.sh SECONDS    stay down for SECONDS before starting again (an outage)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

down_for=${1:-0}
[[ $down_for =~ ^[0-9]+([.][0-9]+)?$ ]] || die "usage: $0 [SECONDS]"
require_root
[[ -f $PG_DATA/PG_VERSION ]] || die "no PostgreSQL data in $PG_DATA: run slurm/dev/up.sh"
pg_running || die "PostgreSQL is not running: run slurm/dev/up.sh"
# The port up.sh configured, even if MEMCTL_DEV_PG_PORT differs in this shell.
PG_PORT=$(sed -n 's/^port = //p' "$PG_DATA/memctl-dev.conf")

pg_ctl() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" "$@" >/dev/null; }
# Fast mode: open sessions are terminated, as a crash or failover would do to clients.
if [[ $down_for == 0 ]]; then
    pg_ctl restart -l "$LOG/postgresql.log" -m fast -w -t 30
else
    pg_ctl stop -m fast -w -t 30
    sleep "$down_for"
    pg_ctl start -l "$LOG/postgresql.log" -w -t 30
fi
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 10 || die "PostgreSQL did not come back"
log "PostgreSQL restarted on 127.0.0.1:$PG_PORT"
