//! The identity part of the configuration (there is no IAM service here): IAM users with their
//! access keys, groups and roles, each with identity policies; role trust policies and session
//! limits; and optional deny-only guardrail policies per account (a stand-in for service
//! control policies). Validated into an [`IamConfig`] with every policy parsed; the same
//! validation runs at start-up and at every reload, so a reload that fails keeps the old set.
//!
//! ```toml
//! [[users]]
//! arn = "arn:aws:iam::111122223333:user/alice"
//! groups = ["developers"]                 # groups of the same account, by name
//! policies = ['{"Version": "2012-10-17", "Statement": {...}}', { file = "alice.json" }]
//!
//! [[groups]]
//! arn = "arn:aws:iam::111122223333:group/developers"
//! policies = [{ file = "developers.json" }]
//!
//! [[roles]]
//! arn = "arn:aws:iam::111122223333:role/app"
//! trust_policy = { file = "app-trust.json" }
//! policies = [...]
//! max_session_duration_seconds = 3600     # 3600..=43200, default 3600
//!
//! [[credentials]]
//! access_key_id = "AKIA..."
//! secret_access_key = "..."               # or secret_access_key_file
//! principal = "arn:aws:iam::111122223333:user/alice"   # a user of [[users]], or an account root
//!
//! [[guardrails]]
//! account = "111122223333"
//! policies = [...]                        # only their Deny statements count
//! ```
//!
//! A credential whose principal is a user not listed in `[[users]]` belongs to an implicit
//! *administrator* user (identity policy: every `kms:` and `sts:` action on every resource):
//! configurations written before authorization existed keep working, and the built-in
//! development credential is such a user.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kms_policy::{Policy, PolicyKind};
use secrecy::SecretString;
use serde::Deserialize;

/// The identity policy of implicit administrator users (legacy credentials, the development
/// credential).
pub const ADMINISTRATOR_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Administrator","Effect":"Allow","Action":["kms:*","sts:*"],"Resource":"*"}]}"#;

/// Role sessions: AWS's bounds of `MaxSessionDuration`.
const MIN_MAX_SESSION: u64 = 3600;
const MAX_MAX_SESSION: u64 = 43_200;

/// A policy document in the configuration: inline JSON, or a file holding it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPolicy {
    Inline(String),
    File { file: PathBuf },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    arn: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    policies: Vec<RawPolicy>,
    unique_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    arn: String,
    #[serde(default)]
    policies: Vec<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    arn: String,
    trust_policy: RawPolicy,
    #[serde(default)]
    policies: Vec<RawPolicy>,
    max_session_duration_seconds: Option<u64>,
    unique_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuardrail {
    account: String,
    #[serde(default)]
    policies: Vec<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredential {
    pub(super) access_key_id: String,
    pub(super) secret_access_key: Option<SecretString>,
    pub(super) secret_access_key_file: Option<PathBuf>,
    pub(super) principal: String,
}

/// The raw identity sections of the configuration file.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawIam {
    #[serde(default)]
    pub(super) users: Vec<RawUser>,
    #[serde(default)]
    pub(super) groups: Vec<RawGroup>,
    #[serde(default)]
    pub(super) roles: Vec<RawRole>,
    #[serde(default)]
    pub(super) guardrails: Vec<RawGuardrail>,
    #[serde(default)]
    pub(super) credentials: Vec<RawCredential>,
}

/// An access key and the principal (user or account root) it belongs to.
#[derive(Debug, Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// `arn:aws:iam::<account>:user/<name>` or `...:root`.
    pub principal_arn: String,
    pub account: String,
}

/// An IAM user with its identity policies (its own and its groups').
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub arn: String,
    pub account: String,
    /// `AIDA...` (21 characters).
    pub unique_id: String,
    pub policies: Vec<Arc<Policy>>,
    /// Group names (for `GetCallerIdentity`-free bookkeeping and logs).
    pub groups: Vec<String>,
    /// An implicit administrator (a credential without a `[[users]]` entry).
    pub implicit: bool,
}

/// An IAM role.
#[derive(Debug, Clone)]
pub struct RoleConfig {
    /// With its path: `arn:aws:iam::<account>:role/<path/>name`.
    pub arn: String,
    pub account: String,
    pub name: String,
    /// `AROA...` (21 characters).
    pub unique_id: String,
    pub trust_policy: Arc<Policy>,
    pub policies: Vec<Arc<Policy>>,
    pub max_session_seconds: u64,
}

/// The validated identity configuration.
#[derive(Debug, Clone, Default)]
pub struct IamConfig {
    pub users: Vec<UserConfig>,
    pub roles: Vec<RoleConfig>,
    /// Deny-only policies per account.
    pub guardrails: HashMap<String, Vec<Arc<Policy>>>,
    pub credentials: Vec<Credential>,
}

/// The parts of an IAM ARN this module needs.
struct IamArn<'a> {
    account: &'a str,
    kind: &'a str,
    /// After `user/`, `role/` or `group/`: `path/name`.
    path_and_name: &'a str,
}

fn parse_iam_arn(arn: &str) -> Option<IamArn<'_>> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if resource == "root" {
        return Some(IamArn {
            account,
            kind: "root",
            path_and_name: "",
        });
    }
    let (kind, path_and_name) = resource.split_once('/')?;
    let name_ok = !path_and_name.is_empty()
        && !path_and_name.ends_with('/')
        && path_and_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b));
    (matches!(kind, "user" | "role" | "group") && name_ok).then_some(IamArn {
        account,
        kind,
        path_and_name,
    })
}

/// A stable unique id for an IAM entity: `prefix` and 17 characters of base32 of the SHA-256 of
/// its ARN, so that a restart (or another node) gives the same id.
pub fn derived_unique_id(prefix: &str, arn: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = ring::digest::digest(&ring::digest::SHA256, arn.as_bytes());
    let mut out = String::from(prefix);
    let mut bits: u64 = 0;
    let mut nbits = 0;
    for &b in digest.as_ref() {
        bits = (bits << 8) | u64::from(b);
        nbits += 8;
        while nbits >= 5 && out.len() < prefix.len() + 17 {
            nbits -= 5;
            out.push(ALPHABET[((bits >> nbits) & 31) as usize] as char);
        }
    }
    out
}

/// Collects errors while validating one section.
struct Problems<'a>(&'a mut Vec<String>);

impl Problems<'_> {
    fn push(&mut self, msg: String) {
        self.0.push(msg);
    }
}

fn read_policies(
    at: &str,
    raw: &[RawPolicy],
    kind: PolicyKind,
    base: Option<&Path>,
    errors: &mut Problems<'_>,
) -> Vec<Arc<Policy>> {
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let at = format!("{at}.policies[{i}]");
        if let Some(policy) = read_policy(&at, p, kind, base, errors) {
            out.push(policy);
        }
    }
    out
}

fn read_policy(
    at: &str,
    raw: &RawPolicy,
    kind: PolicyKind,
    base: Option<&Path>,
    errors: &mut Problems<'_>,
) -> Option<Arc<Policy>> {
    let text = match raw {
        RawPolicy::Inline(t) => t.clone(),
        RawPolicy::File { file } => {
            let path = match base {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.clone(),
            };
            match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("{at}: {}: {e}", path.display()));
                    return None;
                }
            }
        }
    };
    // Principals in trust policies are any well-formed ARN: roles may trust other accounts.
    match Policy::parse(&text, kind, &kms_policy::AnyPrincipalExists) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            errors.push(format!("{at}: {e}"));
            None
        }
    }
}

fn read_secret(
    at: &str,
    value: Option<SecretString>,
    file: Option<PathBuf>,
    errors: &mut Problems<'_>,
) -> Option<SecretString> {
    let secret = match (value, file) {
        (Some(s), None) => Some(s),
        (None, Some(p)) => match std::fs::read_to_string(&p) {
            Ok(s) => Some(SecretString::from(s.trim().to_string())),
            Err(e) => {
                errors.push(format!("{at}.secret_access_key_file: {}: {e}", p.display()));
                None
            }
        },
        _ => {
            errors.push(format!(
                "{at}: set exactly one of secret_access_key and secret_access_key_file"
            ));
            None
        }
    };
    if let Some(secret) = &secret {
        use secrecy::ExposeSecret;
        if secret.expose_secret().is_empty() {
            errors.push(format!("{at}: the secret access key is empty"));
        }
    }
    secret
}

fn check_unique_id(at: &str, id: &str, prefix: &str, errors: &mut Problems<'_>) {
    let ok = id.len() == 21
        && id.starts_with(prefix)
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ok {
        errors.push(format!(
            "{at}.unique_id: '{id}' is not {prefix} followed by 17 upper-case letters and digits"
        ));
    }
}

/// Validates the identity sections; `base` is the directory relative policy files are read
/// from (the configuration file's).
pub(super) fn validate(raw: RawIam, base: Option<&Path>, errors: &mut Vec<String>) -> IamConfig {
    let mut errors = Problems(errors);
    let admin = match Policy::parse(
        ADMINISTRATOR_POLICY,
        PolicyKind::Identity,
        &kms_policy::AnyPrincipalExists,
    ) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            errors.push(format!("the built-in administrator policy: {e}"));
            return IamConfig::default();
        }
    };

    // Groups: account + name -> policies.
    let mut groups: HashMap<(String, String), Vec<Arc<Policy>>> = HashMap::new();
    for (i, g) in raw.groups.iter().enumerate() {
        let at = format!("groups[{i}]");
        match parse_iam_arn(&g.arn) {
            Some(a) if a.kind == "group" => {
                let name = a.path_and_name.rsplit('/').next().unwrap_or_default();
                let key = (a.account.to_string(), name.to_string());
                if groups.contains_key(&key) {
                    errors.push(format!("{at}.arn: duplicate group {}", g.arn));
                }
                let policies =
                    read_policies(&at, &g.policies, PolicyKind::Identity, base, &mut errors);
                groups.insert(key, policies);
            }
            _ => errors.push(format!(
                "{at}.arn: '{}' is not arn:aws:iam::<12-digit account>:group/[path/]<name>",
                g.arn
            )),
        }
    }

    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut users = Vec::new();
    for (i, u) in raw.users.iter().enumerate() {
        let at = format!("users[{i}]");
        let Some(a) = parse_iam_arn(&u.arn).filter(|a| a.kind == "user") else {
            errors.push(format!(
                "{at}.arn: '{}' is not arn:aws:iam::<12-digit account>:user/[path/]<name>",
                u.arn
            ));
            continue;
        };
        if !names.insert(u.arn.clone()) {
            errors.push(format!("{at}.arn: duplicate user {}", u.arn));
        }
        let mut policies = read_policies(&at, &u.policies, PolicyKind::Identity, base, &mut errors);
        for g in &u.groups {
            match groups.get(&(a.account.to_string(), g.clone())) {
                Some(p) => policies.extend(p.iter().cloned()),
                None => errors.push(format!(
                    "{at}.groups: no group '{g}' in account {}",
                    a.account
                )),
            }
        }
        let unique_id = match &u.unique_id {
            Some(id) => {
                check_unique_id(&at, id, "AIDA", &mut errors);
                id.clone()
            }
            None => derived_unique_id("AIDA", &u.arn),
        };
        users.push(UserConfig {
            arn: u.arn.clone(),
            account: a.account.to_string(),
            unique_id,
            policies,
            groups: u.groups.clone(),
            implicit: false,
        });
    }

    let mut roles = Vec::new();
    for (i, r) in raw.roles.iter().enumerate() {
        let at = format!("roles[{i}]");
        let Some(a) = parse_iam_arn(&r.arn).filter(|a| a.kind == "role") else {
            errors.push(format!(
                "{at}.arn: '{}' is not arn:aws:iam::<12-digit account>:role/[path/]<name>",
                r.arn
            ));
            continue;
        };
        let name = a
            .path_and_name
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        if roles
            .iter()
            .any(|o: &RoleConfig| o.account == a.account && o.name == name)
        {
            errors.push(format!(
                "{at}.arn: duplicate role name {name} in account {}",
                a.account
            ));
        }
        let trust = read_policy(
            &format!("{at}.trust_policy"),
            &r.trust_policy,
            PolicyKind::Trust,
            base,
            &mut errors,
        );
        let policies = read_policies(&at, &r.policies, PolicyKind::Identity, base, &mut errors);
        let max = r.max_session_duration_seconds.unwrap_or(MIN_MAX_SESSION);
        if !(MIN_MAX_SESSION..=MAX_MAX_SESSION).contains(&max) {
            errors.push(format!(
                "{at}.max_session_duration_seconds: {max} is not within {MIN_MAX_SESSION}..={MAX_MAX_SESSION}"
            ));
        }
        let unique_id = match &r.unique_id {
            Some(id) => {
                check_unique_id(&at, id, "AROA", &mut errors);
                id.clone()
            }
            None => derived_unique_id("AROA", &r.arn),
        };
        if let Some(trust) = trust {
            roles.push(RoleConfig {
                arn: r.arn.clone(),
                account: a.account.to_string(),
                name,
                unique_id,
                trust_policy: trust,
                policies,
                max_session_seconds: max,
            });
        }
    }

    let mut guardrails: HashMap<String, Vec<Arc<Policy>>> = HashMap::new();
    for (i, g) in raw.guardrails.iter().enumerate() {
        let at = format!("guardrails[{i}]");
        if g.account.len() != 12 || !g.account.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(format!(
                "{at}.account: '{}' is not a 12-digit account",
                g.account
            ));
            continue;
        }
        let policies = read_policies(&at, &g.policies, PolicyKind::Identity, base, &mut errors);
        guardrails
            .entry(g.account.clone())
            .or_default()
            .extend(policies);
    }

    let mut credentials: Vec<Credential> = Vec::new();
    for (i, c) in raw.credentials.into_iter().enumerate() {
        let at = format!("credentials[{i}]");
        let akid_ok = (16..=128).contains(&c.access_key_id.len())
            && c.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !akid_ok {
            errors.push(format!(
                "{at}.access_key_id: must be 16-128 letters and digits"
            ));
        }
        if c.access_key_id.starts_with("ASIA") {
            errors.push(format!(
                "{at}.access_key_id: ASIA... ids are for temporary credentials (sts:AssumeRole)"
            ));
        }
        if credentials
            .iter()
            .any(|o| o.access_key_id == c.access_key_id)
        {
            errors.push(format!("{at}.access_key_id: duplicate access key id"));
        }
        let secret = read_secret(
            &at,
            c.secret_access_key,
            c.secret_access_key_file,
            &mut errors,
        );
        let account = match parse_iam_arn(&c.principal) {
            Some(a) if a.kind == "root" || a.kind == "user" => Some(a.account.to_string()),
            _ => {
                errors.push(format!(
                    "{at}.principal: '{}' is not arn:aws:iam::<12-digit account>:user/<name> or root \
                     (roles have no long-term access keys: use sts:AssumeRole)",
                    c.principal
                ));
                None
            }
        };
        let (Some(secret), Some(account)) = (secret, account) else {
            continue;
        };
        let is_user = c.principal.contains(":user/");
        if is_user && !users.iter().any(|u| u.arn == c.principal) {
            users.push(UserConfig {
                arn: c.principal.clone(),
                account: account.clone(),
                unique_id: derived_unique_id("AIDA", &c.principal),
                policies: vec![admin.clone()],
                groups: Vec::new(),
                implicit: true,
            });
        }
        credentials.push(Credential {
            access_key_id: c.access_key_id,
            secret_access_key: secret,
            principal_arn: c.principal,
            account,
        });
    }
    IamConfig {
        users,
        roles,
        guardrails,
        credentials,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_shaped() {
        let a = derived_unique_id("AIDA", "arn:aws:iam::111122223333:user/alice");
        assert_eq!(a.len(), 21);
        assert!(a.starts_with("AIDA"));
        assert_eq!(
            a,
            derived_unique_id("AIDA", "arn:aws:iam::111122223333:user/alice")
        );
        assert_ne!(
            a,
            derived_unique_id("AIDA", "arn:aws:iam::111122223333:user/bob")
        );
    }
}
