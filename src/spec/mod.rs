//! Parse and validate: pipeline file text to a validated [`model::Pipeline`].
//!
//! `yaml` keeps every node's position; `decode` reads typed values with
//! located errors; `params` and `template` apply `--param` and `{{ }}`;
//! `load` decodes each section; `validate` checks references across steps;
//! `expr` is the `when:` language; `schema` is the JSON Schema editors use.
//! Nothing downstream sees raw YAML.

pub mod automl;
pub mod batch;
pub mod code;
pub mod decode;
pub mod expr;
pub mod load;
pub mod model;
pub mod params;
pub mod schedule;
pub mod schema;
pub mod source;
pub mod template;
pub mod tune;
pub mod validate;
pub mod yaml;

pub use load::{LoadOptions, Loaded, load_file, load_source};
