//! Opening the database file: creation, damaged and foreign files, schema migrations.

use super::super::*;
use super::{manual, new_version, temp};

#[test]
fn open_creates_the_file_with_the_current_schema_in_wal_mode() {
    let (_dir, path) = temp();
    let reg = Registry::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(reg.path(), path.as_path());
    assert_eq!(
        reg.schema_version().unwrap(),
        schema::MIGRATIONS.len() as u32
    );
    let mode: String = reg
        .conn
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
        reg.conn
            .pragma_update(None, "wal_checkpoint", "TRUNCATE")
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
    let e = Registry::open("").unwrap_err();
    assert!(e.to_string().contains("path is empty"), "{e}");
}

const TEST_MIGRATION_2: &str = "ALTER TABLE model_versions ADD COLUMN signature TEXT;";

#[test]
fn an_older_schema_is_migrated_forward_keeping_its_data() {
    let (_dir, path) = temp();
    let v1 = &schema::MIGRATIONS[..1];
    {
        let mut reg = Registry::open_with_migrations(&path, v1).unwrap();
        assert_eq!(reg.schema_version().unwrap(), 1);
        reg.register(&new_version("g", "a", &[("auc", 0.9)]), &manual())
            .unwrap();
    }
    let v2 = [schema::MIGRATIONS[0], TEST_MIGRATION_2];
    let mut reg = Registry::open_with_migrations(&path, &v2).unwrap();
    assert_eq!(reg.schema_version().unwrap(), 2);
    let has_column: bool = reg
        .conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('model_versions') WHERE name = 'signature'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n == 1)
        .unwrap();
    assert!(has_column);
    assert_eq!(reg.version("g", 1).unwrap().metrics["auc"], 0.9);
    reg.register(&new_version("g", "b", &[]), &manual())
        .unwrap();
    assert_eq!(reg.versions("g").unwrap().len(), 2);
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, path) = temp();
    let newer: Vec<&str> = schema::MIGRATIONS
        .iter()
        .copied()
        .chain([TEST_MIGRATION_2])
        .collect();
    drop(Registry::open_with_migrations(&path, &newer).unwrap());
    let e = Registry::open(&path).unwrap_err();
    let ours = schema::MIGRATIONS.len() as u32;
    assert!(
        matches!(
            e,
            RegistryError::TooNew { found, supported, .. } if found == ours + 1 && supported == ours
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("upgrade `pipeline`"), "{e}");
}
