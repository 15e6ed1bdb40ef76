//! What the clients share: their runtime, and the SDK configuration from the
//! standard AWS chain over one HTTP/TLS stack.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;

/// A client's own runtime; shut down without waiting, so that dropping the
/// last client is allowed anywhere (inside another runtime too).
pub(crate) struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    pub(crate) fn start(name: &str) -> Result<Rt, String> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)))
            .thread_name(name)
            .enable_all()
            .build()
            .map(|rt| Rt(Some(rt)))
            .map_err(|e| format!("start the {name} client: {e}"))
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime lives as long as the client")
            .handle()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Attempts of one request (the SDK's standard retries: throttling, 5xx,
/// broken connections, timeouts), with backoff from 200 ms up to 2 s.
pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(5)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(2))
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeouts of requests: connecting, and one attempt waiting for its answer.
pub(crate) fn timeouts(attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .build()
}

/// The SDK configuration: the standard chain (environment, profiles, SSO,
/// instance and task roles), hyper 1 with rustls on ring, our retries and
/// timeouts, and what the caller sets.
pub(crate) async fn load(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    static_credentials: Option<(&str, &str)>,
    request_timeout: Duration,
) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry_config())
        .timeout_config(timeouts(request_timeout))
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .grace_period(request_timeout)
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(e) = endpoint_url {
        loader = loader.endpoint_url(e);
    }
    if let Some((key, secret)) = static_credentials {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            key, secret, None, None, "static",
        ));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return shared
            .into_builder()
            .region(aws_config::Region::new("us-east-1"))
            .build();
    }
    shared
}

/// The first line of an error chain, bounded.
pub(crate) fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut end = line.len().min(300);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}
