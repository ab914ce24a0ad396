//! Reading Redis's stream replies (`XREADGROUP`, `XAUTOCLAIM`, `XCLAIM`, `XPENDING`)
//! out of `redis::Value`, in RESP2 and RESP3 shapes alike, and the clock.

use redis::Value;

/// One stream entry: its id and its fields, in order, values as bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: Vec<(String, Vec<u8>)>,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        other => text(other).map(String::into_bytes),
    }
}

fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// `[[id, [field, value, ...]], ...]`. An entry whose fields are nil (deleted while
/// pending) is left out.
pub(crate) fn entries(value: &Value) -> Result<Vec<Entry>, String> {
    let Some(list) = items(value) else {
        return match value {
            Value::Nil => Ok(Vec::new()),
            other => Err(format!("unexpected entry list from Redis: {other:?}")),
        };
    };
    let mut entries = Vec::with_capacity(list.len());
    for item in list {
        let pair = items(item).ok_or_else(|| format!("unexpected entry from Redis: {item:?}"))?;
        let [id, fields] = pair else { return Err(format!("unexpected entry from Redis: {item:?}")) };
        let id = text(id).ok_or_else(|| format!("unexpected entry id from Redis: {id:?}"))?;
        let fields = match fields {
            Value::Nil => continue,
            Value::Map(map) => map.iter().map(|(k, v)| Some((text(k)?, bytes(v)?))).collect::<Option<Vec<_>>>(),
            other => items(other).and_then(|flat| {
                flat.chunks(2)
                    .map(|kv| match kv {
                        [k, v] => Some((text(k)?, bytes(v)?)),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
            }),
        }
        .ok_or_else(|| format!("unexpected fields of entry {id} from Redis"))?;
        entries.push(Entry { id, fields });
    }
    Ok(entries)
}

/// `XREADGROUP`'s reply: nil on timeout, else each stream's name and entries.
pub(crate) fn read_reply(value: &Value) -> Result<Vec<(String, Vec<Entry>)>, String> {
    let unexpected = || format!("unexpected XREADGROUP reply: {value:?}");
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Map(streams) => {
            streams.iter().map(|(name, list)| Ok((text(name).ok_or_else(unexpected)?, entries(list)?))).collect()
        }
        other => items(other)
            .ok_or_else(unexpected)?
            .iter()
            .map(|stream| match items(stream) {
                Some([name, list]) => Ok((text(name).ok_or_else(unexpected)?, entries(list)?)),
                _ => Err(unexpected()),
            })
            .collect(),
    }
}

/// `XAUTOCLAIM`'s reply: `[cursor, entries, deleted ids]`; the next cursor and the
/// entries.
pub(crate) fn autoclaim_reply(value: &Value) -> Result<(String, Vec<Entry>), String> {
    match items(value) {
        Some([cursor, list, ..]) => {
            let cursor = text(cursor).ok_or_else(|| format!("unexpected XAUTOCLAIM cursor: {cursor:?}"))?;
            Ok((cursor, entries(list)?))
        }
        _ => Err(format!("unexpected XAUTOCLAIM reply: {value:?}")),
    }
}

/// `XPENDING key group id id 1`'s reply: the entry's delivery count, if it is pending.
pub(crate) fn delivery_count(value: &Value) -> Option<u64> {
    let first = items(value)?.first()?;
    match items(first)? {
        [_, _, _, Value::Int(count)] => u64::try_from(*count).ok(),
        _ => None,
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn replies_of_both_protocol_versions_read_the_same() {
        let entry = Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("id"), bulk("x")])]);
        let expected = vec![Entry { id: "1-0".into(), fields: vec![("id".into(), b"x".to_vec())] }];
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("s"), Value::Array(vec![entry.clone()])])]);
        assert_eq!(read_reply(&resp2), Ok(vec![("s".to_owned(), expected.clone())]));
        let resp3 = Value::Map(vec![(bulk("s"), Value::Array(vec![entry.clone()]))]);
        assert_eq!(read_reply(&resp3), Ok(vec![("s".to_owned(), expected.clone())]));
        assert_eq!(read_reply(&Value::Nil), Ok(vec![]));
        let deleted = Value::Array(vec![bulk("2-0"), Value::Nil]);
        let claimed = Value::Array(vec![bulk("0-0"), Value::Array(vec![entry, deleted]), Value::Array(vec![])]);
        assert_eq!(autoclaim_reply(&claimed), Ok(("0-0".to_owned(), expected)));
        let pending = Value::Array(vec![Value::Array(vec![bulk("1-0"), bulk("c"), Value::Int(5), Value::Int(3)])]);
        assert_eq!(delivery_count(&pending), Some(3));
        assert_eq!(delivery_count(&Value::Array(vec![])), None);
    }
}
