//! The step supervisor on its own:
//! `pipeline-supervise [--die-with PID] [--spawn-error FILE] -- COMMAND...`,
//! the same as `pipeline supervise`, in a program small enough to start in
//! a fraction of the time, since the local executor starts one for every step.

//!
//! It has a C `main` of its own: the standard library's start-up (a stack
//! guard found by reading `/proc/self/maps`, signal stacks, SIGPIPE ignored)
//! is work every step would pay for, and nothing here needs it.

#![no_main]

use std::ffi::OsString;
use std::path::PathBuf;

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let mut args = std::env::args_os().skip(1).peekable();
    let mut spawn_error = None;
    let mut die_with = None;
    loop {
        if args.peek().is_some_and(|a| a == "--spawn-error") {
            args.next();
            spawn_error = args.next().map(PathBuf::from);
        } else if args.peek().is_some_and(|a| a == "--die-with") {
            args.next();
            let pid = args.next().unwrap_or_default();
            match pid.to_str().and_then(|p| p.parse().ok()) {
                Some(p) => die_with = Some(p),
                None => {
                    eprintln!(
                        "error: `--die-with` needs a process id, not `{}`",
                        pid.to_string_lossy()
                    );
                    std::process::exit(pipeline::error::EXIT_INVALID);
                }
            }
        } else {
            break;
        }
    }
    if args.peek().is_some_and(|a| a == "--") {
        args.next();
    }
    let command: Vec<OsString> = args.collect();
    std::process::exit(pipeline::exec::supervise::main(
        spawn_error,
        die_with,
        command,
    ));
}
