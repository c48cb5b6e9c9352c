//! The `Condition` element: every operator of the IAM grammar, the `IfExists` suffix, the
//! `ForAnyValue:`/`ForAllValues:` qualifiers, compiled once and evaluated per request.
//!
//! Semantics (reference §1.4): operators in a block are ANDed, keys under an operator are ANDed,
//! values of one key are ORed, and for a negated operator (`StringNotEquals`, `ArnNotLike`,
//! `NotIpAddress`, `NumericNotEquals`, `DateNotEquals`) the values combine as NOR. A key absent
//! from the request makes a positive operator false and a negated one true; `…IfExists` makes
//! any operator true on an absent key; `Null` tests presence. `ForAnyValue` is false on an
//! absent or empty key, `ForAllValues` true.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::arn::ArnPattern;
use crate::context::{ContextValue, KeyRef, RequestContext};
use crate::glob::{eq_folded, eq_ignore_case, fold, wildcard_match, Glob};
use crate::scalar::{base64_decode, parse_bool, parse_date, parse_number, Cidr};
use crate::variables::{self, tokens_to_text, Part, Template};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrMode {
    Exact,
    IgnoreCase,
    Like,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, request: &T, policy: &T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    String(StrMode),
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

struct OperatorSpec {
    name: &'static str,
    family: Family,
    negated: bool,
}

const fn op(name: &'static str, family: Family, negated: bool) -> OperatorSpec {
    OperatorSpec {
        name,
        family,
        negated,
    }
}

/// Every base operator (without qualifier or `IfExists`).
const OPERATORS: [OperatorSpec; 27] = [
    op("StringEquals", Family::String(StrMode::Exact), false),
    op("StringNotEquals", Family::String(StrMode::Exact), true),
    op(
        "StringEqualsIgnoreCase",
        Family::String(StrMode::IgnoreCase),
        false,
    ),
    op(
        "StringNotEqualsIgnoreCase",
        Family::String(StrMode::IgnoreCase),
        true,
    ),
    op("StringLike", Family::String(StrMode::Like), false),
    op("StringNotLike", Family::String(StrMode::Like), true),
    op("NumericEquals", Family::Numeric(Cmp::Eq), false),
    op("NumericNotEquals", Family::Numeric(Cmp::Eq), true),
    op("NumericLessThan", Family::Numeric(Cmp::Lt), false),
    op("NumericLessThanEquals", Family::Numeric(Cmp::Le), false),
    op("NumericGreaterThan", Family::Numeric(Cmp::Gt), false),
    op("NumericGreaterThanEquals", Family::Numeric(Cmp::Ge), false),
    op("DateEquals", Family::Date(Cmp::Eq), false),
    op("DateNotEquals", Family::Date(Cmp::Eq), true),
    op("DateLessThan", Family::Date(Cmp::Lt), false),
    op("DateLessThanEquals", Family::Date(Cmp::Le), false),
    op("DateGreaterThan", Family::Date(Cmp::Gt), false),
    op("DateGreaterThanEquals", Family::Date(Cmp::Ge), false),
    op("Bool", Family::Bool, false),
    op("BinaryEquals", Family::Binary, false),
    op("IpAddress", Family::Ip, false),
    op("NotIpAddress", Family::Ip, true),
    op("ArnEquals", Family::Arn, false),
    op("ArnLike", Family::Arn, false),
    op("ArnNotEquals", Family::Arn, true),
    op("ArnNotLike", Family::Arn, true),
    op("Null", Family::Null, false),
];

/// The set qualifier of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    /// No qualifier: the key is single-valued (if a request gives it several values, the
    /// operator holds when it holds for any one of them).
    Single,
    /// `ForAnyValue:` — some request value satisfies the operator; false when absent or empty.
    ForAnyValue,
    /// `ForAllValues:` — every request value satisfies the operator; true when absent or empty.
    ForAllValues,
}

/// A parsed operator name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    qualifier: Qualifier,
    family: Family,
    negated: bool,
    if_exists: bool,
}

impl Operator {
    /// Parses `[ForAnyValue:|ForAllValues:]<Operator>[IfExists]`; names are case-sensitive.
    /// `Null` takes neither a qualifier nor `IfExists`.
    pub(crate) fn parse(name: &str) -> Option<Operator> {
        let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Qualifier::ForAnyValue, rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Qualifier::ForAllValues, rest)
        } else {
            (Qualifier::Single, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let spec = OPERATORS.iter().find(|s| s.name == base)?;
        if spec.family == Family::Null && (if_exists || qualifier != Qualifier::Single) {
            return None;
        }
        Some(Operator {
            qualifier,
            family: spec.family,
            negated: spec.negated,
            if_exists,
        })
    }

    pub(crate) fn qualifier(&self) -> Qualifier {
        self.qualifier
    }

    /// Whether values of this operator may hold policy variables (string and ARN operators).
    pub(crate) fn takes_variables(&self) -> bool {
        matches!(self.family, Family::String(_) | Family::Arn)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum StrValue {
    Exact(Box<str>),
    Folded(Box<str>),
    Like(Glob),
    Dynamic(Box<[Part]>),
}

#[derive(Debug, Clone, PartialEq)]
enum ArnValue {
    Static(ArnPattern),
    Dynamic(Box<[Part]>),
}

#[derive(Debug, Clone, PartialEq)]
enum Values {
    Str(Box<[StrValue]>),
    Num(Box<[f64]>),
    Date(Box<[DateTime<Utc>]>),
    Bool(Box<[bool]>),
    Binary(Box<[Box<[u8]>]>),
    Ip(Box<[Cidr]>),
    Arn(Box<[ArnValue]>),
}

/// A policy value that the operator cannot use; carries what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadValue {
    pub value: String,
    pub expected: &'static str,
}

/// One compiled `operator: { key: values }` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    operator: Operator,
    key: KeyRef,
    values: Values,
}

fn all<T>(
    raw: &[String],
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Box<[T]>, BadValue> {
    raw.iter()
        .map(|v| {
            parse(v).ok_or_else(|| BadValue {
                value: v.clone(),
                expected,
            })
        })
        .collect()
}

impl Condition {
    /// Whether this condition reads a key whose (case-folded) name starts with `folded_prefix`.
    pub(crate) fn key_starts_with(&self, folded_prefix: &str) -> bool {
        match &self.key {
            KeyRef::Plain(name) => name.starts_with(folded_prefix),
            KeyRef::EncryptionContext(_) => "kms:encryptioncontext:".starts_with(folded_prefix),
        }
    }

    /// Compiles one key's values. `variables`: the values may hold policy variables.
    pub(crate) fn compile(
        operator: Operator,
        key: &str,
        raw: &[String],
        variables: bool,
    ) -> Result<Condition, BadValue> {
        let values = match operator.family {
            Family::String(mode) => Values::Str(
                raw.iter()
                    .map(|v| compile_string(v, mode, variables))
                    .collect(),
            ),
            Family::Arn => Values::Arn(
                raw.iter()
                    .map(|v| match variables::compile(v, true, variables) {
                        Template::Static(tokens) => {
                            ArnValue::Static(ArnPattern::from_tokens(tokens))
                        }
                        Template::Dynamic(parts) => ArnValue::Dynamic(parts),
                    })
                    .collect(),
            ),
            Family::Numeric(_) => Values::Num(all(raw, "a number", parse_number)?),
            Family::Date(_) => {
                Values::Date(all(raw, "a date (ISO 8601 or epoch seconds)", parse_date)?)
            }
            Family::Bool | Family::Null => Values::Bool(all(raw, "true or false", parse_bool)?),
            Family::Binary => Values::Binary(all(raw, "base64-encoded bytes", |v| {
                base64_decode(v).map(Vec::into_boxed_slice)
            })?),
            Family::Ip => Values::Ip(all(
                raw,
                "an IPv4 or IPv6 address or CIDR block",
                Cidr::parse,
            )?),
        };
        Ok(Condition {
            operator,
            key: KeyRef::new(key),
            values,
        })
    }

    /// Whether the condition holds for the request.
    pub(crate) fn holds(&self, context: &RequestContext) -> bool {
        let found = context.lookup(&self.key);
        let op = &self.operator;
        if op.family == Family::Null {
            let absent = found.is_absent();
            return match &self.values {
                Values::Bool(wanted) => wanted.contains(&absent),
                _ => false,
            };
        }
        match op.qualifier {
            Qualifier::Single | Qualifier::ForAnyValue => {
                let mut present = false;
                for value in found.iter() {
                    present = true;
                    if self.satisfied_by(value, context) {
                        return true;
                    }
                }
                if present {
                    false
                } else if op.qualifier == Qualifier::Single {
                    op.if_exists || op.negated
                } else {
                    op.if_exists
                }
            }
            Qualifier::ForAllValues => found.iter().all(|v| self.satisfied_by(v, context)),
        }
    }

    /// The operator applied to one request value: some policy value matches (positive
    /// operators) or none does (negated operators).
    fn satisfied_by(&self, value: &ContextValue, context: &RequestContext) -> bool {
        self.matches_some(value, context) != self.operator.negated
    }

    fn matches_some(&self, value: &ContextValue, context: &RequestContext) -> bool {
        match (&self.values, self.operator.family) {
            (Values::Str(patterns), Family::String(mode)) => value.as_text().is_some_and(|text| {
                patterns
                    .iter()
                    .any(|p| string_matches(p, mode, &text, context))
            }),
            (Values::Arn(patterns), _) => value
                .as_text()
                .is_some_and(|text| patterns.iter().any(|p| arn_matches(p, &text, context))),
            (Values::Num(numbers), Family::Numeric(cmp)) => value
                .as_number()
                .is_some_and(|n| numbers.iter().any(|p| cmp.holds(&n, p))),
            (Values::Date(dates), Family::Date(cmp)) => value
                .as_date()
                .is_some_and(|d| dates.iter().any(|p| cmp.holds(&d, p))),
            (Values::Bool(bools), _) => value.as_bool().is_some_and(|b| bools.contains(&b)),
            (Values::Binary(blobs), _) => value
                .as_bytes()
                .is_some_and(|bytes| blobs.iter().any(|b| **b == *bytes)),
            (Values::Ip(blocks), _) => value
                .as_ip()
                .is_some_and(|ip: IpAddr| blocks.iter().any(|c| c.contains(ip))),
            _ => false,
        }
    }
}

fn compile_string(value: &str, mode: StrMode, variables: bool) -> StrValue {
    match variables::compile(value, mode == StrMode::Like, variables) {
        Template::Dynamic(parts) => StrValue::Dynamic(parts),
        Template::Static(tokens) => match mode {
            StrMode::Like => StrValue::Like(Glob::from_tokens(tokens)),
            StrMode::Exact => StrValue::Exact(tokens_to_text(&tokens).into()),
            StrMode::IgnoreCase => StrValue::Folded(fold(&tokens_to_text(&tokens)).into()),
        },
    }
}

fn string_matches(pattern: &StrValue, mode: StrMode, text: &str, context: &RequestContext) -> bool {
    match pattern {
        StrValue::Exact(s) => **s == *text,
        StrValue::Folded(s) => eq_folded(text, s),
        StrValue::Like(glob) => glob.matches(text),
        StrValue::Dynamic(parts) => {
            let Some(tokens) = variables::resolve(parts, context) else {
                return false;
            };
            match mode {
                StrMode::Like => wildcard_match(&tokens, text),
                StrMode::Exact => tokens_to_text(&tokens) == text,
                StrMode::IgnoreCase => eq_ignore_case(&tokens_to_text(&tokens), text),
            }
        }
    }
}

fn arn_matches(pattern: &ArnValue, text: &str, context: &RequestContext) -> bool {
    match pattern {
        ArnValue::Static(p) => p.matches(text),
        ArnValue::Dynamic(parts) => variables::resolve(parts, context)
            .is_some_and(|tokens| ArnPattern::from_tokens(tokens).matches(text)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        let names = [
            "StringEquals",
            "StringNotEqualsIgnoreCase",
            "StringLikeIfExists",
            "ForAnyValue:StringLike",
            "ForAllValues:StringNotEqualsIfExists",
            "NumericLessThanEquals",
            "DateGreaterThanIfExists",
            "Bool",
            "BoolIfExists",
            "BinaryEquals",
            "NotIpAddressIfExists",
            "ArnNotLike",
            "Null",
        ];
        for name in names {
            assert!(Operator::parse(name).is_some(), "{name}");
        }
        let bad = [
            "stringequals",
            "StringEqual",
            "NullIfExists",
            "ForAnyValue:Null",
            "ForAllValues:",
            "ForSomeValues:StringEquals",
            "IfExists",
            "StringEqualsIfExistsIfExists",
            "",
        ];
        for name in bad {
            assert!(Operator::parse(name).is_none(), "{name}");
        }
        assert_eq!(OPERATORS.len(), 27);
    }
}
