//! Which node of a multi-node step this process is, from the contract.
//!
//! The engine starts the same `pipeline builtin` on every node of a step with
//! `resources: {nodes: N}`, with `AWS_BATCH_JOB_NUM_NODES`,
//! `AWS_BATCH_JOB_NODE_INDEX`, `AWS_BATCH_JOB_MAIN_NODE_INDEX` (0),
//! `AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS` (workers only),
//! `PIPELINE_COORDINATOR_PORT` (default 7070) and `PIPELINE_JOB_ID`, and the
//! node names in `input/config/resourceconfig.json`. Deadlines can be raised
//! with `PIPELINE_PEER_CONNECT_TIMEOUT_S` and `PIPELINE_PEER_TIMEOUT_S`.

use std::time::Duration;

use builtins::cluster::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_PEER_TIMEOUT, TcpConfig};

use super::{Layout, StepError};

/// This process's place among the nodes of a step.
#[derive(Debug, Clone)]
pub struct Nodes {
    pub rank: usize,
    pub size: usize,
    pub names: Vec<String>,
}

impl Nodes {
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }
    pub fn name(&self) -> String {
        format!("{} (index {})", self.names[self.rank], self.rank)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_number<T: std::str::FromStr>(name: &str) -> Result<Option<T>, StepError> {
    env(name)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| StepError::failed(format!("{name} = `{v}` is not a number")))
        })
        .transpose()
}

/// The nodes of this step, or `None` for a single-node step.
pub fn from_env(layout: &Layout) -> Result<Option<Nodes>, StepError> {
    let size: usize = env_number("AWS_BATCH_JOB_NUM_NODES")?.unwrap_or(1);
    if size <= 1 {
        return Ok(None);
    }
    let rank: usize = env_number("AWS_BATCH_JOB_NODE_INDEX")?.ok_or_else(|| {
        StepError::failed("AWS_BATCH_JOB_NUM_NODES is set but AWS_BATCH_JOB_NODE_INDEX is not")
    })?;
    if rank >= size {
        return Err(StepError::failed(format!(
            "AWS_BATCH_JOB_NODE_INDEX = {rank} is not below AWS_BATCH_JOB_NUM_NODES = {size}"
        )));
    }
    if let Some(main) = env_number::<usize>("AWS_BATCH_JOB_MAIN_NODE_INDEX")?
        && main != 0
    {
        return Err(StepError::failed(format!(
            "AWS_BATCH_JOB_MAIN_NODE_INDEX = {main}: the main node must be index 0"
        )));
    }
    let mut names: Vec<String> = (1..=size).map(|i| format!("algo-{i}")).collect();
    let path = layout.root.join("input/config/resourceconfig.json");
    if let Ok(text) = std::fs::read(&path)
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text)
        && let Some(hosts) = v.get("hosts").and_then(|h| h.as_array())
        && hosts.len() == size
    {
        names = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                h.as_str()
                    .map_or_else(|| format!("algo-{}", i + 1), str::to_string)
            })
            .collect();
    }
    Ok(Some(Nodes { rank, size, names }))
}

/// How this node joins the others over TCP.
pub fn tcp_config(nodes: &Nodes) -> Result<TcpConfig, StepError> {
    let port: u16 = env_number("PIPELINE_COORDINATOR_PORT")?.unwrap_or(7070);
    let main_addr = if nodes.is_main() {
        String::new()
    } else {
        env("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS").ok_or_else(|| {
            StepError::failed(
                "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on a worker node",
            )
        })?
    };
    let job_id = env("PIPELINE_JOB_ID").unwrap_or_default();
    let seconds = |name: &str, default: Duration| -> Result<Duration, StepError> {
        Ok(env_number::<u64>(name)?.map_or(default, Duration::from_secs))
    };
    let mut cfg = TcpConfig::new(nodes.rank, nodes.names.clone(), &job_id, &main_addr, port);
    cfg.connect_timeout = seconds("PIPELINE_PEER_CONNECT_TIMEOUT_S", DEFAULT_CONNECT_TIMEOUT)?;
    cfg.peer_timeout = seconds("PIPELINE_PEER_TIMEOUT_S", DEFAULT_PEER_TIMEOUT)?;
    Ok(cfg)
}

/// How channel `name` is spread over the nodes: true when each node holds
/// only its own files (`ShardedByS3Key`), false when every node sees all of
/// them (`FullyReplicated`, the default).
pub fn sharded(layout: &Layout, name: &str) -> bool {
    let path = layout.root.join("input/config/inputdataconfig.json");
    std::fs::read(&path)
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get(name)?
                .get("S3DistributionType")?
                .as_str()
                .map(|s| s == "ShardedByS3Key")
        })
        .unwrap_or(false)
}
