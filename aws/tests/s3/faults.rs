//! What goes wrong, and what the client makes of it: a bucket or key that is
//! not there, wrong or missing credentials, connections cut, stalled or
//! corrupted on the way (through the proxy in `proxy.rs`).

use std::process::Command;
use std::time::Duration;

use pipeline_aws::s3::{ClientOptions, ErrorKind, ObjectInfo, PutOptions, S3, S3Uri};
use pipeline_aws::testing::{self, Kind};

use crate::proxy::{Dir, Fault, Proxy, Times};
use crate::{PART, client, client_at, data, file, within};

/// No test of a fault may take longer than this.
const LIMIT: Duration = Duration::from_secs(20);

fn object(uri: &S3Uri, size: u64) -> ObjectInfo {
    ObjectInfo {
        uri: uri.clone(),
        size,
        etag: None,
        last_modified: None,
        version_id: None,
        checksum: None,
        kms_key_id: None,
    }
}

#[test]
fn a_bucket_that_does_not_exist_is_named_in_the_error() {
    for s in testing::all("a_bucket_that_does_not_exist_is_named_in_the_error") {
        let s3 = client(&s);
        // A name no test has used (see below why it matters).
        let name = format!("no-such-bucket-{}", s.bucket().bucket);
        let u = S3Uri::parse(&format!("s3://{name}/k/x.csv")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let src = file(dir.path(), "f", b"hello");
        let what = |op: &str| format!("{:?} {op}", s.kind);
        let mut errors = vec![
            ("head", s3.head(&u).map(|_| ()).expect_err(&what("head"))),
            (
                "list",
                s3.list(&u.as_prefix())
                    .map(|_| ())
                    .expect_err(&what("list")),
            ),
            (
                "get_bytes",
                s3.get_bytes(&u).map(|_| ()).expect_err(&what("get")),
            ),
            (
                "download",
                s3.download(&object(&u, 5), &dir.path().join("out"))
                    .expect_err(&what("download")),
            ),
        ];
        // s3s-fs writes an object into a bucket that does not exist, making
        // the bucket (a directory) as it goes.
        if s.kind == Kind::Moto {
            errors.push((
                "put_file",
                s3.put_file(&u, &src, &PutOptions::default())
                    .map(|_| ())
                    .expect_err(&what("put")),
            ));
        }
        for (what, e) in errors {
            assert_eq!(e.kind, ErrorKind::NoSuchBucket, "{:?} {what}: {e}", s.kind);
            let text = e.to_string();
            assert!(text.contains(&format!("s3://{name}/")), "{what}: {text}");
            assert!(e.is_user_error());
        }
    }
}

#[test]
fn a_key_that_is_not_there() {
    for s in testing::all("a_key_that_is_not_there") {
        let s3 = client(&s);
        let u = s.bucket().join("not/there");
        assert_eq!(s3.head(&u).unwrap(), None, "{:?}", s.kind);
        assert_eq!(s3.get_bytes(&u).unwrap(), None, "{:?}", s.kind);
        assert_eq!(
            s3.exists_many(std::slice::from_ref(&u)).unwrap(),
            vec![false]
        );
        let dir = tempfile::tempdir().unwrap();
        let e = s3
            .download(&object(&u, 10), &dir.path().join("out"))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{:?}: {e}", s.kind);
        assert!(e.to_string().contains("s3://"), "{e}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
        assert!(s3.list(&u.as_prefix()).unwrap().is_empty());
    }
}

#[test]
fn wrong_credentials_are_said_to_be_wrong_and_never_shown() {
    let Some(s) = testing::s3s("wrong_credentials_are_said_to_be_wrong_and_never_shown") else {
        return;
    };
    let bucket = s.bucket();
    let wrong_secret = "not-the-secret-5up3r-s3cr3t";
    for creds in [
        (s.access_key.clone(), wrong_secret.to_string()),
        ("no-such-access-key".to_string(), wrong_secret.to_string()),
    ] {
        let s3 = S3::connect(ClientOptions {
            static_credentials: Some(creds.clone()),
            ..s.options()
        })
        .unwrap();
        let u = bucket.join("k");
        let dir = tempfile::tempdir().unwrap();
        let src = file(dir.path(), "f", b"data");
        let errors = [
            s3.head(&u).map(|_| ()).unwrap_err(),
            s3.list(&bucket).map(|_| ()).unwrap_err(),
            s3.put_file(&u, &src, &PutOptions::default())
                .map(|_| ())
                .unwrap_err(),
        ];
        for e in errors {
            assert_eq!(e.kind, ErrorKind::Credentials, "{}: {e}", creds.0);
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains(wrong_secret),
                "the secret is shown: {shown}"
            );
            assert!(
                !shown.contains(&s.secret_key),
                "the secret is shown: {shown}"
            );
            assert!(e.is_user_error());
        }
    }
}

/// Without any credentials in sight (no variables, empty files, no instance
/// metadata service), a request fails at once with the Credentials kind.
/// Runs in a child process of its own, whose environment it can clear.
#[test]
fn missing_credentials_are_said_to_be_missing() {
    const CHILD: &str = "PIPELINE_TEST_NO_CREDENTIALS_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let s3 = S3::connect(ClientOptions {
            region: Some("us-east-1".into()),
            // Nothing listens there: the request must not get that far.
            endpoint_url: Some("http://127.0.0.1:9".into()),
            request_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        })
        .unwrap();
        let e = within(LIMIT, "a request without credentials", || {
            s3.head(&S3Uri::parse("s3://some-bucket/k").unwrap())
                .unwrap_err()
        });
        assert_eq!(e.kind, ErrorKind::Credentials, "{e}");
        assert!(e.to_string().contains("s3://some-bucket/k"), "{e}");
        assert!(e.is_user_error());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = file(dir.path(), "empty", b"");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "faults::missing_credentials_are_said_to_be_missing",
        "--nocapture",
    ]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    let out = cmd
        .env(CHILD, "1")
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran no test: {text}");
}

#[test]
fn an_upload_cut_off_a_few_times_is_retried_and_arrives_whole() {
    for s in testing::all("an_upload_cut_off_a_few_times_is_retried_and_arrives_whole") {
        let bucket = s.bucket();
        let direct = client(&s);
        let proxy = Proxy::start(&s.url);
        let s3 = client_at(&s, &proxy.url, |_| {});
        let dir = tempfile::tempdir().unwrap();
        for (name, size) in [("small", 1 << 20), ("big", 2 * PART as usize + 3)] {
            let bytes = data(size, 7);
            let src = file(dir.path(), name, &bytes);
            let before = proxy.count(Dir::Up, Fault::Cut);
            proxy.set(Dir::Up, Fault::Cut, 200_000, Times::First(2));
            let u = bucket.join(name);
            within(LIMIT, "an upload cut twice", || {
                s3.put_file(&u, &src, &PutOptions::default())
            })
            .unwrap_or_else(|e| panic!("{:?} {name}: {e}", s.kind));
            assert_eq!(
                proxy.count(Dir::Up, Fault::Cut),
                before + 2,
                "the cuts happened"
            );
            assert!(
                direct.get_bytes(&u).unwrap().unwrap() == bytes,
                "{:?} {name}",
                s.kind
            );
        }
        crate::assert_no_pending(&s, &direct, &bucket);
    }
}

#[test]
fn an_upload_cut_off_every_time_fails_as_network_and_leaves_nothing() {
    for s in testing::all("an_upload_cut_off_every_time_fails_as_network_and_leaves_nothing") {
        let bucket = s.bucket();
        let direct = client(&s);
        let proxy = Proxy::start(&s.url);
        let s3 = client_at(&s, &proxy.url, |_| {});
        let dir = tempfile::tempdir().unwrap();
        // Every connection is cut once it has carried 100 kB: requests
        // without a body (creating and aborting the upload) still pass.
        proxy.set(Dir::Up, Fault::Cut, 100_000, Times::Always);
        for (name, size) in [("small", 1 << 20), ("big", 2 * PART as usize + 3)] {
            let src = file(dir.path(), name, &data(size, 8));
            let u = bucket.join(name);
            let e = within(LIMIT, "an upload that cannot succeed", || {
                s3.put_file(&u, &src, &PutOptions::default()).unwrap_err()
            });
            assert_eq!(e.kind, ErrorKind::Network, "{:?} {name}: {e}", s.kind);
            assert!(e.to_string().contains(&u.to_string()), "{e}");
            assert!(!e.is_user_error());
            assert_eq!(
                direct.head(&u).unwrap(),
                None,
                "{:?}: {name} is visible",
                s.kind
            );
        }
        assert!(proxy.count(Dir::Up, Fault::Cut) > 2, "retried");
        crate::assert_no_pending(&s, &direct, &bucket);
    }
}

#[test]
fn a_download_cut_off_midway_resumes_where_it_stopped() {
    for s in testing::all("a_download_cut_off_midway_resumes_where_it_stopped") {
        let bucket = s.bucket();
        let direct = client(&s);
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(3 * PART as usize + 1, 9);
        let u = bucket.join("obj");
        direct
            .put_file(&u, &file(dir.path(), "src", &bytes), &PutOptions::default())
            .unwrap();
        let info = direct.head(&u).unwrap().unwrap();
        // Response offsets count from the start of a connection: each case
        // has a proxy and client of its own, with no connection used before.
        let fresh = || {
            let proxy = Proxy::start(&s.url);
            let s3 = client_at(&s, &proxy.url, |_| {});
            (proxy, s3)
        };
        // Bodies break off after 1 MB, on three connections.
        let (proxy, s3) = fresh();
        proxy.set(Dir::Down, Fault::Cut, 1 << 20, Times::First(3));
        let dest = dir.path().join("out");
        within(LIMIT, "a download cut three times", || {
            s3.download(&info, &dest)
        })
        .unwrap_or_else(|e| panic!("{:?}: {e}", s.kind));
        assert_eq!(proxy.count(Dir::Down, Fault::Cut), 3);
        assert!(std::fs::read(&dest).unwrap() == bytes, "{:?}", s.kind);
        // And a stream.
        let (proxy, s3) = fresh();
        proxy.set(Dir::Down, Fault::Cut, 1 << 20, Times::First(2));
        let mut got = Vec::new();
        within(LIMIT, "a stream cut twice", || s3.stream(&info, &mut got)).unwrap();
        assert_eq!(proxy.count(Dir::Down, Fault::Cut), 2);
        assert!(got == bytes);
        // Cut every time: an error, and no file.
        let (proxy, s3) = fresh();
        proxy.set(Dir::Down, Fault::Cut, 100_000, Times::Always);
        let dest2 = dir.path().join("out2");
        let e = within(LIMIT, "a download that cannot succeed", || {
            s3.download(&info, &dest2).unwrap_err()
        });
        assert_eq!(e.kind, ErrorKind::Network, "{:?}: {e}", s.kind);
        assert!(!dest2.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no part file left"
        );
    }
}

#[test]
fn a_stalled_connection_is_given_up_and_retried() {
    for s in testing::all("a_stalled_connection_is_given_up_and_retried") {
        let bucket = s.bucket();
        let direct = client(&s);
        let dir = tempfile::tempdir().unwrap();
        let proxy = Proxy::start(&s.url);
        let s3 = client_at(&s, &proxy.url, |o| {
            o.request_timeout = Duration::from_millis(1500)
        });
        let bytes = data(PART as usize + 5, 10);
        let src = file(dir.path(), "src", &bytes);
        let u = bucket.join("obj");
        // An upload that stops moving after 300 kB, once.
        proxy.set(Dir::Up, Fault::Stall, 300_000, Times::First(1));
        within(LIMIT, "an upload stalled once", || {
            s3.put_file(&u, &src, &PutOptions::default())
        })
        .unwrap_or_else(|e| panic!("{:?}: {e}", s.kind));
        assert_eq!(proxy.count(Dir::Up, Fault::Stall), 1);
        assert!(direct.get_bytes(&u).unwrap().unwrap() == bytes);
        // A download whose body stops after 300 kB, once; and a response
        // that never begins (the stall before the first byte).
        let info = direct.head(&u).unwrap().unwrap();
        for after in [300_000, 0] {
            let proxy = Proxy::start(&s.url);
            let s3 = client_at(&s, &proxy.url, |o| {
                o.request_timeout = Duration::from_millis(1500)
            });
            proxy.set(Dir::Down, Fault::Stall, after, Times::First(1));
            let dest = dir.path().join(format!("out-{after}"));
            within(LIMIT, "a download stalled once", || {
                s3.download(&info, &dest)
            })
            .unwrap_or_else(|e| panic!("{:?} after {after}: {e}", s.kind));
            assert!(std::fs::read(&dest).unwrap() == bytes);
            assert_eq!(proxy.count(Dir::Down, Fault::Stall), 1);
        }
    }
}

#[test]
fn a_corrupted_upload_is_refused_retried_and_never_stored() {
    let Some(s) = testing::s3s("a_corrupted_upload_is_refused_retried_and_never_stored") else {
        return;
    };
    assert_eq!(s.kind, Kind::S3s, "moto checks no checksums");
    let bucket = s.bucket();
    let direct = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&s.url);
    let s3 = client_at(&s, &proxy.url, |_| {});
    for (name, size) in [("small", 1 << 20), ("big", 2 * PART as usize + 3)] {
        let bytes = data(size, 11);
        let src = file(dir.path(), name, &bytes);
        let u = bucket.join(name);
        // One byte of the body, a little way in, is changed on its way, once:
        // the server refuses it and the client sends it again.
        let before = proxy.count(Dir::Up, Fault::Flip);
        proxy.set(Dir::Up, Fault::Flip, 150_000, Times::First(1));
        within(LIMIT, "an upload corrupted once", || {
            s3.put_file(&u, &src, &PutOptions::default())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(proxy.count(Dir::Up, Fault::Flip), before + 1);
        assert!(
            direct.get_bytes(&u).unwrap().unwrap() == bytes,
            "{name} stored corrupt"
        );

        // Changed every time: an error, and nothing stored.
        let u = bucket.join(&format!("{name}-never"));
        proxy.set(Dir::Up, Fault::Flip, 150_000, Times::Always);
        let e = within(LIMIT, "an upload corrupted every time", || {
            s3.put_file(&u, &src, &PutOptions::default()).unwrap_err()
        });
        proxy.clear();
        // s3s-fs checks each aws-chunked chunk's signature (which covers its
        // bytes) and fails a bad one with a 500 InternalError, or by closing
        // the connection before it has read the body: the SDK retries both,
        // and the client cannot tell them from other failures of the server
        // or the network. S3 itself says BadDigest, which the client retries
        // and reports as a checksum mismatch.
        assert!(
            e.kind == ErrorKind::Checksum
                || e.kind == ErrorKind::Network
                || (e.kind == ErrorKind::Other && e.detail.contains("InternalError")),
            "{name}: {e}"
        );
        assert_eq!(
            direct.head(&u).unwrap(),
            None,
            "{name}: a corrupt object is visible"
        );
    }
    crate::assert_no_pending(&s, &direct, &bucket);
}
