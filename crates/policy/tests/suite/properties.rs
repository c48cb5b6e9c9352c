//! Property tests: the parser and the evaluator never panic, on arbitrary JSON trees, on
//! mutated valid policies and on arbitrary text; parsing and evaluation are deterministic; the
//! wildcard matcher agrees with a naive reference matcher.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};

use kms_policy::{
    authorize, AnyPrincipalExists, AuthorizationRequest, Caller, GrantCheck, IdentityPolicies,
    Policy, PolicyKind, RequestContext, Resource,
};

use crate::common::{default_key_policy_text, doc, KEY};

const KINDS: [PolicyKind; 4] = [
    PolicyKind::Key,
    PolicyKind::Identity,
    PolicyKind::Trust,
    PolicyKind::Session,
];

const NAMES: &[&str] = &[
    "Version",
    "Id",
    "Statement",
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "AWS",
    "Service",
    "Federated",
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLikeIfExists",
    "StringEqualsIgnoreCase",
    "ForAnyValue:StringEquals",
    "ForAllValues:StringLike",
    "NumericLessThan",
    "NumericNotEquals",
    "DateGreaterThan",
    "DateNotEqualsIfExists",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnLike",
    "ArnNotEquals",
    "Null",
    "kms:EncryptionContext:k",
    "kms:EncryptionContextKeys",
    "kms:CallerAccount",
    "kms:GrantOperations",
    "aws:SourceIp",
    "aws:CurrentTime",
    "aws:PrincipalArn",
    "aws:SecureTransport",
    "kms:ValidTo",
    "aws:TagKeys",
    "aws:ResourceTag/x",
    "aws:RequestTag/y",
];

const STRINGS: &[&str] = &[
    "*",
    "",
    "Allow",
    "Deny",
    "2012-10-17",
    "2008-10-17",
    "kms:*",
    "kms:Decrypt",
    "kms:Get*",
    "kms:Re?ncrypt*",
    "sts:AssumeRole",
    "111122223333",
    "arn:aws:iam::111122223333:root",
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:iam::111122223333:role/app",
    "arn:aws:sts::111122223333:assumed-role/app/s1",
    "arn:aws:iam::*:user/*",
    "arn:aws:kms:*:111122223333:key/*",
    KEY,
    "arn:aws:kms:us-west-2",
    "ec2.amazonaws.com",
    "${aws:username}",
    "${aws:username, 'x'}",
    "${*}${?}${$}",
    "${",
    "10.0.0.0/8",
    "::/0",
    "300.0.0.0/8",
    "2019-01-01T00:00:00Z",
    "1546257599.0",
    "-1",
    "1e400",
    "NaN",
    "true",
    "FALSE",
    "aGVsbG8=",
    "alias/*",
    "\u{0}",
    "é?*",
    "Encrypt",
];

fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(NAMES).prop_map(str::to_owned),
        1 => "[A-Za-z:/*?$ {}]{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        4 => select(STRINGS).prop_map(|s| Value::String(s.to_owned())),
        2 => "\\PC{0,16}".prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 96, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((key_name(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Documents that parse (as the kind given) before mutation.
fn seeds() -> Vec<(PolicyKind, String)> {
    vec![
        (PolicyKind::Key, default_key_policy_text()),
        (
            PolicyKind::Key,
            doc(
                r#"{"Sid": "s", "Effect": "Deny", "Principal": {"AWS": ["*", "111122223333"]}, "Action": ["kms:Decrypt", "kms:Re*"], "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:stage": ["restricted", "${aws:username}"]}, "ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "a*"}, "NumericLessThanEquals": {"kms:ValidTo": "1546257599.0"}, "DateLessThanIfExists": {"aws:CurrentTime": "2030-01-01"}, "NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}, "Null": {"kms:ViaService": true}, "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}}"#,
            ),
        ),
        (
            PolicyKind::Identity,
            doc(
                r#"{"Effect": "Allow", "NotAction": "kms:Schedule*", "Resource": ["arn:aws:kms:*:${aws:PrincipalAccount}:key/*", "*"], "Condition": {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt"]}, "Bool": {"aws:SecureTransport": "true"}, "BinaryEquals": {"kms:Blob": "aGVsbG8="}}}"#,
            ),
        ),
        (
            PolicyKind::Trust,
            doc(
                r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/app", "Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "x"}}}"#,
            ),
        ),
        (
            PolicyKind::Session,
            doc(
                r#"{"Effect": "Allow", "Action": "kms:*", "NotResource": "arn:aws:kms:*:*:key/secret"}"#,
            ),
        ),
    ]
}

/// A few contexts of different shapes to evaluate whatever parsed.
fn contexts(ec_value: &str, tags: &[String]) -> Vec<RequestContext> {
    let alice = Caller::from_arn("arn:aws:iam::111122223333:user/alice").unwrap();
    let session = Caller::assumed_role("arn:aws:iam::111122223333:role/app", "s1").unwrap();
    let bob = Caller::from_arn("arn:aws:iam::444455556666:user/bob").unwrap();
    let root = Caller::root("aws", "111122223333").unwrap();
    let key = Resource::arn(KEY).unwrap();
    vec![
        RequestContext::new(alice, "kms:Decrypt", key.clone())
            .with_encryption_context([("stage", ec_value), ("k", "v")])
            .with("aws:SourceIp", "10.1.2.3")
            .with("aws:CurrentTime", "2020-01-01T00:00:00Z"),
        RequestContext::new(session, "kms:ReEncryptFrom", key.clone())
            .with_multi("aws:TagKeys", tags.iter().map(String::as_str))
            .with("kms:ValidTo", 1_546_257_599.0),
        RequestContext::new(bob, "kms:CreateGrant", key)
            .with_multi("kms:GrantOperations", ["Encrypt", "Decrypt"])
            .with("aws:SecureTransport", true),
        RequestContext::new(root, "sts:AssumeRole", Resource::Any).with("kms:Blob", ec_value),
    ]
}

/// Parses `text` as every kind; whatever parses is evaluated and authorised against every
/// context, twice, and must give the same answers.
fn exercise(text: &str, ec_value: &str, tags: &[String]) -> Result<(), TestCaseError> {
    let contexts = contexts(ec_value, tags);
    for kind in KINDS {
        let first = Policy::parse(text, kind, &AnyPrincipalExists);
        let second = Policy::parse(text, kind, &AnyPrincipalExists);
        prop_assert_eq!(&first, &second);
        let Ok(policy) = first else { continue };
        prop_assert_eq!(policy.text(), text);
        for context in &contexts {
            let evaluation = policy.evaluate(context);
            prop_assert_eq!(evaluation, policy.evaluate(context));
            let identity = [&policy];
            let request = AuthorizationRequest::new(context)
                .resource_policy(&policy)
                .identity_policies(IdentityPolicies {
                    principal_policies: &identity,
                    session_policies: Some(&identity),
                })
                .guardrail_policies(&identity)
                .cross_account_capable(true)
                .grant(GrantCheck::AllowsIfIdentityAllows);
            let decision = authorize(&request);
            prop_assert_eq!(decision, authorize(&request));
            // A policy that reads no context key decides the same on a bare context.
            if !policy.reads_context() {
                let bare = RequestContext::bare(
                    context.caller().clone(),
                    context.action(),
                    context.resource().clone(),
                );
                prop_assert_eq!(evaluation, policy.evaluate(&bare));
                let request = AuthorizationRequest::new(&bare)
                    .resource_policy(&policy)
                    .identity_policies(IdentityPolicies {
                        principal_policies: &identity,
                        session_policies: Some(&identity),
                    })
                    .guardrail_policies(&identity)
                    .cross_account_capable(true)
                    .grant(GrantCheck::AllowsIfIdentityAllows);
                prop_assert_eq!(decision, authorize(&request));
            }
            if let Some(denial) = decision.denial() {
                prop_assert!(denial.message(context).starts_with("User: "));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    WrapInArray,
    RenameMember(String),
    EditString(String),
}

fn mutation() -> impl Strategy<Value = (usize, Mutation)> {
    let m = prop_oneof![
        3 => json().prop_map(Mutation::Replace),
        2 => Just(Mutation::Remove),
        1 => Just(Mutation::WrapInArray),
        1 => key_name().prop_map(Mutation::RenameMember),
        2 => select(STRINGS).prop_map(|s| Mutation::EditString(s.to_owned())),
    ];
    (any::<usize>(), m)
}

/// Paths of every node, as indices into arrays and member positions into objects.
fn paths(v: &Value, at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(at.clone());
    let children: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        Value::Object(members) => members.values().collect(),
        _ => return,
    };
    for (i, child) in children.into_iter().enumerate() {
        at.push(i);
        paths(child, at, out);
        at.pop();
    }
}

fn node_mut<'a>(v: &'a mut Value, path: &[usize]) -> Option<&'a mut Value> {
    let Some((&first, rest)) = path.split_first() else {
        return Some(v);
    };
    let child = match v {
        Value::Array(items) => items.get_mut(first)?,
        Value::Object(members) => members.values_mut().nth(first)?,
        _ => return None,
    };
    node_mut(child, rest)
}

fn apply(doc: &mut Value, selector: usize, mutation: Mutation) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let path = &all[selector % all.len()];
    match mutation {
        Mutation::Replace(v) => {
            if let Some(node) = node_mut(doc, path) {
                *node = v;
            }
        }
        Mutation::WrapInArray => {
            if let Some(node) = node_mut(doc, path) {
                *node = Value::Array(vec![node.take()]);
            }
        }
        Mutation::EditString(s) => {
            if let Some(Value::String(old)) = node_mut(doc, path) {
                let cut = old
                    .char_indices()
                    .nth(old.chars().count() / 2)
                    .map_or(0, |(i, _)| i);
                old.insert_str(cut, &s);
            }
        }
        Mutation::Remove | Mutation::RenameMember(_) => {
            let Some((&last, parent_path)) = path.split_last() else {
                return;
            };
            match (node_mut(doc, parent_path), mutation) {
                (Some(Value::Array(items)), Mutation::Remove) if last < items.len() => {
                    items.remove(last);
                }
                (Some(Value::Object(members)), m) => {
                    if let Some(name) = members.keys().nth(last).cloned() {
                        let value = members.remove(&name);
                        if let (Mutation::RenameMember(new), Some(value)) = (m, value) {
                            members.insert(new, value);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// A naive recursive matcher to check the compiled one against.
fn reference_like(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| reference_like(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && reference_like(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && reference_like(rest, &text[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in json(), ec in select(STRINGS), tags in vec("[a-z*]{0,3}", 0..3)) {
        exercise(&v.to_string(), ec, &tags)?;
    }

    #[test]
    fn arbitrary_policy_shaped_json_never_panics(
        statements in vec(json(), 1..4),
        version in select(&["2012-10-17", "2008-10-17", "x"][..]),
        ec in select(STRINGS),
    ) {
        let doc = serde_json::json!({"Version": version, "Statement": statements});
        exercise(&doc.to_string(), ec, &[])?;
    }

    #[test]
    fn mutated_policies_never_panic(
        seed in 0usize..5,
        mutations in vec(mutation(), 1..4),
        ec in select(STRINGS),
        tags in vec(select(STRINGS).prop_map(str::to_owned), 0..3),
    ) {
        let (_, text) = &seeds()[seed];
        let mut doc: Value = serde_json::from_str(text).unwrap();
        for (selector, m) in mutations {
            apply(&mut doc, selector, m);
        }
        exercise(&doc.to_string(), ec, &tags)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,64}|[{}\\[\\]\",:a-zA-Z0-9*]{0,64}") {
        exercise(&text, "v", &[])?;
    }

    #[test]
    fn like_agrees_with_a_reference_matcher(pattern in "[ab*?]{0,8}", text in "[ab]{0,8}") {
        let policy = Policy::parse(
            &format!(r#"{{"Version": "2008-10-17", "Statement": {{"Effect": "Allow", "Action": "kms:Decrypt",
                "Resource": "*", "Condition": {{"StringLike": {{"kms:EncryptionContext:k": "{pattern}"}}}}}}}}"#),
            PolicyKind::Identity,
            &AnyPrincipalExists,
        ).unwrap();
        let alice = Caller::from_arn("arn:aws:iam::111122223333:user/alice").unwrap();
        let context = RequestContext::new(alice, "kms:Decrypt", Resource::Any)
            .with_encryption_context([("k", text.as_str())]);
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(policy.evaluate(&context).allows(), reference_like(&p, &t));
    }
}

#[test]
fn reads_context_only_for_conditions_and_variables() {
    let parse = |kind, text: &str| Policy::parse(text, kind, &AnyPrincipalExists).unwrap();
    assert!(!parse(PolicyKind::Key, &default_key_policy_text()).reads_context());
    let plain = doc(r#"{"Effect":"Allow","Action":"kms:*","Resource":"*"}"#);
    assert!(!parse(PolicyKind::Identity, &plain).reads_context());
    let condition = doc(
        r#"{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#,
    );
    assert!(parse(PolicyKind::Identity, &condition).reads_context());
    let variable = doc(
        r#"{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:*:key/${aws:username}"}"#,
    );
    assert!(parse(PolicyKind::Identity, &variable).reads_context());
}

#[test]
fn seeds_parse_as_their_kind() {
    for (kind, text) in seeds() {
        Policy::parse(&text, kind, &AnyPrincipalExists).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    }
}
