//! `DescribeCustomKeyStores` (filter by id or name; paging; never returns secrets).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_limit, check_marker, Operation};
use crate::api::shapes::epoch;
use crate::api::validate::Checks;
use crate::model::ConnectionState;
use crate::service::{Call, Kms, KmsError, KmsResult};

pub struct DescribeCustomKeyStores;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    custom_key_store_id: Option<String>,
    custom_key_store_name: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    custom_key_store_id: String,
    custom_key_store_name: String,
    custom_key_store_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_hsm_cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_anchor_certificate: Option<String>,
    connection_state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    xks_proxy_configuration: Option<XksProxyConfiguration>,
    #[serde(serialize_with = "epoch")]
    creation_date: DateTime<Utc>,
}

/// `XksProxyConfiguration` (never the secret).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct XksProxyConfiguration {
    access_key_id: String,
    connectivity: String,
    uri_endpoint: String,
    uri_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    vpc_endpoint_service_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    custom_key_stores: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    truncated: bool,
}

impl Operation for DescribeCustomKeyStores {
    const NAME: &'static str = "DescribeCustomKeyStores";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "customKeyStoreId": r.custom_key_store_id,
            "customKeyStoreName": r.custom_key_store_name,
            "limit": r.limit,
            "marker": r.marker,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        c.len("customKeyStoreId", r.custom_key_store_id.as_deref(), 1, 64)
            .len(
                "customKeyStoreName",
                r.custom_key_store_name.as_deref(),
                1,
                256,
            );
        check_limit(&mut c, r.limit, 1000);
        check_marker(&mut c, &r.marker);
        c.finish()?;
        if r.custom_key_store_id.is_some() && r.custom_key_store_name.is_some() {
            return Err(KmsError::Validation(
                "Specify either CustomKeyStoreId or CustomKeyStoreName, not both.".into(),
            ));
        }
        let all = kms
            .custom_key_stores
            .describe_custom_key_stores(
                call,
                r.custom_key_store_id.as_deref(),
                r.custom_key_store_name.as_deref(),
            )
            .await?;
        let start = match &r.marker {
            None => 0,
            Some(m) => match all.iter().position(|s| &s.id == m) {
                Some(i) => i + 1,
                None => return Err(KmsError::InvalidMarker("Invalid marker".into())),
            },
        };
        let limit = r.limit.unwrap_or(100) as usize;
        let page: Vec<_> = all.iter().skip(start).take(limit).collect();
        let truncated = all.len() > start + page.len();
        let next_marker = if truncated {
            page.last().map(|s| s.id.clone())
        } else {
            None
        };
        Ok(Response {
            custom_key_stores: page
                .into_iter()
                .map(|s| Entry {
                    custom_key_store_id: s.id.clone(),
                    custom_key_store_name: s.name.clone(),
                    custom_key_store_type: s.store_type.as_str(),
                    cloud_hsm_cluster_id: s.cluster_id.clone(),
                    trust_anchor_certificate: s.trust_anchor.clone(),
                    connection_state: s.connection_state.as_str(),
                    connection_error_code: if s.connection_state == ConnectionState::Failed {
                        s.connection_error.clone()
                    } else {
                        None
                    },
                    creation_date: s.creation_date,
                    xks_proxy_configuration: s.xks.as_ref().map(|x| XksProxyConfiguration {
                        access_key_id: x.access_key_id.clone(),
                        connectivity: x.connectivity.clone(),
                        uri_endpoint: x.uri_endpoint.clone(),
                        uri_path: x.uri_path.clone(),
                        vpc_endpoint_service_name: x.vpc_endpoint_service_name.clone(),
                    }),
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}
