//! The bounds on every duration and size Capstan accepts, checked before
//! anything is written.
//!
//! A duration or a payload past these bounds is refused with a
//! [`ValidationError`] that names it and the bound, never clamped in silence:
//! an unbounded timeout once overflowed the lease arithmetic of a claim and
//! stopped a whole queue. The bounds are generous for real work and keep
//! every sum the SQL makes (now + timeout + grace, now + delay) far inside
//! the range of both databases' timestamps and 64-bit milliseconds.
//!
//! Text that a handler produces (results, progress, error messages) cannot
//! be refused — the work is done — so it is cleaned instead: U+0000, which
//! PostgreSQL's `jsonb` cannot hold, becomes U+FFFD on both backends, and an
//! error message past [`MAX_ERROR_MESSAGE_BYTES`] is cut with a note saying so.

use std::time::Duration;

use serde_json::Value;

use crate::ValidationError;

const DAY: u64 = 24 * 3600;

/// Longest per-attempt timeout, and longest setting of every timeout, grace
/// period, interval and poll wait of a node: one year.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * DAY);

/// Longest delay Capstan accepts: `delay`, how far ahead `run_at` may be,
/// a retry policy's `max_delay`, a handler's `retry_after` and `snooze`, and
/// retention periods: 100 years.
pub const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * DAY);

/// Largest job args, as JSON text: 1 MiB. Put bigger payloads in your own
/// table or object store and pass their key.
pub const MAX_ARGS_BYTES: usize = 1 << 20;

/// Largest result a handler may return, as JSON text: 1 MiB. A bigger result
/// fails the attempt with a message that says so.
pub const MAX_RESULT_BYTES: usize = 1 << 20;

/// Largest progress a handler may report on a heartbeat, as JSON text: 64 KiB.
pub const MAX_PROGRESS_BYTES: usize = 64 << 10;

/// Longest error message kept in a job's history: 8 KiB (longer ones are cut).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 8 << 10;

/// Deepest nesting of arrays and objects in args, results and progress: 100
/// (the JSON decoder refuses beyond 128, so deeper args could never be read back).
pub const MAX_JSON_DEPTH: usize = 100;

/// Check a duration against its bound.
///
/// # Errors
/// [`ValidationError::Duration`] naming `name` when `value` is over `max`.
pub fn check_duration(
    name: &'static str,
    value: Duration,
    max: Duration,
) -> Result<(), ValidationError> {
    if value > max {
        return Err(ValidationError::Duration { name, value, max });
    }
    Ok(())
}

/// Check a JSON payload (args, result, progress): at most `max_bytes` as text,
/// nested at most [`MAX_JSON_DEPTH`] deep, and, when `refuse_nul`, free of U+0000.
///
/// # Errors
/// [`ValidationError::Json`] naming `field` and what is wrong.
pub fn check_json(
    field: &'static str,
    value: &Value,
    max_bytes: usize,
    refuse_nul: bool,
) -> Result<(), ValidationError> {
    let bad = |reason: String| Err(ValidationError::Json { field, reason });
    let Shape {
        depth,
        nul,
        most_bytes,
    } = shape(value);
    if depth > MAX_JSON_DEPTH {
        return bad(format!(
            "nested {depth} levels deep, more than the limit of {MAX_JSON_DEPTH}"
        ));
    }
    if refuse_nul && nul {
        return bad(
            "contains the character U+0000, which PostgreSQL cannot store; remove or escape it"
                .into(),
        );
    }
    // The exact size only when the bound says it may be too big.
    let size = if most_bytes <= max_bytes {
        0
    } else {
        json_len(value)
    };
    if size > max_bytes {
        return bad(format!(
            "is {size} bytes as JSON, more than the limit of {max_bytes} bytes"
        ));
    }
    Ok(())
}

/// `None` when `value` fits in `max_bytes` as JSON text, else its length:
/// the exact length is computed only when a cheap bound cannot tell.
pub fn json_over(value: &Value, max_bytes: usize) -> Option<usize> {
    if shape(value).most_bytes <= max_bytes {
        return None;
    }
    let size = json_len(value);
    (size > max_bytes).then_some(size)
}

/// The length of `value` as JSON text, without building the text.
pub fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a `Value` to a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

/// What one walk over a value tells.
struct Shape {
    /// How deep arrays and objects nest.
    depth: usize,
    /// A string or key holds U+0000.
    nul: bool,
    /// The most bytes its JSON text can take (every character escaped).
    most_bytes: usize,
}

/// One walk over `value`; iterative, so a hostile payload cannot exhaust
/// the stack.
fn shape(value: &Value) -> Shape {
    // A string escapes each byte to at most 6 (`\u0001`), plus its quotes.
    let text = |s: &str| 2 + 6 * s.len();
    let mut out = Shape {
        depth: 0,
        nul: false,
        most_bytes: 0,
    };
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        out.most_bytes += 1; // a separator
        match v {
            Value::Array(items) => {
                out.depth = out.depth.max(d);
                out.most_bytes += 2;
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                out.depth = out.depth.max(d);
                out.most_bytes += 2;
                for (k, i) in map {
                    out.nul |= k.contains('\0');
                    out.most_bytes += text(k) + 1;
                    stack.push((i, d + 1));
                }
            }
            Value::String(s) => {
                out.nul |= s.contains('\0');
                out.most_bytes += text(s);
            }
            // Numbers print in at most 24 characters; true, false, null in 5.
            _ => out.most_bytes += 24,
        }
    }
    out
}

/// `value` with every U+0000 in its strings and keys replaced by U+FFFD.
/// Returns `None` when there was none (the common case: nothing is copied).
pub fn without_nul(value: &Value) -> Option<Value> {
    if !shape(value).nul {
        return None;
    }
    fn clean(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(s.replace('\0', "\u{FFFD}")),
            Value::Array(items) => Value::Array(items.iter().map(clean).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), clean(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    Some(clean(value))
}

/// An error message as kept in a job's history: U+0000 replaced by U+FFFD,
/// cut at [`MAX_ERROR_MESSAGE_BYTES`] (on a character boundary) with a note.
pub fn error_message(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_ERROR_MESSAGE_BYTES && !message.contains('\0') {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut cut = message.len().min(MAX_ERROR_MESSAGE_BYTES);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = message[..cut].replace('\0', "\u{FFFD}");
    if cut < message.len() {
        out.push_str(&format!(" … (cut: {} bytes in all)", message.len()));
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> Value {
        (1..depth).fold(json!([]), |v, _| json!([v]))
    }

    #[test]
    fn json_bounds_name_the_field_and_the_reason() {
        check_json("args", &nested(MAX_JSON_DEPTH), 1 << 20, true).unwrap();
        let e = check_json("args", &nested(MAX_JSON_DEPTH + 1), 1 << 20, true).unwrap_err();
        assert!(e.to_string().contains("args") && e.to_string().contains("101 levels"));
        let e = check_json("args", &json!({"a": "x\u{0}y"}), 1 << 20, true).unwrap_err();
        assert!(e.to_string().contains("U+0000"), "{e}");
        check_json("result", &json!({"a": "x\u{0}y"}), 1 << 20, false).unwrap();
        let big = json!("x".repeat(100));
        assert_eq!(json_len(&big), 102);
        assert!(shape(&big).most_bytes >= 102);
        let nested = json!({"a": [1, 2.5, true, null, "\u{1}é"], "b": {"c": []}});
        assert!(shape(&nested).most_bytes >= json_len(&nested));
        check_json("args", &big, 102, true).unwrap();
        let e = check_json("args", &big, 101, true).unwrap_err();
        assert!(e.to_string().contains("102 bytes"), "{e}");
    }

    #[test]
    fn nul_is_replaced_in_strings_and_keys_only_when_present() {
        assert_eq!(without_nul(&json!({"a": ["b", 1]})), None);
        assert_eq!(
            without_nul(&json!({"k\u{0}": ["a\u{0}b", 1]})),
            Some(json!({"k\u{FFFD}": ["a\u{FFFD}b", 1]}))
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary_with_a_note() {
        assert_eq!(error_message("short"), "short");
        assert_eq!(error_message("a\u{0}b"), "a\u{FFFD}b");
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES); // 2 bytes each
        let cut = error_message(&long);
        assert!(cut.len() < MAX_ERROR_MESSAGE_BYTES + 64);
        assert!(cut.starts_with("éé"));
        assert!(cut.ends_with(&format!("(cut: {} bytes in all)", long.len())));
    }

    #[test]
    fn durations_past_their_bound_are_refused_by_name() {
        check_duration("timeout", MAX_TIMEOUT, MAX_TIMEOUT).unwrap();
        let e = check_duration("timeout", Duration::MAX, MAX_TIMEOUT).unwrap_err();
        assert!(e.to_string().contains("timeout"), "{e}");
    }

    #[test]
    fn the_documented_bounds_are_the_enforced_ones() {
        // README and ARCHITECTURE promise these numbers; the SQL's date
        // arithmetic is sized for them.
        assert_eq!(MAX_TIMEOUT, Duration::from_secs(365 * 24 * 3600));
        assert_eq!(MAX_DELAY, Duration::from_secs(100 * 365 * 24 * 3600));
        assert_eq!(MAX_ARGS_BYTES, 1_048_576);
        assert_eq!(MAX_RESULT_BYTES, 1_048_576);
        assert_eq!(MAX_PROGRESS_BYTES, 65_536);
        assert_eq!(MAX_ERROR_MESSAGE_BYTES, 8_192);
    }

    /// Values of every shape: the cheap bound must never be below the real
    /// size, or a payload one byte too big would be let through.
    fn shapes() -> Vec<Value> {
        vec![
            json!(null),
            json!(true),
            json!(-12345678901234567_i64),
            json!(1.5e300),
            json!(""),
            json!("\u{1}\"\\é\n"),
            json!([]),
            json!({}),
            json!([[], [[]], {"": []}]),
            json!({"k\u{2}": {"nested": [1, "two", {"three": null}]}, "b": [true, false]}),
            json!(
                (0..50)
                    .map(|i| json!({"i": i, "s": "x".repeat(i)}))
                    .collect::<Vec<_>>()
            ),
        ]
    }

    #[test]
    fn a_payload_one_byte_over_its_bound_is_refused_whatever_its_shape() {
        for v in shapes() {
            let len = json_len(&v);
            assert_eq!(len, serde_json::to_string(&v).unwrap().len(), "{v}");
            assert_eq!(json_over(&v, len), None, "{v}");
            assert_eq!(json_over(&v, len - 1), Some(len), "{v}");
            check_json("args", &v, len, true).unwrap();
            let e = check_json("args", &v, len - 1, true).unwrap_err();
            assert!(e.to_string().contains(&format!("{len} bytes")), "{e}");
        }
    }

    #[test]
    fn nesting_is_counted_through_objects_and_arrays() {
        let deep = (1..MAX_JSON_DEPTH).fold(json!({}), |v, i| {
            if i % 2 == 0 {
                json!([v])
            } else {
                json!({"k": v})
            }
        });
        check_json("args", &deep, 1 << 20, true).unwrap();
        assert!(check_json("args", &json!({"k": deep}), 1 << 20, true).is_err());
        assert!(check_json("args", &json!({"\u{0}": 1}), 1 << 20, true).is_err());
        assert!(check_json("args", &json!([{"a": ["\u{0}"]}]), 1 << 20, true).is_err());
    }

    #[test]
    fn a_message_cut_inside_a_character_keeps_at_most_the_limit() {
        // One ASCII byte first, so that the limit falls inside a two-byte
        // character and the cut has to step back to its start.
        let long = format!("a{}", "é".repeat(MAX_ERROR_MESSAGE_BYTES));
        let cut = error_message(&long);
        let kept = cut.split(" … (cut:").next().unwrap();
        assert_eq!(kept.len(), MAX_ERROR_MESSAGE_BYTES - 1);
        assert!(kept.ends_with('é'));
        let exact = "x".repeat(MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(error_message(&exact), exact.as_str());
    }
}
