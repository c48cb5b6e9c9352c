//! `[server] cors_allowed_origins`: which browser origins may call the KMS and STS API
//! (`api::cors` serves it). Off unless configured: a list of origins (`"http://127.0.0.1:5173"`,
//! exactly as browsers send them in `Origin`), or `"*"` for any origin.

/// Which origins get CORS answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS: no preflight answers, no `Access-Control-*` headers (the default).
    #[default]
    Off,
    /// Any origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// These origins, compared byte for byte with the request's `Origin`.
    Only(Vec<String>),
}

/// The setting validated: a TOML string (one origin, or `"*"`) or array of strings (an empty
/// one is off). Every problem goes to `errors`.
pub(super) fn cors_settings(value: Option<toml::Value>, errors: &mut Vec<String>) -> CorsOrigins {
    const FIELD: &str = "server.cors_allowed_origins";
    let entries = match value {
        None => return CorsOrigins::Off,
        Some(toml::Value::String(s)) => vec![s],
        Some(toml::Value::Array(items)) => {
            let mut entries = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    toml::Value::String(s) => entries.push(s),
                    other => errors.push(format!(
                        "{FIELD}: {other} is not a string (an origin such as \
                         \"http://127.0.0.1:5173\", or \"*\")"
                    )),
                }
            }
            entries
        }
        Some(other) => {
            errors.push(format!(
                "{FIELD}: expected a list of origins or \"*\", found {}",
                other.type_str()
            ));
            return CorsOrigins::Off;
        }
    };
    if entries.iter().any(|e| e == "*") {
        if entries.len() > 1 {
            errors.push(format!(
                "{FIELD}: \"*\" allows every origin and cannot be combined with others"
            ));
        }
        return CorsOrigins::Any;
    }
    let mut origins: Vec<String> = Vec::with_capacity(entries.len());
    for e in entries {
        match origin_problem(&e) {
            Some(why) => errors.push(format!("{FIELD}: '{e}' {why}")),
            None if !origins.contains(&e) => origins.push(e),
            None => {}
        }
    }
    if origins.is_empty() {
        CorsOrigins::Off
    } else {
        CorsOrigins::Only(origins)
    }
}

/// Why `origin` can never equal a browser's `Origin` header (scheme, host and port, in the
/// browser's serialization), or `None` when it can.
fn origin_problem(origin: &str) -> Option<&'static str> {
    if origin == "null" {
        return Some(
            "is the opaque origin every sandboxed or file:// page shares; it is not accepted",
        );
    }
    let (authority, default_port) = if let Some(rest) = origin.strip_prefix("http://") {
        (rest, "80")
    } else if let Some(rest) = origin.strip_prefix("https://") {
        (rest, "443")
    } else {
        return Some("is not an origin: it starts with neither http:// nor https://");
    };
    if authority.is_empty() {
        return Some("has no host");
    }
    if authority
        .bytes()
        .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@') || b.is_ascii_whitespace())
    {
        return Some(
            "is not an origin: scheme, host and optional port only (no path, no trailing /)",
        );
    }
    if authority.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some("has upper-case letters: browsers send origins in lower case");
    }
    // The port follows the last ':' after any IPv6 literal ("[::1]:8080").
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    if let Some(colon) = authority[host_end..].rfind(':') {
        let port = &authority[host_end + colon + 1..];
        if !port.parse::<u16>().is_ok_and(|p| p != 0) || port.starts_with('0') {
            return Some("has a port that is not a number within 1..=65535");
        }
        if port == default_port {
            return Some("names the scheme's default port, which browsers leave out of Origin");
        }
        if host_end + colon == 0 {
            return Some("has no host");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_value: &str) -> (CorsOrigins, Vec<String>) {
        let mut errors = Vec::new();
        let value = format!("v = {toml_value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"));
        (cors_settings(value, &mut errors), errors)
    }

    #[test]
    fn off_any_and_lists() {
        let mut errors = Vec::new();
        assert_eq!(cors_settings(None, &mut errors), CorsOrigins::Off);
        assert_eq!(parse("[]"), (CorsOrigins::Off, vec![]));
        assert_eq!(parse("'*'"), (CorsOrigins::Any, vec![]));
        assert_eq!(parse("['*']"), (CorsOrigins::Any, vec![]));
        assert_eq!(
            parse("'http://127.0.0.1:5173'"),
            (
                CorsOrigins::Only(vec!["http://127.0.0.1:5173".into()]),
                vec![]
            )
        );
        assert_eq!(
            parse("['https://app.example.com', 'http://[::1]:8080', 'https://app.example.com']"),
            (
                CorsOrigins::Only(vec![
                    "https://app.example.com".into(),
                    "http://[::1]:8080".into()
                ]),
                vec![]
            )
        );
    }

    #[test]
    fn what_no_browser_sends_is_refused_with_the_reason() {
        let cases = [
            ("['*', 'http://a.example']", "cannot be combined"),
            ("['null']", "opaque origin"),
            ("['app.example.com']", "neither http:// nor https://"),
            ("['http://app.example.com/']", "no trailing /"),
            ("['http://app.example.com/path']", "no path"),
            ("['http://App.example.com']", "lower case"),
            ("['http://app.example.com:80']", "default port"),
            ("['https://app.example.com:443']", "default port"),
            ("['http://app.example.com:99999']", "within 1..=65535"),
            ("['http://app.example.com:']", "within 1..=65535"),
            ("['http://']", "no host"),
            ("['http://:8080']", "no host"),
            ("[1]", "is not a string"),
            ("true", "found boolean"),
        ];
        for (value, why) in cases {
            let (_, errors) = parse(value);
            assert_eq!(errors.len(), 1, "{value}: {errors:?}");
            assert!(
                errors[0].starts_with("server.cors_allowed_origins: ") && errors[0].contains(why),
                "{value}: {errors:?}"
            );
        }
    }
}
