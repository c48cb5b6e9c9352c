//! Every condition operator family, with `IfExists`, `Null`, negated operators over several
//! values (NOR), absent keys, the set qualifiers on empty and absent keys, and policy variables.
//! Each case: a `Condition` block, the request's keys, whether the statement applies.

use kms_policy::{ContextValue, PolicyKind, RequestContext};

use crate::common::{self, context, Ctx};

const USER: &str = "arn:aws:iam::111122223333:user/alice";
const SESSION: &str = "arn:aws:iam::111122223333:role/path/app#s1";

/// Whether an identity-policy statement with `condition` applies to a request with `keys`.
fn applies_as(version: &str, caller: &str, condition: &str, context: &RequestContext) -> bool {
    let text = format!(
        r#"{{"Version": "{version}", "Statement": {{"Effect": "Allow", "Action": "kms:Decrypt",
            "Resource": "*", "Condition": {condition}}}}}"#
    );
    let _ = caller;
    common::parse(PolicyKind::Identity, &text)
        .evaluate(context)
        .allows()
}

fn applies(condition: &str, keys: &[Ctx]) -> bool {
    applies_as(
        "2012-10-17",
        USER,
        condition,
        &context(USER, "kms:Decrypt", "*", keys),
    )
}

/// Runs a table of (condition, keys, expected) and reports every mismatch at once.
fn table(cases: &[(&str, &[Ctx], bool)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter(|(c, k, want)| applies(c, k) != *want)
        .map(|(c, k, want)| format!("expected {want} for {c} with {k:?}"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn string_operators() {
    const EC_A: &[Ctx] = &[Ctx::Ec(&[("k", "a")])];
    const EC_C: &[Ctx] = &[Ctx::Ec(&[("k", "c")])];
    const EC_UPPER: &[Ctx] = &[Ctx::Ec(&[("k", "ExampleApp")])];
    const NONE: &[Ctx] = &[];
    table(&[
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": "a"}}"#,
            EC_A,
            true,
        ),
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": "A"}}"#,
            EC_A,
            false,
        ),
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": ["b", "a"]}}"#,
            EC_A,
            true,
        ),
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": ["b", "d"]}}"#,
            EC_C,
            false,
        ),
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": "a"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"StringEqualsIfExists": {"kms:EncryptionContext:k": "a"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"StringEqualsIfExists": {"kms:EncryptionContext:k": "a"}}"#,
            EC_C,
            false,
        ),
        // Negated: NOR over the values; true when absent.
        (
            r#"{"StringNotEquals": {"kms:EncryptionContext:k": ["a", "b"]}}"#,
            EC_A,
            false,
        ),
        (
            r#"{"StringNotEquals": {"kms:EncryptionContext:k": ["a", "b"]}}"#,
            EC_C,
            true,
        ),
        (
            r#"{"StringNotEquals": {"kms:EncryptionContext:k": "a"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"StringNotEqualsIfExists": {"kms:EncryptionContext:k": "a"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"StringNotEqualsIfExists": {"kms:EncryptionContext:k": "a"}}"#,
            EC_A,
            false,
        ),
        (
            r#"{"StringEqualsIgnoreCase": {"kms:EncryptionContext:k": "EXAMPLEAPP"}}"#,
            EC_UPPER,
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase": {"kms:EncryptionContext:k": "exampleapq"}}"#,
            EC_UPPER,
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:k": ["x", "exampleAPP"]}}"#,
            EC_UPPER,
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:k": "x"}}"#,
            EC_UPPER,
            true,
        ),
        (
            r#"{"StringLike": {"kms:EncryptionContext:k": "Ex*A?p"}}"#,
            EC_UPPER,
            true,
        ),
        (
            r#"{"StringLike": {"kms:EncryptionContext:k": "ex*"}}"#,
            EC_UPPER,
            false,
        ),
        (
            r#"{"StringLike": {"kms:EncryptionContext:k": ["x*", "*App"]}}"#,
            EC_UPPER,
            true,
        ),
        (
            r#"{"StringLike": {"kms:EncryptionContext:k": "*"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"StringLikeIfExists": {"kms:EncryptionContext:k": "x*"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"StringNotLike": {"kms:EncryptionContext:k": ["x*", "*App"]}}"#,
            EC_UPPER,
            false,
        ),
        (
            r#"{"StringNotLike": {"kms:EncryptionContext:k": ["x*", "y*"]}}"#,
            EC_UPPER,
            true,
        ),
        (
            r#"{"StringNotLike": {"kms:EncryptionContext:k": "*"}}"#,
            NONE,
            true,
        ),
        // Keys under one operator AND; operators AND.
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": "a", "kms:EncryptionContext:j": "b"}}"#,
            &[Ctx::Ec(&[("k", "a"), ("j", "b")])],
            true,
        ),
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": "a", "kms:EncryptionContext:j": "b"}}"#,
            EC_A,
            false,
        ),
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": "a"}, "StringNotEquals": {"kms:EncryptionContext:j": "b"}}"#,
            &[Ctx::Ec(&[("k", "a"), ("j", "b")])],
            false,
        ),
        (
            r#"{"StringEquals": {"kms:EncryptionContext:k": "a"}, "StringNotEquals": {"kms:EncryptionContext:j": "b"}}"#,
            EC_A,
            true,
        ),
        // Key names are case-insensitive; a number or boolean policy value is its text.
        (
            r#"{"StringEquals": {"KMS:ENCRYPTIONCONTEXT:K": "a"}}"#,
            EC_A,
            true,
        ),
        (
            r#"{"StringEquals": {"kms:ViaService": 10}}"#,
            &[Ctx::S("kms:ViaService", "10")],
            true,
        ),
        (
            r#"{"StringEquals": {"aws:SecureTransport": "true"}}"#,
            &[Ctx::B("aws:SecureTransport", true)],
            true,
        ),
        (
            r#"{"StringEquals": {"kms:X": "7"}}"#,
            &[Ctx::N("kms:X", 7.0)],
            true,
        ),
        // Without a value an unqualified operator on a multi-valued key holds if any value does.
        (
            r#"{"StringEquals": {"aws:TagKeys": "b"}}"#,
            &[Ctx::M("aws:TagKeys", &["a", "b"])],
            true,
        ),
    ]);
}

#[test]
fn numeric_operators() {
    const FIVE: &[Ctx] = &[Ctx::N("kms:N", 5.0)];
    const TEXT_FIVE: &[Ctx] = &[Ctx::S("kms:N", "5")];
    const GARBAGE: &[Ctx] = &[Ctx::S("kms:N", "five")];
    const NONE: &[Ctx] = &[];
    table(&[
        (r#"{"NumericEquals": {"kms:N": "5"}}"#, FIVE, true),
        (r#"{"NumericEquals": {"kms:N": 5.0}}"#, TEXT_FIVE, true),
        (r#"{"NumericEquals": {"kms:N": ["4", "6"]}}"#, FIVE, false),
        (r#"{"NumericEquals": {"kms:N": "5"}}"#, NONE, false),
        (r#"{"NumericEquals": {"kms:N": "5"}}"#, GARBAGE, false),
        (r#"{"NumericEqualsIfExists": {"kms:N": "5"}}"#, NONE, true),
        (r#"{"NumericNotEquals": {"kms:N": ["4", "6"]}}"#, FIVE, true),
        (
            r#"{"NumericNotEquals": {"kms:N": ["4", "5"]}}"#,
            FIVE,
            false,
        ),
        (r#"{"NumericNotEquals": {"kms:N": "5"}}"#, NONE, true),
        (r#"{"NumericLessThan": {"kms:N": "5"}}"#, FIVE, false),
        (r#"{"NumericLessThan": {"kms:N": "5.5"}}"#, FIVE, true),
        (r#"{"NumericLessThan": {"kms:N": ["1", "6"]}}"#, FIVE, true),
        (r#"{"NumericLessThanEquals": {"kms:N": "5"}}"#, FIVE, true),
        (
            r#"{"NumericLessThanEquals": {"kms:N": "4.999"}}"#,
            FIVE,
            false,
        ),
        (r#"{"NumericGreaterThan": {"kms:N": "5"}}"#, FIVE, false),
        (r#"{"NumericGreaterThan": {"kms:N": "-5"}}"#, FIVE, true),
        (
            r#"{"NumericGreaterThanEquals": {"kms:N": "5"}}"#,
            FIVE,
            true,
        ),
        (
            r#"{"NumericGreaterThanEquals": {"kms:N": "6"}}"#,
            FIVE,
            false,
        ),
        (
            r#"{"NumericGreaterThanEqualsIfExists": {"kms:N": "6"}}"#,
            NONE,
            true,
        ),
        (r#"{"NumericLessThan": {"kms:N": "6"}}"#, NONE, false),
    ]);
}

#[test]
fn date_operators() {
    // 2019-01-01T00:00:00Z = 1546300800.
    const NEW_YEAR: &[Ctx] = &[Ctx::D("aws:CurrentTime", 1_546_300_800)];
    const AS_TEXT: &[Ctx] = &[Ctx::S("aws:CurrentTime", "2019-01-01T00:00:00Z")];
    const NONE: &[Ctx] = &[];
    table(&[
        (
            r#"{"DateEquals": {"aws:CurrentTime": "2019-01-01T00:00:00Z"}}"#,
            NEW_YEAR,
            true,
        ),
        (
            r#"{"DateEquals": {"aws:CurrentTime": "2019-01-01"}}"#,
            NEW_YEAR,
            true,
        ),
        (
            r#"{"DateEquals": {"aws:CurrentTime": "1546300800"}}"#,
            NEW_YEAR,
            true,
        ),
        (
            r#"{"DateEquals": {"aws:CurrentTime": 1546300800}}"#,
            AS_TEXT,
            true,
        ),
        (
            r#"{"DateEquals": {"aws:CurrentTime": "2019-01-01T01:00:00+01:00"}}"#,
            NEW_YEAR,
            true,
        ),
        (
            r#"{"DateNotEquals": {"aws:CurrentTime": ["2018-01-01", "2019-01-01"]}}"#,
            NEW_YEAR,
            false,
        ),
        (
            r#"{"DateNotEquals": {"aws:CurrentTime": ["2018-01-01", "2020-01-01"]}}"#,
            NEW_YEAR,
            true,
        ),
        (
            r#"{"DateNotEquals": {"aws:CurrentTime": "2018-01-01"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"DateLessThan": {"aws:CurrentTime": "2019-01-01T00:00:01Z"}}"#,
            NEW_YEAR,
            true,
        ),
        (
            r#"{"DateLessThan": {"aws:CurrentTime": "2019-01-01T00:00:00Z"}}"#,
            NEW_YEAR,
            false,
        ),
        (
            r#"{"DateLessThanEquals": {"aws:CurrentTime": "2019-01-01T00:00:00Z"}}"#,
            AS_TEXT,
            true,
        ),
        (
            r#"{"DateGreaterThan": {"aws:CurrentTime": "2018-12-31T23:59:59Z"}}"#,
            NEW_YEAR,
            true,
        ),
        (
            r#"{"DateGreaterThan": {"aws:CurrentTime": "2019-01-01T00:00:00Z"}}"#,
            NEW_YEAR,
            false,
        ),
        (
            r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2019-01-01T00:00:00.000Z"}}"#,
            NEW_YEAR,
            true,
        ),
        (
            r#"{"DateGreaterThan": {"aws:CurrentTime": "2018-12-31"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"DateGreaterThanIfExists": {"aws:CurrentTime": "2030-01-01"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}"#,
            &[Ctx::S("aws:CurrentTime", "not a date")],
            false,
        ),
        (
            r#"{"DateLessThan": {"aws:EpochTime": "2030-01-01"}}"#,
            &[Ctx::N("aws:EpochTime", 1_546_300_800.0)],
            true,
        ),
    ]);
}

/// AWS's session revocation condition on `aws:TokenIssueTime`, which only temporary
/// credentials carry: older sessions match, newer ones and long-term credentials do not
/// (unless `...IfExists`); `Null` tells the two kinds of credentials apart.
#[test]
fn token_issue_time_revocation_condition() {
    // 2019-01-01T00:00:00Z = 1546300800.
    const OLDER: &[Ctx] = &[Ctx::D("aws:TokenIssueTime", 1_546_300_799)];
    const NEWER: &[Ctx] = &[Ctx::D("aws:TokenIssueTime", 1_546_300_800)];
    const LONG_TERM: &[Ctx] = &[];
    let revoke = r#"{"DateLessThan": {"aws:TokenIssueTime": "2019-01-01T00:00:00Z"}}"#;
    let revoke_all = r#"{"DateLessThanIfExists": {"aws:TokenIssueTime": "2019-01-01T00:00:00Z"}}"#;
    let long_term = r#"{"Null": {"aws:TokenIssueTime": "true"}}"#;
    table(&[
        (revoke, OLDER, true),
        (revoke, NEWER, false),
        (revoke, LONG_TERM, false),
        (revoke_all, NEWER, false),
        (revoke_all, LONG_TERM, true),
        (long_term, OLDER, false),
        (long_term, LONG_TERM, true),
    ]);
}

#[test]
fn bool_binary_ip_operators() {
    const TLS: &[Ctx] = &[Ctx::B("aws:SecureTransport", true)];
    const PLAIN: &[Ctx] = &[Ctx::B("aws:SecureTransport", false)];
    const NONE: &[Ctx] = &[];
    const V4: &[Ctx] = &[Ctx::Ip("aws:SourceIp", "203.0.113.9")];
    const V6: &[Ctx] = &[Ctx::Ip("aws:SourceIp", "2001:db8::7")];
    table(&[
        (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, TLS, true),
        (r#"{"Bool": {"aws:SecureTransport": true}}"#, TLS, true),
        (r#"{"Bool": {"aws:SecureTransport": "TRUE"}}"#, TLS, true),
        (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, PLAIN, false),
        (r#"{"Bool": {"aws:SecureTransport": "false"}}"#, PLAIN, true),
        (r#"{"Bool": {"aws:SecureTransport": "false"}}"#, NONE, false),
        (
            r#"{"BoolIfExists": {"aws:SecureTransport": "false"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"BoolIfExists": {"aws:SecureTransport": "false"}}"#,
            TLS,
            false,
        ),
        (
            r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
            &[Ctx::S("aws:SecureTransport", "true")],
            true,
        ),
        (
            r#"{"BinaryEquals": {"kms:Blob": "aGVsbG8="}}"#,
            &[Ctx::S("kms:Blob", "aGVsbG8=")],
            true,
        ),
        (
            r#"{"BinaryEquals": {"kms:Blob": "aGVsbG8="}}"#,
            &[Ctx::S("kms:Blob", "aGVsbG9=")],
            false,
        ),
        (r#"{"BinaryEquals": {"kms:Blob": "aGVsbG8="}}"#, NONE, false),
        (
            r#"{"BinaryEqualsIfExists": {"kms:Blob": "aGVsbG8="}}"#,
            NONE,
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#,
            V4,
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "203.0.113.9"]}}"#,
            V4,
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "203.0.112.0/24"}}"#,
            V4,
            false,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#,
            V6,
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#,
            V4,
            false,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "203.0.113.0/24"]}}"#,
            V4,
            false,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}"#,
            V4,
            true,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"NotIpAddressIfExists": {"aws:SourceIp": "203.0.113.0/24"}}"#,
            V4,
            false,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#,
            &[Ctx::S("aws:SourceIp", "203.0.113.77")],
            true,
        ),
    ]);
}

#[test]
fn arn_operators() {
    const NONE: &[Ctx] = &[];
    const SOURCE: &[Ctx] = &[Ctx::S("aws:SourceArn", "arn:aws:s3:::bucket/a:b")];
    table(&[
        (
            r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/ALICE"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/*"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:user/a?ice"]}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:user/a?ice"]}}"#,
            NONE,
            false,
        ),
        (
            r#"{"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/bob"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket/*"}}"#,
            SOURCE,
            true,
        ),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::*"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ArnLikeIfExists": {"aws:SourceArn": "arn:aws:s3:::other/*"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}}"#,
            &[Ctx::S("aws:SourceArn", "not-an-arn")],
            false,
        ),
        // A star matches within one field only.
        (
            r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:*:user/alice"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam:*:user/alice:*"}}"#,
            NONE,
            false,
        ),
        // Variables in ARN values (2012-10-17).
        (
            r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}"}}"#,
            NONE,
            true,
        ),
    ]);
    // Sessions: aws:PrincipalArn is the role ARN with its path.
    let session = context(SESSION, "kms:Decrypt", "*", &[]);
    assert!(applies_as(
        "2012-10-17",
        SESSION,
        r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/path/app"}}"#,
        &session
    ));
    assert!(!applies_as(
        "2012-10-17",
        SESSION,
        r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:sts::*"}}"#,
        &session
    ));
}

#[test]
fn null_operator() {
    const PRESENT: &[Ctx] = &[Ctx::S("kms:ViaService", "ec2.us-east-1.amazonaws.com")];
    const NONE: &[Ctx] = &[];
    table(&[
        (r#"{"Null": {"kms:ViaService": "true"}}"#, NONE, true),
        (r#"{"Null": {"kms:ViaService": true}}"#, PRESENT, false),
        (r#"{"Null": {"kms:ViaService": "false"}}"#, PRESENT, true),
        (r#"{"Null": {"kms:ViaService": false}}"#, NONE, false),
        (
            r#"{"Null": {"kms:ViaService": ["true", "false"]}}"#,
            NONE,
            true,
        ),
        (
            r#"{"Null": {"kms:ViaService": ["true", "false"]}}"#,
            PRESENT,
            true,
        ),
        (
            r#"{"Null": {"kms:EncryptionContext:Dept": "false"}}"#,
            &[Ctx::Ec(&[("dept", "x")])],
            true,
        ),
        (
            r#"{"Null": {"kms:EncryptionContext:Dept": "true"}}"#,
            &[Ctx::Ec(&[("other", "x")])],
            true,
        ),
        // An empty multi-valued key is absent.
        (
            r#"{"Null": {"aws:TagKeys": "true"}}"#,
            &[Ctx::M("aws:TagKeys", &[])],
            true,
        ),
        (
            r#"{"Null": {"aws:TagKeys": "false"}}"#,
            &[Ctx::M("aws:TagKeys", &["a"])],
            true,
        ),
    ]);
}

#[test]
fn set_qualifiers() {
    const AB: &[Ctx] = &[Ctx::M("aws:TagKeys", &["a", "b"])];
    const A: &[Ctx] = &[Ctx::M("aws:TagKeys", &["a"])];
    const EMPTY: &[Ctx] = &[Ctx::M("aws:TagKeys", &[])];
    const NONE: &[Ctx] = &[];
    table(&[
        (
            r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["b", "c"]}}"#,
            AB,
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["c", "d"]}}"#,
            AB,
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}}"#,
            EMPTY,
            false,
        ),
        (
            r#"{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "z"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "z"}}"#,
            AB,
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b", "c"]}}"#,
            AB,
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "c"]}}"#,
            AB,
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals": {"aws:TagKeys": "x"}}"#,
            NONE,
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals": {"aws:TagKeys": "x"}}"#,
            EMPTY,
            true,
        ),
        (
            r#"{"ForAllValues:StringLike": {"aws:TagKeys": "?"}}"#,
            AB,
            true,
        ),
        // Negated operators under a qualifier apply to each request value.
        (
            r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["c", "d"]}}"#,
            AB,
            true,
        ),
        (
            r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["b", "d"]}}"#,
            AB,
            false,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}}"#,
            AB,
            true,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}}"#,
            A,
            false,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}}"#,
            NONE,
            false,
        ),
        (
            r#"{"ForAllValues:StringNotLike": {"aws:TagKeys": "z*"}}"#,
            NONE,
            true,
        ),
        // Qualifiers on a single-valued key see its one value.
        (
            r#"{"ForAnyValue:StringEquals": {"kms:ViaService": "x"}}"#,
            &[Ctx::S("kms:ViaService", "x")],
            true,
        ),
        // Qualifiers with other families.
        (
            r#"{"ForAnyValue:NumericGreaterThan": {"kms:N": "5"}}"#,
            &[Ctx::N("kms:N", 6.0)],
            true,
        ),
        (
            r#"{"ForAllValues:IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            NONE,
            true,
        ),
    ]);
}

#[test]
fn policy_variables() {
    let ec = |v: &'static str| -> &'static [Ctx] {
        Box::leak(Box::new([Ctx::Ec(Box::leak(Box::new([("user", v)])))]))
    };
    let user_ctx = |v| context(USER, "kms:Decrypt", "*", ec(v));
    let cond = r#"{"StringEquals": {"kms:EncryptionContext:user": "${aws:username}"}}"#;
    assert!(applies_as("2012-10-17", USER, cond, &user_ctx("alice")));
    assert!(!applies_as("2012-10-17", USER, cond, &user_ctx("bob")));
    // 2008-10-17: no variables, the text is literal.
    assert!(!applies_as("2008-10-17", USER, cond, &user_ctx("alice")));
    assert!(applies_as(
        "2008-10-17",
        USER,
        cond,
        &user_ctx("${aws:username}")
    ));
    // A variable without a value matches nothing (positive) and excludes nothing (negated).
    let session = |v| context(SESSION, "kms:Decrypt", "*", ec(v));
    assert!(!applies_as("2012-10-17", SESSION, cond, &session("alice")));
    let negated = r#"{"StringNotEquals": {"kms:EncryptionContext:user": "${aws:username}"}}"#;
    assert!(applies_as(
        "2012-10-17",
        SESSION,
        negated,
        &session("alice")
    ));
    // Defaults.
    let with_default =
        r#"{"StringEquals": {"kms:EncryptionContext:user": "${aws:username, 'nobody'}"}}"#;
    assert!(applies_as(
        "2012-10-17",
        SESSION,
        with_default,
        &session("nobody")
    ));
    // Escapes: ${*} is a literal star even in StringLike.
    let star = r#"{"StringLike": {"kms:EncryptionContext:user": "a${*}"}}"#;
    assert!(applies_as("2012-10-17", USER, star, &user_ctx("a*")));
    assert!(!applies_as("2012-10-17", USER, star, &user_ctx("ab")));
    let like_var = r#"{"StringLike": {"kms:EncryptionContext:user": "${aws:username}-*"}}"#;
    assert!(applies_as(
        "2012-10-17",
        USER,
        like_var,
        &user_ctx("alice-42")
    ));
    assert!(!applies_as(
        "2012-10-17",
        USER,
        like_var,
        &user_ctx("bob-42")
    ));
    let ignore_case =
        r#"{"StringEqualsIgnoreCase": {"kms:EncryptionContext:user": "${aws:username}"}}"#;
    assert!(applies_as(
        "2012-10-17",
        USER,
        ignore_case,
        &user_ctx("ALICE")
    ));
    // A substituted value is literal: a username-like value with a star is not a pattern.
    let mut starry = context(USER, "kms:Decrypt", "*", ec("anything"));
    starry.set("aws:username", "*");
    assert!(!applies_as("2012-10-17", USER, like_var, &starry));

    // Key policies expand variables only in kms:EncryptionContext:* values.
    let key_doc = |condition: &str| {
        format!(
            r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", "Principal": "*",
                "Action": "kms:Decrypt", "Resource": "*", "Condition": {condition}}}}}"#
        )
    };
    let alice_key = context(USER, "kms:Decrypt", common::KEY, ec("alice"));
    let expanded = common::parse(PolicyKind::Key, &key_doc(cond));
    assert!(expanded.evaluate(&alice_key).allows());
    let literal = common::parse(
        PolicyKind::Key,
        &key_doc(r#"{"StringEquals": {"aws:PrincipalAccount": "${aws:PrincipalAccount}"}}"#),
    );
    assert!(!literal.evaluate(&alice_key).allows());
}

#[test]
fn context_values_are_typed_or_parsed() {
    let mut c = context(USER, "kms:Decrypt", "*", &[]);
    c.set(
        "aws:SourceIp",
        ContextValue::Ip("10.1.2.3".parse().unwrap()),
    );
    c.set("kms:Blob", ContextValue::Binary(b"hello".to_vec()));
    assert!(applies_as(
        "2012-10-17",
        USER,
        r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}, "BinaryEquals": {"kms:Blob": "aGVsbG8"}}"#,
        &c
    ));
    // Binary values have no text: string operators never match them.
    assert!(!applies_as(
        "2012-10-17",
        USER,
        r#"{"StringLike": {"kms:Blob": "*"}}"#,
        &c
    ));
}
