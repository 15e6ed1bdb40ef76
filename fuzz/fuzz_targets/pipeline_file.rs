//! The front end on arbitrary text: YAML, templates, parameters, references,
//! `when:` expressions, validation and planning. Invalid input must come back
//! as a located error, never a panic, a hang or unbounded memory.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use pipeline::dag::plan::Plan;
use pipeline::dag::render::{GraphFormat, render};
use pipeline::spec::source::Source;
use pipeline::spec::{LoadOptions, load_source};

/// A base directory holding the data files the seed pipelines name, so that
/// inputs resolve and the fuzzer gets past them to the steps.
fn base_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("FUZZ_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("pipeline-fuzz-base-{}", std::process::id()));
        let table = "species,island,bill_length_mm,year\nAdelie,Torgersen,39.1,2007\nGentoo,Biscoe,46.1,2008\n";
        for name in ["data/penguins.csv", "data.csv", "train.csv", "test.csv", "events.csv"] {
            let path = base.join(name);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("make the base");
            std::fs::write(&path, table).expect("write a data file");
        }
        base
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An optional first line `#params k=v k=v` exercises `--param` overrides.
    let params = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#params "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let source = Arc::new(Source {
        name: "fuzz.yaml".into(),
        text: text.to_string(),
    });
    let opts = LoadOptions {
        params,
        ..LoadOptions::default()
    };
    let Ok(loaded) = load_source(source, base_dir(), &opts) else {
        return;
    };
    if let Ok(plan) = Plan::build(Arc::new(loaded.pipeline), &loaded.source) {
        let _ = render(&plan, GraphFormat::Mermaid);
        let _ = render(&plan, GraphFormat::Dot);
    }
});
