#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests.
#
#   scripts/postgres.sh start DIR   initialise a cluster in DIR (if it has none), start it on a
#                                   free loopback port with its socket in DIR, create the
#                                   database `closedloop`, and print the shell line to eval:
#                                   export CLOSEDLOOP_TEST_POSTGRES_URL='postgres://...'
#   scripts/postgres.sh stop DIR    stop it (a no-op when it is not running)
#
# Both are idempotent: `start` on a running cluster prints its URL again. The cluster trusts
# every local connection and runs with fsync off: it is for tests only. PostgreSQL refuses to
# run as root, so as root the server runs as the `postgres` user; postgresql-15 is installed
# from Debian when it is missing and this runs as root.
#
#   eval "$(scripts/postgres.sh start /tmp/pg)"; cargo test -p closedloop-store
set -euo pipefail

PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
DATABASE=closedloop
SUPERUSER=postgres

die() {
    printf 'postgres.sh: %s\n' "$*" >&2
    exit 1
}

usage() {
    die "usage: scripts/postgres.sh start|stop DIR"
}

[[ $# -eq 2 ]] || usage
command=$1
dir=$2
[[ $dir = /* ]] || dir="$PWD/$dir"
data="$dir/data"

# Runs a server program as the cluster's owner.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

install_postgres() {
    [[ -x $PG_BIN/postgres ]] && return
    if [[ $EUID -ne 0 ]]; then
        die "PostgreSQL $PG_VERSION is not installed ($PG_BIN/postgres is missing); install postgresql-$PG_VERSION (as root: apt-get install -y postgresql-$PG_VERSION)"
    fi
    printf 'postgres.sh: installing postgresql-%s\n' "$PG_VERSION" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "postgresql-$PG_VERSION" >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q "postgresql-$PG_VERSION" >&2; } ||
        die "cannot install postgresql-$PG_VERSION"
}

# A TCP port nothing listens on now: the kernel's pick, or without python3 a random one
# that refuses a connection.
free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return
        fi
    done
}

running() {
    [[ -f $data/postmaster.pid ]] && as_owner "$PG_BIN/pg_ctl" status -D "$data" >/dev/null 2>&1
}

print_url() {
    local port
    port=$(<"$dir/port")
    printf "export CLOSEDLOOP_TEST_POSTGRES_URL='postgres://%s@127.0.0.1:%s/%s'\n" \
        "$SUPERUSER" "$port" "$DATABASE"
}

start() {
    install_postgres
    mkdir -p "$dir"
    if [[ $EUID -eq 0 ]]; then
        # Debian's package creates the user; a machine that has the binaries without it gets
        # one the same way.
        id -u postgres >/dev/null 2>&1 ||
            useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
        chown postgres: "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "the postgres user cannot write $dir (a parent directory is closed to it); use a directory it can reach, e.g. under /tmp with mode 755"
    fi
    if running; then
        print_url
        return
    fi
    if [[ ! -f $data/PG_VERSION ]]; then
        as_owner "$PG_BIN/initdb" -D "$data" -U "$SUPERUSER" --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            die "initdb failed: see $dir/initdb.log"
    fi
    local attempt port
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        # The port is free a moment ago; another process may take it first: then try another.
        if as_owner "$PG_BIN/pg_ctl" start -D "$data" -w -t 30 -l "$dir/server.log" -o \
            "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
            >/dev/null 2>&1; then
            printf '%s\n' "$port" >"$dir/port"
            break
        fi
        port=
    done
    [[ -n $port ]] || die "the server did not start: see $dir/server.log"
    if ! as_owner "$PG_BIN/psql" -h "$dir" -p "$port" -U "$SUPERUSER" -d postgres -tAq \
        -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1; then
        as_owner "$PG_BIN/createdb" -h "$dir" -p "$port" -U "$SUPERUSER" "$DATABASE"
    fi
    print_url
}

stop() {
    if running; then
        as_owner "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w >/dev/null
    fi
}

case $command in
start) start ;;
stop) stop ;;
*) usage ;;
esac
