//! Where a registry lives: an SQLite file, or a PostgreSQL database named by
//! a `postgres://` URL.
//!
//! The command line's `--registry` and `PIPELINE_REGISTRY` take either form;
//! [`Location::parse`] tells them apart by the scheme and checks a URL before
//! anything connects, so a typo is the user's mistake (exit code 2), not a
//! failure of the registry.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::RegistryError;

/// How long connecting to a PostgreSQL server may take unless the URL says
/// (`connect_timeout=SECONDS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A registry's place: a database file or a PostgreSQL database.
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    /// An SQLite file.
    File(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresUrl),
}

/// A checked `postgres://` URL. Shown (in errors, `Debug`, listings)
/// without its password.
#[derive(Clone, PartialEq)]
pub struct PostgresUrl(Box<Url>);

/// Boxed: errors carry a [`Location`], and should stay small.
#[derive(Clone, PartialEq)]
struct Url {
    url: String,
    shown: String,
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.shown)
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.shown)
    }
}

impl PostgresUrl {
    /// Checks `url` (which starts with `postgres://` or `postgresql://`).
    pub fn parse(url: &str) -> Result<PostgresUrl, RegistryError> {
        let shown = redact(url);
        let bad = |message: String| {
            RegistryError::invalid_with_hint(
                format!("the registry URL `{shown}` is not usable: {message}"),
                "write postgres://USER@HOST:PORT/DATABASE (the password in PGPASSWORD \
                 or after the user, `USER:PASSWORD@`)",
            )
        };
        let config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| bad(super::db::with_causes(&e)))?;
        if config.get_hosts().is_empty() {
            return Err(bad("it names no host".to_string()));
        }
        match config.get_ssl_mode() {
            postgres::config::SslMode::Disable | postgres::config::SslMode::Prefer => {}
            _ => {
                return Err(RegistryError::invalid_with_hint(
                    format!(
                        "the registry URL `{shown}` asks for TLS, which this release does not support"
                    ),
                    "leave out sslmode (or write sslmode=disable) and keep the connection on a \
                     trusted network, e.g. through an SSH tunnel or a VPN",
                ));
            }
        }
        Ok(PostgresUrl(Box::new(Url {
            url: url.to_string(),
            shown,
        })))
    }

    /// The URL as given, password included: what another process needs to
    /// connect to the same database.
    pub fn as_str(&self) -> &str {
        &self.0.url
    }

    /// The client configuration: the URL's, with a connection timeout when
    /// it sets none, the password from `PGPASSWORD` when it has none, and
    /// the program's name for the server's session list.
    pub(crate) fn config(&self) -> postgres::Config {
        let mut config: postgres::Config =
            self.0.url.parse().expect("checked by PostgresUrl::parse");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_password().is_none()
            && let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty())
        {
            config.password(p.as_encoded_bytes());
        }
        if config.get_application_name().is_none() {
            config.application_name("pipeline");
        }
        config
    }
}

/// `url` without a password, in its user part or as a `password=` parameter.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl Location {
    /// A `postgres://` or `postgresql://` URL is a PostgreSQL database;
    /// anything else is a file path.
    pub fn parse(text: &str) -> Result<Location, RegistryError> {
        if let Some((scheme, rest)) = text.split_once("://")
            && (scheme.eq_ignore_ascii_case("postgres")
                || scheme.eq_ignore_ascii_case("postgresql"))
        {
            // The client reads the scheme in lowercase only.
            let url = format!("{}://{rest}", scheme.to_ascii_lowercase());
            return Ok(Location::Postgres(PostgresUrl::parse(&url)?));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(RegistryError::invalid_with_hint(
                format!(
                    "the registry `{}` is a URL the registry cannot use",
                    redact(text)
                ),
                "give a file path (e.g. .pipeline/registry.db) or a postgres://USER@HOST:PORT/DATABASE URL",
            ));
        }
        Ok(Location::File(PathBuf::from(text)))
    }

    /// The file, for an SQLite registry.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Location::File(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }

    /// The same place, with a relative file path made absolute (for a
    /// process started in another directory).
    pub fn absolute(&self) -> Location {
        match self {
            Location::File(p) => {
                Location::File(std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            }
            other => other.clone(),
        }
    }

    /// The text [`Location::parse`] reads back as this place (the URL with
    /// its password, the path), to hand to another process.
    pub fn to_arg(&self) -> String {
        match self {
            Location::File(p) => p.display().to_string(),
            Location::Postgres(u) => u.as_str().to_string(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Postgres(u) => u.fmt(f),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::File(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::File(p.to_path_buf())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Location {
        Location::File(p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_are_told_apart() {
        assert_eq!(
            Location::parse(".pipeline/registry.db").unwrap(),
            Location::File(".pipeline/registry.db".into())
        );
        let pg = Location::parse("postgres://ml@db.internal:5433/registry").unwrap();
        assert!(matches!(pg, Location::Postgres(_)));
        assert_eq!(pg.to_string(), "postgres://ml@db.internal:5433/registry");
        assert!(matches!(
            Location::parse("postgresql://ml@db/registry").unwrap(),
            Location::Postgres(_)
        ));
        assert!(matches!(
            Location::parse("POSTGRES://ml@db/registry").unwrap(),
            Location::Postgres(_)
        ));
    }

    #[test]
    fn passwords_never_show() {
        let pg =
            Location::parse("postgres://ml:s3cret@db:5432/reg?password=other&connect_timeout=3")
                .unwrap();
        let shown = format!("{pg} {pg:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("other"),
            "{shown}"
        );
        assert_eq!(
            pg.to_string(),
            "postgres://ml@db:5432/reg?connect_timeout=3"
        );
        // Another process gets the URL whole.
        assert!(pg.to_arg().contains("s3cret"));
        let e = Location::parse("postgres://ml:s3cret@db:notaport/reg").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn bad_urls_are_invalid_input_with_the_fix() {
        for url in [
            "postgres://ml@db:notaport/reg",
            "postgres://ml@db/reg?sslmode=bogus",
            "postgres://ml@db/reg?no_such_option=1",
            "postgres:///reg",
        ] {
            let e = Location::parse(url).unwrap_err();
            assert!(e.is_invalid_input(), "{url}: {e:?}");
            assert!(
                e.to_string().contains("postgres://USER@HOST:PORT/DATABASE"),
                "{e}"
            );
        }
        let e = Location::parse("postgres://ml@db/reg?sslmode=require").unwrap_err();
        assert!(e.is_invalid_input());
        assert!(e.to_string().contains("TLS"), "{e}");
        let e = Location::parse("mysql://ml@db/reg").unwrap_err();
        assert!(e.is_invalid_input());
        assert!(e.to_string().contains("postgres://"), "{e}");
    }

    #[test]
    fn relative_files_become_absolute_urls_stay() {
        let abs = Location::parse("reg.db").unwrap().absolute();
        assert!(abs.as_path().unwrap().is_absolute());
        let pg = Location::parse("postgres://ml@db/reg").unwrap();
        assert_eq!(pg.absolute(), pg);
        assert_eq!(pg.as_path(), None);
    }
}
