//! Which field texts mean "no value".
//!
//! Files written by pandas, R, spreadsheets and databases spell a missing value
//! in many ways; all of them become `NaN` so that a column of numbers with gaps
//! stays numeric instead of turning categorical.

/// True when a (trimmed) field is one of the usual spellings of a missing value.
pub fn is_missing(field: &[u8]) -> bool {
    matches!(
        field,
        b"" | b"NA"
            | b"na"
            | b"N/A"
            | b"n/a"
            | b"#N/A"
            | b"NaN"
            | b"nan"
            | b"NAN"
            | b"-NaN"
            | b"-nan"
            | b"null"
            | b"NULL"
            | b"Null"
            | b"None"
            | b"none"
            | b"?"
    )
}

/// Which field texts mean "no value" for one data set.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Missing {
    /// The usual spellings ([`is_missing`]), and `NaN` in any spelling.
    #[default]
    Usual,
    /// Exactly these (trimmed) texts, as an input's `missing_values` lists them.
    Listed(Vec<Vec<u8>>),
}

impl Missing {
    /// The list an input declares (`missing_values`).
    pub fn listed<S: AsRef<str>>(values: &[S]) -> Missing {
        Missing::Listed(
            values
                .iter()
                .map(|v| v.as_ref().trim().as_bytes().to_vec())
                .collect(),
        )
    }

    /// True when the (trimmed) text of a field means "no value".
    pub fn is_missing(&self, t: &[u8]) -> bool {
        match self {
            Missing::Usual => is_missing(t),
            Missing::Listed(l) => l.iter().any(|m| m == t),
        }
    }

    /// Listed texts that are numbers: the number reader takes them before
    /// any text comparison, so their values are made missing afterwards.
    pub fn numbers(&self) -> Vec<f32> {
        match self {
            Missing::Usual => Vec::new(),
            Missing::Listed(l) => l
                .iter()
                .filter_map(|m| super::float::parse_field(m))
                .filter(|v| v.is_finite())
                .collect(),
        }
    }
}

/// What a field holds once read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    Number(f32),
    Missing,
    /// Not a number: the column is categorical.
    Text,
    /// `inf`, or a number beyond the range of 32-bit floats.
    Infinite,
}

/// Classifies a field's text (quotes already removed).
pub fn classify(field: &[u8], missing: &Missing) -> FieldValue {
    let t = field.trim_ascii();
    if missing.is_missing(t) {
        return FieldValue::Missing;
    }
    match super::float::parse_field(t) {
        // `NaN` is a spelling of missing unless the input lists its own.
        Some(v) if v.is_nan() && *missing == Missing::Usual => FieldValue::Missing,
        Some(v) if v.is_nan() => FieldValue::Text,
        Some(v) if v.is_infinite() => FieldValue::Infinite,
        Some(v) => FieldValue::Number(v),
        None => FieldValue::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_missing_and_numbers() {
        for s in ["", "NA", "NaN", "nan", "null", "?", " NA "] {
            assert_eq!(
                classify(s.as_bytes(), &Missing::Usual),
                FieldValue::Missing,
                "{s:?}"
            );
        }
        let u = &Missing::Usual;
        assert_eq!(classify(b" 2.5 ", u), FieldValue::Number(2.5));
        assert_eq!(classify(b"-inf", u), FieldValue::Infinite);
        assert_eq!(classify(b"1e39", u), FieldValue::Infinite);
        assert_eq!(classify(b"male", u), FieldValue::Text);
        assert_eq!(classify(b"1,5", u), FieldValue::Text);
    }

    #[test]
    fn a_declared_list_replaces_the_usual_spellings() {
        let m = Missing::listed(&["n/a?", "", "-999"]);
        assert_eq!(classify(b"n/a?", &m), FieldValue::Missing);
        assert_eq!(classify(b" ", &m), FieldValue::Missing);
        assert_eq!(classify(b"NA", &m), FieldValue::Text);
        assert_eq!(classify(b"nan", &m), FieldValue::Text);
        assert_eq!(m.numbers(), [-999.0]);
    }
}
