//! Who is calling ([`Caller`]) and who a statement names (`Principal` / `NotPrincipal`).
//!
//! Owns the principal grammar (account IDs, root, user, role and assumed-role ARNs, `"*"`,
//! service principals) and the matching rules, including how a statement that names an account
//! differs from one that names the caller itself. Whether a named principal exists is asked of the
//! caller through [`PrincipalDirectory`]; this module never looks anything up.

use crate::arn::{is_account_id, split_arn, ArnError};

/// Answers whether an IAM principal exists when a policy naming it is written. AWS refuses
/// policies that name principals that do not exist; only the caller knows its principals.
///
/// Asked for user, role and assumed-role ARNs only. Account principals (account IDs and root
/// ARNs), `"*"` and service principals are always valid. Closures `Fn(&str) -> bool` implement it.
pub trait PrincipalDirectory {
    /// True if `arn` names a principal that exists (for assumed-role ARNs: whatever the caller
    /// decides, typically that the role exists).
    fn principal_exists(&self, arn: &str) -> bool;
}

impl<F: Fn(&str) -> bool> PrincipalDirectory for F {
    fn principal_exists(&self, arn: &str) -> bool {
        self(arn)
    }
}

/// A [`PrincipalDirectory`] in which every well-formed principal exists (for tests and tools).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyPrincipalExists;

impl PrincipalDirectory for AnyPrincipalExists {
    fn principal_exists(&self, _arn: &str) -> bool {
        true
    }
}

/// What kind of identity made the request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallerKind {
    /// The account's root user.
    Root,
    /// An IAM user.
    User,
    /// A role session from `sts:AssumeRole`.
    AssumedRole {
        /// The role's ARN *with* its path (the session ARN drops the path).
        role_arn: String,
        /// The session name.
        session_name: String,
    },
}

/// The authenticated identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    arn: String,
    account: String,
    kind: CallerKind,
    unique_id: Option<String>,
}

const IAM_NAME_CHARS: &str = "+=,.@_-";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || IAM_NAME_CHARS.contains(c)
}

fn is_partition(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `path/name` after `user/` or `role/`: segments of IAM name characters, the last non-empty.
fn is_path_and_name(s: &str) -> bool {
    !s.is_empty()
        && !s.ends_with('/')
        && !s.starts_with('/')
        && s.chars().all(|c| is_name_char(c) || c == '/')
}

/// The principal forms that can appear in a policy or be a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalArn<'a> {
    Root {
        account: &'a str,
    },
    User,
    Role,
    Session {
        account: &'a str,
        role_name: &'a str,
        session_name: &'a str,
    },
}

/// Parses an IAM principal ARN (root, user, role, assumed-role), refusing wildcards, groups and
/// everything else.
pub(crate) fn parse_principal_arn(arn: &str) -> Option<(PrincipalArn<'_>, &str)> {
    let parts = split_arn(arn)?;
    if !is_partition(parts.partition) || !parts.region.is_empty() || !is_account_id(parts.account) {
        return None;
    }
    let account = parts.account;
    let principal = match parts.service {
        "iam" => {
            if parts.resource == "root" {
                PrincipalArn::Root { account }
            } else if let Some(rest) = parts.resource.strip_prefix("user/") {
                is_path_and_name(rest).then_some(PrincipalArn::User)?
            } else if let Some(rest) = parts.resource.strip_prefix("role/") {
                is_path_and_name(rest).then_some(PrincipalArn::Role)?
            } else {
                return None;
            }
        }
        "sts" => {
            let rest = parts.resource.strip_prefix("assumed-role/")?;
            let (role_name, session_name) = rest.split_once('/')?;
            let ok = |s: &str| !s.is_empty() && s.chars().all(is_name_char);
            if !ok(role_name) || !ok(session_name) {
                return None;
            }
            PrincipalArn::Session {
                account,
                role_name,
                session_name,
            }
        }
        _ => return None,
    };
    Some((principal, account))
}

impl Caller {
    /// The root user of `account` in `partition` (`aws` for the commercial partition).
    pub fn root(partition: &str, account: &str) -> Result<Caller, ArnError> {
        Caller::from_arn(&format!("arn:{partition}:iam::{account}:root"))
    }

    /// A root user or IAM user, from its ARN (`arn:aws:iam::111122223333:root`,
    /// `arn:aws:iam::111122223333:user/path/alice`).
    pub fn from_arn(arn: &str) -> Result<Caller, ArnError> {
        const EXPECTED: &str = "an IAM root or user ARN";
        match parse_principal_arn(arn) {
            Some((PrincipalArn::Root { account }, _)) => Ok(Caller {
                arn: arn.to_owned(),
                account: account.to_owned(),
                kind: CallerKind::Root,
                unique_id: None,
            }),
            Some((PrincipalArn::User, account)) => Ok(Caller {
                arn: arn.to_owned(),
                account: account.to_owned(),
                kind: CallerKind::User,
                unique_id: None,
            }),
            _ => Err(ArnError::new(arn, EXPECTED)),
        }
    }

    /// A session of the role `role_arn` (with its path) named `session_name`. The caller's ARN is
    /// `arn:<partition>:sts::<account>:assumed-role/<role-name>/<session-name>`.
    pub fn assumed_role(role_arn: &str, session_name: &str) -> Result<Caller, ArnError> {
        let Some((PrincipalArn::Role, account)) = parse_principal_arn(role_arn) else {
            return Err(ArnError::new(role_arn, "an IAM role ARN"));
        };
        if session_name.is_empty() || !session_name.chars().all(is_name_char) {
            return Err(ArnError::new(session_name, "a role session name"));
        }
        let partition = split_arn(role_arn).map_or("aws", |p| p.partition);
        let role_name = role_arn.rsplit('/').next().unwrap_or_default();
        Ok(Caller {
            arn: format!("arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}"),
            account: account.to_owned(),
            kind: CallerKind::AssumedRole {
                role_arn: role_arn.to_owned(),
                session_name: session_name.to_owned(),
            },
            unique_id: None,
        })
    }

    /// Sets the unique ID (`AIDA…` for users, `AROA…:<session>` for sessions, the account ID
    /// for root), which becomes `aws:userid`.
    pub fn with_unique_id(mut self, unique_id: impl Into<String>) -> Caller {
        self.unique_id = Some(unique_id.into());
        self
    }

    /// The caller's ARN: root ARN, user ARN, or the session ARN for role sessions. This is the
    /// ARN that AccessDenied messages name.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The caller's account.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The kind of identity.
    pub fn kind(&self) -> &CallerKind {
        &self.kind
    }

    /// True for the account's root user.
    pub fn is_root(&self) -> bool {
        self.kind == CallerKind::Root
    }

    /// The role ARN (with path) of a role session.
    pub fn role_arn(&self) -> Option<&str> {
        match &self.kind {
            CallerKind::AssumedRole { role_arn, .. } => Some(role_arn),
            _ => None,
        }
    }

    /// The value of `aws:PrincipalArn`: the user ARN, the **role** ARN for a session, the root
    /// ARN for root.
    pub fn principal_arn(&self) -> &str {
        self.role_arn().unwrap_or(&self.arn)
    }

    /// The value of `aws:PrincipalType`: `Account`, `User` or `AssumedRole`.
    pub fn principal_type(&self) -> &'static str {
        match self.kind {
            CallerKind::Root => "Account",
            CallerKind::User => "User",
            CallerKind::AssumedRole { .. } => "AssumedRole",
        }
    }

    /// The value of `aws:username`: an IAM user's friendly name (absent for other callers).
    pub fn username(&self) -> Option<&str> {
        match self.kind {
            CallerKind::User => self.arn.rsplit('/').next(),
            _ => None,
        }
    }

    /// The unique ID, if the caller set one.
    pub fn unique_id(&self) -> Option<&str> {
        self.unique_id.as_deref()
    }
}

/// How an Allow statement's `Principal` matched the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalMatch {
    /// The statement names the caller's account: it delegates to the account's identity
    /// policies and by itself allows only the root user.
    Account,
    /// The statement names the role of the caller's session, or `"*"` for a session: allowed,
    /// but within the session policies.
    Role,
    /// The statement names the caller itself: its user or session ARN, `"*"`, or (for the root
    /// user) its account.
    Caller,
}

/// The principals one `Principal` or `NotPrincipal` element names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PrincipalSet {
    /// `"*"` or `{"AWS": "*"}`.
    pub any: bool,
    /// Account IDs (from account IDs and root ARNs; partitions are not compared).
    pub accounts: Vec<Box<str>>,
    /// User and assumed-role session ARNs (compared with the caller's ARN).
    pub exact: Vec<Box<str>>,
    /// Role ARNs (compared with the role of the caller's session).
    pub roles: Vec<Box<str>>,
}

impl PrincipalSet {
    fn has_account(&self, account: &str) -> bool {
        self.accounts.iter().any(|a| **a == *account)
    }

    fn has_exact(&self, arn: &str) -> bool {
        self.exact.iter().any(|a| **a == *arn)
    }

    fn has_role(&self, arn: &str) -> bool {
        self.roles.iter().any(|a| **a == *arn)
    }

    /// The strongest way this set names the caller, if it does.
    pub(crate) fn best_match(&self, caller: &Caller) -> Option<PrincipalMatch> {
        match &caller.kind {
            CallerKind::Root => {
                (self.any || self.has_account(&caller.account)).then_some(PrincipalMatch::Caller)
            }
            CallerKind::User => {
                if self.any || self.has_exact(&caller.arn) {
                    Some(PrincipalMatch::Caller)
                } else {
                    self.has_account(&caller.account)
                        .then_some(PrincipalMatch::Account)
                }
            }
            CallerKind::AssumedRole { role_arn, .. } => {
                if self.has_exact(&caller.arn) {
                    Some(PrincipalMatch::Caller)
                } else if self.any || self.has_role(role_arn) {
                    Some(PrincipalMatch::Role)
                } else {
                    self.has_account(&caller.account)
                        .then_some(PrincipalMatch::Account)
                }
            }
        }
    }

    /// `NotPrincipal` semantics (IAM): the caller is left out only if *every* identity the
    /// request is evaluated for is listed: the account; the user; or the session, its role and
    /// the account.
    pub(crate) fn excludes(&self, caller: &Caller) -> bool {
        if self.any {
            return true;
        }
        let account = self.has_account(&caller.account);
        match &caller.kind {
            CallerKind::Root => account,
            CallerKind::User => account && self.has_exact(&caller.arn),
            CallerKind::AssumedRole { role_arn, .. } => {
                account && self.has_role(role_arn) && self.has_exact(&caller.arn)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn callers() {
        let root = Caller::root("aws", "111122223333").unwrap();
        assert_eq!(root.arn(), "arn:aws:iam::111122223333:root");
        assert!(root.is_root());
        assert_eq!(root.principal_type(), "Account");

        let alice = Caller::from_arn("arn:aws:iam::111122223333:user/dev/alice").unwrap();
        assert_eq!(alice.username(), Some("alice"));
        assert_eq!(alice.principal_arn(), alice.arn());

        let s = Caller::assumed_role("arn:aws:iam::111122223333:role/svc/app", "s1").unwrap();
        assert_eq!(s.arn(), "arn:aws:sts::111122223333:assumed-role/app/s1");
        assert_eq!(s.principal_arn(), "arn:aws:iam::111122223333:role/svc/app");
        assert_eq!(s.account(), "111122223333");
        assert_eq!(s.username(), None);

        assert!(Caller::from_arn("arn:aws:iam::111122223333:group/admins").is_err());
        assert!(Caller::from_arn("arn:aws:iam::1111:user/alice").is_err());
        assert!(Caller::assumed_role("arn:aws:iam::111122223333:user/a", "s").is_err());
        assert!(Caller::assumed_role("arn:aws:iam::111122223333:role/a", "bad name").is_err());
    }

    #[test]
    fn principal_arns() {
        let valid = [
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:user/a/b/alice",
            "arn:aws:iam::111122223333:role/app",
            "arn:aws-cn:iam::111122223333:role/x/app",
            "arn:aws:sts::111122223333:assumed-role/app/s-1",
        ];
        for arn in valid {
            assert!(parse_principal_arn(arn).is_some(), "{arn}");
        }
        let invalid = [
            "arn:aws:iam::111122223333:group/admins",
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:iam::*:root",
            "arn:aws:iam::111122223333:user/",
            "arn:aws:iam::111122223333:user/a/",
            "arn:aws:iam:us-east-1:111122223333:user/a",
            "arn:aws:sts::111122223333:assumed-role/app",
            "arn:aws:sts::111122223333:assumed-role/app/s/x",
            "arn:aws:iam::111122223333:policy/p",
            "arn:aws:kms:us-east-1:111122223333:key/k",
            "111122223333",
            "",
        ];
        for arn in invalid {
            assert!(parse_principal_arn(arn).is_none(), "{arn}");
        }
    }
}
