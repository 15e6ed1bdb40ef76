//! A step's inputs cannot change what was stored: each channel's data is
//! stat-snapshotted before an attempt starts and compared when it ends. Only
//! a difference (size, mtime, ctime, inode or mode of any file, or a file
//! added or removed) makes the data be hashed again, so large inputs are not
//! re-hashed on every step; ctime cannot be set back, so a step that changed
//! a file and restored its mode and mtime is caught too.

use std::path::PathBuf;

use crate::store::{Store, TreeStat, digest_path};

/// One channel's data and the digest it had when the step was planned.
#[derive(Debug, Clone)]
pub struct InputGuard {
    pub channel: String,
    pub source: PathBuf,
    pub digest: String,
    /// For a staged copy of remote data, the staging area: all of it is
    /// removed when the copy changed (files there are hard links of each
    /// other), so nothing damaged is used again.
    staged: Option<PathBuf>,
    before: Option<TreeStat>,
}

impl InputGuard {
    pub fn new(channel: String, source: PathBuf, digest: String) -> Self {
        let source = std::fs::canonicalize(&source).unwrap_or(source);
        InputGuard {
            channel,
            source,
            digest,
            staged: None,
            before: None,
        }
    }

    /// Marks the data as a staged copy of remote data, in the staging area `area`.
    pub fn staged(mut self, area: PathBuf) -> Self {
        self.staged = Some(area);
        self
    }
}

/// Takes the snapshots, before an attempt starts.
pub fn snapshot(guards: &mut [InputGuard]) {
    for g in guards {
        g.before = TreeStat::of(&g.source).ok();
    }
}

/// After an attempt: why the step failed if it changed an input, else None.
/// A changed stored artifact is taken out of the store (its digest no longer
/// says what it holds), so nothing is served from it again.
pub fn verify(guards: &[InputGuard], store: &Store) -> Option<String> {
    for g in guards {
        let after = TreeStat::of(&g.source).ok();
        let differs = match (&g.before, &after) {
            (Some(b), Some(a)) => b.first_difference(a),
            (None, None) => None,
            _ => Some(PathBuf::new()),
        };
        let Some(rel) = differs else { continue };
        let stored = store.holds(&g.source);
        let same = digest_path(&g.source).is_ok_and(|d| d == g.digest);
        if same {
            // Only modes or times changed: the content is intact.
            if stored {
                let _ = store.reseal(&g.digest);
            }
            continue;
        }
        let file = if rel.as_os_str().is_empty() {
            g.source.clone()
        } else {
            g.source.join(&rel)
        };
        let mut reason = format!(
            "the step changed its input `{}`: {} is not what it was when the step started (a step must not write to its inputs; write to its outputs instead)",
            g.channel,
            file.display()
        );
        if let Some(area) = &g.staged {
            let _ = crate::store::remove_tree(area);
            reason.push_str(
                "; the staged copies of S3 inputs were removed and are downloaded again next time",
            );
        }
        if stored {
            match store.quarantine(&g.digest) {
                Ok(to) => reason.push_str(&format!(
                    "; the changed artifact was taken out of the store (kept at {}), so the step that made it runs again next time",
                    to.display()
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => reason.push_str(
                    "; the changed artifact is no longer in the store (another run took it out)",
                ),
                Err(e) => reason.push_str(&format!(
                    "; taking the changed artifact out of the store failed ({e}): remove {} by hand",
                    g.source.display()
                )),
            }
        }
        return Some(reason);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn stored(t: &tempfile::TempDir) -> (Store, String, PathBuf) {
        let store = Store::new(t.path().join("store"));
        let d = t.path().join("out");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.csv"), "1,2\n").unwrap();
        let (digest, path) = store.ingest_dir(&d).unwrap();
        (store, digest, path)
    }

    #[test]
    fn an_untouched_input_passes_and_a_rewritten_one_is_caught_and_quarantined() {
        let t = tempfile::tempdir().unwrap();
        let (store, digest, path) = stored(&t);
        let mut g = vec![InputGuard::new(
            "train".into(),
            path.clone(),
            digest.clone(),
        )];
        snapshot(&mut g);
        assert_eq!(verify(&g, &store), None);
        // Mode restored and mtime set back: the ctime still tells.
        let f = path.join("a.csv");
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&f, "9,9\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
        let reason = verify(&g, &store).expect("caught");
        assert!(reason.contains("input `train`"), "{reason}");
        assert!(reason.contains("a.csv"), "{reason}");
        assert!(!store.contains(&digest).unwrap());
    }

    #[test]
    fn a_mode_change_alone_is_sealed_again() {
        let t = tempfile::tempdir().unwrap();
        let (store, digest, path) = stored(&t);
        let mut g = vec![InputGuard::new("train".into(), path.clone(), digest)];
        snapshot(&mut g);
        let f = path.join("a.csv");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(verify(&g, &store), None);
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444);
    }
}
