//! The image tag: index.json names the manifest with it, skopeo and umoci select the image by
//! it (`oci:DIR:TAG`, `DIR:TAG`), and it is usually pushed unchanged, so it is checked against
//! the registry tag grammar up front rather than failing at push time.

use crate::Error;
use std::fmt;

/// A tag in the registry grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, which also satisfies the
/// OCI layout's ref-name rules as skopeo and umoci apply them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    /// Checks `tag` against the grammar.
    pub fn parse(tag: &str) -> Result<Self, Error> {
        let mut chars = tag.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if first_ok && rest_ok && tag.len() <= 128 {
            Ok(Tag(tag.to_owned()))
        } else {
            Err(Error::InvalidTag(tag.to_owned()))
        }
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_registry_tags_and_refuses_the_rest() {
        let cases = [
            ("0.1.0", true),
            ("latest", true),
            ("v1_2-rc.3", true),
            ("_x", true),
            ("", false),
            (".hidden", false),
            ("-x", false),
            ("a:b", false),
            ("a/b", false),
            ("with space", false),
            ("é", false),
        ];
        for (tag, ok) in cases {
            assert_eq!(Tag::parse(tag).is_ok(), ok, "{tag:?}");
        }
        assert!(Tag::parse(&"a".repeat(128)).is_ok());
        assert!(Tag::parse(&"a".repeat(129)).is_err());
    }
}
