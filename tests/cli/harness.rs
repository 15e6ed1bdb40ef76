//! A small fluent builder around the `pipeline` binary, so each test reads as
//! "these files, these arguments, this outcome".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use serde_json::Value;
use tempfile::TempDir;

/// Text that only appears when the program panicked or aborted.
const PANIC_MARKERS: &[&str] = &["panicked at", "RUST_BACKTRACE", "stack backtrace"];

/// One test's sandbox: a temporary directory holding the pipeline files, used
/// as the working directory (so `.pipeline/` lands inside it).
pub struct Test {
    dir: TempDir,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Test {
    pub fn new() -> Test {
        let dir = tempfile::Builder::new()
            .prefix("pipeline-cli-")
            .tempdir()
            .expect("create a temporary directory");
        // The engine uses the nearest `.pipeline/` above the working
        // directory; one above the sandbox would join every test's runs.
        if let Some(shared) = dir
            .path()
            .ancestors()
            .skip(1)
            .find(|a| a.join(".pipeline").is_dir())
        {
            panic!(
                "{} has a .pipeline/ directory that the tests would share; remove it or set TMPDIR elsewhere",
                shared.display()
            );
        }
        Test {
            dir,
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// Writes a file (creating its parent directories), relative to the sandbox.
    pub fn file(self, path: &str, contents: &str) -> Test {
        self.write(path, contents);
        self
    }

    /// Writes a file without consuming the builder, for changes between runs.
    pub fn write(&self, path: &str, contents: &str) {
        let p = self.dir.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&p, contents).expect("write test file");
    }

    /// Sets the arguments used by [`Test::run`].
    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an environment variable for every command of this test.
    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `.pipeline/` workspace of this sandbox.
    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join(".pipeline")
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(path)).unwrap_or_default()
    }

    /// Lines in a file (0 when it does not exist): the tests' run counters.
    pub fn count_lines(&self, path: &str) -> usize {
        self.read(path).lines().count()
    }

    /// The command with the sandbox's environment, not yet started.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipeline"));
        cmd.args(args)
            .current_dir(self.dir.path())
            // The workspace must be the sandbox's own, never one set by the caller.
            .env_remove("PIPELINE_HOME")
            // Piped output is plain already; CI must not change that either way.
            .env_remove("CI")
            .env_remove("RUST_BACKTRACE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs with the arguments given to [`Test::args`].
    pub fn run(&self) -> Output {
        self.exec(self.args.clone())
    }

    /// Runs with these arguments.
    pub fn exec<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self
            .command(args)
            .output()
            .expect("start the pipeline program");
        let output = Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        output.no_panic()
    }

    /// What is in `.pipeline/` and when each file last changed: equal
    /// fingerprints mean nothing there was created, removed or written.
    pub fn workspace_fingerprint(&self) -> BTreeMap<PathBuf, (u64, Option<SystemTime>)> {
        let mut out = BTreeMap::new();
        fingerprint(&self.workspace(), &self.workspace(), &mut out);
        out
    }
}

impl Drop for Test {
    /// Stored artifacts are read-only: make their directories writable
    /// again, so the sandbox can be removed without root.
    fn drop(&mut self) {
        fn writable(d: &Path) {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    writable(&e.path());
                }
            }
        }
        writable(&self.workspace());
    }
}

fn fingerprint(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u64, Option<SystemTime>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = e.metadata() else { continue };
        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
        out.insert(rel, (meta.len(), meta.modified().ok()));
        if meta.is_dir() {
            fingerprint(root, &p, out);
        }
    }
}

/// A finished run of the program.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn no_panic(self) -> Output {
        for m in PANIC_MARKERS {
            assert!(
                !self.stderr.contains(m) && !self.stdout.contains(m),
                "the program panicked:\n{self}"
            );
        }
        self
    }

    pub fn code(self, expected: i32) -> Output {
        assert_eq!(self.code, Some(expected), "unexpected exit code\n{self}");
        self
    }

    pub fn success(self) -> Output {
        self.code(0)
    }

    pub fn stderr_contains(self, needle: &str) -> Output {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{self}"
        );
        self
    }

    pub fn stdout_contains(self, needle: &str) -> Output {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{self}"
        );
        self
    }

    /// An input error: exit code 2, located at `location` (`p.yaml:LINE:COL`),
    /// short enough to read on one screen.
    pub fn invalid_at(self, location: &str) -> Output {
        let out = self.code(2).stderr_contains(&format!("--> {location}\n"));
        assert!(
            out.stderr.starts_with("error: "),
            "the error does not start with `error: `\n{out}"
        );
        assert!(
            out.stderr.lines().count() <= 25,
            "the error is longer than a screen\n{out}"
        );
        out
    }

    /// The parsed lines of `--json` output.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{self}"))
            })
            .collect()
    }

    /// The run summary: the last line of `--json`.
    pub fn summary(&self) -> Value {
        self.json_lines()
            .pop()
            .unwrap_or_else(|| panic!("no JSON output\n{self}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- exit code: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The status of step `name` in a run summary.
pub fn step_status(summary: &Value, name: &str) -> String {
    summary["steps"][name]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no step `{name}` in {summary}"))
        .to_string()
}

pub fn step_cached(summary: &Value, name: &str) -> bool {
    summary["steps"][name]["cached"]
        .as_bool()
        .unwrap_or_else(|| panic!("no `cached` for step `{name}` in {summary}"))
}

/// The digest of `step`'s `output` in a run's `--json` summary.
pub fn output_digest(summary: &Value, step: &str, output: &str) -> String {
    summary["steps"][step]["outputs"][output]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{step}.{output} in {summary}"))
        .to_string()
}
