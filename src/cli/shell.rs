//! All run output goes through here: a live display on a terminal (a line a
//! running step with its elapsed time, and a built-in's round or epoch
//! counter with an ETA), plain lines when piped, newline-delimited JSON
//! events with `--json`, or only the outcome with `--quiet`.
//!
//! On a terminal, lines printed above the live display are written whole,
//! each ending with its newline (never padded to the terminal's width), and
//! a step's line is cut to the width the terminal has when it is drawn, so
//! that resizing the terminal wraps nothing mid-word.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runs::{RunStatus, StepStatus};
use crate::schedule::{Event, RunSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tty,
    Plain,
    Json,
    /// `--quiet`: the outcome (and why a step failed), nothing else.
    Quiet,
}

/// What a command asked its run output to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Display {
    /// A live display on a terminal, plain lines otherwise.
    #[default]
    Auto,
    Json,
    Quiet,
}

impl Display {
    pub fn from_flags(json: bool, quiet: bool) -> Display {
        match (json, quiet) {
            (true, _) => Display::Json,
            (false, true) => Display::Quiet,
            _ => Display::Auto,
        }
    }
}

/// A built-in's training progress, read from its log lines.
#[derive(Debug, Clone)]
struct Rounds {
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    /// When the first counted round or epoch was seen, and how many were done then.
    first: Option<(Instant, u64)>,
    figure: Option<String>,
}

static TOTAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:boosting up to (\d+) rounds|linear-learner: training up to (\d+) epochs)$")
        .expect("regex")
});
static ROUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\[(\d+)\](?:\t([A-Za-z0-9_]+-[A-Za-z0-9_@.]+):([-+0-9.eEinfa]+)| trained \d+ trees$)",
    )
    .expect("regex")
});
static EPOCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^linear-learner: epoch (\d+), mean mini-batch loss (\S+)$").expect("regex")
});

impl Rounds {
    /// Reads one log line; true when it was a counted round or epoch (which
    /// the live display shows in place instead of printing).
    fn read(progress: &mut HashMap<String, Rounds>, step: &str, line: &str) -> bool {
        let line = line.trim_end();
        if let Some(c) = TOTAL.captures(line) {
            let (unit, n) = match (c.get(1), c.get(2)) {
                (Some(n), _) => ("round", n),
                (_, Some(n)) => ("epoch", n),
                _ => return false,
            };
            progress.insert(
                step.to_string(),
                Rounds {
                    unit,
                    total: n.as_str().parse().ok(),
                    done: 0,
                    first: None,
                    figure: None,
                },
            );
            return false;
        }
        let Some(r) = progress.get_mut(step) else {
            return false;
        };
        let (done, figure) = if let Some(c) = ROUND.captures(line) {
            let n: u64 = c[1].parse().unwrap_or(0);
            match (c.get(2), c.get(3)) {
                // XGBoost's `[R]` counts from 0; `[R] trained` from 1.
                (Some(name), Some(v)) => (n + 1, Some(format!("{} {}", name.as_str(), v.as_str()))),
                _ => (n, None),
            }
        } else if let Some(c) = EPOCH.captures(line) {
            (c[1].parse().unwrap_or(0), Some(format!("loss {}", &c[2])))
        } else {
            return false;
        };
        r.done = done;
        if figure.is_some() {
            r.figure = figure;
        }
        if r.first.is_none() {
            r.first = Some((Instant::now(), done));
        }
        true
    }

    /// `round 308/400 · validation-auc:0.91 · ETA 12s`.
    fn show(&self) -> String {
        let mut s = match self.total {
            Some(t) => format!("{} {}/{t}", self.unit, self.done),
            None => format!("{} {}", self.unit, self.done),
        };
        if let Some(f) = &self.figure {
            s.push_str(&format!(" · {f}"));
        }
        if let (Some(total), Some((at, from))) = (self.total, self.first)
            && self.done > from
            && total > self.done
        {
            let per = at.elapsed().as_secs_f64() / (self.done - from) as f64;
            let left = per * (total - self.done) as f64;
            s.push_str(&format!(" · ETA {}", short_duration(left)));
        }
        s
    }
}

fn short_duration(s: f64) -> String {
    let s = s.round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// The terminal's width now (stderr's), 80 when it cannot be told.
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    80
}

/// `text` cut to `width` characters (with an ellipsis when cut).
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Columns of a step's line besides its message: the indent, spinner and elapsed time.
const BAR_CHROME: usize = 12;

pub struct Shell {
    mode: Mode,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    progress: HashMap<String, Rounds>,
}

impl Shell {
    pub fn new(display: Display) -> Shell {
        let mode = match display {
            Display::Json => Mode::Json,
            Display::Quiet => Mode::Quiet,
            Display::Auto
                if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() =>
            {
                Mode::Tty
            }
            Display::Auto => Mode::Plain,
        };
        let multi = (mode == Mode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        Shell {
            mode,
            multi,
            bars: HashMap::new(),
            progress: HashMap::new(),
        }
    }

    /// Sets a step's line on the live display, cut to the terminal's width.
    fn set_bar(&self, step: &str, message: String) {
        if let Some(bar) = self.bars.get(step) {
            bar.set_message(fit(
                &message,
                terminal_width().saturating_sub(BAR_CHROME).max(10),
            ));
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A line for the person watching (stderr, above any live display).
    pub fn status(&self, line: &str) {
        match &self.multi {
            // Above the live display, as a whole line of its own: `println`
            // would pad it to the terminal's width, which a narrower
            // terminal then wraps.
            Some(m) => m.suspend(|| eprintln!("{line}")),
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
                    bar.enable_steady_tick(Duration::from_millis(100));
                    self.bars.insert(step.clone(), bar);
                    self.progress.remove(step);
                    self.set_bar(step, format!("{step}{suffix}"));
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
                if self.bars.contains_key(step) {
                    let who = node.as_ref().map_or_else(String::new, |n| format!(" {n}"));
                    self.set_bar(step, format!("{step}{who}: {}", line.trim()));
                }
            }
            Event::StepLog {
                step, node, line, ..
            } => {
                // A built-in's rounds (its main node's) count in place on a terminal.
                if self.mode == Mode::Tty
                    && node.as_deref().is_none_or(|n| n == "algo-1")
                    && Rounds::read(&mut self.progress, step, line)
                    && let Some(r) = self.progress.get(step)
                {
                    let shown = format!("{step}: {}", r.show());
                    self.set_bar(step, shown);
                    return;
                }
                match node {
                    Some(n) => self.status(&format!("  [{step} {n}] {line}")),
                    None => self.status(&format!("  [{step}] {line}")),
                }
            }
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
                    bar.enable_steady_tick(Duration::from_millis(100));
                    self.bars.insert(step.clone(), bar);
                    self.progress.remove(step);
                    self.set_bar(step, format!("{step} (attempt {attempt})"));
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
                let rounds = self.progress.remove(step);
                let line = match (status, cached) {
                    (StepStatus::Succeeded, true) => format!("  cached    {step}"),
                    (StepStatus::Succeeded, false) => match rounds {
                        Some(r) => format!(
                            "  done      {step} ({duration_s:.2}s, {} {}s)",
                            r.done, r.unit
                        ),
                        None => format!("  done      {step} ({duration_s:.2}s)"),
                    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_counted_from_a_builtins_lines() {
        let mut p = HashMap::new();
        // Not counted before the step said how many there will be.
        assert!(!Rounds::read(&mut p, "train", "[0]\tvalidation-auc:0.5"));
        assert!(!Rounds::read(&mut p, "train", "boosting up to 400 rounds"));
        assert!(Rounds::read(&mut p, "train", "[0]\tvalidation-auc:0.81000"));
        assert!(Rounds::read(
            &mut p,
            "train",
            "[307]\tvalidation-auc:0.91234"
        ));
        let shown = p["train"].show();
        assert!(
            shown.starts_with("round 308/400 · validation-auc 0.91234 · ETA "),
            "{shown}"
        );
        // Other lines are printed as they are.
        assert!(!Rounds::read(
            &mut p,
            "train",
            "stopping early: no improvement in 10 rounds"
        ));
        // Without validation data gbdt says how many trees each tenth round.
        assert!(Rounds::read(&mut p, "train", "[320] trained 320 trees"));
        assert!(p["train"].show().starts_with("round 320/400"));
        let mut p = HashMap::new();
        assert!(!Rounds::read(
            &mut p,
            "ll",
            "linear-learner: training up to 15 epochs"
        ));
        assert!(Rounds::read(
            &mut p,
            "ll",
            "linear-learner: epoch 3, mean mini-batch loss 3.5e-01"
        ));
        assert!(p["ll"].show().starts_with("epoch 3/15 · loss 3.5e-01"));
    }

    #[test]
    fn lines_are_cut_to_the_width() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("a longer message", 8), "a longe…");
        assert_eq!(short_duration(75.0), "1m15s");
        assert_eq!(short_duration(7300.0), "2h01m");
    }
}
