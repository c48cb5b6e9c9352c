//! `ConnectCustomKeyStore`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{present, Empty, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct ConnectCustomKeyStore;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    custom_key_store_id: Option<String>,
}

impl Operation for ConnectCustomKeyStore {
    const NAME: &'static str = "ConnectCustomKeyStore";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Empty;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "customKeyStoreId": r.custom_key_store_id })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Empty> {
        let mut c = Checks::new();
        c.required("customKeyStoreId", &r.custom_key_store_id).len(
            "customKeyStoreId",
            r.custom_key_store_id.as_deref(),
            1,
            64,
        );
        c.finish()?;
        kms.custom_key_stores
            .connect_custom_key_store(call, &present(r.custom_key_store_id)?)
            .await?;
        Ok(Empty {})
    }
}
