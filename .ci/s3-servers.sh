#!/usr/bin/env bash
# The S3 servers the tests run against, on loopback ports found free at the
# time, installed first when missing:
#
#   moto     accepts any signature and checks no checksums (one server for
#            S3, Batch and CloudWatch Logs); pip install 'moto[server]' into
#            a virtual environment of its own (in the cache directory below)
#   s3s-fs   S3 on a directory; checks SigV4 signatures and checksums;
#            cargo install s3s-fs (into the cache directory below)
#
# and exports where they are and how to sign for s3s-fs:
#
#   PIPELINE_TEST_MOTO_URL        http://127.0.0.1:PORT
#   PIPELINE_TEST_S3S_URL         http://127.0.0.1:PORT
#   PIPELINE_TEST_S3S_ACCESS_KEY  the one key pair s3s-fs accepts
#   PIPELINE_TEST_S3S_SECRET_KEY  (made up at random each time)
#
# Sourced (`. .ci/s3-servers.sh`, as .ci/run does), it leaves both running
# and defines `s3_servers_stop`, which stops them by their process IDs and
# removes s3s-fs's data. Run as a program (`bash .ci/s3-servers.sh`), it
# prints the `export` lines to paste into another shell, then keeps the
# servers until Ctrl-C.
#
# PIPELINE_CI_TOOLS is where both are installed (default
# ~/.cache/pipeline-ci); a CI cache of that directory saves the 3 to 4
# minutes s3s-fs's build takes on 2 cores.

S3S_FS_VERSION=0.14.1   # 0.17 needs a newer rustc than the project's
# 5.2.1 answers CompleteMultipartUpload with a root element the Rust SDK
# refuses (CompleteMultipartUploadResponse); fixed by 5.2.5.
MOTO_VERSION=5.2.5
AWSCRT_VERSION=0.38.1

s3_servers_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something answers HTTP at $2 (any status), or fails after 60 s
# or when the process $1 is gone, showing its log $3.
s3_servers_wait() {
    local pid=$1 url=$2 log=$3 i
    for i in $(seq 1 240); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the server for $url exited:" >&2; tail -n 30 "$log" >&2; return 1
        fi
        if curl -s -o /dev/null --max-time 2 "$url/"; then return 0; fi
        sleep 0.25
    done
    echo "nothing answers at $url after 60 s:" >&2; tail -n 30 "$log" >&2; return 1
}

s3_servers_stop() {
    local pid
    for pid in ${S3_SERVERS_PIDS:-}; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in ${S3_SERVERS_PIDS:-}; do
        wait "$pid" 2>/dev/null || true
    done
    S3_SERVERS_PIDS=""
    if [ -n "${S3_SERVERS_DIR:-}" ]; then rm -rf "$S3_SERVERS_DIR"; fi
    S3_SERVERS_DIR=""
}

s3_servers_start() {
    local tools s3s moto ak sk port
    tools=${PIPELINE_CI_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pipeline-ci}
    moto="$tools/moto-$MOTO_VERSION/bin/python"
    # awscrt: without it moto gives a CRC32 where a CRC64NVME is asked for.
    if ! "$moto" -c 'import moto.server, flask, awscrt' 2>/dev/null; then
        echo "== installing moto $MOTO_VERSION into $tools (pip, in a virtual environment)"
        python3 -m venv "$tools/moto-$MOTO_VERSION" || return 1
        "$moto" -m pip install --quiet --disable-pip-version-check \
            "moto[server]==$MOTO_VERSION" "awscrt==$AWSCRT_VERSION" || return 1
    fi
    s3s="$tools/s3s-fs-$S3S_FS_VERSION/bin/s3s-fs"
    if [ ! -x "$s3s" ]; then
        echo "== installing s3s-fs $S3S_FS_VERSION into $tools (cargo install, a few minutes)"
        cargo install --quiet --locked s3s-fs --version "$S3S_FS_VERSION" --features binary \
            --root "$tools/s3s-fs-$S3S_FS_VERSION" || return 1
    fi

    S3_SERVERS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-s3-servers.XXXXXX")
    mkdir -p "$S3_SERVERS_DIR/s3s-data"
    S3_SERVERS_PIDS=""

    port=$(s3_servers_free_port)
    "$moto" -m moto.server -H 127.0.0.1 -p "$port" >"$S3_SERVERS_DIR/moto.log" 2>&1 &
    S3_SERVERS_PIDS="$!"
    export PIPELINE_TEST_MOTO_URL="http://127.0.0.1:$port"
    s3_servers_wait "$!" "$PIPELINE_TEST_MOTO_URL" "$S3_SERVERS_DIR/moto.log" || return 1

    ak=pipeline-test
    sk=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
    port=$(s3_servers_free_port)
    # s3s-fs logs every request at debug level with RUST_LOG=debug; warnings are enough here.
    RUST_LOG=${S3S_LOG:-warn} "$s3s" --host 127.0.0.1 --port "$port" \
        --access-key "$ak" --secret-key "$sk" "$S3_SERVERS_DIR/s3s-data" \
        >"$S3_SERVERS_DIR/s3s-fs.log" 2>&1 &
    S3_SERVERS_PIDS="$S3_SERVERS_PIDS $!"
    export PIPELINE_TEST_S3S_URL="http://127.0.0.1:$port"
    export PIPELINE_TEST_S3S_ACCESS_KEY=$ak
    export PIPELINE_TEST_S3S_SECRET_KEY=$sk
    s3_servers_wait "$!" "$PIPELINE_TEST_S3S_URL" "$S3_SERVERS_DIR/s3s-fs.log" || return 1
    echo "== S3 servers: moto at $PIPELINE_TEST_MOTO_URL, s3s-fs at $PIPELINE_TEST_S3S_URL (logs in $S3_SERVERS_DIR)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    trap s3_servers_stop EXIT
    trap 'exit 130' INT TERM
    s3_servers_start
    echo
    echo "export PIPELINE_TEST_MOTO_URL=$PIPELINE_TEST_MOTO_URL"
    echo "export PIPELINE_TEST_S3S_URL=$PIPELINE_TEST_S3S_URL"
    echo "export PIPELINE_TEST_S3S_ACCESS_KEY=$PIPELINE_TEST_S3S_ACCESS_KEY"
    echo "export PIPELINE_TEST_S3S_SECRET_KEY=$PIPELINE_TEST_S3S_SECRET_KEY"
    echo
    echo "serving until Ctrl-C"
    wait
else
    s3_servers_start
fi
