//! `UpdateCustomKeyStore` (name, cluster id, password; the store must be disconnected).

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

use super::create_custom_key_store::{check_password, check_xks_credential};
use super::{present, Empty, Operation};
use crate::api::validate::Checks;
use crate::service::custom_key_stores::StoreUpdate;
use crate::service::{Call, Kms, KmsResult};

pub struct UpdateCustomKeyStore;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    custom_key_store_id: Option<String>,
    new_custom_key_store_name: Option<String>,
    key_store_password: Option<SecretString>,
    cloud_hsm_cluster_id: Option<String>,
    xks_proxy_uri_endpoint: Option<String>,
    xks_proxy_uri_path: Option<String>,
    xks_proxy_vpc_endpoint_service_name: Option<String>,
    xks_proxy_connectivity: Option<String>,
    xks_proxy_authentication_credential: Option<crate::api::shapes::XksCredential>,
}

impl Operation for UpdateCustomKeyStore {
    const NAME: &'static str = "UpdateCustomKeyStore";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Empty;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "customKeyStoreId": r.custom_key_store_id,
            "newCustomKeyStoreName": r.new_custom_key_store_name,
            "cloudHsmClusterId": r.cloud_hsm_cluster_id,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Empty> {
        let mut c = Checks::new();
        c.required("customKeyStoreId", &r.custom_key_store_id)
            .len("customKeyStoreId", r.custom_key_store_id.as_deref(), 1, 64)
            .len(
                "newCustomKeyStoreName",
                r.new_custom_key_store_name.as_deref(),
                1,
                256,
            )
            .len(
                "cloudHsmClusterId",
                r.cloud_hsm_cluster_id.as_deref(),
                19,
                24,
            )
            .len(
                "xksProxyUriEndpoint",
                r.xks_proxy_uri_endpoint.as_deref(),
                10,
                128,
            )
            .len("xksProxyUriPath", r.xks_proxy_uri_path.as_deref(), 10, 128)
            .len(
                "xksProxyVpcEndpointServiceName",
                r.xks_proxy_vpc_endpoint_service_name.as_deref(),
                20,
                64,
            );
        check_password(&mut c, &r.key_store_password);
        check_xks_credential(&mut c, r.xks_proxy_authentication_credential.as_ref());
        c.finish()?;
        let any_xks = r.xks_proxy_uri_endpoint.is_some()
            || r.xks_proxy_uri_path.is_some()
            || r.xks_proxy_vpc_endpoint_service_name.is_some()
            || r.xks_proxy_connectivity.is_some()
            || r.xks_proxy_authentication_credential.is_some();
        let xks = any_xks.then(|| {
            let (access_key_id, secret) = match r.xks_proxy_authentication_credential {
                Some(c) => (c.access_key_id, c.raw_secret_access_key),
                None => (None, None),
            };
            crate::service::xks::XksUpdate {
                uri_endpoint: r.xks_proxy_uri_endpoint,
                uri_path: r.xks_proxy_uri_path,
                connectivity: r.xks_proxy_connectivity,
                vpc_endpoint_service_name: r.xks_proxy_vpc_endpoint_service_name,
                access_key_id,
                secret,
            }
        });
        kms.custom_key_stores
            .update_custom_key_store(
                call,
                &present(r.custom_key_store_id)?,
                StoreUpdate {
                    new_name: r.new_custom_key_store_name,
                    password: r.key_store_password,
                    cluster_id: r.cloud_hsm_cluster_id,
                    xks,
                },
            )
            .await?;
        Ok(Empty {})
    }
}
