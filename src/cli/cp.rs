//! `cp`: copies files to and from S3 with the engine's transfer code.

use std::path::Path;

use crate::error::{Error, Result};
use crate::spec::source::Diagnostic;
use crate::store::remote;

/// `pipeline cp SRC DEST`: a local file or directory to an `s3://` URI, or an
/// object or a prefix's objects to a local directory.
pub fn cp(src: &str, dest: &str) -> Result<i32> {
    let n = match (remote::is_remote(src), remote::is_remote(dest)) {
        (false, true) => {
            if !Path::new(src).exists() {
                return Err(Error::invalid(Diagnostic::new(format!(
                    "`{src}` does not exist"
                ))));
            }
            remote::upload_tree(Path::new(src), dest)?
        }
        (true, false) => remote::download_tree(src, Path::new(dest))?,
        _ => {
            return Err(Error::invalid(
                Diagnostic::new(format!(
                    "`pipeline cp {src} {dest}` copies nothing to or from S3"
                ))
                .help("one side is an `s3://` URI and the other a local path"),
            ));
        }
    };
    eprintln!("copied {n} file{}", if n == 1 { "" } else { "s" });
    Ok(0)
}
