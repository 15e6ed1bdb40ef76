#!/usr/bin/env python3
"""`pipeline ui` speed: how long its pages take to make, and whether watching
a run slows the run.

  runs page      `/runs` (the newest 50 of 10,000 recorded runs), `/runs?q=...`
                 (filtered) and the last page (`page=200`)
  run page       `/runs/RUN` and `/api/runs/RUN` (what the page polls each
                 second) of a run of a 1,000-step pipeline
  watched run    `pipeline run` of a 200-step pipeline (each step sleeps
                 50 ms) alone, and with a
                 client doing what an open run page does (state every 1 s,
                 the log every 0.7 s)

Page times are the server's own (its `Server-Timing: app;dur=MS` header:
from the request's arrival to the response being ready), over N requests
after one warm-up; the table shows median, min and max. The 10,000 runs are
one real run of pipelines/train.yaml whose records are copied under new ids
and start times (the pages read records, not artifacts); the 1,000-step run
is a real run (10 layers of 100 `kind: command` steps).

  python3 bench/ui.py [--bin PATH] [--runs N] [--records N] [--steps N] [--smoke]

`--smoke` is the CI size: 500 records, 100 steps, 3 requests, 1 run each.
Everything happens in a temporary directory removed at the end; the server
listens on 127.0.0.1 only.
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_TIMEOUT_S = 600


def layered_yaml(steps, width, command=None):
    layers = max(1, steps // width)
    lines = ["name: ui-bench", "steps:"]
    for layer in range(layers):
        for i in range(width):
            lines.append(f"  l{layer}-s{i}:")
            lines.append("    kind: command")
            lines.append(f"    run: {command or f'[true, l{layer}-s{i}]'}")
            if layer:
                prev = [f"l{layer - 1}-s{i}", f"l{layer - 1}-s{(i + 1) % width}"]
                lines.append(f"    after: [{', '.join(sorted(set(prev)))}]")
    return "\n".join(lines) + "\n"


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def copy_runs(db_path, records):
    """Copies the one run in `db_path` until there are `records` runs."""
    con = sqlite3.connect(db_path)
    cur = con.cursor()
    run_cols = [r[1] for r in cur.execute("PRAGMA table_info(runs)")]
    step_cols = [r[1] for r in cur.execute("PRAGMA table_info(steps)")]
    (rid,) = cur.execute("SELECT id FROM runs").fetchone()
    run_row = dict(zip(run_cols, cur.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone()))
    steps = [dict(zip(step_cols, r)) for r in cur.execute("SELECT * FROM steps WHERE run_id = ?", (rid,))]
    base = time.time() - records * 60
    for n in range(1, records):
        t = time.gmtime(base + n * 60)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", t)
        new_id = time.strftime("%Y%m%d-%H%M%S", t) + f"-{n:06x}"
        row = dict(run_row, id=new_id, started_at=stamp, finished_at=stamp,
                   pipeline=run_row["pipeline"] if n % 10 else "other-pipeline")
        cur.execute(f"INSERT INTO runs({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        for s in steps:
            srow = dict(s, run_id=new_id)
            cur.execute(f"INSERT INTO steps({', '.join(srow)}) VALUES ({', '.join('?' * len(srow))})", list(srow.values()))
    con.commit()
    con.close()


class Server:
    def __init__(self, binary, cwd):
        self.p = subprocess.Popen([binary, "ui", "--port", "0"], cwd=cwd, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        at = line.find("http://")
        if at < 0:
            self.p.kill()
            sys.exit(f"pipeline ui did not start: {line!r}")
        self.url = line[at:].split()[0].rstrip("/")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            body = r.read()
            timing = r.headers.get("server-timing", "")
        dur = float(timing.split("dur=")[1]) if "dur=" in timing else float("nan")
        return dur, body

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def page_times(server, path, n):
    server.get(path)  # warm-up
    return [server.get(path)[0] for _ in range(n)]


def fmt(xs, unit="ms"):
    d = 1 if unit == "ms" else 3
    return f"{statistics.median(xs):8.{d}f} {unit}  ({min(xs):.{d}f}-{max(xs):.{d}f})"


def watcher(url, run_dir_ws, stop):
    """What an open run page does: the run's state each second, its log every 0.7 s."""
    rid = None
    offset = 0
    next_state = 0.0
    deadline = time.time() + RUN_TIMEOUT_S
    while not stop.is_set() and time.time() < deadline:
        now = time.time()
        try:
            if rid is None:
                db = os.path.join(run_dir_ws, ".pipeline", "runs.db")
                if os.path.exists(db):
                    con = sqlite3.connect(db)
                    r = con.execute("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
                    con.close()
                    rid = r[0] if r else None
            elif now >= next_state:
                urllib.request.urlopen(f"{url}/api/runs/{rid}", timeout=30).read()
                next_state = now + 1.0
            else:
                body = urllib.request.urlopen(f"{url}/api/runs/{rid}/log/l0-s0?from={offset}", timeout=30).read()
                offset = json.loads(body)["next"]
        except Exception:
            pass
        stop.wait(0.7)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/pipeline"))
    ap.add_argument("--runs", type=int, default=20, help="requests a page (and runs of the watched pipeline / 5)")
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=1_000)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.records, a.steps, a.runs = 500, 100, 3
    a.runs = max(1, min(a.runs, 200))
    binary = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="ui-bench-")
    try:
        # 10,000 runs.
        many = os.path.join(tmp, "many")
        shutil.copytree(os.path.join(REPO, "pipelines"), os.path.join(many, "pipelines"))
        run([binary, "run", "pipelines/train.yaml"], many)
        copy_runs(os.path.join(many, ".pipeline", "runs.db"), a.records)
        s = Server(binary, many)
        try:
            rows = [
                (f"/runs ({a.records} runs)", page_times(s, "/runs", a.runs)),
                ("/runs?q=other (filtered)", page_times(s, "/runs?q=other", a.runs)),
                (f"/runs?page={a.records // 50} (oldest)", page_times(s, f"/runs?page={a.records // 50}", a.runs)),
            ]
        finally:
            s.stop()
        # A run of a 1,000-step pipeline.
        big = os.path.join(tmp, "big")
        os.makedirs(big)
        with open(os.path.join(big, "dag.yaml"), "w") as f:
            f.write(layered_yaml(a.steps, 100 if a.steps >= 100 else a.steps))
        run([binary, "run", "dag.yaml", "-j", "2"], big)
        con = sqlite3.connect(os.path.join(big, ".pipeline", "runs.db"))
        (rid,) = con.execute("SELECT id FROM runs").fetchone()
        con.close()
        s = Server(binary, big)
        try:
            rows.append((f"/runs/RUN ({a.steps} steps)", page_times(s, f"/runs/{rid}", a.runs)))
            rows.append((f"/api/runs/RUN ({a.steps} steps)", page_times(s, f"/api/runs/{rid}", a.runs)))
        finally:
            s.stop()
        print(f"pipeline ui page times (server time, {a.runs} requests after a warm-up)")
        for name, xs in rows:
            print(f"  {name:<34} {fmt(xs)}")

        # A run watched, and not.
        watched_steps = 200 if not a.smoke else 50
        n = max(1, a.runs // 5)
        alone, watched = [], []
        for i in range(n):
            for mode in ("alone", "watched"):
                d = os.path.join(tmp, f"w-{mode}-{i}")
                os.makedirs(d)
                with open(os.path.join(d, "dag.yaml"), "w") as f:
                    # Each step sleeps 50 ms, so the run lasts several of the page's polls.
                    f.write(layered_yaml(watched_steps, 10, "[sleep, '0.05']"))
                server = stop = th = None
                if mode == "watched":
                    server = Server(binary, d)
                    stop = threading.Event()
                    th = threading.Thread(target=watcher, args=(server.url, d, stop), daemon=True)
                    th.start()
                t0 = time.perf_counter()
                run([binary, "run", "dag.yaml", "-j", "2"], d)
                (alone if mode == "alone" else watched).append(time.perf_counter() - t0)
                if server:
                    stop.set()
                    th.join(timeout=10)
                    server.stop()
        print(f"pipeline run of {watched_steps} steps, wall time ({n} runs each, by turns)")
        print(f"  {'alone':<34} {fmt(alone, 's')}")
        print(f"  {'watched by a run page':<34} {fmt(watched, 's')}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
