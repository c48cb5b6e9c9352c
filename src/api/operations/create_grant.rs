//! `CreateGrant`: lets a grantee principal use a key for some grant operations, optionally only
//! with a given encryption context, and names who may retire the grant.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::WireContext;
use crate::api::validate::Checks;
use crate::model::GrantConstraints;
use crate::service::grants::NewGrant;
use crate::service::{Call, Kms, KmsError, KmsResult};

pub struct CreateGrant;

/// `GrantConstraints` in a request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireConstraints {
    encryption_context_subset: Option<WireContext>,
    encryption_context_equals: Option<WireContext>,
    source_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    grantee_principal: Option<String>,
    retiring_principal: Option<String>,
    operations: Option<Vec<String>>,
    constraints: Option<WireConstraints>,
    grant_tokens: Option<Vec<String>>,
    name: Option<String>,
    dry_run: Option<bool>,
    grantee_service_principal: Option<String>,
    retiring_service_principal: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    grant_token: String,
    grant_id: String,
    #[serde(skip)]
    key_arn: String,
}

/// Grants naming AWS service principals, and the `SourceArn` constraint (newer API members):
/// no AWS service calls this server, so such a grant could never be used as its creator
/// means; refused rather than silently stored without them.
pub fn service_principals_unsupported() -> KmsError {
    KmsError::UnsupportedOperation(
        "Grants for AWS service principals are not supported: no AWS service calls this server."
            .into(),
    )
}

/// Pairs per constraint and characters per value (reference §6.1).
const MAX_CONSTRAINT_PAIRS: usize = 8;
const MAX_CONSTRAINT_VALUE_CHARS: usize = 384;

/// `PrincipalIdType`: 1-256 characters of `[\w+=,.@:/-]`.
pub fn check_principal(c: &mut Checks, field: &str, v: Option<&str>) {
    c.len(field, v, 1, 256).pattern(
        field,
        v,
        |s| {
            s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_+=,.@:/-".contains(ch))
        },
        "^[\\w+=,.@:/-]+$",
    );
}

/// The wire name of each operation, or the `operations` violation.
fn operations(c: &mut Checks, v: &Option<Vec<String>>) -> Vec<kms_policy::GrantOperation> {
    let Some(names) = v else {
        c.required("operations", v);
        return Vec::new();
    };
    let listed = format!("[{}]", names.join(", "));
    if names.is_empty() {
        c.violation(
            "operations",
            Some(&listed),
            "have length greater than or equal to 1",
        );
        return Vec::new();
    }
    let parsed: Option<Vec<_>> = names
        .iter()
        .map(|n| kms_policy::GrantOperation::parse(n))
        .collect();
    match parsed {
        Some(mut ops) => {
            // Each operation once, in the order first named.
            let mut seen = Vec::with_capacity(ops.len());
            ops.retain(|op| {
                let first = !seen.contains(op);
                seen.push(*op);
                first
            });
            ops
        }
        None => {
            let all: Vec<&str> = kms_policy::GrantOperation::ALL
                .iter()
                .map(|o| o.as_str())
                .collect();
            c.violation(
                "operations",
                Some(&listed),
                &format!(
                    "satisfy constraint: [Member must satisfy enum value set: [{}]]",
                    all.join(", ")
                ),
            );
            Vec::new()
        }
    }
}

fn check_constraint(c: &mut Checks, field: &str, v: Option<&WireContext>) {
    if let Some(ctx) = v {
        c.count(field, ctx.0.len(), 0, MAX_CONSTRAINT_PAIRS);
        for value in ctx.0.values() {
            c.len(field, Some(value), 0, MAX_CONSTRAINT_VALUE_CHARS);
        }
    }
}

impl Operation for CreateGrant {
    const NAME: &'static str = "CreateGrant";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        let constraints = r.constraints.as_ref().map(|c| {
            json!({
                "encryptionContextSubset": c.encryption_context_subset.as_ref().map(|x| &x.0),
                "encryptionContextEquals": c.encryption_context_equals.as_ref().map(|x| &x.0),
            })
        });
        // Never the grant tokens.
        json!({
            "keyId": r.key_id,
            "granteePrincipal": r.grantee_principal,
            "retiringPrincipal": r.retiring_principal,
            "operations": r.operations,
            "constraints": constraints,
            "name": r.name,
            "dryRun": r.dry_run,
        })
    }

    fn audit_response(resp: &Response) -> Value {
        json!({ "grantId": resp.grant_id, "keyId": resp.key_arn })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        if r.grantee_service_principal.is_none() {
            c.required("granteePrincipal", &r.grantee_principal);
        }
        check_principal(&mut c, "granteePrincipal", r.grantee_principal.as_deref());
        check_principal(&mut c, "retiringPrincipal", r.retiring_principal.as_deref());
        let ops = operations(&mut c, &r.operations);
        let constraints = r.constraints.unwrap_or_default();
        check_constraint(
            &mut c,
            "constraints.encryptionContextSubset",
            constraints.encryption_context_subset.as_ref(),
        );
        check_constraint(
            &mut c,
            "constraints.encryptionContextEquals",
            constraints.encryption_context_equals.as_ref(),
        );
        check_grant_tokens(&mut c, &r.grant_tokens);
        c.len("name", r.name.as_deref(), 1, 256).pattern(
            "name",
            r.name.as_deref(),
            |s| {
                s.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ":/_-".contains(ch))
            },
            "^[a-zA-Z0-9:/_-]+$",
        );
        c.finish()?;
        if r.grantee_service_principal.is_some() || r.retiring_service_principal.is_some() {
            return Err(service_principals_unsupported());
        }
        if constraints.source_arn.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "The SourceArn grant constraint is not supported: no request is made on behalf \
                 of an AWS resource here."
                    .into(),
            ));
        }
        if ops == [kms_policy::GrantOperation::CreateGrant] {
            return Err(KmsError::Validation(
                "Grants must not contain only the CreateGrant operation.".into(),
            ));
        }
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let grant = NewGrant {
            grantee_principal: present(r.grantee_principal)?,
            retiring_principal: r.retiring_principal,
            operations: ops,
            constraints: GrantConstraints {
                encryption_context_equals: constraints.encryption_context_equals.map(|x| x.0),
                encryption_context_subset: constraints.encryption_context_subset.map(|x| x.0),
            },
            name: r.name,
        };
        let created = kms
            .grants
            .create_grant(call, &present(r.key_id)?, grant, r.dry_run.unwrap_or(false))
            .await?;
        Ok(Response {
            grant_token: created.grant_token,
            grant_id: created.grant_id,
            key_arn: created.key.arn,
        })
    }
}
