//! Writing an output set: atomically, and hashed as it is written.
//!
//! The file is written under a temporary name in its directory and renamed
//! into place once complete and synced, so a reader (or a crash) never sees
//! half a split. Its BLAKE3 hash is computed over the same bytes on the way.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{BuiltinError, io_failed};

struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `header` and `lines` (each followed by `\n`) to `dir/name`; returns
/// the path and the hex BLAKE3 hash of the content.
pub(crate) fn write_lines<'a>(
    dir: &Path,
    name: &str,
    header: &str,
    lines: impl Iterator<Item = &'a str>,
) -> Result<(PathBuf, String), BuiltinError> {
    std::fs::create_dir_all(dir).map_err(|e| io_failed("create", dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| -> std::io::Result<String> {
        // Hash below the buffer, so the hasher sees large blocks (where it is
        // fast) rather than one call per line.
        let mut w = BufWriter::with_capacity(
            1 << 20,
            HashingWriter {
                inner: File::create(&tmp)?,
                hasher: blake3::Hasher::new(),
            },
        );
        w.write_all(header.as_bytes())?;
        w.write_all(b"\n")?;
        for line in lines {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        let inner = w.into_inner().map_err(|e| e.into_error())?;
        let hash = inner.hasher.finalize().to_hex().to_string();
        inner.inner.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(hash)
    })();
    match result {
        Ok(hash) => Ok((path, hash)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io_failed("write", &path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_with_the_content_hash() {
        let dir = std::env::temp_dir().join(format!("split-write-{}", std::process::id()));
        let (path, hash) = write_lines(
            &dir.join("train"),
            "train.csv",
            "a,b",
            ["1,2", "3,4"].into_iter(),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "a,b\n1,2\n3,4\n");
        assert_eq!(hash, blake3::hash(text.as_bytes()).to_hex().to_string());
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("train")).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
