//! `AssumeRole`: the query parameters, their validation with AWS STS's constraints and
//! wording, one call into the STS rules, and the XML result.
//!
//! Constraints (the STS service model): `RoleArn` 20-2048 characters, `RoleSessionName` 2-64 of
//! `[\w+=,.@-]`, `DurationSeconds` 900-43200, `Policy` 1-2048 characters of tab, LF, CR and
//! U+0020-U+00FF, at most 10 `PolicyArns`, at most 50 `Tags` (key 1-128, value 0-256 of
//! letters, separators, numbers and `_.:/=+-@`) and `TransitiveTagKeys`, `ExternalId` 2-1224,
//! `SerialNumber` 9-256, `TokenCode` 6 digits, `SourceIdentity` 2-64. A `RoleArn` that is not
//! `arn:<partition>:<service>:<region>:<account>:<resource>` at all is `<arn> is invalid`; a
//! well-formed ARN that names no role is AccessDenied (the rules decide).
//!
//! `PolicyArns` (managed session policies) are refused with `InvalidParameterValue`: this
//! service has no managed policies, and ignoring them would give the session more than its
//! caller asked for.
//!
//! The audit record carries the parameters CloudTrail shows, minus the MFA `TokenCode` and the
//! `ExternalId` (shared secrets), and of the response only the assumed role user and the access
//! key id: never the secret access key or the session token.

use serde_json::{json, Map, Value};

use super::query::Params;
use super::xml::XmlWriter;
use crate::api::validate::Checks;
use crate::service::sts::{AssumeRoleRequest, AssumedRole, Inherited, SessionTag, StsError};

const ARN_PATTERN: &str =
    r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+";
const NAME_PATTERN: &str = r"[\w+=,.@-]*";
const POLICY_PATTERN: &str = r"[\u0009\u000A\u000D\u0020-\u00FF]+";
const TAG_KEY_PATTERN: &str = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+";
const TAG_VALUE_PATTERN: &str = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*";
const EXTERNAL_ID_PATTERN: &str = r"[\w+=,.@:\/-]*";
const SERIAL_NUMBER_PATTERN: &str = r"[\w+=/:,.@-]*";
const TOKEN_CODE_PATTERN: &str = r"[\d]*";

/// Refusal of managed session policies (see the module docs).
pub const POLICY_ARNS_UNSUPPORTED: &str = "PolicyArns are not supported: this service has no \
     managed policies. Pass the session policy inline in the Policy parameter.";
const DUPLICATE_TAG_KEYS: &str =
    "Duplicate tag keys found. Please note that Tag keys are case insensitive.";
const TRANSITIVE_KEY_NOT_A_TAG: &str =
    "The specified transitive tag key must be included in the requested tags.";

/// Java's `\w`: ASCII letters, digits and `_`.
fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn only(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.chars().all(allowed)
}

fn is_arn_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn is_name_char(c: char) -> bool {
    is_word(c) || "+=,.@-".contains(c)
}

/// `\p{L}\p{Z}\p{N}_.:/=+\-@` (letters and numbers by Unicode's alphabetic and numeric
/// properties, separators as non-control whitespace).
fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>` with a partition, a service and a
/// resource.
fn is_arn_shaped(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, service, _, _, resource]
        if !partition.is_empty() && !service.is_empty() && !resource.is_empty())
}

/// The parameters as given.
#[derive(Debug, Default)]
pub struct Input {
    role_arn: Option<String>,
    role_session_name: Option<String>,
    duration_seconds: Option<String>,
    policy: Option<String>,
    policy_arns: Vec<Option<String>>,
    tags: Vec<(Option<String>, Option<String>)>,
    transitive_tag_keys: Vec<String>,
    external_id: Option<String>,
    serial_number: Option<String>,
    token_code: Option<String>,
    source_identity: Option<String>,
}

impl Input {
    pub fn from_params(p: &Params) -> Input {
        let mut tags = Vec::new();
        for member in p.structures("Tags", &["Key", "Value"]) {
            let mut fields = member.into_iter();
            tags.push((fields.next().flatten(), fields.next().flatten()));
        }
        Input {
            role_arn: p.string("RoleArn"),
            role_session_name: p.string("RoleSessionName"),
            duration_seconds: p.string("DurationSeconds"),
            policy: p.string("Policy"),
            policy_arns: p
                .structures("PolicyArns", &["arn"])
                .into_iter()
                .map(|m| m.into_iter().next().flatten())
                .collect(),
            tags,
            transitive_tag_keys: p.list("TransitiveTagKeys"),
            external_id: p.string("ExternalId"),
            serial_number: p.string("SerialNumber"),
            token_code: p.string("TokenCode"),
            source_identity: p.string("SourceIdentity"),
        }
    }

    /// `requestParameters` of the audit record; as in CloudTrail, a calling role session's
    /// transitive tags are `incomingTransitiveTags`.
    pub fn audit_parameters(&self, caller: &crate::model::Principal) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                m.insert(k.into(), v);
            }
        };
        put("roleArn", json!(self.role_arn));
        put("roleSessionName", json!(self.role_session_name));
        put(
            "durationSeconds",
            match &self.duration_seconds {
                Some(d) => d.parse::<i64>().map_or_else(|_| json!(d), |n| json!(n)),
                None => Value::Null,
            },
        );
        put("policy", json!(self.policy));
        if !self.policy_arns.is_empty() {
            put(
                "policyArns",
                Value::Array(
                    self.policy_arns
                        .iter()
                        .map(|a| json!({ "arn": a }))
                        .collect(),
                ),
            );
        }
        if !self.tags.is_empty() {
            put(
                "tags",
                Value::Array(
                    self.tags
                        .iter()
                        .map(|(k, v)| json!({ "key": k, "value": v }))
                        .collect(),
                ),
            );
        }
        if !self.transitive_tag_keys.is_empty() {
            put("transitiveTagKeys", json!(self.transitive_tag_keys));
        }
        put("serialNumber", json!(self.serial_number));
        put("sourceIdentity", json!(self.source_identity));
        let inherited = Inherited::of(caller);
        if !inherited.tags.is_empty() {
            put(
                "incomingTransitiveTags",
                Value::Object(
                    inherited
                        .tags
                        .into_iter()
                        .map(|t| (t.key, Value::String(t.value)))
                        .collect(),
                ),
            );
        }
        Value::Object(m)
    }

    /// Checks every constraint; the request for the rules.
    pub fn validate(self) -> Result<AssumeRoleRequest, StsError> {
        let mut c = Checks::new();
        let arn = self.role_arn.as_deref();
        c.required("roleArn", &self.role_arn)
            .len("roleArn", arn, 20, 2048)
            .pattern("roleArn", arn, |s| only(s, is_arn_char), ARN_PATTERN);
        let name = self.role_session_name.as_deref();
        c.required("roleSessionName", &self.role_session_name)
            .len("roleSessionName", name, 2, 64)
            .pattern(
                "roleSessionName",
                name,
                |s| only(s, is_name_char),
                NAME_PATTERN,
            );
        let mut duration = None;
        if let Some(text) = &self.duration_seconds {
            match text.trim().parse::<i64>() {
                Ok(n) => {
                    c.range("durationSeconds", Some(n), 900, 43_200);
                    duration = u32::try_from(n).ok();
                }
                Err(_) => {
                    c.constraint("durationSeconds", Some(text), "be an integer");
                }
            }
        }
        let policy = self.policy.as_deref();
        c.len("policy", policy, 1, 2048).pattern(
            "policy",
            policy,
            |s| {
                only(s, |ch| {
                    matches!(ch, '\t' | '\n' | '\r' | '\u{20}'..='\u{FF}')
                })
            },
            POLICY_PATTERN,
        );
        if self.policy_arns.len() > 10 {
            c.constraint("policyArns", None, "have length less than or equal to 10");
        }
        for (i, arn) in self.policy_arns.iter().enumerate() {
            let field = format!("policyArns.{}.member.arn", i + 1);
            c.len(&field, arn.as_deref(), 20, 2048).pattern(
                &field,
                arn.as_deref(),
                |s| only(s, is_arn_char),
                ARN_PATTERN,
            );
        }
        if self.tags.len() > 50 {
            c.constraint("tags", None, "have length less than or equal to 50");
        }
        for (i, (key, value)) in self.tags.iter().enumerate() {
            let key_field = format!("tags.{}.member.key", i + 1);
            let value_field = format!("tags.{}.member.value", i + 1);
            c.required(&key_field, key)
                .len(&key_field, key.as_deref(), 1, 128)
                .pattern(
                    &key_field,
                    key.as_deref(),
                    |s| only(s, is_tag_char),
                    TAG_KEY_PATTERN,
                )
                .required(&value_field, value)
                .len(&value_field, value.as_deref(), 0, 256)
                .pattern(
                    &value_field,
                    value.as_deref(),
                    |s| only(s, is_tag_char),
                    TAG_VALUE_PATTERN,
                );
        }
        if self.transitive_tag_keys.len() > 50 {
            c.constraint(
                "transitiveTagKeys",
                None,
                "have length less than or equal to 50",
            );
        }
        for (i, key) in self.transitive_tag_keys.iter().enumerate() {
            let field = format!("transitiveTagKeys.{}.member", i + 1);
            c.len(&field, Some(key), 1, 128).pattern(
                &field,
                Some(key),
                |s| only(s, is_tag_char),
                TAG_KEY_PATTERN,
            );
        }
        let external_id = self.external_id.as_deref();
        c.len("externalId", external_id, 2, 1224).pattern(
            "externalId",
            external_id,
            |s| only(s, |ch| is_word(ch) || "+=,.@:/-".contains(ch)),
            EXTERNAL_ID_PATTERN,
        );
        let serial = self.serial_number.as_deref();
        c.len("serialNumber", serial, 9, 256).pattern(
            "serialNumber",
            serial,
            |s| only(s, |ch| is_word(ch) || "+=/:,.@-".contains(ch)),
            SERIAL_NUMBER_PATTERN,
        );
        let code = self.token_code.as_deref();
        c.len("tokenCode", code, 6, 6).pattern(
            "tokenCode",
            code,
            |s| only(s, |ch| ch.is_ascii_digit()),
            TOKEN_CODE_PATTERN,
        );
        let source = self.source_identity.as_deref();
        c.len("sourceIdentity", source, 2, 64).pattern(
            "sourceIdentity",
            source,
            |s| only(s, is_name_char),
            NAME_PATTERN,
        );
        c.finish()
            .map_err(|e| StsError::Validation(e.to_string()))?;

        let (Some(role_arn), Some(role_session_name)) = (self.role_arn, self.role_session_name)
        else {
            return Err(StsError::Internal("validated required members are missing"));
        };
        if !is_arn_shaped(&role_arn) {
            return Err(StsError::Validation(format!("{role_arn} is invalid")));
        }
        let tags: Vec<SessionTag> = self
            .tags
            .into_iter()
            .map(|(k, v)| SessionTag {
                key: k.unwrap_or_default(),
                value: v.unwrap_or_default(),
            })
            .collect();
        let lower: Vec<String> = tags.iter().map(|t| t.key.to_lowercase()).collect();
        if lower
            .iter()
            .enumerate()
            .any(|(i, k)| lower[..i].contains(k))
        {
            return Err(StsError::InvalidParameterValue(DUPLICATE_TAG_KEYS.into()));
        }
        if self
            .transitive_tag_keys
            .iter()
            .any(|k| !lower.contains(&k.to_lowercase()))
        {
            return Err(StsError::InvalidParameterValue(
                TRANSITIVE_KEY_NOT_A_TAG.into(),
            ));
        }
        if !self.policy_arns.is_empty() {
            return Err(StsError::InvalidParameterValue(
                POLICY_ARNS_UNSUPPORTED.into(),
            ));
        }
        Ok(AssumeRoleRequest {
            role_arn,
            role_session_name,
            duration_seconds: duration,
            policy: self.policy,
            tags,
            transitive_tag_keys: self.transitive_tag_keys,
            external_id: self.external_id,
            source_identity: self.source_identity,
            mfa: self.serial_number.is_some() || self.token_code.is_some(),
        })
    }
}

/// The members of `<AssumeRoleResult>`.
pub fn write_result(w: &mut XmlWriter, out: &AssumedRole) {
    use secrecy::ExposeSecret;
    let s = &out.session;
    let expiration = s
        .expiration
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    w.start("Credentials")
        .element("AccessKeyId", &s.access_key_id)
        .element("SecretAccessKey", s.secret_access_key.expose_secret())
        .element("SessionToken", s.session_token.expose_secret())
        .element("Expiration", &expiration)
        .end("Credentials")
        .start("AssumedRoleUser")
        .element("AssumedRoleId", &out.assumed_role_id)
        .element("Arn", &out.arn)
        .end("AssumedRoleUser")
        .optional(
            "PackedPolicySize",
            out.packed_policy_size.map(|n| n.to_string()).as_deref(),
        )
        .optional("SourceIdentity", out.source_identity.as_deref());
}

/// `responseElements` of the audit record: the assumed role user, the access key id and the
/// source identity only.
pub fn audit_response(out: &AssumedRole) -> Value {
    let mut v = json!({
        "credentials": { "accessKeyId": out.session.access_key_id },
        "assumedRoleUser": { "assumedRoleId": out.assumed_role_id, "arn": out.arn },
    });
    if let Some(id) = &out.source_identity {
        v["sourceIdentity"] = json!(id);
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn input(pairs: &str) -> Input {
        Input::from_params(&Params::parse(pairs, b""))
    }

    fn validation(pairs: &str) -> String {
        match input(pairs).validate() {
            Err(StsError::Validation(m)) => m,
            other => panic!("expected a ValidationError, got {other:?}"),
        }
    }

    const ROLE: &str = "RoleArn=arn:aws:iam::111122223333:role/app";

    #[test]
    fn aws_validation_wording() {
        assert_eq!(
            validation(&format!("{ROLE}&RoleSessionName=bad%20name")),
            "1 validation error detected: Value 'bad name' at 'roleSessionName' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        );
        assert_eq!(
            validation(&format!("{ROLE}&RoleSessionName=s1&DurationSeconds=899")),
            "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy \
             constraint: Member must have value greater than or equal to 900"
        );
        assert_eq!(
            validation("RoleSessionName=x"),
            "2 validation errors detected: Value null at 'roleArn' failed to satisfy \
             constraint: Member must not be null; Value 'x' at 'roleSessionName' failed to \
             satisfy constraint: Member must have length greater than or equal to 2"
        );
        assert_eq!(
            validation("RoleArn=nothing-valid-in-here&RoleSessionName=s1"),
            "nothing-valid-in-here is invalid"
        );
        assert_eq!(
            validation("RoleArn=arn:a:a::aaaaaaaaaa:&RoleSessionName=s1"),
            "arn:a:a::aaaaaaaaaa: is invalid"
        );
        assert!(validation(&format!("{ROLE}&RoleSessionName=s1&TokenCode=12a456"))
            .contains("at 'tokenCode' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\d]*"));
        assert!(validation(&format!(
            "{ROLE}&RoleSessionName=s1&Tags.member.1.Key=a%01b&Tags.member.1.Value=v"
        ))
        .contains("at 'tags.1.member.key' failed to satisfy constraint"));
    }

    #[test]
    fn tag_rules_and_policy_arns() {
        let r = input(&format!(
            "{ROLE}&RoleSessionName=s1&Tags.member.1.Key=Team&Tags.member.1.Value=a\
             &Tags.member.2.Key=team&Tags.member.2.Value=b"
        ))
        .validate();
        assert_eq!(
            r.unwrap_err(),
            StsError::InvalidParameterValue(DUPLICATE_TAG_KEYS.into())
        );
        let r = input(&format!(
            "{ROLE}&RoleSessionName=s1&Tags.member.1.Key=Team&Tags.member.1.Value=a\
             &TransitiveTagKeys.member.1=project"
        ))
        .validate();
        assert_eq!(
            r.unwrap_err(),
            StsError::InvalidParameterValue(TRANSITIVE_KEY_NOT_A_TAG.into())
        );
        let r = input(&format!(
            "{ROLE}&RoleSessionName=s1&PolicyArns.member.1.arn=arn:aws:iam::aws:policy/ReadOnlyAccess"
        ))
        .validate();
        assert_eq!(
            r.unwrap_err(),
            StsError::InvalidParameterValue(POLICY_ARNS_UNSUPPORTED.into())
        );
        let ok = input(&format!(
            "{ROLE}&RoleSessionName=s1&DurationSeconds=900&Tags.member.1.Key=Team\
             &Tags.member.1.Value=&TransitiveTagKeys.member.1=team&SourceIdentity=alice\
             &ExternalId=ext-1"
        ))
        .validate()
        .unwrap();
        assert_eq!(ok.duration_seconds, Some(900));
        assert_eq!(
            ok.tags,
            vec![SessionTag {
                key: "Team".into(),
                value: String::new()
            }]
        );
        assert!(!ok.mfa);
    }

    #[test]
    fn audit_parameters_leave_out_shared_secrets() {
        let p = input(&format!(
            "{ROLE}&RoleSessionName=s1&DurationSeconds=1800&ExternalId=secret-ext\
             &SerialNumber=arn:aws:iam::111122223333:mfa/a&TokenCode=123456"
        ))
        .audit_parameters(&crate::model::Principal::anonymous("111122223333", "AKIA"));
        assert_eq!(
            p,
            json!({
                "roleArn": "arn:aws:iam::111122223333:role/app",
                "roleSessionName": "s1",
                "durationSeconds": 1800,
                "serialNumber": "arn:aws:iam::111122223333:mfa/a",
            })
        );
    }

    #[test]
    fn audit_parameters_show_the_callers_transitive_tags_as_incoming() {
        let mut caller = crate::model::Principal::anonymous("111122223333", "ASIA");
        caller.principal_tags = vec![
            ("Dept".to_string(), "eng".to_string()),
            ("team".to_string(), "kms".to_string()),
        ]
        .into();
        caller.transitive_tag_keys = vec!["dept".to_string()].into();
        let p = input(&format!("{ROLE}&RoleSessionName=s2")).audit_parameters(&caller);
        assert_eq!(
            p,
            json!({
                "roleArn": "arn:aws:iam::111122223333:role/app",
                "roleSessionName": "s2",
                "incomingTransitiveTags": {"Dept": "eng"},
            })
        );
    }
}
