//! `kind: split`: rows of the input(s) into train/validation/test files,
//! rows unchanged, with leakage checks and a manifest.

use std::collections::BTreeMap;

use builtins::split::{SourceInput, SplitSpec, Strategy};

use super::{Layout, StepConfig, StepError};
use crate::spec::model::{SplitStep, SplitStrategy, duration};

pub fn run(layout: &Layout, s: &SplitStep, cfg: &StepConfig) -> Result<(), StepError> {
    let inputs: Vec<SourceInput> = if s.sources.is_empty() {
        vec![SourceInput {
            path: layout.channel("input"),
            fractions: None,
        }]
    } else {
        s.sources
            .iter()
            .enumerate()
            .map(|(i, src)| SourceInput {
                path: layout.channel(&format!("source{i}")),
                fractions: Some(src.fractions.clone()),
            })
            .collect()
    };
    // Interpret the data as the steps after the split will, so a cell the
    // reader refuses (a stray text cell in a numeric column, `inf`...) is
    // reported here, at the input's own line, not at a line of a split file.
    let channel_names: Vec<String> = if s.sources.is_empty() {
        vec!["input".to_string()]
    } else {
        (0..s.sources.len()).map(|i| format!("source{i}")).collect()
    };
    for (name, input) in channel_names.iter().zip(&inputs) {
        if let Some(Some(def)) = cfg.channels.get(name)
            && def.format == crate::spec::model::DataFormat::Csv
        {
            builtins::data::read(&input.path, &super::data::read_options_of(def))?;
        }
    }
    let strategy = match &s.strategy {
        SplitStrategy::Shuffle { stratify } => Strategy::Shuffle {
            stratify: stratify.clone(),
        },
        SplitStrategy::Time {
            column,
            cutoffs,
            gap,
        } => Strategy::Time {
            column: column.clone(),
            cutoffs: cutoffs.clone(),
            gap: gap.map(duration::format),
        },
        SplitStrategy::Group { column } => Strategy::Group {
            column: column.clone(),
        },
    };
    let spec = SplitSpec {
        strategy,
        fractions: s.fractions.clone(),
        seed: s.seed,
    };
    let out_dirs: BTreeMap<String, std::path::PathBuf> = s
        .fractions
        .iter()
        .map(|(name, _)| (name.clone(), layout.output(name)))
        .collect();
    let manifest = builtins::split::run(&inputs, &spec, &out_dirs)?;
    let mut v = serde_json::to_value(&manifest)
        .map_err(|e| StepError::failed(format!("write the manifest: {e}")))?;
    // Output files move into the store: name them, not their work-directory paths.
    if let Some(outs) = v.get_mut("outputs").and_then(|o| o.as_object_mut()) {
        for o in outs.values_mut() {
            if let Some(f) = o.get_mut("file") {
                let name = std::path::Path::new(f.as_str().unwrap_or_default())
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                *f = serde_json::json!(name);
            }
        }
    }
    // Sources by the reference the pipeline gave, not where this run laid them
    // out, so the manifest is the same wherever and whenever the step runs.
    let refs = cfg.extra.get("channel_refs").and_then(|r| r.as_object());
    if let Some(sources) = v.get_mut("sources").and_then(|o| o.as_array_mut()) {
        for (i, src) in sources.iter_mut().enumerate() {
            let channel = if s.sources.is_empty() {
                "input".to_string()
            } else {
                format!("source{i}")
            };
            let text = refs
                .and_then(|r| r.get(&channel))
                .and_then(|t| t.as_str())
                .unwrap_or(&channel);
            src["path"] = serde_json::json!(text);
        }
    }
    for (name, o) in v["outputs"].as_object().into_iter().flatten() {
        println!("{name}: {} rows", o["rows"]);
    }
    let path = layout.output("manifest").join("manifest.json");
    crate::store::write_atomic(&path, &serde_json::to_vec_pretty(&v).expect("json"))
        .map_err(|e| StepError::failed(format!("write {}: {e}", path.display())))
}
