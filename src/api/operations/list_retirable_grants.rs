//! `ListRetirableGrants`: the grants, on keys of any account, whose retiring principal is a
//! given principal of the caller's account (Limit 1-100, default 50; Marker paging).

use serde::Deserialize;
use serde_json::{json, Value};

use super::create_grant::{check_principal, service_principals_unsupported};
use super::list_grants::Response;
use super::{check_limit, check_marker, present, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct ListRetirableGrants;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    retiring_principal: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
    retiring_service_principal: Option<String>,
}

impl Operation for ListRetirableGrants {
    const NAME: &'static str = "ListRetirableGrants";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "retiringPrincipal": r.retiring_principal,
            "limit": r.limit,
            "marker": r.marker,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        if r.retiring_service_principal.is_some() {
            return Err(service_principals_unsupported());
        }
        let mut c = Checks::new();
        c.required("retiringPrincipal", &r.retiring_principal);
        check_principal(&mut c, "retiringPrincipal", r.retiring_principal.as_deref());
        check_limit(&mut c, r.limit, 100);
        check_marker(&mut c, &r.marker);
        c.finish()?;
        let page = kms
            .grants
            .list_retirable_grants(
                call,
                &present(r.retiring_principal)?,
                r.marker.as_deref(),
                r.limit.unwrap_or(50) as usize,
            )
            .await?;
        Ok(page.into())
    }
}
