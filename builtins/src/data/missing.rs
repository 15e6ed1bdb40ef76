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

/// What a field holds once read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    Number(f32),
    Missing,
    /// Not a number: the column is categorical.
    Text,
}

/// Classifies a field's text (quotes already removed).
pub fn classify(field: &[u8]) -> FieldValue {
    let t = field.trim_ascii();
    if is_missing(t) {
        return FieldValue::Missing;
    }
    match super::float::parse_field(t) {
        Some(v) if v.is_nan() => FieldValue::Missing,
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
            assert_eq!(classify(s.as_bytes()), FieldValue::Missing, "{s:?}");
        }
        assert_eq!(classify(b" 2.5 "), FieldValue::Number(2.5));
        assert_eq!(classify(b"-inf"), FieldValue::Number(f32::NEG_INFINITY));
        assert_eq!(classify(b"male"), FieldValue::Text);
        assert_eq!(classify(b"1,5"), FieldValue::Text);
    }
}
