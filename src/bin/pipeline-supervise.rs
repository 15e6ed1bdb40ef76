//! The step supervisor on its own:
//! `pipeline-supervise [--die-with PID] [--spawn-error FILE] [--grace SECS]
//! [--hostname NAME --hosts-file FILE] -- COMMAND...`,
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
    let mut opts = pipeline::exec::supervise::Options::default();
    let bad = |flag: &str, v: &OsString| -> ! {
        eprintln!(
            "error: `{flag}` needs a number, not `{}`",
            v.to_string_lossy()
        );
        std::process::exit(pipeline::error::EXIT_INVALID);
    };
    while let Some(flag) = args.peek().and_then(|a| a.to_str()).map(str::to_string) {
        let known = [
            "--spawn-error",
            "--die-with",
            "--grace",
            "--hostname",
            "--hosts-file",
        ];
        if !known.contains(&flag.as_str()) {
            break;
        }
        args.next();
        let v = args.next().unwrap_or_default();
        match flag.as_str() {
            "--spawn-error" => opts.spawn_error = Some(PathBuf::from(v)),
            "--die-with" => match v.to_str().and_then(|p| p.parse().ok()) {
                Some(p) => opts.die_with = Some(p),
                None => bad("--die-with", &v),
            },
            "--grace" => match v.to_str().and_then(|s| s.parse::<f64>().ok()) {
                Some(s) if s >= 0.0 && s.is_finite() => {
                    opts.grace = Some(std::time::Duration::from_secs_f64(s))
                }
                _ => bad("--grace", &v),
            },
            "--hostname" => opts.hostname = Some(v.to_string_lossy().into_owned()),
            _ => opts.hosts_file = Some(PathBuf::from(v)),
        }
    }
    if args.peek().is_some_and(|a| a == "--") {
        args.next();
    }
    let command: Vec<OsString> = args.collect();
    std::process::exit(pipeline::exec::supervise::main(opts, command));
}
