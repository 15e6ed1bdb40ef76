//! The docker backend: each node of a step is a container on the local Docker
//! Engine, talked to through its API (bollard), the way SageMaker local mode
//! and AWS Batch run training jobs.
//!
//! - Built-in steps run in the runtime image ([`image`]), built on first use;
//!   a step's own `image:` is started as `IMAGE train` (or its `run:`).
//! - The step's root is mounted piecewise at `/opt/ml`: config and channels
//!   read-only, `model/`, `output/` and `checkpoints/` writable; pipe-mode
//!   channels' named pipes come through a directory of their own.
//! - `resources.cpus`/`memory` become limits, `network: none` isolates;
//!   containers run as a non-root user.
//! - Multi-node steps get a private bridge network; node `algo-1` is the main
//!   node, whose address the others get as
//!   `AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`.
//! - Every container and network an attempt creates is removed when it ends,
//!   however it ends; ones left by an engine that was killed are removed the
//!   next time the backend connects (they carry the owner's process id).

pub mod image;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount,
    MountType, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::{Mutex, OnceCell, watch};

use super::pipe::{Feeder, PipeChannel};
use super::{
    Backend, BoxFuture, FailureKind, LineWriter, NodeJob, Outcome, StepJob, failed,
    read_failure_file, wait_cancelled,
};
use crate::spec::model::Network;

/// Where the runtime image keeps the `pipeline` program.
pub const RUNTIME_PROGRAM: &str = "/usr/local/bin/pipeline";
/// The user containers run as when the engine itself runs as root.
pub const CONTAINER_UID: u32 = 10001;
/// The port a multi-node step's main node listens on.
pub const COORDINATOR_PORT: u16 = 7070;
/// Labels on everything the backend creates.
const LABEL_OWNER: &str = "org.pipeline.owner-pid";
const LABEL_JOB: &str = "org.pipeline.job";
/// After the first node fails, how long the others may take to fail on their
/// own (so the node that caused it is the one named).
const SETTLE: Duration = Duration::from_millis(1500);
/// After the main node succeeds, how long the other nodes may take to finish.
const WORKERS_AFTER_MAIN: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
pub struct DockerBackend {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    client: OnceCell<Result<Docker, String>>,
    runtime: Mutex<Option<String>>,
}

impl DockerBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Connects to the engine named by `DOCKER_HOST` (else the local socket) and
/// agrees on an API version it speaks.
pub async fn connect() -> Result<Docker, String> {
    let where_ =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let help = "is the Docker Engine running, and may this user use it? (`docker info` tells)";
    let d = Docker::connect_with_local_defaults()
        .map_err(|e| format!("cannot reach the Docker Engine at {where_}: {e}; {help}"))?;
    let d = d
        .negotiate_version()
        .await
        .map_err(|e| format!("cannot reach the Docker Engine at {where_}: {e}; {help}"))?;
    d.ping()
        .await
        .map_err(|e| format!("cannot reach the Docker Engine at {where_}: {e}; {help}"))?;
    Ok(d)
}

impl Inner {
    async fn client(&self) -> Result<Docker, String> {
        self.client
            .get_or_init(|| async {
                let d = connect().await?;
                reap_orphans(&d).await;
                Ok(d)
            })
            .await
            .clone()
    }

    /// The runtime image's tag, building the image if this engine lacks it.
    async fn runtime_image(
        &self,
        docker: &Docker,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<String, String> {
        let mut built = self.runtime.lock().await;
        if let Some(t) = built.as_ref() {
            return Ok(t.clone());
        }
        let tag = image::ensure_runtime(docker, log).await?;
        *built = Some(tag.clone());
        Ok(tag)
    }
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn run(&self, job: StepJob, cancel: watch::Receiver<bool>) -> BoxFuture<Outcome> {
        let inner = self.inner.clone();
        Box::pin(async move { run_docker(inner, job, cancel).await })
    }
}

/// What an attempt created, to remove when it ends.
#[derive(Default)]
struct Created {
    containers: Vec<String>,
    network: Option<String>,
}

impl Created {
    async fn remove(&self, docker: &Docker) {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        for c in &self.containers {
            let _ = docker.remove_container(c, Some(opts.clone())).await;
        }
        if let Some(n) = &self.network {
            let _ = docker.remove_network(n).await;
        }
    }
}

async fn run_docker(inner: Arc<Inner>, job: StepJob, cancel: watch::Receiver<bool>) -> Outcome {
    // Taken first, so that nothing is left behind however this ends.
    let pipes: Vec<(PathBuf, Vec<PipeChannel>)> = job
        .nodes()
        .into_iter()
        .map(|n| {
            let c = super::pipe::take(&n.root);
            (n.root, c)
        })
        .filter(|(_, c)| !c.is_empty())
        .collect();
    let docker = match inner.client().await {
        Ok(d) => d,
        Err(e) => return failed(FailureKind::Spawn, e, None),
    };
    let mut engine_log =
        match LineWriter::open(&job.log_path, &job.step, None, job.live_log.clone())
            .map(|w| w.masking(&job.secrets))
        {
            Ok(w) => w,
            Err(e) => {
                return failed(
                    FailureKind::Spawn,
                    format!("cannot open the log {}: {e}", job.log_path.display()),
                    None,
                );
            }
        };
    let image = match &job.image {
        Some(i) => match docker.inspect_image(i).await {
            Ok(_) => i.clone(),
            Err(_) => {
                return failed(
                    FailureKind::Spawn,
                    format!(
                        "the image `{i}` is not on this Docker Engine, and images are never pulled: build it first (`docker build -t {i} DIR`)"
                    ),
                    None,
                );
            }
        },
        None => {
            let lines = std::sync::Mutex::new(Vec::new());
            let log = |l: &str| lines.lock().expect("lock").push(l.to_string());
            let r = inner.runtime_image(&docker, &log).await;
            for l in lines.into_inner().expect("lock") {
                engine_log.write(format!("{l}\n").as_bytes());
            }
            match r {
                Ok(t) => t,
                Err(e) => return failed(FailureKind::Spawn, e, None),
            }
        }
    };
    let feeders = match start_feeders(pipes) {
        Ok(f) => f,
        Err(e) => return failed(FailureKind::Spawn, e, None),
    };
    let mut created = Created::default();
    let outcome = supervise(&docker, &job, &image, &mut created, cancel).await;
    created.remove(&docker).await;
    // The containers are gone: nothing reads the pipes any more.
    let error = tokio::task::spawn_blocking(move || {
        let errors: Vec<Option<String>> = feeders
            .into_iter()
            .map(|(dir, f)| {
                let e = f.finish();
                // Empty mount points are all that is left.
                let _ = std::fs::remove_dir_all(dir);
                e
            })
            .collect();
        errors.into_iter().flatten().next()
    })
    .await
    .unwrap_or(None);
    super::pipe::with_feed_error(outcome, error)
}

/// Where a node's named pipes are made on the docker executor: a directory
/// mounted whole at `/opt/ml/input/data` (a later epoch's pipe appears in
/// the container as it is made), holding an empty mount point for each
/// file-mode channel entry, which is mounted on top of it as usual.
const PIPE_DIR: &str = "input/pipes";

/// Starts feeding each node's pipe-mode channels, into pipes the container's
/// user may open.
fn start_feeders(
    pipes: Vec<(PathBuf, Vec<PipeChannel>)>,
) -> Result<Vec<(PathBuf, Feeder)>, String> {
    // SAFETY: a getter without side effects.
    let owner = (unsafe { libc::geteuid() } == 0).then(container_user);
    let mut feeders = Vec::new();
    for (root, channels) in pipes {
        let dir = root.join(PIPE_DIR);
        let prepared = std::fs::create_dir(&dir)
            .and_then(|()| mount_points(&root.join("input/data"), &dir))
            .and_then(|()| Feeder::start(&dir, channels, owner));
        match prepared {
            Ok(f) => feeders.push((dir, f)),
            Err(e) => {
                return Err(format!(
                    "prepare the pipe-mode channels in {}: {e}",
                    dir.display()
                ));
            }
        }
    }
    Ok(feeders)
}

/// Makes in `dir` an empty mount point for every mount [`mounts`] makes of
/// the entries of `data` (a directory for a directory, a file for a file).
fn mount_points(data: &Path, dir: &Path) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(data)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let at = dir.join(e.file_name());
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.file_type().is_symlink() {
            if std::fs::metadata(&p)?.is_dir() {
                std::fs::create_dir(&at)?;
            } else {
                std::fs::File::create(&at)?;
            }
        } else if meta.is_dir() {
            std::fs::create_dir(&at)?;
            mount_points(&p, &at)?;
        } else {
            std::fs::File::create(&at)?;
        }
    }
    Ok(())
}

/// A container's name: `pipeline-RUN-STEP-ATTEMPT-HOST`, in the characters
/// the engine allows.
fn container_name(job: &StepJob, host: &str) -> String {
    sanitize(&format!("pipeline-{}-{host}", job.job_id()))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The user the containers run as: ours, unless we are root.
fn container_user() -> (u32, u32) {
    // SAFETY: getters without side effects.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        (CONTAINER_UID, CONTAINER_UID)
    } else {
        (uid, gid)
    }
}

/// Gives the container's user the directories it writes (we are root when
/// the two differ).
fn hand_over(root: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    // SAFETY: as above.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    for d in ["model", "output", "checkpoints", "code"] {
        let p = root.join(d);
        if d == "code" && !p.is_dir() {
            continue;
        }
        chown_tree(&std::fs::canonicalize(p)?, uid, gid)?;
    }
    Ok(())
}

fn chown_tree(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
    let meta = std::fs::symlink_metadata(p)?;
    if meta.is_dir() {
        for e in std::fs::read_dir(p)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The node's root as mounts under `/opt/ml`: config and channels read-only
/// (the files the channel links point at), the rest writable.
fn mounts(root: &Path) -> std::io::Result<Vec<Mount>> {
    let bind = |source: PathBuf, target: String, read_only: bool| Mount {
        target: Some(target),
        source: Some(source.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut m = vec![bind(
        root.join("input/config"),
        "/opt/ml/input/config".into(),
        true,
    )];
    let pipes = root.join(PIPE_DIR);
    if pipes.is_dir() {
        // Named pipes: the directory whole (see `PIPE_DIR`), before what goes on top.
        m.push(bind(pipes, "/opt/ml/input/data".into(), true));
    }
    let data = root.join("input/data");
    let mut channels: Vec<_> = std::fs::read_dir(&data)?.collect::<Result<_, _>>()?;
    channels.sort_by_key(|e| e.file_name());
    for ch in channels {
        let target = format!("/opt/ml/input/data/{}", ch.file_name().to_string_lossy());
        let path = ch.path();
        if std::fs::symlink_metadata(&path)?.file_type().is_symlink() {
            m.push(bind(std::fs::canonicalize(&path)?, target, true));
        } else {
            link_targets(&path, &target, &mut |src, dst| m.push(bind(src, dst, true)))?;
        }
    }
    for (d, target) in [
        ("model", "/opt/ml/model"),
        ("output", "/opt/ml/output"),
        ("checkpoints", "/opt/ml/checkpoints"),
    ] {
        m.push(bind(
            std::fs::canonicalize(root.join(d))?,
            target.into(),
            false,
        ));
    }
    // The user's code (`source_dir`), a copy of its own: writable, as SageMaker's.
    let code = root.join("code");
    if code.is_dir() {
        m.push(bind(code, "/opt/ml/code".into(), false));
    }
    Ok(m)
}

/// The links under a channel directory, as (what they point at, where).
fn link_targets(
    dir: &Path,
    target: &str,
    add: &mut dyn FnMut(PathBuf, String),
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let t = format!("{target}/{}", e.file_name().to_string_lossy());
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.file_type().is_symlink() {
            add(std::fs::canonicalize(&p)?, t);
        } else if meta.is_dir() {
            link_targets(&p, &t, add)?;
        } else {
            add(p, t);
        }
    }
    Ok(())
}

/// The address block private networks are carved from: /23s of 10.213/16.
const SUBNET_FIRST_OCTETS: (u8, u8) = (10, 213);

/// Creates a multi-node step's private network on the first free /23 of
/// 10.213.0.0/16, and gives node `i` the fixed address `.2 + i` in it: the
/// main node's address must be known before the others start, and must stay
/// its own even if it exits first.
async fn create_network(
    docker: &Docker,
    name: &str,
    internal: bool,
    labels: &HashMap<String, String>,
    nodes: usize,
) -> Result<Vec<std::net::Ipv4Addr>, String> {
    let (a, b) = SUBNET_FIRST_OCTETS;
    let mut last_err = String::new();
    for block in 0..128u8 {
        let base = std::net::Ipv4Addr::new(a, b, block * 2, 0);
        let first = u32::from(base);
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(labels.clone()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(format!("{base}/23")),
                    gateway: Some(std::net::Ipv4Addr::from(first + 1).to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match docker.create_network(req).await {
            Ok(_) => {
                return Ok((0..nodes as u32)
                    .map(|i| std::net::Ipv4Addr::from(first + 2 + i))
                    .collect());
            }
            // Taken by another network (ours or not): try the next block.
            Err(e) if e.to_string().contains("overlap") => last_err = e.to_string(),
            Err(e) => return Err(format!("create the step's private network {name}: {e}")),
        }
    }
    Err(format!(
        "create the step's private network {name}: no free /23 left in {a}.{b}.0.0/16 ({last_err})"
    ))
}

/// How one node ended.
#[derive(Debug, Clone)]
struct Exit {
    node: usize,
    code: i64,
}

async fn wait_exit(docker: Docker, name: String, node: usize) -> Result<Exit, String> {
    let mut s = docker.wait_container(&name, None);
    match s.next().await {
        Some(Ok(r)) => Ok(Exit {
            node,
            code: r.status_code,
        }),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            Ok(Exit { node, code })
        }
        Some(Err(e)) => Err(format!("waiting for container {name}: {e}")),
        None => Err(format!("waiting for container {name}: no answer")),
    }
}

/// Follows a container's output into the step's log until it stops.
fn follow_logs(docker: &Docker, name: &str, mut w: LineWriter) -> tokio::task::JoinHandle<()> {
    let docker = docker.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        let opts = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let mut s = docker.logs(&name, Some(opts));
        while let Some(Ok(out)) = s.next().await {
            w.write(&out.into_bytes());
        }
        w.finish();
    })
}

async fn supervise(
    docker: &Docker,
    job: &StepJob,
    image: &str,
    created: &mut Created,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let nodes = job.nodes();
    let multi = nodes.len() > 1;
    let (uid, gid) = container_user();
    let labels = HashMap::from([
        (LABEL_OWNER.to_string(), std::process::id().to_string()),
        (LABEL_JOB.to_string(), job.job_id()),
    ]);
    let mut addresses: Vec<std::net::Ipv4Addr> = Vec::new();
    let network_mode = if multi {
        let name = sanitize(&format!("pipeline-{}", job.job_id()));
        match create_network(
            docker,
            &name,
            job.network == Network::None,
            &labels,
            nodes.len(),
        )
        .await
        {
            Ok(a) => addresses = a,
            Err(e) => return failed(FailureKind::Spawn, e, None),
        }
        created.network = Some(name.clone());
        name
    } else if job.network == Network::None {
        "none".to_string()
    } else {
        "bridge".to_string()
    };
    let main_addr = addresses.first().map(|a| a.to_string());
    let mut names = Vec::new();
    let mut log_tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let name = container_name(job, &node.host);
        let config = match container_config(
            job,
            node,
            image,
            &network_mode,
            addresses.get(i).copied(),
            main_addr.as_deref().filter(|_| i > 0),
            (uid, gid),
            &labels,
        ) {
            Ok(c) => c,
            Err(e) => return failed(FailureKind::Spawn, e, None),
        };
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        if let Err(e) = docker.create_container(Some(opts), config).await {
            return failed(
                FailureKind::Spawn,
                format!("create the container for {}: {e}", node.host),
                None,
            );
        }
        created.containers.push(name.clone());
        let node_tag = multi.then(|| node.host.clone());
        let writer =
            match LineWriter::open(&job.log_path, &job.step, node_tag, job.live_log.clone())
                .map(|w| w.masking(&job.secrets))
            {
                Ok(w) => w,
                Err(e) => {
                    return failed(
                        FailureKind::Spawn,
                        format!("cannot open the log {}: {e}", job.log_path.display()),
                        None,
                    );
                }
            };
        if let Err(e) = docker.start_container(&name, None).await {
            return failed(
                FailureKind::Spawn,
                format!("start the container for {}: {e}", node.host),
                None,
            );
        }
        // From the start of its output, even if it already ended.
        log_tasks.push(follow_logs(docker, &name, writer));
        names.push(name);
    }

    let mut waits = futures_util::stream::FuturesUnordered::new();
    for (i, n) in names.iter().enumerate() {
        waits.push(wait_exit(docker.clone(), n.clone(), i));
    }
    let deadline = async {
        match job.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut exits: Vec<Exit> = Vec::new();
    enum End {
        Done,
        Failed,
        Timeout,
        Cancelled,
        Lost(String),
    }
    let end = loop {
        tokio::select! {
            w = waits.next() => match w {
                None => break End::Done,
                Some(Err(e)) => break End::Lost(e),
                Some(Ok(x)) => {
                    let code = x.code;
                    let node = x.node;
                    exits.push(x);
                    if code != 0 {
                        break End::Failed;
                    }
                    if node == 0 && !waits.is_empty() {
                        // The main node is done: the others get a while to finish.
                        let _ = tokio::time::timeout(WORKERS_AFTER_MAIN, async {
                            while let Some(Ok(x)) = waits.next().await { exits.push(x); }
                        }).await;
                        break End::Done;
                    }
                }
            },
            _ = &mut deadline => break End::Timeout,
            _ = wait_cancelled(&mut cancel) => break End::Cancelled,
        }
    };
    if matches!(end, End::Failed) {
        // Give the other nodes a moment to end on their own, so the node that
        // caused the failure is told apart from the ones that lost it.
        let _ = tokio::time::timeout(SETTLE, async {
            while let Some(Ok(x)) = waits.next().await {
                exits.push(x);
            }
        })
        .await;
    }
    // Stop whatever still runs.
    // At once, so that each has the whole grace period.
    let grace = i32::try_from(job.stop_grace.as_secs()).unwrap_or(i32::MAX);
    let stop = StopContainerOptionsBuilder::new().t(grace).build();
    let stops = names
        .iter()
        .enumerate()
        .filter(|(i, _)| !exits.iter().any(|x| x.node == *i))
        .map(|(_, n)| docker.stop_container(n, Some(stop.clone())));
    let _ = futures_util::future::join_all(stops).await;
    for t in log_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    match end {
        End::Done => match exits.iter().find(|x| x.node == 0) {
            Some(x) if x.code == 0 => Outcome::Succeeded,
            _ => failed(
                FailureKind::ExitCode,
                "the main node did not finish".into(),
                None,
            ),
        },
        End::Timeout => failed(
            FailureKind::Timeout,
            format!(
                "timed out after {}",
                crate::spec::model::duration::format(job.timeout.unwrap_or_default())
            ),
            None,
        ),
        End::Cancelled => failed(
            FailureKind::Cancelled,
            "stopped: the run was cancelled".into(),
            None,
        ),
        End::Lost(e) => failed(FailureKind::Spawn, e, None),
        End::Failed => blame(docker, job, &nodes, &names, &exits).await,
    }
}

#[allow(clippy::too_many_arguments)]
fn container_config(
    job: &StepJob,
    node: &NodeJob,
    image: &str,
    network_mode: &str,
    address: Option<std::net::Ipv4Addr>,
    main_addr: Option<&str>,
    (uid, gid): (u32, u32),
    labels: &HashMap<String, String>,
) -> Result<ContainerCreateBody, String> {
    hand_over(&node.root, uid, gid).map_err(|e| {
        format!(
            "prepare {} for the container's user: {e}",
            node.root.display()
        )
    })?;
    let mounts = mounts(&node.root).map_err(|e| {
        format!(
            "mount the step's directories ({}): {e}",
            node.root.display()
        )
    })?;
    let multi = address.is_some();
    let mut env: Vec<String> = node.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if multi {
        env.push(format!("PIPELINE_COORDINATOR_PORT={COORDINATOR_PORT}"));
        env.push(format!("PIPELINE_JOB_ID={}", job.job_id()));
        if let Some(a) = main_addr {
            env.push(format!("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS={a}"));
        }
    }
    let cmd = if job.argv.is_empty() {
        vec!["train".to_string()]
    } else {
        job.argv.clone()
    };
    let endpoints = address.map(|a| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network_mode.to_string(),
            EndpointSettings {
                aliases: Some(vec![node.host.clone()]),
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(a.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )])),
    });
    Ok(ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(cmd),
        env: Some(env),
        hostname: Some(node.host.clone()),
        user: Some(format!("{uid}:{gid}")),
        working_dir: Some(
            if job.in_code_dir {
                "/opt/ml/code"
            } else {
                "/opt/ml"
            }
            .into(),
        ),
        labels: Some(labels.clone()),
        networking_config: endpoints,
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            network_mode: Some(network_mode.to_string()),
            nano_cpus: job.resources.cpus.map(|c| (c * 1e9) as i64),
            memory: job.resources.memory.map(|m| m as i64),
            // No swap: a container that outgrows its memory is stopped, not slowed.
            memory_swap: job.resources.memory.map(|m| m as i64),
            init: Some(true),
            security_opt: Some(vec!["no-new-privileges".into()]),
            // With no network the node's own name is not in the container's
            // hosts file; SageMaker code (its training toolkit) looks it up.
            extra_hosts: (network_mode == "none").then(|| vec![format!("{}:127.0.0.1", node.host)]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The failure of a step one of whose nodes failed, naming the node that
/// caused it: out of memory first, then a node killed from outside, then
/// the first to fail.
async fn blame(
    docker: &Docker,
    job: &StepJob,
    nodes: &[NodeJob],
    names: &[String],
    exits: &[Exit],
) -> Outcome {
    let mut oom = Vec::new();
    for x in exits {
        let killed = docker
            .inspect_container(&names[x.node], None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        if killed {
            oom.push(x.node);
        }
    }
    let multi = nodes.len() > 1;
    let who = |i: usize| {
        if multi {
            format!("node {} (index {i}): ", nodes[i].host)
        } else {
            String::new()
        }
    };
    if let Some(&i) = oom.first() {
        let limit = job
            .resources
            .memory
            .map(|m| format!(" of {}", mebibytes(m)))
            .unwrap_or_default();
        return failed(
            FailureKind::OutOfMemory,
            format!(
                "{}ran out of memory: the kernel killed it at its limit{limit}; raise `resources.memory`",
                who(i)
            ),
            Some(137),
        );
    }
    let failing: Vec<&Exit> = exits.iter().filter(|x| x.code != 0).collect();
    let chosen = failing
        .iter()
        .find(|x| x.code >= 128)
        .or(failing.first())
        .copied();
    let Some(x) = chosen else {
        return failed(FailureKind::ExitCode, "a node failed".into(), None);
    };
    let own = read_failure_file(&nodes[x.node].root);
    let code = x.code as i32;
    if code >= 128 && own.is_none() {
        let sig = code - 128;
        let what = if sig == libc::SIGKILL {
            "killed by SIGKILL".to_string()
        } else {
            format!("killed by signal {sig}")
        };
        return failed(FailureKind::Signal, format!("{}{what}", who(x.node)), None);
    }
    let reason = own.unwrap_or_else(|| format!("exited with code {code}"));
    failed(
        FailureKind::ExitCode,
        format!("{}{reason}", who(x.node)),
        Some(code),
    )
}

/// Removes containers and networks left by engines that are gone (killed
/// before they could clean up).
async fn reap_orphans(docker: &Docker) {
    let filters = HashMap::from([("label".to_string(), vec![LABEL_OWNER.to_string()])]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    if let Ok(list) = docker.list_containers(Some(opts)).await {
        let rm = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        for c in list {
            if orphaned(c.labels.as_ref())
                && let Some(id) = c.id
            {
                let _ = docker.remove_container(&id, Some(rm.clone())).await;
            }
        }
    }
    let opts = ListNetworksOptionsBuilder::new().filters(&filters).build();
    if let Ok(list) = docker.list_networks(Some(opts)).await {
        for n in list {
            if orphaned(n.labels.as_ref())
                && let Some(id) = n.id
            {
                let _ = docker.remove_network(&id).await;
            }
        }
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Whether what carries these labels was made by an engine process that is gone.
fn orphaned(labels: Option<&HashMap<String, String>>) -> bool {
    let Some(pid) = labels
        .and_then(|l| l.get(LABEL_OWNER))
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| *p > 0)
    else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    !alive
}
