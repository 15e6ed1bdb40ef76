//! `registry://GROUP@SELECTOR` references, the way pipelines and
//! `pipeline predict --model` name a registered model.
//!
//! Parsing is separate from resolving so the spec validator can reject a
//! malformed reference without opening the database.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::error::RegistryError;

/// The scheme every reference starts with.
pub const SCHEME: &str = "registry://";

/// Which version of a group a reference means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selector {
    /// The newest Approved version (`@approved`).
    Approved,
    /// The newest version whatever its status (`@latest`).
    Latest,
    /// Exactly this version (`@3`).
    Version(u32),
}

/// A parsed `registry://GROUP@SELECTOR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryRef {
    pub group: String,
    pub selector: Selector,
}

impl RegistryRef {
    /// Parses `registry://GROUP@approved`, `@latest` or `@N`. A reference
    /// without `@SELECTOR` is refused rather than defaulted, so nobody deploys
    /// an unapproved model by leaving the selector out.
    pub fn parse(text: &str) -> Result<RegistryRef, RegistryError> {
        let bad = |message: String| RegistryError::BadReference {
            reference: text.to_string(),
            message,
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(format!("it does not start with `{SCHEME}`")))?;
        let (group, selector) = rest
            .rsplit_once('@')
            .ok_or_else(|| bad("it has no `@` before the version selector".to_string()))?;
        validate_group_name(group).map_err(|e| bad(e.to_string()))?;
        let selector = match selector {
            "approved" => Selector::Approved,
            "latest" => Selector::Latest,
            "" => return Err(bad("the version selector after `@` is empty".to_string())),
            s => match s.parse::<u32>() {
                Ok(n) if n >= 1 && !s.starts_with('+') => Selector::Version(n),
                Ok(_) => return Err(bad("versions are numbered from 1".to_string())),
                Err(_) => {
                    return Err(bad(format!(
                        "`{s}` is not `approved`, `latest` or a version number"
                    )));
                }
            },
        };
        Ok(RegistryRef {
            group: group.to_string(),
            selector,
        })
    }
}

impl FromStr for RegistryRef {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegistryRef::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Approved => f.write_str("approved"),
            Selector::Latest => f.write_str("latest"),
            Selector::Version(n) => write!(f, "{n}"),
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}@{}", self.group, self.selector)
    }
}

/// Checks a model package group name: 1 to 63 ASCII letters, digits and
/// hyphens, starting and ending with a letter or digit (SageMaker's rule), so
/// every group can be written in a reference and a file name.
pub fn validate_group_name(name: &str) -> Result<(), RegistryError> {
    let hint = "use 1 to 63 letters, digits and `-`, starting and ending with a letter or digit, \
                e.g. `churn-model`";
    if name.is_empty() {
        return Err(RegistryError::invalid_with_hint(
            "the model group name is empty",
            hint,
        ));
    }
    if name.len() > 63 {
        return Err(RegistryError::invalid_with_hint(
            format!("the model group name `{name}` is longer than 63 characters"),
            hint,
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(RegistryError::invalid_with_hint(
            format!("the model group name `{name}` contains `{c}`"),
            hint,
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(RegistryError::invalid_with_hint(
            format!("the model group name `{name}` starts or ends with `-`"),
            hint,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_selectors() {
        let r = RegistryRef::parse("registry://churn@approved").unwrap();
        assert_eq!(r.group, "churn");
        assert_eq!(r.selector, Selector::Approved);
        assert_eq!(
            RegistryRef::parse("registry://churn-v2@latest")
                .unwrap()
                .selector,
            Selector::Latest
        );
        assert_eq!(
            "registry://a@17".parse::<RegistryRef>().unwrap().selector,
            Selector::Version(17)
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "registry://a@approved",
            "registry://b-1@latest",
            "registry://c@3",
        ] {
            assert_eq!(RegistryRef::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn malformed_references_say_why() {
        let cases = [
            ("churn@approved", "does not start with"),
            ("registry://churn", "no `@`"),
            ("registry://churn@", "is empty"),
            ("registry://churn@0", "numbered from 1"),
            ("registry://churn@newest", "`newest` is not"),
            ("registry://churn@-1", "`-1` is not"),
            ("registry://@latest", "name is empty"),
            ("registry://ch urn@latest", "contains ` `"),
            ("registry://a@b@latest", "contains `@`"),
        ];
        for (text, needle) in cases {
            let e = RegistryRef::parse(text).unwrap_err();
            assert!(e.is_invalid_input());
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn group_names() {
        assert!(validate_group_name("penguins-species").is_ok());
        assert!(validate_group_name("A1").is_ok());
        assert!(validate_group_name("-a").is_err());
        assert!(validate_group_name("a-").is_err());
        assert!(validate_group_name("a/b").is_err());
        assert!(validate_group_name(&"a".repeat(64)).is_err());
    }
}
