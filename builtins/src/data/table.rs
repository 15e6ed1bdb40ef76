//! From the columns a reader found to a checked [`Dataset`].
//!
//! Every format ends here, so the checks that do not depend on the format are
//! made once: the data has rows, column names are unique, the target exists
//! (with a suggestion when it is misspelt), and no column is entirely missing.

use std::path::Path;

use super::{Format, ReadOptions};
use crate::dataset::{Column, Dataset};
use crate::error::DataError;

/// Columns as read from one file (or the part files of one directory).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    /// The names came from the file (a CSV header, a Parquet schema).
    pub has_header: bool,
}

impl Table {
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

/// Checks `table` and makes it a data set; `path` is what errors name.
pub fn finish(path: &Path, table: Table, opts: &ReadOptions) -> Result<Dataset, DataError> {
    if table.columns.is_empty() || table.n_rows() == 0 {
        let msg = if table.has_header && !table.columns.is_empty() {
            "the file has a header but no data rows"
        } else {
            "the file holds no data rows"
        };
        return Err(DataError::new(path, msg).hint("point the channel at a file with data"));
    }
    // By hash: a scan per column was quadratic, and a short libsvm file with
    // one large index makes hundreds of thousands of columns.
    let mut seen: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(table.columns.len());
    for (j, c) in table.columns.iter().enumerate() {
        if let Some(&first) = seen.get(c.name.as_str()) {
            return Err(DataError::new(
                path,
                format!(
                    "column name `{}` appears twice (columns {} and {})",
                    c.name,
                    first + 1,
                    j + 1
                ),
            )
            .hint("give every column its own name"));
        }
        seen.insert(&c.name, j);
    }
    let target = target_name(path, &table, opts)?;
    if let Some((j, c)) = table
        .columns
        .iter()
        .enumerate()
        .find(|(_, c)| c.values.iter().all(|v| v.is_nan()))
    {
        return Err(DataError::new(
            path,
            format!(
                "column `{}` (column {}) has no values: every row is empty or missing",
                c.name,
                j + 1
            ),
        )
        .hint("remove the column or fill in its values"));
    }
    Ok(Dataset::new(table.columns, target.as_deref()))
}

fn target_name(
    path: &Path,
    table: &Table,
    opts: &ReadOptions,
) -> Result<Option<String>, DataError> {
    let names = table.names();
    let named = match opts.format {
        Format::Libsvm => return Ok(Some("label".to_string())),
        Format::Csv if !opts.header => {
            return Ok((opts.label_size > 0).then(|| "label".to_string()));
        }
        Format::Csv => opts.target.clone(),
        // Records with labels have the column `label`; a target cannot be named.
        Format::RecordioProtobuf => {
            return Ok(names.contains(&"label").then(|| "label".to_string()));
        }
        // SageMaker's shape (no names of its own): `label` when the lines have one.
        Format::Jsonlines if !table.has_header => match &opts.target {
            Some(t) => Some(t.clone()),
            None => return Ok(names.contains(&"label").then(|| "label".to_string())),
        },
        Format::Parquet | Format::Jsonlines => match &opts.target {
            Some(t) => Some(t.clone()),
            None if opts.label_size > 0 => return Ok(names.first().map(|n| n.to_string())),
            None => None,
        },
    };
    let Some(t) = named else { return Ok(None) };
    if names.contains(&t.as_str()) {
        return Ok(Some(t));
    }
    let mut hint = format!("the columns are: {}", names.join(", "));
    if let Some(close) = closest(&t, &names) {
        hint = format!("did you mean `{close}`? {hint}");
    }
    let err = DataError::new(path, format!("no column named `{t}` for the target"));
    let err = if opts.format == Format::Csv {
        err.at(1, None)
    } else {
        err
    };
    Err(err.hint(hint))
}

/// The name most like `want`, when one is close enough to be a likely typo.
fn closest<'a>(want: &str, names: &[&'a str]) -> Option<&'a str> {
    let want_l = want.to_lowercase();
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(&want_l, &n.to_lowercase()), *n))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cols: Vec<Column>) -> Table {
        Table {
            columns: cols,
            has_header: true,
        }
    }

    #[test]
    fn many_columns_are_checked_in_linear_time() {
        // 200,000 columns: a pairwise name check would take minutes.
        let mut cols: Vec<Column> = std::iter::once(Column::numeric("label", vec![1.0]))
            .chain((0..200_000).map(|j| Column::numeric(format!("f{j}"), vec![1.0])))
            .collect();
        let start = std::time::Instant::now();
        assert!(
            finish(
                Path::new("p.csv"),
                table(cols.clone()),
                &ReadOptions::libsvm()
            )
            .is_ok()
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        cols.push(Column::numeric("f7", vec![2.0]));
        let e = finish(Path::new("p.csv"), table(cols), &ReadOptions::libsvm()).unwrap_err();
        assert!(
            e.to_string()
                .contains("appears twice (columns 9 and 200002)"),
            "{e}"
        );
    }

    #[test]
    fn misspelt_target_gets_a_suggestion() {
        let t = table(vec![
            Column::numeric("species_id", vec![1.0]),
            Column::numeric("mass", vec![2.0]),
        ]);
        let e = finish(
            Path::new("p.csv"),
            t,
            &ReadOptions::csv_with_header(Some("specis_id")),
        )
        .unwrap_err();
        let h = e.hint.unwrap();
        assert!(h.contains("did you mean `species_id`"), "{h}");
        assert!(h.contains("species_id, mass"), "{h}");
    }

    #[test]
    fn empty_and_all_missing_columns_are_errors() {
        let e = finish(
            Path::new("p.csv"),
            table(vec![Column::numeric("a", vec![])]),
            &ReadOptions::csv_with_header(None),
        )
        .unwrap_err();
        assert!(e.message.contains("header but no data rows"));
        let e = finish(
            Path::new("p.csv"),
            table(vec![
                Column::numeric("a", vec![1.0, 2.0]),
                Column::numeric("b", vec![f32::NAN, f32::NAN]),
            ]),
            &ReadOptions::csv_with_header(None),
        )
        .unwrap_err();
        assert!(
            e.message.contains("column `b` (column 2) has no values"),
            "{e}"
        );
        let e = finish(
            Path::new("p.csv"),
            table(vec![
                Column::numeric("a", vec![1.0]),
                Column::numeric("a", vec![2.0]),
            ]),
            &ReadOptions::csv_with_header(None),
        )
        .unwrap_err();
        assert!(e.message.contains("appears twice"), "{e}");
    }
}
