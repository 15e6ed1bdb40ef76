//! The two database backends behind [`Registry`](super::Registry), and the
//! one place where their SQL dialects differ.
//!
//! The registry's logic (registering, reviewing, queries, the audit trail)
//! is written once against [`Sql`]: statements with `?1`, `?2` placeholders,
//! parameters as [`Param`]s and rows as [`Row`]s of integers and text. What
//! differs is here:
//!
//! - placeholders: PostgreSQL numbers them `$1`, `$2`;
//! - locking: SQLite takes the whole database's write lock when a write
//!   transaction begins (`BEGIN IMMEDIATE`); PostgreSQL locks the rows a
//!   writer reads with [`Sql::for_update`] (`SELECT ... FOR UPDATE` on the
//!   model group's row), so writes to one group are serialized and writes to
//!   different groups are not; PostgreSQL write transactions are read
//!   committed whatever the server's default, so that each statement after
//!   the lock sees what the writers before committed;
//! - lock timeouts, and which errors mean "held for too long, try again" or
//!   "a conflict, run the transaction again";
//! - the schema's text (each migration has both, see `schema.rs`) and where
//!   the schema version is kept.
//!
//! The sync `postgres` client drives a runtime of its own and must not be
//! called from a thread that is running asynchronous tasks (the scheduler
//! resolves `registry://` references from one): every call goes through
//! [`off_runtime`], which moves it to a scoped thread there.

use std::fmt;
use std::time::Duration;

use super::location::Location;

/// Which backend a statement runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    Int(i64),
    Text(&'a str),
    OptText(Option<&'a str>),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}
impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Int(i64::from(v))
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::OptText(v)
    }
}
impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Param::OptText(v.as_deref())
    }
}

/// `params![a, b]`: a slice of [`Param`]s.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$($crate::registry::db::Param::from($p)),*][..]
    };
}
pub(crate) use params;

/// One value of a result row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Int(i64),
    Text(String),
    Null,
}

/// A result row.
#[derive(Debug)]
pub(crate) struct Row(Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, DbError> {
        self.0
            .get(i)
            .ok_or_else(|| DbError::decode(i, "no such column"))
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.cell(i)? {
            Cell::Int(v) => Ok(Some(*v)),
            Cell::Null => Ok(None),
            Cell::Text(_) => Err(DbError::decode(i, "text where a number belongs")),
        }
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, DbError> {
        self.opt_int(i)?
            .ok_or_else(|| DbError::decode(i, "NULL where a number belongs"))
    }

    pub(crate) fn opt_u32(&self, i: usize) -> Result<Option<u32>, DbError> {
        self.opt_int(i)?
            .map(|v| {
                u32::try_from(v).map_err(|_| DbError::decode(i, format!("{v} is out of range")))
            })
            .transpose()
    }

    pub(crate) fn u32(&self, i: usize) -> Result<u32, DbError> {
        self.opt_u32(i)?
            .ok_or_else(|| DbError::decode(i, "NULL where a number belongs"))
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.cell(i)? {
            Cell::Text(v) => Ok(Some(v.clone())),
            Cell::Null => Ok(None),
            Cell::Int(_) => Err(DbError::decode(i, "a number where text belongs")),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, DbError> {
        self.opt_text(i)?
            .ok_or_else(|| DbError::decode(i, "NULL where text belongs"))
    }

    /// The row's values as parameters, to write the row elsewhere.
    pub(crate) fn params(&self) -> Vec<Param<'_>> {
        self.0
            .iter()
            .map(|c| match c {
                Cell::Int(v) => Param::Int(*v),
                Cell::Text(s) => Param::Text(s),
                Cell::Null => Param::OptText(None),
            })
            .collect()
    }
}

/// What a backend reported, before it is put in the registry's terms.
#[derive(Debug)]
pub enum DbError {
    Sqlite(rusqlite::Error),
    Postgres(postgres::Error),
    /// A value in the database is not what the registry wrote there.
    Decode {
        column: usize,
        message: String,
    },
}

impl DbError {
    pub(crate) fn decode(column: usize, message: impl Into<String>) -> DbError {
        DbError::Decode {
            column,
            message: message.into(),
        }
    }

    /// The SQLSTATE of a PostgreSQL error.
    fn sqlstate(&self) -> Option<&postgres::error::SqlState> {
        match self {
            DbError::Postgres(e) => e.code(),
            _ => None,
        }
    }

    /// Another writer held what this one needed for longer than the lock
    /// timeout: trying again later may succeed.
    pub(crate) fn is_busy(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            DbError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => matches!(
                self.sqlstate(),
                Some(s) if *s == SqlState::LOCK_NOT_AVAILABLE || *s == SqlState::QUERY_CANCELED
            ),
        }
    }

    /// A conflict with a concurrent transaction that PostgreSQL resolved by
    /// aborting this one; running it again from the start is correct.
    pub(crate) fn is_retryable(&self) -> bool {
        use postgres::error::SqlState;
        matches!(
            self.sqlstate(),
            Some(s) if *s == SqlState::T_R_SERIALIZATION_FAILURE || *s == SqlState::T_R_DEADLOCK_DETECTED
        )
    }

    /// The connection to the server failed or was lost.
    pub(crate) fn is_connection(&self) -> bool {
        match self {
            DbError::Postgres(e) => {
                e.is_closed()
                    || std::error::Error::source(e).is_some_and(|c| c.is::<std::io::Error>())
            }
            _ => false,
        }
    }

    /// The file is not an SQLite database or its pages are damaged.
    pub(crate) fn is_corrupt(&self) -> bool {
        match self {
            DbError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            ),
            _ => false,
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sqlite(e) => e.fmt(f),
            DbError::Postgres(e) => match e.as_db_error() {
                // The server's message without the client's `db error: ` prefix.
                Some(db) => write!(f, "{}: {}", db.severity(), db.message()),
                None => f.write_str(&with_causes(e)),
            },
            DbError::Decode { column, message } => {
                write!(f, "unexpected value in column {}: {message}", column + 1)
            }
        }
    }
}

/// An error's message followed by its causes' (the client's own message,
/// such as "error connecting to server", leaves out why).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Sqlite(e) => Some(e),
            DbError::Postgres(e) => Some(e),
            DbError::Decode { .. } => None,
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Postgres(e)
    }
}

/// A connection (or a transaction on one) that runs the registry's statements.
pub(crate) trait Sql {
    fn dialect(&self) -> Dialect;
    /// Where the database is, for errors.
    fn location(&self) -> &Location;
    fn raw_query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError>;
    fn raw_execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError>;
    /// Runs statements separated by `;`, without parameters or results.
    fn raw_batch(&mut self, sql: &str) -> Result<(), DbError>;
}

impl dyn Sql + '_ {
    fn fail(&self, action: &'static str, e: DbError) -> super::RegistryError {
        super::error::db_error(self.location(), action, e)
    }

    /// The rows `sql` returns; `action` says what for, in errors.
    pub(crate) fn query(
        &mut self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, super::RegistryError> {
        self.raw_query(sql, params)
            .map_err(|e| self.fail(action, e))
    }

    /// The first row `sql` returns, if any.
    pub(crate) fn query_opt(
        &mut self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, super::RegistryError> {
        Ok(self.query(action, sql, params)?.into_iter().next())
    }

    /// The one row `sql` returns.
    pub(crate) fn query_one(
        &mut self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Row, super::RegistryError> {
        self.query_opt(action, sql, params)?
            .ok_or_else(|| self.fail(action, DbError::decode(0, "the statement returned no row")))
    }

    /// Runs `sql`, returning how many rows it changed.
    pub(crate) fn execute(
        &mut self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<u64, super::RegistryError> {
        self.raw_execute(sql, params)
            .map_err(|e| self.fail(action, e))
    }

    /// Decodes rows, putting a decoding error in the registry's terms.
    pub(crate) fn decode<T>(
        &self,
        action: &'static str,
        rows: Vec<Row>,
        f: impl Fn(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, super::RegistryError> {
        rows.iter()
            .map(|r| f(r).map_err(|e| self.fail(action, e)))
            .collect()
    }

    /// Decodes one row, putting a decoding error in the registry's terms.
    pub(crate) fn decode_row<T>(
        &self,
        action: &'static str,
        row: &Row,
        f: impl Fn(&Row) -> Result<T, DbError>,
    ) -> Result<T, super::RegistryError> {
        f(row).map_err(|e| self.fail(action, e))
    }

    /// What a `SELECT` appends to lock the rows it reads until the
    /// transaction ends (nothing for SQLite, whose writers hold the whole
    /// database's lock already).
    pub(crate) fn for_update(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// An SQLite connection or transaction.
pub(crate) struct Lite<'a> {
    pub conn: &'a rusqlite::Connection,
    pub location: &'a Location,
}

fn lite_params<'p>(params: &'p [Param<'_>]) -> impl Iterator<Item = rusqlite::types::Value> + 'p {
    use rusqlite::types::Value;
    params.iter().map(|p| match *p {
        Param::Int(v) => Value::Integer(v),
        Param::Text(s) => Value::Text(s.to_string()),
        Param::OptText(o) => o.map_or(Value::Null, |s| Value::Text(s.to_string())),
    })
}

impl Sql for Lite<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn location(&self) -> &Location {
        self.location
    }
    fn raw_query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.conn.prepare_cached(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(lite_params(params)))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                cells.push(match r.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Real(_) | ValueRef::Blob(_) => {
                        return Err(DbError::decode(
                            i,
                            "a value of a type the registry never writes",
                        ));
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
    fn raw_execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(lite_params(params)))? as u64)
    }
    fn raw_batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.conn.execute_batch(sql)?)
    }
}

/// Runs `f` where the sync PostgreSQL client may block: on this thread, or
/// on a scoped thread of its own when this one is driving asynchronous tasks.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    } else {
        f()
    }
}

/// `?1`, `?2` as PostgreSQL's `$1`, `$2` (the registry's statements have no
/// `?` anywhere else).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A PostgreSQL connection. Transactions are plain `BEGIN`/`COMMIT`
/// statements (see [`super::Registry::write`]), so that nothing the client
/// does on drop needs its runtime.
pub(crate) struct Pg {
    client: Option<postgres::Client>,
    pub location: Location,
}

impl Pg {
    pub(crate) fn connect(location: Location, config: postgres::Config) -> Result<Pg, DbError> {
        let client = off_runtime(move || config.connect(postgres::NoTls))?;
        Ok(Pg {
            client: Some(client),
            location,
        })
    }

    fn client(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("the client lives until drop")
    }

    /// Makes a statement that waits for a lock fail after `timeout`.
    pub(crate) fn set_lock_timeout(&mut self, timeout: Duration) -> Result<(), DbError> {
        let ms = timeout.as_millis().max(1);
        self.raw_batch(&format!("SET lock_timeout = {ms}"))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Closing the connection runs on the client's runtime.
        if let Some(client) = self.client.take() {
            off_runtime(move || drop(client));
        }
    }
}

fn pg_cell(row: &postgres::Row, i: usize) -> Result<Cell, DbError> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_();
    let cell = if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?
            .map(|v| Cell::Int(v.into()))
    } else if *ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(i)?
            .map(|v| Cell::Int(v.into()))
    } else if *ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)?
            .map(|v| Cell::Int(v.into()))
    } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(ty) {
        row.try_get::<_, Option<String>>(i)?.map(Cell::Text)
    } else {
        return Err(DbError::decode(
            i,
            format!("a value of type {ty}, which the registry never writes"),
        ));
    };
    Ok(cell.unwrap_or(Cell::Null))
}

impl Sql for Pg {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn location(&self) -> &Location {
        &self.location
    }
    fn raw_query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        let sql = numbered(sql);
        let client = self.client();
        off_runtime(move || {
            let values = pg_params(params);
            let rows = client.query(&sql, &values)?;
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| pg_cell(r, i))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Row)
                })
                .collect()
        })
    }
    fn raw_execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let sql = numbered(sql);
        let client = self.client();
        off_runtime(move || Ok(client.execute(&sql, &pg_params(params))?))
    }
    fn raw_batch(&mut self, sql: &str) -> Result<(), DbError> {
        let client = self.client();
        off_runtime(move || Ok(client.batch_execute(sql)?))
    }
}

fn pg_params<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Param::Int(v) => v as &(dyn postgres::types::ToSql + Sync),
            Param::Text(s) => s,
            Param::OptText(o) => o,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
        assert_eq!(numbered("SELECT '?' || x"), "SELECT '?' || x");
    }

    #[test]
    fn rows_decode_what_the_registry_writes_and_refuse_the_rest() {
        let r = Row(vec![
            Cell::Int(3),
            Cell::Text("a".into()),
            Cell::Null,
            Cell::Int(-1),
        ]);
        assert_eq!(r.u32(0).unwrap(), 3);
        assert_eq!(r.text(1).unwrap(), "a");
        assert_eq!(r.opt_text(2).unwrap(), None);
        assert_eq!(r.opt_u32(2).unwrap(), None);
        assert!(r.text(0).is_err());
        assert!(r.int(1).is_err());
        assert!(r.text(2).is_err());
        assert!(r.u32(3).unwrap_err().to_string().contains("out of range"));
        assert!(r.int(9).is_err());
    }

    #[test]
    fn messages_carry_their_causes_once() {
        let e = "postgres://u@h:notaport/x"
            .parse::<postgres::Config>()
            .unwrap_err();
        let text = with_causes(&e);
        assert!(text.starts_with("invalid connection string: "), "{text}");
        assert!(text.contains("port"), "{text}");
        let io = std::io::Error::other("refused");
        assert_eq!(with_causes(&io), "refused");
    }

    #[test]
    fn off_runtime_works_inside_and_outside_a_runtime() {
        assert_eq!(off_runtime(|| 1), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let in_rt =
            rt.block_on(async { off_runtime(|| tokio::runtime::Handle::try_current().is_ok()) });
        assert!(!in_rt, "the closure runs off the runtime's thread");
    }
}
