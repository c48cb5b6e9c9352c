//! ARNs: parsing the ARNs callers hand in, and matching ARN patterns the way `ArnLike` and the
//! `Resource` element do (six colon-separated fields, each globbed, case-sensitive).

use crate::glob::{Glob, Token};

/// An ARN that could not be used: it is not `arn:partition:service:region:account:resource`, or
/// it does not name what the function asked for (a principal, a resource with an account).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{arn}\" is not {expected}.")]
pub struct ArnError {
    /// The text that was refused.
    pub arn: String,
    /// What was expected, e.g. "an IAM user ARN".
    pub expected: &'static str,
}

impl ArnError {
    pub(crate) fn new(arn: &str, expected: &'static str) -> ArnError {
        ArnError {
            arn: arn.to_owned(),
            expected,
        }
    }
}

/// The six fields of an ARN, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArnParts<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// Splits an ARN into its fields; `None` unless it has six fields, starts with `arn`, and has a
/// partition, a service and a resource.
pub(crate) fn split_arn(arn: &str) -> Option<ArnParts<'_>> {
    let mut it = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    if prefix != "arn" || partition.is_empty() || service.is_empty() || resource.is_empty() {
        return None;
    }
    Some(ArnParts {
        partition,
        service,
        region,
        account,
        resource,
    })
}

/// An AWS account ID: exactly twelve ASCII digits.
pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The ARN of a resource a request acts on, with the account that owns it (the account decides
/// whether the request is cross-account).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceArn {
    arn: String,
    account_start: usize,
    account_end: usize,
}

impl ResourceArn {
    /// Parses a resource ARN whose account field is a 12-digit account ID, such as
    /// `arn:aws:kms:us-east-1:111122223333:key/1234abcd-...` or a role ARN.
    pub fn parse(arn: &str) -> Result<ResourceArn, ArnError> {
        const EXPECTED: &str = "a resource ARN with a 12-digit account ID";
        let parts = split_arn(arn).ok_or_else(|| ArnError::new(arn, EXPECTED))?;
        if !is_account_id(parts.account) {
            return Err(ArnError::new(arn, EXPECTED));
        }
        // The account field is the fifth; its offset is the sum of the four before it.
        let account_start =
            4 + parts.partition.len() + parts.service.len() + parts.region.len() + "arn".len();
        Ok(ResourceArn {
            arn: arn.to_owned(),
            account_start,
            account_end: account_start + 12,
        })
    }

    /// The ARN text.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The account that owns the resource.
    pub fn account(&self) -> &str {
        self.arn
            .get(self.account_start..self.account_end)
            .unwrap_or_default()
    }
}

/// A compiled ARN pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArnPattern {
    /// Six fields, each matched separately against the ARN's fields.
    Fields(Box<[Glob; 6]>),
    /// A pattern without six fields (`*`, `arn:aws:kms:*`): matched against the whole text.
    Whole(Glob),
}

impl ArnPattern {
    #[cfg(test)]
    pub(crate) fn new(pattern: &str) -> ArnPattern {
        ArnPattern::from_tokens(crate::glob::tokenize(pattern))
    }

    pub(crate) fn from_tokens(tokens: Vec<Token>) -> ArnPattern {
        let mut fields: Vec<Vec<Token>> = vec![Vec::new()];
        for &t in &tokens {
            if t == Token::Char(':') && fields.len() < 6 {
                fields.push(Vec::new());
            } else if let Some(last) = fields.last_mut() {
                last.push(t);
            }
        }
        if fields.len() != 6 {
            return ArnPattern::Whole(Glob::from_tokens(tokens));
        }
        let mut globs = fields.into_iter().map(Glob::from_tokens);
        let mut next = || globs.next().unwrap_or(Glob::Anything);
        ArnPattern::Fields(Box::new([next(), next(), next(), next(), next(), next()]))
    }

    pub(crate) fn matches(&self, arn: &str) -> bool {
        match self {
            ArnPattern::Whole(glob) => glob.matches(arn),
            ArnPattern::Fields(globs) => {
                let mut parts = arn.splitn(6, ':');
                globs
                    .iter()
                    .all(|g| parts.next().is_some_and(|part| g.matches(part)))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn resource_arn_account() {
        let r = ResourceArn::parse("arn:aws:kms:us-east-1:111122223333:key/k-1").unwrap();
        assert_eq!(r.account(), "111122223333");
        let r = ResourceArn::parse("arn:aws:iam::444455556666:role/path/app").unwrap();
        assert_eq!(r.account(), "444455556666");
        assert!(ResourceArn::parse("arn:aws:kms:us-east-1::key/k").is_err());
        assert!(ResourceArn::parse("key/k").is_err());
        assert!(ResourceArn::parse("*").is_err());
    }

    #[test]
    fn arn_patterns() {
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234";
        let table = [
            ("arn:aws:kms:*:111122223333:key/*", true),
            ("arn:aws:kms:us-east-1:111122223333:key/1234", true),
            ("arn:aws:kms:us-east-1:111122223333:key/12345", false),
            ("arn:aws:kms:*:444455556666:key/*", false),
            ("arn:aws:kms:us-*-1:*:key/????", true),
            ("arn:aws:KMS:*:*:*", false),
            ("arn:*:*:*:*:*", true),
            ("*", true),
            ("arn:aws:kms:*", true),
            ("arn:aws:kms:*:111122223333:alias/*", false),
        ];
        for (p, want) in table {
            assert_eq!(ArnPattern::new(p).matches(key), want, "{p}");
        }
        // The resource field keeps its colons.
        let p = ArnPattern::new("arn:aws:s3:::bucket/*");
        assert!(p.matches("arn:aws:s3:::bucket/a:b:c"));
        // Field by field: a pattern field never spans a colon of the ARN.
        assert!(!ArnPattern::new("arn:aws:kms:us-east-1:*:*:key/1234").matches(key));
        assert!(ArnPattern::new("arn:aws:kms:us-east-1:*:*").matches(key));
    }
}
