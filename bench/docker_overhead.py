#!/usr/bin/env python3
"""Docker executor overhead: what running a step through the engine's docker
executor costs over a bare `docker run` of the same command.

A tiny image (busybox from Debian's busybox-static, FROM scratch) is built
first. Then, in one run, alternating:

  docker run   `docker run --rm --network none IMAGE true STEP` for STEPS steps,
               one after another
  pipeline     `pipeline run steps.yaml -j 1 --no-cache`: STEPS independent
               command steps running `true STEP` in the same image, with
               `executor: docker` and `network: none`

Each figure is the wall time of the whole batch divided by STEPS (the time a
step costs), repeated N times; the table shows medians and their ratio. The
pipeline's figure includes everything the engine does for a step (planning,
laying out /opt/ml, the run records, storing outputs), so the ratio is the
engine's overhead over the Docker Engine's own. Usage:

  python3 bench/docker_overhead.py [--bin PATH] [--runs N] [--steps S]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_TIMEOUT_S = 300
MAX_RUNS = 20
MAX_STEPS = 100
IMAGE = "pipeline-bench/busybox:1"


def build_image():
    if not os.path.exists("/bin/busybox"):
        sys.exit("needs /bin/busybox (Debian's busybox-static)")
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy("/bin/busybox", os.path.join(ctx, "busybox"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(
                "FROM scratch\nCOPY busybox /bin/busybox\n"
                'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
                "ENV PATH=/bin\n"
            )
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, ctx], check=True,
                       stdout=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S)


def pipeline_yaml(steps):
    lines = ["name: docker-overhead", "defaults: {executor: docker, network: none}", "steps:"]
    for i in range(steps):
        lines += [f"  s{i}:", "    kind: command", f"    image: {IMAGE}",
                  f'    run: ["true", "s{i}"]']
    return "\n".join(lines) + "\n"


def timed(cmd, cwd):
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S)
    return time.perf_counter() - t


def bare(steps, cwd):
    t = time.perf_counter()
    for i in range(steps):
        subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "true", f"s{i}"],
                       cwd=cwd, check=True, stdout=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S)
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/pipeline"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    runs = max(1, min(a.runs, MAX_RUNS))
    steps = max(1, min(a.steps, MAX_STEPS))
    build_image()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "steps.yaml"), "w") as f:
            f.write(pipeline_yaml(steps))
        # Warm-up: the runtime image check, the engine's caches, the page cache.
        timed([a.bin, "run", "steps.yaml", "-j", "1", "--no-cache"], d)
        bare(1, d)
        for _ in range(runs):
            theirs.append(bare(steps, d))
            ours.append(timed([a.bin, "run", "steps.yaml", "-j", "1", "--no-cache"], d) / steps)
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"| per step, {steps} steps, median of {runs} | seconds |")
    print("|---|---|")
    print(f"| bare `docker run --rm` | {m_theirs:.3f} |")
    print(f"| pipeline, docker executor | {m_ours:.3f} |")
    print(f"| ratio | {m_ours / m_theirs:.2f} |")


if __name__ == "__main__":
    main()
