//! Who is asking, and whether a request may change anything.
//!
//! - Bound to loopback with no users file, the UI serves whoever can reach
//!   the port, and decisions are made in the name of the account running it
//!   (as `pipeline registry approve` without `--by`).
//! - With a users file (required off loopback), every request is signed in:
//!   a session cookie from the sign-in form, or `Authorization: Bearer TOKEN`
//!   for scripts. The reviewer's name is the user the token belongs to.
//! - Every state-changing request carries the session's CSRF token (forms
//!   have it in a hidden field), and a browser's cross-site request is refused
//!   by its `Origin`/`Sec-Fetch-Site` before that.
//! - Bound to loopback, a request whose `Host` is not the loopback address
//!   it was sent to is refused (DNS rebinding).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::spec::source::Diagnostic;

/// The users a users file names: each token's blake3 digest and its user.
#[derive(Debug, Default)]
pub struct Users {
    by_token: Vec<(blake3::Hash, String)>,
}

/// Shortest token a users file may hold (as random as a 128-bit key in hex).
pub const MIN_TOKEN: usize = 32;

impl Users {
    /// Reads `NAME TOKEN` lines (`#` comments, blank lines); the file must
    /// not be readable by others, as with an SSH key.
    pub fn load(path: &Path) -> Result<Users> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::invalid(
                Diagnostic::new(format!("the users file {}: {e}", path.display()))
                    .help("one `NAME TOKEN` line a user; see docs/ui.md"),
            )
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::invalid(
                Diagnostic::new(format!(
                    "the users file {} can be read by others (mode {:o})",
                    path.display(),
                    meta.permissions().mode() & 0o777
                ))
                .help(format!(
                    "`chmod 600 {}`: it holds passwords",
                    path.display()
                )),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let mut users = Users::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |what: String, help: &str| {
                Error::invalid(
                    Diagnostic::new(format!("{}:{}:1: {what}", path.display(), n + 1)).help(help),
                )
            };
            let mut parts = line.split_whitespace();
            let (Some(name), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(at(
                    "expected `NAME TOKEN`".into(),
                    "one user a line: a name, a space, a token (`openssl rand -hex 32` makes one)",
                ));
            };
            if token.len() < MIN_TOKEN {
                return Err(at(
                    format!(
                        "the token of `{name}` is {} characters; at least {MIN_TOKEN} are required",
                        token.len()
                    ),
                    "`openssl rand -hex 32` makes one",
                ));
            }
            let digest = blake3::hash(token.as_bytes());
            if users.by_token.iter().any(|(d, _)| *d == digest) {
                return Err(at(
                    format!("`{name}` has the token of another user"),
                    "give every user a token of their own",
                ));
            }
            users.by_token.push((digest, name.to_string()));
        }
        if users.by_token.is_empty() {
            return Err(Error::invalid(
                Diagnostic::new(format!("the users file {} names no user", path.display()))
                    .help("one `NAME TOKEN` line a user"),
            ));
        }
        Ok(users)
    }

    /// The user a token belongs to (digests compared in constant time).
    pub fn user_of(&self, token: &str) -> Option<&str> {
        let digest = blake3::hash(token.as_bytes());
        self.by_token
            .iter()
            .find(|(d, _)| *d == digest)
            .map(|(_, name)| name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
}

/// Sessions by their cookie's value; kept in memory (a restart signs everyone out).
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// Most sessions kept; the oldest go first (a bound on memory, not a security limit).
const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    pub fn get(&self, id: &str) -> Option<Session> {
        self.map.lock().expect("sessions").get(id).cloned()
    }

    /// Starts a session for `user`; returns its cookie value.
    pub fn start(&self, user: &str) -> String {
        let id = random_hex(32);
        let mut map = self.map.lock().expect("sessions");
        if map.len() >= MAX_SESSIONS {
            map.clear();
        }
        map.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf: random_hex(32),
            },
        );
        id
    }

    pub fn end(&self, id: &str) {
        self.map.lock().expect("sessions").remove(id);
    }
}

/// `n` random bytes from the kernel, in hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: the pointer and length describe `buf`'s unfilled tail.
        let got = unsafe {
            libc::getrandom(
                buf[filled..].as_mut_ptr().cast(),
                n - filled,
                0, // blocks only until the pool is initialised at boot
            )
        };
        if got > 0 {
            filled += got as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            panic!("getrandom failed: {}", std::io::Error::last_os_error());
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

/// The `Host` values a loopback-bound server answers to.
pub fn loopback_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        addr.to_string(),
    ]
}

/// Why a browser request that would change something is refused before its
/// CSRF token is read: it says it came from another site.
pub fn cross_site(origin: Option<&str>, fetch_site: Option<&str>, host: &str) -> Option<String> {
    if let Some(site) = fetch_site
        && site != "same-origin"
        && site != "none"
    {
        return Some(format!("a {site} request"));
    }
    if let Some(origin) = origin {
        let ours = [format!("http://{host}"), format!("https://{host}")];
        if !ours.iter().any(|o| o == origin) {
            return Some(format!("a request from {origin}"));
        }
    }
    None
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn users_file(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    const T1: &str = "0123456789abcdef0123456789abcdef";
    const T2: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn a_users_file_maps_tokens_to_names() {
        let f = users_file(&format!("# reviewers\nalice {T1}\n\nbob {T2}\n"), 0o600);
        let u = Users::load(f.path()).unwrap();
        assert_eq!(u.user_of(T1), Some("alice"));
        assert_eq!(u.user_of(T2), Some("bob"));
        assert_eq!(u.user_of("nope"), None);
    }

    #[test]
    fn a_users_file_others_can_read_or_with_short_or_shared_tokens_is_refused() {
        let f = users_file(&format!("alice {T1}\n"), 0o644);
        assert!(
            Users::load(f.path())
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        let f = users_file("alice short\n", 0o600);
        let e = Users::load(f.path()).unwrap_err().to_string();
        assert!(
            e.contains(":1:1: the token of `alice` is 5 characters"),
            "{e}"
        );
        let f = users_file(&format!("alice {T1}\nbob {T1}\n"), 0o600);
        let e = Users::load(f.path()).unwrap_err().to_string();
        assert!(
            e.contains(":2:1: `bob` has the token of another user"),
            "{e}"
        );
        let f = users_file("alice\n", 0o600);
        assert!(
            Users::load(f.path())
                .unwrap_err()
                .to_string()
                .contains("expected `NAME TOKEN`")
        );
        let f = users_file("# nobody\n", 0o600);
        assert!(
            Users::load(f.path())
                .unwrap_err()
                .to_string()
                .contains("names no user")
        );
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let host = "127.0.0.1:8765";
        assert_eq!(cross_site(None, None, host), None);
        assert_eq!(
            cross_site(Some("http://127.0.0.1:8765"), Some("same-origin"), host),
            None
        );
        assert!(cross_site(Some("http://evil.example"), None, host).is_some());
        assert!(cross_site(None, Some("cross-site"), host).is_some());
        assert!(cross_site(None, Some("same-site"), host).is_some());
        assert!(cross_site(Some("null"), None, host).is_some());
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(
            cookie("a=1; pipeline_session=xyz; b=2", "pipeline_session"),
            Some("xyz")
        );
        assert_eq!(cookie("a=1", "pipeline_session"), None);
    }

    #[test]
    fn random_tokens_differ() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16));
    }
}
