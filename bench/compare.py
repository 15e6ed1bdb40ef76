#!/usr/bin/env python3
"""Runs the built-in algorithms and the reference libraries side by side.

For each task, ours is a pipeline with one train step (and an evaluate step
that scores it), run with `pipeline run --json --no-cache`; the figure is the
train step's duration as recorded by the engine: reading its channel and
training, as a user pays for it. The peers run through the shared
`peers.py`, whose figure is load_s + train_s. Every figure is the median of
--runs runs, and ours and the peers run in the same invocation, in turn.

Usage:
  bench/compare.py [--shared ../shared/bench] [--data DIR | --scale S]
                   [--runs N] [--threads 2] [--tasks gbdt,linear,...] [--out DIR]

Needs the Python packages of peers.py (numpy scikit-learn xgboost lightgbm
pyarrow polars pandas) and a release build (`cargo build --release`).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# task -> (peers, our pipeline's train hyperparameters, quality metric, higher is better)
TASKS = {
    "gbdt": (["lightgbm", "xgboost"], {"objective": "binary:logistic", "num_round": 100, "max_depth": 6,
                                        "eta": 0.1, "max_bin": 256, "lambda": 1}, "auc", True),
    "gbdtreg": (["lightgbm", "xgboost"], {"objective": "reg:squarederror", "num_round": 100, "max_depth": 6,
                                           "eta": 0.1, "max_bin": 256, "lambda": 1}, "rmse", False),
    "linear": (["sklearn-lbfgs"], {"predictor_type": "binary_classifier"}, "auc", True),
    "kmeans": (["sklearn"], {"k": 16, "init_method": "kmeans++", "max_iterations": 100, "tol": 1e-4,
                             "seed": 0}, "inertia", False),
    "pca": (["sklearn-eigh"], {"num_components": 16, "algorithm_mode": "regular"},
            "explained_variance_ratio", True),
    "csv": (["polars", "pyarrow"], None, None, None),
}
PEER_QUALITY = {"auc": "auc", "rmse": "rmse", "inertia": "inertia",
                "explained_variance_ratio": "explained_variance_ratio"}


def run(cmd, timeout=3600, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    return p


def ensure_data(args):
    if args.data:
        return os.path.abspath(args.data)
    d = os.path.join(args.out, "data")
    if not os.path.exists(os.path.join(d, "events.csv")):
        os.makedirs(d, exist_ok=True)
        p = run([sys.executable, os.path.join(args.shared, "gen_data.py"), d, "--scale", str(args.scale)])
        if p.returncode != 0:
            sys.exit(f"gen_data.py failed:\n{p.stderr}")
    return d


def holdout_reg(data):
    """reg.csv's last rows are the peers' test set: split it once, outside any timing."""
    train, test = os.path.join(data, "reg_train.csv"), os.path.join(data, "reg_test.csv")
    if not os.path.exists(test):
        with open(os.path.join(data, "reg.csv")) as f:
            lines = f.readlines()
        hold = min(200_000, len(lines) // 5)
        with open(train, "w") as f:
            f.writelines(lines[:-hold])
        with open(test, "w") as f:
            f.writelines(lines[-hold:])
    return train, test


def pipeline_yaml(task, data, hps, threads):
    algo = {"gbdt": "gbdt", "gbdtreg": "gbdt", "linear": "linear-learner", "kmeans": "kmeans", "pca": "pca"}[task]
    label = 1 if task in ("gbdt", "gbdtreg", "linear") else 0
    if task in ("gbdt", "linear"):
        train, test = os.path.join(data, "clf.csv"), os.path.join(data, "clf_test.csv")
    elif task == "gbdtreg":
        train, test = holdout_reg(data)
    else:
        train = test = os.path.join(data, {"kmeans": "blobs.csv", "pca": "wide.csv"}[task])
    metric = TASKS[task][2]
    hp = "\n".join(f'      {k}: "{v}"' for k, v in hps.items())
    return f"""name: bench-{task}
inputs:
  train: {{path: {train}, header: false, label_size: {label}}}
  test: {{path: {test}, header: false, label_size: {label}}}
steps:
  train:
    kind: train
    algorithm: {algo}
    channels: {{train: inputs.train}}
    resources: {{cpus: {threads}}}
    hyperparameters:
{hp}
  score:
    kind: evaluate
    model: train.model
    data: inputs.test
    metrics: [{metric}]
"""


def ours(task, data, args):
    if task == "csv":
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            p = run([args.bin, "inspect", os.path.join(data, "clf.csv"), "--header", "false", "--label-size", "1"])
            if p.returncode != 0:
                return {"error": p.stderr.strip()[-500:]}
            times.append(time.perf_counter() - t)
        return {"seconds": statistics.median(times)}
    hps = TASKS[task][1]
    work = os.path.join(args.out, f"ours-{task}")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "p.yaml"), "w") as f:
        f.write(pipeline_yaml(task, data, hps, args.threads))
    times, quality = [], None
    for _ in range(args.runs):
        p = run([args.bin, "run", "p.yaml", "--json", "--no-cache", "-j", "1"], cwd=work,
                env={**os.environ, "PIPELINE_HOME": os.path.join(work, ".pipeline")})
        lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
        if p.returncode != 0 or not lines:
            return {"error": (p.stderr.strip() or p.stdout.strip())[-800:]}
        summary = json.loads(lines[-1])
        times.append(summary["steps"]["train"]["duration_s"])
        quality = summary["steps"]["score"].get("metrics", {}).get(TASKS[task][2])
    return {"seconds": statistics.median(times), "quality": quality}


def peer(task, name, data, args):
    times, quality = [], None
    peer_task = task
    for _ in range(args.runs):
        p = run([sys.executable, os.path.join(args.shared, "peers.py"), peer_task, name, data,
                 "--threads", str(args.threads)])
        if p.returncode != 0:
            return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "failed"}
        r = json.loads(p.stdout.strip().splitlines()[-1])
        times.append(r["load_s"] + r.get("train_s", 0.0))
        if task != "csv":
            quality = r.get(PEER_QUALITY[TASKS[task][2]])
    return {"seconds": statistics.median(times), "quality": quality}


def fmt(x, digits=4):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) >= 1e4 else f"{x:.{digits}f}"
    return str(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "bench"))
    ap.add_argument("--data")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "pipeline"))
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    args.runs = max(1, min(args.runs, 20))
    os.makedirs(args.out, exist_ok=True)
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} does not exist: run `cargo build --release` first")
    data = ensure_data(args)
    rows, failures = [], 0
    for task in [t for t in args.tasks.split(",") if t]:
        if task not in TASKS:
            sys.exit(f"unknown task {task}; tasks: {', '.join(TASKS)}")
        mine = ours(task, data, args)
        if "error" in mine:
            failures += 1
            print(f"{task}: ours failed: {mine['error']}", file=sys.stderr)
        for name in TASKS[task][0]:
            theirs = peer(task, name, data, args)
            ratio = (mine["seconds"] / theirs["seconds"]) if "seconds" in mine and "seconds" in theirs else None
            rows.append({"task": task, "peer": name, "ours_s": mine.get("seconds"), "peer_s": theirs.get("seconds"),
                         "ratio": ratio, "ours_quality": mine.get("quality"), "peer_quality": theirs.get("quality"),
                         "metric": TASKS[task][2], "error": mine.get("error") or theirs.get("error")})
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"scale": args.scale, "runs": args.runs, "threads": args.threads, "rows": rows}, f, indent=1)
    print(f"| task | peer | ours (s) | peer (s) | ratio | metric | ours | peer |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        note = f" ({r['error'][:60]})" if r["error"] else ""
        print(f"| {r['task']} | {r['peer']}{note} | {fmt(r['ours_s'], 3)} | {fmt(r['peer_s'], 3)} | "
              f"{fmt(r['ratio'], 2)} | {r['metric'] or '-'} | {fmt(r['ours_quality'])} | {fmt(r['peer_quality'])} |")
    if failures:
        sys.exit(f"{failures} of our runs failed")


if __name__ == "__main__":
    main()
