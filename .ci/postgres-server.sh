#!/usr/bin/env bash
# The PostgreSQL server the registry's tests run against: a throwaway cluster
# in a temporary directory, listening on a loopback port found free at the
# time (127.0.0.1 only; its unix socket in the same directory), with the
# `postgresql` package installed first when no server binaries are found.
#
# It exports where the server is:
#
#   PIPELINE_TEST_POSTGRES_URL    postgres://pipeline@127.0.0.1:PORT/postgres
#
# The role `pipeline` is the cluster's superuser and needs no password on
# loopback (trust authentication: the cluster holds test data only). The
# tests create a database of their own each from that connection.
#
# PostgreSQL refuses to run as root: run as root, the cluster belongs to the
# `postgres` system user (created when missing) and the server runs as it.
#
# Sourced (`. .ci/postgres-server.sh`, as .ci/run does), it leaves the server
# running and defines `postgres_server_stop`, which stops it by its process
# ID and removes the cluster. Run as a program
# (`bash .ci/postgres-server.sh`), it prints the `export` line to paste into
# another shell, then keeps the server until Ctrl-C.

# The newest installed server's bin directory (Debian keeps one per major version).
postgres_server_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
            echo "$d"; return 0
        fi
    done
    return 1
}

postgres_server_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

postgres_server_stop() {
    local pid=${POSTGRES_SERVER_PID:-} i
    if [ -n "$pid" ]; then
        # SIGINT is PostgreSQL's fast shutdown: open sessions are ended.
        kill -INT "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    POSTGRES_SERVER_PID=""
    if [ -n "${POSTGRES_SERVER_DIR:-}" ]; then rm -rf "$POSTGRES_SERVER_DIR"; fi
    POSTGRES_SERVER_DIR=""
}

postgres_server_start() {
    local bin port as_user=() sudo=""
    if ! bin=$(postgres_server_bin); then
        echo "== installing postgresql (apt-get)"
        [ "$(id -u)" = 0 ] || sudo=sudo
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get install -y -q postgresql >/dev/null \
            || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q postgresql >/dev/null; } \
            || return 1
        bin=$(postgres_server_bin) || { echo "postgresql is installed but no server binaries were found" >&2; return 1; }
    fi

    POSTGRES_SERVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-postgres.XXXXXX")
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres || return 1
        fi
        chown postgres "$POSTGRES_SERVER_DIR"
        chmod 0700 "$POSTGRES_SERVER_DIR"
        as_user=(runuser -u postgres --)
    fi

    "${as_user[@]}" "$bin/initdb" -D "$POSTGRES_SERVER_DIR/data" -U pipeline --auth=trust \
        -E UTF8 --no-locale >"$POSTGRES_SERVER_DIR/initdb.log" 2>&1 \
        || { echo "initdb failed:" >&2; tail -n 30 "$POSTGRES_SERVER_DIR/initdb.log" >&2; return 1; }

    port=$(postgres_server_free_port)
    # fsync off: the cluster is thrown away, and the tests commit a lot.
    "${as_user[@]}" "$bin/pg_ctl" -D "$POSTGRES_SERVER_DIR/data" -l "$POSTGRES_SERVER_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $POSTGRES_SERVER_DIR -c max_connections=300 -c fsync=off -c synchronous_commit=off" \
        start >/dev/null \
        || { echo "the PostgreSQL server did not start:" >&2; tail -n 30 "$POSTGRES_SERVER_DIR/server.log" >&2; return 1; }
    # The postmaster's process ID is the first line of its pid file.
    POSTGRES_SERVER_PID=$(head -n 1 "$POSTGRES_SERVER_DIR/data/postmaster.pid")
    export PIPELINE_TEST_POSTGRES_URL="postgres://pipeline@127.0.0.1:$port/postgres"
    echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $PIPELINE_TEST_POSTGRES_URL (pid $POSTGRES_SERVER_PID, log in $POSTGRES_SERVER_DIR/server.log)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    trap postgres_server_stop EXIT
    trap 'exit 130' INT TERM
    postgres_server_start
    echo
    echo "export PIPELINE_TEST_POSTGRES_URL=$PIPELINE_TEST_POSTGRES_URL"
    echo
    echo "serving until Ctrl-C"
    while kill -0 "$POSTGRES_SERVER_PID" 2>/dev/null; do sleep 1; done
else
    postgres_server_start
fi
