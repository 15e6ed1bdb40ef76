//! The in-memory data set every built-in works on.
//!
//! Columnar and `f32`: one `Vec<f32>` per column, `NaN` for a missing value.
//! String columns are categorical: their values are codes `0..levels.len()`
//! into `levels`, in order of first appearance, and `NaN` when missing. One
//! column may be the target (the label a supervised algorithm learns).

/// What the values of a column mean.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// Plain numbers.
    Numeric,
    /// Codes into `levels` (the distinct strings, in order of first appearance).
    Categorical { levels: Vec<String> },
}

/// One named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// One value a row; `NaN` is missing.
    pub values: Vec<f32>,
}

impl Column {
    pub fn numeric(name: impl Into<String>, values: Vec<f32>) -> Self {
        Column {
            name: name.into(),
            kind: ColumnKind::Numeric,
            values,
        }
    }
    pub fn categorical(name: impl Into<String>, levels: Vec<String>, codes: Vec<f32>) -> Self {
        Column {
            name: name.into(),
            kind: ColumnKind::Categorical { levels },
            values: codes,
        }
    }
    pub fn is_categorical(&self) -> bool {
        matches!(self.kind, ColumnKind::Categorical { .. })
    }
    /// The levels of a categorical column, or `None` for a numeric one.
    pub fn levels(&self) -> Option<&[String]> {
        match &self.kind {
            ColumnKind::Categorical { levels } => Some(levels),
            ColumnKind::Numeric => None,
        }
    }
}

/// A table of equally long columns, with an optional target column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    columns: Vec<Column>,
    target: Option<usize>,
    n_rows: usize,
}

impl Dataset {
    /// Builds a data set; `target` names the label column, if any.
    ///
    /// Panics if the columns differ in length or `target` is not a column:
    /// both are programming errors, readers check their input first.
    pub fn new(columns: Vec<Column>, target: Option<&str>) -> Self {
        let n_rows = columns.first().map_or(0, |c| c.values.len());
        assert!(
            columns.iter().all(|c| c.values.len() == n_rows),
            "columns of unequal length"
        );
        let target = target.map(|t| {
            columns
                .iter()
                .position(|c| c.name == t)
                .unwrap_or_else(|| panic!("no column {t}"))
        });
        Dataset {
            columns,
            target,
            n_rows,
        }
    }

    /// A data set of numeric features given row by row (handy in tests).
    pub fn from_rows(rows: &[Vec<f32>], label: Option<&[f32]>) -> Self {
        let n_features = rows.first().map_or(0, Vec::len);
        let mut columns: Vec<Column> = (0..n_features)
            .map(|j| Column::numeric(format!("f{j}"), rows.iter().map(|r| r[j]).collect()))
            .collect();
        let target = label.map(|l| {
            columns.insert(0, Column::numeric("label", l.to_vec()));
            "label"
        });
        Dataset::new(columns, target)
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }
    /// Every column, the target included.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
    /// Every column, to edit values in place (lengths must not change).
    pub(crate) fn columns_mut(&mut self) -> &mut [Column] {
        &mut self.columns
    }
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    /// The target column, if the data set has one.
    pub fn target(&self) -> Option<&Column> {
        self.target.map(|i| &self.columns[i])
    }
    /// The feature columns: every column but the target, in file order.
    pub fn features(&self) -> impl Iterator<Item = &Column> {
        let t = self.target;
        self.columns
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != t)
            .map(|(_, c)| c)
    }
    pub fn n_features(&self) -> usize {
        self.columns.len() - usize::from(self.target.is_some())
    }
    pub fn feature_names(&self) -> Vec<String> {
        self.features().map(|c| c.name.clone()).collect()
    }

    /// The features as one dense row-major matrix (`n_rows * n_features`), for
    /// algorithms built on matrix products. Categorical features are their codes.
    pub fn feature_matrix_row_major(&self) -> Vec<f32> {
        let cols: Vec<&Column> = self.features().collect();
        let nf = cols.len();
        let mut out = vec![0f32; self.n_rows * nf];
        for (j, c) in cols.iter().enumerate() {
            for (i, v) in c.values.iter().enumerate() {
                out[i * nf + j] = *v;
            }
        }
        out
    }

    /// Splits off the columns `keep` says no to (the target always stays):
    /// returns the data set of the kept columns and the columns taken out, in
    /// file order.
    pub fn partition_columns(self, keep: impl Fn(&Column) -> bool) -> (Dataset, Vec<Column>) {
        let target = self.target.map(|i| self.columns[i].name.clone());
        let (kept, out): (Vec<Column>, Vec<Column>) = self
            .columns
            .into_iter()
            .partition(|c| Some(&c.name) == target.as_ref() || keep(c));
        (Dataset::new(kept, target.as_deref()), out)
    }

    /// The rows at `indices`, in that order (used by splits and folds).
    pub fn take_rows(&self, indices: &[usize]) -> Dataset {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                kind: c.kind.clone(),
                values: indices.iter().map(|&i| c.values[i]).collect(),
            })
            .collect();
        Dataset {
            columns,
            target: self.target,
            n_rows: indices.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_skip_the_target() {
        let ds = Dataset::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]], Some(&[0.0, 1.0]));
        assert_eq!(ds.n_features(), 2);
        assert_eq!(ds.feature_names(), ["f0", "f1"]);
        assert_eq!(ds.target().unwrap().values, [0.0, 1.0]);
        assert_eq!(ds.feature_matrix_row_major(), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ds.take_rows(&[1]).feature_matrix_row_major(), [3.0, 4.0]);
        let (kept, out) = ds.partition_columns(|c| c.name != "f0");
        assert_eq!(kept.feature_names(), ["f1"]);
        assert_eq!(kept.target().unwrap().values, [0.0, 1.0]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "f0");
    }
}
