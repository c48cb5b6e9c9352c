//! The parameters of an AWS query-protocol request: `name=value` pairs from the query string
//! and, for `POST`, the `application/x-www-form-urlencoded` body, percent-decoded. Lists are
//! `Name.member.N` (N from 1) and lists of structures `Name.member.N.Field`.
//!
//! A name given twice keeps its first value. Parsing never fails: bytes that are not valid
//! percent-encoded UTF-8 decode lossily, and the validation of each action reports what is
//! wrong with the values.

use std::collections::HashMap;

/// Most members read from one list (the largest AWS list here is 50 tags).
const MAX_LIST_MEMBERS: usize = 1000;

/// The decoded parameters of one request.
#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parameters of the query string and the form body (either may be empty).
    pub fn parse(query: &str, body: &[u8]) -> Params {
        let mut values = HashMap::new();
        let pairs = form_urlencoded::parse(query.as_bytes()).chain(form_urlencoded::parse(body));
        for (name, value) in pairs {
            values
                .entry(name.into_owned())
                .or_insert_with(|| value.into_owned());
        }
        Params { values }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name` as an owned string, if given.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// The members of the list `name` (`name.member.1`, `name.member.2`, ... up to the first
    /// gap).
    pub fn list(&self, name: &str) -> Vec<String> {
        (1..=MAX_LIST_MEMBERS)
            .map_while(|n| self.string(&format!("{name}.member.{n}")))
            .collect()
    }

    /// The members of the list of structures `name`: for each `n` from 1 up to the first member
    /// with none of `fields`, the fields' values in the order of `fields`.
    pub fn structures(&self, name: &str, fields: &[&str]) -> Vec<Vec<Option<String>>> {
        let mut out = Vec::new();
        for n in 1..=MAX_LIST_MEMBERS {
            let member: Vec<Option<String>> = fields
                .iter()
                .map(|f| self.string(&format!("{name}.member.{n}.{f}")))
                .collect();
            if member.iter().all(Option::is_none) {
                break;
            }
            out.push(member);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn query_and_body_are_decoded_first_value_wins() {
        let p = Params::parse(
            "Action=GetCallerIdentity&Version=2011-06-15",
            b"Action=AssumeRole&RoleSessionName=a%2Bb+c&Policy=%7B%22x%22%3A1%7D",
        );
        assert_eq!(p.get("Action"), Some("GetCallerIdentity"));
        assert_eq!(p.get("Version"), Some("2011-06-15"));
        assert_eq!(p.get("RoleSessionName"), Some("a+b c"));
        assert_eq!(p.get("Policy"), Some(r#"{"x":1}"#));
        assert_eq!(p.get("Missing"), None);
    }

    #[test]
    fn lists_stop_at_the_first_gap() {
        let p = Params::parse(
            "",
            b"TransitiveTagKeys.member.1=a&TransitiveTagKeys.member.2=b&TransitiveTagKeys.member.4=d\
              &Tags.member.1.Key=k1&Tags.member.1.Value=v1&Tags.member.2.Key=k2\
              &Tags.member.3.Value=v3",
        );
        assert_eq!(p.list("TransitiveTagKeys"), vec!["a", "b"]);
        assert!(p.list("PolicyArns").is_empty());
        assert_eq!(
            p.structures("Tags", &["Key", "Value"]),
            vec![
                vec![Some("k1".to_string()), Some("v1".to_string())],
                vec![Some("k2".to_string()), None],
                vec![None, Some("v3".to_string())],
            ]
        );
    }
}
