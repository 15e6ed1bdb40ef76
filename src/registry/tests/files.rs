//! Opening the database: creation, damaged and foreign files and databases,
//! schema migrations, unusable URLs and unreachable servers.

use super::super::*;
use super::{TestDb, manual, new_version, temp};

/// How many tables the current schema of a PostgreSQL test database has.
fn postgres_tables(db: &TestDb) -> i64 {
    db.client()
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn open_creates_the_file_with_the_current_schema_in_wal_mode() {
    let (_dir, path) = temp();
    let reg = Registry::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(reg.path(), Some(path.as_path()));
    assert_eq!(
        reg.schema_version().unwrap(),
        schema::MIGRATIONS.len() as u32
    );
    let Backend::Sqlite(conn) = &reg.backend else {
        unreachable!()
    };
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(reg);
    // Reopening an up-to-date registry changes nothing.
    let reg = Registry::open(&path).unwrap();
    assert!(reg.groups().unwrap().is_empty());
}

#[test]
fn open_existing_does_not_create_a_registry() {
    let (_dir, path) = temp();
    let e = Registry::open_existing(&path).unwrap_err();
    assert!(e.is_invalid_input());
    assert!(e.to_string().contains("no registry at"), "{e}");
    assert!(!path.exists());
    drop(Registry::open(&path).unwrap());
    assert!(Registry::open_existing(&path).is_ok());
}

#[test]
fn a_file_that_is_not_a_database_is_reported_not_panicked_on() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"this is a csv file, not a registry\n".repeat(200)).unwrap();
    let e = Registry::open(&path).unwrap_err();
    assert!(matches!(e, RegistryError::Corrupt { .. }), "{e:?}");
    assert!(!e.is_invalid_input());
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("move the file aside"), "{text}");

    // A short file cannot even hold the header.
    std::fs::write(&path, b"oops").unwrap();
    let e = Registry::open(&path).unwrap_err();
    assert!(matches!(e, RegistryError::Corrupt { .. }), "{e:?}");
}

#[test]
fn damaged_pages_are_reported_as_corruption() {
    let (_dir, path) = temp();
    {
        let mut reg = Registry::open(&path).unwrap();
        for i in 0..50 {
            reg.register(
                &new_version("g", &format!("k{i}"), &[("auc", 0.5)]),
                &manual(),
            )
            .unwrap();
        }
        // Move everything from the WAL into the main file before damaging it.
        let Backend::Sqlite(conn) = &reg.backend else {
            unreachable!()
        };
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192);
    // Keep the 100-byte header and the schema page, overwrite the table pages.
    let page = 4096;
    for b in &mut bytes[page..] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let result = Registry::open(&path).and_then(|reg| reg.versions("g"));
    let e = result.unwrap_err();
    assert!(
        matches!(e, RegistryError::Corrupt { .. }),
        "expected corruption, got {e:?}"
    );
    assert!(e.to_string().contains(&path.display().to_string()));
}

#[test]
fn another_programs_database_is_refused() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
            .unwrap();
    }
    let e = Registry::open(&path).unwrap_err();
    assert!(matches!(e, RegistryError::Foreign { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("customers"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    // The foreign file was not touched.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 0);

    let other = path.with_file_name("other.db");
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.pragma_update(None, "application_id", 1234).unwrap();
    }
    let e = Registry::open(&other).unwrap_err();
    assert!(matches!(e, RegistryError::Foreign { .. }), "{e:?}");
}

#[test]
fn a_directory_or_nothing_is_not_a_registry_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = Registry::open(dir.path()).unwrap_err();
    assert!(e.is_invalid_input());
    assert!(e.to_string().contains("is a directory"), "{e}");
    let e = Registry::open(std::path::Path::new("")).unwrap_err();
    assert!(e.to_string().contains("path is empty"), "{e}");
}

const TEST_MIGRATION_2: schema::Migration = schema::Migration {
    sqlite: "ALTER TABLE model_versions ADD COLUMN signature TEXT;",
    postgres: "ALTER TABLE model_versions ADD COLUMN signature TEXT;",
};

on_both! {
fn an_older_schema_is_migrated_forward_keeping_its_data(db) {
    let location = db.location();
    let v1 = &schema::MIGRATIONS[..1];
    {
        let mut reg = Registry::open_with_migrations(&location, v1, true).unwrap();
        assert_eq!(reg.schema_version().unwrap(), 1);
        reg.register(&new_version("g", "a", &[("auc", 0.9)]), &manual())
            .unwrap();
    }
    let v2 = [schema::MIGRATIONS[0], TEST_MIGRATION_2];
    let mut reg = Registry::open_with_migrations(&location, &v2, true).unwrap();
    assert_eq!(reg.schema_version().unwrap(), 2);
    let probe = "UPDATE model_versions SET signature = NULL WHERE signature IS NOT NULL";
    assert!(reg.execute_raw(probe).is_ok(), "the new column exists");
    assert_eq!(reg.version("g", 1).unwrap().metrics["auc"], 0.9);
    reg.register(&new_version("g", "b", &[]), &manual())
        .unwrap();
    assert_eq!(reg.versions("g").unwrap().len(), 2);
}
}

on_both! {
fn a_newer_schema_is_refused(db) {
    let location = db.location();
    let newer: Vec<schema::Migration> = schema::MIGRATIONS
        .iter()
        .copied()
        .chain([TEST_MIGRATION_2])
        .collect();
    drop(Registry::open_with_migrations(&location, &newer, true).unwrap());
    let e = Registry::open(location.clone()).unwrap_err();
    let ours = schema::MIGRATIONS.len() as u32;
    assert!(
        matches!(
            e,
            RegistryError::TooNew { found, supported, .. } if found == ours + 1 && supported == ours
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("upgrade `pipeline`"), "{e}");
    assert!(e.to_string().contains(&location.to_string()), "{e}");
}
}

on_both! {
fn opening_again_changes_nothing_and_open_existing_finds_it(db) {
    let mut reg = db.open();
    assert_eq!(reg.schema_version().unwrap(), schema::MIGRATIONS.len() as u32);
    reg.register(&new_version("g", "a", &[]), &manual()).unwrap();
    drop(reg);
    let reg = Registry::open_existing(db.location()).unwrap();
    assert_eq!(reg.schema_version().unwrap(), schema::MIGRATIONS.len() as u32);
    assert_eq!(reg.versions("g").unwrap().len(), 1);
}
}

on_both! {
fn a_copy_is_a_file_registry_with_everything(db) {
    let mut reg = db.open();
    let hooked = NewVersion {
        on_approved: vec!["echo approved".into()],
        ..new_version("g", "a", &[("auc", 0.9)])
    };
    reg.register(&hooked, &manual()).unwrap();
    reg.register(&new_version("g", "b", &[]), &manual()).unwrap();
    reg.approve("g", 2, "alice", Some("fine")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("copy.db");
    reg.copy_to(&dest).unwrap();
    let copy = Registry::open_existing(&dest).unwrap();
    assert_eq!(copy.versions("g").unwrap(), reg.versions("g").unwrap());
    assert_eq!(copy.history("g").unwrap(), reg.history("g").unwrap());
    assert_eq!(copy.pipeline_hooks("g", 1).unwrap(), vec!["echo approved".to_string()]);
    // The copy numbers on from where the original was.
    drop(copy);
    let mut copy = Registry::open(&dest).unwrap();
    let next = copy.register(&new_version("g", "c", &[]), &manual()).unwrap();
    assert_eq!(next.version.version, 3);
    // A copy never overwrites a file.
    let e = reg.copy_to(&dest).unwrap_err();
    assert!(e.to_string().contains("copy"), "{e}");
}
}

#[test]
fn an_empty_postgres_database_is_no_registry_until_opened() {
    let Some(db) = TestDb::postgres("an_empty_postgres_database_is_no_registry_until_opened")
    else {
        return;
    };
    let e = Registry::open_existing(db.location()).unwrap_err();
    assert!(e.is_invalid_input(), "{e:?}");
    assert!(e.to_string().contains("no registry in"), "{e}");
    assert_eq!(postgres_tables(&db), 0, "open_existing created nothing");
    drop(db.open());
    assert!(Registry::open_existing(db.location()).is_ok());
}

#[test]
fn another_programs_postgres_database_is_refused() {
    let Some(db) = TestDb::postgres("another_programs_postgres_database_is_refused") else {
        return;
    };
    db.client()
        .batch_execute("CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT)")
        .unwrap();
    let e = Registry::open(db.location()).unwrap_err();
    assert!(matches!(e, RegistryError::Foreign { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("customers"), "{text}");
    assert!(text.contains(&db.location().to_string()), "{text}");
    assert!(text.contains("a database of its own"), "{text}");
    assert_eq!(
        postgres_tables(&db),
        1,
        "the foreign database was not touched"
    );

    // A table of our name that is not our mark.
    let Some(other) = TestDb::postgres("another_programs_postgres_database_is_refused") else {
        return;
    };
    other
        .client()
        .batch_execute(
            "CREATE TABLE pipeline_registry (application TEXT, schema_version BIGINT); \
                        INSERT INTO pipeline_registry VALUES ('something-else', 1)",
        )
        .unwrap();
    let e = Registry::open(other.location()).unwrap_err();
    assert!(matches!(e, RegistryError::Foreign { .. }), "{e:?}");
}

#[test]
fn an_unreachable_server_is_a_clear_error_not_a_panic() {
    // A loopback port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let location = Location::parse(&format!(
        "postgres://nobody:secret@127.0.0.1:{port}/registry?connect_timeout=5"
    ))
    .unwrap();
    let e = Registry::open(location).unwrap_err();
    assert!(matches!(e, RegistryError::Unreachable { .. }), "{e:?}");
    assert!(!e.is_invalid_input());
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}/registry")),
        "{text}"
    );
    assert!(text.contains("running and reachable"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}
