//! Durations in configuration files as people write them (`500ms`, `30s`,
//! `5m`, `7d`): a serde `with` module every crate's config section uses, so
//! one form is accepted everywhere and a bad value says what is wanted.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parse a humantime duration, with a message that shows the accepted form.
///
/// # Errors
/// When `s` is not a duration.
pub fn parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| {
        format!("{s:?} is not a duration ({e}): write it like 500ms, 30s, 5m, 1h or 7d")
    })
}

/// Serialize as a humantime string (`5m`, `1day`).
///
/// # Errors
/// The serializer's.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Deserialize from a humantime string.
///
/// # Errors
/// A string that is not a duration, or not a string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

/// The same for an optional duration.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize `Some` as a humantime string, `None` as nothing.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Deserialize from a humantime string.
    ///
    /// # Errors
    /// A string that is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map(Some).map_err(serde::de::Error::custom)
    }
}
