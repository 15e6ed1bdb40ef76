#!/usr/bin/env python3
"""AutoML benchmark: our `kind: automl` against FLAML, with the same time
budget, on the same data and the same train/validation/test split.

Data sets: scikit-learn's breast_cancer and digits, and
make_classification(n_samples=20000, n_features=30, n_informative=8,
random_state=0); each split once into train, validation and test
(60/20/20, stratified, random_state=0). Both sides search on train,
select on validation (FLAML: eval_method="holdout" with X_val/y_val) and
are scored here on test, which neither sees during the search.

Objective: AUC for the binary sets (ours `validation:auc`, FLAML
`roc_auc`), log loss for digits (ours `validation:mlogloss`, FLAML
`log_loss`). Each side gets `--budget` seconds (default 60) and both
cores (ours: max_parallel_jobs 2 with -j 2; FLAML: n_jobs=2). For each
data set and seed it runs ours, then FLAML, in this one invocation, and
reports the held-out test score of each (median over seeds, min-max), the
test accuracy, the trials each side made and its wall time.

Usage:
  bench/automl.py --bin target/release/pipeline [--seeds 3] [--budget 60]
                  [--datasets breast_cancer,digits,synthetic] [--out DIR]
  bench/automl.py --bin ... --smoke   (1 seed, 8 s, breast_cancer: CI)

Needs numpy, scikit-learn and flaml (pip install flaml, which uses the
installed lightgbm and xgboost).
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def load(name):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    if name == "breast_cancer":
        x, y = datasets.load_breast_cancer(return_X_y=True)
    elif name == "digits":
        x, y = datasets.load_digits(return_X_y=True)
    elif name == "synthetic":
        x, y = datasets.make_classification(n_samples=20000, n_features=30, n_informative=8, random_state=0)
    else:
        sys.exit(f"unknown data set {name}")
    x = x.astype(np.float32)
    xa, xt, ya, yt = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    xr, xv, yr, yv = train_test_split(xa, ya, test_size=0.25, random_state=0, stratify=ya)
    return (xr, yr.astype(int)), (xv, yv.astype(int)), (xt, yt.astype(int))


def write_csv(path, x, y):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(x.shape[1])] + ["label"])
        for row, label in zip(x, y):
            w.writerow([repr(float(v)) for v in row] + [int(label)])


def binary(y):
    return len(set(y.tolist())) == 2


def score(y, proba):
    """(the objective on test, test accuracy): AUC for two classes, else log loss."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    proba = np.asarray(proba, dtype=np.float64)
    if binary(y):
        p1 = proba if proba.ndim == 1 else proba[:, -1]
        return roc_auc_score(y, p1), accuracy_score(y, (p1 >= 0.5).astype(int))
    return log_loss(y, proba, labels=list(range(proba.shape[1]))), accuracy_score(y, proba.argmax(axis=1))


def run_ours(bin_path, data_dir, y_test, budget, seed, trials):
    metric = "validation:auc" if binary(y_test) else "validation:mlogloss"
    direction = "maximize" if binary(y_test) else "minimize"
    text = f"""name: automl-bench
inputs:
  train: {{path: train.csv, format: csv, header: true, target: label}}
  validation: {{path: validation.csv, format: csv, header: true, target: label}}
  test: {{path: test.csv, format: csv, header: true, target: label}}
steps:
  automl:
    kind: automl
    channels: {{train: inputs.train, validation: inputs.validation, test: inputs.test}}
    objective: {{metric: "{metric}", type: {direction}}}
    budget: {{trials: {trials}, time: {budget}s}}
    max_parallel_jobs: 2
    seed: {seed}
"""
    with tempfile.TemporaryDirectory(dir=data_dir) as d:
        for f in ("train.csv", "validation.csv", "test.csv"):
            os.symlink(os.path.join(data_dir, f), os.path.join(d, f))
        with open(os.path.join(d, "p.yaml"), "w") as f:
            f.write(text)
        t0 = time.monotonic()
        out = subprocess.run([bin_path, "run", "p.yaml", "--json", "-j", "2"], cwd=d,
                             capture_output=True, text=True, timeout=budget * 4 + 120)
        wall = time.monotonic() - t0
        if out.returncode != 0:
            sys.exit(f"pipeline run failed ({out.returncode}):\n{out.stderr[-4000:]}")
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        step = summary["steps"]["automl"]
        model = step["outputs"]["model"]["path"]
        board = open(os.path.join(step["outputs"]["leaderboard"]["path"], "leaderboard.csv")).read()
        table = list(csv.DictReader(board.splitlines()))
        ran = sum(1 for r in table if r["trial"] != "ensemble" and r["status"] in ("succeeded", "failed"))
        best_algo = table[0]["algorithm"]
        pred = os.path.join(d, "pred.csv")
        subprocess.run([bin_path, "predict", "--model", model, "--data", "test.csv", "--target", "label",
                        "--out", pred], cwd=d, check=True, capture_output=True, timeout=600)
        with open(pred) as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        # `probability` (binary), or one `prob_CLASS` / `probability_CLASS` a class.
        cols = [(i, h) for i, h in enumerate(header) if h.startswith("prob")]
        if len(cols) > 1:
            cols.sort(key=lambda c: float(c[1].split("_", 1)[1]))
        if not cols:
            sys.exit(f"no probability column in the predictions: {header}")
        proba = np.array([[float(r[i]) for i, _ in cols] for r in body])
        if proba.shape[1] == 1:
            proba = proba[:, 0]
        obj, acc = score(y_test, proba)
        return {"test": obj, "accuracy": acc, "trials": ran, "wall_s": wall, "best": best_algo,
                "complete": step["metrics"].get("complete")}


def run_flaml(train, validation, test, budget, seed):
    from flaml import AutoML
    (xr, yr), (xv, yv), (xt, yt) = train, validation, test
    automl = AutoML()
    t0 = time.monotonic()
    automl.fit(xr, yr, X_val=xv, y_val=yv, task="classification",
               metric="roc_auc" if binary(yt) else "log_loss", time_budget=budget, seed=seed,
               eval_method="holdout", n_jobs=2, verbose=0)
    wall = time.monotonic() - t0
    proba = automl.predict_proba(xt)
    obj, acc = score(yt, proba)
    trials = len(getattr(automl, "config_history", {}) or {})
    return {"test": obj, "accuracy": acc, "trials": trials, "wall_s": wall, "best": automl.best_estimator}


def med(xs):
    return f"{statistics.median(xs):.4f} ({min(xs):.4f}-{max(xs):.4f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--trials", type=int, default=500, help="our budget in trials (the time budget binds first)")
    ap.add_argument("--datasets", default="breast_cancer,digits,synthetic")
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.seeds, a.budget, a.trials, a.datasets = 1, 8, 6, "breast_cancer"
    try:
        import flaml  # noqa: F401
    except ImportError:
        print("SKIPPED: needs flaml (pip install flaml)")
        return
    bin_path = os.path.abspath(a.bin)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.datasets.split(","):
            train, validation, test = load(name)
            data_dir = os.path.join(tmp, name)
            os.makedirs(data_dir)
            for f, (x, y) in (("train.csv", train), ("validation.csv", validation), ("test.csv", test)):
                write_csv(os.path.join(data_dir, f), x, y)
            for seed in range(a.seeds):
                ours = run_ours(bin_path, data_dir, test[1], a.budget, seed, a.trials)
                theirs = run_flaml(train, validation, test, a.budget, seed)
                results.setdefault(name, []).append({"seed": seed, "ours": ours, "flaml": theirs})
                print(f"{name} seed {seed}: ours {ours['test']:.4f} ({ours['best']}, {ours['trials']} trials, "
                      f"{ours['wall_s']:.0f} s), flaml {theirs['test']:.4f} ({theirs['best']}, "
                      f"{theirs['trials']} trials, {theirs['wall_s']:.0f} s)", flush=True)
    print()
    print(f"| data set | objective | ours: test | FLAML: test | ours: accuracy | FLAML: accuracy | ours: trials | FLAML: trials | ours >= FLAML |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        higher = name != "digits"
        o = [r["ours"]["test"] for r in rs]
        f = [r["flaml"]["test"] for r in rs]
        ok = statistics.median(o) >= statistics.median(f) if higher else statistics.median(o) <= statistics.median(f)
        print(f"| {name} | {'AUC' if higher else 'log loss'} | {med(o)} | {med(f)} | "
              f"{med([r['ours']['accuracy'] for r in rs])} | {med([r['flaml']['accuracy'] for r in rs])} | "
              f"{statistics.median([r['ours']['trials'] for r in rs]):.0f} | "
              f"{statistics.median([r['flaml']['trials'] for r in rs]):.0f} | {'yes' if ok else 'no'} |")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "automl.json"), "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
