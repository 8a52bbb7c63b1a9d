//! The `modules` topic: an entry changed (refreshed, put, invalidated), so
//! every node drops what its memory holds of it and wakes the reads that
//! wait for it. A hint only: a node that may have missed some re-reads its
//! memory's entries from the database before serving them again.

use capstan_store::{Notification, Topic};
use serde::{Deserialize, Serialize};

/// The topic of entry changes.
pub const MODULES: Topic = Topic::new("modules");

/// One change, as carried on [`MODULES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Change {
    /// The module.
    #[serde(rename = "m")]
    pub(crate) module: String,
    /// The key; `None`: every key of the module.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// The entry's version after the change, when known: a node whose
    /// memory holds this version or a newer one keeps it.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<i64>,
}

impl Change {
    pub(crate) fn notification(&self) -> Option<Notification> {
        let payload = serde_json::to_string(self).ok()?;
        // (Keys are bounded well under the payload limit; a change that
        // would not fit names its whole module instead.)
        if payload.len() > capstan_store::MAX_PAYLOAD {
            let whole = Change {
                module: self.module.clone(),
                key: None,
                version: None,
            };
            return Some(Notification::new(
                MODULES,
                serde_json::to_string(&whole).ok()?,
            ));
        }
        Some(Notification::new(MODULES, payload))
    }

    pub(crate) fn parse(payload: &str) -> Option<Change> {
        serde_json::from_str(payload).ok()
    }

    /// Whether this change is about `module`/`key`.
    pub(crate) fn touches(&self, module: &str, key: &str) -> bool {
        self.module == module && self.key.as_deref().is_none_or(|k| k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_round_trips_and_names_what_it_touches() {
        let c = Change {
            module: "quotes".into(),
            key: Some("nvda".into()),
            version: Some(7),
        };
        let n = c.notification().unwrap();
        assert_eq!(n.payload, r#"{"m":"quotes","k":"nvda","v":7}"#);
        assert_eq!(Change::parse(&n.payload), Some(c.clone()));
        assert!(c.touches("quotes", "nvda") && !c.touches("quotes", "amd"));
        let all = Change {
            module: "quotes".into(),
            key: None,
            version: None,
        };
        assert!(all.touches("quotes", "amd") && !all.touches("fx", "amd"));
        assert_eq!(Change::parse("not json"), None);
    }
}
