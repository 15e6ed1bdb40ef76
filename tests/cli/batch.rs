//! The batch executor against moto's AWS Batch, which runs each job as a
//! container on the local Docker Engine (the runtime image is built here),
//! with the shared store on moto's S3 at the same endpoint. `.ci/run`
//! starts it (`.ci/batch-server.sh`, with `tests/moto_batch.py`); elsewhere
//! these tests say `SKIPPED`. Checks that need no server run everywhere.

use std::io::Write;

use pipeline_aws::testing::{Kind, Server};

use crate::harness::{Test, output_digest as digest};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

/// moto's Batch endpoint and the queue made there, or `None` (the test
/// skips, saying so; under CI it fails).
struct Moto {
    server: Server,
    queue: String,
}

fn moto(test: &str) -> Option<Moto> {
    let url = std::env::var("PIPELINE_TEST_BATCH_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let queue = std::env::var("PIPELINE_TEST_BATCH_QUEUE")
        .ok()
        .filter(|v| !v.is_empty());
    let (Some(url), Some(queue)) = (url, queue) else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{test} needs moto's Batch (PIPELINE_TEST_BATCH_URL, PIPELINE_TEST_BATCH_QUEUE); CI must start it (.ci/batch-server.sh)"
            );
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: needs moto's Batch on the docker bridge (PIPELINE_TEST_BATCH_URL, PIPELINE_TEST_BATCH_QUEUE; `. .ci/batch-server.sh` starts it)"
        );
        return None;
    };
    if !crate::docker::docker(test) {
        return None;
    }
    Some(Moto {
        server: Server {
            kind: Kind::Moto,
            url,
            access_key: "testing".into(),
            secret_key: "testing".into(),
        },
        queue,
    })
}

impl Moto {
    /// A test whose commands use this moto for S3 and Batch, with its
    /// queue, and jobs that reach it too (with the same test credentials).
    fn test(&self) -> Test {
        let jobs = format!(
            "AWS_ACCESS_KEY_ID={},AWS_SECRET_ACCESS_KEY={},AWS_EC2_METADATA_DISABLED=true",
            self.server.access_key, self.server.secret_key
        );
        self.server
            .env()
            .into_iter()
            .fold(Test::new(), |t, (k, v)| t.env(k, &v))
            .env("PIPELINE_BATCH_JOB_QUEUE", &self.queue)
            .env("PIPELINE_BATCH_JOB_ENVIRONMENT", &jobs)
    }

    /// A Batch client of this server for the tests' own requests, and a
    /// runtime to wait on its answers.
    fn batch(&self) -> (pipeline_aws::batch::Batch, tokio::runtime::Runtime) {
        let client = pipeline_aws::batch::Batch::connect(pipeline_aws::batch::BatchOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.server.url.clone()),
            static_credentials: Some((
                self.server.access_key.clone(),
                self.server.secret_key.clone(),
            )),
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (client, rt)
    }

    fn store(&self) -> String {
        format!("s3://{}/store", self.server.bucket().bucket)
    }
}

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/train.yaml"))
        .unwrap()
        .replace("path: data/penguins.csv", "path: penguins.csv")
}

#[test]
fn the_example_on_batch_gives_the_model_it_gives_locally() {
    let Some(m) = moto("the_example_on_batch_gives_the_model_it_gives_locally") else {
        return;
    };
    let local = Test::new()
        .file("p.yaml", &example())
        .file("penguins.csv", PENGUINS);
    let on_disk = local.exec(["run", "p.yaml", "--json"]).success().summary();

    let t = m
        .test()
        .file("p.yaml", &example())
        .file("penguins.csv", PENGUINS);
    let store = m.store();
    let out = t.exec([
        "run",
        "p.yaml",
        "--executor",
        "batch",
        "--store",
        &store,
        "--json",
    ]);
    let out = out.success();
    let summary = out.summary();
    for (step, output) in [
        ("split", "train"),
        ("split", "test"),
        ("train", "model"),
        ("evaluate", "metrics"),
    ] {
        assert_eq!(
            digest(&summary, step, output),
            digest(&on_disk, step, output),
            "{step}.{output}\n{out}"
        );
    }
    // Each step but `register` (which writes this machine's registry) was a job.
    let logs = t.exec(["logs", summary["run_id"].as_str().unwrap(), "train"]);
    assert!(
        logs.stdout.contains("[batch] submitted job pipeline-"),
        "{logs}"
    );
    assert!(logs.stdout.contains("is SUCCEEDED"), "{logs}");
    let reg = t.exec(["logs", summary["run_id"].as_str().unwrap(), "register"]);
    assert!(!reg.stdout.contains("[batch]"), "{reg}");

    // The same run again: every step is cached, nothing is submitted.
    let again = t
        .exec([
            "run",
            "p.yaml",
            "--executor",
            "batch",
            "--store",
            &store,
            "--json",
        ])
        .success()
        .summary();
    for step in ["split", "train", "evaluate"] {
        assert_eq!(again["steps"][step]["cached"], true, "{step}: {again}");
    }
}

#[test]
fn a_failing_built_in_step_on_batch_fails_with_its_own_reason() {
    let Some(m) = moto("a_failing_built_in_step_on_batch_fails_with_its_own_reason") else {
        return;
    };
    // A target column the data does not have: the built-in says so at run
    // time, in the job, and that reason comes back.
    let text = example().replace("target: species", "target: no_such_column");
    let t = m
        .test()
        .file("p.yaml", &text)
        .file("penguins.csv", PENGUINS);
    let out = t.exec([
        "run",
        "p.yaml",
        "--executor",
        "batch",
        "--store",
        &m.store(),
    ]);
    assert!(matches!(out.code, Some(1) | Some(2)), "{out}");
    assert!(out.stderr.contains("no_such_column"), "{out}");
}

#[test]
fn a_queue_that_does_not_exist_is_invalid_input_before_anything_runs() {
    let Some(m) = moto("a_queue_that_does_not_exist_is_invalid_input_before_anything_runs") else {
        return;
    };
    let t = m
        .test()
        .env("PIPELINE_BATCH_JOB_QUEUE", "no-such-queue")
        .file("p.yaml", &example())
        .file("penguins.csv", PENGUINS);
    let out = t
        .exec([
            "run",
            "p.yaml",
            "--executor",
            "batch",
            "--store",
            &m.store(),
        ])
        .code(2);
    assert!(
        out.stderr.contains("there is no job queue `no-such-queue`"),
        "{out}"
    );
    // Nothing ran: no step was recorded.
    let runs = t.exec(["runs", "list"]);
    assert!(!runs.stdout.contains("succeeded"), "{runs}");
}

#[test]
fn batch_without_a_queue_or_a_shared_store_is_invalid_input() {
    let t = Test::new()
        .env("PIPELINE_BATCH_JOB_QUEUE", "")
        .env("PIPELINE_STORE", "")
        .file("p.yaml", &example())
        .file("penguins.csv", PENGUINS);
    let out = t.exec(["run", "p.yaml", "--executor", "batch"]).code(2);
    if out.stderr.contains("without the `aws` feature") {
        return;
    }
    assert!(out.stderr.contains("needs a shared store"), "{out}");
    assert!(out.stderr.contains("--store s3://BUCKET/PREFIX"), "{out}");
    let out = t
        .exec([
            "run",
            "p.yaml",
            "--executor",
            "batch",
            "--store",
            "s3://my-bucket/p",
        ])
        .code(2);
    assert!(out.stderr.contains("no job queue is configured"), "{out}");
    assert!(out.stderr.contains("PIPELINE_BATCH_JOB_QUEUE"), "{out}");
}

#[test]
fn own_code_without_an_image_and_pipe_mode_on_batch_are_refused_where_they_are_written() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\nsteps:\n  prep:\n    kind: command\n    executor: batch\n    run: [\"true\"]\n",
    );
    let out = t.exec(["validate", "p.yaml"]).code(2);
    assert!(out.stderr.contains("p.yaml:6:10"), "{out}");
    assert!(
        out.stderr.contains(
            "runs your own command on the batch executor, which needs the image to run it in"
        ),
        "{out}"
    );
    let t = Test::new().file(
        "p.yaml",
        "name: p\ninputs:\n  d: {path: d.csv, target: y}\nsteps:\n  train:\n    kind: train\n    algorithm: gbdt\n    channels: {train: inputs.d}\n    executor: batch\n    input_mode: pipe\n",
    ).file("d.csv", "y,x\n1,2\n");
    let out = t.exec(["validate", "p.yaml"]).code(2);
    assert!(out.stderr.contains("p.yaml:10:17"), "{out}");
    assert!(
        out.stderr
            .contains("pipe-mode channels do not run on the batch executor yet"),
        "{out}"
    );
}

#[test]
fn batch_settings_are_checked_where_they_are_written() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ndefaults:\n  batch: {job_queue: q, job_role_arn: pipeline-job}\nsteps:\n  s:\n    kind: command\n    run: [\"true\"]\n",
    );
    let out = t.exec(["validate", "p.yaml"]).code(2);
    assert!(out.stderr.contains("p.yaml:3:39"), "{out}");
    assert!(out.stderr.contains("must be an IAM role's ARN"), "{out}");
    let t = Test::new().file(
        "p.yaml",
        "name: p\ndefaults:\n  batch: {job_environment: {SM_HPS: x}}\nsteps:\n  s:\n    kind: command\n    run: [\"true\"]\n",
    );
    let out = t.exec(["validate", "p.yaml"]).code(2);
    assert!(
        out.stderr.contains("set by the engine for every job"),
        "{out}"
    );
    let t = Test::new().file(
        "p.yaml",
        "name: p\ndefaults:\n  batch: {job_qeue: q}\nsteps:\n  s:\n    kind: command\n    run: [\"true\"]\n",
    );
    let out = t.exec(["validate", "p.yaml"]).code(2);
    assert!(out.stderr.contains("job_queue"), "{out}");
    let t = Test::new().file(
        "p.yaml",
        "name: p\ndefaults:\n  batch: {image_repository: \"1.dkr.ecr.eu-west-1.amazonaws.com/staged:v1\"}\nsteps:\n  s:\n    kind: command\n    run: [\"true\"]\n",
    );
    let out = t.exec(["validate", "p.yaml"]).code(2);
    assert!(out.stderr.contains("p.yaml:3:29"), "{out}");
    assert!(out.stderr.contains("a repository without a tag"), "{out}");
    let t = Test::new().file(
        "p.yaml",
        "name: p\ndefaults:\n  batch: {image_repository: \"registry.local:5000/staged\"}\nsteps:\n  s:\n    kind: command\n    run: [\"true\"]\n",
    );
    t.exec(["validate", "p.yaml"]).success();
}

/// Waits (at most 2 minutes) until the `train` step's first attempt has
/// recorded its job's ID; that record's path.
fn submitted_train_record(t: &Test) -> std::path::PathBuf {
    let runs = t.path().join(".pipeline/runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let found = std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("steps/train/1.batch.json"))
            .find(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains("\"job_id\": \"")));
        if let Some(p) = found {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the train step's job was never recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn resume_follows_the_job_a_killed_engine_left_instead_of_submitting_it_again() {
    let Some(m) = moto("resume_follows_the_job_a_killed_engine_left") else {
        return;
    };
    let t = m
        .test()
        .file("p.yaml", &example())
        .file("penguins.csv", PENGUINS);
    let store = m.store();
    let mut child = t
        .command(["run", "p.yaml", "--executor", "batch", "--store", &store])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the engine");
    // Killed once the train step's job is submitted (recorded with its ID).
    let record = submitted_train_record(&t);
    child.kill().expect("SIGKILL the engine");
    child.wait().unwrap();
    let run_id = record
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();

    let out = t
        .exec(["resume", &run_id, "--store", &store, "--json"])
        .success();
    let s = out.summary();
    assert_eq!(s["status"], "succeeded", "{out}");
    // The resumed attempt followed the first job; none was submitted again.
    let second_path = record.with_file_name("2.batch.json");
    let second: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&second_path).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: {e}\n{out}", second_path.display()));
    assert_eq!(second["job_id"], first["job_id"], "{second}");
    assert_eq!(second["attached_from"], first["prefix"], "{second}");
    let log = t.exec(["logs", &run_id, "train"]).success();
    assert_eq!(
        log.stdout.matches("[batch] submitted job").count(),
        1,
        "{log}"
    );

    // And the model is the one an uninterrupted run makes.
    let local = Test::new()
        .file("p.yaml", &example())
        .file("penguins.csv", PENGUINS);
    let on_disk = local.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(
        digest(&s, "train", "model"),
        digest(&on_disk, "train", "model")
    );
}

const MULTI: &str = r#"
name: multi
inputs:
  penguins: {path: penguins.csv, format: csv, header: true, target: species}
steps:
  split:
    kind: split
    input: inputs.penguins
    strategy: {type: shuffle, stratify: species}
    fractions: {train: 0.8, validation: 0.2}
    seed: 1
  gbdt:
    kind: train
    algorithm: gbdt
    channels: {train: split.train, validation: split.validation}
    hyperparameters: {objective: "multi:softprob", num_round: 30, max_depth: 4}
    resources: {nodes: NODES}
  kmeans:
    kind: train
    algorithm: kmeans
    channels: {train: split.train}
    hyperparameters: {k: 3}
    resources: {nodes: NODES}
"#;

#[test]
fn three_node_gbdt_and_kmeans_on_batch_equal_their_one_node_models() {
    let Some(m) = moto("three_node_gbdt_and_kmeans_on_batch_equal_their_one_node_models") else {
        return;
    };
    let features: String = PENGUINS
        .lines()
        .map(|l| l.split_once(',').map_or(l, |(_, rest)| rest).to_string() + "\n")
        .collect();
    let one = Test::new()
        .file("p.yaml", &MULTI.replace("NODES", "1"))
        .file("penguins.csv", PENGUINS)
        .file("features.csv", &features);
    let s1 = one.exec(["run", "p.yaml", "--json"]).success().summary();
    let three = m
        .test()
        .file("p.yaml", &MULTI.replace("NODES", "3"))
        .file("penguins.csv", PENGUINS)
        .file("features.csv", &features);
    let out = three.exec([
        "run",
        "p.yaml",
        "--executor",
        "batch",
        "--store",
        &m.store(),
        "--json",
    ]);
    let out = out.success();
    let s3 = out.summary();
    assert_eq!(
        digest(&s3, "gbdt", "model"),
        digest(&s1, "gbdt", "model"),
        "{out}"
    );
    // kmeans on several nodes adds its partial sums in node order, so its
    // centroids may differ from one node's in the last bits (as on docker);
    // the clusters they give every row are the same, to the printed digit.
    let predict = |t: &Test, s: &serde_json::Value, to: &str| {
        let model = s["steps"]["kmeans"]["outputs"]["model"]["path"]
            .as_str()
            .unwrap()
            .to_string();
        t.exec([
            "predict",
            "--model",
            &model,
            "--data",
            "features.csv",
            "--out",
            to,
        ])
        .success();
        t.read(to)
    };
    assert_eq!(predict(&three, &s3, "k3.csv"), predict(&one, &s1, "k1.csv"));
    let log = three.exec(["logs", s3["run_id"].as_str().unwrap(), "gbdt"]);
    assert!(log.stdout.contains("[batch] submitted job"), "{log}");
}

#[test]
fn a_reclaimed_job_s_next_attempt_continues_from_its_checkpoint_in_the_store() {
    let Some(m) = moto("a_reclaimed_job_s_next_attempt_continues_from_its_checkpoint_in_the_store")
    else {
        return;
    };
    let pipeline = "name: spot\ninputs:\n  penguins: {path: penguins.csv, format: csv, header: true, target: species}\nsteps:\n  train:\n    kind: train\n    algorithm: gbdt\n    channels: {train: inputs.penguins}\n    hyperparameters: {objective: \"multi:softprob\", num_round: 4000, max_depth: 3, eta: 0.001}\n    retry: {attempts: 2, backoff: 1s, on: [signal]}\n";
    let jobs = "AWS_ACCESS_KEY_ID=testing,AWS_SECRET_ACCESS_KEY=testing,AWS_EC2_METADATA_DISABLED=true,PIPELINE_BATCH_CHECKPOINT_INTERVAL=1s";
    let t = m
        .test()
        .env("PIPELINE_BATCH_JOB_ENVIRONMENT", jobs)
        .file("p.yaml", pipeline)
        .file("penguins.csv", PENGUINS);
    let store = m.store();
    let child = t
        .command([
            "run",
            "p.yaml",
            "--executor",
            "batch",
            "--store",
            &store,
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the engine");
    let runs = t.path().join(".pipeline/runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (run_id, job_id) = loop {
        let found = std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|e| {
                let r: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(e.path().join("steps/train/1.batch.json")).ok()?,
                )
                .ok()?;
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    r["job_id"].as_str()?.to_string(),
                ))
            });
        if let Some(f) = found {
            break f;
        }
        assert!(std::time::Instant::now() < deadline, "no job was recorded");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // Once the job has recorded a checkpoint in the store, its instance goes away.
    let s3 = m.server.client();
    let checkpoints =
        pipeline_aws::s3::S3Uri::parse(&format!("{store}/jobs/{run_id}/train/1/checkpoints/"))
            .unwrap();
    while s3.list(&checkpoints).unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the job recorded no checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (batch, rt) = m.batch();
    rt.block_on(batch.terminate(
        &job_id,
        "Host EC2 (instance i-0123456789abcdef0) terminated.",
    ))
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let log = t.exec(["logs", &run_id, "train"]).success();
    assert!(
        log.stdout
            .contains("Host EC2 (instance i-0123456789abcdef0) terminated."),
        "{log}"
    );
    assert!(
        log.stdout.contains("are kept for the next attempt"),
        "{log}"
    );
    assert!(
        log.stdout
            .contains("resuming from the checkpoint after round"),
        "{log}"
    );
    assert_eq!(
        log.stdout.matches("[batch] submitted job").count(),
        2,
        "{log}"
    );
}

/// Every job ID the attempts of a workspace's runs recorded.
fn recorded_jobs(t: &Test) -> Vec<String> {
    let mut ids = Vec::new();
    for run in std::fs::read_dir(t.path().join(".pipeline/runs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for step in std::fs::read_dir(run.path().join("steps"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(step.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if f.file_name().to_string_lossy().ends_with(".batch.json")
                    && let Ok(text) = std::fs::read_to_string(f.path())
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                    && let Some(id) = v["job_id"].as_str()
                {
                    ids.push(id.to_string());
                }
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn twenty_kills_at_spread_out_moments_then_resume_give_the_uninterrupted_outputs() {
    let Some(m) =
        moto("twenty_kills_at_spread_out_moments_then_resume_give_the_uninterrupted_outputs")
    else {
        return;
    };
    let run_args = |store: &str| -> Vec<String> {
        [
            "run",
            "p.yaml",
            "--executor",
            "batch",
            "--store",
            store,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // The uninterrupted run: its outputs, and how long it takes.
    let reference = m
        .test()
        .file("p.yaml", &example())
        .file("penguins.csv", PENGUINS);
    let started = std::time::Instant::now();
    let want = reference.exec(run_args(&m.store())).success().summary();
    let took = started.elapsed();
    let (batch, rt) = m.batch();
    for trial in 0..20u32 {
        // Spread over the run's length by the golden ratio: every part is hit.
        let at = took.mul_f64((f64::from(trial) * 0.618_034).fract());
        // A store of its own: nothing is a cache hit from another trial.
        let store = m.store();
        let t = m
            .test()
            .file("p.yaml", &example())
            .file("penguins.csv", PENGUINS);
        let mut child = t
            .command(run_args(&store))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the engine");
        std::thread::sleep(at);
        child.kill().expect("SIGKILL the engine");
        child.wait().unwrap();
        let runs: Vec<String> = std::fs::read_dir(t.path().join(".pipeline/runs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let got = match runs.first() {
            Some(run_id) => {
                let out = t
                    .exec(["resume", run_id, "--store", &store, "--json"])
                    .success();
                if out.stderr.contains("already succeeded") {
                    // The kill came after the end (this run went faster than
                    // the reference): its outputs are what a re-run serves
                    // from the cache.
                    t.exec(run_args(&store)).success().summary()
                } else {
                    out.summary()
                }
            }
            // Killed before the run was recorded: there is nothing to resume.
            None => t.exec(run_args(&store)).success().summary(),
        };
        for (step, output) in [
            ("split", "train"),
            ("train", "model"),
            ("evaluate", "metrics"),
        ] {
            assert_eq!(
                digest(&got, step, output),
                digest(&want, step, output),
                "trial {trial} (killed after {at:?}): {step}.{output}"
            );
        }
        // No step's work was submitted twice, and no job is left running.
        let run_id = got["run_id"].as_str().unwrap();
        for step in ["split", "train", "evaluate"] {
            let log = t.exec(["logs", run_id, step]).success();
            assert!(
                log.stdout.matches("[batch] submitted job").count() <= 1,
                "trial {trial} (killed after {at:?}): {step}\n{log}"
            );
        }
        let ids = recorded_jobs(&t);
        let states = rt.block_on(batch.describe(ids.clone())).unwrap();
        assert_eq!(states.len(), ids.len(), "trial {trial}: {ids:?}");
        for s in states {
            assert!(
                s.state.is_done(),
                "trial {trial}: job {} is {}",
                s.id,
                s.state.name()
            );
        }
    }
}

/// The docker tests' user image with an entrypoint of its own and a user
/// other than root, as SageMaker images often have: built once.
fn image_with_entrypoint() -> String {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let base = crate::docker::user_image();
            let tag = format!("{base}-entry");
            let ctx = tempfile::tempdir().unwrap();
            std::fs::write(
                ctx.path().join("entry"),
                "#!/bin/sh\necho \"entrypoint given: $*\" > /opt/ml/model/argv.txt 2>/dev/null\n\
                 ck=/opt/ml/checkpoints/ck.txt\n\
                 if [ -n \"$SM_HP_NAP\" ]; then\n\
                   if [ -f $ck ]; then cp $ck /opt/ml/model/resumed.txt;\n\
                   else echo \"round 7\" > $ck; echo napping; sleep \"$SM_HP_NAP\"; fi\n\
                 fi\n\
                 case \"$1\" in train) exec /usr/local/bin/train ;; *) exec \"$@\" ;; esac\n",
            )
            .unwrap();
            std::fs::write(
                ctx.path().join("Dockerfile"),
                format!(
                    "FROM {base}\n\
                     COPY entry /usr/local/bin/entry\n\
                     RUN [\"/bin/chmod\", \"755\", \"/usr/local/bin/entry\"]\n\
                     USER 4321:4321\n\
                     ENTRYPOINT [\"/usr/local/bin/entry\"]\n"
                ),
            )
            .unwrap();
            let out = std::process::Command::new("docker")
                .args(["build", "-q", "-t", &tag])
                .arg(ctx.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "docker build: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tag
        })
        .clone()
}

fn read_output(summary: &serde_json::Value, step: &str, output: &str, file: &str) -> String {
    let dir = summary["steps"][step]["outputs"][output]["path"]
        .as_str()
        .unwrap_or_default();
    std::fs::read_to_string(std::path::Path::new(dir).join(file))
        .unwrap_or_else(|e| panic!("{file} in {dir}: {e}\n{summary}"))
}

#[test]
fn a_users_own_image_runs_unchanged_on_batch() {
    let Some(m) = moto("a_users_own_image_runs_unchanged_on_batch") else {
        return;
    };
    let image = image_with_entrypoint();
    let p = format!(
        r#"
name: own-image
defaults: {{executor: batch}}
inputs:
  parts: {{path: parts, format: csv, header: false}}
steps:
  train:
    kind: train
    image: {image}
    channels: {{train: inputs.parts}}
    hyperparameters: {{mode: ok}}
  count:
    kind: command
    image: {image}
    run: ["sh", "-c", "cat $SM_CHANNEL_MODEL/lines.txt > $PIPELINE_OUTPUT_COUNTED/n.txt; id -u >> $PIPELINE_OUTPUT_COUNTED/n.txt"]
    inputs: {{model: train.model}}
    outputs: [counted]
"#
    );
    let t = m
        .test()
        .file("p.yaml", &p)
        .file("parts/part-0.csv", "1,2\n3,4\n")
        .file("parts/part-1.csv", "5,6\n7,8\n9,10\n");
    let s = t
        .exec(["run", "p.yaml", "--json", "--store", &m.store()])
        .success()
        .summary();
    // Started as `IMAGE train`: through the image's own entrypoint, as its
    // own user, with the channel laid out where the contract says.
    assert_eq!(
        read_output(&s, "train", "model", "argv.txt").trim(),
        "entrypoint given: train"
    );
    assert_eq!(read_output(&s, "train", "model", "uid.txt").trim(), "4321");
    assert_eq!(read_output(&s, "train", "model", "lines.txt").trim(), "5");
    assert_eq!(
        read_output(&s, "train", "model", "files.txt"),
        "part-0.csv\npart-1.csv\n"
    );
    let env = read_output(&s, "train", "model", "env.txt");
    assert!(
        env.contains("SM_CHANNEL_TRAIN=/opt/ml/input/data/train"),
        "{env}"
    );
    assert!(env.contains("SM_HP_MODE=ok"), "{env}");
    // A command step's words go after the entrypoint, as with `docker run`.
    assert_eq!(read_output(&s, "count", "counted", "n.txt"), "5\n4321\n");
    // The same again is all cached; a changed image is not.
    let again = t
        .exec(["run", "p.yaml", "--json", "--store", &m.store()])
        .success()
        .summary();
    assert_eq!(again["steps"]["train"]["cached"], true, "{again}");
    assert_eq!(again["steps"]["count"]["cached"], true, "{again}");
}

#[test]
fn a_users_image_that_fails_on_batch_fails_with_its_failure_file() {
    let Some(m) = moto("a_users_image_that_fails_on_batch_fails_with_its_failure_file") else {
        return;
    };
    let p = format!(
        r#"
name: own-image-fails
inputs:
  parts: {{path: parts, format: csv, header: false}}
steps:
  train:
    kind: train
    executor: batch
    image: {image}
    channels: {{train: inputs.parts}}
    hyperparameters: {{mode: fail}}
"#,
        image = image_with_entrypoint()
    );
    let t = m
        .test()
        .file("p.yaml", &p)
        .file("parts/part-0.csv", "1,2\n");
    let out = t
        .exec(["run", "p.yaml", "--json", "--store", &m.store()])
        .code(1);
    let s = out.summary();
    assert_eq!(s["steps"]["train"]["status"], "failed", "{s}");
    assert!(
        out.stdout.contains("bad data: column x is empty"),
        "the failure file is the reason: {out}"
    );
}

#[test]
fn resume_stops_a_job_of_the_killed_engine_it_does_not_follow() {
    let Some(m) = moto("resume_stops_a_job_of_the_killed_engine_it_does_not_follow") else {
        return;
    };
    let p = format!(
        r#"
name: left-going
inputs:
  parts: {{path: parts, format: csv, header: false}}
steps:
  train:
    kind: train
    executor: batch
    image: {image}
    channels: {{train: inputs.parts}}
    hyperparameters: {{mode: ok, nap: 15}}
"#,
        image = image_with_entrypoint()
    );
    let t = m
        .test()
        .file("p.yaml", &p)
        .file("parts/part-0.csv", "1,2\n");
    let store = m.store();
    let mut child = t
        .command(["run", "p.yaml", "--store", &store])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the engine");
    let record = submitted_train_record(&t);
    child.kill().expect("SIGKILL the engine");
    child.wait().unwrap();
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let first_id = first["job_id"].as_str().unwrap().to_string();
    let run_id = record
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // The job's image is now another tag: the first job's work is not the
    // resumed attempt's, so resume must not follow it, nor leave it going.
    let out = t
        .command(["resume", &run_id, "--store", &store, "--json"])
        .env("PIPELINE_BATCH_IMAGE_REPOSITORY", "pipeline-test/moved")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = t.exec(["logs", &run_id, "train"]).success();
    assert!(
        log.stdout.contains(&format!("stopped job {first_id}")),
        "{log}"
    );
    assert_eq!(
        log.stdout.matches("[batch] submitted job").count(),
        2,
        "{log}"
    );
    let (client, rt) = m.batch();
    let state = rt
        .block_on(client.describe(vec![first_id.clone()]))
        .unwrap();
    assert!(
        state.iter().all(|s| s.state.is_done()),
        "the first job still runs: {state:?}"
    );
}

/// The job containers moto's Batch runs for `job_id`, by their environment.
fn job_containers(job_id: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", "label=moto-batch-harness"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|c| {
            let env = std::process::Command::new("docker")
                .args([
                    "inspect",
                    "--format",
                    "{{range .Config.Env}}{{println .}}{{end}}",
                    c,
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            env.lines()
                .any(|l| l == format!("AWS_BATCH_JOB_ID={job_id}"))
        })
        .map(String::from)
        .collect()
}

#[test]
fn a_job_stopped_with_sigterm_records_its_checkpoints_and_the_next_attempt_starts_from_them() {
    let Some(m) = moto(
        "a_job_stopped_with_sigterm_records_its_checkpoints_and_the_next_attempt_starts_from_them",
    ) else {
        return;
    };
    let p = format!(
        r#"
name: sigterm
inputs:
  parts: {{path: parts, format: csv, header: false}}
steps:
  train:
    kind: train
    executor: batch
    image: {image}
    channels: {{train: inputs.parts}}
    hyperparameters: {{mode: ok, nap: 60}}
    retry: {{attempts: 2, backoff: 0s, on: [signal]}}
"#,
        image = image_with_entrypoint()
    );
    // Checkpoints are looked at once an hour: only the SIGTERM can record them.
    let jobs = format!(
        "AWS_ACCESS_KEY_ID={k},AWS_SECRET_ACCESS_KEY={s},AWS_EC2_METADATA_DISABLED=true,PIPELINE_BATCH_CHECKPOINT_INTERVAL=1h",
        k = m.server.access_key,
        s = m.server.secret_key
    );
    let t = m
        .test()
        .env("PIPELINE_BATCH_JOB_ENVIRONMENT", &jobs)
        .file("p.yaml", &p)
        .file("parts/part-0.csv", "1,2\n");
    let child = t
        .command(["run", "p.yaml", "--store", &m.store(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the engine");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(submitted_train_record(&t)).unwrap())
            .unwrap();
    let id = record["job_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let container = loop {
        if let Some(c) = job_containers(&id).into_iter().next() {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first attempt's job never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Give the step time to write its checkpoint, then stop the container
    // as AWS Batch does: SIGTERM, then SIGKILL after a grace period.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let stopped = std::process::Command::new("docker")
        .args(["stop", "-t", "30", &container])
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        read_output(&s, "train", "model", "resumed.txt"),
        "round 7\n"
    );
    let run_id = s["run_id"].as_str().unwrap();
    let log = t.exec(["logs", run_id, "train"]).success();
    assert!(log.stdout.contains("stopped by SIGTERM"), "{log}");
}

#[test]
fn a_users_own_image_on_three_nodes_gets_the_batch_variables_and_its_shard() {
    let Some(m) = moto("a_users_own_image_on_three_nodes_gets_the_batch_variables_and_its_shard")
    else {
        return;
    };
    let p = format!(
        r#"
name: own-image-nodes
inputs:
  parts: {{path: parts, format: csv, header: false}}
steps:
  train:
    kind: train
    executor: batch
    image: {image}
    channels: {{train: {{data: inputs.parts, distribution: sharded_by_key}}}}
    hyperparameters: {{mode: ok}}
    resources: {{nodes: 3}}
"#,
        image = image_with_entrypoint()
    );
    let t = m
        .test()
        .file("p.yaml", &p)
        .file("parts/part-0.csv", "1,2\n3,4\n")
        .file("parts/part-1.csv", "5,6\n7,8\n9,10\n")
        .file("parts/part-2.csv", "1,1\n2,2\n3,3\n4,4\n");
    let s = t
        .exec(["run", "p.yaml", "--json", "--store", &m.store()])
        .success()
        .summary();
    // The step's outputs are the main node's: its variables and its shard.
    let env = read_output(&s, "train", "model", "env.txt");
    for needle in [
        "AWS_BATCH_JOB_NODE_INDEX=0",
        "AWS_BATCH_JOB_NUM_NODES=3",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX=0",
        "SM_HOSTS=[\"algo-1\",\"algo-2\",\"algo-3\"]",
    ] {
        assert!(env.contains(needle), "{needle} missing from\n{env}");
    }
    assert_eq!(
        read_output(&s, "train", "model", "files.txt"),
        "part-0.csv\n"
    );
    assert_eq!(read_output(&s, "train", "model", "lines.txt").trim(), "2");
    assert_eq!(read_output(&s, "train", "model", "uid.txt").trim(), "4321");
}
