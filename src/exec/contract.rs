//! The container contract: SageMaker's `/opt/ml` layout and `SM_*` variables.
//!
//! Laid out under the step's root directory, so the same step runs unchanged
//! as a local process (root = a work directory, `SAGEMAKER_BASE_DIR` says
//! where) or in a container (root mounted at `/opt/ml`).
//!
//! ```text
//! input/config/hyperparameters.json   all values strings
//! input/config/inputdataconfig.json   one entry a channel
//! input/config/resourceconfig.json    current_host, hosts
//! input/config/step.json              the resolved step (built-ins read it)
//! input/data/<channel>/               the channel's files
//! model/  output/data/<output>/  output/failure  checkpoints/
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::{Error, Result};
use crate::spec::model::{Distribution, InputDef, Step};

/// One channel: its name and where its data is on this machine.
#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    /// A file or a directory.
    pub source: PathBuf,
    /// How to read it, when the data came straight from a pipeline input.
    pub input: Option<InputDef>,
    /// How it is spread over the nodes of a multi-node step.
    pub distribution: Distribution,
    /// On one node of a `sharded_by_key` channel: the files this node sees.
    pub shard: Option<Vec<PathBuf>>,
}

impl Channel {
    /// A channel every node sees whole.
    pub fn whole(name: String, source: PathBuf, input: Option<InputDef>) -> Self {
        Channel {
            name,
            source,
            input,
            distribution: Distribution::FullyReplicated,
            shard: None,
        }
    }
}

/// The files of a channel's data, sorted by name: the unit `sharded_by_key`
/// hands out (SageMaker shards by S3 key).
pub fn channel_files(source: &Path) -> Result<Vec<PathBuf>> {
    if !source.is_dir() {
        return Ok(vec![source.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut stack = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let e = e.map_err(|e| Error::io("list", &dir, e))?;
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Node `index` of `nodes`'s contiguous share of `files` (the first nodes get
/// one more when they do not divide evenly), so the nodes' shares in node
/// order are the files in order.
pub fn shard_of<T: Clone>(files: &[T], index: usize, nodes: usize) -> Vec<T> {
    let start = index * files.len() / nodes;
    let end = (index + 1) * files.len() / nodes;
    files[start..end].to_vec()
}

/// The directory an output named `name` is written to, under the step root.
pub fn output_dir(root: &Path, name: &str) -> PathBuf {
    if name == "model" {
        root.join("model")
    } else {
        root.join("output/data").join(name)
    }
}

/// The layout of a step's root, built before the step starts.
pub struct Layout<'a> {
    pub root: &'a Path,
    pub step: &'a Step,
    pub channels: &'a [Channel],
    pub hyperparameters: &'a BTreeMap<String, String>,
    pub outputs: &'a [String],
    pub current_host: String,
    pub hosts: Vec<String>,
    pub num_cpus: usize,
    /// Extra facts for built-ins (resolved registry versions, run id...).
    pub extra: serde_json::Value,
}

impl Layout<'_> {
    /// Creates the directories and config files; returns the environment.
    pub fn prepare(&self, container_root: Option<&str>) -> Result<Vec<(String, String)>> {
        let root = self.root;
        let io = |p: &Path, e| Error::io("prepare", p, e);
        // Parents first, one `mkdir` each (every attempt has a fresh root,
        // so `create_dir_all`'s failed tries and checks would be wasted:
        // on a busy disk every metadata call costs).
        for d in [
            "input",
            "input/config",
            "input/data",
            "model",
            "output",
            "output/data",
            "checkpoints",
        ] {
            let p = root.join(d);
            make_dir(&p).map_err(|e| io(&p, e))?;
        }
        for o in self.outputs {
            let p = output_dir(root, o);
            make_dir(&p).map_err(|e| io(&p, e))?;
        }
        let write = |name: &str, v: &serde_json::Value| {
            let p = root.join("input/config").join(name);
            fs::write(&p, serde_json::to_vec_pretty(v).expect("json")).map_err(|e| io(&p, e))
        };
        write("hyperparameters.json", &json!(self.hyperparameters))?;
        let mut idc = serde_json::Map::new();
        for c in self.channels {
            let content_type = match c.input.as_ref().map(|i| i.format) {
                Some(crate::spec::model::DataFormat::Parquet) => "application/x-parquet",
                Some(crate::spec::model::DataFormat::Libsvm) => "text/libsvm",
                _ => "text/csv",
            };
            idc.insert(
                c.name.clone(),
                json!({"ContentType": content_type, "TrainingInputMode": "File", "S3DistributionType": c.distribution.sagemaker_name(), "RecordWrapperType": "None"}),
            );
        }
        write("inputdataconfig.json", &serde_json::Value::Object(idc))?;
        write(
            "resourceconfig.json",
            &json!({"current_host": self.current_host, "hosts": self.hosts, "network_interface_name": "eth0"}),
        )?;
        let channel_info: BTreeMap<&str, serde_json::Value> = self
            .channels
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    serde_json::to_value(&c.input).expect("json"),
                )
            })
            .collect();
        write(
            "step.json",
            &json!({"step": self.step, "channels": channel_info, "extra": self.extra}),
        )?;
        for c in self.channels {
            let dir = root.join("input/data").join(&c.name);
            match &c.shard {
                Some(files) => link_files(&dir, &c.source, files)?,
                None => link_channel(&dir, &c.source)?,
            }
        }

        // Paths as the step sees them: inside a container, under /opt/ml.
        let base = container_root
            .map(PathBuf::from)
            .unwrap_or_else(|| root.to_path_buf());
        let p = |rel: &str| base.join(rel).display().to_string();
        let mut env = vec![
            ("SM_MODEL_DIR".to_string(), p("model")),
            ("SM_OUTPUT_DATA_DIR".into(), p("output/data")),
            ("SM_OUTPUT_DIR".into(), p("output")),
            ("SM_INPUT_DIR".into(), p("input")),
            ("SM_INPUT_CONFIG_DIR".into(), p("input/config")),
            ("SM_CHECKPOINT_DIR".into(), p("checkpoints")),
            (
                "SM_CHANNELS".into(),
                json!(self.channels.iter().map(|c| &c.name).collect::<Vec<_>>()).to_string(),
            ),
            ("SM_HPS".into(), json!(self.hyperparameters).to_string()),
            ("SM_CURRENT_HOST".into(), self.current_host.clone()),
            ("SM_HOSTS".into(), json!(self.hosts).to_string()),
            ("SM_NUM_CPUS".into(), self.num_cpus.to_string()),
            ("SM_NUM_GPUS".into(), "0".into()),
        ];
        if container_root.is_none() {
            env.push(("SAGEMAKER_BASE_DIR".into(), root.display().to_string()));
        }
        for c in self.channels {
            env.push((
                format!("SM_CHANNEL_{}", env_name(&c.name)),
                p(&format!("input/data/{}", c.name)),
            ));
        }
        for (k, v) in self.hyperparameters {
            env.push((format!("SM_HP_{}", env_name(k)), v.clone()));
        }
        for o in self.outputs {
            let rel = output_dir(Path::new(""), o);
            env.push((
                format!("PIPELINE_OUTPUT_{}", env_name(o)),
                p(&rel.display().to_string()),
            ));
        }
        Ok(env)
    }
}

/// Creates `dir`, whose parent usually exists; an existing directory (or a
/// link to one, as `checkpoints/` may be) is fine.
fn make_dir(dir: &Path) -> std::io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(dir),
        Err(e) => Err(e),
    }
}

/// `SM_CHANNEL_` names: upper case, `-` as `_`.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Makes `dir` show the channel's data: a link to a directory, or a
/// directory holding a link to a single file. Nothing is copied.
fn link_channel(dir: &Path, source: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(dir).or_else(|_| fs::remove_file(dir));
    let abs =
        fs::canonicalize(source).map_err(|e| Error::io("read the channel data", source, e))?;
    if abs.is_dir() {
        std::os::unix::fs::symlink(&abs, dir).map_err(|e| Error::io("link the channel", dir, e))
    } else {
        fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let name = abs
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("data"));
        std::os::unix::fs::symlink(&abs, dir.join(name))
            .map_err(|e| Error::io("link the channel", dir, e))
    }
}

/// Makes `dir` show only `files` of the channel directory `source`, at their
/// paths relative to it.
fn link_files(dir: &Path, source: &Path, files: &[PathBuf]) -> Result<()> {
    let _ = fs::remove_dir_all(dir).or_else(|_| fs::remove_file(dir));
    fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    for f in files {
        let rel = f.strip_prefix(source).unwrap_or(f);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(f.file_name().unwrap_or(f.as_os_str()))
        } else {
            rel
        };
        let link = dir.join(rel);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let abs = fs::canonicalize(f).map_err(|e| Error::io("read the channel data", f, e))?;
        std::os::unix::fs::symlink(&abs, &link)
            .map_err(|e| Error::io("link the channel", &link, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_contiguous_cover_everything_and_differ_by_at_most_one() {
        for n_files in 0..12usize {
            let files: Vec<usize> = (0..n_files).collect();
            for nodes in 1..6usize {
                let shards: Vec<Vec<usize>> =
                    (0..nodes).map(|i| shard_of(&files, i, nodes)).collect();
                assert_eq!(shards.concat(), files);
                let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{sizes:?}");
            }
        }
    }
}
