//! `export`: copies an artifact of a run out of the store, to a directory or
//! to S3, or writes a built-in model as an ONNX file (`--format onnx`).

use std::fs;
use std::io;
use std::path::Path;

use super::run::find_run;
use super::runs::open;
use crate::error::{Error, Result};
use crate::spec::source::Diagnostic;
use crate::store::remote;

/// What `--format` converts an artifact to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One ONNX file (a built-in model: gbdt, linear-learner, kmeans, pca).
    Onnx,
}

/// `pipeline export RUN_ID STEP.OUTPUT DEST [--format onnx]`.
pub fn export(run_id: &str, what: &str, dest: &str, format: Option<Format>) -> Result<i32> {
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
    if format == Some(Format::Onnx) && remote::is_remote(dest) {
        return Err(Error::invalid(
            Diagnostic::new(format!("--format onnx writes a local file, not {dest}"))
                .help("export to a local `.onnx` file, then copy it with `pipeline cp FILE s3://BUCKET/KEY`"),
        ));
    }
    let src = ws.store().local_path(&out.digest)?;
    if format == Some(Format::Onnx) {
        let bytes = onnx_of(&src, step, output)?;
        write_new(Path::new(dest), &bytes)?;
        eprintln!(
            "exported {step}.{output} (artifact {}) as ONNX ({} bytes) to {dest}",
            &out.digest[..12.min(out.digest.len())],
            bytes.len()
        );
        return Ok(0);
    }
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

/// The ONNX file of the built-in model in the artifact `src` (`STEP.OUTPUT`).
fn onnx_of(src: &Path, step: &str, output: &str) -> Result<Vec<u8>> {
    if builtins::model::saved_algorithm(src).is_err() {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "`{step}.{output}` is not a built-in model (it holds no pipeline `model.json`)"
            ))
            .help(format!(
                "--format onnx converts the `model` output of a train step with `algorithm:` {}; export other artifacts without --format",
                builtins::onnx::ALGORITHMS.join(", ")
            )),
        ));
    }
    builtins::onnx::export_dir(src).map_err(|e| match e {
        builtins::BuiltinError::Data(d) => {
            let diag = Diagnostic::new(format!("`{step}.{output}`: {}", d.message));
            Error::invalid(match d.hint {
                Some(h) => diag.help(h),
                None => diag,
            })
        }
        e if e.is_invalid_input() => {
            Error::invalid(Diagnostic::new(format!("`{step}.{output}`: {e}")))
        }
        e => Error::failed(format!("export {step}.{output} as ONNX: {e}")),
    })
}

/// Writes `bytes` to the new file `dest` (its directory created if need be);
/// an existing file is never overwritten.
fn write_new(dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Error::invalid(
                Diagnostic::new(format!("{} already exists", dest.display()))
                    .help("give the path of a new file; nothing already there is overwritten"),
            ));
        }
        Err(e) => return Err(Error::io("create", dest, e)),
    };
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("write", dest, e))
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
