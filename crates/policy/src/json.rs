//! A JSON tree that keeps member order and refuses duplicate member names.
//!
//! `serde_json::Value` silently keeps the last of two equal member names; two parsers reading the
//! same policy differently is a security hole, so a duplicate is an error here.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The JSON type, worded for messages ("must be a string, not an array").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

pub(crate) fn parse(text: &str) -> Result<Json, String> {
    serde_json::from_str::<Json>(text).map_err(|e| e.to_string())
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        // Policy objects are small: a linear scan finds duplicates; past a few dozen members a
        // set keeps a hostile document from costing quadratic time.
        const LINEAR_SCAN_UP_TO: usize = 32;
        let mut members: Vec<(String, Json)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            let duplicate = if members.len() < LINEAR_SCAN_UP_TO {
                members.iter().any(|(n, _)| *n == name)
            } else {
                if seen.is_empty() {
                    seen.extend(members.iter().map(|(n, _)| n.clone()));
                }
                !seen.insert(name.clone())
            };
            if duplicate {
                return Err(de::Error::custom(format_args!(
                    "the member name \"{name}\" appears twice in one object"
                )));
            }
            let value = map.next_value::<Json>()?;
            members.push((name, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_member_names_are_refused() {
        let err = parse(r#"{"a": 1, "b": {"c": 1, "c": 2}}"#).unwrap_err();
        assert!(err.contains("\"c\" appears twice"), "{err}");
    }

    #[test]
    fn duplicates_in_large_objects_are_refused() {
        let members: Vec<String> = (0..100).map(|i| format!("\"k{i}\": {i}")).collect();
        let unique = format!("{{{}}}", members.join(","));
        assert!(parse(&unique).is_ok());
        let duplicate = format!("{{{}, \"k7\": 0}}", members.join(","));
        assert!(parse(&duplicate)
            .unwrap_err()
            .contains("\"k7\" appears twice"));
        let late = format!("{{{}, \"k99\": 0}}", members.join(","));
        assert!(parse(&late).is_err());
    }

    #[test]
    fn order_is_kept() {
        let Json::Object(m) = parse(r#"{"z": 1, "a": [true, null, "s", 1.5]}"#).unwrap() else {
            panic!("not an object")
        };
        assert_eq!(m[0].0, "z");
        assert_eq!(m[1].0, "a");
    }
}
