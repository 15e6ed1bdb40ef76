//! Typed pipeline parameters and their `--param K=V` overrides.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::decode::{Ctx, DResult};
use super::source::{Diagnostic, Span, Spanned, closest};
use super::yaml::{Node, NodeKind, ScalarType, plain_scalar_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Float,
    Str,
    Bool,
    /// A string from the environment or a file, never recorded (see [`SecretSource`]).
    Secret,
}

impl ParamType {
    pub const NAMES: &'static [&'static str] = &["int", "float", "string", "bool", "secret"];
    fn parse(s: &str) -> Option<Self> {
        match s {
            "int" | "integer" => Some(ParamType::Int),
            "float" | "number" => Some(ParamType::Float),
            "string" | "str" => Some(ParamType::Str),
            "bool" | "boolean" => Some(ParamType::Bool),
            "secret" => Some(ParamType::Secret),
            _ => None,
        }
    }

    /// Converts text (from YAML or the command line) to a value of this type.
    pub fn convert(&self, text: &str) -> Option<Value> {
        let t = text.trim();
        match self {
            ParamType::Int => t.parse::<i64>().ok().map(Value::from),
            ParamType::Float => t
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::from),
            ParamType::Str | ParamType::Secret => Some(Value::from(text)),
            ParamType::Bool => match t {
                "true" | "True" | "TRUE" | "yes" | "1" => Some(Value::Bool(true)),
                "false" | "False" | "FALSE" | "no" | "0" => Some(Value::Bool(false)),
                _ => None,
            },
        }
    }

    fn phrase(&self) -> &'static str {
        match self {
            ParamType::Int => "a whole number",
            ParamType::Float => "a number",
            ParamType::Str | ParamType::Secret => "a string",
            ParamType::Bool => "true or false",
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Str => "string",
            ParamType::Bool => "bool",
            ParamType::Secret => "secret",
        })
    }
}

/// A declared parameter.
#[derive(Debug, Clone)]
pub struct ParamDecl {
    pub name: String,
    pub ty: ParamType,
    pub default: Option<Value>,
    pub choices: Vec<Value>,
    pub span: Span,
    /// Where a `type: secret` param's value comes from.
    pub secret: Option<SecretSource>,
}

impl ParamDecl {
    pub fn is_secret(&self) -> bool {
        self.secret.is_some()
    }
}

/// Where a secret's value is read when the pipeline is loaded.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// `env: NAME`: an environment variable of the engine.
    Env(Spanned<String>),
    /// `file: PATH`: a file's content (one trailing newline dropped), relative to the pipeline file.
    File(Spanned<String>),
}

/// Secret values by param name. Its `Debug` shows the names only, so a value
/// cannot reach a message or a log by way of a debug print.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The values, for masking in output.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Resolved params: the values templates and conditions see, and the secrets apart.
pub struct Resolved {
    pub values: BTreeMap<String, Value>,
    pub secrets: Secrets,
}

const PARAM_KEYS: &[&str] = &["type", "default", "description", "choices", "env", "file"];

/// Reads the `params:` section.
pub fn decode(ctx: &Ctx, node: &Node) -> DResult<Vec<ParamDecl>> {
    let mut out = Vec::new();
    for (name, value) in ctx.entries(node, "params")? {
        let decl = match &value.kind {
            NodeKind::Map(_) => {
                let f = ctx.fields(value, &format!("param `{}`", name.value), PARAM_KEYS)?;
                let ty_node = f.req(ctx, "type")?;
                let ty_text = ctx.string(ty_node, "type")?;
                let ty = ParamType::parse(&ty_text).ok_or_else(|| {
                    ctx.err(ty_node, format!("unknown param type `{}`", ty_text.value))
                        .suggest(&ty_text, ParamType::NAMES.iter().copied())
                        .help(format!("use one of: {}", ParamType::NAMES.join(", ")))
                })?;
                let convert = |n: &Node, field: &str| -> DResult<Value> {
                    let text = n.as_scalar().ok_or_else(|| {
                        ctx.err(
                            n,
                            format!(
                                "`{field}` of param `{}` must be {}",
                                name.value,
                                ty.phrase()
                            ),
                        )
                    })?;
                    ty.convert(text).ok_or_else(|| {
                        ctx.err(
                            n,
                            format!(
                                "`{text}` is not {}, the type of param `{}`",
                                ty.phrase(),
                                name.value
                            ),
                        )
                        .help(format!(
                            "write {} here, or change `type: {ty}`",
                            ty.phrase()
                        ))
                    })
                };
                let default = f
                    .get("default")
                    .map(|d| convert(d, "default"))
                    .transpose()?;
                let choices = match f.get("choices") {
                    Some(c) => ctx
                        .seq(c, "choices")?
                        .iter()
                        .map(|n| convert(n, "choices"))
                        .collect::<DResult<_>>()?,
                    None => vec![],
                };
                if let (Some(d), false) = (&default, choices.is_empty())
                    && !choices.contains(d)
                {
                    return Err(ctx.err(
                        f.get("default").unwrap(),
                        "the default is not one of the choices",
                    ));
                }
                let secret = decode_secret(ctx, &f, &name, ty)?;
                ParamDecl {
                    name: name.value.clone(),
                    ty,
                    default,
                    choices,
                    span: name.span,
                    secret,
                }
            }
            NodeKind::Scalar { text, quoted } => {
                // Shorthand `name: value`: the type is the value's.
                let ty = if *quoted {
                    ParamType::Str
                } else {
                    match plain_scalar_type(text) {
                        ScalarType::Int => ParamType::Int,
                        ScalarType::Float => ParamType::Float,
                        ScalarType::Bool => ParamType::Bool,
                        _ => ParamType::Str,
                    }
                };
                ParamDecl {
                    name: name.value.clone(),
                    ty,
                    default: ty.convert(text),
                    choices: vec![],
                    span: name.span,
                    secret: None,
                }
            }
            _ => {
                return Err(ctx.err(
                    value,
                    format!(
                        "param `{}` must be `{{type: ..., default: ...}}` or a value",
                        name.value
                    ),
                ));
            }
        };
        out.push(decl);
    }
    Ok(out)
}

/// A secret's `env:` or `file:`, which only secrets have (and must have one of).
fn decode_secret(
    ctx: &Ctx,
    f: &super::decode::Fields,
    name: &Spanned<String>,
    ty: ParamType,
) -> DResult<Option<SecretSource>> {
    let (env, file) = (f.get("env"), f.get("file"));
    if ty != ParamType::Secret {
        if let Some(n) = env.or(file) {
            return Err(ctx
                .err(
                    n,
                    format!(
                        "only a secret param reads `env` or `file`; `{}` is `type: {ty}`",
                        name.value
                    ),
                )
                .help(
                    "write `type: secret` to keep the value out of the records, or remove this key",
                ));
        }
        return Ok(None);
    }
    for key in ["default", "choices"] {
        if let Some(n) = f.key(key) {
            return Err(ctx
                .err(n, format!("a secret param cannot have `{key}`: its value would be written in the pipeline file"))
                .help("read the value with `env: VARIABLE` or `file: PATH`"));
        }
    }
    match (env, file) {
        (Some(e), None) => {
            let v = ctx.string(e, "env")?;
            if !is_env_name(&v) {
                return Err(ctx
                    .err(
                        e,
                        format!("`{}` is not an environment variable name", v.value),
                    )
                    .help(
                        "use letters, digits and `_`, not starting with a digit, e.g. DB_PASSWORD",
                    ));
            }
            Ok(Some(SecretSource::Env(v)))
        }
        (None, Some(p)) => Ok(Some(SecretSource::File(ctx.string(p, "file")?))),
        (Some(_), Some(p)) => Err(ctx
            .err(p, "a secret reads `env` or `file`, not both")
            .help("remove one of the two")),
        (None, None) => Err(ctx
            .err(
                f.node,
                format!(
                    "the secret param `{}` needs `env: VARIABLE` or `file: PATH`",
                    name.value
                ),
            )
            .help(format!(
                "e.g. `{}: {{type: secret, env: {}}}`",
                name.value,
                name.value.to_ascii_uppercase()
            ))),
    }
}

/// Whether `s` is a portable environment variable name.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads a secret's value where its declaration says; `None` with the error when it cannot.
fn read_secret(
    ctx: &Ctx,
    decl: &ParamDecl,
    src: &SecretSource,
    base_dir: &std::path::Path,
) -> Result<String, Diagnostic> {
    match src {
        SecretSource::Env(var) => std::env::var(&var.value).map_err(|e| {
            let what = match e {
                std::env::VarError::NotPresent => "which is not set",
                std::env::VarError::NotUnicode(_) => "which is not valid UTF-8",
            };
            Diagnostic::at(
                &ctx.source,
                var.span,
                format!(
                    "the secret param `{}` reads the environment variable {}, {what}",
                    decl.name, var.value
                ),
            )
            .help(format!(
                "set it before running (export {}=...), or pass --param {}=VALUE",
                var.value, decl.name
            ))
        }),
        SecretSource::File(path) => {
            let p = std::path::Path::new(&path.value);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            };
            let text = std::fs::read_to_string(&abs).map_err(|e| {
                Diagnostic::at(
                    &ctx.source,
                    path.span,
                    format!(
                        "cannot read the secret param `{}` from {}: {e}",
                        decl.name,
                        abs.display()
                    ),
                )
                .help("paths are relative to the pipeline file's directory; the file holds the value alone")
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
        }
    }
}

/// Applies `--param K=V` overrides to the declared defaults, and reads secrets.
pub fn resolve(
    ctx: &Ctx,
    decls: &[ParamDecl],
    overrides: &[(String, String)],
    base_dir: &std::path::Path,
) -> Result<Resolved, Vec<Diagnostic>> {
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut errors = Vec::new();
    for (k, v) in overrides {
        let Some(decl) = decls.iter().find(|d| &d.name == k) else {
            // The value is not shown: it may be a secret given under a mistyped name.
            let mut d = Diagnostic::new(format!("unknown param `{k}` given with --param {k}=…"))
                .suggest(k, decls.iter().map(|d| d.name.as_str()));
            d = if decls.is_empty() {
                d.help(format!(
                    "{} declares no params; declare it under `params:`",
                    ctx.source.name
                ))
            } else {
                d.note(format!(
                    "the params of {} are: {}",
                    ctx.source.name,
                    decls
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            errors.push(d);
            continue;
        };
        if decl.is_secret() {
            secrets.insert(k.clone(), v.clone());
            continue;
        }
        match decl.ty.convert(v) {
            Some(val) if decl.choices.is_empty() || decl.choices.contains(&val) => {
                values.insert(k.clone(), val);
            }
            Some(_) => errors.push(
                Diagnostic::new(format!(
                    "--param {k}={v}: `{v}` is not one of the choices of `{k}`"
                ))
                .note(format!(
                    "choices: {}",
                    decl.choices
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
            None => errors.push(
                Diagnostic::new(format!(
                    "--param {k}={v}: `{v}` is not {}",
                    decl.ty.phrase()
                ))
                .note(format!(
                    "`{k}` is declared as `type: {}` at {}:{}:{}",
                    decl.ty, ctx.source.name, decl.span.line, decl.span.col
                )),
            ),
        }
    }
    for decl in decls {
        if values.contains_key(&decl.name) || secrets.contains_key(&decl.name) {
            continue;
        }
        if let Some(src) = &decl.secret {
            match read_secret(ctx, decl, src, base_dir) {
                Ok(v) => {
                    secrets.insert(decl.name.clone(), v);
                }
                Err(d) => errors.push(d),
            }
            continue;
        }
        match &decl.default {
            Some(d) => {
                values.insert(decl.name.clone(), d.clone());
            }
            None => errors.push(
                Diagnostic::at(
                    &ctx.source,
                    decl.span,
                    format!("param `{}` has no default and was not given", decl.name),
                )
                .help(format!(
                    "pass it: --param {}=VALUE, or add `default:`",
                    decl.name
                )),
            ),
        }
    }
    if errors.is_empty() {
        Ok(Resolved {
            values,
            secrets: Secrets(secrets),
        })
    } else {
        Err(errors)
    }
}

/// Parses the command line's `K=V` strings.
pub fn parse_overrides(args: &[String]) -> Result<Vec<(String, String)>, Diagnostic> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(
                Diagnostic::new(format!("--param `{a}` is not of the form NAME=VALUE"))
                    .help("write it as --param max_depth=6"),
            ),
        })
        .collect()
}

/// The closest declared name, for "did you mean" in templates.
pub fn closest_param<'a>(decls: &'a [ParamDecl], name: &str) -> Option<&'a str> {
    closest(name, decls.iter().map(|d| d.name.as_str()))
}
