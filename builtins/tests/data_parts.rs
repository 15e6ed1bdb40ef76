//! Reading a directory of part files as one data set.

use std::path::PathBuf;

use builtins::data::{ReadOptions, read};

fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("builtins-parts-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

#[test]
fn parts_are_read_in_name_order_skipping_hidden_files() {
    let dir = scratch(
        "order",
        &[
            ("part-00001.csv", "1,3\n0,4\n"),
            ("part-00000.csv", "0,1\n1,2\n"),
            ("_SUCCESS", ""),
            (".part-00000.csv.crc", "garbage"),
            ("part-00002.csv", ""),
        ],
    );
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    let ds = read(&dir, &ReadOptions::sagemaker_csv(1)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(ds.target().unwrap().values, [0.0, 1.0, 1.0, 0.0]);
    assert_eq!(ds.column("f0").unwrap().values, [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn categories_merge_across_parts_even_when_one_part_is_all_numbers() {
    let dir = scratch(
        "levels",
        &[
            ("a.csv", "k,y\n10,1\n20,0\n"),
            ("b.csv", "k,y\nx,1\n10,0\n"),
        ],
    );
    // Numbers and text in one column are refused unless it is declared categorical.
    let e = read(&dir, &ReadOptions::csv_with_header(Some("y"))).unwrap_err();
    assert!(e.file.ends_with("b.csv"), "{e}");
    assert!(e.message.contains("`x` is not a number"), "{e}");
    std::fs::write(dir.join("b.csv"), "k,y\nx,1\ny,0\n").unwrap();
    let e = read(&dir, &ReadOptions::csv_with_header(Some("y"))).unwrap_err();
    assert!(e.file.ends_with("a.csv"), "{e}");
    assert!(e.message.contains("holds numbers here but text in"), "{e}");
    std::fs::write(dir.join("b.csv"), "k,y\nx,1\n10,0\n").unwrap();
    let mut opts = ReadOptions::csv_with_header(Some("y"));
    opts.categorical = vec!["k".to_string()];
    let ds = read(&dir, &opts).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let k = ds.column("k").unwrap();
    assert_eq!(k.levels().unwrap(), ["10", "20", "x"]);
    assert_eq!(k.values, [0.0, 1.0, 2.0, 0.0]);
}

#[test]
fn errors_name_the_part_file() {
    let dir = scratch("bad", &[("p0.csv", "1,2\n3,4\n"), ("p1.csv", "1,2\n3,x\n")]);
    let e = read(&dir, &ReadOptions::sagemaker_csv(1)).unwrap_err();
    assert!(e.file.ends_with("p1.csv"), "{e}");
    assert_eq!((e.line, e.column), (Some(2), Some(2)));

    std::fs::write(dir.join("p1.csv"), "1,2,3\n").unwrap();
    let e = read(&dir, &ReadOptions::sagemaker_csv(1)).unwrap_err();
    assert!(e.file.ends_with("p1.csv"), "{e}");
    assert!(e.message.contains("columns differ"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();

    let empty = scratch("empty", &[("_SUCCESS", "")]);
    let e = read(&empty, &ReadOptions::sagemaker_csv(1)).unwrap_err();
    std::fs::remove_dir_all(&empty).unwrap();
    assert!(e.message.contains("no data files"), "{e}");
}
