//! Stripe's form encoding: `application/x-www-form-urlencoded` pairs whose
//! keys nest with brackets (`metadata[tenant]=t1`,
//! `line_items[0][price_data][currency]=usd`, `expand[]=customer`), read
//! into a JSON tree so the endpoints can look parameters up by path.

use serde_json::{Map, Value};

/// Why a body is refused, in the words Stripe would use.
pub(crate) type FormError = String;

/// Decodes a urlencoded body (or query string) into its pairs, in order.
pub(crate) fn pairs(raw: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    serde_urlencoded::from_bytes(raw).map_err(|_| "Invalid request body: not form-encoded.".into())
}

/// Nests the pairs: brackets become objects, objects whose keys are all
/// indexes become arrays (in index order), and `[]` appends.
pub(crate) fn nest(pairs: &[(String, String)]) -> Result<Map<String, Value>, FormError> {
    let mut root = Map::new();
    for (key, value) in pairs {
        let path = segments(key).ok_or_else(|| format!("Invalid parameter name: {key}."))?;
        insert(&mut root, &path, value, key)?;
    }
    Ok(root.into_iter().map(|(k, v)| (k, arrays(v))).collect())
}

/// `a[b][c]` → `["a", "b", "c"]`; `None` when the brackets do not pair up.
fn segments(key: &str) -> Option<Vec<&str>> {
    let Some(open) = key.find('[') else {
        return (!key.is_empty()).then(|| vec![key]);
    };
    let (head, mut rest) = key.split_at(open);
    if head.is_empty() {
        return None;
    }
    let mut path = vec![head];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        path.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    Some(path)
}

fn insert(
    map: &mut Map<String, Value>,
    path: &[&str],
    value: &str,
    key: &str,
) -> Result<(), FormError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    // `[]` appends: the next free index among the keys so far.
    let name = if first.is_empty() {
        map.len().to_string()
    } else {
        (*first).to_owned()
    };
    if rest.is_empty() {
        if map.contains_key(&name) {
            return Err(format!("Received repeated parameter: {key}."));
        }
        map.insert(name, Value::String(value.to_owned()));
        return Ok(());
    }
    let child = map.entry(name).or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(child) => insert(child, rest, value, key),
        _ => Err(format!("Invalid hash: {key} is both a value and a hash.")),
    }
}

fn arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let indexed = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if indexed {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .filter_map(|(k, v)| k.parse().ok().map(|i| (i, arrays(v))))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_keys_become_a_tree() {
        let body = b"mode=payment&line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=usd\
&line_items[0][price_data][product_data][name]=Credits&line_items[0][quantity]=1\
&line_items[1][price]=price_1&metadata[tenant]=t%201&expand[]=customer&expand[]=invoice";
        let pairs = pairs(body).expect("form");
        assert_eq!(pairs[0], ("mode".to_owned(), "payment".to_owned()));
        let tree = nest(&pairs).expect("nests");
        assert_eq!(
            Value::Object(tree),
            json!({
                "mode": "payment",
                "line_items": [
                    { "price_data": { "currency": "usd", "product_data": { "name": "Credits" } }, "quantity": "1" },
                    { "price": "price_1" }
                ],
                "metadata": { "tenant": "t 1" },
                "expand": ["customer", "invoice"]
            })
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        for body in [
            &b"a[b=1"[..],
            b"[a]=1",
            b"a]=1&a[b]c=2",
            b"a=1&a[b]=2",
            b"a=1&a=2",
        ] {
            let pairs = pairs(body).expect("form");
            assert!(nest(&pairs).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
