//! End-to-end tests of the `pipeline` program: each test writes a pipeline
//! into a fresh temporary directory, runs the real binary there and checks
//! its exit code, output and the state it leaves in `.pipeline/`.
//!
//! One test binary keeps link time down; the modules group tests by concern.

mod harness;

mod automl;
mod bad_input;
mod batch;
mod builtins;
mod data_trust;
mod docker;
mod formats;
mod frontend;
mod isolation;
mod kill_resume;
mod onnx;
mod pipe_mode;
mod planner;
mod render;
mod reproduce;
mod run;
mod runs;
mod s3;
mod sagemaker;
mod schedule;
mod shared_registry;
mod signals;
mod trust_engine;
mod tune;
mod ui;
