#!/usr/bin/env python3
"""Batch executor overhead: what running a step through the engine's batch
executor costs over a plain boto3 loop that registers, submits and polls the
same kind of job, against moto's AWS Batch (jobs run as containers on the
local Docker Engine; `.ci/batch-server.sh` starts it, or this script does).

In one run, alternating:

  boto3      STEPS jobs one after another, each: RegisterJobDefinition (the
             runtime image, `pipeline --version`), SubmitJob, DescribeJobs
             every POLL seconds until it ends
  pipeline   `pipeline run steps.yaml --executor batch -j 1 --no-cache
             --store s3://...`: STEPS independent split steps of a 20-row
             CSV, each one job (staging its data through the store, the
             job's own staging, the result brought back and stored)

Both poll every POLL seconds (the engine's own interval, 1 s), so the ratio
is the engine's work per step beyond the submit-and-wait any client does.
Each figure is the batch's wall time divided by STEPS, repeated N times;
the table shows the median, the range and the ratio of medians. Usage:

  python3 bench/batch_overhead.py [--bin PATH] [--runs N] [--steps S]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_TIMEOUT_S = 600
MAX_RUNS = 20
MAX_STEPS = 50
POLL_S = 1.0
JOB_TIMEOUT_S = 120


def server():
    """The Batch server's URL and queue: from the environment, else started here."""
    url = os.environ.get("PIPELINE_TEST_BATCH_URL")
    queue = os.environ.get("PIPELINE_TEST_BATCH_QUEUE")
    if url and queue:
        return url, queue, None
    proc = subprocess.Popen(["bash", os.path.join(REPO, ".ci/batch-server.sh")],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    for line in proc.stdout:
        if line.startswith("export PIPELINE_TEST_BATCH_URL="):
            env = dict(kv.split("=", 1) for kv in line.split()[1:])
            return env["PIPELINE_TEST_BATCH_URL"], env["PIPELINE_TEST_BATCH_QUEUE"], proc
        if time.time() > deadline:
            break
    proc.terminate()
    sys.exit("the Batch test server did not start (.ci/batch-server.sh)")


def environment(url, queue):
    env = dict(os.environ)
    env.update({
        "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "PIPELINE_BATCH_JOB_QUEUE": queue,
        "PIPELINE_BATCH_JOB_ENVIRONMENT":
            "AWS_ACCESS_KEY_ID=testing,AWS_SECRET_ACCESS_KEY=testing,AWS_EC2_METADATA_DISABLED=true",
    })
    return env


def runtime_image(binary):
    out = subprocess.run([binary, "image", "build"], capture_output=True, text=True,
                         timeout=RUN_TIMEOUT_S)
    if out.returncode != 0:
        sys.exit(f"pipeline image build failed:\n{out.stderr}")
    for word in (out.stdout + out.stderr).split():
        if word.startswith("pipeline-runtime:"):
            return word.strip("`.,")
    sys.exit(f"no image tag in: {out.stdout}{out.stderr}")


def boto3_loop(url, queue, image, steps, tag):
    import boto3
    batch = boto3.client("batch", endpoint_url=url, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    start = time.perf_counter()
    for i in range(steps):
        arn = batch.register_job_definition(
            jobDefinitionName="bench-noop", type="container",
            containerProperties={"image": image,
                                 "command": ["/usr/local/bin/pipeline", "--version"],
                                 "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                          {"type": "MEMORY", "value": "2048"}]},
        )["jobDefinitionArn"]
        job = batch.submit_job(jobName=f"bench-{tag}-{i}", jobQueue=queue,
                               jobDefinition=arn)["jobId"]
        deadline = time.time() + JOB_TIMEOUT_S
        while True:
            time.sleep(POLL_S)
            status = batch.describe_jobs(jobs=[job])["jobs"][0]["status"]
            if status in ("SUCCEEDED", "FAILED"):
                break
            if time.time() > deadline:
                sys.exit(f"job {job} did not end in {JOB_TIMEOUT_S} s")
        if status != "SUCCEEDED":
            sys.exit(f"job {job} {status}")
    return (time.perf_counter() - start) / steps


def pipeline_yaml(steps):
    lines = ["name: batch-overhead", "inputs:",
             "  d: {path: d.csv, format: csv, header: true, target: y}", "steps:"]
    for i in range(steps):
        lines += [f"  s{i}:", "    kind: split", "    input: inputs.d",
                  "    strategy: {type: shuffle}", "    fractions: {train: 0.5, test: 0.5}",
                  f"    seed: {i}"]
    return "\n".join(lines) + "\n"


def pipeline_once(binary, env, steps, store):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "p.yaml"), "w") as f:
            f.write(pipeline_yaml(steps))
        with open(os.path.join(d, "d.csv"), "w") as f:
            f.write("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
        start = time.perf_counter()
        out = subprocess.run([binary, "run", "p.yaml", "--executor", "batch", "-j", "1",
                              "--no-cache", "--store", store],
                             cwd=d, env=env, capture_output=True, text=True,
                             timeout=RUN_TIMEOUT_S)
        took = time.perf_counter() - start
        if out.returncode != 0:
            sys.exit(f"pipeline run failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return took / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/pipeline"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    runs, steps = min(a.runs, MAX_RUNS), min(a.steps, MAX_STEPS)
    url, queue, proc = server()
    try:
        env = environment(url, queue)
        image = runtime_image(a.bin)
        import boto3
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        bucket = f"bench-{os.getpid()}"
        s3.create_bucket(Bucket=bucket)
        # One of each first, not counted: the runtime image, definitions registered.
        boto3_loop(url, queue, image, 1, "warm")
        pipeline_once(a.bin, env, 1, f"s3://{bucket}/warm")
        ours, theirs = [], []
        for r in range(runs):
            theirs.append(boto3_loop(url, queue, image, steps, f"r{r}"))
            ours.append(pipeline_once(a.bin, env, steps, f"s3://{bucket}/r{r}"))
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"{steps} steps, {runs} runs, polling every {POLL_S:.0f} s, seconds a step "
              "(median, min-max):")
        print("| client | s/step median | min-max |")
        print("|---|---|---|")
        print(f"| boto3 loop | {mt:.2f} | {min(theirs):.2f}-{max(theirs):.2f} |")
        print(f"| pipeline --executor batch | {mo:.2f} | {min(ours):.2f}-{max(ours):.2f} |")
        print(f"ratio pipeline / boto3: {mo / mt:.2f}x (goal: at most 1.2x)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
