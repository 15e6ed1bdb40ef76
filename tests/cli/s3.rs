//! S3 inputs, the shared store and cache, and export, against a real S3
//! server (moto) that `.ci/run` starts; elsewhere they say `SKIPPED`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use pipeline_aws::s3::{PutOptions, S3, S3Uri};
use pipeline_aws::testing::{self, Server};

use crate::harness::{Test, output_digest as digest, step_cached};

/// A moto server (found as `pipeline_aws::testing` finds it), and a
/// client of it for the tests' own fixtures.
pub struct Moto {
    pub url: String,
    pub client: S3,
    server: Server,
}

/// The moto server of `PIPELINE_TEST_MOTO_URL`; says so when there is
/// none, and fails under CI.
pub fn moto(test: &str) -> Option<Moto> {
    let server = testing::moto(test)?;
    Some(Moto {
        url: server.url.clone(),
        client: server.client(),
        server,
    })
}

impl Moto {
    /// A new, empty bucket of this test's own.
    pub fn bucket(&self) -> String {
        self.server.bucket().bucket
    }

    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let uri = S3Uri::parse(&format!("s3://{bucket}/{key}")).unwrap();
        self.client
            .put_bytes(&uri, body.to_vec(), &PutOptions::default())
            .expect("put an object");
    }

    /// A test whose commands reach this server (and no other AWS set-up).
    pub fn test(&self) -> Test {
        self.server
            .env()
            .into_iter()
            .fold(Test::new(), |t, (k, v)| t.env(k, &v))
    }
}

fn example(input: &str) -> String {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/train.yaml"))
            .unwrap();
    text.replace("path: data/penguins.csv", &format!("path: \"{input}\""))
}

fn penguins() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/data/penguins.csv"
    ))
    .unwrap()
}

#[test]
fn the_example_runs_from_s3_like_from_disk_and_a_second_workspace_gets_it_from_the_shared_cache() {
    let Some(m) = moto("the_example_runs_from_s3_like_from_disk") else {
        return;
    };
    let b = m.bucket();
    m.put(&b, "data/penguins.csv", &penguins());
    let store = format!("s3://{b}/team-store");

    let local = Test::new()
        .file("p.yaml", &example("data.csv"))
        .file("data.csv", &String::from_utf8(penguins()).unwrap());
    let on_disk = local.exec(["run", "p.yaml", "--json"]).success().summary();

    let first = m
        .test()
        .file("p.yaml", &example(&format!("s3://{b}/data/penguins.csv")));
    let out = first
        .exec(["run", "p.yaml", "--store", &store, "--json"])
        .success();
    let s1 = out.summary();
    assert_eq!(s1["status"], "succeeded", "{out}");
    for (step, output) in [
        ("split", "train"),
        ("train", "model"),
        ("evaluate", "metrics"),
    ] {
        assert_eq!(
            digest(&s1, step, output),
            digest(&on_disk, step, output),
            "{step}"
        );
    }

    // Another workspace, told by the environment, on another directory.
    let second = m
        .test()
        .env("PIPELINE_STORE", &store)
        .file("p.yaml", &example(&format!("s3://{b}/data/penguins.csv")));
    let plan = second.exec(["plan", "p.yaml"]).success();
    assert!(
        plan.stdout
            .contains("train     train     cached  in the shared cache s3://"),
        "{plan}"
    );
    let s2 = second.exec(["run", "p.yaml", "--json"]).success().summary();
    for step in ["split", "train", "evaluate"] {
        assert!(step_cached(&s2, step), "{step} from the shared cache: {s2}");
    }
    // Registering is this workspace's own business: it runs here.
    assert!(!step_cached(&s2, "register"));
    assert_eq!(digest(&s2, "train", "model"), digest(&s1, "train", "model"));
    // The outputs are on this machine, where the summary says.
    let model = s2["steps"]["train"]["outputs"]["model"]["path"]
        .as_str()
        .unwrap();
    assert!(std::path::Path::new(model).join("model.tar.gz").is_file());

    // Exported to S3 and read back as an input, the model is the same bytes.
    let run_id = s1["run_id"].as_str().unwrap();
    first
        .exec([
            "export",
            run_id,
            "train.model",
            &format!("s3://{b}/exported/"),
        ])
        .success();
    first.write(
        "back.yaml",
        &format!(
            "name: back\ninputs:\n  m: {{path: \"s3://{b}/exported/\"}}\nsteps:\n  copy:\n    kind: command\n    run: cp -R $SM_CHANNEL_M/. $PIPELINE_OUTPUT_OUT/\n    inputs: {{m: inputs.m}}\n    outputs: [out]\n"
        ),
    );
    let back = first
        .exec(["run", "back.yaml", "--json"])
        .success()
        .summary();
    assert_eq!(digest(&back, "copy", "out"), digest(&s1, "train", "model"));
    // And exported to a directory.
    first
        .exec(["export", run_id, "train.model", "exported"])
        .success();
    assert!(first.path().join("exported/model.tar.gz").is_file());
    first
        .exec(["export", run_id, "train.model", "exported"])
        .code(2)
        .stderr_contains("is not an empty directory");
    first
        .exec(["export", run_id, "train.nothing", "x"])
        .code(2)
        .stderr_contains("has no output `nothing`");
}

const PARTS: &str = "name: parts
inputs:
  events: {path: \"s3://BUCKET/events/\", format: csv, target: y}
steps:
  look:
    kind: command
    run: cd $SM_CHANNEL_EVENTS && find . -type f | sort > $PIPELINE_OUTPUT_OUT/files.txt && cat $(find . -type f | sort) > $PIPELINE_OUTPUT_OUT/all.csv
    inputs: {events: inputs.events}
    outputs: [out]
";

#[test]
fn a_prefix_is_its_objects_in_key_order_and_any_change_to_them_is_seen() {
    let Some(m) = moto("a_prefix_is_its_objects_in_key_order") else {
        return;
    };
    let b = m.bucket();
    m.put(&b, "events/part-1.csv", b"x,y\n2,1\n");
    m.put(&b, "events/part-0.csv", b"x,y\n1,0\n");
    m.put(&b, "events/sub/part-2.csv", b"x,y\n3,1\n");
    let t = m.test().file("p.yaml", &PARTS.replace("BUCKET", &b));
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let out = s["steps"]["look"]["outputs"]["out"]["path"]
        .as_str()
        .unwrap();
    let out = std::path::Path::new(out);
    assert_eq!(
        std::fs::read_to_string(out.join("files.txt")).unwrap(),
        "./part-0.csv\n./part-1.csv\n./sub/part-2.csv\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("all.csv")).unwrap(),
        "x,y\n1,0\nx,y\n2,1\nx,y\n3,1\n"
    );
    // Unchanged: cached, without downloading again.
    let again = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(step_cached(&again, "look"));
    // An object replaced (same size), and one added: each is a new input.
    m.put(&b, "events/part-1.csv", b"x,y\n9,1\n");
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(
        !step_cached(&s, "look"),
        "a replaced object must not be served from the cache"
    );
    let out = std::path::PathBuf::from(
        s["steps"]["look"]["outputs"]["out"]["path"]
            .as_str()
            .unwrap(),
    );
    assert!(
        std::fs::read_to_string(out.join("all.csv"))
            .unwrap()
            .contains("9,1")
    );
    m.put(&b, "events/part-3.csv", b"x,y\n4,0\n");
    let plan = t.exec(["plan", "p.yaml"]).success();
    assert!(plan.stdout.contains("look  command  run"), "{plan}");
}

#[test]
fn s3_faults_are_clear_errors_naming_the_uri() {
    let Some(m) = moto("s3_faults_are_clear_errors_naming_the_uri") else {
        return;
    };
    let b = m.bucket();
    let pipeline = |uri: &str| {
        format!(
            "name: f\ninputs:\n  d: {{path: \"{uri}\"}}\nsteps:\n  a: {{kind: command, run: \"true\", inputs: {{d: inputs.d}}}}\n"
        )
    };
    let t = m
        .test()
        .file("p.yaml", &pipeline("s3://no-such-bucket-here/x.csv"));
    t.exec(["run", "p.yaml"])
        .code(2)
        .stderr_contains("s3://no-such-bucket-here/x.csv: the bucket does not exist");
    t.write("p.yaml", &pipeline(&format!("s3://{b}/missing.csv")));
    t.exec(["run", "p.yaml"])
        .code(2)
        .stderr_contains(&format!("s3://{b}/missing.csv: no such key"));
    // A store that is not an S3 URI, or not a usable one.
    t.exec(["run", "p.yaml", "--store", "/tmp/elsewhere"])
        .code(2)
        .stderr_contains("is not an `s3://` URI");
    t.exec(["plan", "p.yaml", "--store", "s3://UPPER/x"])
        .code(2)
        .stderr_contains("not a valid bucket name");
    // No credentials at all: said so, and the hint says how to give them.
    let bare = Test::new()
        .env("AWS_ENDPOINT_URL", &m.url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_REGION", "us-east-1")
        .file("p.yaml", &pipeline(&format!("s3://{b}/x.csv")));
    let mut cmd = bare.command(["run", "p.yaml"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("credentials are missing or not valid"),
        "{err}"
    );
}

/// A step writes a large output; the engine is killed while it uploads it.
const BIG: &str = "name: big
steps:
  make:
    kind: command
    run: head -c 150000000 /dev/zero | tr '\\0' 'x' > $PIPELINE_OUTPUT_OUT/big.bin && echo small > $PIPELINE_OUTPUT_OUT/small.txt
    outputs: [out]
";

#[test]
fn killed_while_uploading_and_resumed_the_outputs_are_stored_once_and_whole() {
    let Some(m) = moto("killed_while_uploading_and_resumed") else {
        return;
    };
    let b = m.bucket();
    let store = format!("s3://{b}/s");
    let t = m.test().env("PIPELINE_STORE", &store).file("p.yaml", BIG);
    let mut child = t
        .command(["run", "p.yaml", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The output is in the local store once the step is done: the upload follows.
    let local = t.workspace().join("store");
    let start = Instant::now();
    let stored = loop {
        let any = std::fs::read_dir(&local)
            .map(|d| {
                d.flatten()
                    .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .unwrap_or(false);
        if any || start.elapsed() > Duration::from_secs(60) {
            break any;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(stored, "the step never finished");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let runs = t.exec(["runs", "list", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    let run_id = v[0]["id"].as_str().unwrap().to_string();
    let s = t.exec(["resume", &run_id, "--json"]).success().summary();
    assert_eq!(s["status"], "succeeded");
    let d = digest(&s, "make", "out");
    // A new workspace finds it whole in the shared store and cache.
    let other = m.test().env("PIPELINE_STORE", &store).file("p.yaml", BIG);
    let s2 = other.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(step_cached(&s2, "make"), "{s2}");
    assert_eq!(digest(&s2, "make", "out"), d);
    let path = std::path::PathBuf::from(
        s2["steps"]["make"]["outputs"]["out"]["path"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        std::fs::metadata(path.join("big.bin")).unwrap().len(),
        150_000_000
    );
}

#[test]
fn sharded_by_key_shards_an_s3_prefix_as_it_shards_a_local_directory() {
    let Some(m) = moto("sharded_by_key_shards_an_s3_prefix") else {
        return;
    };
    let b = m.bucket();
    let mut parts = Vec::new();
    for p in 0..4 {
        let mut text = String::from("a,b\n");
        for r in 0..50 {
            let x = (p * 50 + r) as f64;
            text.push_str(&format!(
                "{},{}\n",
                (x * 0.37).sin() * 10.0,
                (x * 0.11).cos() * 5.0 + p as f64
            ));
        }
        m.put(&b, &format!("parts/part-{p}.csv"), text.as_bytes());
        parts.push(text);
    }
    let pipeline = |path: &str| {
        format!(
            "name: shard\ninputs:\n  parts: {{path: \"{path}\", format: csv, header: true}}\nsteps:\n  km:\n    kind: train\n    algorithm: kmeans\n    channels: {{train: {{data: inputs.parts, distribution: sharded_by_key}}}}\n    hyperparameters: {{k: 3, init_method: kmeans++}}\n    resources: {{nodes: 3}}\n"
        )
    };
    let mut local = Test::new().file("p.yaml", &pipeline("parts"));
    for (p, text) in parts.iter().enumerate() {
        local = local.file(&format!("parts/part-{p}.csv"), text);
    }
    let on_disk = local.exec(["run", "p.yaml", "--json"]).success().summary();
    let remote = m
        .test()
        .file("p.yaml", &pipeline(&format!("s3://{b}/parts/")));
    let from_s3 = remote.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(
        digest(&from_s3, "km", "model"),
        digest(&on_disk, "km", "model")
    );
}

#[test]
fn an_object_s3_vouches_for_is_not_downloaded_to_learn_its_identity() {
    let Some(m) = moto("an_object_s3_vouches_for_is_not_downloaded") else {
        return;
    };
    let b = m.bucket();
    let sha = PutOptions {
        sha256: true,
        ..PutOptions::default()
    };
    let uri = |k: &str| S3Uri::parse(&format!("s3://{b}/{k}")).unwrap();
    m.client
        .put_bytes(&uri("vouched.csv"), b"x,y\n1,0\n".to_vec(), &sha)
        .unwrap();
    m.put(&b, "plain.csv", b"x,y\n1,0\n");
    let pipeline = |k: &str| {
        format!(
            "name: v\ninputs:\n  d: {{path: \"s3://{b}/{k}\"}}\nsteps:\n  a: {{kind: command, run: \"true\", inputs: {{d: inputs.d}}}}\n"
        )
    };
    let staged = |t: &Test| walk_files(&t.workspace().join("s3-inputs"));
    // S3 holds a SHA-256 of the whole object: planning asks S3, downloads nothing.
    let t = m.test().file("p.yaml", &pipeline("vouched.csv"));
    t.exec(["plan", "p.yaml"]).success();
    assert_eq!(staged(&t), 0, "nothing downloaded to plan");
    t.exec(["run", "p.yaml"]).success();
    assert_eq!(staged(&t), 1, "the step's copy");
    // S3 vouches for nothing: planning digests it as it streams by; the
    // step's copy is downloaded once, and digested from there.
    let t = m.test().file("p.yaml", &pipeline("plain.csv"));
    t.exec(["plan", "p.yaml"]).success();
    assert_eq!(staged(&t), 0);
    t.exec(["run", "p.yaml"]).success();
    assert_eq!(staged(&t), 1);
    t.exec(["run", "p.yaml"]).success();
    assert_eq!(staged(&t), 1, "the same copy serves the next run");
}

/// The number of files under `dir` (none when it does not exist).
fn walk_files(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                0
            } else if p.is_dir() {
                walk_files(&p)
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn cp_round_trips_a_directory_byte_for_byte() {
    let Some(m) = moto("cp_round_trips_a_directory_byte_for_byte") else {
        return;
    };
    let b = m.bucket();
    let big: String = (0..700_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let t = m
        .test()
        .file("d/a.txt", "a\n")
        .file("d/sub/b.txt", "b\n")
        .file("d/sub/deeper/big.txt", &big);
    t.exec(["cp", "d", &format!("s3://{b}/copy/")])
        .success()
        .stderr_contains("copied 3 files");
    t.exec(["cp", &format!("s3://{b}/copy/"), "back"]).success();
    for f in ["a.txt", "sub/b.txt", "sub/deeper/big.txt"] {
        assert_eq!(
            t.read(&format!("back/{f}")),
            t.read(&format!("d/{f}")),
            "{f}"
        );
    }
    t.exec(["cp", &format!("s3://{b}/copy/sub/b.txt"), "one"])
        .success();
    assert_eq!(t.read("one/b.txt"), "b\n");
    t.exec(["cp", "nowhere", &format!("s3://{b}/x/")])
        .code(2)
        .stderr_contains("`nowhere` does not exist");
    t.exec(["cp", "d", "e"])
        .code(2)
        .stderr_contains("copies nothing to or from S3");
    t.exec(["cp", &format!("s3://{b}/nothing-here/"), "x"])
        .code(2)
        .stderr_contains("no objects under the prefix");
}

#[test]
fn the_workspace_config_sets_the_store_and_its_kms_key() {
    let Some(m) = moto("the_workspace_config_sets_the_store_and_its_kms_key") else {
        return;
    };
    let b = m.bucket();
    let key = "arn:aws:kms:us-east-1:123456789012:key/pipeline-test";
    let t = m
        .test()
        .file(
            ".pipeline/config.yaml",
            &format!("# the team's store\nstore: s3://{b}/cfg\nkms_key_id: {key}\n"),
        )
        .file(
            "p.yaml",
            "name: k\nsteps:\n  a:\n    kind: command\n    run: echo hi > $PIPELINE_OUTPUT_OUT/hi.txt\n    outputs: [out]\n",
        );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let d = digest(&s, "a", "out");
    let tree = S3Uri::parse(&format!("s3://{b}/cfg/trees/{d}.json")).unwrap();
    let head = m
        .client
        .head(&tree)
        .unwrap()
        .expect("the tree is in the configured store");
    assert_eq!(head.kms_key_id.as_deref(), Some(key));
    // A config line the engine does not know is an error with its line.
    t.write(
        ".pipeline/config.yaml",
        &format!("store: s3://{b}/cfg\nregion: x\n"),
    );
    t.exec(["plan", "p.yaml"])
        .code(2)
        .stderr_contains("config.yaml:2:1: unknown setting `region`");
}

#[test]
fn pipe_mode_trains_from_s3_without_the_data_landing_on_disk() {
    let Some(m) = moto("pipe_mode_trains_from_s3_without_the_data_landing_on_disk") else {
        return;
    };
    let b = m.bucket();
    // Two headerless parts, streamed one after the other.
    let mut parts = [String::new(), String::new()];
    for r in 0..400 {
        let x = r as f64;
        let (a, c) = ((x * 0.37).sin(), (x * 0.11).cos());
        parts[r % 2].push_str(&format!("{},{a:.4},{c:.4}\n", u8::from(a + 0.5 * c > 0.2)));
    }
    for (i, p) in parts.iter().enumerate() {
        m.put(&b, &format!("train/part-{i}.csv"), p.as_bytes());
    }
    let pipeline = |path: &str, mode: &str| {
        format!(
            "name: piped\ninputs:\n  d: {{path: \"{path}\", format: csv, header: false, label_size: 1}}\nsteps:\n  t:\n    kind: train\n    algorithm: gbdt\n    input_mode: {mode}\n    channels: {{train: inputs.d}}\n    hyperparameters: {{objective: \"binary:logistic\", num_round: 5, max_depth: 3}}\n"
        )
    };
    let local = Test::new()
        .file("p.yaml", &pipeline("parts", "file"))
        .file("parts/part-0.csv", &parts[0])
        .file("parts/part-1.csv", &parts[1]);
    let by_file = local.exec(["run", "p.yaml", "--json"]).success().summary();
    let t = m
        .test()
        .file("p.yaml", &pipeline(&format!("s3://{b}/train/"), "pipe"));
    let by_pipe = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(
        digest(&by_pipe, "t", "model"),
        digest(&by_file, "t", "model")
    );
    // The step read a pipe, and nothing of the data was written on this
    // machine (moto keeps no checksums: the identity was digested as it streamed).
    let inputdataconfig = walk(&t.workspace().join("runs"), "inputdataconfig.json");
    assert!(inputdataconfig.contains("\"Pipe\""), "{inputdataconfig}");
    assert_eq!(
        walk_files(&t.workspace().join("s3-inputs")),
        0,
        "nothing staged"
    );
    let attempt = t.workspace().join("runs");
    assert!(
        !walk(&attempt, "part-0.csv").contains(','),
        "no part file in the step's directory"
    );
}

/// The contents of the first file called `name` under `dir`.
fn walk(dir: &std::path::Path, name: &str) -> String {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            let found = walk(&p, name);
            if !found.is_empty() {
                return found;
            }
        } else if e.file_name() == name {
            return std::fs::read_to_string(p).unwrap_or_default();
        }
    }
    String::new()
}

#[test]
fn cp_moves_binary_and_multipart_files_byte_for_byte() {
    let Some(m) = moto("cp_moves_binary_and_multipart_files_byte_for_byte") else {
        return;
    };
    let b = m.bucket();
    let t = m.test();
    // Every byte value, and a file above the 8 MiB part size (a multipart
    // upload and a download in ranges).
    let mut s = 0x2545_f491_4f6c_dd1d_u64;
    let big: Vec<u8> = (0..9 * 1024 * 1024 + 7)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let all: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let files = [
        ("d/big.bin", &big[..]),
        ("d/x/all.bin", &all[..]),
        ("d/x/y/empty", &b""[..]),
    ];
    for (p, bytes) in files {
        let path = t.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    t.exec(["cp", "d", &format!("s3://{b}/up")])
        .success()
        .stderr_contains("copied 3 files");
    t.exec(["cp", &format!("s3://{b}/up/"), "back"]).success();
    for (p, bytes) in files {
        let got = std::fs::read(t.path().join("back").join(&p[2..])).unwrap();
        assert!(got == bytes, "{p} differs after the round trip");
    }
    // One file to a key, and that object into a directory.
    t.exec(["cp", "d/big.bin", &format!("s3://{b}/one.bin")])
        .success();
    t.exec(["cp", &format!("s3://{b}/one.bin"), "again"])
        .success();
    assert!(std::fs::read(t.path().join("again/one.bin")).unwrap() == big);
}

#[test]
fn cp_refuses_keys_that_would_leave_the_directory_and_says_what_is_wrong() {
    let Some(m) = moto("cp_refuses_keys_that_would_leave_the_directory") else {
        return;
    };
    let b = m.bucket();
    m.put(&b, "p/ok.txt", b"fine");
    m.put(&b, "p/../escape.txt", b"outside");
    let t = m.test();
    let out = t
        .exec(["cp", &format!("s3://{b}/p/"), "into/here"])
        .code(2)
        .stderr_contains("cannot be made a local path");
    assert!(
        out.stderr.contains(&format!("s3://{b}/p/../escape.txt")),
        "{out}"
    );
    assert!(!t.path().join("into/escape.txt").exists());
    assert!(!t.path().join("into/here").exists(), "nothing is copied");
    // A missing bucket, a missing key and a bad URI are the user's to fix
    // (exit 2), each named.
    t.exec(["cp", "s3://no-such-bucket-anywhere/k", "x"])
        .code(2)
        .stderr_contains("s3://no-such-bucket-anywhere/k")
        .stderr_contains("the bucket does not exist");
    t.write("f.txt", "f");
    t.exec(["cp", "f.txt", "s3://no-such-bucket-anywhere/k"])
        .code(2)
        .stderr_contains("s3://no-such-bucket-anywhere/k");
    t.exec(["cp", "f.txt", "s3://Bad_Bucket/k"])
        .code(2)
        .stderr_contains("not a valid bucket name");
    t.exec(["cp", &format!("s3://{b}/not-there"), "x"])
        .code(2)
        .stderr_contains("no objects under the prefix");
}

#[test]
fn cp_with_wrong_credentials_fails_as_the_users_error_without_showing_the_secret() {
    let Some(s) = testing::s3s("cp_with_wrong_credentials_fails_as_the_users_error") else {
        return;
    };
    let b = s.bucket().bucket;
    let secret = "wrong-s3cr3t-value-for-the-test";
    let t = s
        .env()
        .into_iter()
        .fold(Test::new(), |t, (k, v)| t.env(k, &v))
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .file("f.txt", "data");
    let out = t
        .exec(["cp", "f.txt", &format!("s3://{b}/f.txt")])
        .code(2)
        .stderr_contains("credentials");
    assert!(
        !out.stderr.contains(secret) && !out.stdout.contains(secret),
        "{out}"
    );
    assert!(!out.stderr.contains(&s.secret_key), "{out}");
    let out = t.exec(["cp", &format!("s3://{b}/f.txt"), "x"]).code(2);
    assert!(!out.stderr.contains(secret), "{out}");
}

/// The scheduler's "did the data change" for an `s3://` input: a new object
/// under the same key fires `on_change` and defeats `only_if_inputs_changed`;
/// the same object does neither.
#[test]
fn scheduled_runs_see_an_s3_input_change_by_its_identity() {
    let Some(m) = moto("scheduled_runs_see_an_s3_input_change_by_its_identity") else {
        return;
    };
    let b = m.bucket();
    m.put(&b, "events.txt", b"1\n");
    let t = m.test().file(
        "p.yaml",
        &format!(
            "name: s3sched\ndefaults: {{cache: false}}\ninputs:\n  events: {{path: \"s3://{b}/events.txt\"}}\nschedule:\n  cron: \"*/10 * * * *\"\n  only_if_inputs_changed: true\n  catch_up: none\n  on_change: [inputs.events]\n  poll_interval: 1m\nsteps:\n  a:\n    kind: command\n    inputs: {{e: inputs.events}}\n    run: \"true\"\n"
        ),
    );
    let session = |now: &str, until: &str| {
        t.exec([
            "schedule",
            "p.yaml",
            "--now",
            now,
            "--until",
            until,
            "--clock-rate",
            "300",
        ])
        .success()
    };
    let out = session("2026-05-01T00:05:00Z", "2026-05-01T00:25:00Z");
    let firings = |t: &Test| -> Vec<(String, String, String)> {
        let v = crate::schedule::status(t);
        let mut f: Vec<_> = v[0]["recent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["at"].as_str().unwrap()[11..16].to_string(),
                    f["trigger"].as_str().unwrap().to_string(),
                    f["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        f.reverse();
        f
    };
    let first = firings(&t);
    let pair = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        first,
        [
            pair("00:10", "cron", "succeeded"),
            pair("00:20", "cron", "skipped")
        ],
        "{out}"
    );
    m.put(&b, "events.txt", b"2\n");
    let out = session("2026-05-01T00:45:00Z", "2026-05-01T00:52:00Z");
    let second = firings(&t);
    // 00:30 and 00:40 were missed; the new object fired on_change at once,
    // and the 00:50 firing found the inputs as that run had them.
    assert_eq!(
        second[2..],
        [
            pair("00:30", "cron", "missed"),
            pair("00:40", "cron", "missed"),
            pair("00:45", "change", "succeeded"),
            pair("00:50", "cron", "skipped"),
        ],
        "{out}"
    );
    assert!(out.stderr.contains("only_if_inputs_changed"), "{out}");
}
