#!/usr/bin/env python3
"""Tuning benchmark: our `kind: tune` (bayesian and random) against Optuna's
TPE sampler driving XGBoost, on the same data, split and search space.

Data sets: scikit-learn's breast_cancer and digits, and
make_classification(n_samples=20000, n_features=30, n_informative=8,
random_state=0); each split once into train and validation (75/25,
stratified, random_state=0). Search space, for every tuner: max_depth
2-10, eta 0.01-0.3 (log), min_child_weight 0.5-20 (log), subsample 0.5-1,
lambda and alpha 1e-3-10 (log); num_round 100. Objective: validation AUC
(binary sets, maximised) or validation mlogloss (digits, minimised).

For each data set and seed it runs, in turn and in this one invocation:
our bayesian search, our random search (`pipeline run`, one trial at a
time) and Optuna TPE + XGBoost (n_jobs=1). It reports, with medians over
the seeds and the spread (min-max):
- the trials our bayesian search (default window 4, and window 1) needs to
  reach random search's median best-of-N (goal: at most N/4; N+1 when it
  never does);
- best-of-N/2 of ours (bayesian) and of Optuna TPE;
- engine time per trial: the wall time of `pipeline run` less the
  training time each trial's log reports ("trained gbdt in X s"), over
  the trials; it holds starting the trial's process, reading its data,
  recording and caching;
- whether one seed gives the same leaderboard with 1 and 2 parallel jobs
  (ours) and the same trials with n_jobs 1 and 2 (Optuna).

Usage:
  bench/tuning.py --bin target/release/pipeline [--seeds 10] [--trials 64]
                  [--datasets breast_cancer,digits,synthetic] [--out DIR]
  bench/tuning.py --bin ... --smoke     (1 seed, 8 trials, breast_cancer: CI)

Needs numpy, scikit-learn, xgboost and optuna (pip install optuna).
"""
import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SPACE = {
    "max_depth": ("integer", 2, 10, "linear"),
    "eta": ("continuous", 0.01, 0.3, "logarithmic"),
    "min_child_weight": ("continuous", 0.5, 20, "logarithmic"),
    "subsample": ("continuous", 0.5, 1.0, "linear"),
    "lambda": ("continuous", 1e-3, 10, "logarithmic"),
    "alpha": ("continuous", 1e-3, 10, "logarithmic"),
}
ROUNDS = 100


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
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return xt.astype(np.float32), xv.astype(np.float32), yt.astype(int), yv.astype(int)


def write_csv(path, x, y):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(x.shape[1])] + ["label"])
        for row, label in zip(x, y):
            w.writerow([repr(float(v)) for v in row] + [int(label)])


def task(y):
    k = len(set(y.tolist()))
    if k == 2:
        return {"objective": "binary:logistic"}, "validation:auc", "maximize", "auc"
    return {"objective": "multi:softprob", "num_class": k}, "validation:mlogloss", "minimize", "mlogloss"


def pipeline_text(fixed, metric, direction, strategy, trials, parallel, seed, window=None):
    hp = dict(fixed, num_round=ROUNDS)
    hp.pop("num_class", None)
    ranges = "\n".join(
        f"      {k}: {{type: {t}, min: {lo}, max: {hi}, scaling: {s}}}" for k, (t, lo, hi, s) in SPACE.items())
    hps = ", ".join(f'{k}: "{v}"' for k, v in hp.items())
    return f"""name: tuning-bench
inputs:
  train: {{path: train.csv, format: csv, header: true, target: label}}
  validation: {{path: validation.csv, format: csv, header: true, target: label}}
steps:
  tune:
    kind: tune
    algorithm: gbdt
    channels: {{train: inputs.train, validation: inputs.validation}}
    hyperparameters: {{{hps}}}
    ranges:
{ranges}
    objective: {{metric: "{metric}", type: {direction}}}
    strategy: {strategy}
    max_jobs: {trials}
    max_parallel_jobs: {parallel}
    seed: {seed}
""" + (f"    strategy_config: {{window: {window}}}\n" if window else "")


def run_ours(binary, data_dir, text, parallel):
    """One search in a fresh workspace: (objectives by trial index, leaderboard text, engine s/trial)."""
    with tempfile.TemporaryDirectory(dir=data_dir) as d:
        for f in ("train.csv", "validation.csv"):
            os.symlink(os.path.join(data_dir, f), os.path.join(d, f))
        with open(os.path.join(d, "p.yaml"), "w") as f:
            f.write(text)
        t0 = time.perf_counter()
        p = subprocess.run([binary, "run", "p.yaml", "--json", "-j", str(parallel)], cwd=d,
                           capture_output=True, text=True, timeout=7200)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"pipeline run failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        summary = json.loads(p.stdout.strip().splitlines()[-1])
        board_dir = summary["steps"]["tune"]["outputs"]["leaderboard"]["path"]
        with open(os.path.join(board_dir, "leaderboard.csv")) as f:
            board = f.read()
        rows = list(csv.DictReader(board.splitlines()))
        by_trial = {int(r["trial"]): float(r["objective"]) if r["objective"] else None for r in rows}
        logs = os.path.join(d, ".pipeline", "runs", summary["run_id"], "logs")
        training = 0.0
        for name in os.listdir(logs):
            if name.startswith("tune."):
                with open(os.path.join(logs, name)) as f:
                    m = re.findall(r"trained gbdt in ([0-9.]+)s", f.read())
                training += float(m[-1]) if m else 0.0
        trials = len(by_trial)
        return [by_trial[i] for i in range(trials)], board, (wall - training) / trials


def run_optuna(xt, yt, xv, yv, fixed, score, trials, seed, n_jobs=1):
    import optuna
    import xgboost as xgb
    from sklearn.metrics import log_loss, roc_auc_score
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dt = xgb.DMatrix(xt, label=yt)
    dv = xgb.DMatrix(xv, label=yv)

    def objective(trial):
        params = dict(fixed, tree_method="hist", nthread=2 // n_jobs or 1, seed=0)
        for k, (t, lo, hi, s) in SPACE.items():
            if t == "integer":
                params[k] = trial.suggest_int(k, lo, hi)
            else:
                params[k] = trial.suggest_float(k, lo, hi, log=(s == "logarithmic"))
        b = xgb.train(params, dt, num_boost_round=ROUNDS)
        pred = b.predict(dv)
        return roc_auc_score(yv, pred) if score == "auc" else log_loss(yv, pred, labels=list(range(pred.shape[1])))

    direction = "maximize" if score == "auc" else "minimize"
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, n_jobs=n_jobs)
    trials_sorted = sorted(study.trials, key=lambda t: t.number)
    return [t.value for t in trials_sorted], [tuple(sorted(t.params.items())) for t in trials_sorted]


def best_of(values, n, maximize):
    vals = [v for v in values[:n] if v is not None]
    if not vals:
        return None
    return max(vals) if maximize else min(vals)


def trials_to_reach(values, target, maximize):
    best = None
    for i, v in enumerate(values):
        if v is not None:
            best = v if best is None else (max(best, v) if maximize else min(best, v))
        if best is not None and (best >= target if maximize else best <= target):
            return i + 1
    return None


def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    return f"{statistics.median(xs):.4g} ({min(xs):.4g}-{max(xs):.4g})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--datasets", default="breast_cancer,digits,synthetic")
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true", help="1 seed, 8 trials, breast_cancer")
    args = ap.parse_args()
    if args.smoke:
        args.seeds, args.trials, args.datasets = 1, 8, "breast_cancer"
    binary = os.path.abspath(args.bin)
    out = args.out or tempfile.mkdtemp(prefix="tuning-bench-")
    n, half = args.trials, args.trials // 2
    print(f"| data set | trials to reach random's median best-of-{n}: bayesian (window 4) | bayesian (window 1) "
          f"| best-of-{half}: bayesian (window 4) | bayesian (window 1) | Optuna TPE | random best-of-{n} "
          f"| engine ms/trial | same leaderboard, 1 and 2 jobs | Optuna same trials, n_jobs 1 and 2 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        xt, xv, yt, yv = load(name)
        data_dir = os.path.join(out, name)
        os.makedirs(data_dir, exist_ok=True)
        write_csv(os.path.join(data_dir, "train.csv"), xt, yt)
        write_csv(os.path.join(data_dir, "validation.csv"), xv, yv)
        fixed, metric, direction, score = task(yt)
        maximize = direction == "maximize"
        bayes, bayes1, rand, tpe, overhead = [], [], [], [], []
        for seed in range(args.seeds):
            b, _, o = run_ours(binary, data_dir, pipeline_text(fixed, metric, direction, "bayesian", n, 1, seed), 1)
            b1, _, _ = run_ours(binary, data_dir,
                                pipeline_text(fixed, metric, direction, "bayesian", n, 1, seed, window=1), 1)
            r, _, _ = run_ours(binary, data_dir, pipeline_text(fixed, metric, direction, "random", n, 1, seed), 1)
            t, _ = run_optuna(xt, yt, xv, yv, fixed, score, n, seed)
            bayes.append(b)
            bayes1.append(b1)
            rand.append(r)
            tpe.append(t)
            overhead.append(o)
        target = statistics.median(best_of(r, n, maximize) for r in rand)
        def reach_text(runs):
            reach = [trials_to_reach(b, target, maximize) for b in runs]
            return spread([x if x is not None else n + 1 for x in reach])
        # Determinism: seed 0 with 1 and 2 parallel jobs.
        _, board1, _ = run_ours(binary, data_dir, pipeline_text(fixed, metric, direction, "bayesian", n, 1, 0), 1)
        _, board2, _ = run_ours(binary, data_dir, pipeline_text(fixed, metric, direction, "bayesian", n, 2, 0), 2)
        _, p1 = run_optuna(xt, yt, xv, yv, fixed, score, n, 0, n_jobs=1)
        _, p2 = run_optuna(xt, yt, xv, yv, fixed, score, n, 0, n_jobs=2)
        print(f"| {name} | {reach_text(bayes)} | {reach_text(bayes1)} | {spread([best_of(b, half, maximize) for b in bayes])} "
              f"| {spread([best_of(b, half, maximize) for b in bayes1])} "
              f"| {spread([best_of(t, half, maximize) for t in tpe])} | {spread([best_of(r, n, maximize) for r in rand])} "
              f"| {spread([o * 1000 for o in overhead])} | {'yes' if board1 == board2 else 'NO'} | {'yes' if p1 == p2 else 'no'} |",
              flush=True)
    print(f"\n{args.seeds} seeds, {n} trials each; medians over the seeds with (min-max). Data in {out}")


if __name__ == "__main__":
    main()
