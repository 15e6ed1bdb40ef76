//! An AWS Batch client for the engine's batch executor: job definitions
//! registered once for the same needs, jobs submitted with tags, their
//! states read in batches, stopped, and their logs read from CloudWatch Logs.
//!
//! Requests run on the client's own runtime; every method returns a future
//! that any runtime may await (the engine's single-threaded one included),
//! waiting on a channel, never with `block_on`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_batch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_batch::types::{
    ContainerProperties, EvaluateOnExit, JobDefinitionType, JobStatus, JobTimeout, KeyValuePair,
    NodeProperties, NodeRangeProperty, ResourceRequirement, ResourceType, RetryAction,
    RetryStrategy,
};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::config::{self, Rt};

/// The log group AWS Batch writes job output to (the default of the awslogs driver).
pub const LOG_GROUP: &str = "/aws/batch/job";

/// What kind of failure: whether it is the user's to fix before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No credentials, or expired or refused ones.
    Credentials,
    AccessDenied,
    /// The request named something that does not exist or is not valid
    /// (a queue, a job definition, a parameter): AWS Batch's `ClientException`.
    Client,
    /// Could not reach the endpoint, or it failed, after retries.
    Network,
    Other,
}

/// A failure of a Batch or CloudWatch Logs request. Never holds credentials.
#[derive(Debug, Clone)]
pub struct BatchError {
    pub kind: ErrorKind,
    /// What was being done: "submit the job for step `train`", ...
    pub what: String,
    pub detail: String,
}

impl BatchError {
    fn new(kind: ErrorKind, what: impl Into<String>, detail: impl Into<String>) -> Self {
        BatchError {
            kind,
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Whether the user's configuration is at fault (not the network or AWS).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Credentials | ErrorKind::AccessDenied | ErrorKind::Client
        )
    }

    pub fn hint(&self) -> &'static str {
        match self.kind {
            ErrorKind::Credentials => {
                "set credentials the standard way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, `aws sso login`, or an instance role); expired ones must be renewed"
            }
            ErrorKind::AccessDenied => {
                "the credentials in use may not do this: docs/aws.md lists the IAM actions the engine needs (batch:SubmitJob, batch:DescribeJobs, batch:RegisterJobDefinition, batch:TerminateJob, logs:GetLogEvents, ...)"
            }
            ErrorKind::Client => {
                "check the names in `batch:` (job_queue, job_role_arn) and the region (AWS_REGION) they are looked for in; `aws batch describe-job-queues` lists the queues"
            }
            ErrorKind::Network => {
                "AWS Batch could not be reached, after retries: check the network, the region and the endpoint (AWS_ENDPOINT_URL), then `pipeline resume`"
            }
            ErrorKind::Other => "see the detail above",
        }
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.what)?;
        match self.kind {
            ErrorKind::Credentials => write!(f, "the AWS credentials are missing or not valid")?,
            ErrorKind::AccessDenied => write!(f, "access denied")?,
            ErrorKind::Client => write!(f, "refused")?,
            ErrorKind::Network => write!(f, "network error")?,
            ErrorKind::Other => write!(f, "AWS error")?,
        }
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        write!(f, "; {}", self.hint())
    }
}

impl std::error::Error for BatchError {}

fn classify<E, R>(what: &str, err: SdkError<E, R>) -> BatchError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
{
    let code = err.code().map(str::to_string);
    let message = err.message().map(str::to_string);
    let chain = DisplayErrorContext(&err).to_string();
    let detail = match (&code, &message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => config::short(&chain),
    };
    let kind = match code.as_deref() {
        Some(
            "ExpiredToken"
            | "ExpiredTokenException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "InvalidClientTokenId"
            | "IncompleteSignature"
            | "MissingAuthenticationToken",
        ) => ErrorKind::Credentials,
        Some("AccessDenied" | "AccessDeniedException") => ErrorKind::AccessDenied,
        Some("ClientException" | "ResourceNotFoundException" | "InvalidParameterException") => {
            ErrorKind::Client
        }
        _ => match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                if chain.contains("credential") {
                    ErrorKind::Credentials
                } else {
                    ErrorKind::Network
                }
            }
            SdkError::ConstructionFailure(_) if chain.contains("credential") => {
                ErrorKind::Credentials
            }
            SdkError::ResponseError(_) => ErrorKind::Network,
            _ => ErrorKind::Other,
        },
    };
    BatchError::new(kind, what, detail)
}

/// A job definition: what a step needs of where it runs. Two steps with the
/// same needs share one definition (its name is a digest of them), and a
/// definition already registered is used again, not registered anew.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobDefinition {
    pub image: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub job_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    /// Attempts AWS Batch makes itself when an instance is taken away
    /// (`Host EC2*`, spot reclaims); other failures end the job at once.
    pub attempts: u32,
    /// `attemptDurationSeconds` (AWS Batch's minimum is 60).
    pub timeout_s: Option<u64>,
    /// Above 1: a multi-node parallel job of this many nodes, node 0 the main one.
    pub nodes: u32,
    /// The command, with `Ref::NAME` for what each job gives in its
    /// `parameters` (AWS Batch substitutes them; the same on every node).
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
}

impl JobDefinition {
    /// The definition's name: `pipeline-` and a digest of everything above,
    /// so that the same needs always find the same definition.
    pub fn name(&self) -> String {
        let json = serde_json::to_vec(self).expect("json");
        let d = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &json);
        format!("pipeline-{d:016x}")
    }
}

/// A job to submit.
#[derive(Debug, Clone)]
pub struct Submit {
    pub name: String,
    pub queue: String,
    /// The job definition's ARN (from [`Batch::job_definition`]).
    pub definition: String,
    /// Values for the definition's command's `Ref::NAME`s.
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Submitted,
    Pending,
    Runnable,
    Starting,
    Running,
    Succeeded,
    Failed,
}

impl State {
    pub fn is_done(self) -> bool {
        matches!(self, State::Succeeded | State::Failed)
    }
    pub fn name(self) -> &'static str {
        match self {
            State::Submitted => "SUBMITTED",
            State::Pending => "PENDING",
            State::Runnable => "RUNNABLE",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Succeeded => "SUCCEEDED",
            State::Failed => "FAILED",
        }
    }
}

/// What `DescribeJobs` says of one job.
#[derive(Debug, Clone)]
pub struct JobState {
    pub id: String,
    pub state: State,
    pub status_reason: Option<String>,
    /// The container's exit code and reason, once it ended.
    pub exit_code: Option<i32>,
    pub container_reason: Option<String>,
    /// The job's log stream in [`LOG_GROUP`], once it has one.
    pub log_stream: Option<String>,
}

/// A queue as `DescribeJobQueues` gives it.
#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub state: String,
    pub status: String,
    pub compute_environments: Vec<String>,
}

/// Settings of the client; the rest comes from the standard AWS chain.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    pub region: Option<String>,
    /// Else `AWS_ENDPOINT_URL_BATCH` / `AWS_ENDPOINT_URL` (the SDK's own lookup).
    pub endpoint_url: Option<String>,
    /// An access key and secret key instead of the standard chain (tests).
    pub static_credentials: Option<(String, String)>,
}

struct Inner {
    rt: Rt,
    batch: aws_sdk_batch::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

/// An AWS Batch and CloudWatch Logs client. Cheap to clone.
#[derive(Clone)]
pub struct Batch {
    inner: Arc<Inner>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl Batch {
    /// Sets up the clients. Makes no request.
    pub fn connect(opts: BatchOptions) -> Result<Batch, BatchError> {
        let rt = Rt::start("batch")
            .map_err(|e| BatchError::new(ErrorKind::Other, "start the AWS Batch client", e))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.handle().spawn(async move {
            let shared = config::load(
                opts.region.as_deref(),
                opts.endpoint_url.as_deref(),
                opts.static_credentials
                    .as_ref()
                    .map(|(k, s)| (k.as_str(), s.as_str())),
                Duration::from_secs(30),
            )
            .await;
            let batch = aws_sdk_batch::Client::new(&shared);
            let logs = aws_sdk_cloudwatchlogs::Client::new(&shared);
            let _ = tx.send((batch, logs));
        });
        let (batch, logs) = rx.recv().map_err(|_| {
            BatchError::new(
                ErrorKind::Other,
                "start the AWS Batch client",
                "its set-up failed",
            )
        })?;
        Ok(Batch {
            inner: Arc::new(Inner { rt, batch, logs }),
        })
    }

    /// Runs `fut` on the client's runtime; the returned future waits for it.
    fn on_rt<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> impl std::future::Future<Output = T> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.rt.handle().spawn(async move {
            let _ = tx.send(fut.await);
        });
        async move { rx.await.expect("the client's runtime ran the request") }
    }

    /// The queue `name`, or `None` when there is none of that name.
    pub fn queue(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Option<Queue>, BatchError>> + Send + 'static {
        let c = self.inner.batch.clone();
        let name = name.to_string();
        self.on_rt(async move {
            let what = format!("look up the job queue `{name}`");
            let out = c
                .describe_job_queues()
                .job_queues(&name)
                .send()
                .await
                .map_err(|e| classify(&what, e))?;
            Ok(out.job_queues().first().map(|q| Queue {
                name: q.job_queue_name().unwrap_or_default().to_string(),
                state: q
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                status: q
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                compute_environments: q
                    .compute_environment_order()
                    .iter()
                    .filter_map(|o| o.compute_environment().map(str::to_string))
                    .collect(),
            }))
        })
    }

    /// The state and status reason of each compute environment named.
    pub fn compute_environments(
        &self,
        names: Vec<String>,
    ) -> impl std::future::Future<Output = Result<Vec<(String, String, String)>, BatchError>>
    + Send
    + 'static {
        let c = self.inner.batch.clone();
        self.on_rt(async move {
            let out = c
                .describe_compute_environments()
                .set_compute_environments(Some(names))
                .send()
                .await
                .map_err(|e| classify("look up the compute environments", e))?;
            Ok(out
                .compute_environments()
                .iter()
                .map(|e| {
                    (
                        e.compute_environment_name().unwrap_or_default().to_string(),
                        e.state()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        e.status_reason().unwrap_or_default().to_string(),
                    )
                })
                .collect())
        })
    }

    /// The ARN of an active job definition for `def`, registered when there is none.
    pub fn job_definition(
        &self,
        def: &JobDefinition,
    ) -> impl std::future::Future<Output = Result<String, BatchError>> + Send + 'static {
        let c = self.inner.batch.clone();
        let def = def.clone();
        self.on_rt(async move {
            let name = def.name();
            let what = format!("look up the job definition `{name}`");
            let found = c
                .describe_job_definitions()
                .job_definition_name(&name)
                .status("ACTIVE")
                .send()
                .await
                .map_err(|e| classify(&what, e))?;
            if let Some(arn) = found
                .job_definitions()
                .iter()
                .filter(|d| d.job_definition_name() == Some(name.as_str()))
                .max_by_key(|d| d.revision())
                .and_then(|d| d.job_definition_arn())
            {
                return Ok(arn.to_string());
            }
            let mut props = ContainerProperties::builder()
                .image(&def.image)
                .set_command(Some(def.command.clone()))
                .resource_requirements(
                    ResourceRequirement::builder()
                        .r#type(ResourceType::Vcpu)
                        .value(def.vcpus.max(1).to_string())
                        .build(),
                )
                .resource_requirements(
                    ResourceRequirement::builder()
                        .r#type(ResourceType::Memory)
                        .value(def.memory_mib.max(4).to_string())
                        .build(),
                );
            for (k, v) in &def.environment {
                props = props.environment(KeyValuePair::builder().name(k).value(v).build());
            }
            if let Some(r) = &def.job_role_arn {
                props = props.job_role_arn(r);
            }
            if let Some(r) = &def.execution_role_arn {
                props = props.execution_role_arn(r);
            }
            let retry = RetryStrategy::builder()
                .attempts(def.attempts.clamp(1, 10) as i32)
                .evaluate_on_exit(
                    EvaluateOnExit::builder()
                        .on_status_reason("Host EC2*")
                        .action(RetryAction::Retry)
                        .build(),
                )
                .evaluate_on_exit(
                    EvaluateOnExit::builder()
                        .on_reason("*")
                        .action(RetryAction::Exit)
                        .build(),
                )
                .build();
            let mut req = c.register_job_definition().job_definition_name(&name);
            req = if def.nodes > 1 {
                req.r#type(JobDefinitionType::Multinode).node_properties(
                    NodeProperties::builder()
                        .num_nodes(def.nodes as i32)
                        .main_node(0)
                        .node_range_properties(
                            NodeRangeProperty::builder()
                                .target_nodes("0:")
                                .container(props.build())
                                .build(),
                        )
                        .build(),
                )
            } else {
                req.r#type(JobDefinitionType::Container)
                    .container_properties(props.build())
            };
            let mut req = req
                .retry_strategy(retry)
                .tags("pipeline:engine", env!("CARGO_PKG_VERSION"));
            if let Some(t) = def.timeout_s {
                req = req.timeout(
                    JobTimeout::builder()
                        .attempt_duration_seconds(t.clamp(60, i32::MAX as u64) as i32)
                        .build(),
                );
            }
            let out = req
                .send()
                .await
                .map_err(|e| classify(&format!("register the job definition `{name}`"), e))?;
            out.job_definition_arn()
                .map(str::to_string)
                .ok_or_else(|| BatchError::new(ErrorKind::Other, what, "no ARN in the answer"))
        })
    }

    /// Submits a job; its ID.
    pub fn submit(
        &self,
        s: Submit,
    ) -> impl std::future::Future<Output = Result<String, BatchError>> + Send + 'static {
        let c = self.inner.batch.clone();
        self.on_rt(async move {
            let what = format!("submit the job `{}` to the queue `{}`", s.name, s.queue);
            let mut req = c
                .submit_job()
                .job_name(&s.name)
                .job_queue(&s.queue)
                .job_definition(&s.definition)
                .set_parameters(Some(s.parameters.clone().into_iter().collect()))
                .propagate_tags(true);
            for (k, v) in &s.tags {
                req = req.tags(k, v);
            }
            let out = req.send().await.map_err(|e| classify(&what, e))?;
            out.job_id()
                .map(str::to_string)
                .ok_or_else(|| BatchError::new(ErrorKind::Other, what, "no job ID in the answer"))
        })
    }

    /// The states of these jobs (up to 100 a request, as AWS Batch allows);
    /// a job AWS Batch does not know is left out.
    pub fn describe(
        &self,
        ids: Vec<String>,
    ) -> impl std::future::Future<Output = Result<Vec<JobState>, BatchError>> + Send + 'static {
        let c = self.inner.batch.clone();
        self.on_rt(async move {
            let mut states = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(100) {
                let out = c
                    .describe_jobs()
                    .set_jobs(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| classify("read the jobs' states", e))?;
                for j in out.jobs() {
                    let state = match j.status() {
                        Some(JobStatus::Submitted) => State::Submitted,
                        Some(JobStatus::Pending) => State::Pending,
                        Some(JobStatus::Runnable) => State::Runnable,
                        Some(JobStatus::Starting) => State::Starting,
                        Some(JobStatus::Running) => State::Running,
                        Some(JobStatus::Succeeded) => State::Succeeded,
                        Some(JobStatus::Failed) => State::Failed,
                        _ => State::Pending,
                    };
                    let container = j.container();
                    // The last attempt's container, where the job's own has none.
                    let last = j.attempts().last().and_then(|a| a.container());
                    states.push(JobState {
                        id: j.job_id().unwrap_or_default().to_string(),
                        state,
                        status_reason: j.status_reason().map(str::to_string),
                        exit_code: container
                            .and_then(|c| c.exit_code())
                            .or_else(|| last.and_then(|c| c.exit_code())),
                        container_reason: container
                            .and_then(|c| c.reason())
                            .or_else(|| last.and_then(|c| c.reason()))
                            .map(str::to_string),
                        log_stream: container
                            .and_then(|c| c.log_stream_name())
                            .or_else(|| last.and_then(|c| c.log_stream_name()))
                            .map(str::to_string),
                    });
                }
            }
            Ok(states)
        })
    }

    /// The IDs of the jobs named `name` in `queue`, in any state (newest
    /// first, as AWS Batch lists them).
    pub fn jobs_named(
        &self,
        queue: &str,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Vec<String>, BatchError>> + Send + 'static {
        let c = self.inner.batch.clone();
        let (queue, name) = (queue.to_string(), name.to_string());
        self.on_rt(async move {
            let what = format!("look for the job `{name}` in the queue `{queue}`");
            let mut ids = Vec::new();
            let mut token: Option<String> = None;
            // A job name is the engine's own and unique to an attempt: one page is the usual answer.
            for _ in 0..20 {
                let out = c
                    .list_jobs()
                    .job_queue(&queue)
                    .filters(
                        aws_sdk_batch::types::KeyValuesPair::builder()
                            .name("JOB_NAME")
                            .values(&name)
                            .build(),
                    )
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify(&what, e))?;
                ids.extend(
                    out.job_summary_list()
                        .iter()
                        .filter(|j| j.job_name() == Some(name.as_str()))
                        .filter_map(|j| j.job_id().map(str::to_string)),
                );
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            Ok(ids)
        })
    }

    /// Stops a job, whatever its state (a job not yet started is cancelled).
    pub fn terminate(
        &self,
        id: &str,
        reason: &str,
    ) -> impl std::future::Future<Output = Result<(), BatchError>> + Send + 'static {
        let c = self.inner.batch.clone();
        let (id, reason) = (id.to_string(), reason.to_string());
        self.on_rt(async move {
            c.terminate_job()
                .job_id(&id)
                .reason(reason)
                .send()
                .await
                .map_err(|e| classify(&format!("stop the job {id}"), e))?;
            Ok(())
        })
    }

    /// The log lines of `stream` after `token` (from the start without one),
    /// and the token to go on from. A stream that does not exist yet has no lines.
    pub fn log_lines(
        &self,
        stream: &str,
        token: Option<String>,
    ) -> impl std::future::Future<Output = Result<(Vec<String>, Option<String>), BatchError>>
    + Send
    + 'static {
        let c = self.inner.logs.clone();
        let stream = stream.to_string();
        self.on_rt(async move {
            let mut lines = Vec::new();
            let mut token = token;
            // Pages until the token stops moving (the end for now), bounded.
            for _ in 0..100 {
                let r = c
                    .get_log_events()
                    .log_group_name(LOG_GROUP)
                    .log_stream_name(&stream)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await;
                let out = match r {
                    Ok(o) => o,
                    Err(e) if e.code() == Some("ResourceNotFoundException") => {
                        return Ok((lines, token));
                    }
                    Err(e) => {
                        return Err(classify(&format!("read the job's log {stream}"), e));
                    }
                };
                let n = out.events().len();
                lines.extend(
                    out.events()
                        .iter()
                        .map(|e| e.message().unwrap_or_default().to_string()),
                );
                let next = out.next_forward_token().map(str::to_string);
                if n == 0 || next.is_none() || next == token {
                    return Ok((lines, next.or(token)));
                }
                token = next;
            }
            Ok((lines, token))
        })
    }
}
