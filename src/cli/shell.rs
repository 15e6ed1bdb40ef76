//! All run output goes through here: a live display on a terminal (a line a
//! running step with its elapsed time), plain lines when piped, or
//! newline-delimited JSON events with `--json`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runs::{RunStatus, StepStatus};
use crate::schedule::{Event, RunSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tty,
    Plain,
    Json,
}

pub struct Shell {
    mode: Mode,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
}

impl Shell {
    pub fn new(json: bool) -> Shell {
        let mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            Mode::Tty
        } else {
            Mode::Plain
        };
        let multi = (mode == Mode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        Shell {
            mode,
            multi,
            bars: HashMap::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A line for the person watching (stderr, above any live display).
    pub fn status(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None if self.mode == Mode::Plain => eprintln!("{line}"),
            None => {}
        }
    }

    pub fn event(&mut self, e: &Event) {
        if self.mode == Mode::Json {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer(&mut out, e);
            let _ = out.write_all(b"\n");
            return;
        }
        match e {
            Event::RunStarted {
                run_id,
                pipeline,
                steps,
            } => {
                self.status(&format!("run {run_id}: pipeline {pipeline}, {steps} steps"));
            }
            Event::StepStarted { step, attempt } => {
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {msg} {elapsed:>4}")
                            .expect("valid template"),
                    );
                    let suffix = if *attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    bar.set_message(format!("{step}{suffix}"));
                    bar.enable_steady_tick(Duration::from_millis(100));
                    self.bars.insert(step.clone(), bar);
                } else {
                    let suffix = if *attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    self.status(&format!("  started   {step}{suffix}"));
                }
            }
            Event::StepLog {
                step,
                node,
                line,
                progress: true,
            } => {
                // In place on the step's line of the live display; plain
                // output waits for the line's last segment.
                if let Some(bar) = self.bars.get(step) {
                    let who = node.as_ref().map_or_else(String::new, |n| format!(" {n}"));
                    let shown: String = line.trim().chars().take(80).collect();
                    bar.set_message(format!("{step}{who}: {shown}"));
                }
            }
            Event::StepLog {
                step, node, line, ..
            } => match node {
                Some(n) => self.status(&format!("  [{step} {n}] {line}")),
                None => self.status(&format!("  [{step}] {line}")),
            },
            Event::StepRetrying {
                step,
                attempt,
                reason,
                backoff_s,
            } => {
                if let Some(b) = self.bars.remove(step) {
                    b.finish_and_clear();
                }
                self.status(&format!(
                    "  retrying  {step} (attempt {attempt}) in {backoff_s:.1}s: {reason}"
                ));
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {msg} {elapsed:>4}")
                            .expect("valid template"),
                    );
                    bar.set_message(format!("{step} (attempt {attempt})"));
                    bar.enable_steady_tick(Duration::from_millis(100));
                    self.bars.insert(step.clone(), bar);
                }
            }
            Event::StepFinished {
                step,
                status,
                cached,
                duration_s,
                reason,
            } => {
                if let Some(b) = self.bars.remove(step) {
                    b.finish_and_clear();
                }
                let line = match (status, cached) {
                    (StepStatus::Succeeded, true) => format!("  cached    {step}"),
                    (StepStatus::Succeeded, false) => {
                        format!("  done      {step} ({duration_s:.2}s)")
                    }
                    (StepStatus::Skipped, _) => {
                        format!("  skipped   {step}: {}", reason.as_deref().unwrap_or(""))
                    }
                    (StepStatus::Failed, _) => format!(
                        "  FAILED    {step} ({duration_s:.2}s): {}",
                        reason.as_deref().unwrap_or("")
                    ),
                    (StepStatus::Cancelled, _) => format!("  stopped   {step} ({duration_s:.2}s)"),
                    (s, _) => format!("  {:<9} {step}", s.as_str()),
                };
                self.status(&line);
            }
        }
    }

    /// Clears the live display, for what a command prints after a run.
    pub fn finish(&mut self) {
        for (_, b) in self.bars.drain() {
            b.finish_and_clear();
        }
    }

    /// The end of a run: the JSON summary line, or a human summary.
    pub fn summary(&mut self, s: &RunSummary, elapsed: Duration, ws: &crate::store::Workspace) {
        self.finish();
        if self.mode == Mode::Json {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer(&mut out, s);
            let _ = out.write_all(b"\n");
            return;
        }
        let count = |st: StepStatus, cached: bool| {
            s.steps
                .values()
                .filter(|x| x.status == st && x.cached == cached)
                .count()
        };
        let ran = count(StepStatus::Succeeded, false);
        let cached = count(StepStatus::Succeeded, true);
        let skipped = s
            .steps
            .values()
            .filter(|x| x.status == StepStatus::Skipped)
            .count();
        let mut parts = vec![format!("{ran} ran"), format!("{cached} cached")];
        if skipped > 0 {
            parts.push(format!("{skipped} skipped"));
        }
        let verdict = match s.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "FAILED",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
        };
        eprintln!(
            "run {} {verdict} in {:.2}s ({})",
            s.run_id,
            elapsed.as_secs_f64(),
            parts.join(", ")
        );
        for (name, st) in &s.steps {
            if st.status == StepStatus::Failed {
                eprintln!(
                    "\nerror: step `{name}` failed: {}",
                    st.failure.as_deref().unwrap_or("unknown reason")
                );
                let log = ws.log_path(&s.run_id, name);
                if let Ok(text) = std::fs::read_to_string(&log) {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(15)..];
                    if !tail.is_empty() {
                        eprintln!("  last lines of its log ({}):", log.display());
                        for l in tail {
                            eprintln!("  | {l}");
                        }
                    }
                }
                eprintln!(
                    "  = help: fix it, then `pipeline resume {}` re-runs only what did not finish",
                    s.run_id
                );
            }
        }
        if s.status == RunStatus::Cancelled {
            eprintln!(
                "  = help: `pipeline resume {}` continues where it stopped",
                s.run_id
            );
        }
    }
}
