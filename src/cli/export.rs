//! `export`: copies an artifact of a run out of the store, to a directory or to S3.

use std::fs;
use std::io;
use std::path::Path;

use super::run::find_run;
use super::runs::open;
use crate::error::{Error, Result};
use crate::spec::source::Diagnostic;
use crate::store::remote;

/// `pipeline export RUN_ID STEP.OUTPUT DEST`.
pub fn export(run_id: &str, what: &str, dest: &str) -> Result<i32> {
    let (ws, db) = open()?;
    let run = find_run(&db, run_id)?;
    let Some((step, output)) = what.split_once('.') else {
        return Err(Error::invalid(
            Diagnostic::new(format!("`{what}` does not name an output"))
                .help("write STEP.OUTPUT, e.g. `train.model`; `pipeline runs show RUN_ID` lists the outputs"),
        ));
    };
    let steps = db.steps_of(&run.id)?;
    let Some(rec) = steps.iter().find(|s| s.name == step) else {
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::invalid(
            Diagnostic::new(format!("run {} has no step `{step}`", run.id))
                .suggest(step, names.iter().copied())
                .note(format!("its steps: {}", names.join(", "))),
        ));
    };
    let Some(out) = rec.outputs.get(output) else {
        let names: Vec<&str> = rec.outputs.keys().map(String::as_str).collect();
        let d = Diagnostic::new(format!(
            "step `{step}` of run {} has no output `{output}`",
            run.id
        ));
        return Err(Error::invalid(if names.is_empty() {
            d.note(format!(
                "the step is {} and has stored no outputs",
                rec.status.as_str()
            ))
        } else {
            d.suggest(output, names.iter().copied())
                .note(format!("its outputs: {}", names.join(", ")))
        }));
    };
    let src = ws.store().local_path(&out.digest)?;
    let n = if remote::is_remote(dest) {
        remote::upload_tree(&src, &format!("{}/", dest.trim_end_matches('/')))?
    } else {
        copy_out(&src, Path::new(dest))?
    };
    eprintln!(
        "exported {step}.{output} ({} file{}, artifact {}) to {dest}",
        n,
        if n == 1 { "" } else { "s" },
        &out.digest[..12.min(out.digest.len())]
    );
    Ok(0)
}

/// Copies the artifact's files into `dest` (created if need be) as ordinary,
/// writable files; an existing file is never overwritten.
fn copy_out(src: &Path, dest: &Path) -> Result<usize> {
    fn walk(src: &Path, dest: &Path, n: &mut usize) -> io::Result<()> {
        fs::create_dir_all(dest)?;
        for e in fs::read_dir(src)? {
            let e = e?;
            let to = dest.join(e.file_name());
            if e.file_type()?.is_dir() {
                walk(&e.path(), &to, n)?;
            } else {
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&to)?;
                io::copy(&mut fs::File::open(e.path())?, &mut out)?;
                *n += 1;
            }
        }
        Ok(())
    }
    let occupied = match fs::read_dir(dest) {
        Ok(mut d) => d.next().is_some(),
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    };
    if occupied {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "{} exists and is not an empty directory",
                dest.display()
            ))
            .help("export into a new or empty directory; nothing already there is overwritten"),
        ));
    }
    let mut n = 0;
    walk(src, dest, &mut n).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::invalid(Diagnostic::new(format!("{}: {e}", dest.display())).help(
                "export into a new or empty directory; files already there are never overwritten",
            ))
        } else {
            Error::io("export to", dest, e)
        }
    })?;
    Ok(n)
}
