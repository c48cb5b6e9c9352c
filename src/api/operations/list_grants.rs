//! `ListGrants`: the grants of one key (optionally one grant id or one grantee; Limit 1-100,
//! default 50; Marker paging). The entry shape is shared with `ListRetirableGrants`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::create_grant::{check_principal, service_principals_unsupported};
use super::{check_key_id, check_limit, check_marker, present, Operation};
use crate::api::shapes::epoch;
use crate::api::validate::Checks;
use crate::service::grants::{GrantPage, ListedGrant};
use crate::service::{Call, Kms, KmsResult};

pub struct ListGrants;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    grant_id: Option<String>,
    grantee_principal: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
    grantee_service_principal: Option<String>,
}

/// `GrantConstraints` in a response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Constraints {
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_context_subset: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_context_equals: Option<BTreeMap<String, String>>,
}

/// `GrantListEntry`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    key_id: String,
    grant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(serialize_with = "epoch")]
    creation_date: DateTime<Utc>,
    grantee_principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retiring_principal: Option<String>,
    issuing_account: String,
    operations: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    constraints: Option<Constraints>,
}

impl From<ListedGrant> for Entry {
    fn from(l: ListedGrant) -> Self {
        let g = l.grant;
        let constraints = (!g.constraints.is_empty()).then_some(Constraints {
            encryption_context_subset: g.constraints.encryption_context_subset,
            encryption_context_equals: g.constraints.encryption_context_equals,
        });
        Entry {
            key_id: l.key_arn,
            grant_id: g.grant_id,
            name: g.name,
            creation_date: g.creation_date,
            grantee_principal: g.grantee_principal,
            retiring_principal: g.retiring_principal,
            issuing_account: l.issuing_account,
            operations: g.operations,
            constraints,
        }
    }
}

/// `ListGrantsResponse` (also ListRetirableGrants').
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    grants: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    truncated: bool,
}

impl From<GrantPage> for Response {
    fn from(page: GrantPage) -> Self {
        Response {
            grants: page.grants.into_iter().map(Entry::from).collect(),
            truncated: page.next_marker.is_some(),
            next_marker: page.next_marker,
        }
    }
}

impl Operation for ListGrants {
    const NAME: &'static str = "ListGrants";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "grantId": r.grant_id,
            "granteePrincipal": r.grantee_principal,
            "limit": r.limit,
            "marker": r.marker,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.len("grantId", r.grant_id.as_deref(), 1, 128);
        check_principal(&mut c, "granteePrincipal", r.grantee_principal.as_deref());
        check_limit(&mut c, r.limit, 100);
        check_marker(&mut c, &r.marker);
        c.finish()?;
        if r.grantee_service_principal.is_some() {
            return Err(service_principals_unsupported());
        }
        let page = kms
            .grants
            .list_grants(
                call,
                &present(r.key_id)?,
                r.grant_id.as_deref(),
                r.grantee_principal.as_deref(),
                r.marker.as_deref(),
                r.limit.unwrap_or(50) as usize,
            )
            .await?;
        Ok(page.into())
    }
}
