//! The training environment as SageMaker's training toolkit presents it to
//! user code: the `SM_*` variables (`SM_HPS`, `SM_USER_ARGS`,
//! `SM_TRAINING_ENV`, ...) with the names and value encodings the toolkit
//! uses, so that a script written for SageMaker reads the same values here
//! whether or not the toolkit started it.
//!
//! The toolkit's rules, which this follows:
//! - a hyperparameter value is JSON-decoded when it parses (`"3"` is the
//!   number 3, `"\"x\""` the string `x`), else kept as the string;
//! - names beginning `sagemaker_` are the toolkit's own settings, not the
//!   script's hyperparameters: they stay out of `SM_HPS`, `SM_HP_*` and the
//!   arguments;
//! - a variable's name is `SM_` and the key upper-cased, nothing replaced
//!   (`max-depth` gives `SM_HP_MAX-DEPTH`);
//! - a value that is a string is itself, anything else compact JSON with
//!   sorted keys and only ASCII (Python's `json.dumps(sort_keys=True,
//!   separators=(",", ":"))`), floats written as Python writes them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value, json};

/// The group every node is in: SageMaker's name for a cluster of one instance type.
pub const INSTANCE_GROUP: &str = "homogeneousCluster";

/// What `current_instance_type` says: as in SageMaker's local mode, since
/// a step's nodes are not EC2 instance types here.
pub const INSTANCE_TYPE: &str = "local";

/// The log level the toolkit's `SM_LOG_LEVEL` defaults to (Python's INFO).
const LOG_LEVEL_INFO: u64 = 20;

/// The facts the environment is made from.
pub struct TrainingEnv<'a> {
    /// The step's root as the step sees it (`/opt/ml` in a container).
    pub base: &'a Path,
    pub hosts: &'a [String],
    pub current_host: &'a str,
    /// As written to `hyperparameters.json`: every value a string.
    pub hyperparameters: &'a BTreeMap<String, String>,
    /// `inputdataconfig.json`'s content.
    pub input_data_config: &'a Map<String, Value>,
    /// `resourceconfig.json`'s content.
    pub resource_config: &'a Value,
    pub network_interface: &'a str,
    pub num_cpus: usize,
    pub num_gpus: u32,
    /// The script the toolkit runs (`SAGEMAKER_PROGRAM`), when there is one.
    pub entry_point: Option<&'a str>,
    /// `TRAINING_JOB_NAME`.
    pub job_name: &'a str,
}

impl TrainingEnv<'_> {
    /// The resource configuration every executor writes for node `current_host`.
    pub fn resource_config(current_host: &str, hosts: &[String], network_interface: &str) -> Value {
        json!({
            "current_host": current_host,
            "current_instance_type": INSTANCE_TYPE,
            "current_group_name": INSTANCE_GROUP,
            "hosts": hosts,
            "instance_groups": [{
                "instance_group_name": INSTANCE_GROUP,
                "instance_type": INSTANCE_TYPE,
                "hosts": hosts,
            }],
            "network_interface_name": network_interface,
        })
    }

    /// The hyperparameters the script sees: decoded, without the toolkit's own.
    pub fn user_hyperparameters(&self) -> Map<String, Value> {
        self.hyperparameters
            .iter()
            .filter(|(k, _)| !k.starts_with("sagemaker_"))
            .map(|(k, v)| (k.clone(), decode(v)))
            .collect()
    }

    /// `--name value` for each of the script's hyperparameters ([`user_args`]).
    pub fn user_args(&self) -> Vec<String> {
        user_args(self.hyperparameters)
    }

    /// Every variable, by name.
    pub fn vars(&self) -> Vec<(String, String)> {
        let p = |rel: &str| self.base.join(rel).display().to_string();
        let hps = self.user_hyperparameters();
        let mut channels: Vec<&String> = self.input_data_config.keys().collect();
        channels.sort();
        let channel_dirs: Map<String, Value> = channels
            .iter()
            .map(|c| ((*c).clone(), Value::String(p(&format!("input/data/{c}")))))
            .collect();
        let master = self.hosts.first().map_or("", String::as_str);
        let entry_point = self.entry_point.map(str::to_string);
        let module_name = entry_point
            .as_deref()
            .map(|e| e.strip_suffix(".py").unwrap_or(e).to_string());
        let group = json!({
            "hosts": self.hosts,
            "instance_group_name": INSTANCE_GROUP,
            "instance_type": INSTANCE_TYPE,
        });
        let mut env = Map::new();
        let mut put = |k: &str, v: Value| {
            env.insert(k.to_string(), v);
        };
        put("additional_framework_parameters", json!({}));
        put("channel_input_dirs", Value::Object(channel_dirs.clone()));
        put("current_host", json!(self.current_host));
        put("current_instance_group", json!(INSTANCE_GROUP));
        put("current_instance_group_hosts", json!(self.hosts));
        put("current_instance_type", json!(INSTANCE_TYPE));
        put("distribution_hosts", json!([]));
        put("distribution_instance_groups", json!([]));
        put("framework_module", Value::Null);
        put("hosts", json!(self.hosts));
        put("hyperparameters", Value::Object(hps.clone()));
        put("input_config_dir", json!(p("input/config")));
        put(
            "input_data_config",
            Value::Object(self.input_data_config.clone()),
        );
        put("input_dir", json!(p("input")));
        put("instance_groups", json!([INSTANCE_GROUP]));
        put("instance_groups_dict", json!({ INSTANCE_GROUP: group }));
        put("is_hetero", json!(false));
        put("is_master", json!(self.current_host == master));
        put("is_modelparallel_enabled", Value::Null);
        put("is_smddpmprun_installed", json!(false));
        put("is_smddprun_installed", json!(false));
        put("job_name", json!(self.job_name));
        put("log_level", json!(LOG_LEVEL_INFO));
        put("master_hostname", json!(master));
        put("model_dir", json!(p("model")));
        put("module_dir", json!(p("code")));
        put("module_name", json!(module_name));
        put("network_interface_name", json!(self.network_interface));
        put("num_cpus", json!(self.num_cpus));
        put("num_gpus", json!(self.num_gpus));
        put("num_neurons", json!(0));
        put("output_data_dir", json!(p("output/data")));
        put("output_dir", json!(p("output")));
        put("output_intermediate_dir", json!(p("output/intermediate")));
        put("resource_config", self.resource_config.clone());
        put("topology", json!([]));
        put("user_entry_point", json!(entry_point));
        let training_env = Value::Object(env.clone());

        // The variables the toolkit writes: a few of the properties above
        // under their own names, plus the environment whole, the arguments
        // and one variable a channel and a hyperparameter.
        let mut vars: BTreeMap<String, Value> = BTreeMap::new();
        for key in [
            "hosts",
            "network_interface_name",
            "resource_config",
            "input_data_config",
            "output_data_dir",
            "current_host",
            "current_instance_type",
            "current_instance_group",
            "current_instance_group_hosts",
            "instance_groups",
            "instance_groups_dict",
            "distribution_instance_groups",
            "is_hetero",
            "module_name",
            "log_level",
            "framework_module",
            "input_dir",
            "input_config_dir",
            "output_dir",
            "num_cpus",
            "num_gpus",
            "num_neurons",
            "model_dir",
            "module_dir",
            "output_intermediate_dir",
            "user_entry_point",
        ] {
            vars.insert(key.to_string(), env[key].clone());
        }
        vars.insert("hps".into(), Value::Object(hps.clone()));
        vars.insert(
            "framework_params".into(),
            env["additional_framework_parameters"].clone(),
        );
        vars.insert("channels".into(), json!(channels));
        vars.insert("training_env".into(), training_env);
        vars.insert("user_args".into(), json!(self.user_args()));
        for (c, dir) in channel_dirs {
            vars.insert(format!("channel_{c}"), dir);
        }
        for (k, v) in hps {
            vars.insert(format!("hp_{k}"), v);
        }
        let mut out: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (format!("SM_{}", k.to_uppercase()), python_str(&v)))
            .collect();
        out.push(("TRAINING_JOB_NAME".into(), self.job_name.to_string()));
        out
    }
}

/// `--name value` for each of the script's hyperparameters, in name order,
/// as the toolkit passes them to the script (a one-letter name gets one dash).
pub fn user_args(hyperparameters: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in hyperparameters
        .iter()
        .filter(|(k, _)| !k.starts_with("sagemaker_"))
        .map(|(k, v)| (k, decode(v)))
    {
        out.push(if k.chars().count() > 1 {
            format!("--{k}")
        } else {
            format!("-{k}")
        });
        out.push(match &v {
            Value::Null => String::new(),
            // A mapping becomes `k=v,k=v`, as the toolkit writes it.
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", python_display(v, true)))
                .collect::<Vec<_>>()
                .join(","),
            other => python_display(other, true),
        });
    }
    out
}

/// A decoded value as Python's `str()` writes it (the toolkit's arguments):
/// `True`, `1.0`, `[1, 'a']`, `{'k': None}`; a string at the top is itself.
fn python_display(v: &Value, top: bool) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(_) => python_json(v),
        Value::String(s) if s.starts_with(NON_FINITE) => match &s[NON_FINITE.len()..] {
            "NaN" => "nan".into(),
            "Infinity" => "inf".into(),
            _ => "-inf".into(),
        },
        Value::String(s) if top => s.clone(),
        Value::String(s) => {
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
            out
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| python_display(x, false))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, x)| format!(
                    "{}: {}",
                    python_display(&Value::String(k.clone()), false),
                    python_display(x, false)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A hyperparameter's value as the toolkit reads it: JSON when it parses
/// as JSON (including Python's `NaN`, `Infinity` and `-Infinity`), else the string.
pub fn decode(text: &str) -> Value {
    match text.trim() {
        "NaN" => return float_value(f64::NAN),
        "Infinity" => return float_value(f64::INFINITY),
        "-Infinity" => return float_value(f64::NEG_INFINITY),
        _ => {}
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Floats JSON cannot hold travel as a tagged string until they are written.
const NON_FINITE: &str = "\u{0}float:";

fn float_value(x: f64) -> Value {
    Value::String(format!("{NON_FINITE}{}", python_float(x)))
}

/// A value as the toolkit writes it into a variable: a string as itself,
/// anything else as compact, key-sorted, ASCII-only JSON.
pub fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) if !s.starts_with(NON_FINITE) => s.clone(),
        Value::Null => String::new(),
        other => python_json(other),
    }
}

/// Python's `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => write!(out, "{u}").expect("string"),
            (_, Some(i), _) => write!(out, "{i}").expect("string"),
            (_, _, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => match s.strip_prefix(NON_FINITE) {
            Some(f) => out.push_str(f),
            None => write_string(s, out),
        },
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_json(&m[k], out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    write!(out, "\\u{unit:04x}").expect("string");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as Python's `repr` writes it: the shortest digits that read
/// back the same, positional from 1e-4 up to 1e16, else with an exponent
/// of at least two digits (`1e-05`, `1e+16`); whole numbers keep `.0`.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `d[.ddd]e[-]X`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp >= n - 1 {
            // All digits before the point.
            format!("{digits}{}.0", "0".repeat((exp - (n - 1)) as usize))
        } else if exp >= 0 {
            let (a, b) = digits.split_at(exp as usize + 1);
            format!("{a}.{b}")
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (x, py) in [
            (0.1, "0.1"),
            (3.0, "3.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (-2.5e-7, "-2.5e-07"),
            (123.456, "123.456"),
            (1.5e300, "1.5e+300"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(python_float(x), py, "{x}");
        }
    }

    #[test]
    fn values_decode_and_write_as_the_toolkit_does() {
        let cases = [
            ("3", "3"),
            ("0.1", "0.1"),
            ("1E3", "1000.0"),
            ("true", "true"),
            ("\"x\"", "x"),
            ("abc", "abc"),
            ("[1, 2.5, \"é\"]", "[1,2.5,\"\\u00e9\"]"),
            ("{\"b\": 1, \"a\": [true]}", "{\"a\":[true],\"b\":1}"),
            ("NaN", "NaN"),
            (" 7 ", "7"),
        ];
        for (text, var) in cases {
            assert_eq!(python_str(&decode(text)), var, "{text}");
        }
    }

    fn sample<'a>(
        hps: &'a BTreeMap<String, String>,
        idc: &'a Map<String, Value>,
        rc: &'a Value,
        hosts: &'a [String],
    ) -> TrainingEnv<'a> {
        TrainingEnv {
            base: Path::new("/opt/ml"),
            hosts,
            current_host: "algo-2",
            hyperparameters: hps,
            input_data_config: idc,
            resource_config: rc,
            network_interface: "eth0",
            num_cpus: 4,
            num_gpus: 0,
            entry_point: Some("train.py"),
            job_name: "p-train-1",
        }
    }

    #[test]
    fn variables_have_the_toolkit_names_and_values() {
        let hps: BTreeMap<String, String> = [
            ("max-depth", "3"),
            ("eta", "0.1"),
            ("x", "y"),
            ("sagemaker_program", "\"train.py\""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut idc = Map::new();
        idc.insert("train".into(), json!({"ContentType": "text/csv"}));
        let hosts = vec!["algo-1".to_string(), "algo-2".to_string()];
        let rc = TrainingEnv::resource_config("algo-2", &hosts, "eth0");
        let env = sample(&hps, &idc, &rc, &hosts);
        let vars: BTreeMap<String, String> = env.vars().into_iter().collect();
        assert_eq!(vars["SM_HP_MAX-DEPTH"], "3");
        assert_eq!(vars["SM_HP_X"], "y");
        assert!(!vars.contains_key("SM_HP_SAGEMAKER_PROGRAM"));
        assert_eq!(vars["SM_HPS"], r#"{"eta":0.1,"max-depth":3,"x":"y"}"#);
        assert_eq!(
            vars["SM_USER_ARGS"],
            r#"["--eta","0.1","--max-depth","3","-x","y"]"#
        );
        let more: BTreeMap<String, String> = [
            ("flag", "true"),
            ("list", "[1, 2.5, \"a\"]"),
            ("map", "{\"b\": null, \"a\": 1e-5}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            user_args(&more),
            [
                "--flag",
                "True",
                "--list",
                "[1, 2.5, 'a']",
                "--map",
                "a=1e-05,b=None"
            ]
        );
        assert_eq!(vars["SM_CHANNEL_TRAIN"], "/opt/ml/input/data/train");
        assert_eq!(vars["SM_MODULE_NAME"], "train");
        assert_eq!(vars["SM_CURRENT_INSTANCE_TYPE"], "local");
        assert_eq!(vars["SM_LOG_LEVEL"], "20");
        assert_eq!(vars["SM_FRAMEWORK_MODULE"], "");
        assert_eq!(vars["TRAINING_JOB_NAME"], "p-train-1");
        let te: Value = serde_json::from_str(&vars["SM_TRAINING_ENV"]).unwrap();
        assert_eq!(te["is_master"], json!(false));
        assert_eq!(te["master_hostname"], json!("algo-1"));
        assert_eq!(
            te["resource_config"]["instance_groups"][0]["hosts"],
            json!(hosts)
        );
        assert_eq!(
            vars["SM_INSTANCE_GROUPS_DICT"],
            r#"{"homogeneousCluster":{"hosts":["algo-1","algo-2"],"instance_group_name":"homogeneousCluster","instance_type":"local"}}"#
        );
    }
}
