#!/usr/bin/env bash
# The AWS Batch test server: moto (S3, Batch, CloudWatch Logs and IAM on one
# endpoint) run by tests/moto_batch.py, which patches what a correct Batch
# client would trip on and runs each submitted job as a container on the
# local Docker Engine. It listens on the docker0 bridge's address (not
# loopback) so that code inside a job container can reach it, at a port
# found free at the time, and is installed first when missing (the same
# virtual environment as .ci/s3-servers.sh's moto).
#
# Exports where it is:
#
#   PIPELINE_TEST_BATCH_URL     http://172.17.0.1:PORT (the bridge's gateway)
#   PIPELINE_TEST_BATCH_QUEUE   a job queue made there (on an unmanaged
#                               compute environment, with its IAM role)
#
# Inside a job container the same server is http://host.docker.internal:PORT
# (moto adds that /etc/hosts entry and MOTO_HTTP_ENDPOINT) or the URL above.
#
# Sourced (`. .ci/batch-server.sh`), it leaves the server running and
# defines `batch_server_stop`, which stops it by its process ID (it then
# removes the job containers it started) and removes its log. Run as a
# program (`bash .ci/batch-server.sh`), it prints the `export` line to paste
# into another shell, then keeps the server until Ctrl-C.
#
# PIPELINE_CI_TOOLS is where moto is installed (default ~/.cache/pipeline-ci).

# Keep equal to .ci/s3-servers.sh's: both use one virtual environment.
BATCH_SERVER_MOTO_VERSION=5.2.5
BATCH_SERVER_AWSCRT_VERSION=0.38.1
BATCH_SERVER_WRAPPER="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/moto_batch.py"

# The docker0 bridge's gateway address, as Docker reports it (172.17.0.1 by
# default), else as `ip` shows docker0's address.
batch_server_address() {
    local addr
    addr=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null)
    if [ -z "$addr" ] && command -v ip >/dev/null; then
        addr=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n 1)
    fi
    if [ -z "$addr" ]; then
        echo "no docker0 bridge address (is the Docker Engine running?)" >&2
        return 1
    fi
    echo "$addr"
}

batch_server_stop() {
    if [ -n "${BATCH_SERVER_PID:-}" ]; then
        kill "$BATCH_SERVER_PID" 2>/dev/null || true
        wait "$BATCH_SERVER_PID" 2>/dev/null || true
        # A safety net for a server that could not clean up after itself.
        "${BATCH_SERVER_PYTHON:-python3}" "$BATCH_SERVER_WRAPPER" --cleanup >/dev/null 2>&1 || true
    fi
    BATCH_SERVER_PID=""
    if [ -n "${BATCH_SERVER_DIR:-}" ]; then rm -rf "$BATCH_SERVER_DIR"; fi
    BATCH_SERVER_DIR=""
}

# Makes what a job queue needs on the server at $1 (an IAM role, an
# unmanaged compute environment) and the queue, and exports its name.
batch_server_queue() {
    PIPELINE_TEST_BATCH_QUEUE=pipeline-test-queue
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
        "$BATCH_SERVER_PYTHON" - "$1" "$PIPELINE_TEST_BATCH_QUEUE" <<'PY' || return 1
import sys
import boto3
url, queue = sys.argv[1], sys.argv[2]
iam = boto3.client("iam", endpoint_url=url)
role = iam.create_role(RoleName="pipeline-test-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
batch = boto3.client("batch", endpoint_url=url)
ce = batch.create_compute_environment(
    computeEnvironmentName="pipeline-test-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
)["computeEnvironmentArn"]
batch.create_job_queue(
    jobQueueName=queue, state="ENABLED", priority=1,
    computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
)
PY
    export PIPELINE_TEST_BATCH_QUEUE
}

batch_server_start() {
    local tools addr port url i
    tools=${PIPELINE_CI_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pipeline-ci}
    BATCH_SERVER_PYTHON="$tools/moto-$BATCH_SERVER_MOTO_VERSION/bin/python"
    # docker: moto's Batch runs jobs through it (moto[server] brings it).
    if ! "$BATCH_SERVER_PYTHON" -c 'import moto.server, flask, awscrt, docker' 2>/dev/null; then
        echo "== installing moto $BATCH_SERVER_MOTO_VERSION into $tools (pip, in a virtual environment)"
        python3 -m venv "$tools/moto-$BATCH_SERVER_MOTO_VERSION" || return 1
        "$BATCH_SERVER_PYTHON" -m pip install --quiet --disable-pip-version-check \
            "moto[server]==$BATCH_SERVER_MOTO_VERSION" "awscrt==$BATCH_SERVER_AWSCRT_VERSION" || return 1
    fi
    addr=$(batch_server_address) || return 1
    port=$(python3 -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$addr") || return 1
    url="http://$addr:$port"

    BATCH_SERVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-batch-server.XXXXXX")
    "$BATCH_SERVER_PYTHON" "$BATCH_SERVER_WRAPPER" --host "$addr" --port "$port" \
        >"$BATCH_SERVER_DIR/moto-batch.log" 2>&1 &
    BATCH_SERVER_PID=$!

    # Wait until it answers HTTP (any status), or fail after 60 s or when it
    # exits, showing its log.
    for i in $(seq 1 240); do
        if ! kill -0 "$BATCH_SERVER_PID" 2>/dev/null; then
            echo "the Batch test server for $url exited:" >&2
            tail -n 30 "$BATCH_SERVER_DIR/moto-batch.log" >&2
            BATCH_SERVER_PID=""
            return 1
        fi
        if curl -s -o /dev/null --max-time 2 "$url/"; then
            batch_server_queue "$url" || return 1
            export PIPELINE_TEST_BATCH_URL="$url"
            echo "== Batch test server (moto, jobs on the local Docker Engine) at $url (log in $BATCH_SERVER_DIR)"
            return 0
        fi
        sleep 0.25
    done
    echo "nothing answers at $url after 60 s:" >&2
    tail -n 30 "$BATCH_SERVER_DIR/moto-batch.log" >&2
    return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    trap batch_server_stop EXIT
    trap 'exit 130' INT TERM
    batch_server_start
    echo
    echo "export PIPELINE_TEST_BATCH_URL=$PIPELINE_TEST_BATCH_URL PIPELINE_TEST_BATCH_QUEUE=$PIPELINE_TEST_BATCH_QUEUE"
    echo
    echo "serving until Ctrl-C"
    wait
else
    batch_server_start
fi
