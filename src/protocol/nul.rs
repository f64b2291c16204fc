//! NUL characters (`\u0000`): PostgreSQL stores none in text or JSON. What a client sends
//! with one is refused up front, naming the field (a retry would fail the same way); what
//! comes from outside and must be kept (a gateway's answer, a webhook's payload) has each
//! replaced by U+FFFD.

use serde_json::Value;

/// Where a NUL character (`\u0000`) sits in `value`, as the keys and indexes that lead to it;
/// `None` when there is none. PostgreSQL stores no NUL in text or JSON, so a NUL anywhere
/// in input is refused up front, naming the field (a key holding one names itself).
pub fn path(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::String(s) => s.contains('\0').then(Vec::new),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let mut path = path(item)?;
            path.insert(0, Value::from(i));
            Some(path)
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let mut path = match key.contains('\0') {
                true => Vec::new(),
                false => path(item)?,
            };
            path.insert(0, Value::from(key.as_str()));
            Some(path)
        }),
        _ => None,
    }
}

/// A JSON text whose NUL characters are replaced by U+FFFD: for what a gateway sends (an
/// agent's answer is stored, not refused, whatever it holds).
pub fn replaced(text: &str) -> std::borrow::Cow<'_, str> {
    if in_frame(text).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    replace(&mut value);
    std::borrow::Cow::Owned(value.to_string())
}

/// Replaces every NUL character of `value` (strings and keys) by U+FFFD, for what comes from
/// outside and is stored rather than refused (a gateway's answer, a webhook's payload).
pub fn replace(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(replace),
        Value::Object(map) => {
            let cleaned: serde_json::Map<String, Value> = std::mem::take(map)
                .into_iter()
                .map(|(key, mut item)| {
                    replace(&mut item);
                    (key.replace('\0', "\u{FFFD}"), item)
                })
                .collect();
            *map = cleaned;
        }
        _ => {}
    }
}

/// Whether a JSON text may carry a NUL character: only a `\u0000` escape can (JSON has no
/// `\U`, and `0` has no case).
pub fn may_hold(text: &str) -> bool {
    text.contains("\\u0000")
}

/// `path` of a JSON text, with the frame's `id`; `None` when the text holds no NUL (or
/// is not JSON). Only a text with a `\u0000` escape is parsed: JSON has no other way to
/// carry one.
pub fn in_frame(text: &str) -> Option<(Option<Value>, String)> {
    if !may_hold(text) {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    let path = path(&value)?;
    let dotted = path
        .iter()
        .map(|segment| match segment {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".");
    Some((value.get("id").cloned(), dotted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_characters_are_found_with_their_path() {
        let value: Value =
            serde_json::from_str(r#"{"a": [1, {"b": "x\u0000y"}], "c": "ok"}"#).unwrap();
        assert_eq!(path(&value), Some(vec![json!("a"), json!(1), json!("b")]));
        assert_eq!(path(&serde_json::json!({"ok": ["fine"]})), None);
        let key: Value = serde_json::from_str(r#"{"k\u0000": 1}"#).unwrap();
        assert_eq!(path(&key), Some(vec![json!("k\u{0}")]));
        let frame = r#"{"type":"chat","id":"local-1","payload":{"content":"a\u0000b"}}"#;
        assert_eq!(
            in_frame(frame),
            Some((Some(json!("local-1")), "payload.content".to_string()))
        );
        // An escaped backslash before "u0000" is text, not a NUL.
        assert_eq!(in_frame(r#"{"content":"a\\u0000"}"#), None);
        assert_eq!(
            replaced(frame),
            r#"{"type":"chat","id":"local-1","payload":{"content":"a\u{FFFD}b"}}"#
                .replace("\\u{FFFD}", "\u{FFFD}")
        );
    }
}
