//! Reading a pipeline file into a validated [`Pipeline`].
//!
//! The order matters: parse the YAML tree; read `params` and apply the
//! command line's overrides; render templates everywhere else; decode every
//! section with located errors; then check references across steps
//! (`validate`). Cycles are found by the planner, which owns the graph.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::decode::{Ctx, DResult, Fields};
use super::expr;
use super::model::*;
use super::params;
use super::source::{Diagnostic, Source, Span, Spanned};
use super::template;
use super::validate;
use super::yaml::{self, Node, NodeKind};
use crate::error::{Error, Result};

/// What the command line adds to a pipeline file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--param K=V`, in order.
    pub params: Vec<(String, String)>,
    /// `--executor E`: replaces the default executor (`defaults: executor:`);
    /// a step that names its own `executor:` keeps it.
    pub executor: Option<Executor>,
}

/// A loaded pipeline and the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub pipeline: Pipeline,
    pub source: Arc<Source>,
}

/// Reads and validates the pipeline at `path`.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let d = Diagnostic::new(format!(
            "cannot read the pipeline file {}: {e}",
            path.display()
        ));
        Error::invalid(if e.kind() == std::io::ErrorKind::NotFound {
            d.help("check the path; pipeline files usually live in pipelines/")
        } else {
            d
        })
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let source = Arc::new(Source {
        name: path.display().to_string(),
        text,
    });
    load_source(source, &base, opts)
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "params",
    "defaults",
    "schedule",
    "inputs",
    "steps",
    "on_approved",
];

/// Reads and validates a pipeline from its text; relative paths resolve against `base_dir`.
pub fn load_source(source: Arc<Source>, base_dir: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let ctx = Ctx {
        source: source.clone(),
    };
    let mut root = yaml::parse(&source).map_err(Error::invalid)?;
    if !matches!(root.kind, NodeKind::Map(_)) {
        return Err(Error::invalid(
            ctx.err(
                &root,
                format!(
                    "a pipeline file must be a mapping with `name:` and `steps:`, found {}",
                    root.describe()
                ),
            )
            .help("start the file with `name: my-pipeline` and a `steps:` section"),
        ));
    }
    let fields = ctx
        .fields(&root, "the pipeline", TOP_KEYS)
        .map_err(Error::invalid)?;
    let decls = match fields.get("params") {
        Some(p) => params::decode(&ctx, p).map_err(Error::invalid)?,
        None => vec![],
    };
    let params::Resolved { values, secrets } =
        params::resolve(&ctx, &decls, &opts.params, base_dir).map_err(Error::Invalid)?;

    // Templates are rendered everywhere but in `params` itself.
    if let NodeKind::Map(entries) = &mut root.kind {
        for (k, v) in entries.iter_mut() {
            let section = k.as_scalar().unwrap_or("");
            if section != "params" {
                template::render_tree(&ctx, section, v, &values, &decls).map_err(Error::invalid)?;
            }
        }
    }
    let fields = ctx
        .fields(&root, "the pipeline", TOP_KEYS)
        .map_err(Error::invalid)?;
    let mut pipeline =
        decode_pipeline(&ctx, &fields, values, base_dir, opts).map_err(Error::invalid)?;
    pipeline.secrets = secrets;
    let errors = validate::check(&ctx, &pipeline, &decls);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    super::tune::expand(&mut pipeline);
    Ok(Loaded { pipeline, source })
}

fn decode_pipeline(
    ctx: &Ctx,
    f: &Fields,
    params: BTreeMap<String, serde_json::Value>,
    base_dir: &Path,
    opts: &LoadOptions,
) -> DResult<Pipeline> {
    let name_node = f.req(ctx, "name")?;
    let name = ctx.string(name_node, "name")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ctx
            .err(
                name_node,
                format!(
                    "the pipeline name `{}` may hold only lowercase letters, digits and `-`",
                    name.value
                ),
            )
            .help(format!("for example `{}`", slug(&name))));
    }
    let description = f
        .get("description")
        .map(|n| ctx.string(n, "description"))
        .transpose()?
        .map(|s| s.value);
    let mut defaults = match f.get("defaults") {
        Some(n) => decode_common(
            ctx,
            n,
            &StepCommon::builtin_defaults(),
            "defaults",
            DEFAULT_KEYS,
        )?,
        None => StepCommon::builtin_defaults(),
    };
    if let Some(e) = opts.executor {
        defaults.executor = e;
    }
    let mut inputs = BTreeMap::new();
    if let Some(n) = f.get("inputs") {
        for (iname, node) in ctx.entries(n, "inputs")? {
            check_name(ctx, &iname, "input")?;
            inputs.insert(
                iname.value.clone(),
                decode_input(ctx, &iname, node, base_dir)?,
            );
        }
    }
    let schedule = f
        .get("schedule")
        .map(|n| super::schedule::decode(ctx, n, &inputs))
        .transpose()?;
    let steps_node = f.req(ctx, "steps")?;
    let mut steps = Vec::new();
    for (sname, node) in ctx.entries(steps_node, "steps")? {
        check_name(ctx, &sname, "step")?;
        steps.push(decode_step(ctx, sname, node, &defaults)?);
    }
    if steps.is_empty() {
        return Err(ctx
            .err(steps_node, "the pipeline has no steps")
            .help("add at least one step under `steps:`"));
    }
    let on_approved = match f.get("on_approved") {
        Some(n) => ctx
            .string_list(n, "on_approved")?
            .into_iter()
            .map(|s| s.value)
            .collect(),
        None => vec![],
    };
    Ok(Pipeline {
        name: name.value,
        description,
        params,
        inputs,
        steps,
        schedule,
        on_approved,
        base_dir: base_dir.to_path_buf(),
        step_names: Default::default(),
        secrets: Default::default(),
    })
}

fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_string()
}

fn check_name(ctx: &Ctx, name: &Spanned<String>, what: &str) -> DResult<()> {
    if is_name(&name.value) {
        return Ok(());
    }
    Err(Diagnostic::at(
        &ctx.source,
        name.span,
        format!("`{}` is not a valid {what} name", name.value),
    )
    .help("names start with a letter and hold letters, digits, `_` and `-`"))
}

fn decode_input(
    ctx: &Ctx,
    name: &Spanned<String>,
    node: &Node,
    base_dir: &Path,
) -> DResult<InputDef> {
    let what = format!("input `{}`", name.value);
    let (path, f) = match &node.kind {
        NodeKind::Scalar { .. } => (ctx.string(node, "path")?, None),
        _ => {
            let f = ctx.fields(
                node,
                &what,
                &[
                    "path",
                    "format",
                    "content_type",
                    "header",
                    "target",
                    "label_size",
                    "description",
                    "missing_values",
                    "categorical",
                    "features",
                    "id_columns",
                ],
            )?;
            (ctx.string(f.req(ctx, "path")?, "path")?, Some(f))
        }
    };
    let (named, content_type) = match &f {
        Some(f) => decode_format_fields(ctx, f)?,
        None => (None, None),
    };
    let format = named.unwrap_or_else(|| guess_format(&path));
    let header_node = f.as_ref().and_then(|f| f.get("header"));
    let header = match header_node {
        Some(n) => ctx.bool(n, "header")?.value,
        None => content_type.and_then(|c| c.header).unwrap_or(true),
    };
    let target = f
        .as_ref()
        .and_then(|f| f.get("target"))
        .map(|n| ctx.string(n, "target"))
        .transpose()?;
    let label_size = match &f {
        Some(f) => merged_label_size(ctx, f, content_type)?,
        None => None,
    };
    if let Some(t) = &target {
        // An input may give both (a header's target wins); a content type's
        // `label_size=` with a named target is a contradiction.
        let both = content_type.is_some_and(|c| c.label_size.is_some());
        check_target(ctx, t, format, header, header_node.is_some(), both)?;
    }
    let target = target.map(|s| s.value);
    if let Some(d) = remote_path(ctx, &path) {
        return Err(d);
    }
    let resolved = if crate::store::remote::is_remote(&path.value) {
        // Checked for syntax here; what is there is looked at when a step reads it.
        PathBuf::from(&path.value)
    } else {
        let p = Path::new(&path.value);
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        };
        if !abs.exists() {
            return Err(Diagnostic::at(
                &ctx.source,
                path.span,
                format!("the input file `{}` does not exist", path.value),
            )
            .label(format!("looked for {}", abs.display()))
            .help("paths are relative to the pipeline file's directory"));
        }
        abs
    };
    let columns = match &f {
        Some(f) => decode_column_settings(ctx, f, target.as_deref())?,
        None => ColumnSettings::default(),
    };
    if matches!(format, DataFormat::Libsvm | DataFormat::RecordioProtobuf)
        && let Some(f) = &f
        && let Some(k) = ["categorical", "features", "id_columns"]
            .iter()
            .find_map(|k| f.key(k))
    {
        return Err(ctx
            .err(
                k,
                format!("{} data has no column names to refer to", format.name()),
            )
            .help("remove it, or store the data as CSV, Parquet or JSON Lines"));
    }
    let def = InputDef {
        path: path.value,
        resolved,
        format,
        header,
        target,
        label_size,
        missing_values: columns
            .missing_values
            .as_ref()
            .map(|v| v.iter().map(|s| s.value.clone()).collect()),
        categorical: columns
            .categorical
            .iter()
            .map(|s| s.value.clone())
            .collect(),
        features: columns.features.as_ref().map(|(include, names)| {
            let names = names.iter().map(|s| s.value.clone()).collect();
            if *include {
                FeatureSelection::Include(names)
            } else {
                FeatureSelection::Exclude(names)
            }
        }),
        id_columns: columns.id_columns.iter().map(|s| s.value.clone()).collect(),
        split_columns: Vec::new(),
        span: name.span,
    };
    check_column_names(
        ctx,
        &def,
        &columns,
        f.as_ref().and_then(|f| f.get("target")),
    )?;
    Ok(def)
}

/// An input's column settings as written, with their positions.
#[derive(Default)]
struct ColumnSettings {
    missing_values: Option<Vec<Spanned<String>>>,
    categorical: Vec<Spanned<String>>,
    /// `(true, names)` for `include`, `(false, names)` for `exclude`.
    features: Option<(bool, Vec<Spanned<String>>)>,
    id_columns: Vec<Spanned<String>>,
}

fn decode_column_settings(ctx: &Ctx, f: &Fields, target: Option<&str>) -> DResult<ColumnSettings> {
    let list = |key: &str| -> DResult<Vec<Spanned<String>>> {
        let Some(n) = f.get(key) else {
            return Ok(Vec::new());
        };
        let items = ctx.string_list(n, key)?;
        for (i, a) in items.iter().enumerate() {
            if items[..i].iter().any(|b| b.value == a.value) {
                return Err(Diagnostic::at(
                    &ctx.source,
                    a.span,
                    format!("`{}` is listed twice in `{key}`", a.value),
                )
                .help("list each column once"));
            }
        }
        Ok(items)
    };
    let missing_values = f
        .get("missing_values")
        .map(|n| ctx.string_list(n, "missing_values"))
        .transpose()?;
    let categorical = list("categorical")?;
    let id_columns = list("id_columns")?;
    let features = match f.get("features") {
        None => None,
        Some(n) => {
            let ff = ctx.fields(n, "features", &["include", "exclude"])?;
            match (ff.get("include"), ff.get("exclude")) {
                (Some(_), Some(_)) => {
                    return Err(ctx
                        .err(n, "`features` takes `include` or `exclude`, not both")
                        .help("list the feature columns under `include`, or the others under `exclude`"));
                }
                (None, None) => {
                    return Err(ctx
                        .err(
                            n,
                            "`features` needs `include: [COLUMN...]` or `exclude: [COLUMN...]`",
                        )
                        .help("e.g. `features: {exclude: [user_id, timestamp]}`"));
                }
                (Some(i), None) => {
                    let names = ctx.string_list(i, "include")?;
                    if names.is_empty() {
                        return Err(ctx
                            .err(i, "`features.include` lists no column")
                            .help("name at least one feature column"));
                    }
                    Some((true, names))
                }
                (None, Some(e)) => Some((false, ctx.string_list(e, "exclude")?)),
            }
        }
    };
    if let Some((true, names)) = &features {
        for n in names {
            if target == Some(n.value.as_str()) {
                return Err(Diagnostic::at(
                    &ctx.source,
                    n.span,
                    format!("`{}` is the target; the target is never a feature", n.value),
                )
                .help("remove it from `features.include`"));
            }
            if id_columns.iter().any(|i| i.value == n.value) {
                return Err(Diagnostic::at(
                    &ctx.source,
                    n.span,
                    format!(
                        "`{}` is an ID column; ID columns are never features",
                        n.value
                    ),
                )
                .help("remove it from `features.include` or from `id_columns`"));
            }
        }
    }
    if let Some(t) = target
        && let Some(i) = id_columns.iter().find(|i| i.value == t)
    {
        return Err(Diagnostic::at(
            &ctx.source,
            i.span,
            format!("`{t}` is the target, so it cannot be an ID column"),
        )
        .help("remove it from `id_columns`"));
    }
    Ok(ColumnSettings {
        missing_values,
        categorical,
        features,
        id_columns,
    })
}

/// `label_size:` of an input or a channel: SageMaker's built-ins read one label column.
fn label_size(ctx: &Ctx, node: Option<&Node>) -> DResult<Option<Spanned<u64>>> {
    let Some(n) = node else { return Ok(None) };
    let ls = ctx.uint(n, "label_size")?;
    if ls.value > 1 {
        return Err(
            Diagnostic::at(&ctx.source, ls.span, "`label_size` must be 0 or 1")
                .help("SageMaker's built-ins read one label column"),
        );
    }
    Ok(Some(ls))
}

/// `format:` and `content_type:` of an input or a channel: the format they
/// name (either, or both when they agree) and what the content type adds.
fn decode_format_fields(
    ctx: &Ctx,
    f: &Fields,
) -> DResult<(Option<DataFormat>, Option<ContentType>)> {
    let format = match f.get("format") {
        Some(n) => {
            let s = ctx.string(n, "format")?;
            Some(DataFormat::parse(&s).ok_or_else(|| {
                ctx.err(n, format!("unknown data format `{}`", s.value))
                    .suggest(&s, DataFormat::NAMES.iter().copied())
                    .help(format!("use one of: {}", DataFormat::NAMES.join(", ")))
            })?)
        }
        None => None,
    };
    let Some(n) = f.get("content_type") else {
        return Ok((format, None));
    };
    let s = ctx.string(n, "content_type")?;
    let ct = ContentType::parse(&s.value).map_err(|why| {
        ctx.err(n, why)
            .suggest(&s, ContentType::NAMES.iter().copied())
            .help(format!("use one of: {}", ContentType::NAMES.join(", ")))
    })?;
    if let Some(named) = format
        && named != ct.format
    {
        return Err(ctx
            .err(
                n,
                format!(
                    "`content_type: {}` is {} data, but `format: {}` says otherwise",
                    s.value.trim(),
                    ct.format.name(),
                    named.name()
                ),
            )
            .help(format!(
                "give one of them: `format: {}` (`content_type: {}`), or `format: {}` (`content_type: {}`)",
                named.name(),
                named.content_type(),
                ct.format.name(),
                ct.format.content_type()
            )));
    }
    Ok((Some(ct.format), Some(ct)))
}

/// `label_size:` with what a content type says (`text/csv; label_size=1`):
/// both given, they must agree.
fn merged_label_size(ctx: &Ctx, f: &Fields, ct: Option<ContentType>) -> DResult<Option<u32>> {
    let given = label_size(ctx, f.get("label_size"))?;
    let from_type = ct.and_then(|c| c.label_size);
    match (given, from_type) {
        (Some(g), Some(t)) if g.value != u64::from(t) => Err(Diagnostic::at(
            &ctx.source,
            g.span,
            format!(
                "`label_size: {}` disagrees with the content type's `label_size={t}`",
                g.value
            ),
        )
        .help("give the label size once: in `content_type` or as `label_size`")),
        (Some(g), _) => Ok(Some(g.value as u32)),
        (None, t) => Ok(t),
    }
}

/// `target:` of an input or a channel, against the format and header it is read with.
fn check_target(
    ctx: &Ctx,
    t: &Spanned<String>,
    format: DataFormat,
    header: bool,
    header_given: bool,
    label_size_too: bool,
) -> DResult<()> {
    let at = |msg: &str| Diagnostic::at(&ctx.source, t.span, msg.to_string());
    match format {
        DataFormat::Libsvm => {
            return Err(at(
                "libsvm data has its label first on every line; it has no named target",
            )
            .help("remove `target`"));
        }
        DataFormat::RecordioProtobuf => {
            return Err(at("RecordIO-protobuf data has its label in each record's `label` map; it has no named target")
                .help("remove `target`; records with a label are read with it as the target"));
        }
        _ => {}
    }
    if label_size_too {
        return Err(at(
            "give `target` (a named column) or `label_size` (the first column), not both",
        )
        .help("`target: COLUMN` for data with a header, `label_size: 1` for headerless CSV"));
    }
    if format == DataFormat::Csv && !header {
        if !header_given {
            return Err(at(
                "`content_type: text/csv` is headerless CSV, as SageMaker reads it: there are no column names for `target`",
            )
            .help("add `header: true` for a file with a header line, or use `content_type: \"text/csv; label_size=1\"` for the label in the first column"));
        }
        return Err(at(
            "`target` names a column, but `header: false` means the columns have no names",
        )
        .help(
            "use `label_size: 1` for a headerless file with the label first, or `header: true`",
        ));
    }
    Ok(())
}

/// Remote paths are not read yet: say so at validation rather than fail at run time.
/// (Remove the `s3://` arm when S3 inputs are supported.)
/// A remote path that is not usable: a scheme other than `s3://`, a
/// malformed S3 URI, or S3 in a build without it.
fn remote_path(ctx: &Ctx, path: &Spanned<String>) -> Option<Diagnostic> {
    let scheme = path.value.split_once("://")?.0;
    let d = Diagnostic::at(
        &ctx.source,
        path.span,
        format!("`{}` is a remote path", path.value),
    );
    if scheme != "s3" {
        return Some(
            d.label(format!("`{scheme}://` paths are not supported"))
                .help("give an `s3://bucket/key` URI, or a local file or directory relative to the pipeline file"),
        );
    }
    match crate::store::remote::check_uri(&path.value) {
        Ok(()) => None,
        Err(why) => Some(
            Diagnostic::at(&ctx.source, path.span, format!("`{}` is not a usable S3 URI", path.value))
                .label(why)
                .help("write `s3://BUCKET/KEY` for one object or `s3://BUCKET/PREFIX/` for the objects under a prefix"),
        ),
    }
}

/// Checks that every column an input names exists, when its column names can
/// be read cheaply (a local CSV file's header, a Parquet file's schema).
fn check_column_names(
    ctx: &Ctx,
    def: &InputDef,
    columns: &ColumnSettings,
    target: Option<&Node>,
) -> DResult<()> {
    let named: Vec<&Spanned<String>> = columns
        .categorical
        .iter()
        .chain(&columns.id_columns)
        .chain(columns.features.iter().flat_map(|(_, n)| n))
        .collect();
    if (named.is_empty() && target.is_none()) || def.path.starts_with("s3://") {
        return Ok(());
    }
    let opts = crate::exec::builtin::read_options_of(def);
    // A header that cannot be read here is reported when a step reads the data.
    let Ok(Some(names)) = builtins::data::column_names(&def.resolved, &opts) else {
        return Ok(());
    };
    let unknown = |span: Span, what: &str, name: &str| {
        Diagnostic::at(
            &ctx.source,
            span,
            format!("{what} `{name}` is not a column of `{}`", def.path),
        )
        .suggest(name, names.iter().map(String::as_str))
        .note(format!("the columns are: {}", names.join(", ")))
    };
    if let (Some(n), Some(t)) = (target, &def.target)
        && !names.contains(t)
    {
        return Err(unknown(n.span, "the target", t));
    }
    for n in named {
        if !names.contains(&n.value) {
            return Err(unknown(n.span, "column", &n.value));
        }
    }
    Ok(())
}

fn guess_format(path: &str) -> DataFormat {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".parquet") || lower.ends_with(".pq") {
        DataFormat::Parquet
    } else if lower.ends_with(".libsvm") || lower.ends_with(".svm") {
        DataFormat::Libsvm
    } else if lower.ends_with(".rec") || lower.ends_with(".recordio") {
        DataFormat::RecordioProtobuf
    } else if lower.ends_with(".jsonl") || lower.ends_with(".jsonlines") {
        DataFormat::Jsonlines
    } else {
        DataFormat::Csv
    }
}

/// The step settings `defaults:` may set and every step may override.
#[derive(Debug, Clone)]
struct StepCommon {
    executor: Executor,
    retry: Retry,
    timeout: Option<Duration>,
    stop_timeout: Option<Duration>,
    cache: CachePolicy,
    resources: Resources,
    network: Network,
    batch: BatchSettings,
}

impl StepCommon {
    fn builtin_defaults() -> Self {
        StepCommon {
            executor: Executor::Local,
            retry: Retry::default(),
            timeout: None,
            stop_timeout: None,
            cache: CachePolicy::On,
            resources: Resources {
                cpus: None,
                memory: None,
                nodes: 1,
            },
            network: Network::Bridge,
            batch: BatchSettings::default(),
        }
    }
}

const DEFAULT_KEYS: &[&str] = &[
    "executor",
    "retry",
    "timeout",
    "stop_timeout",
    "cache",
    "resources",
    "network",
    "batch",
];
const COMMON_STEP_KEYS: &[&str] = &[
    "kind",
    "after",
    "when",
    "executor",
    "retry",
    "timeout",
    "stop_timeout",
    "cache",
    "resources",
    "network",
    "batch",
    "description",
    "env",
];

fn decode_common(
    ctx: &Ctx,
    node: &Node,
    base: &StepCommon,
    what: &str,
    known: &'static [&'static str],
) -> DResult<StepCommon> {
    let f = ctx.fields(node, what, known)?;
    common_from_fields(ctx, &f, base)
}

fn common_from_fields(ctx: &Ctx, f: &Fields, base: &StepCommon) -> DResult<StepCommon> {
    let mut c = base.clone();
    if let Some(n) = f.get("executor") {
        let s = ctx.string(n, "executor")?;
        c.executor = Executor::parse(&s).ok_or_else(|| {
            ctx.err(n, format!("unknown executor `{}`", s.value))
                .suggest(&s, Executor::NAMES.iter().copied())
                .help(format!("use one of: {}", Executor::NAMES.join(", ")))
        })?;
    }
    if let Some(n) = f.get("retry") {
        c.retry = decode_retry(ctx, n, &base.retry)?;
    }
    if let Some(n) = f.get("timeout") {
        c.timeout = Some(decode_duration(ctx, n, "timeout")?);
    }
    if let Some(n) = f.get("stop_timeout") {
        c.stop_timeout = Some(decode_duration(ctx, n, "stop_timeout")?);
    }
    if let Some(n) = f.get("cache") {
        c.cache = match &n.kind {
            NodeKind::Map(_) => {
                let cf = ctx.fields(n, "cache", &["expire_after"])?;
                CachePolicy::ExpireAfter(decode_duration(
                    ctx,
                    cf.req(ctx, "expire_after")?,
                    "expire_after",
                )?)
            }
            _ => {
                if ctx.bool(n, "cache")?.value {
                    CachePolicy::On
                } else {
                    CachePolicy::Off
                }
            }
        };
    }
    if let Some(n) = f.get("resources") {
        c.resources = decode_resources(ctx, n, &base.resources)?;
    }
    if let Some(n) = f.get("batch") {
        c.batch = super::batch::decode(ctx, n, &base.batch)?;
    }
    if let Some(n) = f.get("network") {
        let s = ctx.string(n, "network")?;
        c.network = match s.as_str() {
            "bridge" => Network::Bridge,
            "none" => Network::None,
            other => {
                return Err(ctx
                    .err(n, format!("unknown network `{other}`"))
                    .suggest(other, Network::NAMES.iter().copied())
                    .help("use `none` to cut the step off every network, or `bridge`"));
            }
        };
    }
    Ok(c)
}

pub(super) fn decode_duration(ctx: &Ctx, node: &Node, field: &str) -> DResult<Duration> {
    let s = ctx.scalar_string(node, field)?;
    duration::parse(&s).ok_or_else(|| {
        ctx.err(node, format!("`{}` is not a duration", s.value))
            .help("write a number with a unit: 500ms, 30s, 10m, 2h, 7d")
    })
}

fn decode_retry(ctx: &Ctx, node: &Node, base: &Retry) -> DResult<Retry> {
    let f = ctx.fields(node, "retry", &["attempts", "backoff", "on"])?;
    let mut r = base.clone();
    if let Some(n) = f.get("attempts") {
        let a = ctx.int_in(
            n,
            "attempts",
            1,
            100,
            "`attempts` counts every try, the first included",
        )?;
        r.attempts = a.value as u32;
    }
    if let Some(n) = f.get("backoff") {
        r.backoff = decode_duration(ctx, n, "backoff")?;
    }
    if let Some(n) = f.get("on") {
        r.on = ctx
            .string_list(n, "on")?
            .into_iter()
            .map(|s| {
                RetryOn::parse(&s).ok_or_else(|| {
                    Diagnostic::at(
                        &ctx.source,
                        s.span,
                        format!("`{}` is not a kind of failure to retry on", s.value),
                    )
                    .suggest(&s, RetryOn::NAMES.iter().copied())
                    .help(format!("use some of: {}", RetryOn::NAMES.join(", ")))
                })
            })
            .collect::<DResult<_>>()?;
    }
    Ok(r)
}

fn decode_resources(ctx: &Ctx, node: &Node, base: &Resources) -> DResult<Resources> {
    let f = ctx.fields(
        node,
        "resources",
        &["cpus", "memory", "nodes", "instance_type"],
    )?;
    let mut r = base.clone();
    if let Some(n) = f.get("cpus") {
        let c = ctx.float(n, "cpus")?;
        if c.value <= 0.0 {
            return Err(ctx.err(n, "`cpus` must be more than 0"));
        }
        r.cpus = Some(c.value);
    }
    if let Some(n) = f.get("memory") {
        let s = ctx.scalar_string(n, "memory")?;
        r.memory = Some(parse_bytes(&s).ok_or_else(|| {
            ctx.err(n, format!("`{}` is not an amount of memory", s.value))
                .help("write e.g. 512MiB, 4GiB or 2G")
        })?);
    }
    if let Some(n) = f.get("nodes") {
        let v = ctx.uint(n, "nodes")?;
        if v.value == 0 || v.value > 256 {
            return Err(ctx.err(n, "`nodes` must be between 1 and 256"));
        }
        r.nodes = v.value as u32;
    }
    Ok(r)
}

/// Parses `4GiB`, `512MiB`, `2G`, `100M`, `1024` (bytes).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..split].parse().ok()?;
    let mult: f64 = match s[split..].trim() {
        "" | "B" | "b" => 1.0,
        "K" | "KB" | "k" | "kb" => 1e3,
        "Ki" | "KiB" => 1024.0,
        "M" | "MB" | "m" | "mb" => 1e6,
        "Mi" | "MiB" => 1024.0 * 1024.0,
        "G" | "GB" | "g" | "gb" => 1e9,
        "Gi" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" => 1e12,
        "Ti" | "TiB" => 1024f64.powi(4),
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 1.0).then_some(v as u64)
}

fn decode_step(
    ctx: &Ctx,
    name: Spanned<String>,
    node: &Node,
    defaults: &StepCommon,
) -> DResult<Step> {
    let what = format!("step `{}`", name.value);
    let kind_node = match &node.kind {
        NodeKind::Map(m) => m
            .iter()
            .find(|(k, _)| k.as_scalar() == Some("kind"))
            .map(|(_, v)| v),
        _ => {
            return Err(ctx
                .err(
                    node,
                    format!("{what} must be a mapping, found {}", node.describe()),
                )
                .help("give the step at least `kind:`"));
        }
    };
    let kind_node = kind_node.ok_or_else(|| {
        Diagnostic::at(&ctx.source, name.span, format!("{what} has no `kind`")).help(format!(
            "add `kind:` with one of: {}",
            StepKind::NAMES.join(", ")
        ))
    })?;
    let kind_name = ctx.string(kind_node, "kind")?;
    let kind_keys: &[&str] = match kind_name.as_str() {
        "split" => &["input", "sources", "strategy", "fractions", "seed"],
        "train" => TRAIN_STEP_KEYS,
        "tune" => TRAIN_KEYS,
        "automl" => &[],
        "evaluate" => &[
            "method",
            "model",
            "data",
            "metrics",
            "folds",
            "stratify",
            "group_column",
            "time_column",
            "algorithm",
            "hyperparameters",
            "variants",
            "seed",
        ],
        "register" => &["model", "group", "metrics", "approval", "tags"],
        "transform" => &["model", "data"],
        "command" => &[
            "run",
            "inputs",
            "outputs",
            "image",
            "source_dir",
            "entry_point",
            "hyperparameters",
        ],
        other => {
            return Err(ctx
                .err(kind_node, format!("unknown step kind `{other}`"))
                .label("not a step kind")
                .suggest(other, StepKind::NAMES.iter().copied())
                .help(format!("use one of: {}", StepKind::NAMES.join(", "))));
        }
    };
    let own: &[&str] = match kind_name.as_str() {
        "tune" => super::tune::KEYS,
        "automl" => super::automl::KEYS,
        _ => &[],
    };
    let known: Vec<&str> = COMMON_STEP_KEYS
        .iter()
        .chain(kind_keys)
        .chain(own)
        .copied()
        .collect();
    let f = ctx.fields(node, &what, &known)?;
    let common = common_from_fields(ctx, &f, defaults)?;
    let kind = match kind_name.as_str() {
        "split" => StepKind::Split(decode_split(ctx, &f)?),
        "train" => StepKind::Train(decode_train(ctx, &f)?),
        "evaluate" => StepKind::Evaluate(decode_evaluate(ctx, &f)?),
        "register" => StepKind::Register(decode_register(ctx, &f)?),
        "transform" => StepKind::Transform(TransformStep {
            model: req_ref(ctx, &f, "model")?,
            data: req_ref(ctx, &f, "data")?,
        }),
        "tune" => {
            let train = decode_train(ctx, &f)?;
            // Every trial runs where the tune step says, as a train step would.
            check_placement(ctx, &f, &StepKind::Train(train.clone()), &common)?;
            StepKind::Tune(Box::new(super::tune::decode(ctx, &f, train)?))
        }
        "automl" => {
            let ch = decode_train_channels(ctx, f.req(ctx, "channels")?)?;
            check_input_modes(ctx, true, &ch.refs, None, &ch.modes)?;
            let train = TrainStep {
                algorithm: None,
                image: None,
                run: Vec::new(),
                channels: ch.refs,
                distribution: ch.distribution,
                channel_formats: ch.formats,
                code: Default::default(),
                metric_definitions: Vec::new(),
                hyperparameters: BTreeMap::new(),
                input_mode: InputMode::File,
                channel_modes: ch.modes.into_iter().map(|(k, m)| (k, m.value)).collect(),
                onnx: false,
            };
            let t = super::automl::decode(ctx, &f, train)?;
            check_placement(ctx, &f, &StepKind::Train(t.train.clone()), &common)?;
            StepKind::Automl(Box::new(t))
        }
        _ => StepKind::Command(decode_command(ctx, &f)?),
    };
    if kind.search().is_none() {
        check_placement(ctx, &f, &kind, &common)?;
    }
    let after = match f.get("after") {
        Some(n) => ctx.string_list(n, "after")?,
        None => vec![],
    };
    let (when, when_expr) = match f.get("when") {
        Some(n) => {
            let s = ctx.scalar_string(n, "when")?;
            let e = expr::parse(&s).map_err(|e| {
                let col_shift = if matches!(n.kind, NodeKind::Scalar { quoted: true, .. }) {
                    1
                } else {
                    0
                };
                Diagnostic::at(
                    &ctx.source,
                    Span::new(n.span.line, n.span.col + col_shift + e.offset as u32, 1),
                    format!("cannot read the condition `{}`", s.value),
                )
                .label(e.message)
                .help(e.hint.unwrap_or_else(|| {
                    "write e.g. `evaluate.metrics.accuracy >= 0.9`; combine with and, or, not"
                        .into()
                }))
            })?;
            (Some(s), Some(e))
        }
        None => (None, None),
    };
    let description = f
        .get("description")
        .map(|n| ctx.string(n, "description"))
        .transpose()?
        .map(|s| s.value);
    let step = Step {
        name,
        kind,
        after,
        when,
        when_expr,
        executor: common.executor,
        retry: common.retry,
        timeout: common.timeout,
        stop_timeout: common.stop_timeout,
        cache: common.cache,
        resources: common.resources,
        network: common.network,
        batch: common.batch,
        description,
        env: decode_env(ctx, &f)?,
        trial: None,
    };
    if let Some(e) = super::tune::check(ctx, &step, node).into_iter().next() {
        return Err(e);
    }
    Ok(step)
}

/// A train step's keys; `onnx` last, as a tune step has the others
/// ([`TRAIN_KEYS`], with [`super::tune::KEYS`]): its model is its best trial's.
const TRAIN_STEP_KEYS: &[&str] = &[
    "algorithm",
    "image",
    "run",
    "program",
    "source_dir",
    "entry_point",
    "metric_definitions",
    "channels",
    "hyperparameters",
    "input_mode",
    "onnx",
];

/// The train part of a tune step's keys: a train step's but `onnx`.
const TRAIN_KEYS: &[&str] = match TRAIN_STEP_KEYS.split_last() {
    Some((_, rest)) => rest,
    None => &[],
};

/// What a step asks of where it runs, checked against its executor.
fn check_placement(ctx: &Ctx, f: &Fields, kind: &StepKind, common: &StepCommon) -> DResult<()> {
    let at = |key: &str| f.get(key).unwrap_or(f.node);
    if common.network == Network::None && common.executor == Executor::Local {
        return Err(ctx
            .err(
                at("network"),
                "`network: none` needs a container: the local executor cannot cut a process off the network",
            )
            .help("run the step with `executor: docker` (or `--executor docker`), or remove `network: none`"));
    }
    if common.resources.nodes > 1 && !matches!(kind, StepKind::Train(_)) {
        return Err(ctx
            .err(
                at("resources"),
                format!(
                    "`nodes: {}` is for train steps; {} runs on one node",
                    common.resources.nodes,
                    f.what()
                ),
            )
            .help("remove `nodes` from this step's resources"));
    }
    let own_code_without_image = match kind {
        StepKind::Command(c) => c.image.is_none(),
        StepKind::Train(t) => t.algorithm.is_none() && t.image.is_none(),
        _ => false,
    };
    let container = match common.executor {
        Executor::Docker => Some("docker"),
        Executor::Batch => Some("batch"),
        _ => None,
    };
    if let Some(executor) = container
        && own_code_without_image
    {
        return Err(ctx
            .err(
                f.get("run").or(f.get("entry_point")).unwrap_or(f.node),
                format!(
                    "{} runs your own command on the {executor} executor, which needs the image to run it in",
                    f.what()
                ),
            )
            .help("add `image: NAME` (built with `docker build`), or run the step with `executor: local`"));
    }
    if common.executor == Executor::Batch
        && let StepKind::Train(t) = kind
        && t.channels
            .keys()
            .any(|c| t.input_mode_of(c) == InputMode::Pipe)
    {
        return Err(ctx
            .err(
                at("input_mode"),
                "pipe-mode channels do not run on the batch executor yet",
            )
            .help("use `input_mode: file`, or run the step with `executor: docker`"));
    }
    Ok(())
}

/// A reference where one is required.
fn decode_ref(ctx: &Ctx, node: &Node, field: &str) -> DResult<Ref> {
    let s = ctx.string(node, field)?;
    if s.trim().starts_with("registry://")
        && let Err(e) = crate::registry::RegistryRef::parse(s.trim())
    {
        return Err(ctx.err(node, e.to_string()).help(
            "write registry://GROUP@approved, registry://GROUP@latest or registry://GROUP@3",
        ));
    }
    Ref::parse(&s, node.span).ok_or_else(|| {
        ctx.err(node, format!("`{}` is not a reference", s.value))
            .label("expected inputs.NAME, STEP.OUTPUT or registry://GROUP@approved")
            .help("declare files under `inputs:` and refer to them as `inputs.NAME`")
    })
}

fn req_ref(ctx: &Ctx, f: &Fields, key: &str) -> DResult<Ref> {
    decode_ref(ctx, f.req(ctx, key)?, key)
}

fn decode_fractions(ctx: &Ctx, node: &Node) -> DResult<Vec<(String, f64)>> {
    const SETS: &[&str] = &["train", "validation", "test"];
    let mut out = Vec::new();
    for (k, v) in ctx.entries(node, "fractions")? {
        if !SETS.contains(&k.as_str()) {
            return Err(Diagnostic::at(
                &ctx.source,
                k.span,
                format!("`{}` is not a split output", k.value),
            )
            .suggest(&k, SETS.iter().copied())
            .help("name the outputs train, validation and test"));
        }
        let x = ctx.float(v, "fraction")?;
        if !(x.value >= 0.0 && x.value <= 1.0) {
            return Err(ctx.err(
                v,
                format!("a fraction must be between 0 and 1, found {}", x.value),
            ));
        }
        out.push((k.value, x.value));
    }
    if out.is_empty() {
        return Err(ctx
            .err(node, "`fractions` is empty")
            .help("write e.g. `{train: 0.8, test: 0.2}`"));
    }
    Ok(out)
}

fn check_sum(ctx: &Ctx, node: &Node, fr: &[(String, f64)], exact: bool) -> DResult<()> {
    let sum: f64 = fr.iter().map(|(_, x)| x).sum();
    if (exact && (sum - 1.0).abs() > 1e-6) || (!exact && sum > 1.0 + 1e-6) {
        return Err(ctx
            .err(
                node,
                format!("the fractions sum to {}, not 1", (sum * 1e6).round() / 1e6),
            )
            .help("make them add up to 1, e.g. {train: 0.7, validation: 0.15, test: 0.15}"));
    }
    Ok(())
}

fn decode_split(ctx: &Ctx, f: &Fields) -> DResult<SplitStep> {
    let input = f
        .get("input")
        .map(|n| decode_ref(ctx, n, "input"))
        .transpose()?;
    let mut sources = Vec::new();
    if let Some(n) = f.get("sources") {
        for s in ctx.seq(n, "sources")? {
            let sf = ctx.fields(s, "a split source", &["input", "fractions"])?;
            let fr_node = sf.req(ctx, "fractions")?;
            let fractions = decode_fractions(ctx, fr_node)?;
            check_sum(ctx, fr_node, &fractions, false)?;
            sources.push(SplitSource {
                input: req_ref(ctx, &sf, "input")?,
                fractions,
            });
        }
    }
    match (&input, sources.is_empty()) {
        (Some(_), false) => {
            return Err(ctx.err(
                f.key("sources").unwrap_or(f.node),
                "a split takes `input` or `sources`, not both",
            ));
        }
        (None, true) => {
            return Err(ctx
                .err(f.node, format!("{} needs `input` (or `sources`)", f.what()))
                .help("add `input: inputs.NAME`"));
        }
        _ => {}
    }
    let fractions = match (f.get("fractions"), sources.is_empty()) {
        (Some(n), true) => {
            let fr = decode_fractions(ctx, n)?;
            check_sum(ctx, n, &fr, true)?;
            fr
        }
        (None, true) => {
            return Err(ctx
                .err(f.node, format!("{} needs `fractions`", f.what()))
                .help("add e.g. `fractions: {train: 0.8, test: 0.2}`"));
        }
        (Some(n), false) => {
            return Err(ctx
                .err(n, "with `sources`, fractions are given per source")
                .help("move `fractions` into each source"));
        }
        (None, false) => {
            // The outputs are every set some source contributes to.
            let mut names: Vec<(String, f64)> = Vec::new();
            for s in &sources {
                for (k, x) in &s.fractions {
                    match names.iter_mut().find(|(n, _)| n == k) {
                        Some(e) => e.1 += x,
                        None => names.push((k.clone(), *x)),
                    }
                }
            }
            names
        }
    };
    let strategy = match f.get("strategy") {
        None => SplitStrategy::Shuffle { stratify: None },
        Some(n) => decode_strategy(ctx, n)?,
    };
    let seed = f
        .get("seed")
        .map(|n| ctx.uint(n, "seed"))
        .transpose()?
        .map_or(0, |s| s.value);
    Ok(SplitStep {
        input,
        sources,
        strategy,
        fractions,
        seed,
    })
}

fn decode_strategy(ctx: &Ctx, node: &Node) -> DResult<SplitStrategy> {
    const TYPES: &[&str] = &["shuffle", "time", "group"];
    if let NodeKind::Scalar { text, .. } = &node.kind {
        return match text.as_str() {
            "shuffle" => Ok(SplitStrategy::Shuffle { stratify: None }),
            "time" | "group" => Err(ctx
                .err(node, format!("a `{text}` split needs a column"))
                .help(format!("write `strategy: {{type: {text}, column: NAME}}`"))),
            other => Err(ctx
                .err(node, format!("unknown split strategy `{other}`"))
                .suggest(other, TYPES.iter().copied())),
        };
    }
    let f = ctx.fields(
        node,
        "strategy",
        &["type", "stratify", "column", "cutoffs", "gap"],
    )?;
    let ty_node = f.req(ctx, "type")?;
    let ty = ctx.string(ty_node, "type")?;
    let column = || -> DResult<String> { Ok(ctx.string(f.req(ctx, "column")?, "column")?.value) };
    let only = |allowed: &[&str]| -> DResult<()> {
        for k in ["stratify", "column", "cutoffs", "gap"] {
            if !allowed.contains(&k)
                && let Some(key) = f.key(k)
            {
                return Err(ctx.err(
                    key,
                    format!("`{k}` does not apply to a `{}` split", ty.value),
                ));
            }
        }
        Ok(())
    };
    match ty.as_str() {
        "shuffle" => {
            only(&["stratify"])?;
            Ok(SplitStrategy::Shuffle {
                stratify: f
                    .get("stratify")
                    .map(|n| ctx.string(n, "stratify"))
                    .transpose()?
                    .map(|s| s.value),
            })
        }
        "time" => {
            only(&["column", "cutoffs", "gap"])?;
            let cutoffs = match f.get("cutoffs") {
                Some(n) => ctx
                    .string_list(n, "cutoffs")?
                    .into_iter()
                    .map(|s| s.value)
                    .collect(),
                None => vec![],
            };
            let gap = f
                .get("gap")
                .map(|n| decode_duration(ctx, n, "gap"))
                .transpose()?;
            Ok(SplitStrategy::Time {
                column: column()?,
                cutoffs,
                gap,
            })
        }
        "group" => {
            only(&["column"])?;
            Ok(SplitStrategy::Group { column: column()? })
        }
        other => Err(ctx
            .err(ty_node, format!("unknown split strategy `{other}`"))
            .suggest(other, TYPES.iter().copied())
            .help("use one of: shuffle, time, group")),
    }
}

fn decode_hyperparameters(ctx: &Ctx, f: &Fields) -> DResult<BTreeMap<String, String>> {
    let mut hp = BTreeMap::new();
    if let Some(n) = f.get("hyperparameters") {
        for (k, v) in ctx.entries(n, "hyperparameters")? {
            hp.insert(k.value.clone(), ctx.scalar_string(v, &k.value)?.value);
        }
    }
    Ok(hp)
}

fn decode_channels(ctx: &Ctx, node: &Node, field: &str) -> DResult<BTreeMap<String, Ref>> {
    let mut out = BTreeMap::new();
    for (k, v) in ctx.entries(node, field)? {
        check_name(ctx, &k, "channel")?;
        out.insert(k.value, decode_ref(ctx, v, field)?);
    }
    Ok(out)
}

fn decode_run(ctx: &Ctx, node: &Node) -> DResult<Vec<String>> {
    match &node.kind {
        NodeKind::Scalar { text, .. } => Ok(vec!["sh".into(), "-c".into(), text.clone()]),
        _ => {
            let items = ctx.seq(node, "run")?;
            if items.is_empty() {
                return Err(ctx
                    .err(node, "`run` is empty")
                    .help("give the command and its arguments, e.g. [python, train.py]"));
            }
            items
                .iter()
                .map(|n| ctx.scalar_string(n, "run").map(|s| s.value))
                .collect()
        }
    }
}

fn decode_train(ctx: &Ctx, f: &Fields) -> DResult<TrainStep> {
    let algorithm = f
        .get("algorithm")
        .map(|n| ctx.string(n, "algorithm"))
        .transpose()?;
    let image = f
        .get("image")
        .map(|n| ctx.string(n, "image"))
        .transpose()?
        .map(|s| s.value);
    let run = f
        .get("run")
        .map(|n| decode_run(ctx, n))
        .transpose()?
        .unwrap_or_default();
    if algorithm.is_none()
        && image.is_none()
        && run.is_empty()
        && f.get("entry_point").is_none()
        && f.get("program").is_none()
    {
        return Err(ctx
            .err(
                f.node,
                format!(
                    "{} needs `algorithm` (a built-in) or `image`/`run` (your own code)",
                    f.what()
                ),
            )
            .help(format!(
                "add `algorithm:` with one of: {}",
                crate::exec::builtin::ALGORITHMS.join(", ")
            )));
    }
    if let (Some(a), true) = (&algorithm, image.is_some() || !run.is_empty()) {
        return Err(Diagnostic::at(
            &ctx.source,
            a.span,
            "`algorithm` runs a built-in; it cannot be combined with `image` or `run`",
        ));
    }
    if let Some(a) = &algorithm
        && !crate::exec::builtin::ALGORITHMS.contains(&a.as_str())
    {
        return Err(Diagnostic::at(
            &ctx.source,
            a.span,
            format!("unknown algorithm `{}`", a.value),
        )
        .suggest(&a.value, crate::exec::builtin::ALGORITHMS.iter().copied())
        .help(format!(
            "use one of: {}",
            crate::exec::builtin::ALGORITHMS.join(", ")
        )));
    }
    let TrainChannels {
        refs: channels,
        distribution,
        formats: channel_formats,
        modes,
    } = match f.get("channels") {
        Some(n) => decode_train_channels(ctx, n)?,
        None => TrainChannels::default(),
    };
    let input_mode = f
        .get("input_mode")
        .map(|n| decode_input_mode(ctx, n))
        .transpose()?;
    check_input_modes(
        ctx,
        algorithm.is_some(),
        &channels,
        input_mode.as_ref(),
        &modes,
    )?;
    let code = super::code::decode(ctx, f)?;
    if let (Some(a), false) = (&algorithm, code.is_empty()) {
        return Err(Diagnostic::at(
            &ctx.source,
            a.span,
            "`algorithm` runs a built-in; `source_dir` and `entry_point` are for your own code",
        )
        .help("remove `algorithm` to run your script, or remove `source_dir`/`entry_point`"));
    }
    if algorithm.is_some() && !channels.contains_key("train") {
        return Err(ctx
            .err(
                f.get("channels").unwrap_or(f.node),
                format!("{} needs a `train` channel", f.what()),
            )
            .help("add `channels: {train: split.train}`"));
    }
    let hyperparameters = decode_hyperparameters(ctx, f)?;
    if let Some(a) = &algorithm {
        crate::exec::builtin::check_hyperparameters(&a.value, &hyperparameters)
            .map_err(|e| hyperparameter_error(ctx, f, e))?;
    }
    let onnx = match f.get("onnx") {
        None => false,
        Some(n) => {
            let on = ctx.bool(n, "onnx")?;
            let exported = algorithm
                .as_ref()
                .is_some_and(|a| builtins::onnx::ALGORITHMS.contains(&a.value.as_str()));
            if on.value && !exported {
                return Err(ctx
                    .err(n, "`onnx: true` writes a built-in's model as ONNX; this step has no such model")
                    .help(format!(
                        "the built-ins written as ONNX are {}; your own code can write its model.onnx into /opt/ml/model",
                        builtins::onnx::ALGORITHMS.join(", ")
                    )));
            }
            on.value
        }
    };
    Ok(TrainStep {
        algorithm: algorithm.map(|a| a.value),
        image,
        run,
        channels,
        distribution,
        channel_formats,
        code,
        metric_definitions: super::code::decode_metric_definitions(ctx, f)?,
        hyperparameters,
        input_mode: input_mode.map_or(InputMode::File, |m| m.value),
        channel_modes: modes.into_iter().map(|(k, m)| (k, m.value)).collect(),
        onnx,
    })
}

/// `input_mode: file | pipe`, of a train step or one of its channels.
fn decode_input_mode(ctx: &Ctx, node: &Node) -> DResult<Spanned<InputMode>> {
    let s = ctx.string(node, "input_mode")?;
    let mode = InputMode::parse(&s).ok_or_else(|| {
        ctx.err(node, format!("unknown input mode `{}`", s.value))
            .label("not an input mode")
            .suggest(&s, InputMode::NAMES.iter().copied())
            .help("use `file` (the channel's files under input/data/CHANNEL/) or `pipe` (streamed through the named pipes input/data/CHANNEL_0, CHANNEL_1, ...)")
    })?;
    Ok(Spanned::new(mode, s.span))
}

/// What pipe-mode channels cannot be: a built-in's initial `model` (a
/// directory of files), or named so that their pipes (`NAME_0`, `NAME_1`...)
/// would be another channel's name.
fn check_input_modes(
    ctx: &Ctx,
    builtin: bool,
    channels: &BTreeMap<String, Ref>,
    step_mode: Option<&Spanned<InputMode>>,
    modes: &BTreeMap<String, Spanned<InputMode>>,
) -> DResult<()> {
    // The mode of each channel and where it was said.
    let mode_of = |name: &str| -> Option<Span> {
        match modes.get(name) {
            Some(m) => (m.value == InputMode::Pipe).then_some(m.span),
            None => step_mode
                .filter(|m| m.value == InputMode::Pipe)
                .map(|m| m.span),
        }
    };
    if builtin
        && channels.contains_key("model")
        && let Some(span) = mode_of("model")
    {
        return Err(Diagnostic::at(
            &ctx.source,
            span,
            "the `model` channel of a built-in (the model to continue training) is read from its files; it cannot be a pipe",
        )
        .help("give the channel `input_mode: file`: `model: {data: REF, input_mode: file}`"));
    }
    for name in channels.keys() {
        let Some(span) = mode_of(name) else { continue };
        let clash = channels.keys().find(|other| {
            other
                .strip_prefix(name.as_str())
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        if let Some(other) = clash {
            return Err(Diagnostic::at(
                &ctx.source,
                span,
                format!(
                    "channel `{name}` is a pipe, whose epochs are the named pipes `{name}_0`, `{name}_1`, ...: they would take the place of channel `{other}`"
                ),
            )
            .help(format!("rename channel `{other}`, or give channel `{name}` `input_mode: file`")));
        }
    }
    Ok(())
}

/// A train step's channels: `NAME: REF`, or `NAME: {data: REF, distribution: D,
/// target: COL, header: B, label_size: N, format: F, input_mode: M}`.
#[derive(Default)]
struct TrainChannels {
    refs: BTreeMap<String, Ref>,
    distribution: BTreeMap<String, Distribution>,
    formats: BTreeMap<String, ChannelFormat>,
    modes: BTreeMap<String, Spanned<InputMode>>,
}

fn decode_train_channels(ctx: &Ctx, node: &Node) -> DResult<TrainChannels> {
    let mut refs = BTreeMap::new();
    let mut dist = BTreeMap::new();
    let mut formats = BTreeMap::new();
    let mut modes = BTreeMap::new();
    for (k, v) in ctx.entries(node, "channels")? {
        check_name(ctx, &k, "channel")?;
        if let NodeKind::Map(_) = &v.kind {
            let cf = ctx.fields(
                v,
                "channel",
                &[
                    "data",
                    "distribution",
                    "target",
                    "header",
                    "label_size",
                    "format",
                    "content_type",
                    "input_mode",
                ],
            )?;
            refs.insert(
                k.value.clone(),
                decode_ref(ctx, cf.req(ctx, "data")?, "data")?,
            );
            if let Some(d) = cf.get("distribution") {
                let s = ctx.string(d, "distribution")?;
                let parsed = Distribution::parse(&s).ok_or_else(|| {
                    ctx.err(d, format!("unknown distribution `{}`", s.value))
                        .suggest(&s, Distribution::NAMES.iter().copied())
                        .help("use `fully_replicated` (every node sees every file) or `sharded_by_key` (each node its share)")
                })?;
                dist.insert(k.value.clone(), parsed);
            }
            if let Some(m) = cf.get("input_mode") {
                modes.insert(k.value.clone(), decode_input_mode(ctx, m)?);
            }
            let format = decode_channel_format(ctx, &cf)?;
            if format != ChannelFormat::default() {
                formats.insert(k.value, format);
            }
        } else {
            refs.insert(k.value, decode_ref(ctx, v, "channels")?);
        }
    }
    Ok(TrainChannels {
        refs,
        distribution: dist,
        formats,
        modes,
    })
}

/// How a channel says its data is read (`target`, `header`, `label_size`,
/// `format` or `content_type`).
fn decode_channel_format(ctx: &Ctx, cf: &Fields) -> DResult<ChannelFormat> {
    let (format, content_type) = decode_format_fields(ctx, cf)?;
    let header_given = cf
        .get("header")
        .map(|n| ctx.bool(n, "header"))
        .transpose()?
        .map(|b| b.value);
    let header = header_given.or(content_type.and_then(|c| c.header));
    let target = cf
        .get("target")
        .map(|n| ctx.string(n, "target"))
        .transpose()?;
    let label_size = merged_label_size(ctx, cf, content_type)?;
    if let Some(t) = &target {
        // What the channel does not say comes from its input, so only what
        // it says is checked here (a CSV with a header unless it says not).
        check_target(
            ctx,
            t,
            format.unwrap_or(DataFormat::Csv),
            header.unwrap_or(true),
            header_given.is_some(),
            label_size.is_some(),
        )?;
    }
    Ok(ChannelFormat {
        format,
        header,
        target: target.map(|t| t.value),
        label_size,
    })
}

/// Points a built-in's hyperparameter complaint at the offending key or value.
fn hyperparameter_error(ctx: &Ctx, f: &Fields, e: builtins::BuiltinError) -> Diagnostic {
    let (span, message, hint) = match &e {
        builtins::BuiltinError::Hyperparameter {
            name, value, hint, ..
        } => {
            let hp = f.get("hyperparameters");
            let entry = hp.and_then(|n| match &n.kind {
                NodeKind::Map(m) => m.iter().find(|(k, _)| k.as_scalar() == Some(name)),
                _ => None,
            });
            let span = match (entry, value) {
                (Some((_, v)), Some(_)) => v.span,
                (Some((k, _)), None) => k.span,
                (None, _) => hp.map_or(f.node.span, |n| n.span),
            };
            let msg = e.to_string();
            let msg = msg.split("\n  help:").next().unwrap_or(&msg).to_string();
            (span, msg, hint.clone())
        }
        other => (f.node.span, other.to_string(), None),
    };
    let d = Diagnostic::at(&ctx.source, span, message);
    match hint {
        Some(h) => d.help(h),
        None => d,
    }
}

fn decode_evaluate(ctx: &Ctx, f: &Fields) -> DResult<EvaluateStep> {
    let method_node = f.get("method");
    let method = match method_node {
        None => EvalMethod::Holdout,
        Some(n) => {
            let s = ctx.string(n, "method")?;
            match s.as_str() {
                "holdout" => EvalMethod::Holdout,
                "kfold" => EvalMethod::Kfold,
                "ab" => EvalMethod::Ab,
                other => {
                    return Err(ctx
                        .err(n, format!("unknown evaluation method `{other}`"))
                        .suggest(other, ["holdout", "kfold", "ab"])
                        .help("use one of: holdout, kfold, ab"));
                }
            }
        }
    };
    let model = f
        .get("model")
        .map(|n| decode_ref(ctx, n, "model"))
        .transpose()?;
    let data = req_ref(ctx, f, "data")?;
    let metrics = match f.get("metrics") {
        Some(n) => {
            let names = ctx.string_list(n, "metrics")?;
            for m in &names {
                if builtins::metrics::info(m).is_none() {
                    return Err(Diagnostic::at(
                        &ctx.source,
                        m.span,
                        format!("`{}` is not a metric", m.value),
                    )
                    .suggest(&m.value, builtins::metrics::METRICS.iter().map(|i| i.name))
                    .note(format!(
                        "the metrics are: {}",
                        builtins::metrics::METRICS
                            .iter()
                            .map(|i| i.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            names.into_iter().map(|s| s.value).collect()
        }
        None => vec![],
    };
    let mut variants = Vec::new();
    if let Some(n) = f.get("variants") {
        for v in ctx.seq(n, "variants")? {
            let vf = ctx.fields(v, "a variant", &["name", "model", "weight"])?;
            let w = ctx.float(vf.req(ctx, "weight")?, "weight")?;
            if !(w.value > 0.0 && w.value <= 1.0) {
                return Err(Diagnostic::at(
                    &ctx.source,
                    w.span,
                    "a variant's weight must be more than 0 and at most 1",
                ));
            }
            variants.push(Variant {
                name: ctx.string(vf.req(ctx, "name")?, "name")?.value,
                model: req_ref(ctx, &vf, "model")?,
                weight: w.value,
            });
        }
    }
    let folds = f.get("folds").map(|n| ctx.uint(n, "folds")).transpose()?;
    let algorithm = f
        .get("algorithm")
        .map(|n| ctx.string(n, "algorithm"))
        .transpose()?;
    let hyperparameters = decode_hyperparameters(ctx, f)?;
    match method {
        EvalMethod::Holdout if model.is_none() => {
            return Err(ctx
                .err(f.node, "a holdout evaluation needs `model`")
                .help("add `model: train.model`"));
        }
        EvalMethod::Kfold => {
            let Some(a) = &algorithm else {
                return Err(ctx.err(f.node, "a k-fold evaluation trains per fold: it needs `algorithm` and `hyperparameters`").help("add `algorithm: gbdt`"));
            };
            if !crate::exec::builtin::ALGORITHMS.contains(&a.as_str()) {
                return Err(Diagnostic::at(
                    &ctx.source,
                    a.span,
                    format!("unknown algorithm `{}`", a.value),
                )
                .suggest(&a.value, crate::exec::builtin::ALGORITHMS.iter().copied()));
            }
            crate::exec::builtin::check_hyperparameters(&a.value, &hyperparameters)
                .map_err(|e| hyperparameter_error(ctx, f, e))?;
            if let Some(k) = &folds
                && k.value < 2
            {
                return Err(Diagnostic::at(
                    &ctx.source,
                    k.span,
                    "`folds` must be at least 2",
                ));
            }
        }
        EvalMethod::Ab => {
            if variants.len() < 2 {
                return Err(ctx.err(f.get("variants").unwrap_or(f.node), "an A/B evaluation needs at least two `variants`").help("add `variants: [{name: champion, model: registry://GROUP@approved, weight: 0.5}, {name: challenger, model: train.model, weight: 0.5}]`"));
            }
            let sum: f64 = variants.iter().map(|v| v.weight).sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(ctx.err(
                    f.get("variants").unwrap_or(f.node),
                    format!("the variants' weights sum to {sum}, not 1"),
                ));
            }
        }
        _ => {}
    }
    let seed = f
        .get("seed")
        .map(|n| ctx.uint(n, "seed"))
        .transpose()?
        .map_or(0, |s| s.value);
    let opt_str = |k: &str| {
        f.get(k)
            .map(|n| ctx.string(n, k))
            .transpose()
            .map(|o| o.map(|s| s.value))
    };
    Ok(EvaluateStep {
        method,
        model,
        data,
        metrics,
        folds: folds.map(|k| k.value as u32),
        stratify: opt_str("stratify")?,
        group_column: opt_str("group_column")?,
        time_column: opt_str("time_column")?,
        algorithm: algorithm.map(|a| a.value),
        hyperparameters,
        variants,
        seed,
    })
}

fn decode_register(ctx: &Ctx, f: &Fields) -> DResult<RegisterStep> {
    let group_node = f.req(ctx, "group")?;
    let group = ctx.string(group_node, "group")?;
    if !is_name(&group) {
        return Err(ctx
            .err(
                group_node,
                format!("`{}` is not a valid group name", group.value),
            )
            .help("use letters, digits, `_` and `-`"));
    }
    let mut approval_span = Span::default();
    let text_start = |n: &Node| {
        let quoted = matches!(n.kind, NodeKind::Scalar { quoted: true, .. });
        Span::new(n.span.line, n.span.col + u32::from(quoted), n.span.len)
    };
    let approval = match f.get("approval") {
        None => Approval::Manual,
        Some(n) => {
            if n.as_scalar() == Some("manual") {
                Approval::Manual
            } else {
                let af = ctx.fields(n, "approval", &["auto_approve_if", "beat_champion"])?;
                match (af.get("auto_approve_if"), af.get("beat_champion")) {
                    (Some(_), Some(b)) => {
                        return Err(ctx.err(
                            b,
                            "use one approval policy: `auto_approve_if` or `beat_champion`",
                        ));
                    }
                    (Some(a), None) => {
                        approval_span = text_start(a);
                        let s = ctx.string(a, "auto_approve_if")?;
                        crate::registry::Condition::parse(&s).map_err(|e| {
                            let at = if s.value.contains('\n') {
                                a.span
                            } else {
                                Span::new(
                                    approval_span.line,
                                    approval_span.col + e.column() as u32,
                                    1,
                                )
                            };
                            let d = Diagnostic::at(
                                &ctx.source,
                                at,
                                format!("cannot read the condition `{}`", s.value),
                            )
                            .label(e.message);
                            match e.hint {
                                Some(h) => d.help(h),
                                None => d,
                            }
                        })?;
                        Approval::AutoApproveIf(s.value)
                    }
                    (None, Some(b)) => {
                        let bf =
                            ctx.fields(b, "beat_champion", &["metric", "by", "higher_is_better"])?;
                        let metric_node = bf.req(ctx, "metric")?;
                        approval_span = text_start(metric_node);
                        Approval::BeatChampion {
                            metric: ctx.string(metric_node, "metric")?.value,
                            by: bf
                                .get("by")
                                .map(|n| ctx.float(n, "by"))
                                .transpose()?
                                .map_or(0.0, |v| v.value),
                            higher_is_better: bf
                                .get("higher_is_better")
                                .map(|n| ctx.bool(n, "higher_is_better"))
                                .transpose()?
                                .map(|v| v.value),
                        }
                    }
                    (None, None) => Approval::Manual,
                }
            }
        }
    };
    let mut tags = BTreeMap::new();
    if let Some(n) = f.get("tags") {
        for (k, v) in ctx.entries(n, "tags")? {
            tags.insert(k.value, ctx.scalar_string(v, "tags")?.value);
        }
    }
    Ok(RegisterStep {
        model: req_ref(ctx, f, "model")?,
        group: group.value,
        metrics: f
            .get("metrics")
            .map(|n| decode_ref(ctx, n, "metrics"))
            .transpose()?,
        approval,
        description: f
            .get("description")
            .map(|n| ctx.string(n, "description"))
            .transpose()?
            .map(|s| s.value),
        tags,
        approval_span,
    })
}

/// Variables the container contract sets, which a step's `env:` may not replace.
const RESERVED_ENV_PREFIXES: &[&str] = &["SM_", "SAGEMAKER_", "PIPELINE_", "AWS_BATCH_JOB_"];

/// An `env:` key must be a variable name the step can read, and not one the contract sets.
fn check_env_key(ctx: &Ctx, k: &Spanned<String>) -> DResult<()> {
    if !params::is_env_name(&k.value) {
        return Err(Diagnostic::at(
            &ctx.source,
            k.span,
            format!("`{}` is not an environment variable name", k.value),
        )
        .help("use letters, digits and `_`, not starting with a digit, e.g. DB_HOST"));
    }
    if let Some(p) = RESERVED_ENV_PREFIXES
        .iter()
        .find(|p| k.value.to_ascii_uppercase().starts_with(**p))
    {
        return Err(Diagnostic::at(
            &ctx.source,
            k.span,
            format!("`{}` is set by the engine (every `{p}*` variable is)", k.value),
        )
        .label("reserved by the container contract")
        .help("pick another name; hyperparameters go under `hyperparameters:` and reach the step as SM_HP_*"));
    }
    Ok(())
}

fn decode_command(ctx: &Ctx, f: &Fields) -> DResult<CommandStep> {
    let code = super::code::decode(ctx, f)?;
    // With an entry point and no `run:`, the entry point is what runs.
    let run_node = match (f.get("run"), &code.entry_point) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(f.req(ctx, "run")?),
    };
    let run = run_node
        .map(|n| decode_run(ctx, n))
        .transpose()?
        .unwrap_or_default();
    let inputs = match f.get("inputs") {
        Some(n) => decode_channels(ctx, n, "inputs")?,
        None => BTreeMap::new(),
    };
    let outputs = match f.get("outputs") {
        Some(n) => ctx.string_list(n, "outputs")?,
        None => vec![],
    };
    for (i, o) in outputs.iter().enumerate() {
        check_name(ctx, o, "output")?;
        if outputs[..i].iter().any(|p| p.value == o.value) {
            return Err(Diagnostic::at(
                &ctx.source,
                o.span,
                format!("the output `{}` is listed twice", o.value),
            ));
        }
    }
    // Run-time templates must name this step's own outputs and inputs.
    for (arg, run_node) in run.iter().filter_map(|a| run_node.map(|n| (a, n))) {
        let (outs, ins) = template::placeholder_names(arg);
        for o in outs {
            if !outputs.iter().any(|x| x.value == o) {
                return Err(ctx
                    .err(
                        run_node,
                        format!("`{{{{ outputs.{o} }}}}` names no output of this step"),
                    )
                    .suggest(&o, outputs.iter().map(|x| x.value.as_str()))
                    .help("list it under `outputs:`"));
            }
        }
        for i in ins {
            if !inputs.contains_key(&i) {
                return Err(ctx
                    .err(
                        run_node,
                        format!("`{{{{ inputs.{i} }}}}` names no input of this step"),
                    )
                    .suggest(&i, inputs.keys().map(String::as_str))
                    .help("add it under the step's `inputs:`"));
            }
        }
    }
    let hyperparameters = decode_hyperparameters(ctx, f)?;
    Ok(CommandStep {
        hyperparameters,
        run,
        inputs,
        outputs,
        image: f
            .get("image")
            .map(|n| ctx.string(n, "image"))
            .transpose()?
            .map(|s| s.value),
        code,
    })
}

/// A step's `env:`: names the step can read that the contract does not set.
fn decode_env(ctx: &Ctx, f: &Fields) -> DResult<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    if let Some(n) = f.get("env") {
        for (k, v) in ctx.entries(n, "env")? {
            check_env_key(ctx, &k)?;
            env.insert(k.value, ctx.scalar_string(v, "env")?.value);
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("4GiB"), Some(4 << 30));
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("2G"), Some(2_000_000_000));
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("My Pipeline_1"), "my-pipeline-1");
    }
}
