#!/usr/bin/env python3
"""S3 transfers: `pipeline cp` against `aws s3 cp` to and from one local S3 server.

Four transfers, each timed as the wall time of the whole command:

  upload 1 file      a 1 GB file of random bytes to s3://BUCKET/TOOL/big.bin
  download 1 file    that object back into an empty directory
  upload 1,000       a directory of 1,000 files of 100 KB (in 10 subdirectories)
  download 1,000     that prefix back into an empty directory

ours is `pipeline cp SRC DEST`; the peer `aws s3 cp` (with `--recursive` for
the directory), the AWS CLI from PyPI (`pip install awscli`) with its default
settings. Both run in the same invocation, in turn, N times each (after one
warm-up round that is not counted); the table shows medians and the spread
(min-max). After every download the bytes are digested and compared with the
source's: a mismatch stops the benchmark.

The server is s3s-fs (it checks signatures and checksums, as S3 does) or
moto (`--server moto`), started by .ci/s3-servers.sh unless
PIPELINE_TEST_S3S_URL (or PIPELINE_TEST_MOTO_URL) already says where one
is. `--scale S` multiplies the big file's size and the number of small files
(a smoke run: `--scale 0.01 --runs 1`). Usage:

  python3 bench/s3.py [--bin PATH] [--runs N] [--scale S] [--server s3s|moto]
                      [--work DIR]

The work directory (default: a temporary one under TMPDIR) holds the data
and the downloads; s3s-fs keeps its objects under TMPDIR too.
"""

import argparse
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_TIMEOUT_S = 900
MAX_RUNS = 20
BIG = 1 << 30
SMALL_FILES = 1000
SMALL_SIZE = 100 * 1000
BUCKET = "bench"


def start_servers():
    """Starts .ci/s3-servers.sh; returns (process, its exported variables)."""
    proc = subprocess.Popen(
        ["bash", os.path.join(REPO, ".ci", "s3-servers.sh")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    env, seen = {}, []
    deadline = time.time() + 900  # a first run installs s3s-fs (minutes)
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("export "):
            k, v = line[len("export "):].strip().split("=", 1)
            env[k] = v
        if line.startswith("serving until"):
            return proc, env
        if time.time() > deadline:
            break
    proc.terminate()
    sys.exit("the S3 servers did not start:\n" + "".join(seen[-30:]))


def stop_servers(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def server_env(kind, env):
    if kind == "s3s":
        url = env["PIPELINE_TEST_S3S_URL"]
        key, secret = env["PIPELINE_TEST_S3S_ACCESS_KEY"], env["PIPELINE_TEST_S3S_SECRET_KEY"]
    else:
        url, key, secret = env["PIPELINE_TEST_MOTO_URL"], "testing", "testing"
    out = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out.update({
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    return url, out


def run(cmd, env):
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=RUN_TIMEOUT_S)
    took = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr.decode()[-2000:]}")
    return took


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n


def make_data(work, scale):
    big = os.path.join(work, "big.bin")
    big_size = max(1 << 20, int(BIG * scale))
    if not os.path.exists(big) or os.path.getsize(big) != big_size:
        write_random(big, big_size)
    small = os.path.join(work, "small")
    count = max(10, int(SMALL_FILES * scale))
    shutil.rmtree(small, ignore_errors=True)
    for i in range(count):
        d = os.path.join(small, f"d{i % 10}")
        os.makedirs(d, exist_ok=True)
        write_random(os.path.join(d, f"f{i:04}.bin"), SMALL_SIZE)
    return big, big_size, small, count


def digest_file(path):
    h = hashlib.blake2b()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def digest_tree(root):
    """A digest of every file's relative path and bytes, in path order."""
    h = hashlib.blake2b()
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            files.append(os.path.relpath(os.path.join(d, n), root))
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + digest_file(os.path.join(root, rel)).encode() + b"\n")
    return h.hexdigest(), len(files)


def build_release():
    subprocess.run(["cargo", "build", "--release", "--bin", "pipeline"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "release", "pipeline")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="the pipeline binary (default: build target/release/pipeline)")
    ap.add_argument("--runs", type=int, default=3, help="measured runs of each (after one warm-up)")
    ap.add_argument("--scale", type=float, default=1.0, help="size factor for a smoke run")
    ap.add_argument("--server", choices=["s3s", "moto"], default="s3s")
    ap.add_argument("--work", help="directory for the data and downloads (default: a temporary one)")
    args = ap.parse_args()
    runs = max(1, min(args.runs, MAX_RUNS))
    aws = shutil.which("aws")
    if not aws:
        sys.exit("the AWS CLI is not installed: pip install awscli")
    binary = os.path.abspath(args.bin) if args.bin else build_release()

    var = "PIPELINE_TEST_S3S_URL" if args.server == "s3s" else "PIPELINE_TEST_MOTO_URL"
    servers = None
    env = dict(os.environ)
    if not env.get(var):
        servers, started = start_servers()
        env.update(started)
    work_tmp = None
    try:
        url, cmd_env = server_env(args.server, env)
        if args.work:
            work = os.path.abspath(args.work)
            os.makedirs(work, exist_ok=True)
        else:
            work_tmp = tempfile.mkdtemp(prefix="bench-s3-")
            work = work_tmp
        big, big_size, small, count = make_data(work, args.scale)
        want_big = digest_file(big)
        want_small, _ = digest_tree(small)
        aws_cmd = [aws, "--endpoint-url", url]
        subprocess.run(aws_cmd + ["s3", "mb", f"s3://{BUCKET}"], env=cmd_env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def fresh(name):
            d = os.path.join(work, name)
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            return d

        def check(what, got, want):
            if got != want:
                sys.exit(f"{what}: the downloaded bytes differ from the source's")

        tools = {
            "pipeline cp": {
                "up1": lambda: [binary, "cp", big, f"s3://{BUCKET}/ours/big.bin"],
                "down1": lambda d: [binary, "cp", f"s3://{BUCKET}/ours/big.bin", d],
                "upN": lambda: [binary, "cp", small, f"s3://{BUCKET}/ours/small/"],
                "downN": lambda d: [binary, "cp", f"s3://{BUCKET}/ours/small/", d],
            },
            "aws s3 cp": {
                "up1": lambda: aws_cmd + ["s3", "cp", "--quiet", big, f"s3://{BUCKET}/aws/big.bin"],
                "down1": lambda d: aws_cmd + ["s3", "cp", "--quiet", f"s3://{BUCKET}/aws/big.bin",
                                              os.path.join(d, "big.bin")],
                "upN": lambda: aws_cmd + ["s3", "cp", "--quiet", "--recursive", small,
                                          f"s3://{BUCKET}/aws/small/"],
                "downN": lambda d: aws_cmd + ["s3", "cp", "--quiet", "--recursive",
                                              f"s3://{BUCKET}/aws/small/", d],
            },
        }
        cases = [
            ("up1", f"upload 1 file of {big_size / 1e6:,.0f} MB"),
            ("down1", f"download 1 file of {big_size / 1e6:,.0f} MB"),
            ("upN", f"upload {count:,} files of {SMALL_SIZE // 1000} KB"),
            ("downN", f"download {count:,} files of {SMALL_SIZE // 1000} KB"),
        ]
        times = {(t, c): [] for t in tools for c, _ in cases}
        load = os.getloadavg()
        print(f"{args.server} at {url}; {runs} runs after a warm-up; {os.cpu_count()} cores; "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; work in {work}", flush=True)
        for r in range(runs + 1):
            for case, _ in cases:
                for tool, cmds in tools.items():
                    if case.startswith("up"):
                        took = run(cmds[case](), cmd_env)
                    else:
                        d = fresh("down")
                        took = run(cmds[case](d), cmd_env)
                        if case == "down1":
                            check(f"{tool} {case}", digest_file(os.path.join(d, "big.bin")), want_big)
                        else:
                            check(f"{tool} {case}", digest_tree(d)[0], want_small)
                    if r > 0:
                        times[(tool, case)].append(took)
            print(f"run {r}{' (warm-up)' if r == 0 else ''} done", flush=True)

        print()
        print(f"| {'transfer':<30} | {'ours median s':>13} | {'ours min-max':>13} | "
              f"{'aws median s':>12} | {'aws min-max':>13} | {'aws / ours':>10} | {'goal >= 2x':>10} |")
        print(f"|{'-' * 32}|{'-' * 15}|{'-' * 15}|{'-' * 14}|{'-' * 15}|{'-' * 12}|{'-' * 12}|")
        missed = 0
        for case, label in cases:
            o, a = times[("pipeline cp", case)], times[("aws s3 cp", case)]
            mo, ma = statistics.median(o), statistics.median(a)
            ratio = ma / mo
            met = ratio >= 2
            missed += not met
            print(f"| {label:<30} | {mo:>13.3f} | {min(o):>6.3f}-{max(o):<6.3f} | {ma:>12.3f} | "
                  f"{min(a):>6.3f}-{max(a):<6.3f} | {ratio:>9.2f}x | {'met' if met else 'MISSED':>10} |")
        print()
        load = os.getloadavg()
        print(f"every download's bytes matched the source's; load average at the end "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        if missed:
            print(f"goal missed on {missed} of {len(cases)} transfers")
    finally:
        stop_servers(servers)
        if work_tmp:
            shutil.rmtree(work_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
