//! Optional secondary authorization per keystore, over `requestMetadata`.
//!
//! A policy is a list of rules. Each rule has an effect (`allow` or `deny`) and conditions; a
//! condition is a list of wildcard patterns (`*` matches any run of characters, `?` one
//! character) over one request field, and holds when any pattern matches. A field a rule does
//! not mention always holds; a field the request lacks matches only the empty pattern `""`.
//! A rule matches when all its conditions hold.
//!
//! Decision: any matching `deny` rule denies; otherwise a matching `allow` rule allows;
//! otherwise the request is denied (nothing is allowed implicitly). GetHealthStatus is never
//! evaluated (the spec exempts it).

use xks_wire::{Operation, RequestMetadata};

/// A wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<char>);

impl Pattern {
    pub fn new(p: &str) -> Self {
        Pattern(p.chars().collect())
    }

    /// Whether `s` matches (iterative glob with single-star backtracking: linear in practice).
    pub fn matches(&self, s: &str) -> bool {
        let p = &self.0;
        let s: Vec<char> = s.chars().collect();
        let (mut pi, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, si));
                pi += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == '*' {
            pi += 1;
        }
        pi == p.len()
    }

    fn matches_field(&self, field: Option<&str>) -> bool {
        match field {
            Some(v) if !v.is_empty() => self.matches(v),
            _ => self.0.is_empty(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One rule. `None` conditions always hold.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub effect: Effect,
    /// `awsPrincipalArn`.
    pub principals: Option<Vec<Pattern>>,
    /// `kmsOperation` (the KMS API).
    pub kms_operations: Option<Vec<Pattern>>,
    /// The XKS operation.
    pub operations: Option<Vec<Operation>>,
    /// The external key id.
    pub key_ids: Option<Vec<Pattern>>,
    /// `kmsKeyArn`.
    pub kms_key_arns: Option<Vec<Pattern>>,
    /// `kmsViaService`.
    pub via_services: Option<Vec<Pattern>>,
    /// `awsSourceVpc`.
    pub source_vpcs: Option<Vec<Pattern>>,
    /// `awsSourceVpce`.
    pub source_vpces: Option<Vec<Pattern>>,
}

fn holds(cond: &Option<Vec<Pattern>>, field: Option<&str>) -> bool {
    cond.as_ref()
        .is_none_or(|ps| ps.iter().any(|p| p.matches_field(field)))
}

impl Rule {
    fn matches(&self, op: Operation, key_id: &str, md: &RequestMetadata) -> bool {
        self.operations.as_ref().is_none_or(|ops| ops.contains(&op))
            && holds(&self.principals, md.aws_principal_arn.as_deref())
            && holds(&self.kms_operations, Some(&md.kms_operation))
            && holds(&self.key_ids, Some(key_id))
            && holds(&self.kms_key_arns, md.kms_key_arn.as_deref())
            && holds(&self.via_services, md.kms_via_service.as_deref())
            && holds(&self.source_vpcs, md.aws_source_vpc.as_deref())
            && holds(&self.source_vpces, md.aws_source_vpce.as_deref())
    }
}

/// The outcome, with the reason (logged for the operator; no secrets involved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { rule: String },
    Deny { reason: String },
}

/// A keystore's rules.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

impl Policy {
    pub fn evaluate(&self, op: Operation, key_id: &str, md: &RequestMetadata) -> Decision {
        let mut allowed_by = None;
        for r in &self.rules {
            if !r.matches(op, key_id, md) {
                continue;
            }
            match r.effect {
                Effect::Deny => {
                    return Decision::Deny {
                        reason: format!("denied by rule '{}'", r.name),
                    }
                }
                Effect::Allow => {
                    if allowed_by.is_none() {
                        allowed_by = Some(r.name.clone());
                    }
                }
            }
        }
        match allowed_by {
            Some(rule) => Decision::Allow { rule },
            None => Decision::Deny {
                reason: "no allow rule matches the request".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(principal: &str, op: &str) -> RequestMetadata {
        RequestMetadata {
            kms_request_id: "r".into(),
            kms_operation: op.into(),
            aws_principal_arn: Some(principal.into()),
            kms_key_arn: Some("arn:aws:kms:us-east-1:111122223333:key/k".into()),
            ..Default::default()
        }
    }

    fn rule(effect: Effect) -> Rule {
        Rule {
            name: "r".into(),
            effect,
            principals: None,
            kms_operations: None,
            operations: None,
            key_ids: None,
            kms_key_arns: None,
            via_services: None,
            source_vpcs: None,
            source_vpces: None,
        }
    }

    #[test]
    fn globs() {
        let p = Pattern::new("arn:aws:iam::1234:*");
        assert!(p.matches("arn:aws:iam::1234:user/Alice"));
        assert!(!p.matches("arn:aws:iam::9999:user/Alice"));
        assert!(Pattern::new("a*b*c").matches("aXXbYYc"));
        assert!(!Pattern::new("a*b*c").matches("aXXbYY"));
        assert!(Pattern::new("?x").matches("ax"));
        assert!(Pattern::new("*").matches(""));
        assert!(Pattern::new("").matches_field(None));
        assert!(!Pattern::new("*").matches_field(None));
    }

    #[test]
    fn deny_wins_and_default_denies() {
        let mut allow = rule(Effect::Allow);
        allow.principals = Some(vec![Pattern::new("arn:aws:iam::1234:*")]);
        let mut deny = rule(Effect::Deny);
        deny.name = "no-bob".into();
        deny.principals = Some(vec![Pattern::new("*:user/Bob")]);
        let p = Policy {
            rules: vec![allow, deny],
        };
        assert!(matches!(
            p.evaluate(
                Operation::Encrypt,
                "k",
                &md("arn:aws:iam::1234:user/Alice", "Encrypt")
            ),
            Decision::Allow { .. }
        ));
        assert_eq!(
            p.evaluate(
                Operation::Encrypt,
                "k",
                &md("arn:aws:iam::1234:user/Bob", "Encrypt")
            ),
            Decision::Deny {
                reason: "denied by rule 'no-bob'".into()
            }
        );
        assert!(matches!(
            p.evaluate(
                Operation::Encrypt,
                "k",
                &md("arn:aws:iam::9:user/Eve", "Encrypt")
            ),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn absent_fields() {
        let mut r = rule(Effect::Allow);
        r.via_services = Some(vec![Pattern::new("ebs"), Pattern::new("")]);
        let p = Policy { rules: vec![r] };
        let mut m = md("x", "Encrypt");
        assert!(matches!(
            p.evaluate(Operation::Encrypt, "k", &m),
            Decision::Allow { .. }
        ));
        m.kms_via_service = Some("s3".into());
        assert!(matches!(
            p.evaluate(Operation::Encrypt, "k", &m),
            Decision::Deny { .. }
        ));
    }
}
