//! The Parquet reader.
//!
//! Parquet is typed, so there is nothing to guess: integer, float and boolean
//! columns become numeric (`null` is `NaN`), string columns (plain or
//! dictionary-encoded, as pandas writes categoricals) become categorical with
//! levels in order of first appearance. Other types (dates, timestamps,
//! decimals, nested) are refused with the column's name, so the user converts
//! them on purpose instead of getting silently wrong numbers.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;

use super::table::Table;
use crate::dataset::Column;
use crate::error::DataError;

/// The column names in a Parquet file's schema.
pub fn column_names(path: &Path) -> Result<Vec<String>, DataError> {
    let file = File::open(path).map_err(|e| super::not_readable(path, &e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        DataError::new(path, format!("cannot read as Parquet: {e}"))
            .hint("check that the file is Parquet, or set the channel's `format`")
    })?;
    Ok(builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// Reads the Parquet file at `path`; `None` when it has no columns.
#[cfg(test)]
pub fn read_table(path: &Path) -> Result<Option<Table>, DataError> {
    let file = File::open(path).map_err(|e| super::not_readable(path, &e))?;
    read_table_from(path, file)
}

/// Reads Parquet data from `file` (a file, or bytes in memory); `None` when
/// it has no columns. Errors name `path`.
pub fn read_table_from<R: ChunkReader + 'static>(
    path: &Path,
    file: R,
) -> Result<Option<Table>, DataError> {
    let not_parquet = |e: parquet::errors::ParquetError| {
        DataError::new(path, format!("cannot read as Parquet: {e}"))
            .hint("check that the file is Parquet, or set the channel's `format`")
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(not_parquet)?;
    let schema = builder.schema().clone();
    if schema.fields().is_empty() {
        return Ok(None);
    }
    let mut builders = Vec::with_capacity(schema.fields().len());
    for (j, field) in schema.fields().iter().enumerate() {
        let b = Builder::for_type(field.data_type()).ok_or_else(|| {
            DataError::new(
                path,
                format!(
                    "column `{}` (column {}) has type {}, which cannot be read as a number or a category",
                    field.name(),
                    j + 1,
                    field.data_type()
                ),
            )
            .hint("convert it to numbers (e.g. seconds since an epoch) or strings, or drop it")
        })?;
        builders.push(b);
    }
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(not_parquet)?;
    for batch in reader {
        let batch = batch.map_err(|e| {
            DataError::new(path, format!("cannot read as Parquet: {e}"))
                .hint("the file may be truncated or corrupt; write it again")
        })?;
        for (b, col) in builders.iter_mut().zip(batch.columns()) {
            b.append(col);
        }
    }
    let columns = schema
        .fields()
        .iter()
        .zip(builders)
        .map(|(f, b)| b.finish(f.name().clone()))
        .collect();
    Ok(Some(Table {
        columns,
        has_header: true,
    }))
}

/// One column being filled batch by batch.
enum Builder {
    Numeric(Vec<f32>),
    Text {
        index: HashMap<String, f32>,
        levels: Vec<String>,
        codes: Vec<f32>,
    },
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_number(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Float32 | DataType::Float64 | DataType::Boolean)
}

impl Builder {
    fn for_type(t: &DataType) -> Option<Builder> {
        let text = || Builder::Text {
            index: HashMap::new(),
            levels: Vec::new(),
            codes: Vec::new(),
        };
        match t {
            t if is_number(t) => Some(Builder::Numeric(Vec::new())),
            t if is_string(t) => Some(text()),
            DataType::Dictionary(k, v) if k.is_integer() && is_string(v) => Some(text()),
            _ => None,
        }
    }

    fn append(&mut self, col: &ArrayRef) {
        match self {
            Builder::Numeric(out) => push_numbers(col, out),
            Builder::Text {
                index,
                levels,
                codes,
            } => {
                let mut code = |s: Option<&str>| match s {
                    None => f32::NAN,
                    Some(s) => {
                        let next = levels.len() as f32;
                        *index.entry(s.to_string()).or_insert_with(|| {
                            levels.push(s.to_string());
                            next
                        })
                    }
                };
                match col.data_type() {
                    DataType::Utf8 => codes.extend(col.as_string::<i32>().iter().map(&mut code)),
                    DataType::LargeUtf8 => {
                        codes.extend(col.as_string::<i64>().iter().map(&mut code))
                    }
                    DataType::Utf8View => codes.extend(col.as_string_view().iter().map(&mut code)),
                    DataType::Dictionary(_, _) => {
                        let dict = col.as_any_dictionary();
                        let keys = dict.normalized_keys();
                        let values = dict.values();
                        let text: Vec<Option<&str>> = match values.data_type() {
                            DataType::Utf8 => values.as_string::<i32>().iter().collect(),
                            DataType::LargeUtf8 => values.as_string::<i64>().iter().collect(),
                            _ => values.as_string_view().iter().collect(),
                        };
                        let nulls = col.logical_nulls();
                        for (i, &k) in keys.iter().enumerate() {
                            let valid = nulls.as_ref().is_none_or(|n| n.is_valid(i));
                            let s = if valid {
                                text.get(k).copied().flatten()
                            } else {
                                None
                            };
                            codes.push(code(s));
                        }
                    }
                    _ => codes.extend(std::iter::repeat_n(f32::NAN, col.len())),
                }
            }
        }
    }

    fn finish(self, name: String) -> Column {
        match self {
            Builder::Numeric(v) => Column::numeric(name, v),
            Builder::Text { levels, codes, .. } => Column::categorical(name, levels, codes),
        }
    }
}

fn push_numbers(col: &ArrayRef, out: &mut Vec<f32>) {
    macro_rules! prim {
        ($t:ty) => {
            out.extend(
                col.as_primitive::<$t>()
                    .iter()
                    .map(|v| v.map_or(f32::NAN, |x| x as f32)),
            )
        };
    }
    match col.data_type() {
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Boolean => out.extend(
            col.as_boolean()
                .iter()
                .map(|v| v.map_or(f32::NAN, |b| f32::from(u8::from(b)))),
        ),
        _ => out.extend(std::iter::repeat_n(f32::NAN, col.len())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        BooleanArray, DictionaryArray, Float64Array, Int32Array, RecordBatch, StringArray,
    };
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;

    fn write(path: &Path, batch: RecordBatch) {
        let f = File::create(path).unwrap();
        let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn reads_numbers_strings_and_dictionaries() {
        let dir = std::env::temp_dir().join(format!("builtins-pq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.parquet");
        let dict: DictionaryArray<Int32Type> = vec![Some("lo"), Some("hi"), None, Some("lo")]
            .into_iter()
            .collect();
        let schema = Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("n", DataType::Int32, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", dict.data_type().clone(), true),
            Field::new("b", DataType::Boolean, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    Some(-2.0),
                    Some(0.0),
                ])),
                Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("a"),
                    Some("b"),
                    None,
                ])),
                Arc::new(dict),
                Arc::new(BooleanArray::from(vec![true, false, true, true])),
            ],
        )
        .unwrap();
        write(&path, batch);
        let t = read_table(&path).unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(t.names(), ["x", "n", "s", "d", "b"]);
        assert_eq!(t.columns[0].values[0], 1.5);
        assert!(t.columns[0].values[1].is_nan());
        assert_eq!(t.columns[1].values, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(t.columns[2].levels().unwrap(), ["b", "a"]);
        assert_eq!(t.columns[2].values[..3], [0.0, 1.0, 0.0]);
        assert_eq!(t.columns[3].levels().unwrap(), ["lo", "hi"]);
        assert!(t.columns[3].values[2].is_nan());
        assert_eq!(t.columns[4].values, [1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn not_parquet_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("builtins-pq-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.parquet");
        std::fs::write(&path, b"a,b\n1,2\n").unwrap();
        let e = read_table(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.message.contains("cannot read as Parquet"), "{e}");
    }
}
