//! Times one upload or download with given client settings, for tuning:
//!
//!   transfer up FILE s3://BUCKET/KEY [CONCURRENCY [PART_MIB]]
//!   transfer down s3://BUCKET/KEY FILE [CONCURRENCY [PART_MIB]]
//!
//! The endpoint and credentials come from the standard AWS chain
//! (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).

use std::path::Path;
use std::time::Instant;

use pipeline_aws::s3::{ClientOptions, PutOptions, S3, S3Uri};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "transfer up FILE URI | down URI FILE [CONCURRENCY [PART_MIB]]";
    let [dir, a, b, rest @ ..] = args.as_slice() else {
        panic!("{usage}");
    };
    let mut o = ClientOptions::default();
    if let Some(c) = rest.first() {
        o.concurrency = c.parse().expect(usage);
    }
    if let Some(p) = rest.get(1) {
        o.part_size = p.parse::<u64>().expect(usage) << 20;
    }
    let s3 = S3::connect(o.clone()).expect("client");
    let t = Instant::now();
    let bytes = match dir.as_str() {
        "up" => {
            let u = S3Uri::parse(b).expect("URI");
            s3.put_file(&u, Path::new(a), &PutOptions::default())
                .expect("upload");
            std::fs::metadata(a).expect("file").len()
        }
        "down" => {
            let u = S3Uri::parse(a).expect("URI");
            let info = s3.head(&u).expect("head").expect("no such object");
            s3.download(&info, Path::new(b)).expect("download");
            info.size
        }
        _ => panic!("{usage}"),
    };
    let s = t.elapsed().as_secs_f64();
    println!(
        "{dir} {:.0} MB in {s:.3} s ({:.0} MB/s), concurrency {}, parts of {} MiB",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / s,
        o.concurrency,
        o.part_size >> 20
    );
}
