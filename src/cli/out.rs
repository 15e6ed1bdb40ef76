//! Standard output for everything the commands print.
//!
//! `println!` panics when the reader has gone away (`pipeline plan --json |
//! head` closes the pipe early). Commands print through [`outln!`] and
//! [`out!`] instead: once a write fails, the rest of the output is dropped
//! quietly and the command goes on to the end of what it was doing (an
//! approval still runs its hooks, a run still records its steps) and exits
//! with its usual code, 0 for a command that only prints. A failure other
//! than a closed pipe (a full disk behind a redirection) is reported once on
//! stderr.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `args` (and a newline) to stdout unless an earlier write failed.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    let r = o
        .write_fmt(args)
        .and_then(|()| if newline { o.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = r {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("warning: cannot write the output: {e}; the rest of it is dropped");
        }
    }
}

/// `println!` that never panics: see the module documentation.
macro_rules! outln {
    () => {
        $crate::cli::out::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*), true)
    };
}

/// `print!` that never panics: see the module documentation.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*), false)
    };
}
