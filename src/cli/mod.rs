//! The command line: argument parsing and one function a command.

#[macro_use]
pub mod out;
pub mod cp;
pub mod data;
pub mod export;
pub mod plan;
pub mod registry;
pub mod reproduce;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod shell;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::dag::render::GraphFormat;
use crate::error::{Error, Result};
use crate::spec::model::Executor;
use crate::spec::source::Diagnostic;

#[derive(Debug, Parser)]
#[command(
    name = "pipeline",
    version,
    about = "Declarative ML pipelines: split, train, evaluate and register models from one YAML file."
)]
pub struct Cli {
    /// The shared artifact store and step cache (default: $PIPELINE_STORE, else
    /// `store:` in .pipeline/config.yaml, else the local store only).
    #[arg(long, global = true, value_name = "s3://BUCKET/PREFIX")]
    pub store: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args, Clone, Default)]
pub struct ParamArgs {
    /// Override a param: --param NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a pipeline file; errors point at FILE:LINE:COL.
    Validate {
        file: PathBuf,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// Show what would run, what is cached, and why.
    Plan {
        file: PathBuf,
        #[command(flatten)]
        params: ParamArgs,
        /// Plan as if nothing were cached.
        #[arg(long)]
        no_cache: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print the step graph.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// Run a pipeline.
    Run {
        file: PathBuf,
        #[command(flatten)]
        params: ParamArgs,
        /// Run steps on this executor (local, docker, batch) unless a step names its own `executor:`.
        #[arg(long)]
        executor: Option<String>,
        /// Steps to run at once (default: the number of cores).
        #[arg(short = 'j', long = "jobs")]
        jobs: Option<usize>,
        /// Run every step, even those whose results are cached.
        #[arg(long)]
        no_cache: bool,
        /// Print newline-delimited JSON events; the last line is the run summary.
        #[arg(long)]
        json: bool,
        /// Print only the outcome (and why a step failed).
        #[arg(long, short = 'q', conflicts_with = "json")]
        quiet: bool,
        /// Refuse to run (exit 2) unless inputs, params and steps are as
        /// `pipeline.lock` beside the file says; never write it.
        #[arg(long)]
        locked: bool,
    },
    /// Run a recorded run again from its lock, in a scratch workspace, and
    /// compare every step's outputs with the recorded ones.
    Reproduce {
        run_id: String,
        /// Exit 1 unless every output is identical (or, where only that is
        /// promised, within tolerance).
        #[arg(long)]
        verify: bool,
        /// Steps to run at once (default: as the run did).
        #[arg(short = 'j', long = "jobs")]
        jobs: Option<usize>,
        /// Print the run's events as JSON lines; the last line is the comparison.
        #[arg(long)]
        json: bool,
    },
    /// Continue a run that failed, was cancelled or was killed: only unfinished steps run.
    Resume {
        run_id: String,
        #[arg(short = 'j', long = "jobs")]
        jobs: Option<usize>,
        #[arg(long)]
        json: bool,
        /// Print only the outcome (and why a step failed).
        #[arg(long, short = 'q', conflicts_with = "json")]
        quiet: bool,
    },
    /// List runs, or show one.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Copy files to or from S3: a file or directory to `s3://BUCKET/PREFIX`, or an object or prefix to a directory.
    Cp { src: String, dest: String },
    /// Copy an artifact of a run out of the store: to a directory, or to S3;
    /// with `--format onnx`, a built-in model as one ONNX file.
    Export {
        run_id: String,
        /// STEP.OUTPUT, e.g. `train.model` (a train step's model is its `model.tar.gz`).
        output: String,
        /// A new or empty directory, or an `s3://BUCKET/PREFIX` URI; with
        /// `--format onnx`, the new `.onnx` file to write.
        dest: String,
        /// Convert the model instead of copying its files: `onnx` writes a
        /// gbdt, linear-learner, kmeans or pca model as an ONNX file (see docs/models/).
        #[arg(long, value_enum)]
        format: Option<export::Format>,
    },
    /// Print a run's step logs.
    Logs {
        run_id: String,
        step: Option<String>,
    },
    /// Model registry: groups, versions, approvals, lineage.
    Registry {
        /// The registry: an SQLite file, or a PostgreSQL database as
        /// postgres://USER@HOST:PORT/DATABASE (default: $PIPELINE_REGISTRY,
        /// else .pipeline/registry.db).
        #[arg(long, global = true, value_name = "PATH_OR_URL")]
        registry: Option<String>,
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
    /// Run pipelines on their schedules until stopped (see docs/scheduling.md);
    /// `schedule status` shows each schedule's last and next firing.
    Schedule(ScheduleArgs),
    /// Serve this workspace's runs, comparisons, reports, registry and
    /// schedules in the browser, until stopped (see docs/ui.md).
    Ui {
        /// The port (0: one the system picks; the address is printed).
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// The address to listen on; anything but loopback needs --users.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Who may sign in: one `NAME TOKEN` line a user (mode 600). Decisions
        /// are recorded in the signed-in user's name.
        #[arg(long, env = "PIPELINE_UI_USERS", value_name = "FILE")]
        users: Option<PathBuf>,
        /// The model registry: a file or a postgres:// URL (default:
        /// $PIPELINE_REGISTRY, else .pipeline/registry.db).
        #[arg(long)]
        registry: Option<String>,
    },
    /// Predict with a trained model over a data file, writing CSV.
    Predict {
        /// registry://GROUP@approved|latest|N, or a model directory.
        #[arg(long)]
        model: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        read: data::ReadArgs,
        /// The registry a registry:// model is resolved in: a file or a
        /// postgres:// URL (default: $PIPELINE_REGISTRY, else .pipeline/registry.db).
        #[arg(long, value_name = "PATH_OR_URL")]
        registry: Option<String>,
    },
    /// Read a data file as the built-ins would and describe its columns.
    Inspect {
        file: PathBuf,
        #[command(flatten)]
        read: data::ReadArgs,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of pipeline files.
    Schema,
    /// The runtime image built-in steps run in on the docker executor.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Run the built-in step laid out at $SAGEMAKER_BASE_DIR (used inside steps).
    #[command(hide = true)]
    Builtin,
    /// Run an AWS Batch job's step: stage its data from the shared store,
    /// run it, store its results (used inside batch jobs).
    #[command(hide = true)]
    BatchNode {
        /// The job's key prefix in the shared store (`jobs/RUN/STEP/ATTEMPT`).
        prefix: String,
    },
    /// Run a step's command and leave none of its processes behind (used by the local executor).
    #[command(hide = true)]
    Supervise {
        /// Where to write why the command could not start.
        #[arg(long)]
        spawn_error: Option<PathBuf>,
        /// Die when this process (the parent) does, checked as it starts.
        #[arg(long)]
        die_with: Option<i32>,
        /// Seconds the step's processes have after SIGTERM before SIGKILL.
        #[arg(long)]
        grace: Option<f64>,
        /// The node's host name, with `--hosts-file` (its `/etc/hosts`).
        #[arg(long, requires = "hosts_file")]
        hostname: Option<String>,
        #[arg(long)]
        hosts_file: Option<PathBuf>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the runtime image (this program and its libraries, from scratch).
    Build {
        /// Also tag it as this (e.g. my-registry/pipeline:1).
        #[arg(long)]
        tag: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The most recent runs.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One run: its steps, their status, outputs and metrics.
    Show {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Follow a run another engine is running (started elsewhere, by the
    /// scheduler, or in another terminal) until it ends: its steps and their
    /// logs as `pipeline run` shows them. Exits as the run does.
    Watch {
        run_id: String,
        /// Its events as JSON lines; the last line is the run summary.
        #[arg(long)]
        json: bool,
        /// Print only the outcome (and why a step failed).
        #[arg(long, short = 'q', conflicts_with = "json")]
        quiet: bool,
    },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: Option<ScheduleCommand>,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Stop after this many firings (runs started or skipped), once their runs end.
    #[arg(long)]
    pub max_runs: Option<usize>,
    /// On SIGTERM or Ctrl-C, cancel running runs instead of letting them finish.
    #[arg(long)]
    pub cancel_on_exit: bool,
    /// Start the scheduler's clock at this time instead of now (RFC 3339; for tests and dry runs).
    #[arg(long, value_name = "RFC3339", conflicts_with = "preview")]
    pub now: Option<String>,
    /// Run the scheduler's clock this many times faster than real time (for tests).
    #[arg(long, value_name = "RATE", conflicts_with = "preview")]
    pub clock_rate: Option<f64>,
    /// Stop (as on SIGTERM) when the scheduler's clock reaches this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", conflicts_with = "preview")]
    pub until: Option<String>,
    /// Print the next firing times of one pipeline's schedule (RFC 3339), run nothing.
    #[arg(long)]
    pub preview: bool,
    /// With --preview: how many firing times.
    #[arg(long, default_value_t = 10, requires = "preview")]
    pub count: usize,
    /// With --preview: the firings after this time (RFC 3339; default: now).
    #[arg(long, value_name = "RFC3339", requires = "preview")]
    pub from: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Each scheduled pipeline: its scheduler, last firing (with its run and outcome) and next firing.
    Status {
        #[arg(long)]
        json: bool,
        /// Show the next firings after this time (RFC 3339; default: now).
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
    },
}

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    // The processes a step runs in read no settings of the workspace's; a
    // reproduction uses no shared store (it neither reads the shared cache
    // nor writes to it).
    if let Command::Reproduce { .. } = cli.command
        && let Some(store) = &cli.store
    {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "`--store {store}` does not apply to reproduce: a reproduction runs in a scratch workspace of its own, without a shared store"
            ))
            .help("leave out --store"),
        ));
    }
    if !matches!(
        cli.command,
        Command::Builtin | Command::Supervise { .. } | Command::Reproduce { .. }
    ) {
        crate::store::remote::configure(&crate::store::Workspace::locate(), cli.store.as_deref())?;
    }
    match cli.command {
        Command::Validate { file, params } => plan::validate(&file, &params),
        Command::Plan {
            file,
            params,
            no_cache,
            json,
        } => plan::plan(&file, &params, no_cache, json),
        Command::Graph {
            file,
            format,
            params,
        } => plan::graph(&file, &params, format),
        Command::Run {
            file,
            params,
            executor,
            jobs,
            no_cache,
            json,
            quiet,
            locked,
        } => {
            let executor = executor.map(|e| parse_executor(&e)).transpose()?;
            run::run(
                &file,
                &params,
                run::RunArgs {
                    executor,
                    jobs,
                    no_cache,
                    display: shell::Display::from_flags(json, quiet),
                    locked,
                },
            )
        }
        Command::Reproduce {
            run_id,
            verify,
            jobs,
            json,
        } => reproduce::reproduce(&run_id, verify, jobs, json),
        Command::Resume {
            run_id,
            jobs,
            json,
            quiet,
        } => run::resume(&run_id, jobs, shell::Display::from_flags(json, quiet)),
        Command::Runs {
            command: RunsCommand::List { limit, json },
        } => runs::list(limit, json),
        Command::Runs {
            command: RunsCommand::Show { run_id, json },
        } => runs::show(&run_id, json),
        Command::Runs {
            command:
                RunsCommand::Watch {
                    run_id,
                    json,
                    quiet,
                },
        } => runs::watch(&run_id, shell::Display::from_flags(json, quiet)),
        Command::Cp { src, dest } => cp::cp(&src, &dest),
        Command::Export {
            run_id,
            output,
            dest,
            format,
        } => export::export(&run_id, &output, &dest, format),
        Command::Logs { run_id, step } => runs::logs(&run_id, step.as_deref()),
        Command::Registry { registry, command } => registry::run(command, registry.as_deref()),
        Command::Ui {
            port,
            bind,
            users,
            registry,
        } => crate::ui::serve(crate::ui::Options {
            bind,
            port,
            users,
            registry: registry::registry_location(registry.as_deref())?,
        }),
        Command::Schedule(a) => match a.command {
            Some(ScheduleCommand::Status { json, now }) => schedule::status(json, now.as_deref()),
            None if a.preview => schedule::preview(&a.files, &a.params, a.count, a.from.as_deref()),
            None => schedule::schedule(&a, cli.store.clone()),
        },
        Command::Predict {
            model,
            data,
            out,
            read,
            registry,
        } => data::predict(&model, &data, &out, &read, registry.as_deref()),
        Command::Inspect { file, read, json } => data::inspect(&file, &read, json),
        Command::Schema => {
            out!("{}", crate::spec::schema::pipeline_schema_text());
            Ok(0)
        }
        Command::Builtin => Ok(crate::exec::builtin::main()),
        #[cfg(feature = "aws")]
        Command::BatchNode { prefix } => Ok(crate::exec::batch::node::main(&prefix)),
        #[cfg(not(feature = "aws"))]
        Command::BatchNode { .. } => Err(crate::error::Error::failed(
            "this build of pipeline has no AWS support (it was built without the `aws` feature)",
        )),
        Command::Supervise {
            spawn_error,
            die_with,
            grace,
            hostname,
            hosts_file,
            command,
        } => Ok(crate::exec::supervise::main(
            crate::exec::supervise::Options {
                spawn_error,
                die_with,
                grace: grace
                    .filter(|g| g.is_finite() && *g >= 0.0)
                    .map(std::time::Duration::from_secs_f64),
                hostname,
                hosts_file,
            },
            command,
        )),
        Command::Image {
            command: ImageCommand::Build { tag },
        } => image_build(tag.as_deref()),
    }
}

/// `pipeline image build`: builds the runtime image, even when it exists.
fn image_build(extra_tag: Option<&str>) -> Result<i32> {
    use crate::exec::docker;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("start: {e}")))?;
    rt.block_on(async {
        let d = docker::connect().await.map_err(Error::failed)?;
        let tag = docker::image::runtime_tag().map_err(Error::failed)?;
        let log = |l: &str| eprintln!("{l}");
        docker::image::build_runtime(&d, &tag, extra_tag, &log)
            .await
            .map_err(Error::failed)?;
        outln!("{tag}");
        if let Some(t) = extra_tag {
            outln!("{t}");
        }
        Ok(0)
    })
}

fn parse_executor(s: &str) -> Result<Executor> {
    Executor::parse(s).ok_or_else(|| {
        Error::invalid(
            Diagnostic::new(format!("unknown executor `{s}` given with --executor"))
                .suggest(s, Executor::NAMES.iter().copied())
                .help(format!("use one of: {}", Executor::NAMES.join(", "))),
        )
    })
}
