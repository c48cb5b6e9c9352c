//! `UpdateCustomKeyStore` (name, cluster id, password; the store must be disconnected).

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

use super::create_custom_key_store::check_password;
use super::{present, Empty, Operation};
use crate::api::validate::Checks;
use crate::service::custom_key_stores::StoreUpdate;
use crate::service::{Call, KmsError, KmsResult, KmsService};

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
}

impl Operation for UpdateCustomKeyStore {
    const NAME: &'static str = "UpdateCustomKeyStore";
    const READ_ONLY: bool = false;
    const BLOCKING: bool = true;
    type Request = Request;
    type Response = Empty;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "customKeyStoreId": r.custom_key_store_id,
            "newCustomKeyStoreName": r.new_custom_key_store_name,
            "cloudHsmClusterId": r.cloud_hsm_cluster_id,
        })
    }

    fn execute(svc: &KmsService, call: &mut Call, r: Request) -> KmsResult<Empty> {
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
            );
        check_password(&mut c, &r.key_store_password);
        c.finish()?;
        if r.xks_proxy_uri_endpoint.is_some()
            || r.xks_proxy_uri_path.is_some()
            || r.xks_proxy_vpc_endpoint_service_name.is_some()
            || r.xks_proxy_connectivity.is_some()
        {
            return Err(KmsError::Validation(
                "XKS proxy properties apply only to EXTERNAL_KEY_STORE custom key stores.".into(),
            ));
        }
        svc.update_custom_key_store(
            call,
            &present(r.custom_key_store_id)?,
            StoreUpdate {
                new_name: r.new_custom_key_store_name,
                password: r.key_store_password,
                cluster_id: r.cloud_hsm_cluster_id,
            },
        )?;
        Ok(Empty {})
    }
}
