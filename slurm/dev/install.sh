#!/usr/bin/env bash
# Install what the dev cluster needs (Debian 12, as root): SLURM 22.05 with slurmdbd,
# munge, MariaDB for accounting, PostgreSQL 15 for the Optuna storage, and chromium, the
# headless browser the report test renders report.html in.
# Idempotent: returns at once when everything is already there.
set -euo pipefail

PG_VERSION=15
pkgs=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server chromium)

installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

missing=()
for p in "${pkgs[@]}"; do
    installed "$p" || missing+=("$p")
done
# PostgreSQL is judged by its binaries, not a package name: any install that ships
# initdb and pg_ctl of the right major version will do.
if [[ ! -x /usr/lib/postgresql/$PG_VERSION/bin/initdb || ! -x /usr/lib/postgresql/$PG_VERSION/bin/pg_ctl ]]; then
    missing+=("postgresql-$PG_VERSION")
fi

if ((${#missing[@]} == 0)); then
    echo "install.sh: all packages present"
    exit 0
fi

if ((EUID != 0)); then
    echo "install.sh: must run as root to install: ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install.sh: installing ${missing[*]}"

# Package scripts would otherwise start munge/mariadb/postgresql through init.d on a
# machine without systemd; up.sh starts its own instances, so forbid that for the install.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added_policy=1
fi
cleanup() { if ((added_policy)); then rm -f "$policy"; fi; }
trap cleanup EXIT

# A fresh machine may have empty package lists, an old one stale ones: refresh when a
# package is unknown, or once when the install fails on the lists we had.
updated=0
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq
    updated=1
fi
apt_install() {
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null
}
if ! apt_install "${missing[@]}"; then
    ((updated)) && exit 1
    apt-get update -qq
    apt_install "${missing[@]}"
fi
echo "install.sh: done"
