//! How an attempt's error is classified. The class decides what happens next
//! (retry or fail now) and is kept in the attempt history.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The class of an attempt's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A transient error: retried after the retry policy's backoff (the default).
    Retryable,
    /// An error that retrying cannot fix: the job fails now.
    Permanent,
    /// The handler ran past its timeout and was cancelled: retried.
    Timeout,
    /// The handler panicked: retried (the panic may be transient).
    Panicked,
    /// The job was cancelled by a user while it ran.
    Cancelled,
    /// The holder lost the job: its node stopped heartbeating or its lease
    /// expired, and a rescuer took it back. Counts as an attempt.
    Rescued,
    /// A class this version does not know (written by a newer version): the
    /// history stays readable.
    #[serde(other)]
    Unknown,
}

impl ErrorClass {
    /// The text stored in the attempt history.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Panicked => "panicked",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::Rescued => "rescued",
            ErrorClass::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorClass {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ErrorClass::Retryable,
            ErrorClass::Permanent,
            ErrorClass::Timeout,
            ErrorClass::Panicked,
            ErrorClass::Cancelled,
            ErrorClass::Rescued,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| ValidationError::UnknownErrorClass(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_stored_under_the_names_the_sql_writes() {
        // The backends' SQL writes "rescued", "cancelled" and "unknown"
        // literally; the history must read back as the same classes.
        let names = [
            (ErrorClass::Retryable, "retryable"),
            (ErrorClass::Permanent, "permanent"),
            (ErrorClass::Timeout, "timeout"),
            (ErrorClass::Panicked, "panicked"),
            (ErrorClass::Cancelled, "cancelled"),
            (ErrorClass::Rescued, "rescued"),
        ];
        for (class, name) in names {
            assert_eq!(class.to_string(), name);
            assert_eq!(name.parse::<ErrorClass>().unwrap(), class);
            assert_eq!(serde_json::to_value(class).unwrap(), name);
        }
        assert_eq!(ErrorClass::Unknown.as_str(), "unknown");
        assert!("exploded".parse::<ErrorClass>().is_err());
        let newer: ErrorClass = serde_json::from_value(serde_json::json!("exploded")).unwrap();
        assert_eq!(newer, ErrorClass::Unknown);
    }
}
