//! Checks responses against `openapi.json`: the status must be documented for the route and
//! method, the body must match the schema (a validator for the JSON Schema subset the
//! document uses: `$ref`, `type` + `nullable`, `properties`, `required`,
//! `additionalProperties`, `items`, `enum`, `oneOf`, `minLength`, `minimum`), and every
//! response carries `X-Openstack-Request-Id`.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::Value;

pub fn document() -> Value {
    serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json is JSON")
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let path = r.strip_prefix("#/").expect("local $ref");
            let target = path.split('/').fold(doc, |v, k| &v[k]);
            assert!(!target.is_null(), "dangling $ref {r}");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// Validates `value` against `schema`; the error names the JSON path.
pub fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if value.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|o| validate(doc, o, value, at).is_ok())
            .count();
        return if matching == 1 {
            Ok(())
        } else {
            Err(format!(
                "{at}: matches {matching} of the oneOf alternatives: {value}"
            ))
        };
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("type {other} not supported"),
        };
        if !ok {
            return Err(format!("{at}: expected {t}, got {value}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(value)
    {
        return Err(format!("{at}: {value} not in {e:?}"));
    }
    if let (Some(min), Some(s)) = (
        schema.get("minLength").and_then(Value::as_u64),
        value.as_str(),
    ) && (s.chars().count() as u64) < min
    {
        return Err(format!("{at}: shorter than {min}"));
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        return Err(format!("{at}: {n} < {min}"));
    }
    if let Some(obj) = value.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                return Err(format!("{at}: required {r:?} missing in {value}"));
            }
        }
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, v, &format!("{at}.{k}"))?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: unexpected property {k:?}"));
                    }
                    Some(s @ Value::Object(_)) => validate(doc, s, v, &format!("{at}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The documented route template a concrete path belongs to.
pub fn template(doc: &Value, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').collect();
    doc["paths"].as_object()?.keys().find_map(|t| {
        let tsegs: Vec<&str> = t.split('/').collect();
        (tsegs.len() == segs.len()
            && tsegs
                .iter()
                .zip(&segs)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s))
        .then(|| t.clone())
    })
}

/// (template, method, status) seen by [`check`] in this test binary.
pub static COVERED: Mutex<BTreeSet<(String, String, u16)>> = Mutex::new(BTreeSet::new());

/// Asserts `reply` to `method path` is what the document says.
pub fn check(doc: &Value, method: &str, path: &str, reply: &super::Reply) {
    let t = template(doc, path).unwrap_or_else(|| panic!("{path} is not documented"));
    let mut method = method.to_lowercase();
    if reply.status == 405 && !doc["paths"][&t][&method].is_object() {
        // A method the route does not have: documented (as 405) under the route's operation.
        method = doc["paths"][&t]
            .as_object()
            .and_then(|item| item.keys().find(|k| *k != "parameters").cloned())
            .unwrap_or_default();
    }
    let op = &doc["paths"][&t][&method];
    assert!(op.is_object(), "{method} {t} is not documented");
    let status = reply.status.to_string();
    let resp = &op["responses"][&status];
    assert!(
        resp.is_object(),
        "{method} {t}: status {status} is not documented"
    );
    let rid = reply.header("x-openstack-request-id").unwrap_or_default();
    assert!(
        rid.starts_with("req-") && rid.len() == 40,
        "{method} {path}: X-Openstack-Request-Id {rid:?}"
    );
    if reply.status == 401 {
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Keystone uri="))
        );
    }
    let content = resp["content"].as_object().expect("content");
    let ctype = reply.header("content-type").unwrap_or_default();
    let (media, schema) = content
        .iter()
        .find(|(m, _)| ctype.starts_with(m.as_str()))
        .unwrap_or_else(|| panic!("{method} {t} {status}: content type {ctype:?} not documented"));
    if media == "application/json" {
        let body: Value = serde_json::from_slice(&reply.body).expect("JSON body");
        if let Err(e) = validate(doc, &schema["schema"], &body, "$") {
            panic!("{method} {path} {status}: {e}");
        }
    }
    COVERED.lock().unwrap().insert((t, method, reply.status));
}

/// Every documented (template, method, status).
pub fn documented(doc: &Value) -> BTreeSet<(String, String, u16)> {
    let mut all = BTreeSet::new();
    for (t, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if m == "parameters" {
                continue;
            }
            for s in op["responses"].as_object().unwrap().keys() {
                all.insert((t.clone(), m.clone(), s.parse().unwrap()));
            }
        }
    }
    all
}
