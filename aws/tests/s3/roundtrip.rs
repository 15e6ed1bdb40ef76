//! What goes up comes down byte for byte: single requests and multipart
//! uploads, listings across pages, checksums, conditional writes, and an
//! object replaced while it is read.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use pipeline_aws::s3::{Checksum, ErrorKind, ObjectInfo, PutOptions, PutOutcome, S3Uri};
use pipeline_aws::testing::{self, Kind, Server};

use crate::{PART, client, data, file, within};

fn crc64_base64(b: &[u8]) -> String {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b);
    aws_smithy_types::base64::encode(crc.to_be_bytes())
}

#[test]
fn files_of_every_size_round_trip_byte_exact() {
    for s in testing::all("files_of_every_size_round_trip_byte_exact") {
        within(Duration::from_secs(20), "the round trips", || {
            let s3 = client(&s);
            let bucket = s.bucket();
            let dir = tempfile::tempdir().unwrap();
            let p = PART as usize;
            // Empty, one byte, one request, exactly one part, just over (two
            // parts, the last of one byte), and three uneven parts.
            for (i, size) in [0, 1, 100_000, p, p + 1, 2 * p + 12_345]
                .into_iter()
                .enumerate()
            {
                let bytes = data(size, i as u64);
                let src = file(dir.path(), &format!("src-{i}"), &bytes);
                let uri = bucket.join(&format!("dir/obj-{i}.bin"));
                let out = s3.put_file(&uri, &src, &PutOptions::default()).unwrap();
                assert_eq!(out, PutOutcome::Written);
                let info = s3.head(&uri).unwrap().expect("the object is there");
                assert_eq!(info.size, size as u64, "{:?} size {size}", s.kind);
                let dest = dir.path().join(format!("back/{i}"));
                s3.download(&info, &dest).unwrap();
                assert!(
                    std::fs::read(&dest).unwrap() == bytes,
                    "{:?}: download of {size} bytes differs",
                    s.kind
                );
                let mut streamed = Vec::new();
                assert_eq!(s3.stream(&info, &mut streamed).unwrap(), size as u64);
                assert!(streamed == bytes, "{:?}: stream of {size} bytes", s.kind);
                if size <= p {
                    assert!(s3.get_bytes(&uri).unwrap().expect("there") == bytes);
                }
            }
            // Nothing is left beside the downloaded files.
            let names: Vec<_> = std::fs::read_dir(dir.path().join("back"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(names.len(), 6, "{names:?}");
            crate::assert_no_pending(&s, &s3, &bucket);
        });
    }
}

#[test]
fn many_files_go_up_and_come_down_in_parallel() {
    for s in testing::all("many_files_go_up_and_come_down_in_parallel") {
        let s3 = client(&s);
        let bucket = s.bucket();
        let dir = tempfile::tempdir().unwrap();
        let mut ups = Vec::new();
        let mut want = Vec::new();
        for i in 0..60 {
            let bytes = data(1000 + i * 997, i as u64 + 100);
            let rel = format!("nested/{}/f{i}.dat", i % 7);
            ups.push((
                file(dir.path(), &format!("up/{rel}"), &bytes),
                bucket.join(&rel),
            ));
            want.push((rel, bytes));
        }
        // And one multipart file among them.
        let big = data(PART as usize + 777, 9);
        ups.push((file(dir.path(), "up/big", &big), bucket.join("big")));
        want.push(("big".into(), big));
        let outs = s3.upload_many(&ups, &PutOptions::default()).unwrap();
        assert!(outs.iter().all(|o| *o == PutOutcome::Written));
        let listed = s3.list(&bucket).unwrap();
        assert_eq!(listed.len(), want.len());
        let downs: Vec<(ObjectInfo, PathBuf)> = listed
            .iter()
            .map(|o| (o.clone(), dir.path().join("down").join(&o.uri.key)))
            .collect();
        s3.download_many(&downs).unwrap();
        for (rel, bytes) in &want {
            let got = std::fs::read(dir.path().join("down").join(rel)).unwrap();
            assert!(&got == bytes, "{:?}: {rel} differs", s.kind);
        }
    }
}

#[test]
fn listings_are_in_key_order_across_pages() {
    for s in testing::all("listings_are_in_key_order_across_pages") {
        within(Duration::from_secs(20), "1,100 keys", || {
            let s3 = client(&s);
            let bucket = s.bucket();
            let dir = tempfile::tempdir().unwrap();
            let empty = file(dir.path(), "empty", b"");
            // 1,100 keys (S3 pages at 1,000), written in an order that is not
            // theirs, with names whose byte order is not their number's.
            let mut keys: Vec<String> = (0..1100)
                .map(|i: u32| format!("p/{}/{}", i % 3, i.wrapping_mul(2_654_435_761) % 100_000))
                .collect();
            keys.sort();
            keys.dedup();
            let ups: Vec<_> = keys
                .iter()
                .rev()
                .map(|k| (empty.clone(), bucket.join(k)))
                .collect();
            s3.upload_many(&ups, &PutOptions::default()).unwrap();
            // Something beside the prefix that the listing must leave out.
            s3.put_bytes(&bucket.join("q"), b"x".to_vec(), &PutOptions::default())
                .unwrap();
            let listed: Vec<String> = s3
                .list(&bucket.join("p/"))
                .unwrap()
                .into_iter()
                .map(|o| o.uri.key)
                .collect();
            assert_eq!(listed.len(), keys.len(), "{:?}", s.kind);
            assert!(listed == keys, "{:?}: not in key order", s.kind);
            // A prefix that is not a whole "directory" name.
            let one = s3.list(&bucket.join("p/1")).unwrap();
            assert!(one.iter().all(|o| o.uri.key.starts_with("p/1")));
            assert!(!one.is_empty());
        });
    }
}

#[test]
fn head_reports_the_whole_object_checksum() {
    for s in testing::all("head_reports_the_whole_object_checksum") {
        let s3 = client(&s);
        let bucket = s.bucket();
        let dir = tempfile::tempdir().unwrap();
        // One request: the CRC64NVME the client sends is kept by both servers.
        let small = data(300_000, 1);
        let u = bucket.join("small");
        s3.put_file(
            &u,
            &file(dir.path(), "small", &small),
            &PutOptions::default(),
        )
        .unwrap();
        let info = s3.head(&u).unwrap().unwrap();
        assert_eq!(
            info.checksum,
            Some(Checksum::Crc64Nvme(crc64_base64(&small))),
            "{:?}",
            s.kind
        );
        // Multipart with a full-object CRC64NVME: moto computes and keeps it;
        // s3s-fs keeps no checksum of a multipart upload at all.
        let big = data(2 * PART as usize + 5, 2);
        let u = bucket.join("big");
        s3.put_file(&u, &file(dir.path(), "big", &big), &PutOptions::default())
            .unwrap();
        let info = s3.head(&u).unwrap().unwrap();
        match s.kind {
            Kind::Moto => assert_eq!(info.checksum, Some(Checksum::Crc64Nvme(crc64_base64(&big)))),
            Kind::S3s => assert_eq!(info.checksum, None),
        }
        // Another writer's SHA-256 (here the SDK's own upload) is reported too.
        let bytes = data(1234, 3);
        let sha = sdk_put_sha256(&s, &bucket.join("sha"), &bytes);
        let info = s3.head(&bucket.join("sha")).unwrap().unwrap();
        assert_eq!(info.checksum, Some(Checksum::Sha256(sha)), "{:?}", s.kind);
        // A listing carries no checksums.
        assert!(
            s3.list(&bucket)
                .unwrap()
                .iter()
                .all(|o| o.checksum.is_none())
        );
    }
}

/// Writes an object with the plain SDK and a SHA-256 checksum; returns the
/// checksum the SDK sent.
fn sdk_put_sha256(s: &Server, u: &S3Uri, bytes: &[u8]) -> String {
    use aws_sdk_s3::types::ChecksumAlgorithm;
    use sha2::Digest;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let conf = aws_sdk_s3::config::Builder::new()
        .http_client(http)
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&s.url)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &s.access_key,
            &s.secret_key,
            None,
            None,
            "test",
        ))
        .build();
    let c = aws_sdk_s3::Client::from_conf(conf);
    let body = bytes.to_vec();
    rt.block_on(async {
        c.put_object()
            .bucket(&u.bucket)
            .key(&u.key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(body.into())
            .send()
            .await
            .expect("put with SHA-256")
    });
    aws_smithy_types::base64::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn if_none_match_leaves_the_first_write() {
    for s in testing::all("if_none_match_leaves_the_first_write") {
        let s3 = client(&s);
        let bucket = s.bucket();
        let dir = tempfile::tempdir().unwrap();
        let once = PutOptions {
            if_none_match: true,
            ..PutOptions::default()
        };
        // put_bytes, a one-request file and a multipart file, each twice.
        let u = bucket.join("bytes");
        assert_eq!(
            s3.put_bytes(&u, b"first".to_vec(), &once).unwrap(),
            PutOutcome::Written
        );
        assert_eq!(
            s3.put_bytes(&u, b"second".to_vec(), &once).unwrap(),
            PutOutcome::AlreadyThere
        );
        assert_eq!(s3.get_bytes(&u).unwrap().unwrap(), b"first");

        let u = bucket.join("small");
        let a = file(dir.path(), "a", &data(70_000, 1));
        let b = file(dir.path(), "b", &data(70_000, 2));
        assert_eq!(s3.put_file(&u, &a, &once).unwrap(), PutOutcome::Written);
        assert_eq!(
            s3.put_file(&u, &b, &once).unwrap(),
            PutOutcome::AlreadyThere
        );
        assert!(s3.get_bytes(&u).unwrap().unwrap() == std::fs::read(&a).unwrap());

        let u = bucket.join("big");
        let a = file(dir.path(), "big-a", &data(PART as usize + 10, 3));
        let b = file(dir.path(), "big-b", &data(PART as usize + 10, 4));
        assert_eq!(s3.put_file(&u, &a, &once).unwrap(), PutOutcome::Written);
        assert_eq!(
            s3.put_file(&u, &b, &once).unwrap(),
            PutOutcome::AlreadyThere
        );
        let info = s3.head(&u).unwrap().unwrap();
        let back = dir.path().join("back");
        s3.download(&info, &back).unwrap();
        assert!(std::fs::read(&back).unwrap() == std::fs::read(&a).unwrap());
        crate::assert_no_pending(&s, &s3, &bucket);

        // upload_many reports each outcome in the order given.
        let c = file(dir.path(), "c", b"c");
        let outs = s3
            .upload_many(
                &[(c.clone(), bucket.join("bytes")), (c, bucket.join("new"))],
                &once,
            )
            .unwrap();
        assert_eq!(outs, vec![PutOutcome::AlreadyThere, PutOutcome::Written]);
        // Without the condition, a write replaces.
        s3.put_bytes(
            &bucket.join("bytes"),
            b"third".to_vec(),
            &PutOptions::default(),
        )
        .unwrap();
        assert_eq!(
            s3.get_bytes(&bucket.join("bytes")).unwrap().unwrap(),
            b"third"
        );
    }
}

#[test]
fn an_object_replaced_while_it_is_read_is_an_error_not_a_mixture() {
    for s in testing::all("an_object_replaced_while_it_is_read_is_an_error_not_a_mixture") {
        let s3 = client(&s);
        let bucket = s.bucket();
        let dir = tempfile::tempdir().unwrap();
        let u = bucket.join("obj");
        let size = 2 * PART as usize + 99;
        s3.put_file(
            &u,
            &file(dir.path(), "v1", &data(size, 1)),
            &PutOptions::default(),
        )
        .unwrap();
        let old = s3.head(&u).unwrap().unwrap();
        // Replaced between the listing and the download.
        let v2 = file(dir.path(), "v2", &data(size, 2));
        s3.put_file(&u, &v2, &PutOptions::default()).unwrap();
        let dest = dir.path().join("out");
        let e = s3.download(&old, &dest).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Changed, "{:?}: {e}", s.kind);
        assert!(e.to_string().contains(&u.to_string()), "{e}");
        assert!(!dest.exists(), "a failed download leaves no file");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "nor a part file"
        );

        // Replaced in the middle of a stream: the first bytes are out when
        // the object changes, the rest must not come from the new one.
        let cur = s3.head(&u).unwrap().unwrap();
        let v3 = file(dir.path(), "v3", &data(size, 3));
        let writer = client(&s);
        let mut w = ReplaceOnFirstWrite {
            replace: Some(Box::new(move || {
                writer.put_file(&u, &v3, &PutOptions::default()).unwrap();
            })),
            got: 0,
        };
        let small = crate::client_at(&s, &s.url, |o| {
            o.part_size = 1 << 20;
            o.concurrency = 1;
        });
        let e = small.stream(&cur, &mut w).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Changed, "{:?}: {e}", s.kind);
        assert!(w.got > 0 && w.got < size as u64);
    }
}

struct ReplaceOnFirstWrite {
    replace: Option<Box<dyn FnOnce()>>,
    got: u64,
}

impl Write for ReplaceOnFirstWrite {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = self.replace.take() {
            f();
        }
        self.got += b.len() as u64;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
