pub mod batch;
mod config;
pub mod s3;

/// The S3 servers of the test suites (see `.ci/s3-servers.sh`); not for use outside tests.
#[doc(hidden)]
pub mod testing;
