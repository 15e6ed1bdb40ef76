//! Reading data sets from files into a [`Dataset`].
//!
//! [`read`] is the one entry point: a file, or a directory of part files, in
//! CSV (with a header and a named target, or headerless SageMaker-style with
//! the label first), Parquet, libsvm, RecordIO-protobuf or JSON Lines. [`read_bytes`] reads the same from
//! memory (a stream read to its end), through the same code. Every reader builds columns directly
//! (never rows of strings) and ends in the same checks ([`table::finish`]), so
//! a bad file gets the same kind of error whatever its format: the file, the
//! 1-based line and column, what is wrong and how to fix it.
//!
//! CSV is the format big training sets usually come in, so its reader is the
//! fast one: the file is read once, cut at record boundaries, and parsed by
//! all threads at once with a hand-written exact float parser.

mod csv;
mod csv_chunks;
mod csv_fields;
mod csv_levels;
mod csv_numbers;
mod float;
mod jsonl;
mod libsvm;
mod missing;
mod parquet;
mod parts;
mod recordio;
mod table;

pub use missing::Missing;

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::DataError;
use table::Table;

/// The file formats a channel may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Libsvm,
    /// SageMaker's `application/x-recordio-protobuf`.
    RecordioProtobuf,
    /// One JSON object a line (`application/jsonlines`).
    Jsonlines,
}

impl Format {
    /// The format a file name's extension says (`.csv`, `.tsv`, `.parquet`,
    /// `.pq`, `.libsvm`, `.svm`, `.rec`, `.recordio`, `.jsonl`, `.jsonlines`),
    /// case-insensitively; `None` when it says none.
    pub fn from_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            "libsvm" | "svm" => Some(Format::Libsvm),
            "rec" | "recordio" => Some(Format::RecordioProtobuf),
            "jsonl" | "jsonlines" => Some(Format::Jsonlines),
            _ => None,
        }
    }

    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Libsvm => "libsvm",
            Format::RecordioProtobuf => "recordio-protobuf",
            Format::Jsonlines => "jsonlines",
        }
    }
}

/// How to read a data file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    pub format: Format,
    /// CSV: the first line names the columns.
    pub header: bool,
    /// CSV with a header, Parquet, JSON Lines: the name of the target column.
    pub target: Option<String>,
    /// Headerless CSV: how many leading columns are the label (0 or 1).
    /// Parquet and JSON Lines of named columns without `target`: 1 makes the
    /// first column the target.
    pub label_size: usize,
    /// CSV: the byte between fields (`b','`; `b'\t'` for TSV).
    pub delimiter: u8,
    /// CSV, JSON Lines: which cell texts mean "no value".
    pub missing: Missing,
    /// CSV, JSON Lines: columns read as categories even where their cells are numbers.
    pub categorical: Vec<String>,
}

impl ReadOptions {
    /// Headerless SageMaker-style CSV with the label in the first column.
    pub fn sagemaker_csv(label_size: usize) -> Self {
        ReadOptions {
            format: Format::Csv,
            header: false,
            target: None,
            label_size,
            delimiter: b',',
            missing: Missing::Usual,
            categorical: Vec::new(),
        }
    }
    /// CSV with a header and, optionally, a named target column.
    pub fn csv_with_header(target: Option<&str>) -> Self {
        ReadOptions {
            format: Format::Csv,
            header: true,
            target: target.map(str::to_string),
            label_size: 0,
            delimiter: b',',
            missing: Missing::Usual,
            categorical: Vec::new(),
        }
    }
    /// Parquet, optionally with a named target column.
    pub fn parquet(target: Option<&str>) -> Self {
        ReadOptions {
            format: Format::Parquet,
            header: true,
            target: target.map(str::to_string),
            label_size: 0,
            delimiter: b',',
            missing: Missing::Usual,
            categorical: Vec::new(),
        }
    }
    /// libsvm (`label index:value ...`); the target is always `label`.
    pub fn libsvm() -> Self {
        ReadOptions {
            format: Format::Libsvm,
            header: false,
            target: None,
            label_size: 1,
            delimiter: b' ',
            missing: Missing::Usual,
            categorical: Vec::new(),
        }
    }
    /// RecordIO-protobuf; the target is `label` when the records have one.
    pub fn recordio_protobuf() -> Self {
        ReadOptions {
            format: Format::RecordioProtobuf,
            header: false,
            ..ReadOptions::libsvm()
        }
    }
    /// JSON Lines, optionally with a named target column (SageMaker's
    /// `{"features": [...], "label": x}` has the target `label`).
    pub fn jsonlines(target: Option<&str>) -> Self {
        ReadOptions {
            format: Format::Jsonlines,
            header: true,
            target: target.map(str::to_string),
            label_size: 0,
            delimiter: b',',
            missing: Missing::Usual,
            categorical: Vec::new(),
        }
    }
    /// The same options with another CSV field delimiter.
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }
}

/// Reads `path` (a file, or a directory of part files) into a data set.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Dataset, DataError> {
    check_options(path, opts)?;
    let meta = std::fs::metadata(path).map_err(|e| not_readable(path, &e))?;
    if meta.is_dir() {
        return parts::read_dir(path, opts);
    }
    one_table(path, read_table(path, opts, &[])?, opts)
}

/// Reads a data set from `bytes` held in memory, such as a stream read to
/// its end, exactly as [`read`] reads a file holding them: the same
/// results and the same errors, which name `name` as they would the file
/// (lines and columns counted from the start of `bytes`).
pub fn read_bytes(
    name: &Path,
    bytes: bytes::Bytes,
    opts: &ReadOptions,
) -> Result<Dataset, DataError> {
    check_options(name, opts)?;
    one_table(name, table_of(name, Data::Memory(bytes), opts, &[])?, opts)
}

/// A data set from the table of one file (or stream), `None` when it held nothing.
fn one_table(path: &Path, table: Option<Table>, opts: &ReadOptions) -> Result<Dataset, DataError> {
    match table {
        Some(t) => table::finish(path, t, opts),
        None => {
            Err(DataError::new(path, "the file is empty")
                .hint("point the channel at a file with data"))
        }
    }
}

/// The column names of the data at `path` (a file, or the first part file of
/// a directory) as [`read`] would name them, reading only the first line of a
/// CSV file or a Parquet file's schema. `None` for libsvm and
/// RecordIO-protobuf (their columns are numbered by the rows), for JSON
/// Lines (any line may add a column) and for an empty file.
pub fn column_names(path: &Path, opts: &ReadOptions) -> Result<Option<Vec<String>>, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| not_readable(path, &e))?;
    let file = if meta.is_dir() {
        match parts::part_files(path)?.into_iter().next() {
            Some(f) => f,
            None => return Ok(None),
        }
    } else {
        path.to_path_buf()
    };
    match opts.format {
        Format::Libsvm | Format::RecordioProtobuf | Format::Jsonlines => Ok(None),
        Format::Parquet => parquet::column_names(&file).map(Some),
        Format::Csv => {
            use std::io::Read;
            let mut f = std::fs::File::open(&file).map_err(|e| not_readable(&file, &e))?;
            // A header longer than this is read with the data, not here.
            let mut buf = Vec::new();
            (&mut f)
                .take(1 << 20)
                .read_to_end(&mut buf)
                .map_err(|e| not_readable(&file, &e))?;
            let bytes = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf);
            let mut pos = 0;
            while let Some(next) = csv_fields::blank_line_end(bytes, pos) {
                if next >= bytes.len() {
                    return Ok(None);
                }
                pos = next;
            }
            if pos >= bytes.len() {
                return Ok(None);
            }
            let Ok(first) = csv_fields::scan_record(bytes, pos, opts.delimiter) else {
                return Ok(None);
            };
            if first.next >= bytes.len() && bytes.len() == 1 << 20 {
                return Ok(None);
            }
            Ok(Some(if opts.header {
                csv::header_names(&first.fields)
            } else {
                headerless_names(first.fields.len(), opts.label_size)
            }))
        }
    }
}

fn check_options(path: &Path, opts: &ReadOptions) -> Result<(), DataError> {
    if opts.label_size > 1 {
        return Err(DataError::new(
            path,
            format!(
                "label_size is {}, but only 0 or 1 is supported",
                opts.label_size
            ),
        )
        .hint("use label_size 1 for a label in the first column, 0 for none"));
    }
    if opts.format == Format::Csv
        && matches!(
            opts.delimiter,
            b'"' | b'\n' | b'\r' | b'.' | b'-' | b'+' | b'0'..=b'9'
        )
    {
        return Err(DataError::new(
            path,
            format!(
                "`{}` cannot be a CSV delimiter",
                opts.delimiter.escape_ascii()
            ),
        )
        .hint("use `,` (the default), `;`, `|` or a tab"));
    }
    Ok(())
}

fn not_readable(path: &Path, e: &std::io::Error) -> DataError {
    let err = DataError::new(path, format!("cannot read the data: {e}"));
    if e.kind() == std::io::ErrorKind::NotFound {
        err.hint("check the path; relative paths are relative to the pipeline file")
    } else {
        err
    }
}

/// Reads one file into columns, `None` when it holds nothing at all.
fn read_table(
    path: &Path,
    opts: &ReadOptions,
    force_text: &[String],
) -> Result<Option<Table>, DataError> {
    table_of(path, Data::File(path), opts, force_text)
}

/// Where one file's worth of data is.
enum Data<'a> {
    File(&'a Path),
    Memory(bytes::Bytes),
}

/// Reads one file's worth of data into columns, `None` when it holds
/// nothing at all; errors name `name`.
fn table_of(
    name: &Path,
    data: Data,
    opts: &ReadOptions,
    force_text: &[String],
) -> Result<Option<Table>, DataError> {
    let bytes = match (opts.format, data) {
        (Format::Parquet, Data::File(path)) => {
            let file = std::fs::File::open(path).map_err(|e| not_readable(path, &e))?;
            return parquet::read_table_from(name, file);
        }
        (Format::Parquet, Data::Memory(b)) => return parquet::read_table_from(name, b),
        (_, Data::File(path)) => file_bytes(path)?,
        (_, Data::Memory(b)) => FileBytes::Memory(b),
    };
    match opts.format {
        Format::Csv => csv::read_table(name, &bytes, opts, force_text),
        Format::Libsvm => libsvm::read_table(name, &bytes),
        Format::RecordioProtobuf => recordio::read_table(name, &bytes),
        Format::Jsonlines => jsonl::read_table(name, &bytes, opts, force_text),
        Format::Parquet => unreachable!("read above"),
    }
}

/// A file's contents, mapped into memory when possible (or already there).
enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
    Memory(bytes::Bytes),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
            FileBytes::Memory(b) => b,
        }
    }
}

/// The whole file at `path`. Mapping instead of reading saves a copy of the
/// file and the page faults of a buffer as large as it, a sizeable share of
/// the time to read a big CSV; empty and unmappable files are read normally.
fn file_bytes(path: &Path) -> Result<FileBytes, DataError> {
    let file = std::fs::File::open(path).map_err(|e| not_readable(path, &e))?;
    let len = file.metadata().map_err(|e| not_readable(path, &e))?.len();
    if len > 0 {
        // SAFETY: the map is read-only and dropped before `read` returns. A
        // file truncated by another process during the read would fault; data
        // files are not written while a pipeline step reads them.
        if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
            return Ok(FileBytes::Mapped(map));
        }
    }
    std::fs::read(path)
        .map(FileBytes::Read)
        .map_err(|e| not_readable(path, &e))
}

/// Column names of a headerless file: `label` for the label, then `f0`, `f1`, ...
fn headerless_names(n_cols: usize, label_size: usize) -> Vec<String> {
    (0..n_cols)
        .map(|j| {
            if j < label_size {
                "label".to_string()
            } else {
                format!("f{}", j - label_size)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_penguins_with_a_target() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/data/penguins.csv");
        let ds = read(&p, &ReadOptions::csv_with_header(Some("species"))).unwrap();
        assert_eq!(ds.n_rows(), 344);
        assert_eq!(
            ds.target().unwrap().levels().unwrap(),
            ["Adelie", "Gentoo", "Chinstrap"]
        );
        assert!(ds.column("bill_length_mm").unwrap().values[3].is_nan());
        assert_eq!(
            ds.column("sex").unwrap().levels().unwrap(),
            ["male", "female"]
        );
    }

    #[test]
    fn reads_sagemaker_csv_with_and_without_a_label() {
        let dir = std::env::temp_dir().join(format!("builtins-sm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("train.csv");
        std::fs::write(&p, "1,0.5,,3\r\n0,1e-3,7,NA\r\n\r\n").unwrap();
        let ds = read(&p, &ReadOptions::sagemaker_csv(1)).unwrap();
        assert_eq!(ds.feature_names(), ["f0", "f1", "f2"]);
        assert_eq!(ds.target().unwrap().values, [1.0, 0.0]);
        let f1 = &ds.column("f1").unwrap().values;
        assert!(f1[0].is_nan());
        assert_eq!(f1[1], 7.0);
        assert_eq!(ds.column("f0").unwrap().values, [0.5, 1e-3]);
        let ds = read(&p, &ReadOptions::sagemaker_csv(0)).unwrap();
        assert!(ds.target().is_none());
        assert_eq!(ds.feature_names(), ["f0", "f1", "f2", "f3"]);
        std::fs::write(&p, "").unwrap();
        let e = read(&p, &ReadOptions::sagemaker_csv(1)).unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        std::fs::write(&p, "1,,3\n0,,4\n").unwrap();
        let e = read(&p, &ReadOptions::sagemaker_csv(1)).unwrap_err();
        assert!(
            e.message.contains("column `f0` (column 2) has no values"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reading bytes from memory gives what reading a file holding them gives:
    /// the same data set, or the same error but for the name.
    #[test]
    fn bytes_in_memory_read_as_the_file_holding_them() {
        let dir = std::env::temp_dir().join(format!("builtins-mem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let same = |file: &str, bytes: &[u8], opts: &ReadOptions| {
            let p = dir.join(file);
            std::fs::write(&p, bytes).unwrap();
            let from_file = read(&p, opts);
            let from_memory =
                read_bytes(Path::new(file), bytes::Bytes::copy_from_slice(bytes), opts);
            match (from_file, from_memory) {
                (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{file}"),
                (Err(a), Err(b)) => {
                    assert_eq!(b.file, Path::new(file));
                    assert_eq!(
                        (a.line, a.column, &a.message, &a.hint),
                        (b.line, b.column, &b.message, &b.hint)
                    );
                }
                (a, b) => panic!("{file}: from the file {a:?}, from memory {b:?}"),
            }
        };
        let header = ReadOptions::csv_with_header(Some("y"));
        same(
            "a.csv",
            b"\xEF\xBB\xBFx,y,c\n1,0,red\n2.5,1,blue\nNA,1,red\n",
            &header,
        );
        same("b.csv", b"x,y\n1,0\n2,n/a?\n3,1\n", &header);
        same("c.csv", b"x,y\n", &header);
        same("d.csv", b"", &header);
        same(
            "e.csv",
            b"1,0.5,3\n0,1e-3,7\n",
            &ReadOptions::sagemaker_csv(1),
        );
        same("f.csv", b"1,0.5\n0,inf\n", &ReadOptions::sagemaker_csv(1));
        same(
            "g.libsvm",
            b"1 1:0.5 3:2\n0 2:1 # note\n",
            &ReadOptions::libsvm(),
        );
        same("h.libsvm", b"1 1:0.5\n0 2-1\n", &ReadOptions::libsvm());
        let rec = {
            use recordio::write::{Values, frame, record, value};
            let mut out = Vec::new();
            for (xs, y) in [([1.5f32, 0.0], 1.0f32), ([2.0, 3.0], 0.0)] {
                let r = record(
                    &value(Values::F32(&xs), &[], &[], true),
                    Some(&value(Values::F32(&[y]), &[], &[], true)),
                );
                frame(&mut out, &r);
            }
            out
        };
        same("l.rec", &rec, &ReadOptions::recordio_protobuf());
        same(
            "m.rec",
            &rec[..rec.len() - 5],
            &ReadOptions::recordio_protobuf(),
        );
        same(
            "n.jsonl",
            b"{\"features\": [1, 2], \"label\": 0}\n{\"features\": [3, 4], \"label\": 1}",
            &ReadOptions::jsonlines(None),
        );
        same(
            "o.jsonl",
            b"{\"x\": 1, \"c\": \"red\", \"y\": 0}\n{\"x\": 2, \"c\": \"blue\", \"y\": 1}\n",
            &ReadOptions::jsonlines(Some("y")),
        );
        same(
            "p.jsonl",
            b"{\"x\": 1}\n{\"x\": }\n",
            &ReadOptions::jsonlines(None),
        );
        // Parquet: a real file, and bytes that are not Parquet.
        let pq = {
            use std::sync::Arc;
            let batch = arrow_array::RecordBatch::try_new(
                Arc::new(arrow_schema::Schema::new(vec![
                    arrow_schema::Field::new("x", arrow_schema::DataType::Float64, true),
                    arrow_schema::Field::new("y", arrow_schema::DataType::Utf8, true),
                ])),
                vec![
                    Arc::new(arrow_array::Float64Array::from(vec![
                        Some(1.5),
                        None,
                        Some(3.0),
                    ])),
                    Arc::new(arrow_array::StringArray::from(vec!["a", "b", "a"])),
                ],
            )
            .unwrap();
            let mut buf = Vec::new();
            let mut w =
                ::parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            buf
        };
        same("i.parquet", &pq, &ReadOptions::parquet(Some("y")));
        same("j.parquet", b"x,y\n1,2\n", &ReadOptions::parquet(None));
        same(
            "k.parquet",
            &pq[..pq.len() / 2],
            &ReadOptions::parquet(None),
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn formats_from_extensions() {
        assert_eq!(
            Format::from_extension(Path::new("a/b.CSV")),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_extension(Path::new("x.parquet")),
            Some(Format::Parquet)
        );
        assert_eq!(
            Format::from_extension(Path::new("x.svm")),
            Some(Format::Libsvm)
        );
        assert_eq!(
            Format::from_extension(Path::new("x.rec")),
            Some(Format::RecordioProtobuf)
        );
        assert_eq!(
            Format::from_extension(Path::new("x.JSONL")),
            Some(Format::Jsonlines)
        );
        assert_eq!(Format::from_extension(Path::new("x")), None);
    }

    #[test]
    fn missing_file_and_bad_options() {
        let e = read(Path::new("no/such.csv"), &ReadOptions::sagemaker_csv(1)).unwrap_err();
        assert!(e.message.contains("cannot read"), "{e}");
        assert!(e.hint.unwrap().contains("check the path"));
        let e = read(Path::new("x.csv"), &ReadOptions::sagemaker_csv(2)).unwrap_err();
        assert!(e.message.contains("label_size"), "{e}");
    }
}
