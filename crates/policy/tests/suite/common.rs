//! Helpers shared by the suite: callers, documents, contexts, and a table runner.

use kms_policy::{
    authorize, AllowedBy, AnyPrincipalExists, AuthorizationRequest, Caller, Decision, DenyReason,
    GrantCheck, IdentityPolicies, Policy, PolicyKind, RequestContext, Resource,
};

pub const A: &str = "111122223333";
pub const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
pub const KEY_USE1: &str =
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// A caller from a spec: a root or user ARN, or `<role-arn>#<session-name>` for a session.
pub fn caller(spec: &str) -> Caller {
    match spec.split_once('#') {
        Some((role, session)) => Caller::assumed_role(role, session).unwrap(),
        None => Caller::from_arn(spec).unwrap(),
    }
}

pub fn resource(spec: &str) -> Resource {
    if spec == "*" {
        Resource::Any
    } else {
        Resource::arn(spec).unwrap()
    }
}

/// A version 2012-10-17 document around statements (the text between `[` and `]`).
pub fn doc(statements: &str) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#)
}

pub fn parse(kind: PolicyKind, text: &str) -> Policy {
    match Policy::parse(text, kind, &AnyPrincipalExists) {
        Ok(p) => p,
        Err(e) => panic!("{kind:?} policy refused: {e}\n{text}"),
    }
}

pub fn key_policy(statements: &str) -> Policy {
    parse(PolicyKind::Key, &doc(statements))
}

pub fn identity_policy(statements: &str) -> Policy {
    parse(PolicyKind::Identity, &doc(statements))
}

/// The default policy's root statement for account A.
pub const ROOT_A: &str = r#"{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}"#;

/// Operations that work on another account's resource (reference §3.3, and `sts:AssumeRole`).
pub fn cross_account_capable(action: &str) -> bool {
    const OPS: [&str; 20] = [
        "Encrypt",
        "Decrypt",
        "ReEncryptFrom",
        "ReEncryptTo",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "DeriveSharedSecret",
        "DescribeKey",
        "GetPublicKey",
        "CreateGrant",
        "ListGrants",
        "RevokeGrant",
        "RetireGrant",
        "GetKeyRotationStatus",
    ];
    action == "sts:AssumeRole"
        || action
            .strip_prefix("kms:")
            .is_some_and(|op| OPS.contains(&op))
}

/// A condition key value for table rows.
#[derive(Clone, Copy, Debug)]
pub enum Ctx {
    S(&'static str, &'static str),
    B(&'static str, bool),
    N(&'static str, f64),
    /// Epoch seconds as a date value.
    D(&'static str, i64),
    M(&'static str, &'static [&'static str]),
    Ec(&'static [(&'static str, &'static str)]),
    Ip(&'static str, &'static str),
}

pub fn context(
    caller_spec: &str,
    action: &str,
    resource_spec: &str,
    keys: &[Ctx],
) -> RequestContext {
    let mut c = RequestContext::new(caller(caller_spec), action, resource(resource_spec));
    for k in keys {
        match *k {
            Ctx::S(k, v) => {
                c.set(k, v);
            }
            Ctx::B(k, v) => {
                c.set(k, v);
            }
            Ctx::N(k, v) => {
                c.set(k, v);
            }
            Ctx::D(k, secs) => {
                c.set(k, chrono::DateTime::from_timestamp(secs, 0).unwrap());
            }
            Ctx::M(k, v) => {
                c.set_multi(k, v.iter().copied());
            }
            Ctx::Ec(pairs) => {
                c.set_encryption_context(pairs.iter().copied());
            }
            Ctx::Ip(k, v) => {
                c.set(k, v.parse::<std::net::IpAddr>().unwrap());
            }
        }
    }
    c
}

/// What a row expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Allow(AllowedBy),
    Deny(DenyReason),
    /// Denied on another account's key (the merged wording).
    DenyCrossAccount,
}

/// One authorisation case.
pub struct Row {
    pub name: &'static str,
    pub key_policy: Option<Policy>,
    pub identity: Vec<Policy>,
    pub session: Option<Vec<Policy>>,
    pub guardrails: Vec<Policy>,
    pub caller: &'static str,
    pub action: &'static str,
    pub resource: &'static str,
    pub keys: &'static [Ctx],
    pub grant: GrantCheck,
    pub expect: Expect,
}

impl Row {
    pub fn new(name: &'static str, caller: &'static str, action: &'static str) -> Row {
        Row {
            name,
            key_policy: None,
            identity: Vec::new(),
            session: None,
            guardrails: Vec::new(),
            caller,
            action,
            resource: KEY,
            keys: &[],
            grant: GrantCheck::NoGrant,
            expect: Expect::Deny(DenyReason::NoResourcePolicyAllows),
        }
    }
    pub fn key(mut self, statements: &str) -> Row {
        self.key_policy = Some(key_policy(statements));
        self
    }
    /// A role trust policy in place of the key policy.
    pub fn trust(mut self, statements: &str) -> Row {
        self.key_policy = Some(parse(PolicyKind::Trust, &doc(statements)));
        self
    }
    pub fn identity(mut self, statements: &str) -> Row {
        self.identity.push(identity_policy(statements));
        self
    }
    pub fn session(mut self, statements: &str) -> Row {
        self.session
            .get_or_insert_with(Vec::new)
            .push(parse(PolicyKind::Session, &doc(statements)));
        self
    }
    pub fn guardrail(mut self, statements: &str) -> Row {
        self.guardrails.push(identity_policy(statements));
        self
    }
    pub fn on(mut self, resource: &'static str) -> Row {
        self.resource = resource;
        self
    }
    pub fn with(mut self, keys: &'static [Ctx]) -> Row {
        self.keys = keys;
        self
    }
    pub fn grant(mut self, grant: GrantCheck) -> Row {
        self.grant = grant;
        self
    }
    pub fn allow(mut self, by: AllowedBy) -> Row {
        self.expect = Expect::Allow(by);
        self
    }
    pub fn deny(mut self, reason: DenyReason) -> Row {
        self.expect = Expect::Deny(reason);
        self
    }
    pub fn deny_cross_account(mut self) -> Row {
        self.expect = Expect::DenyCrossAccount;
        self
    }

    pub fn context(&self) -> RequestContext {
        context(self.caller, self.action, self.resource, self.keys)
    }

    pub fn decide(&self) -> Decision {
        let context = self.context();
        let identity: Vec<&Policy> = self.identity.iter().collect();
        let session: Option<Vec<&Policy>> = self.session.as_ref().map(|s| s.iter().collect());
        let guardrails: Vec<&Policy> = self.guardrails.iter().collect();
        let mut request = AuthorizationRequest::new(&context)
            .identity_policies(IdentityPolicies {
                principal_policies: &identity,
                session_policies: session.as_deref(),
            })
            .guardrail_policies(&guardrails)
            .cross_account_capable(cross_account_capable(self.action))
            .grant(self.grant);
        if let Some(p) = &self.key_policy {
            request = request.resource_policy(p);
        }
        authorize(&request)
    }
}

/// Runs every row and fails with the list of rows whose decision differs.
pub fn run(rows: &[Row]) {
    let mut failures = Vec::new();
    for row in rows {
        let got = match row.decide() {
            Decision::Allow(by) => Expect::Allow(by),
            Decision::Deny(d) if d.cross_account => Expect::DenyCrossAccount,
            Decision::Deny(d) => Expect::Deny(d.reason),
        };
        if got != row.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                row.name, row.expect, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    eprintln!("{} rows passed", rows.len());
}

pub fn default_key_policy_text() -> String {
    kms_policy::default_key_policy(A)
}
