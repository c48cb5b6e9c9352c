//! Parsing of a request's SigV4 authentication: the `Authorization` header
//! ([`parse_authorization`]), query-string ("presigned") authentication
//! ([`parse_presigned_query`]), picking between them ([`extract_authorization`]), and
//! `X-Amz-Date` ([`parse_amz_date`], [`format_amz_date`]).
//!
//! Parsing only checks shape (algorithm, five credential elements, terminator, expiry bound);
//! it does not decide whether the scope, the time, or the signed-header list are acceptable:
//! that is [`verify`](crate::verify)'s job, so every policy lives in one place.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

use crate::canonical::{percent_decode, RequestParts};
use crate::error::{MissingComponents, SigV4Error};
use crate::{ALGORITHM, MAX_PRESIGNED_EXPIRES_SECS, TERMINATOR, X_AMZ_DATE};

/// A parsed SigV4 authorization (from the `Authorization` header or from the query string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// Access key id (first credential element).
    pub access_key_id: String,
    /// Scope date, `YYYYMMDD` as sent (checked against `X-Amz-Date` by
    /// [`verify`](crate::verify)).
    pub date: String,
    /// Scope region.
    pub region: String,
    /// Scope service.
    pub service: String,
    /// Signed header names, lower-cased, in the order given.
    pub signed_headers: Vec<String>,
    /// The signature as sent (expected: 64 lower-case hex digits).
    pub signature: String,
    /// Present when the authorization came from the query string.
    pub presigned: Option<Presigned>,
}

/// The extra parameters of query-string ("presigned") authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    /// `X-Amz-Date` from the query string.
    pub amz_date: String,
    /// `X-Amz-Expires` in seconds (at most [`MAX_PRESIGNED_EXPIRES_SECS`]).
    pub expires_secs: u32,
}

impl ParsedAuthorization {
    /// The credential scope (date/region/service).
    pub fn scope(&self) -> CredentialScope<'_> {
        CredentialScope {
            date: &self.date,
            region: &self.region,
            service: &self.service,
        }
    }

    /// Whether `name` (lower case) is among the signed headers.
    pub fn signs(&self, name: &str) -> bool {
        self.signed_headers.iter().any(|h| h == name)
    }
}

/// A credential scope without its `aws4_request` terminator. `Display` renders
/// `date/region/service/aws4_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialScope<'a> {
    /// `YYYYMMDD`.
    pub date: &'a str,
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service, e.g. `kms`.
    pub service: &'a str,
}

impl fmt::Display for CredentialScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

/// Parses an `Authorization` header value such as
/// `AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=<hex>`.
///
/// Parameters may be separated by commas and/or whitespace, in any order; unknown parameters
/// are ignored, and the first occurrence of a repeated one wins.
pub fn parse_authorization(header_value: &str) -> Result<ParsedAuthorization, SigV4Error> {
    let trimmed = header_value.trim_start_matches([' ', '\t']);
    let (algorithm, params) = match trimmed.find([' ', '\t', ',']) {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    // Without an algorithm token, the first token is already a parameter.
    let (algorithm, params) = if algorithm.contains('=') {
        ("", trimmed)
    } else {
        (algorithm, params)
    };

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in params
        .split([',', ' ', '\t'])
        .filter(|part| !part.is_empty())
    {
        if let Some((key, value)) = part.split_once('=') {
            let slot = match key {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
    }

    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(SigV4Error::IncompleteAuthorization {
            missing: MissingComponents {
                credential: credential.is_none(),
                signature: signature.is_none(),
                signed_headers: signed_headers.is_none(),
                date: false,
            },
            authorization: header_value.to_owned(),
        });
    };
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm {
            algorithm: algorithm.to_owned(),
        });
    }
    build_authorization(credential, signed_headers, signature, None)
}

fn build_authorization(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    presigned: Option<Presigned>,
) -> Result<ParsedAuthorization, SigV4Error> {
    let mut elements = credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some(terminator), None) = (
        elements.next(),
        elements.next(),
        elements.next(),
        elements.next(),
        elements.next(),
        elements.next(),
    ) else {
        return Err(SigV4Error::MalformedCredential {
            credential: credential.to_owned(),
        });
    };
    if terminator != TERMINATOR {
        return Err(SigV4Error::InvalidTerminator {
            terminator: terminator.to_owned(),
        });
    }
    Ok(ParsedAuthorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers
            .split(';')
            .filter(|name| !name.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
        signature: signature.to_owned(),
        presigned,
    })
}

/// Parses query-string ("presigned") authentication from a raw query string.
///
/// Returns `Ok(None)` when the query carries none of `X-Amz-Algorithm`, `X-Amz-Credential`,
/// `X-Amz-SignedHeaders`, `X-Amz-Signature`; [`SigV4Error::IncompleteQuery`] when it carries
/// some but not all of those plus `X-Amz-Date` and `X-Amz-Expires`.
pub fn parse_presigned_query(query: &str) -> Result<Option<ParsedAuthorization>, SigV4Error> {
    if !query.contains("X-Amz-") {
        return Ok(None);
    }
    let mut algorithm = None;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    let mut amz_date = None;
    let mut expires = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "X-Amz-Algorithm" => &mut algorithm,
            "X-Amz-Credential" => &mut credential,
            "X-Amz-SignedHeaders" => &mut signed_headers,
            "X-Amz-Signature" => &mut signature,
            "X-Amz-Date" => &mut amz_date,
            "X-Amz-Expires" => &mut expires,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(percent_decode(value));
        }
    }
    if algorithm.is_none()
        && credential.is_none()
        && signed_headers.is_none()
        && signature.is_none()
    {
        return Ok(None);
    }
    let (
        Some(algorithm),
        Some(credential),
        Some(signed_headers),
        Some(signature),
        Some(amz_date),
        Some(expires),
    ) = (
        algorithm,
        credential,
        signed_headers,
        signature,
        amz_date,
        expires,
    )
    else {
        return Err(SigV4Error::IncompleteQuery);
    };
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm { algorithm });
    }
    let expires_secs = match expires.parse::<u32>() {
        Ok(secs) if secs <= MAX_PRESIGNED_EXPIRES_SECS && !expires.starts_with('+') => secs,
        _ => return Err(SigV4Error::InvalidExpires { value: expires }),
    };
    build_authorization(
        &credential,
        &signed_headers,
        &signature,
        Some(Presigned {
            amz_date,
            expires_secs,
        }),
    )
    .map(Some)
}

/// Finds the request's authentication: the `Authorization` header if present (a blank one
/// counts as absent), else query-string authentication, else [`SigV4Error::Missing`].
///
/// Unlike [`parse_authorization`], this also reports a missing `X-Amz-Date` header as part of
/// [`SigV4Error::IncompleteAuthorization`], like AWS does. Whether query-string authentication
/// is acceptable is the verifier's policy
/// ([`VerifyOptions::allow_presigned`](crate::VerifyOptions::allow_presigned)).
pub fn extract_authorization(req: &RequestParts<'_>) -> Result<ParsedAuthorization, SigV4Error> {
    let header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .filter(|value| !value.as_bytes().iter().all(|b| *b == b' ' || *b == b'\t'));
    let Some(header) = header else {
        return parse_presigned_query(req.query)?.ok_or(SigV4Error::Missing);
    };
    let date_missing = !req.headers.contains_key(X_AMZ_DATE);
    let parsed = match header.to_str() {
        Ok(value) => parse_authorization(value),
        Err(_) => Err(SigV4Error::IncompleteAuthorization {
            missing: MissingComponents {
                credential: true,
                signature: true,
                signed_headers: true,
                date: false,
            },
            authorization: String::from_utf8_lossy(header.as_bytes()).into_owned(),
        }),
    };
    match parsed {
        Err(SigV4Error::IncompleteAuthorization {
            mut missing,
            authorization,
        }) => {
            missing.date = date_missing;
            Err(SigV4Error::IncompleteAuthorization {
                missing,
                authorization,
            })
        }
        Ok(_) if date_missing => Err(SigV4Error::IncompleteAuthorization {
            missing: MissingComponents {
                date: true,
                ..MissingComponents::default()
            },
            authorization: String::from_utf8_lossy(header.as_bytes()).into_owned(),
        }),
        other => other,
    }
}

/// Parses `YYYYMMDD'T'HHMMSS'Z'` (exactly; no chrono format-string interpretation).
pub fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let naive = NaiveDate::from_ymd_opt(year, num(4..6)?, num(6..8)?)?.and_hms_opt(
        num(9..11)?,
        num(11..13)?,
        num(13..15)?,
    )?;
    Some(Utc.from_utc_datetime(&naive))
}

/// Formats a time as `X-Amz-Date` (`YYYYMMDD'T'HHMMSS'Z'`).
pub fn format_amz_date(time: &DateTime<Utc>) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::AMZ_DATE_FORMAT;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn parse_errors_are_incomplete_signature() {
        let cases = [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws4_request",
            "Bearer abc",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        ];
        for case in cases {
            let err = parse_authorization(case).unwrap_err();
            assert!(
                matches!(err, SigV4Error::IncompleteAuthorization { .. }),
                "{case}: {err:?}"
            );
            assert_eq!(err.aws_error_code(), "IncompleteSignatureException");
        }
        let err = parse_authorization("Bearer abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Authorization header requires 'Credential' parameter. Authorization header \
             requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
             parameter. Authorization=Bearer abc"
        );
        // Through extract_authorization a missing X-Amz-Date is reported too.
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert!(extract_authorization(&parts)
            .unwrap_err()
            .to_string()
            .contains("requires existence of either a 'X-Amz-Date' or a 'Date' header. "));

        let err = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms, SignedHeaders=host, \
             Signature=00",
        )
        .unwrap_err();
        assert!(matches!(err, SigV4Error::MalformedCredential { .. }));
        assert_eq!(err.aws_error_code(), "IncompleteSignatureException");

        let err = parse_authorization(
            "AWS4-HMAC-SHA512 Credential=AKID/20261122/us-east-1/kms/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .unwrap_err();
        assert!(matches!(err, SigV4Error::UnsupportedAlgorithm { .. }));
        assert_eq!(err.aws_error_code(), "IncompleteSignatureException");

        let err = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws5_request, \
             SignedHeaders=host, Signature=00",
        )
        .unwrap_err();
        assert!(matches!(err, SigV4Error::InvalidTerminator { .. }));
        assert_eq!(err.aws_error_code(), "InvalidSignatureException");
    }

    #[test]
    fn parse_tolerates_spacing() {
        for value in [
            "AWS4-HMAC-SHA256 Credential=AK/20261122/us-east-1/kms/aws4_request, SignedHeaders=Host;X-Amz-Date, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AK/20261122/us-east-1/kms/aws4_request,SignedHeaders=Host;X-Amz-Date,Signature=ab",
            "  AWS4-HMAC-SHA256   Signature=ab  SignedHeaders=Host;X-Amz-Date ,, Credential=AK/20261122/us-east-1/kms/aws4_request",
        ] {
            let auth = parse_authorization(value).unwrap();
            assert_eq!(
                auth,
                ParsedAuthorization {
                    access_key_id: "AK".into(),
                    date: "20261122".into(),
                    region: "us-east-1".into(),
                    service: "kms".into(),
                    signed_headers: vec!["host".into(), "x-amz-date".into()],
                    signature: "ab".into(),
                    presigned: None,
                }
            );
            assert!(auth.signs("host") && auth.signs("x-amz-date") && !auth.signs("Host"));
            assert_eq!(
                auth.scope().to_string(),
                "20261122/us-east-1/kms/aws4_request"
            );
        }
    }

    #[test]
    fn missing_authentication() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1"));
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let err = extract_authorization(&parts).unwrap_err();
        assert_eq!(err, SigV4Error::Missing);
        assert_eq!(err.aws_error_code(), "MissingAuthenticationTokenException");
        assert_eq!(err.to_string(), "Missing Authentication Token");
        assert_eq!(err.http_status(), 403);
        // A blank Authorization header counts as absent.
        let mut blank = headers.clone();
        blank.insert("authorization", HeaderValue::from_static(" \t "));
        assert_eq!(
            extract_authorization(&RequestParts {
                headers: &blank,
                ..parts
            }),
            Err(SigV4Error::Missing)
        );
        let parts = RequestParts {
            query: "Action=ListKeys&X-Amz-Date=20261122T062947Z",
            ..parts
        };
        assert_eq!(extract_authorization(&parts), Err(SigV4Error::Missing));
        let parts = RequestParts {
            query: "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            ..parts
        };
        assert_eq!(
            extract_authorization(&parts),
            Err(SigV4Error::IncompleteQuery)
        );
    }

    #[test]
    fn presigned_query_parameters() {
        let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261122%2Fus-east-1%2Fkms%2Faws4_request\
                    &X-Amz-Date=20261122T071500Z&X-Amz-SignedHeaders=host&X-Amz-Signature=ab";
        let auth = parse_presigned_query(&format!("{base}&X-Amz-Expires=60"))
            .unwrap()
            .unwrap();
        assert_eq!(auth.access_key_id, "AKID");
        assert_eq!(auth.signed_headers, ["host"]);
        assert_eq!(
            auth.presigned,
            Some(Presigned {
                amz_date: "20261122T071500Z".into(),
                expires_secs: 60
            })
        );
        for bad in ["604801", "+5", "-1", "x", ""] {
            assert_eq!(
                parse_presigned_query(&format!("{base}&X-Amz-Expires={bad}")),
                Err(SigV4Error::InvalidExpires { value: bad.into() })
            );
        }
        assert_eq!(
            parse_presigned_query(base),
            Err(SigV4Error::IncompleteQuery)
        );
        assert_eq!(parse_presigned_query("a=b&X-Amz-Date=x"), Ok(None));
    }

    #[test]
    fn amz_date_round_trip_and_strictness() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_amz_date(&t), "20260102T030405Z");
        assert_eq!(t.format(AMZ_DATE_FORMAT).to_string(), "20260102T030405Z");
        assert_eq!(parse_amz_date("20260102T030405Z"), Some(t));
        for bad in [
            "20260102T030405",
            "2026010T030405Z0",
            "20261302T030405Z",
            "20260102T250405Z",
            "2026+102T030405Z",
            "20260102t030405Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
