//! The validated pipeline: what every later stage works from.
//!
//! Nothing downstream of `spec` sees YAML nodes. These types are also the
//! resolved spec recorded with each run and handed to built-in steps as JSON
//! (`input/config/step.json`), so they serialize; spans are kept for messages
//! found later (a cycle, a missing metric) but never serialized.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::code::Code;
use serde::{Deserialize, Serialize};

use super::expr::Expr;
use super::source::{Span, Spanned};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pipeline {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Resolved parameter values (defaults overridden by `--param`).
    pub params: BTreeMap<String, serde_json::Value>,
    pub inputs: BTreeMap<String, InputDef>,
    /// In file order.
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Commands run when a model version becomes Approved (see the registry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_approved: Vec<String>,
    /// The directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// Step name to index, built on first look-up (validation and planning
    /// look steps up by name once a reference: a scan each would make them
    /// quadratic in the number of steps). `steps` is not changed after loading.
    /// Secret param values: never serialized, handed to steps only in their
    /// environment (see `template::fill_secrets`).
    #[serde(skip)]
    pub secrets: super::params::Secrets,
    #[serde(skip)]
    pub step_names: std::sync::OnceLock<std::collections::HashMap<String, usize>>,
}

impl Pipeline {
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.step_index(name).map(|i| &self.steps[i])
    }
    pub fn step_index(&self, name: &str) -> Option<usize> {
        let names = self.step_names.get_or_init(|| {
            let mut m = std::collections::HashMap::with_capacity(self.steps.len());
            for (i, s) in self.steps.iter().enumerate() {
                m.entry(s.name.value.clone()).or_insert(i);
            }
            m
        });
        names.get(name).copied()
    }
}

/// A data set the pipeline reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputDef {
    /// As written: a path relative to the pipeline file, an absolute path, or `s3://...`.
    pub path: String,
    /// Absolute local path (or the S3 URI unchanged).
    pub resolved: PathBuf,
    pub format: DataFormat,
    #[serde(default = "yes")]
    pub header: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_size: Option<u32>,
    /// Cell texts that mean "no value" (`missing_values`); `None`: the usual
    /// spellings (empty, `NA`, `NaN`, `null`, `?`...). Given, the list replaces them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_values: Option<Vec<String>>,
    /// Columns read as categories even where their cells are numbers (`categorical`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<String>,
    /// Which columns are features (`features: {include: [...]}` or `{exclude: [...]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureSelection>,
    /// Columns that identify a row (`id_columns`): never features, carried
    /// through to predictions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_columns: Vec<String>,
    /// Set by the engine, never written: the columns a split step grouped or
    /// ordered the rows by, which are not features unless `features.include`
    /// names them (a group id or a timestamp would leak the split).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split_columns: Vec<String>,
    #[serde(skip)]
    pub span: Span,
}

fn yes() -> bool {
    true
}

impl InputDef {
    /// The `s3://` URI, when the data is remote.
    pub fn remote(&self) -> Option<&str> {
        crate::store::remote::is_remote(&self.path).then_some(self.path.as_str())
    }
}

/// Which columns of a data set are features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSelection {
    /// Only these columns (in the file's order).
    Include(Vec<String>),
    /// Every column but these.
    Exclude(Vec<String>),
}

/// How to read a train channel, declared on the channel itself
/// (`channels: {train: {data: REF, target: COL}}`): for data that does not
/// come straight from a pipeline input, such as a command step's output, or
/// to override what the input says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelFormat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_size: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    Csv,
    Parquet,
    Libsvm,
    /// SageMaker's RecordIO-protobuf (`aialgs.data.Record` messages).
    RecordioProtobuf,
    /// One JSON object a line.
    Jsonlines,
}

impl DataFormat {
    pub const NAMES: &'static [&'static str] =
        &["csv", "parquet", "libsvm", "recordio-protobuf", "jsonlines"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(DataFormat::Csv),
            "parquet" => Some(DataFormat::Parquet),
            "libsvm" => Some(DataFormat::Libsvm),
            "recordio-protobuf" => Some(DataFormat::RecordioProtobuf),
            "jsonlines" => Some(DataFormat::Jsonlines),
            _ => None,
        }
    }

    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Csv => "csv",
            DataFormat::Parquet => "parquet",
            DataFormat::Libsvm => "libsvm",
            DataFormat::RecordioProtobuf => "recordio-protobuf",
            DataFormat::Jsonlines => "jsonlines",
        }
    }

    /// SageMaker's name for the format: the `ContentType` of a channel.
    pub fn content_type(&self) -> &'static str {
        match self {
            DataFormat::Csv => "text/csv",
            DataFormat::Parquet => "application/x-parquet",
            DataFormat::Libsvm => "text/libsvm",
            DataFormat::RecordioProtobuf => "application/x-recordio-protobuf",
            DataFormat::Jsonlines => "application/jsonlines",
        }
    }
}

/// What a SageMaker content type (`content_type:`) says about how data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType {
    pub format: DataFormat,
    /// `text/csv` is headerless, as SageMaker reads it.
    pub header: Option<bool>,
    /// `text/csv; label_size=N`.
    pub label_size: Option<u32>,
}

impl ContentType {
    /// The content types accepted, as SageMaker spells them.
    pub const NAMES: &'static [&'static str] = &[
        "text/csv",
        "text/csv; label_size=1",
        "text/libsvm",
        "text/x-libsvm",
        "application/x-parquet",
        "application/x-recordio-protobuf",
        "application/jsonlines",
    ];

    /// Parses a content type (the media type case-insensitively, spaces
    /// around `;` and `=` ignored); the error says what is wrong.
    pub fn parse(s: &str) -> Result<ContentType, String> {
        let mut parts = s.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let format = match media.as_str() {
            "text/csv" => DataFormat::Csv,
            "text/libsvm" | "text/x-libsvm" => DataFormat::Libsvm,
            "application/x-parquet" => DataFormat::Parquet,
            "application/x-recordio-protobuf" => DataFormat::RecordioProtobuf,
            "application/jsonlines" | "application/jsonl" => DataFormat::Jsonlines,
            _ => return Err(format!("`{}` is not a content type read here", s.trim())),
        };
        let mut ct = ContentType {
            format,
            header: (format == DataFormat::Csv).then_some(false),
            label_size: None,
        };
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match (k.as_str(), format) {
                ("label_size", DataFormat::Csv) => {
                    ct.label_size = Some(match v {
                        "0" => 0,
                        "1" => 1,
                        _ => {
                            return Err(format!(
                                "`label_size={v}`: SageMaker's built-ins read one label column, so it is 0 or 1"
                            ));
                        }
                    });
                }
                ("charset", _) if v.eq_ignore_ascii_case("utf-8") => {}
                _ => {
                    return Err(format!(
                        "`{}` is not a parameter of `{media}` read here",
                        p.trim()
                    ));
                }
            }
        }
        Ok(ct)
    }
}

/// A pipeline's `schedule:` (read by `pipeline schedule`, see docs/scheduling.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Schedule {
    /// Cron expressions (`cron: "0 3 * * 1"` or a list); empty when the
    /// schedule only watches inputs (`on_change`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub only_if_inputs_changed: bool,
    #[serde(default)]
    pub concurrency: Concurrency,
    #[serde(default)]
    pub catch_up: CatchUp,
    /// With `catch_up: all`: at most this many missed firings run (the latest ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_catch_up: Option<u32>,
    /// A firing that cannot start within this long of its time is missed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration_opt"
    )]
    pub starting_deadline: Option<Duration>,
    /// Fire nothing (firings while suspended are dropped, not caught up).
    #[serde(default)]
    pub suspend: bool,
    /// Inputs whose content change starts a run (`on_change: [inputs.events]`), by input name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_change: Vec<String>,
    /// How often `on_change` inputs are looked at.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
}

/// What a firing does while an earlier run of the same pipeline is still running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Start another run beside it.
    Allow,
    /// Skip the firing.
    #[default]
    Forbid,
    /// Cancel the running run, then start.
    Replace,
}

/// Which firings missed while the scheduler was not running (or was late) run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    None,
    #[default]
    Latest,
    All,
}

impl Concurrency {
    pub const NAMES: &[&str] = &["allow", "forbid", "replace"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Self::Allow),
            "forbid" => Some(Self::Forbid),
            "replace" => Some(Self::Replace),
            _ => None,
        }
    }
}

impl CatchUp {
    pub const NAMES: &[&str] = &["none", "latest", "all"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "latest" => Some(Self::Latest),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: Spanned<String>,
    #[serde(flatten)]
    pub kind: StepKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Spanned<String>>,
    /// `when` parsed; the references it reads are dependencies.
    #[serde(skip)]
    pub when_expr: Option<Expr>,
    pub executor: Executor,
    pub retry: Retry,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration_opt"
    )]
    pub timeout: Option<Duration>,
    /// How long a stopped step's processes have between SIGTERM and
    /// SIGKILL (absent: SageMaker's 120 s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration_opt"
    )]
    pub stop_timeout: Option<Duration>,
    pub cache: CachePolicy,
    pub resources: Resources,
    /// `network: none` cuts a container step off every network.
    #[serde(default, skip_serializing_if = "Network::is_bridge")]
    pub network: Network,
    /// Where the step runs on AWS Batch (`executor: batch`).
    #[serde(default, skip_serializing_if = "BatchSettings::is_empty")]
    pub batch: BatchSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Added to the step's environment. Secret params appear here as
    /// placeholders, filled in only when the step starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The tune step and index of a train step that is one of its trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<super::tune::Trial>,
}

impl Step {
    pub fn name(&self) -> &str {
        &self.name.value
    }

    /// How long the step's processes have between SIGTERM and SIGKILL.
    pub fn stop_grace(&self) -> Duration {
        self.stop_timeout.unwrap_or(crate::exec::supervise::GRACE)
    }

    /// The user's code this step names (`source_dir`, `entry_point`), if any.
    pub fn code(&self) -> Option<&Code> {
        match &self.kind {
            StepKind::Train(t) if t.algorithm.is_none() => Some(&t.code),
            StepKind::Command(c) => Some(&c.code),
            _ => None,
        }
        .filter(|c| !c.is_empty())
    }

    /// The script the step runs (`SAGEMAKER_PROGRAM`), if it names one.
    pub fn entry_point(&self) -> Option<&str> {
        self.code().and_then(Code::program)
    }

    /// The image a user step runs in, as written.
    pub fn user_image(&self) -> Option<&str> {
        match &self.kind {
            StepKind::Command(c) => c.image.as_deref(),
            StepKind::Train(t) if t.algorithm.is_none() => t.image.as_deref(),
            _ => None,
        }
    }

    /// The data the step reads: `(channel, reference)` in a stable order.
    pub fn inputs(&self) -> Vec<(String, &Ref)> {
        let mut v: Vec<(String, &Ref)> = Vec::new();
        match &self.kind {
            StepKind::Split(s) => {
                if let Some(i) = &s.input {
                    v.push(("input".into(), i));
                }
                for (i, src) in s.sources.iter().enumerate() {
                    v.push((format!("source{i}"), &src.input));
                }
            }
            StepKind::Train(t) => v.extend(t.channels.iter().map(|(k, r)| (k.clone(), r))),
            StepKind::Evaluate(e) => {
                if let Some(m) = &e.model {
                    v.push(("model".into(), m));
                }
                v.push(("data".into(), &e.data));
                for var in &e.variants {
                    v.push((format!("variant-{}", var.name), &var.model));
                }
            }
            StepKind::Register(r) => {
                v.push(("model".into(), &r.model));
                if let Some(m) = &r.metrics {
                    v.push(("metrics".into(), m));
                }
            }
            StepKind::Transform(t) => {
                v.push(("model".into(), &t.model));
                v.push(("data".into(), &t.data));
            }
            StepKind::Command(c) => v.extend(c.inputs.iter().map(|(k, r)| (k.clone(), r))),
            // What its trials read (validated once here, resolved by each trial).
            StepKind::Tune(t) => v.extend(t.train.channels.iter().map(|(k, r)| (k.clone(), r))),
            StepKind::Automl(t) => {
                v.extend(t.train.channels.iter().map(|(k, r)| (k.clone(), r)));
                if let Some(test) = t.automl.as_ref().and_then(|a| a.test.as_ref()) {
                    v.push(("test".into(), test));
                }
            }
        }
        v
    }

    /// The names of the artifacts the step produces.
    pub fn outputs(&self) -> Vec<String> {
        match &self.kind {
            StepKind::Split(s) => s
                .fractions
                .iter()
                .map(|(k, _)| k.clone())
                .chain(["manifest".to_string()])
                .collect(),
            StepKind::Train(t) if t.onnx => vec!["model".into(), "onnx".into()],
            StepKind::Train(_) => vec!["model".into()],
            StepKind::Evaluate(_) => vec!["metrics".into(), "report".into()],
            StepKind::Register(_) => vec!["version".into()],
            StepKind::Transform(_) => vec!["predictions".into()],
            StepKind::Command(c) => c.outputs.iter().map(|o| o.value.clone()).collect(),
            StepKind::Tune(_) | StepKind::Automl(_) => {
                super::tune::OUTPUTS.iter().map(|o| o.to_string()).collect()
            }
        }
    }
}

/// What a step does. Serialized with the kind's name in `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StepKind {
    Split(SplitStep),
    Train(TrainStep),
    Evaluate(EvaluateStep),
    Register(RegisterStep),
    Transform(TransformStep),
    Command(CommandStep),
    Tune(Box<super::tune::TuneStep>),
    /// A search over several built-ins, held as a tune step with candidates.
    Automl(Box<super::tune::TuneStep>),
}

impl StepKind {
    pub const NAMES: &'static [&'static str] = &[
        "split",
        "train",
        "evaluate",
        "register",
        "transform",
        "command",
        "tune",
        "automl",
    ];
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Split(_) => "split",
            StepKind::Train(_) => "train",
            StepKind::Evaluate(_) => "evaluate",
            StepKind::Register(_) => "register",
            StepKind::Transform(_) => "transform",
            StepKind::Command(_) => "command",
            StepKind::Tune(_) => "tune",
            StepKind::Automl(_) => "automl",
        }
    }

    /// The search of a tune or automl step.
    pub fn search(&self) -> Option<&super::tune::TuneStep> {
        match self {
            StepKind::Tune(t) | StepKind::Automl(t) => Some(t),
            _ => None,
        }
    }
    /// Outputs every step of this kind has, for messages about references.
    pub fn fixed_outputs(name: &str) -> &'static [&'static str] {
        match name {
            "train" => &["model"],
            "evaluate" => &["metrics", "report"],
            "register" => &["version"],
            "transform" => &["predictions"],
            "tune" | "automl" => super::tune::OUTPUTS,
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Ref>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SplitSource>,
    pub strategy: SplitStrategy,
    /// Output name -> fraction, in the order written.
    pub fractions: Vec<(String, f64)>,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitSource {
    pub input: Ref,
    pub fractions: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SplitStrategy {
    Shuffle {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stratify: Option<String>,
    },
    Time {
        column: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cutoffs: Vec<String>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "duration_opt"
        )]
        gap: Option<Duration>,
    },
    Group {
        column: String,
    },
}

impl SplitStrategy {
    /// The column a group or time split arranges rows by (not a feature downstream).
    pub fn split_column(&self) -> Option<String> {
        match self {
            SplitStrategy::Time { column, .. } | SplitStrategy::Group { column } => {
                Some(column.clone())
            }
            SplitStrategy::Shuffle { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainStep {
    /// A built-in algorithm...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// ...or the user's own image (run as `IMAGE train`)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// ...or the user's own command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<String>,
    pub channels: BTreeMap<String, Ref>,
    /// How a channel is spread over the nodes (absent: fully replicated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub distribution: BTreeMap<String, Distribution>,
    /// How to read a channel, where the channel says (`target:`, `header:`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channel_formats: BTreeMap<String, ChannelFormat>,
    /// `source_dir` and `entry_point`: the user's script (`SAGEMAKER_PROGRAM`).
    #[serde(flatten)]
    pub code: Code,
    /// Metrics read from the step's log (SageMaker's `metric_definitions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_definitions: Vec<MetricDefinition>,
    pub hyperparameters: BTreeMap<String, String>,
    /// How every channel's data reaches the step (`input_mode:`), unless
    /// the channel says otherwise (`channel_modes`).
    #[serde(default, skip_serializing_if = "InputMode::is_file")]
    pub input_mode: InputMode,
    /// Channels that declare their own `input_mode`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channel_modes: BTreeMap<String, InputMode>,
    /// `onnx: true`: the built-in's model is also written as ONNX, the
    /// output `onnx` (`model.onnx`), as `pipeline export --format onnx` writes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onnx: bool,
}

impl TrainStep {
    /// How channel `name` reaches the step: its own `input_mode`, else the step's.
    pub fn input_mode_of(&self, name: &str) -> InputMode {
        self.channel_modes
            .get(name)
            .copied()
            .unwrap_or(self.input_mode)
    }
}

/// A metric a train step reports: the first capture group of `regex`, on
/// the last line of its log it matches; without `regex`, the last value
/// under `name` in the JSON lines its code writes to `output/metrics.jsonl`
/// (`$PIPELINE_METRICS_FILE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// How a channel's data reaches a train step (SageMaker's `TrainingInputMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputMode {
    /// The channel's files, under `input/data/<channel>/`.
    #[default]
    File,
    /// Streamed, epoch after epoch, through the named pipes
    /// `input/data/<channel>_0`, `<channel>_1`, ...; never on disk.
    Pipe,
}

impl InputMode {
    pub const NAMES: &'static [&'static str] = &["file", "pipe"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "file" => Some(InputMode::File),
            "pipe" => Some(InputMode::Pipe),
            _ => None,
        }
    }
    pub fn is_file(&self) -> bool {
        *self == InputMode::File
    }
    /// SageMaker's name, as written in `inputdataconfig.json`.
    pub fn sagemaker_name(&self) -> &'static str {
        match self {
            InputMode::File => "File",
            InputMode::Pipe => "Pipe",
        }
    }
}

/// How a channel's files are spread over the nodes of a multi-node step
/// (SageMaker's `S3DistributionType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Every node sees every file.
    #[default]
    FullyReplicated,
    /// Each node sees its own contiguous share of the files, by name.
    ShardedByKey,
}

impl Distribution {
    pub const NAMES: &'static [&'static str] = &["fully_replicated", "sharded_by_key"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fully_replicated" => Some(Distribution::FullyReplicated),
            "sharded_by_key" => Some(Distribution::ShardedByKey),
            _ => None,
        }
    }
    /// SageMaker's name, as written in `inputdataconfig.json`.
    pub fn sagemaker_name(&self) -> &'static str {
        match self {
            Distribution::FullyReplicated => "FullyReplicated",
            Distribution::ShardedByKey => "ShardedByS3Key",
        }
    }
}

/// A step's `batch:` settings (see `spec/batch.rs`); what is not set here
/// comes from the environment when the step is submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    /// Added to the job's environment (so it is in the step's cache key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub job_environment: BTreeMap<String, String>,
    /// The image built-in steps run in (the engine's runtime image, pushed
    /// where the compute environment can pull it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_image: Option<String>,
    /// The repository (e.g. in ECR) the staged images of users' images are
    /// pushed to, where the compute environment pulls them from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// How long a job may wait in RUNNABLE before the step fails.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration_opt"
    )]
    pub runnable_timeout: Option<Duration>,
}

impl BatchSettings {
    pub fn is_empty(&self) -> bool {
        *self == BatchSettings::default()
    }
}

/// A container step's network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The engine's default bridge network (multi-node steps get a private one).
    #[default]
    Bridge,
    /// No network at all (SageMaker's network isolation).
    None,
}

impl Network {
    pub const NAMES: &'static [&'static str] = &["bridge", "none"];
    pub fn is_bridge(&self) -> bool {
        *self == Network::Bridge
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluateStep {
    pub method: EvalMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Ref>,
    pub data: Ref,
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratify: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalMethod {
    Holdout,
    Kfold,
    Ab,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub model: Ref,
    pub weight: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterStep {
    pub model: Ref,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Ref>,
    pub approval: Approval,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Where the approval's condition or metric text starts (inside any quote), for messages.
    #[serde(skip)]
    pub approval_span: Span,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Manual,
    AutoApproveIf(String),
    BeatChampion {
        metric: String,
        by: f64,
        /// When not given: the metric's own direction (`logloss` lower, `auc` higher).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        higher_is_better: Option<bool>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformStep {
    pub model: Ref,
    pub data: Ref,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandStep {
    /// The argv; templates for outputs and inputs are filled in at run time.
    pub run: Vec<String>,
    pub inputs: BTreeMap<String, Ref>,
    pub outputs: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `source_dir` and `entry_point`: the user's script.
    #[serde(flatten)]
    pub code: Code,
    /// Written to `hyperparameters.json` and `SM_HPS`/`SM_HP_*`, as for a train step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hyperparameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    Local,
    Docker,
    Batch,
}

impl Executor {
    pub const NAMES: &'static [&'static str] = &["local", "docker", "batch"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Executor::Local),
            "docker" => Some(Executor::Docker),
            "batch" => Some(Executor::Batch),
            _ => None,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Executor::Local => "local",
            Executor::Docker => "docker",
            Executor::Batch => "batch",
        }
    }
}

/// Which failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// The step's process exited with a non-zero code.
    ExitCode,
    /// The step ran longer than its timeout.
    Timeout,
    /// The step's process was killed by a signal (other than our own).
    Signal,
    /// The step was killed for running out of memory.
    Oom,
}

impl RetryOn {
    pub const NAMES: &'static [&'static str] = &["exit-code", "timeout", "signal", "oom"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exit-code" => Some(RetryOn::ExitCode),
            "timeout" => Some(RetryOn::Timeout),
            "signal" => Some(RetryOn::Signal),
            "oom" => Some(RetryOn::Oom),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    /// Attempts in all, the first included (1 = no retry).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    #[serde(with = "duration")]
    pub backoff: Duration,
    pub on: Vec<RetryOn>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            backoff: Duration::from_secs(1),
            on: vec![RetryOn::ExitCode, RetryOn::Timeout],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CachePolicy {
    Off,
    On,
    ExpireAfter(#[serde(with = "duration")] Duration),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    pub nodes: u32,
}

/// A reference to data: a pipeline input, a step's output, or a registered model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub target: RefTarget,
    /// As written.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    Input(String),
    Output {
        step: String,
        output: String,
    },
    /// `registry://GROUP@approved|latest|N`.
    Registry(crate::registry::RegistryRef),
}

impl Ref {
    /// Parses reference syntax; `None` when the text is not a reference.
    pub fn parse(text: &str, span: Span) -> Option<Ref> {
        let t = text.trim();
        let target = if t.starts_with("registry://") {
            RefTarget::Registry(crate::registry::RegistryRef::parse(t).ok()?)
        } else {
            let (a, b) = t.split_once('.')?;
            if !is_name(a) || !is_name(b) {
                return None;
            }
            if a == "inputs" {
                RefTarget::Input(b.to_string())
            } else {
                RefTarget::Output {
                    step: a.to_string(),
                    output: b.to_string(),
                }
            }
        };
        Some(Ref {
            target,
            text: t.to_string(),
            span,
        })
    }
}

/// Names of steps, inputs, outputs and channels: letters, digits, `_` and `-`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Ref {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Ref {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ref::parse(&text, Span::default())
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a reference")))
    }
}

/// Durations as the user writes them (`90s`, `30m`, `1h30m`, `7d`), in JSON too.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a duration")))
    }

    /// Parses `500ms`, `90s`, `30m`, `2h`, `7d`, `1w`, sums like `1h30m`, and bare seconds.
    pub fn parse(s: &str) -> Option<Duration> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Ok(secs) = s.parse::<f64>() {
            return Duration::try_from_secs_f64(secs).ok();
        }
        let mut total = 0f64;
        let mut rest = s;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_end == 0 {
                return None;
            }
            let n: f64 = rest[..num_end].parse().ok()?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = rest[..unit_end].trim();
            rest = &rest[unit_end..];
            let mult = match unit {
                "ms" => 0.001,
                "s" | "sec" | "secs" => 1.0,
                "m" | "min" | "mins" => 60.0,
                "h" | "hr" | "hrs" => 3600.0,
                "d" | "day" | "days" => 86400.0,
                "w" | "week" | "weeks" => 604800.0,
                _ => return None,
            };
            total += n * mult;
        }
        Duration::try_from_secs_f64(total).ok()
    }

    pub fn format(d: Duration) -> String {
        let ms = d.as_millis();
        if !ms.is_multiple_of(1000) {
            return format!("{ms}ms");
        }
        let s = d.as_secs();
        for (unit, size) in [("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)] {
            if s >= size && s.is_multiple_of(size) {
                return format!("{}{unit}", s / size);
            }
        }
        format!("{s}s")
    }
}

pub mod duration_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            super::duration::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a duration")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration::parse("2s"), Some(Duration::from_secs(2)));
        assert_eq!(duration::parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(duration::parse("7d"), Some(Duration::from_secs(604800)));
        assert_eq!(duration::parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(duration::parse("10"), Some(Duration::from_secs(10)));
        assert_eq!(duration::parse("soon"), None);
        assert_eq!(duration::parse("5x"), None);
        assert_eq!(duration::format(Duration::from_secs(5400)), "90m");
        assert_eq!(duration::format(Duration::from_secs(604800)), "1w");
    }

    #[test]
    fn references() {
        let r = Ref::parse("split.train", Span::default()).unwrap();
        assert_eq!(
            r.target,
            RefTarget::Output {
                step: "split".into(),
                output: "train".into()
            }
        );
        let r = Ref::parse("inputs.penguins", Span::default()).unwrap();
        assert_eq!(r.target, RefTarget::Input("penguins".into()));
        let r = Ref::parse("registry://churn@approved", Span::default()).unwrap();
        assert!(
            matches!(r.target, RefTarget::Registry(ref g) if g.selector == crate::registry::Selector::Approved)
        );
        assert!(Ref::parse("registry://churn", Span::default()).is_none());
        assert!(Ref::parse("registry://churn@0", Span::default()).is_none());
        assert!(Ref::parse("data/x.csv", Span::default()).is_none());
        assert!(Ref::parse("a.b.c", Span::default()).is_none());
    }
}
