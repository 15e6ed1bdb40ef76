//! Typed pipeline parameters and their `--param K=V` overrides.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::decode::{Ctx, DResult};
use super::source::{Diagnostic, Span, closest};
use super::yaml::{Node, NodeKind, ScalarType, plain_scalar_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Float,
    Str,
    Bool,
}

impl ParamType {
    pub const NAMES: &'static [&'static str] = &["int", "float", "string", "bool"];
    fn parse(s: &str) -> Option<Self> {
        match s {
            "int" | "integer" => Some(ParamType::Int),
            "float" | "number" => Some(ParamType::Float),
            "string" | "str" => Some(ParamType::Str),
            "bool" | "boolean" => Some(ParamType::Bool),
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
            ParamType::Str => Some(Value::from(text)),
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
            ParamType::Str => "a string",
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
}

const PARAM_KEYS: &[&str] = &["type", "default", "description", "choices"];

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
                ParamDecl {
                    name: name.value.clone(),
                    ty,
                    default,
                    choices,
                    span: name.span,
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

/// Applies `--param K=V` overrides to the declared defaults.
pub fn resolve(
    ctx: &Ctx,
    decls: &[ParamDecl],
    overrides: &[(String, String)],
) -> Result<BTreeMap<String, Value>, Vec<Diagnostic>> {
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    let mut errors = Vec::new();
    for (k, v) in overrides {
        let Some(decl) = decls.iter().find(|d| &d.name == k) else {
            let mut d = Diagnostic::new(format!("unknown param `{k}` given with --param {k}={v}"))
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
        if values.contains_key(&decl.name) {
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
        Ok(values)
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
