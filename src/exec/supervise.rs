//! The step supervisor (`pipeline supervise`, hidden): every local step
//! process runs under one.
//!
//! The supervisor makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`),
//! so every process the step starts stays its descendant whatever it does:
//! a process that calls `setsid` or double-forks is re-parented to the
//! supervisor, not to init, when its parent exits. When the step's main
//! process exits, the supervisor kills every descendant that is left (over
//! and over, until it has no child), reaps them all, and only then exits with
//! the main process's status. So when the engine sees a step end, nothing the
//! step started can still write into its outputs.
//!
//! SIGTERM (the engine stopping the step: it signals the supervisor's process
//! group) is passed on to the descendants outside that group; after
//! [`GRACE`] everything left is killed.
//!
//! It is a separate program (this binary, run again) rather than code in the
//! engine: the engine's other children must not become its orphans, and a
//! process forked from the engine's threads could not safely run this loop.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long the step's processes have after SIGTERM before SIGKILL, when
/// the step does not say (`stop_timeout`): SageMaker's 120 seconds.
pub const GRACE: Duration = Duration::from_secs(120);

/// How the supervisor runs a step, besides its command.
#[derive(Debug, Default)]
pub struct Options {
    /// Where to write why the command could not start.
    pub spawn_error: Option<PathBuf>,
    /// The engine's pid: the supervisor dies with it.
    pub die_with: Option<i32>,
    /// How long after SIGTERM the step's processes are killed ([`GRACE`] if not given).
    pub grace: Option<Duration>,
    /// The step's node name (`algo-1`...) and a hosts file naming every
    /// node: the step sees them as its host name and `/etc/hosts`
    /// ([`isolate_names`]).
    pub hostname: Option<String>,
    pub hosts_file: Option<PathBuf>,
}

/// The environment variable naming the attempt every process of a local
/// step belongs to: `RUN/STEP/ATTEMPT/HOST`.
pub const ATTEMPT_VAR: &str = "PIPELINE_ATTEMPT_ID";

/// The value of [`ATTEMPT_VAR`] for one node of one attempt.
pub fn attempt_id(run_id: &str, step: &str, attempt: u32, host: &str) -> String {
    format!("{run_id}/{step}/{attempt}/{host}")
}

/// Signals the supervisor handles by waiting for them (blocked, then `sigtimedwait`).
const HANDLED: [libc::c_int; 5] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
];

/// Runs `command` under supervision; returns only when it cannot start
/// (the exit code then), otherwise exits the way the command did.
///
/// With `die_with` (the parent's pid), the supervisor is killed when its
/// parent ends: it asks for `SIGKILL` on the parent's death first thing, then
/// checks that its parent is still `die_with`, since a parent that ended
/// before the request would not deliver it. The parent can then start the
/// supervisor with `posix_spawn` (no code of its own in the child).
pub fn main(opts: Options, command: Vec<OsString>) -> i32 {
    let Options {
        spawn_error,
        die_with,
        grace,
        hostname,
        hosts_file,
    } = opts;
    if let Some(parent) = die_with {
        // SAFETY: plain syscalls on this process's own state.
        let orphaned = unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::getppid() != parent
        };
        if orphaned {
            // The engine is gone already: nobody waits for this step.
            return 1;
        }
    }
    let Some((program, args)) = command.split_first() else {
        eprintln!("error: `pipeline supervise` needs a command after `--`");
        return crate::error::EXIT_INVALID;
    };
    if let (Some(name), Some(hosts)) = (&hostname, &hosts_file)
        && let Err(e) = isolate_names(name, hosts)
    {
        // The step still runs: only code that looks its nodes up by name
        // (SageMaker's training toolkit does) misses them.
        eprintln!(
            "note: the step cannot be given the host name `{name}` and its nodes' names ({e}); programs that look up algo-1... by name will not find them"
        );
    }
    // SAFETY: plain syscalls on this process's own state.
    let set = unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let main_pid = match spawn(program, args) {
        Ok(pid) => pid,
        Err(e) => {
            let name = program.to_string_lossy();
            let reason = if e.kind() == std::io::ErrorKind::NotFound {
                format!("cannot start `{name}`: no such program (is it installed and on PATH?)")
            } else {
                format!("cannot start `{name}`: {e}")
            };
            match spawn_error {
                Some(p) => {
                    let _ = std::fs::write(p, &reason);
                }
                None => eprintln!("error: {reason}"),
            }
            return 127;
        }
    };
    let status = supervise(main_pid, &set, grace.unwrap_or(GRACE));
    kill_and_reap_all();
    exit_like(status)
}

/// What the child of [`spawn`] needs, made before it exists: it shares the
/// supervisor's memory and must not allocate.
struct Exec {
    program: std::ffi::CString,
    argv: Vec<*const libc::c_char>,
    /// Set by the child when `execvp` fails (it then exits with 127).
    errno: libc::c_int,
}

/// Starts `program` with `args` (found on `PATH`) as a child that dies with
/// the supervisor and blocks no signal; returns its pid.
///
/// A `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does: the child runs
/// in this process's memory until it execs, so nothing is copied (a `fork`
/// copies the page tables and then every page either side writes), and an
/// `exec` failure is seen in `errno` with no pipe to report it. The child
/// calls only `prctl`, `signal`, `sigprocmask`, `execvp` and `_exit`.
fn spawn(program: &OsString, args: &[OsString]) -> std::io::Result<libc::pid_t> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |s: &OsString| {
        std::ffi::CString::new(s.as_bytes()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an argument holds a NUL byte",
            )
        })
    };
    let words: Vec<std::ffi::CString> = std::iter::once(program)
        .chain(args)
        .map(cstr)
        .collect::<std::io::Result<_>>()?;
    let mut exec = Exec {
        program: words[0].clone(),
        argv: words
            .iter()
            .map(|w| w.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect(),
        errno: 0,
    };
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the parent's `Exec`, alive until this child
        // execs or exits (CLONE_VFORK holds the parent until then); only
        // async-signal-safe calls follow.
        unsafe {
            let exec = &mut *(arg as *mut Exec);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The step sees SIGPIPE as any program does (the standard
            // library's `main` ignores it, and ignored signals survive exec);
            // the child has its own copy of the dispositions.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::execvp(exec.program.as_ptr(), exec.argv.as_ptr());
            exec.errno = *libc::__errno_location();
            libc::_exit(127)
        }
    }
    // The child's stack (it grows down from the end), 16-byte aligned.
    let mut stack = vec![0u128; 64 * 1024 / 16];
    // SAFETY: the stack outlives the child's use of it (the parent resumes
    // only once the child has exec'd or exited), as does `exec`.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len()) as *mut libc::c_void;
        libc::clone(
            child,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &mut exec as *mut Exec as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the child wrote `errno` (if at all) before it exited, and the
    // parent runs again only after that.
    let errno = unsafe { std::ptr::read_volatile(&exec.errno) };
    if errno != 0 {
        let mut st = 0;
        // SAFETY: reaps the child that failed to exec.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    Ok(pid)
}

/// Gives this process (and so the step it starts) a private host name and
/// `/etc/hosts`, as a SageMaker node has: `hostname` is the node's name
/// and `hosts_file` (the machine's hosts file plus a line naming every
/// node) is bind-mounted over `/etc/hosts`, in a mount and UTS namespace
/// of its own. Nothing outside the step sees either.
///
/// As root that is two `unshare`s; otherwise a user namespace first, in
/// which this process keeps its own user and group ids (mapped to
/// themselves) and, once it execs the step, no capability.
fn isolate_names(hostname: &str, hosts_file: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let last = std::io::Error::last_os_error;
    let hosts = std::ffi::CString::new(hosts_file.as_os_str().as_bytes())?;
    // SAFETY: plain syscalls on this process's own state; single-threaded here.
    unsafe {
        let (uid, gid) = (libc::geteuid(), libc::getegid());
        if uid == 0 {
            if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS) != 0 {
                return Err(last());
            }
        } else {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWUTS) != 0 {
                return Err(last());
            }
            std::fs::write("/proc/self/setgroups", "deny")?;
            std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
            std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
        }
        // Mounts made here must not reach the machine's own namespace.
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(last());
        }
        if libc::mount(
            hosts.as_ptr(),
            c"/etc/hosts".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            return Err(last());
        }
        if libc::sethostname(hostname.as_ptr().cast(), hostname.len()) != 0 {
            return Err(last());
        }
    }
    Ok(())
}

/// The hosts file a node of a local step sees: the machine's own, then
/// every node's name on the loopback address (local nodes are processes
/// of this machine).
pub fn hosts_file_text(machine: &str, hosts: &[String]) -> String {
    let mut text = machine.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# the step's nodes\n");
    text.push_str(&format!("127.0.0.1\t{}\n", hosts.join(" ")));
    text
}

/// Waits for the main process, passing on a stop request; returns its wait status.
fn supervise(main_pid: libc::pid_t, set: &libc::sigset_t, grace: Duration) -> libc::c_int {
    let mut kill_at: Option<Instant> = None;
    loop {
        // Reap whatever ended: the main process, or orphans re-parented here.
        loop {
            let mut st = 0;
            // SAFETY: waitpid on our own children.
            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if r == main_pid {
                return st;
            }
            if r <= 0 {
                break;
            }
        }
        let now = Instant::now();
        if let Some(t) = kill_at
            && now >= t
        {
            signal_descendants(libc::SIGKILL, false);
            kill_at = Some(now + Duration::from_millis(200));
        }
        let wait = kill_at.map_or(Duration::from_secs(1), |t| {
            t.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: waits for one of the blocked signals; no memory is shared.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
        if sig > 0 && sig != libc::SIGCHLD && kill_at.is_none() {
            // The engine signalled our process group; those outside it hear it from us.
            signal_descendants(libc::SIGTERM, true);
            kill_at = Some(Instant::now() + grace);
        }
    }
}

/// Kills every descendant until none is left, reaping each.
///
/// A subreaper with no child has no descendant at all (an orphan is
/// re-parented to it), so the usual case, a step that left nothing, costs
/// one `waitpid` and no scan of `/proc`.
fn kill_and_reap_all() {
    loop {
        let mut st = 0;
        // SAFETY: waitpid on our own children, without blocking.
        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if r > 0 {
            continue;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            return;
        }
        signal_descendants(libc::SIGKILL, false);
        // SAFETY: as above; blocks until one of the killed children ends.
        unsafe { libc::waitpid(-1, &mut st, 0) };
    }
}

/// Sends `sig` to every descendant of this process (only those outside its
/// process group when `outside_group`).
fn signal_descendants(sig: libc::c_int, outside_group: bool) {
    // SAFETY: getters of this process's own ids.
    let (me, group) = unsafe { (libc::getpid(), libc::getpgrp()) };
    for (pid, pgrp) in descendants(me) {
        if outside_group && pgrp == group {
            continue;
        }
        // SAFETY: a descendant just listed; only its own parent (also ours)
        // could reap it and free the pid in between.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Every descendant of `root` (pid, process group), from `/proc/*/stat`.
pub fn descendants(root: libc::pid_t) -> Vec<(libc::pid_t, libc::pid_t)> {
    let mut procs: Vec<(libc::pid_t, libc::pid_t, libc::pid_t)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some((ppid, pgrp)) = parent_and_group(pid) {
                procs.push((pid, ppid, pgrp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid, pgrp) in &procs {
            if ppid == p && pid != root {
                out.push((pid, pgrp));
                frontier.push(pid);
            }
        }
    }
    out
}

/// A process's parent and process group, from `/proc/PID/stat`.
fn parent_and_group(pid: libc::pid_t) -> Option<(libc::pid_t, libc::pid_t)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: fields
    // follow the last `)`: state, ppid, pgrp...
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// Stops every process whose environment says it belongs to run `run_id`:
/// what an engine killed outright left behind (its supervisors died with it;
/// processes that left their process group did not). Returns the attempts
/// (`RUN/STEP/ATTEMPT/HOST`) they belonged to.
///
/// Each process is pinned with a pidfd and its environment read again
/// through it before the signal, so a pid reused by an unrelated process in
/// between is never signalled.
pub fn stop_leftovers(run_id: &str) -> Vec<String> {
    let prefix = format!("{ATTEMPT_VAR}={run_id}/");
    // SAFETY: getter.
    let me = unsafe { libc::getpid() };
    let mut stopped = std::collections::BTreeSet::new();
    // A leftover may still be forking: look again until a pass finds none.
    for _ in 0..100 {
        let mut found = false;
        for pid in all_pids() {
            if pid == me || attempt_of(pid, &prefix).is_none() {
                continue;
            }
            // SAFETY: pidfd_open takes a pid and flags; the fd is closed below.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
            if fd < 0 {
                continue;
            }
            // The pidfd pins this very process: check it is still one of ours.
            if let Some(id) = attempt_of(pid, &prefix) {
                // SAFETY: signals the process the pidfd refers to; waits for it to end.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd,
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    );
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    libc::poll(&mut p, 1, 2000);
                }
                stopped.insert(id);
                found = true;
            }
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
        }
        if !found {
            break;
        }
    }
    stopped.into_iter().collect()
}

fn all_pids() -> Vec<libc::pid_t> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// The attempt id in a process's environment, when it starts with `prefix`
/// (`PIPELINE_ATTEMPT_ID=RUN/`).
fn attempt_of(pid: libc::pid_t, prefix: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        kv.starts_with(prefix)
            .then(|| kv[ATTEMPT_VAR.len() + 1..].to_string())
    })
}

/// Ends this process as the main process ended: its exit code, or its signal.
fn exit_like(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        return libc::WEXITSTATUS(status);
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: restores the default action and raises the signal on
        // ourselves, without a core file (the step's own was its business).
        unsafe {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
        }
        return 128 + sig;
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_parent_and_group() {
        // Our own stat: the parent is the test runner, the group is ours.
        // SAFETY: getters.
        let (ppid, pgrp) = unsafe { (libc::getppid(), libc::getpgrp()) };
        assert_eq!(
            parent_and_group(std::process::id() as i32),
            Some((ppid, pgrp))
        );
    }
}
