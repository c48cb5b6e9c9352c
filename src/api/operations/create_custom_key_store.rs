//! `CreateCustomKeyStore` (AWS_CLOUDHSM stores on a configured cluster).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{present, Operation};
use crate::api::shapes::XksCredential;
use crate::api::validate::Checks;
use crate::model::CustomKeyStoreType;
use crate::service::custom_key_stores::NewStore;
use crate::service::{Call, Kms, KmsResult};

pub struct CreateCustomKeyStore;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    custom_key_store_name: Option<String>,
    cloud_hsm_cluster_id: Option<String>,
    trust_anchor_certificate: Option<String>,
    key_store_password: Option<SecretString>,
    custom_key_store_type: Option<String>,
    xks_proxy_uri_endpoint: Option<String>,
    xks_proxy_uri_path: Option<String>,
    xks_proxy_vpc_endpoint_service_name: Option<String>,
    xks_proxy_connectivity: Option<String>,
    xks_proxy_authentication_credential: Option<crate::api::shapes::XksCredential>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    custom_key_store_id: String,
}

/// `KeyStorePassword`: 7-32 characters, never echoed.
pub fn check_password(c: &mut Checks, p: &Option<SecretString>) {
    use secrecy::ExposeSecret;
    let bytes = p.as_ref().map(|p| p.expose_secret().as_bytes());
    c.blob_len("keyStorePassword", bytes, 7, 32);
}

/// `XksProxyAuthenticationCredential`: both members required, with the model's lengths and
/// patterns; the secret is never echoed.
pub fn check_xks_credential(c: &mut Checks, cred: Option<&XksCredential>) {
    use secrecy::ExposeSecret;
    let Some(cred) = cred else {
        return;
    };
    const AKID: &str = "xksProxyAuthenticationCredential.accessKeyId";
    const SECRET: &str = "xksProxyAuthenticationCredential.rawSecretAccessKey";
    c.required(AKID, &cred.access_key_id)
        .len(AKID, cred.access_key_id.as_deref(), 20, 30)
        .pattern(
            AKID,
            cred.access_key_id.as_deref(),
            |s| {
                s.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
            },
            "^[A-Z2-7]+$",
        );
    c.required(SECRET, &cred.raw_secret_access_key);
    if let Some(secret) = &cred.raw_secret_access_key {
        let s = secret.expose_secret();
        c.blob_len(SECRET, Some(s.as_bytes()), 43, 64);
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/+=".contains(&b))
        {
            c.constraint(
                SECRET,
                None,
                "satisfy regular expression pattern: ^[a-zA-Z0-9\\/+=]+$",
            );
        }
    }
}

impl Operation for CreateCustomKeyStore {
    const NAME: &'static str = "CreateCustomKeyStore";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "customKeyStoreName": r.custom_key_store_name,
            "cloudHsmClusterId": r.cloud_hsm_cluster_id,
            "customKeyStoreType": r.custom_key_store_type.as_deref().unwrap_or("AWS_CLOUDHSM"),
            "trustAnchorCertificate": r.trust_anchor_certificate.as_ref().map(|_| "<certificate>"),
        })
    }

    fn audit_response(r: &Response) -> Value {
        json!({ "customKeyStoreId": r.custom_key_store_id })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        c.required("customKeyStoreName", &r.custom_key_store_name)
            .len(
                "customKeyStoreName",
                r.custom_key_store_name.as_deref(),
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
                "trustAnchorCertificate",
                r.trust_anchor_certificate.as_deref(),
                1,
                5000,
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
        let store_type = c.enum_value(
            "customKeyStoreType",
            r.custom_key_store_type.as_deref(),
            CustomKeyStoreType::parse,
            CustomKeyStoreType::wire_list(),
        );
        let _ = c.enum_value(
            "xksProxyConnectivity",
            r.xks_proxy_connectivity.as_deref(),
            |s| matches!(s, "PUBLIC_ENDPOINT" | "VPC_ENDPOINT_SERVICE").then_some(()),
            "[PUBLIC_ENDPOINT, VPC_ENDPOINT_SERVICE]",
        );
        c.finish()?;
        if store_type == Some(CustomKeyStoreType::ExternalKeyStore) {
            let (access_key_id, secret) = match r.xks_proxy_authentication_credential {
                Some(c) => (c.access_key_id, c.raw_secret_access_key),
                None => (None, None),
            };
            let id = kms
                .custom_key_stores
                .create_xks_store(
                    call,
                    crate::service::xks::NewXksStore {
                        name: present(r.custom_key_store_name)?,
                        uri_endpoint: r.xks_proxy_uri_endpoint,
                        uri_path: r.xks_proxy_uri_path,
                        connectivity: r.xks_proxy_connectivity,
                        vpc_endpoint_service_name: r.xks_proxy_vpc_endpoint_service_name,
                        access_key_id,
                        secret,
                    },
                )
                .await?;
            return Ok(Response {
                custom_key_store_id: id,
            });
        }
        let id = kms
            .custom_key_stores
            .create_custom_key_store(
                call,
                NewStore {
                    name: present(r.custom_key_store_name)?,
                    store_type: store_type.unwrap_or(CustomKeyStoreType::AwsCloudhsm),
                    cluster_id: r.cloud_hsm_cluster_id,
                    trust_anchor: r.trust_anchor_certificate,
                    password: r.key_store_password,
                },
            )
            .await?;
        Ok(Response {
            custom_key_store_id: id,
        })
    }
}
