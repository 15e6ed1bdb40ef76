#!/usr/bin/env python3
"""Engine overhead: how long the engine itself takes to run a DAG of steps
that do nothing.

The DAG has 10 layers of 10 `kind: command` steps running `true STEP_NAME`; every step
in layers 2..10 depends (via `after:`) on two steps of the previous layer.
The same DAG is written as a Makefile (and as a dvc.yaml when `dvc` is
installed), and each tool runs it in a fresh temporary directory:

  pipeline cold    `pipeline run dag.yaml -j 2` with no `.pipeline/`
  pipeline cached  the same again, every step cached
  make -j2         the Makefile, from clean
  dvc cold/cached  `dvc repro` (skipped when dvc is not installed)

Each measurement is the wall time of the whole process, repeated N times after
one warm-up round, the engine and make by turns; the table shows medians.
Every sample runs in a directory of its own, and all of them are removed
when the benchmark ends (see `fresh_dir`). Usage:

  python3 bench/engine_overhead.py [--bin PATH] [--runs N] [--layers L] [--width W]
                                   [--steps N]

`--steps N` sets the number of layers so the DAG has about N steps of the
given width (5,000 steps: `--steps 5000` gives 50 layers of 100 with
`--width 100`).

The temporary directories follow TMPDIR, which decides the file system under
test: the engine lays out and removes a work directory a step, so a disk busy
with other writes slows the cold run far more than it slows make.
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
# No single measurement may run away; the whole benchmark stays bounded.
RUN_TIMEOUT_S = 300
MAX_RUNS = 50


def step_name(layer, i):
    return f"l{layer}-s{i}"


def dependencies(layer, i, width):
    """The two steps of the previous layer that step (layer, i) waits for."""
    if layer == 0:
        return []
    return [step_name(layer - 1, i), step_name(layer - 1, (i + 1) % width)]


def pipeline_yaml(layers, width):
    lines = ["name: engine-overhead", "steps:"]
    for layer in range(layers):
        for i in range(width):
            lines.append(f"  {step_name(layer, i)}:")
            lines.append("    kind: command")
            # The step's name as an (ignored) argument keeps each step's work
            # distinct: identical steps would share one cache key, and all
            # but the first would be served from the cache even on a cold run.
            lines.append(f"    run: [\"true\", \"{step_name(layer, i)}\"]")
            deps = dependencies(layer, i, width)
            if deps:
                lines.append(f"    after: [{', '.join(deps)}]")
    return "\n".join(lines) + "\n"


def makefile(layers, width):
    # Each step touches a stamp file so make knows it ran, as the engine
    # records a step; the recipe itself is `true` like the pipeline's.
    names = [step_name(l, i) for l in range(layers) for i in range(width)]
    out = [".PHONY: all", "all: " + " ".join(f"{n}.stamp" for n in names), ""]
    for layer in range(layers):
        for i in range(width):
            deps = " ".join(f"{d}.stamp" for d in dependencies(layer, i, width))
            out.append(f"{step_name(layer, i)}.stamp: {deps}".rstrip())
            out.append("\ttrue && touch $@")
    return "\n".join(out) + "\n"


def dvc_yaml(layers, width):
    out = ["stages:"]
    for layer in range(layers):
        for i in range(width):
            n = step_name(layer, i)
            out.append(f"  {n}:")
            out.append(f"    cmd: true && touch {n}.stamp")
            deps = dependencies(layer, i, width)
            if deps:
                out.append("    deps:")
                out.extend(f"      - {d}.stamp" for d in deps)
            out.append("    outs:")
            out.append(f"      - {n}.stamp")
    return "\n".join(out) + "\n"


def timed(cmd, cwd, env=None):
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=RUN_TIMEOUT_S,
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    return took


def engine_env():
    env = dict(os.environ)
    env.pop("PIPELINE_HOME", None)
    env["CI"] = "1"
    return env


def fresh_dir(keep, prefix):
    """A new temporary directory, removed only when the benchmark ends.

    Removing each sample's directory before the next sample would slow the
    next one: on an ext4 file system without a journal (this project's CI
    machines) the inode allocator skips inodes freed in the last 60 s (up to
    6 minutes while their blocks are dirty), looking each one up, so tens of
    thousands of files just removed make every new file and directory cost
    several times more, and the engine, which makes 14 a step to make's one,
    would pay for the benchmark's own clean-up.
    """
    d = tempfile.mkdtemp(prefix=prefix)
    keep.append(d)
    return d


def measure_pipeline_and_make(binary, yaml_text, make_text, runs, keep):
    """Cold and cached engine runs and a make run, by turns, each in a fresh
    directory, so that both see the machine in the same state."""
    cold, cached, made = [], [], []
    for r in range(runs + 1):
        d = fresh_dir(keep, "engine-overhead-")
        with open(os.path.join(d, "dag.yaml"), "w") as f:
            f.write(yaml_text)
        cmd = [binary, "run", "dag.yaml", "-j", "2"]
        c = timed(cmd, d, engine_env())
        k = timed(cmd, d, engine_env())
        m = None
        if make_text is not None:
            d = fresh_dir(keep, "engine-overhead-make-")
            with open(os.path.join(d, "Makefile"), "w") as f:
                f.write(make_text)
            m = timed(["make", "-s", "-j2"], d)
        if r > 0:  # round 0 warms the page cache
            cold.append(c)
            cached.append(k)
            if m is not None:
                made.append(m)
    return cold, cached, made


def measure_dvc(text, runs):
    cold, cached = [], []
    for r in range(runs + 1):
        with tempfile.TemporaryDirectory(prefix="engine-overhead-dvc-") as d:
            subprocess.run(["git", "init", "-q"], cwd=d, check=True)
            subprocess.run(["dvc", "init", "-q"], cwd=d, check=True)
            with open(os.path.join(d, "dvc.yaml"), "w") as f:
                f.write(text)
            c = timed(["dvc", "repro", "-q"], d)
            k = timed(["dvc", "repro", "-q"], d)
            if r > 0:
                cold.append(c)
                cached.append(k)
    return cold, cached


def build_release():
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "pipeline"], cwd=REPO, check=True
    )
    return os.path.join(REPO, "target", "release", "pipeline")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="the pipeline binary (default: build target/release/pipeline)")
    ap.add_argument("--runs", type=int, default=5, help="measured runs of each (after one warm-up)")
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--width", type=int, default=10)
    ap.add_argument("--steps", type=int, help="about this many steps: sets --layers from --width")
    args = ap.parse_args()
    if args.steps:
        args.layers = max(1, -(-args.steps // max(1, args.width)))
    runs = max(1, min(args.runs, MAX_RUNS))
    binary = os.path.abspath(args.bin) if args.bin else build_release()

    yaml_text = pipeline_yaml(args.layers, args.width)
    steps = args.layers * args.width
    print(f"{steps}-step layered DAG ({args.layers} layers of {args.width}), "
          f"{runs} runs each after a warm-up, {os.cpu_count()} cores")

    rows = []
    keep = []
    try:
        has_make = shutil.which("make") is not None
        make_text = makefile(args.layers, args.width) if has_make else None
        cold, cached, made = measure_pipeline_and_make(binary, yaml_text, make_text, runs, keep)
    finally:
        for d in keep:
            shutil.rmtree(d, ignore_errors=True)
    rows.append(("pipeline run -j 2 (cold)", cold))
    rows.append(("pipeline run -j 2 (all cached)", cached))
    if has_make:
        rows.append(("make -j2", made))
    else:
        print("make is not installed: skipped")
    if shutil.which("dvc") and shutil.which("git"):
        dcold, dcached = measure_dvc(dvc_yaml(args.layers, args.width), runs)
        rows.append(("dvc repro (cold)", dcold))
        rows.append(("dvc repro (all cached)", dcached))
    else:
        print("dvc is not installed: dvc repro skipped")

    make_median = next((statistics.median(t) for n, t in rows if n == "make -j2"), None)
    print()
    print(f"| {'command':<32} | {'median s':>9} | {'min s':>7} | {'max s':>7} | {'vs make':>8} |")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 10}|")
    for name, times in rows:
        med = statistics.median(times)
        ratio = f"{med / make_median:.1f}x" if make_median else "-"
        print(f"| {name:<32} | {med:>9.3f} | {min(times):>7.3f} | {max(times):>7.3f} | {ratio:>8} |")
    print()
    c, k = statistics.median(cold), statistics.median(cached)
    if steps <= 100:
        goal_cold, goal_cached = 0.6, 0.1
        print(f"goal: cold <= {goal_cold} s: {'met' if c <= goal_cold else 'MISSED'} ({c:.3f} s); "
              f"cached <= {goal_cached} s: {'met' if k <= goal_cached else 'MISSED'} ({k:.3f} s)")
    if make_median:
        ratio = c / make_median
        print(f"goal: cold <= 2x make -j2: {'met' if ratio <= 2 else 'MISSED'} ({ratio:.2f}x, "
              f"spread of the cold runs {min(cold):.3f}..{max(cold):.3f} s)")


if __name__ == "__main__":
    main()
