//! Validation: every refusal, with its exact message, and the documents that must be accepted.

use std::cell::RefCell;

use kms_policy::{
    check_key_policy_size, Policy, PolicyError, PolicyKind, PolicyVersion, MAX_KEY_POLICY_BYTES,
};

use crate::common::doc;

/// Principals that exist: alice, bob, the app role and its sessions.
fn directory(arn: &str) -> bool {
    arn.ends_with(":user/alice")
        || arn.ends_with(":user/bob")
        || arn.ends_with(":role/app")
        || arn.contains(":assumed-role/app/")
}

fn parse(kind: PolicyKind, text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, kind, &directory)
}

const OK_KEY: &str = r#"{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"}"#;
const OK_IDENTITY: &str = r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#;

/// (kind, document, exact message).
fn refusals() -> Vec<(PolicyKind, String, &'static str)> {
    use PolicyKind::{Identity, Key, Session, Trust};
    let key_stmt = |extra: &str| {
        doc(&format!(
            r#"{{"Effect": "Allow", "Principal": {{"AWS": "111122223333"}}, "Action": "kms:*", "Resource": "*"{extra}}}"#
        ))
    };
    let key_principal = |p: &str| {
        doc(&format!(
            r#"{{"Effect": "Allow", "Principal": {p}, "Action": "kms:*", "Resource": "*"}}"#
        ))
    };
    let key_condition = |c: &str| key_stmt(&format!(r#", "Condition": {c}"#));
    let id_stmt = |s: &str| doc(&format!(r#"{{"Effect": "Allow", {s}}}"#));
    vec![
        // Documents.
        (Key, "{".into(), "The policy document is not valid JSON: EOF while parsing an object at line 1 column 1"),
        (Key, r#"{"Version": "2012-10-17", "Version": "2012-10-17"}"#.into(),
            "The policy document is not valid JSON: the member name \"Version\" appears twice in one object at line 1 column 35"),
        (Key, "[]".into(), "The policy document must be a JSON object, not an array."),
        (Key, "null".into(), "The policy document must be a JSON object, not null."),
        (Key, format!(r#"{{"Version": "2012-10-17", "Statement": [{OK_KEY}], "Extra": 1}}"#),
            "The policy document contains the unknown element \"Extra\"."),
        (Key, format!(r#"{{"version": "2012-10-17", "Statement": [{OK_KEY}]}}"#),
            "The policy document contains the unknown element \"version\"."),
        (Key, format!(r#"{{"Statement": [{OK_KEY}]}}"#),
            "The policy document has no Version element; a key policy must specify \"Version\": \"2012-10-17\"."),
        (Identity, format!(r#"{{"Version": "2013-01-01", "Statement": [{OK_IDENTITY}]}}"#),
            "The policy Version \"2013-01-01\" is not supported; use \"2012-10-17\" or \"2008-10-17\"."),
        (Identity, format!(r#"{{"Version": 2012, "Statement": [{OK_IDENTITY}]}}"#), "Version must be a string, not a number."),
        (Identity, format!(r#"{{"Id": 7, "Statement": [{OK_IDENTITY}]}}"#), "Id must be a string, not a number."),
        (Key, r#"{"Version": "2012-10-17"}"#.into(), "The policy document must contain at least one statement."),
        (Key, r#"{"Version": "2012-10-17", "Statement": []}"#.into(), "The policy document must contain at least one statement."),
        (Key, r#"{"Version": "2012-10-17", "Statement": "Allow"}"#.into(),
            "Statement must be an object or an array of objects, not a string."),
        (Key, format!(r#"{{"Version": "2012-10-17", "Statement": [{OK_KEY}, "x"]}}"#), "Statement[1] must be an object, not a string."),
        // Statements.
        (Key, doc(r#"{"Efect": "Allow"}"#), "Statement[0] contains the unknown element \"Efect\"."),
        (Key, r#"{"Version": "2012-10-17", "Statement": {"Principal": "*", "Action": "kms:*", "Resource": "*"}}"#.into(),
            "Statement has no Effect element; it must be \"Allow\" or \"Deny\"."),
        (Key, doc(r#"{"Effect": "allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}"#),
            "Statement[0].Effect is \"allow\"; it must be \"Allow\" or \"Deny\"."),
        (Key, doc(r#"{"Effect": true, "Principal": "*", "Action": "kms:*", "Resource": "*"}"#),
            "Statement[0].Effect must be a string, not a boolean."),
        (Key, key_stmt(r#", "Sid": 1"#), "Statement[0].Sid must be a string, not a number."),
        (Identity, doc(r#"{"Sid": "has space", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#),
            "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*"),
        (Identity, doc(r#"{"Sid": "One", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}, {"Sid": "One", "Effect": "Deny", "Action": "kms:*", "Resource": "*"}"#),
            "Statement IDs (SID) in a single policy must be unique."),
        // Principals.
        (Key, doc(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#), "Policy contains a statement with no principal."),
        (Trust, doc(r#"{"Effect": "Allow", "Action": "sts:AssumeRole"}"#), "Policy contains a statement with no principal."),
        (Key, key_principal(r#"{"AWS": "arn:aws:iam::111122223333:group/admins"}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"AWS": "arn:aws:iam::111122223333:user/*"}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"AWS": "arn:aws:iam::111122223333:user/carol"}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"AWS": ["arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:role/nope"]}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"AWS": "arn:aws:sts::111122223333:assumed-role/other/s"}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#""arn:aws:iam::111122223333:root""#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"AWS": []}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"AWS": 111122223333}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"AWS": "11112222333"}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"Federated": "cognito-identity.amazonaws.com"}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{}"#), "Policy contains a statement with one or more invalid principals."),
        (Key, key_principal(r#"{"Service": ""}"#), "Policy contains a statement with one or more invalid principals."),
        (Identity, doc(r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}"#), "Policy document should not specify a principal."),
        (Session, doc(r#"{"Effect": "Deny", "NotPrincipal": "*", "Action": "kms:*", "Resource": "*"}"#), "Policy document should not specify a principal."),
        (Key, doc(r#"{"Effect": "Deny", "Principal": "*", "NotPrincipal": "*", "Action": "kms:*", "Resource": "*"}"#),
            "Statement[0] contains both Principal and NotPrincipal; a statement may have only one of them."),
        (Trust, doc(r#"{"Effect": "Deny", "NotPrincipal": {"AWS": "111122223333"}, "Action": "sts:AssumeRole"}"#),
            "Statement[0]: NotPrincipal is not supported in a role trust policy."),
        (Key, doc(r#"{"Effect": "Allow", "NotPrincipal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"}"#),
            "Statement[0]: NotPrincipal is not supported with \"Effect\": \"Allow\" in a key policy; use it only with \"Deny\"."),
        // Actions.
        (Key, doc(r#"{"Effect": "Allow", "Principal": "*", "Resource": "*"}"#), "Policy statement must contain actions."),
        (Identity, id_stmt(r#""Action": [], "Resource": "*""#), "Policy statement must contain actions."),
        (Identity, id_stmt(r#""Action": "kms:*", "NotAction": "kms:Decrypt", "Resource": "*""#),
            "Statement[0] contains both Action and NotAction; a statement may have only one of them."),
        (Key, doc(r#"{"Effect": "Allow", "Principal": "*", "Action": ["kms:Get*", "kms>Delete*"], "Resource": "*"}"#),
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        (Identity, id_stmt(r#""Action": "Decrypt", "Resource": "*""#), "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        (Identity, id_stmt(r#""Action": 5, "Resource": "*""#), "Statement[0].Action must be a string or an array of strings, not a number."),
        (Identity, id_stmt(r#""NotAction": ["kms:Encrypt", {}], "Resource": "*""#), "Statement[0].NotAction[1] must be a string, not an object."),
        // Resources.
        (Key, doc(r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": []}"#), "Policy statement must contain resources."),
        (Identity, id_stmt(r#""Action": "kms:*", "Resource": []"#), "Policy statement must contain resources."),
        (Identity, id_stmt(r#""Action": "kms:*", "Resource": "*", "NotResource": "*""#),
            "Statement[0] contains both Resource and NotResource; a statement may have only one of them."),
        (Key, doc(r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "arn:aws:kms:us-east-1:111122223333:key/k"}"#),
            "Statement[0].Resource is \"arn:aws:kms:us-east-1:111122223333:key/k\"; in a key policy the only valid resource is \"*\" (this KMS key)."),
        (Key, doc(r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "NotResource": "*"}"#),
            "Statement[0].NotResource is \"*\"; in a key policy the only valid resource is \"*\" (this KMS key)."),
        (Identity, id_stmt(r#""Action": "kms:*", "Resource": "vpc-123""#), "Resource vpc-123 must be in ARN format or \"*\"."),
        (Identity, id_stmt(r#""Action": "kms:*", "Resource": "arn:aws:kms:us-east-1""#), "Resource arn:aws:kms:us-east-1 must be in ARN format or \"*\"."),
        (Identity, id_stmt(r#""Action": "kms:*", "Resource": {"arn": "x"}"#), "Statement[0].Resource must be a string or an array of strings, not an object."),
        (Trust, doc(r#"{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "sts:AssumeRole", "Resource": "*"}"#),
            "Statement[0]: a role trust policy must not contain Resource or NotResource; the resource is the role itself."),
        // Conditions.
        (Key, key_condition(r#"{"StringEquals": {"aws:ResourceTag/Project": "Alpha"}}"#),
            "These condition keys are not permitted in a key policy: aws:ResourceTag, kms:ResourceTag, kms:ResourceAliases"),
        (Key, key_condition(r#"{"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/*"}}"#),
            "These condition keys are not permitted in a key policy: aws:ResourceTag, kms:ResourceTag, kms:ResourceAliases"),
        (Key, key_condition(r#"{"ForAllValues:StringEquals": {"kms:EncryptionContext:Dept": "IT"}}"#),
            "OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator with a single-valued condition key matches requests without the specified encryption context or with an unspecified encryption context. To fix, remove ForAllValues."),
        (Key, key_condition(r#"{"ForAllValues:StringLike": {"aws:RequestTag/Owner": "*"}}"#),
            "OverlyPermissiveCondition:RequestTag: Using the ForAllValues set operator with a single-valued condition key matches requests without the specified tag or with an unspecified tag. To fix, remove ForAllValues."),
        (Key, key_condition(r#"{"StringEqual": {"kms:CallerAccount": "111122223333"}}"#),
            "Statement[0].Condition: \"StringEqual\" is not a condition operator."),
        (Key, key_condition(r#"{"stringequals": {"kms:CallerAccount": "111122223333"}}"#),
            "Statement[0].Condition: \"stringequals\" is not a condition operator."),
        (Key, key_condition(r#"{"NullIfExists": {"kms:ViaService": "true"}}"#),
            "Statement[0].Condition: \"NullIfExists\" is not a condition operator."),
        (Key, key_condition(r#"{"ForAnyValue:Null": {"kms:ViaService": "true"}}"#),
            "Statement[0].Condition: \"ForAnyValue:Null\" is not a condition operator."),
        (Key, key_condition(r#"{"StringEquals": {"CallerAccount": "111122223333"}}"#),
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        (Key, key_condition(r#"{"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "ten"}}"#),
            "Statement[0].Condition.NumericLessThan[\"kms:ScheduleKeyDeletionPendingWindowInDays\"]: \"ten\" is not a number."),
        (Key, key_condition(r#"{"DateLessThan": {"aws:CurrentTime": ["2030-01-01", "soon"]}}"#),
            "Statement[0].Condition.DateLessThan[\"aws:CurrentTime\"]: \"soon\" is not a date (ISO 8601 or epoch seconds)."),
        (Key, key_condition(r#"{"Bool": {"aws:SecureTransport": "yes"}}"#),
            "Statement[0].Condition.Bool[\"aws:SecureTransport\"]: \"yes\" is not true or false."),
        (Key, key_condition(r#"{"Null": {"kms:ViaService": 1}}"#),
            "Statement[0].Condition.Null[\"kms:ViaService\"]: \"1\" is not true or false."),
        (Key, key_condition(r#"{"IpAddress": {"aws:SourceIp": "300.1.1.1/8"}}"#),
            "Statement[0].Condition.IpAddress[\"aws:SourceIp\"]: \"300.1.1.1/8\" is not an IPv4 or IPv6 address or CIDR block."),
        (Key, key_condition(r#"{"BinaryEquals": {"kms:Blob": "not base64!"}}"#),
            "Statement[0].Condition.BinaryEquals[\"kms:Blob\"]: \"not base64!\" is not base64-encoded bytes."),
        (Key, key_condition(r#"{"StringEquals": {"kms:CallerAccount": []}}"#),
            "Statement[0].Condition.StringEquals[\"kms:CallerAccount\"] has no values; give at least one."),
        (Key, key_condition(r#""StringEquals""#), "Statement[0].Condition must be an object of condition operators, not a string."),
        (Key, key_condition(r#"{"StringEquals": ["kms:CallerAccount"]}"#),
            "Statement[0].Condition.StringEquals must be an object of condition keys, not an array."),
        (Key, key_condition(r#"{"StringEquals": {"kms:CallerAccount": null}}"#),
            "Statement[0].Condition.StringEquals[\"kms:CallerAccount\"] must be a string, number or boolean, or an array of them, not null."),
        (Key, key_condition(r#"{"StringEquals": {"kms:CallerAccount": ["1", ["2"]]}}"#),
            "Statement[0].Condition.StringEquals[\"kms:CallerAccount\"][1] must be a string, number or boolean, or an array of them, not an array."),
    ]
}

#[test]
fn every_refusal_has_its_message() {
    let mut failures = Vec::new();
    let cases = refusals();
    for (kind, text, message) in &cases {
        match parse(*kind, text) {
            Ok(_) => failures.push(format!("accepted as {kind:?}: {text}")),
            Err(e) if e.to_string() != *message => {
                failures.push(format!("{kind:?} {text}\n  got:  {e}\n  want: {message}"))
            }
            Err(e) => assert!(!e.is_size_limit()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} refusals checked", cases.len());
}

#[test]
fn typed_errors_carry_the_offender() {
    let e = parse(
        PolicyKind::Key,
        &doc(r#"{"Effect": "Allow", "Principal": {"AWS": ["111122223333", "arn:aws:iam::111122223333:group/g"]}, "Action": "kms:*", "Resource": "*"}"#),
    )
    .unwrap_err();
    assert_eq!(
        e,
        PolicyError::InvalidPrincipals {
            principal: "arn:aws:iam::111122223333:group/g".into()
        }
    );
    let e = parse(
        PolicyKind::Key,
        &doc(&format!(r#"{OK_KEY}, {{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {{"StringLike": {{"kms:ResourceTag/x": "y"}}}}}}"#)),
    )
    .unwrap_err();
    assert_eq!(
        e,
        PolicyError::ConditionKeyNotPermittedInKeyPolicy {
            key: "kms:ResourceTag/x".into()
        }
    );
}

#[test]
fn size_limit() {
    let exact = " ".repeat(MAX_KEY_POLICY_BYTES);
    assert!(check_key_policy_size(&exact).is_ok());
    let over = " ".repeat(MAX_KEY_POLICY_BYTES + 1);
    let e = check_key_policy_size(&over).unwrap_err();
    assert!(e.is_size_limit());
    assert_eq!(
        e.to_string(),
        "The policy document is 32769 bytes; the maximum is 32768 bytes."
    );
    assert_eq!(MAX_KEY_POLICY_BYTES, 32_768);
}

#[test]
fn accepted_documents() {
    let accepted = [
        // Key policies: Sid with spaces and punctuation, duplicate Sids, Resource ["*"], a single
        // statement object, every principal form, NotPrincipal with Deny, 2008-10-17.
        (
            PolicyKind::Key,
            doc(
                r#"{"Sid": "Allow use: of the key (1)", "Effect": "Allow", "Principal": {"AWS": ["*", "111122223333", "arn:aws:iam::444455556666:root", "arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:role/app", "arn:aws:sts::111122223333:assumed-role/app/s-1"], "Service": ["ec2.amazonaws.com"]}, "Action": ["kms:Encrypt", "KMS:decrypt", "*"], "Resource": ["*"]}, {"Sid": "Allow use: of the key (1)", "Effect": "Deny", "NotPrincipal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"}"#,
            ),
        ),
        (
            PolicyKind::Key,
            format!(r#"{{"Version": "2008-10-17", "Id": "x", "Statement": {OK_KEY}}}"#),
        ),
        (
            PolicyKind::Key,
            doc(
                r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333", "kms:EncryptionContext:user": "${aws:username}"}, "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["a"]}, "ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt"]}, "Null": {"kms:BypassPolicyLockoutSafetyCheck": true}, "NumericLessThanEquals": {"kms:ValidTo": "1546257599.0"}, "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}, "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}, "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}, "BoolIfExists": {"aws:SecureTransport": true}, "BinaryEquals": {"kms:Blob": "aGVsbG8="}}}"#,
            ),
        ),
        // A key policy statement without Resource: accepted, and it applies to nothing
        // (tests/sdk_authorization.rs::policy_documents_are_validated shows it grants nothing).
        (
            PolicyKind::Key,
            doc(r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:*"}"#),
        ),
        // Identity policies: no Version, ResourceTag keys and ForAllValues on the encryption
        // context (IAM accepts them), NotResource, resource ARN patterns.
        (
            PolicyKind::Identity,
            format!(r#"{{"Statement": [{OK_IDENTITY}]}}"#),
        ),
        (
            PolicyKind::Identity,
            doc(
                r#"{"Effect": "Allow", "NotAction": "kms:Schedule*", "NotResource": ["arn:aws:kms:*:111122223333:key/a", "arn:aws:kms:*:*:alias/*"], "Condition": {"StringEquals": {"aws:ResourceTag/Project": "Alpha"}, "ForAllValues:StringEquals": {"kms:EncryptionContext:k": "v"}}}"#,
            ),
        ),
        // Trust policies: AWS, Service and Federated principals, sts actions, no Resource.
        (
            PolicyKind::Trust,
            doc(
                r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root", "Service": "ec2.amazonaws.com", "Federated": "cognito-identity.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"], "Condition": {"StringEquals": {"sts:ExternalId": "x"}}}"#,
            ),
        ),
        (PolicyKind::Session, doc(OK_IDENTITY)),
    ];
    for (kind, text) in accepted {
        let p = parse(kind, &text).unwrap_or_else(|e| panic!("{kind:?} refused: {e}\n{text}"));
        assert_eq!(p.text(), text);
        assert_eq!(p.kind(), kind);
    }
    let p = parse(
        PolicyKind::Identity,
        &format!(r#"{{"Statement": {OK_IDENTITY}}}"#),
    )
    .unwrap();
    assert_eq!(p.version(), PolicyVersion::V2008_10_17);
}

#[test]
fn the_directory_is_asked_about_iam_principals_only() {
    let asked = RefCell::new(Vec::new());
    let record = |arn: &str| {
        asked.borrow_mut().push(arn.to_owned());
        true
    };
    Policy::parse(
        &doc(r#"{"Effect": "Allow", "Principal": {"AWS": ["*", "111122223333", "arn:aws:iam::444455556666:root", "arn:aws:iam::111122223333:user/a/b/alice", "arn:aws:iam::111122223333:role/app", "arn:aws:sts::111122223333:assumed-role/app/s"], "Service": "ec2.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}"#),
        PolicyKind::Key,
        &record,
    )
    .unwrap();
    assert_eq!(
        *asked.borrow(),
        vec![
            "arn:aws:iam::111122223333:user/a/b/alice",
            "arn:aws:iam::111122223333:role/app",
            "arn:aws:sts::111122223333:assumed-role/app/s",
        ]
    );
}

#[test]
fn references_condition_key_finds_keys_by_prefix_case_insensitively() {
    let p = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"kms:*","Resource":"*",
             "Condition":{"StringEquals":{"AWS:ResourceTag/Team":"blue","kms:EncryptionContext:app":"x"}}}]}"#,
        PolicyKind::Identity,
        &kms_policy::AnyPrincipalExists,
    )
    .unwrap();
    assert!(p.references_condition_key("aws:resourcetag/"));
    assert!(p.references_condition_key("kms:EncryptionContext:"));
    assert!(!p.references_condition_key("kms:ResourceAliases"));
    let plain = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}"#,
        PolicyKind::Identity,
        &kms_policy::AnyPrincipalExists,
    )
    .unwrap();
    assert!(!plain.references_condition_key("aws:ResourceTag/"));
}
