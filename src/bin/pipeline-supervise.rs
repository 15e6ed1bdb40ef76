//! The step supervisor on its own: `pipeline-supervise [--spawn-error FILE] -- COMMAND...`,
//! the same as `pipeline supervise`, in a program small enough to start in
//! a fraction of the time, since the local executor starts one for every step.

use std::ffi::OsString;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args_os().skip(1).peekable();
    let mut spawn_error = None;
    if args.peek().is_some_and(|a| a == "--spawn-error") {
        args.next();
        spawn_error = args.next().map(PathBuf::from);
    }
    if args.peek().is_some_and(|a| a == "--") {
        args.next();
    }
    let command: Vec<OsString> = args.collect();
    std::process::exit(pipeline::exec::supervise::main(spawn_error, command));
}
