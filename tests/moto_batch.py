#!/usr/bin/env python3
"""moto's server (5.2.5: S3, Batch, CloudWatch Logs, IAM on one endpoint) for
the AWS Batch executor's tests, jobs run as containers on the local Docker
Engine. Patched only where a correct Batch client would trip, one line each:

- logs: log event timestamp/ingestionTime are integer ms (Batch gave floats; the Rust SDK rejects them)
- exitCode: DescribeJobs has container.exitCode and attempts[].container.exitCode once a job stopped
- statusReason: every FAILED job and its attempt has one (exit, TerminateJob reason, timeout, dependency, Docker error)
- vcpus: DescribeJobs' container.vcpus is an integer (moto gave 1.0; a fraction like 0.5 is left out, not i32)
- environment: DescribeJobs no longer adds one more AWS_BATCH_JOB_ID to containerOverrides per call
- timeout: attemptDurationSeconds terminates the job like TerminateJob (moto's own check lost the logs)
- cleanup: job containers carry label moto-batch-harness=<pid>, removed on SIGTERM/SIGINT and by --cleanup
- multi-node: nodes get AWS_BATCH_JOB_NODE_INDEX/_NUM_NODES/_MAIN_NODE_INDEX, ID <job>#<i>; main node's exit ends the job

Usage:
  python tests/moto_batch.py --host 172.17.0.1 --port PORT
      serves until SIGTERM/SIGINT, after printing one line
      "moto-batch ready at http://HOST:PORT" (PORT 0: any free port)
  python tests/moto_batch.py --cleanup
      removes the job containers of servers no longer running (labelled
      with a dead pid, or unlabelled ones that an unpatched moto started:
      their environment has MOTO_HOST and MOTO_HTTP_ENDPOINT)

Bind to the docker0 bridge's address (not 127.0.0.1) so that job containers
can reach the server: moto gives them MOTO_HTTP_ENDPOINT
(http://host.docker.internal:PORT, an /etc/hosts entry for the host gateway).
"""

import argparse
import os
import signal
import sys
import threading
import time

LABEL = "moto-batch-harness"  # value: the pid of the server that ran the job
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
MAIN_IP = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"

_lock = threading.Lock()
_shutting_down = False
_starting = 0  # container starts under way


def _patch() -> None:
    import docker.models.containers as docker_containers
    from moto.batch import models as batch
    from moto.logs import models as logs

    # logs timestamps
    log_event_init = logs.LogEvent.__init__

    def log_event_init_ms(self, ingestion_time, log_event):
        log_event_init(self, int(ingestion_time), log_event)
        self.timestamp = int(self.timestamp)

    logs.LogEvent.__init__ = log_event_init_ms

    # exitCode
    describe = batch.Job.describe

    def describe_with_exit_code(self):
        result = describe(self)
        container = result.get("container")
        if self.job_stopped and self.exit_code is not None:
            result.setdefault("container", {})["exitCode"] = self.exit_code
        # vcpus
        vcpus = (container or {}).get("vcpus")
        if isinstance(vcpus, float):
            if vcpus.is_integer():
                container["vcpus"] = int(vcpus)
            else:
                del container["vcpus"]
        return result

    batch.Job.describe = describe_with_exit_code

    # statusReason (and the attempt's exitCode, set before the status changes)
    mark_stopped = batch.Job._mark_stopped

    def mark_stopped_with_reason(self, success=True):
        if self.job_stopped:
            return
        timer = getattr(self, "_harness_timer", None)
        if timer is not None:
            timer.cancel()
        if not success and self.job_stopped_reason is None:
            if self.exit_code:
                self.job_stopped_reason = "Essential container in task exited"
            elif self.latest_attempt is None and self.depends_on:
                self.job_stopped_reason = "Dependent Job failed"
            else:  # moto logs the error; AWS would say e.g. CannotPullContainerError
                self.job_stopped_reason = getattr(
                    self, "_harness_error", "the container could not be run")
        if self.latest_attempt is not None:
            if self.exit_code is not None:
                self.latest_attempt["container"]["exitCode"] = self.exit_code
            if self.job_stopped_reason is not None:
                self.latest_attempt["statusReason"] = self.job_stopped_reason
        mark_stopped(self, success)

    batch.Job._mark_stopped = mark_stopped_with_reason

    # environment
    container_property = batch.Job._get_container_property

    def container_property_once(self, p, default):
        if p != "environment":
            return container_property(self, p, default)
        env = {}
        for source in (self.job_definition.container_properties, self.container_overrides):
            env.update({e["name"]: e["value"] for e in source.get("environment", [])})
        env["AWS_BATCH_JOB_ID"] = self.job_id
        return [{"name": k, "value": v} for k, v in env.items()]

    batch.Job._get_container_property = container_property_once

    # timeout: moto's check raises inside its wait loop, skipping the logs
    attempt_duration = batch.Job._get_attempt_duration
    batch.Job._get_attempt_duration = lambda self: None

    def time_out(job):
        if not job.job_stopped:
            job.terminate(TIMEOUT_REASON)

    # cleanup, multi-node and the timer: moto starts every job container
    # with containers.run from the job's own thread (a batch.Job)
    run = docker_containers.ContainerCollection.run

    def run_labelled(self, *args, **kwargs):
        global _starting
        job = threading.current_thread()
        if not isinstance(job, batch.Job):
            return run(self, *args, **kwargs)
        started = job.__dict__.setdefault("_harness_containers", [])
        kwargs["labels"] = {**(kwargs.get("labels") or {}), LABEL: str(os.getpid())}
        node_properties = job.job_definition.node_properties
        if job.job_definition.type == "multinode" and node_properties:
            _node_env(kwargs["environment"], job, node_properties, len(started), started)
        with _lock:
            if _shutting_down:
                raise RuntimeError("the server is shutting down")
            _starting += 1
        try:
            container = run(self, *args, **kwargs)
        except Exception as err:
            job._harness_error = f"CannotStartContainerError: {err}"
            raise
        finally:
            with _lock:
                _starting -= 1
        started.append(container)
        if len(started) == 1 and attempt_duration(job):
            job._harness_timer = threading.Timer(attempt_duration(job), time_out, (job,))
            job._harness_timer.daemon = True
            job._harness_timer.start()
        if job.job_definition.type == "multinode" and node_properties:
            main = node_properties.get("mainNode", 0)
            if len(started) - 1 != main:
                _end_with_main(container, started, main)
        return container

    docker_containers.ContainerCollection.run = run_labelled


def _node_env(env, job, node_properties, index, started):
    """The multi-node variables for node `index` (moto starts nodes in order)."""
    main = node_properties.get("mainNode", 0)
    env["AWS_BATCH_JOB_NODE_INDEX"] = str(index)
    env["AWS_BATCH_JOB_NUM_NODES"] = str(node_properties["numNodes"])
    env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] = str(main)
    env["AWS_BATCH_JOB_ID"] = f"{job.job_id}#{index}"
    # moto gives node 0's address, right only when node 0 is the main node
    if index <= main:
        env.pop(MAIN_IP, None)  # the main node itself, or started before it
    elif main > 0:
        networks = started[main].attrs["NetworkSettings"]["Networks"]
        env[MAIN_IP] = next(iter(networks.values()))["IPAddress"]


def _end_with_main(node, started, main):
    """Make a non-main node stop once the main node has exited, and then
    report exit code 0 so that the main node's exit code decides the job."""
    reload, wait = node.reload, node.wait
    stopped_by_main = []

    def reload_or_stop(*args, **kwargs):
        reload(*args, **kwargs)
        if node.status == "running" and len(started) > main:
            started[main].reload()
            if started[main].status != "running":
                stopped_by_main.append(True)
                node.kill()
                reload(*args, **kwargs)

    def wait_result(*args, **kwargs):
        result = wait(*args, **kwargs)
        return {**result, "StatusCode": 0} if stopped_by_main else result

    node.reload, node.wait = reload_or_stop, wait_result


def _remove(containers, log) -> int:
    removed = 0
    for container in containers:
        try:
            container.remove(force=True)
            removed += 1
        except Exception as err:  # already gone (moto removed it meanwhile)
            log(f"could not remove container {container.name}: {err}")
    return removed


def _alive(pid: str) -> bool:
    """Whether the server that labelled a container still runs (a zombie or
    a reused pid has another command line)."""
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as f:
            return b"moto_batch" in f.read()
    except (ValueError, OSError):
        return False


def _moto_made(container) -> bool:
    """A container moto started without this wrapper: moto sets these."""
    env = container.attrs.get("Config", {}).get("Env") or []
    return any(e.startswith("MOTO_HTTP_ENDPOINT=") for e in env) and any(
        e.startswith("MOTO_HOST=") for e in env
    )


def cleanup(log=print) -> int:
    """Removes the job containers of servers that are gone: labelled by this
    wrapper with a pid no longer running, or started by an unpatched moto."""
    import docker

    leftovers = [
        c for c in docker.from_env().containers.list(all=True)
        if (not _alive(c.labels[LABEL]) if LABEL in c.labels else _moto_made(c))
    ]
    removed = _remove(leftovers, log)
    log(f"removed {removed} leftover moto job container(s)")
    return removed


def _shutdown(log) -> None:
    global _shutting_down
    import docker

    with _lock:
        _shutting_down = True
    deadline = time.monotonic() + 30
    while _starting and time.monotonic() < deadline:
        time.sleep(0.1)
    mine = docker.from_env().containers.list(
        all=True, filters={"label": f"{LABEL}={os.getpid()}"})
    n = _remove(mine, log)
    log(f"moto-batch: removed {n} job container(s)")


def serve(host: str, port: int) -> None:
    from moto.server import ThreadedMotoServer

    _patch()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # What moto tells job containers (MOTO_PORT, MOTO_HTTP_ENDPOINT); read
    # when each job starts.
    os.environ["MOTO_PORT"] = str(port)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"moto-batch ready at http://{host}:{port}", flush=True)
    while not stop.wait(3600):
        pass
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    _shutdown(log)
    server.stop()
    sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="172.17.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cleanup", action="store_true",
                        help="remove leftover moto job containers, then exit")
    args = parser.parse_args()
    if args.cleanup:
        cleanup()
    else:
        serve(args.host, args.port)


if __name__ == "__main__":
    main()
