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
//! input/data/<channel>/               the channel's files (file mode)
//! input/data/<channel>_<epoch>        named pipes, one an epoch (pipe mode)
//! model/  output/data/<output>/  output/failure  checkpoints/
//! ```
//!
//! A pipe-mode channel's data never lands in the layout: the layout only
//! says where its bytes come from ([`StreamSource`]), and the backends feed
//! them through named pipes while the step runs ([`super::pipe`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::training_env::TrainingEnv;
use crate::error::{Error, Result};
use crate::spec::model::{DataFormat, Distribution, InputDef, InputMode, Step, StepKind};

/// Where a pipe-mode channel's bytes come from: parts in order, each written whole to a writer.
pub trait StreamSource: Send + Sync + std::fmt::Debug {
    /// The parts' names in key order (used for sharding and error messages).
    fn parts(&self) -> Vec<String>;
    /// Writes part `i` whole to `w`; returns its length.
    fn write_part(&self, i: usize, w: &mut dyn std::io::Write) -> std::io::Result<u64>;
}

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
    /// Where a pipe-mode channel's bytes come from. `None`: the local
    /// `source` (the file, or the directory's files from [`channel_files`]
    /// in order, or the node's `shard`). A stream given here is the whole
    /// channel: on several nodes, a `sharded_by_key` channel's node gets its
    /// contiguous share of the stream's parts ([`shard_of`]).
    pub stream: Option<Arc<dyn StreamSource>>,
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
            stream: None,
        }
    }
}

/// A pipe-mode channel's local data: files streamed one after another.
#[derive(Debug)]
pub struct LocalFiles {
    files: Vec<PathBuf>,
    names: Vec<String>,
}

impl LocalFiles {
    /// The files of `source` (or of `shard`, this node's share of them) as
    /// the parts of a stream, in name order. Hidden names (starting with `.`
    /// or `_`, such as `_SUCCESS`) are left out, as the data readers leave
    /// them out of a directory of part files.
    pub fn new(source: &Path, shard: Option<&[PathBuf]>) -> Result<Self> {
        let files = match shard {
            Some(f) => f.to_vec(),
            None => channel_files(source)?,
        };
        let mut out = LocalFiles {
            files: Vec::new(),
            names: Vec::new(),
        };
        for f in files {
            // A part's name is its path inside the channel's directory; a
            // channel that is one file is that file, whatever its name.
            let (rel, in_dir) = match f.strip_prefix(source) {
                Ok(r) if !r.as_os_str().is_empty() => (r, true),
                _ => (Path::new(f.file_name().unwrap_or(f.as_os_str())), false),
            };
            let hidden = in_dir
                && rel.components().any(|c| {
                    let c = c.as_os_str().to_string_lossy();
                    c.starts_with('.') || c.starts_with('_')
                });
            if !hidden {
                out.names.push(rel.display().to_string());
                out.files.push(f);
            }
        }
        Ok(out)
    }
}

impl StreamSource for LocalFiles {
    fn parts(&self) -> Vec<String> {
        self.names.clone()
    }
    fn write_part(&self, i: usize, w: &mut dyn std::io::Write) -> std::io::Result<u64> {
        use std::io::Read;
        let path = &self.files[i];
        let with_path =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let mut f = fs::File::open(path).map_err(with_path)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(with_path(e)),
            };
            // Write errors are the reader's (a closed pipe): passed on as they are.
            w.write_all(&buf[..n])?;
            total += n as u64;
        }
    }
}

/// A contiguous range of another stream's parts: one node's share of a
/// `sharded_by_key` channel.
#[derive(Debug)]
struct PartRange {
    inner: Arc<dyn StreamSource>,
    start: usize,
    names: Vec<String>,
}

impl StreamSource for PartRange {
    fn parts(&self) -> Vec<String> {
        self.names.clone()
    }
    fn write_part(&self, i: usize, w: &mut dyn std::io::Write) -> std::io::Result<u64> {
        self.inner.write_part(self.start + i, w)
    }
}

/// How a channel is read, when it is known: its input's settings with what
/// a train step declares on the channel on top (`{data: REF, target: COL}`).
/// Built-ins read a channel nothing is known of as CSV with a header.
pub fn channel_reading(step: &Step, name: &str, upstream: Option<&InputDef>) -> Option<InputDef> {
    let declared = match &step.kind {
        StepKind::Train(t) => t.channel_formats.get(name),
        _ => None,
    };
    let Some(d) = declared else {
        return upstream.cloned();
    };
    let mut def = upstream.cloned().unwrap_or_else(csv_with_header);
    if let Some(f) = d.format {
        def.format = f;
    }
    if let Some(h) = d.header {
        def.header = h;
    }
    if d.target.is_some() {
        def.target = d.target.clone();
        def.label_size = None;
    }
    if d.label_size.is_some() {
        def.label_size = d.label_size;
        def.target = None;
    }
    Some(def)
}

/// How data nothing describes is read: CSV with a header.
fn csv_with_header() -> InputDef {
    InputDef {
        path: String::new(),
        resolved: Default::default(),
        format: DataFormat::Csv,
        header: true,
        target: None,
        label_size: None,
        missing_values: None,
        categorical: Vec::new(),
        features: None,
        id_columns: Vec::new(),
        split_columns: Vec::new(),
        span: Default::default(),
    }
}

/// How channel `name` of `step` reaches it.
pub fn input_mode(step: &Step, name: &str) -> InputMode {
    match &step.kind {
        StepKind::Train(t) => t.input_mode_of(name),
        _ => InputMode::File,
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
    /// `TRAINING_JOB_NAME`: the run's and the step's names.
    pub job_name: String,
    /// The user's code (a directory, or one file), copied to `code/`.
    pub code: Option<PathBuf>,
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
            let content_type = channel_reading(self.step, &c.name, c.input.as_ref())
                .map_or("text/csv", |d| d.format.content_type());
            let mode = input_mode(self.step, &c.name);
            idc.insert(
                c.name.clone(),
                json!({"ContentType": content_type, "TrainingInputMode": mode.sagemaker_name(), "S3DistributionType": c.distribution.sagemaker_name(), "RecordWrapperType": "None"}),
            );
        }
        write(
            "inputdataconfig.json",
            &serde_json::Value::Object(idc.clone()),
        )?;
        let network_interface = match self.step.executor {
            crate::spec::model::Executor::Local => "lo",
            _ => "eth0",
        };
        let resource_config =
            TrainingEnv::resource_config(&self.current_host, &self.hosts, network_interface);
        write("resourceconfig.json", &resource_config)?;
        // Paths as the step sees them: inside a container, under /opt/ml.
        let base = container_root
            .map(PathBuf::from)
            .unwrap_or_else(|| root.to_path_buf());
        let p = |rel: &str| base.join(rel).display().to_string();
        // SageMaker's XGBoost image reads it before it checkpoints.
        write(
            "checkpointconfig.json",
            &json!({"LocalPath": p("checkpoints")}),
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
        let mut pipes = Vec::new();
        for c in self.channels {
            if input_mode(self.step, &c.name) == InputMode::Pipe {
                pipes.push(self.pipe_channel(c)?);
                continue;
            }
            let dir = root.join("input/data").join(&c.name);
            match &c.shard {
                Some(files) => link_files(&dir, &c.source, files)?,
                None => link_channel(&dir, &c.source)?,
            }
        }
        // The backend that runs this node feeds them (`pipe::Feeder::for_node`).
        super::pipe::register(root, pipes);

        let entry_point = self.step.entry_point();
        let training = TrainingEnv {
            base: &base,
            hosts: &self.hosts,
            current_host: &self.current_host,
            hyperparameters: self.hyperparameters,
            input_data_config: &idc,
            resource_config: &resource_config,
            network_interface,
            num_cpus: self.num_cpus,
            num_gpus: 0,
            entry_point,
            job_name: &self.job_name,
        };
        let mut env = training.vars();
        env.push(("SM_CHECKPOINT_DIR".into(), p("checkpoints")));
        // Where the step's code may write its metrics as JSON lines (see
        // `metric_definitions` without a regex).
        env.push((
            "PIPELINE_METRICS_FILE".into(),
            p(crate::schedule::train_metrics::METRICS_FILE),
        ));
        if container_root.is_none() {
            env.push(("SAGEMAKER_BASE_DIR".into(), root.display().to_string()));
        }
        if let Some(e) = entry_point {
            env.push(("SAGEMAKER_PROGRAM".into(), e.to_string()));
        }
        if let Some(src) = &self.code {
            copy_code(src, &root.join("code"))?;
            env.push(("SAGEMAKER_SUBMIT_DIRECTORY".into(), p("code")));
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

impl Layout<'_> {
    /// What feeds pipe-mode channel `c` on this node, checked: a stream is
    /// the concatenation of its parts, so data whose parts cannot be
    /// concatenated (CSV with a header line, Parquet) must be one part.
    fn pipe_channel(&self, c: &Channel) -> Result<super::pipe::PipeChannel> {
        let source: Arc<dyn StreamSource> = match &c.stream {
            None => Arc::new(LocalFiles::new(&c.source, c.shard.as_deref())?),
            Some(s) if c.distribution == Distribution::ShardedByKey && self.hosts.len() > 1 => {
                let names = s.parts();
                let nodes = self.hosts.len();
                if names.len() < nodes {
                    return Err(Error::invalid(crate::spec::source::Diagnostic::new(format!(
                        "channel `{}` is `sharded_by_key` over {nodes} nodes but has {} part{}: every node needs at least one",
                        c.name,
                        names.len(),
                        if names.len() == 1 { "" } else { "s" },
                    )).help("give the channel at least as many parts as nodes, or use `distribution: fully_replicated`")));
                }
                let index = self
                    .hosts
                    .iter()
                    .position(|h| *h == self.current_host)
                    .unwrap_or(0);
                let start = index * names.len() / nodes;
                Arc::new(PartRange {
                    inner: s.clone(),
                    start,
                    names: shard_of(&names, index, nodes),
                })
            }
            Some(s) => s.clone(),
        };
        let reading = channel_reading(self.step, &c.name, c.input.as_ref()).or_else(|| {
            // A built-in reads what nothing describes as CSV with a header.
            let builtin = matches!(&self.step.kind, StepKind::Train(t) if t.algorithm.is_some());
            builtin.then(csv_with_header)
        });
        let parts = source.parts();
        if let Some(def) = &reading
            && parts.len() > 1
        {
            let why = match def.format {
                DataFormat::Csv if def.header => Some(
                    "its data is CSV with a header line, and in one stream every part's header would be a row in the middle of the data",
                ),
                DataFormat::Parquet => Some(
                    "its data is Parquet, and Parquet files cannot be read one after another as one stream",
                ),
                _ => None,
            };
            if let Some(why) = why {
                let shown: Vec<&str> = parts.iter().take(3).map(String::as_str).collect();
                let more = if parts.len() > 3 { ", ..." } else { "" };
                return Err(Error::invalid(crate::spec::source::Diagnostic::new(format!(
                    "channel `{}` of step `{}` is in pipe mode but has {} parts ({}{more}): a pipe streams the parts one after another, and {why}",
                    c.name,
                    self.step.name(),
                    parts.len(),
                    shown.join(", "),
                ))
                .help(format!(
                    "give the channel `input_mode: file` (`{}: {{data: REF, input_mode: file}}`), or make its data a single part",
                    c.name
                ))));
            }
        }
        let lines = reading.as_ref().and_then(|d| match d.format {
            DataFormat::Csv => Some(super::pipe::Lines::Csv),
            DataFormat::Libsvm | DataFormat::Jsonlines => Some(super::pipe::Lines::Libsvm),
            DataFormat::Parquet | DataFormat::RecordioProtobuf => None,
        });
        Ok(super::pipe::PipeChannel {
            name: c.name.clone(),
            source,
            lines,
        })
    }
}

/// Copies the user's code to `dest` (`code/`, SageMaker's `/opt/ml/code`):
/// a directory's tree, or one file into it. A copy, not a link, so that the
/// step runs what was there when it started and cannot change the
/// pipeline's sources; links are followed (their content is copied), and a
/// workspace (`.pipeline/`) inside is left out.
fn copy_code(src: &Path, dest: &Path) -> Result<()> {
    let io = |p: &Path, e| Error::io("copy the code from", p, e);
    fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
    let meta = fs::metadata(src).map_err(|e| io(src, e))?;
    if !meta.is_dir() {
        let name = src.file_name().unwrap_or(src.as_os_str());
        fs::copy(src, dest.join(name)).map_err(|e| io(src, e))?;
        return Ok(());
    }
    // Bounded: a link loop must not copy forever.
    let mut stack = vec![(src.to_path_buf(), dest.to_path_buf(), 0usize)];
    while let Some((from, to, depth)) = stack.pop() {
        if depth > 64 {
            return Err(Error::failed(format!(
                "the code in {} is nested more than 64 directories deep (a link loop?)",
                src.display()
            )));
        }
        for entry in fs::read_dir(&from).map_err(|e| io(&from, e))? {
            let entry = entry.map_err(|e| io(&from, e))?;
            let name = entry.file_name();
            if depth == 0 && name == ".pipeline" {
                continue;
            }
            let path = entry.path();
            let target = to.join(&name);
            let meta = fs::metadata(&path).map_err(|e| io(&path, e))?;
            if meta.is_dir() {
                fs::create_dir(&target).map_err(|e| io(&target, e))?;
                stack.push((path, target, depth + 1));
            } else {
                fs::copy(&path, &target).map_err(|e| io(&path, e))?;
                // A stored (read-only) file stays writable in the copy.
                let mut perm = meta.permissions();
                use std::os::unix::fs::PermissionsExt;
                perm.set_mode(perm.mode() | 0o200);
                fs::set_permissions(&target, perm).map_err(|e| io(&target, e))?;
            }
        }
    }
    Ok(())
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

/// `PIPELINE_OUTPUT_` names: upper case, anything but letters and digits as `_`.
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
    fn local_files_stream_the_visible_files_in_name_order() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("parts");
        for (name, text) in [
            ("b.csv", "2\n"),
            ("a.csv", "1\n"),
            ("_SUCCESS", ""),
            (".crc", "x"),
            ("sub/c.csv", "3\n"),
        ] {
            let p = d.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let src = LocalFiles::new(&d, None).unwrap();
        assert_eq!(src.parts(), ["a.csv", "b.csv", "sub/c.csv"]);
        let mut out = Vec::new();
        for i in 0..3 {
            src.write_part(i, &mut out).unwrap();
        }
        assert_eq!(out, b"1\n2\n3\n");
        // One node's share, and a channel that is a single (oddly named) file.
        let src = LocalFiles::new(&d, Some(&[d.join("b.csv")])).unwrap();
        assert_eq!(src.parts(), ["b.csv"]);
        let src = LocalFiles::new(&d.join("_SUCCESS"), None).unwrap();
        assert_eq!(src.parts(), ["_SUCCESS"]);
        // A part gone by the time it is read names its file.
        let src = LocalFiles::new(&d, None).unwrap();
        fs::remove_file(d.join("a.csv")).unwrap();
        let e = src.write_part(0, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("a.csv"), "{e}");
    }

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
