//! The request context: who calls, which action on which resource, and the condition keys.
//!
//! The caller (the service layer) builds one per authorisation question. This module owns the
//! value types and the lookup rules (key names are case-insensitive, `kms:EncryptionContext:<k>`
//! is looked up case-insensitively on `<k>`, an empty multi-valued key counts as absent); it does
//! not decide which keys an operation has: that is the caller's knowledge.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::arn::{ArnError, ResourceArn};
use crate::glob::fold;
use crate::principal::Caller;
use crate::scalar::{parse_bool, parse_date, parse_number};

/// One value of a condition key. Conditions convert between types where AWS does: a date is
/// also its epoch seconds for `Numeric*` (AWS compares `kms:ValidTo` with `NumericLessThanEquals`),
/// a number is also an epoch time for `Date*`, and string values are parsed when an operator
/// needs a number, date, boolean, address or bytes. A value that cannot be converted matches no
/// policy value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ContextValue {
    /// Strings, ARNs, enumerations (`SYMMETRIC_DEFAULT`), alias names, tag values.
    String(String),
    /// `aws:SecureTransport`, `kms:BypassPolicyLockoutSafetyCheck`, `kms:MultiRegion`, ...
    Bool(bool),
    /// `kms:ScheduleKeyDeletionPendingWindowInDays`, `kms:RotationPeriodInDays`, ...
    Number(f64),
    /// `aws:CurrentTime`, `aws:EpochTime`, `kms:ValidTo`.
    Date(DateTime<Utc>),
    /// `aws:SourceIp`.
    Ip(IpAddr),
    /// Bytes for `BinaryEquals`.
    Binary(Vec<u8>),
}

impl From<&str> for ContextValue {
    fn from(v: &str) -> Self {
        ContextValue::String(v.to_owned())
    }
}

impl From<String> for ContextValue {
    fn from(v: String) -> Self {
        ContextValue::String(v)
    }
}

impl From<bool> for ContextValue {
    fn from(v: bool) -> Self {
        ContextValue::Bool(v)
    }
}

impl From<f64> for ContextValue {
    fn from(v: f64) -> Self {
        ContextValue::Number(v)
    }
}

impl From<i64> for ContextValue {
    fn from(v: i64) -> Self {
        // Condition numbers are decimals; integers of policy interest are far below 2^53.
        ContextValue::Number(v as f64)
    }
}

impl From<u32> for ContextValue {
    fn from(v: u32) -> Self {
        ContextValue::Number(f64::from(v))
    }
}

impl From<DateTime<Utc>> for ContextValue {
    fn from(v: DateTime<Utc>) -> Self {
        ContextValue::Date(v)
    }
}

impl From<IpAddr> for ContextValue {
    fn from(v: IpAddr) -> Self {
        ContextValue::Ip(v)
    }
}

impl From<Vec<u8>> for ContextValue {
    fn from(v: Vec<u8>) -> Self {
        ContextValue::Binary(v)
    }
}

fn date_seconds(t: &DateTime<Utc>) -> f64 {
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
}

impl ContextValue {
    /// The value as text, for string and ARN operators and policy variables.
    pub(crate) fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            ContextValue::String(s) => Some(Cow::Borrowed(s)),
            ContextValue::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            ContextValue::Number(n) => Some(Cow::Owned(if n.fract() == 0.0 && n.abs() < 1e15 {
                format!("{}", *n as i64)
            } else {
                n.to_string()
            })),
            ContextValue::Date(t) => {
                Some(Cow::Owned(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
            }
            ContextValue::Ip(ip) => Some(Cow::Owned(ip.to_string())),
            ContextValue::Binary(_) => None,
        }
    }

    pub(crate) fn as_number(&self) -> Option<f64> {
        match self {
            ContextValue::Number(n) => Some(*n),
            ContextValue::Date(t) => Some(date_seconds(t)),
            ContextValue::String(s) => parse_number(s),
            _ => None,
        }
    }

    pub(crate) fn as_date(&self) -> Option<DateTime<Utc>> {
        match self {
            ContextValue::Date(t) => Some(*t),
            ContextValue::Number(n) if n.is_finite() => {
                let secs = n.floor();
                let nanos = ((n - secs) * 1e9).round().min(999_999_999.0);
                DateTime::from_timestamp(secs as i64, nanos as u32)
            }
            ContextValue::String(s) => parse_date(s),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            ContextValue::Bool(b) => Some(*b),
            ContextValue::String(s) => parse_bool(s),
            _ => None,
        }
    }

    pub(crate) fn as_ip(&self) -> Option<IpAddr> {
        match self {
            ContextValue::Ip(ip) => Some(*ip),
            ContextValue::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn as_bytes(&self) -> Option<Cow<'_, [u8]>> {
        match self {
            ContextValue::Binary(b) => Some(Cow::Borrowed(b)),
            ContextValue::String(s) => crate::scalar::base64_decode(s).map(Cow::Owned),
            _ => None,
        }
    }
}

/// The resource a request acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `"*"`: operations that act on no particular resource (`CreateKey`, `ListKeys`, ...).
    Any,
    /// A key, alias or role ARN with the account that owns it.
    Arn(ResourceArn),
}

impl Resource {
    /// Parses an ARN resource (see [`ResourceArn::parse`]).
    pub fn arn(arn: &str) -> Result<Resource, ArnError> {
        ResourceArn::parse(arn).map(Resource::Arn)
    }

    /// The resource as AccessDenied messages name it: `*` or the ARN.
    pub fn as_str(&self) -> &str {
        match self {
            Resource::Any => "*",
            Resource::Arn(arn) => arn.as_str(),
        }
    }

    /// The owning account, for ARN resources.
    pub fn account(&self) -> Option<&str> {
        match self {
            Resource::Any => None,
            Resource::Arn(arn) => Some(arn.account()),
        }
    }
}

const EC_PREFIX: &str = "kms:encryptioncontext:";
const EC_KEYS: &str = "kms:encryptioncontextkeys";

/// How a compiled condition or variable refers to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyRef {
    /// Any key but an encryption context pair, by folded name.
    Plain(Box<str>),
    /// `kms:EncryptionContext:<k>`, by folded `<k>`.
    EncryptionContext(Box<str>),
}

impl KeyRef {
    pub(crate) fn new(name: &str) -> KeyRef {
        let folded = fold(name);
        match folded.strip_prefix(EC_PREFIX) {
            Some(k) => KeyRef::EncryptionContext(k.into()),
            None => KeyRef::Plain(folded.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    name: Box<str>,
    values: Box<[ContextValue]>,
}

#[derive(Debug, Clone, PartialEq)]
struct EncryptionContextPair {
    key: Box<str>,
    key_folded: Box<str>,
    value: ContextValue,
}

/// The values a key has in a request: none (absent), one, or several.
pub(crate) struct Found<'a, 'k> {
    values: &'a [ContextValue],
    pairs: &'a [EncryptionContextPair],
    pair_key: &'k str,
}

impl<'a, 'k> Found<'a, 'k> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a ContextValue> + use<'a, 'k> {
        let key = self.pair_key;
        self.values.iter().chain(
            self.pairs
                .iter()
                .filter(move |p| *p.key_folded == *key)
                .map(|p| &p.value),
        )
    }

    pub(crate) fn is_absent(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Everything a policy can look at in one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestContext {
    caller: Caller,
    action: String,
    action_folded: String,
    resource: Resource,
    entries: Vec<Entry>,
    encryption_context: Vec<EncryptionContextPair>,
}

impl RequestContext {
    /// A context for `caller` performing `action` (`kms:Encrypt`, `sts:AssumeRole`) on
    /// `resource`. Sets the global principal keys every request has: `aws:PrincipalArn`,
    /// `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:userid` (the unique ID if the caller
    /// has one; the account ID for root) and, for IAM users, `aws:username`. All other keys,
    /// including `kms:CallerAccount`, are the caller's to set for the operations that have them.
    pub fn new(caller: Caller, action: &str, resource: Resource) -> RequestContext {
        let mut context = RequestContext::bare(caller, action, resource);
        context.entries.reserve(8);
        let principal_arn = context.caller.principal_arn().to_owned();
        let account = context.caller.account().to_owned();
        let principal_type = context.caller.principal_type();
        let username = context.caller.username().map(str::to_owned);
        let userid = match context.caller.unique_id() {
            Some(id) => Some(id.to_owned()),
            None if context.caller.is_root() => Some(account.clone()),
            None => None,
        };
        context.set("aws:PrincipalArn", principal_arn);
        context.set("aws:PrincipalAccount", account);
        context.set("aws:PrincipalType", principal_type);
        if let Some(username) = username {
            context.set("aws:username", username);
        }
        if let Some(userid) = userid {
            context.set("aws:userid", userid);
        }
        context
    }

    /// The caller.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The action as given (`kms:Decrypt`).
    pub fn action(&self) -> &str {
        &self.action
    }

    pub(crate) fn action_folded(&self) -> &str {
        &self.action_folded
    }

    /// The resource.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// The same request for another action (the two halves of `ReEncrypt`, or the hypothetical
    /// `kms:PutKeyPolicy` of the lockout check).
    pub fn with_action(&self, action: &str) -> RequestContext {
        let mut context = self.clone();
        context.action = action.to_owned();
        context.action_folded = fold(action);
        context
    }

    /// The same request on another resource.
    pub fn with_resource(&self, resource: Resource) -> RequestContext {
        let mut context = self.clone();
        context.resource = resource;
        context
    }

    /// Sets a single-valued key, replacing any earlier value. Names are case-insensitive. A
    /// `kms:EncryptionContext:<k>` name sets that pair of the encryption context (and updates
    /// `kms:EncryptionContextKeys`).
    pub fn set(&mut self, key: &str, value: impl Into<ContextValue>) -> &mut RequestContext {
        self.set_values(key, vec![value.into()])
    }

    /// A context with caller, action and resource only: no condition keys, not even the global
    /// principal keys [`RequestContext::new`] sets. For evaluating policies none of which
    /// [`reads_context`](crate::Policy::reads_context); anything else would see absent keys.
    pub fn bare(caller: Caller, action: &str, resource: Resource) -> RequestContext {
        RequestContext {
            action: action.to_owned(),
            action_folded: fold(action),
            resource,
            entries: Vec::new(),
            encryption_context: Vec::new(),
            caller,
        }
    }

    /// Sets a multi-valued key (`kms:GrantOperations`, `aws:TagKeys`, `kms:ResourceAliases`).
    /// An empty list removes the key: AWS treats a key with no values as absent.
    pub fn set_multi<V: Into<ContextValue>>(
        &mut self,
        key: &str,
        values: impl IntoIterator<Item = V>,
    ) -> &mut RequestContext {
        self.set_values(key, values.into_iter().map(Into::into).collect())
    }

    fn set_values(&mut self, key: &str, values: Vec<ContextValue>) -> &mut RequestContext {
        match KeyRef::new(key) {
            KeyRef::EncryptionContext(k) => {
                let original = key.get(EC_PREFIX.len()..).unwrap_or_default();
                self.encryption_context.retain(|p| p.key_folded != k);
                for value in values {
                    self.encryption_context.push(EncryptionContextPair {
                        key: original.into(),
                        key_folded: k.clone(),
                        value,
                    });
                }
                self.refresh_encryption_context_keys();
            }
            KeyRef::Plain(name) => {
                self.entries.retain(|e| e.name != name);
                if !values.is_empty() {
                    self.entries.push(Entry {
                        name,
                        values: values.into(),
                    });
                }
            }
        }
        self
    }

    /// Removes a key.
    pub fn remove(&mut self, key: &str) -> &mut RequestContext {
        self.set_values(key, Vec::new())
    }

    /// Replaces the encryption context: sets `kms:EncryptionContext:<k>` for every pair and
    /// `kms:EncryptionContextKeys` to the keys (absent when the context is empty).
    pub fn set_encryption_context<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut RequestContext {
        self.encryption_context = pairs
            .into_iter()
            .map(|(k, v)| EncryptionContextPair {
                key: k.into(),
                key_folded: fold(k).into(),
                value: ContextValue::String(v.to_owned()),
            })
            .collect();
        self.refresh_encryption_context_keys();
        self
    }

    fn refresh_encryption_context_keys(&mut self) {
        self.entries.retain(|e| &*e.name != EC_KEYS);
        if !self.encryption_context.is_empty() {
            let keys: Vec<ContextValue> = self
                .encryption_context
                .iter()
                .map(|p| ContextValue::String(p.key.to_string()))
                .collect();
            self.entries.push(Entry {
                name: EC_KEYS.into(),
                values: keys.into(),
            });
        }
    }

    /// Builder form of [`RequestContext::set`].
    pub fn with(mut self, key: &str, value: impl Into<ContextValue>) -> RequestContext {
        self.set(key, value);
        self
    }

    /// Builder form of [`RequestContext::set_multi`].
    pub fn with_multi<V: Into<ContextValue>>(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = V>,
    ) -> RequestContext {
        self.set_multi(key, values);
        self
    }

    /// Builder form of [`RequestContext::set_encryption_context`].
    pub fn with_encryption_context<'a>(
        mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> RequestContext {
        self.set_encryption_context(pairs);
        self
    }

    /// The values of a key (empty when absent). Names are case-insensitive.
    pub fn values(&self, key: &str) -> Vec<&ContextValue> {
        let key = KeyRef::new(key);
        self.lookup(&key).iter().collect()
    }

    pub(crate) fn lookup<'a, 'k>(&'a self, key: &'k KeyRef) -> Found<'a, 'k> {
        match key {
            KeyRef::Plain(name) => Found {
                values: self
                    .entries
                    .iter()
                    .find(|e| e.name == *name)
                    .map_or(&[], |e| &e.values),
                pairs: &[],
                pair_key: "",
            },
            KeyRef::EncryptionContext(k) => Found {
                values: &[],
                pairs: &self.encryption_context,
                pair_key: k,
            },
        }
    }

    /// The text a policy variable `${key}` stands for: the key's single value. Absent keys and
    /// keys with several values resolve to nothing.
    pub(crate) fn variable(&self, key: &KeyRef) -> Option<Cow<'_, str>> {
        let found = self.lookup(key);
        let mut values = found.iter();
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        first.as_text()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn alice() -> Caller {
        Caller::from_arn("arn:aws:iam::111122223333:user/alice").unwrap()
    }

    #[test]
    fn principal_keys_are_set() {
        let c = RequestContext::new(alice(), "kms:Decrypt", Resource::Any);
        assert_eq!(
            c.values("AWS:PRINCIPALARN"),
            vec![&ContextValue::from("arn:aws:iam::111122223333:user/alice")]
        );
        assert_eq!(c.values("aws:username"), vec![&ContextValue::from("alice")]);
        assert_eq!(
            c.values("aws:PrincipalType"),
            vec![&ContextValue::from("User")]
        );
        assert!(c.values("aws:userid").is_empty());
        let root = Caller::root("aws", "111122223333").unwrap();
        let c = RequestContext::new(root, "kms:ListKeys", Resource::Any);
        assert_eq!(
            c.values("aws:userid"),
            vec![&ContextValue::from("111122223333")]
        );
        assert!(c.values("aws:username").is_empty());
    }

    #[test]
    fn encryption_context_lookup() {
        let c = RequestContext::new(alice(), "kms:Decrypt", Resource::Any)
            .with_encryption_context([("AppName", "ExampleApp"), ("Dept", "IT")]);
        assert_eq!(
            c.values("kms:encryptioncontext:appname"),
            vec![&ContextValue::from("ExampleApp")]
        );
        assert_eq!(
            c.values("kms:EncryptionContextKeys"),
            vec![&ContextValue::from("AppName"), &ContextValue::from("Dept")]
        );
        assert!(c.values("kms:EncryptionContext:Other").is_empty());
        let c = c.with_encryption_context([]);
        assert!(c.values("kms:EncryptionContextKeys").is_empty());
        let mut c = c;
        c.set("kms:EncryptionContext:Stage", "prod");
        assert_eq!(
            c.values("kms:EncryptionContextKeys"),
            vec![&ContextValue::from("Stage")]
        );
    }

    #[test]
    fn empty_multi_value_is_absent() {
        let mut c = RequestContext::new(alice(), "kms:CreateGrant", Resource::Any);
        c.set_multi("kms:GrantOperations", ["Encrypt"]);
        assert_eq!(c.values("kms:grantoperations").len(), 1);
        c.set_multi("kms:GrantOperations", Vec::<String>::new());
        assert!(c.values("kms:grantoperations").is_empty());
    }

    #[test]
    fn conversions() {
        let date = ContextValue::String("2019-01-01T00:00:00Z".into());
        assert_eq!(date.as_date().map(|d| d.timestamp()), Some(1_546_300_800));
        let n = ContextValue::Date(DateTime::from_timestamp(1_546_257_599, 0).unwrap());
        assert_eq!(n.as_number(), Some(1_546_257_599.0));
        assert_eq!(ContextValue::Number(7.0).as_text().unwrap(), "7");
        assert_eq!(ContextValue::Number(1.5).as_text().unwrap(), "1.5");
        assert_eq!(ContextValue::from("TRUE").as_bool(), Some(true));
        assert_eq!(ContextValue::from(true).as_text().unwrap(), "true");
        assert_eq!(
            ContextValue::Number(1_546_257_599.5)
                .as_date()
                .map(|d| d.timestamp_subsec_millis()),
            Some(500)
        );
    }
}
