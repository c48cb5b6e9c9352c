//! External key stores (`EXTERNAL_KEY_STORE`): store management through an XKS proxy, keys
//! backed by external keys, and double encryption.
//!
//! Double encryption: a key in an external key store has KMS-side key material (generated and
//! wrapped by the root, like any key's) *and* an external key (`XksKeyId`) in the external key
//! manager. Encrypt seals the plaintext with the KMS-side material first (AES-256-GCM, AAD =
//! blob header + encryption context), then sends only that ciphertext to the proxy's Encrypt
//! with AAD = SHA-256(`kms-xks-v1` || header || canonical encryption context). Decrypt undoes
//! the outer layer at the proxy, then the inner one. The proxy never sees plaintext or a
//! plaintext data key; neither side alone can decrypt.
//!
//! Blob (format version 2) after the common header (`docs/ciphertext-format.md`):
//! `inner IV (12) || outer IV length (1) || outer IV (12|16) || outer tag (16) ||
//! ciphertextMetadata length (1) || ciphertextMetadata (<= 20) || outer ciphertext`.
//!
//! Proxy calls are awaited on the request's own task (network I/O, nothing blocks). Every call
//! carries `requestMetadata` (principal, key ARN, operation, request id = audit requestID).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use ring::digest;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::ciphertext::{self, EncryptionContext, ParsedBlob};
use super::custom_key_stores::CustomKeyStores;
use super::{Call, Core, KmsError, KmsResult};
use crate::backend::xks::{XksClient, XksError, XksTarget, XksTls};
use crate::backend::MaterialId;
use crate::model::{
    ConnectionState, CustomKeyStoreRecord, CustomKeyStoreType, KeyId, KeyRecord, KeySpec, KeyState,
    KeyUsage, MaterialRecord, Origin, Tag, XksProxySettings,
};
use xks_wire::{
    self, Base64, DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, ErrorName,
    GetHealthStatusResponse, GetKeyMetadataResponse, HealthStatus, MetadataOnlyRequest, Operation,
    RequestMetadata, SecretBase64,
};

const PROXY_AAD_CONTEXT: &[u8] = b"kms-xks-v1";

/// Proxy probes of CreateCustomKeyStore and UpdateCustomKeyStore per account and minute (a
/// burst of as many): enough for any operator, too few to scan a network with.
pub const DEFAULT_PROBES_PER_MINUTE: u32 = 10;

/// The XKS side of the custom key store runtime: connected proxies and the TLS settings used
/// to reach them.
pub struct XksStores {
    tls: Option<XksTls>,
    pub(crate) connected: RwLock<HashMap<String, Arc<XksClient>>>,
    timeout: std::time::Duration,
    /// Request quota per external key store (AWS default 1800/s; may be lowered to shed load).
    rps: u32,
    /// Which addresses proxy endpoints may resolve to.
    policy: Arc<crate::backend::xks::EndpointPolicy>,
    /// Create/update probes per account and minute, and each account's bucket.
    probes_per_minute: u32,
    probe_buckets: parking_lot::Mutex<HashMap<String, (f64, std::time::Instant)>>,
    /// Held while this node is the one that checks the proxies' health (kept across passes).
    health_lease: tokio::sync::Mutex<Option<crate::store::Lease>>,
}

impl XksStores {
    pub fn new(tls: Option<XksTls>) -> Self {
        XksStores {
            tls,
            connected: RwLock::default(),
            timeout: crate::backend::xks::client::ATTEMPT_TIMEOUT,
            rps: super::custom_key_stores::DEFAULT_STORE_RPS,
            policy: Arc::default(),
            probes_per_minute: DEFAULT_PROBES_PER_MINUTE,
            probe_buckets: parking_lot::Mutex::default(),
            health_lease: tokio::sync::Mutex::default(),
        }
    }

    /// Sets which addresses proxy endpoints may resolve to.
    pub fn with_endpoint_policy(mut self, policy: crate::backend::xks::EndpointPolicy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Sets how many create/update probes an account may start per minute.
    pub fn with_probes_per_minute(mut self, n: u32) -> Self {
        self.probes_per_minute = n.max(1);
        self
    }

    /// Takes one probe from the account's bucket (CreateCustomKeyStore and
    /// UpdateCustomKeyStore of external key stores; ThrottlingException when empty).
    fn admit_probe(&self, account: &str) -> KmsResult<()> {
        let per_minute = f64::from(self.probes_per_minute);
        let now = std::time::Instant::now();
        let mut buckets = self.probe_buckets.lock();
        let (tokens, last) = buckets
            .entry(account.to_string())
            .or_insert((per_minute, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * per_minute / 60.0).min(per_minute);
        *last = now;
        if *tokens < 1.0 {
            return Err(KmsError::Throttling);
        }
        *tokens -= 1.0;
        Ok(())
    }

    /// Sets the per-store request quota.
    pub fn with_requests_per_second(mut self, rps: u32) -> Self {
        self.rps = rps.max(1);
        self
    }

    pub fn requests_per_second(&self) -> u32 {
        self.rps
    }

    /// Overrides the per-attempt proxy timeout (tests).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub(crate) fn client(&self, store_id: &str) -> Option<Arc<XksClient>> {
        self.connected.read().get(store_id).cloned()
    }

    pub(crate) fn client_for(
        &self,
        settings: &XksProxySettings,
        secret: SecretString,
        region: &str,
    ) -> KmsResult<XksClient> {
        let (host, port) = parse_endpoint(&settings.uri_endpoint).ok_or_else(|| {
            KmsError::Validation("XksProxyUriEndpoint must be https://<host>[:port]".into())
        })?;
        let target = XksTarget {
            host,
            port,
            uri_path: settings.uri_path.clone(),
            access_key_id: settings.access_key_id.clone(),
            secret,
            region: region.to_string(),
        };
        let tls = self.tls.clone().ok_or_else(|| {
            KmsError::XksProxyInvalidConfiguration(
                "External key stores are not configured on this server (TLS settings missing)."
                    .into(),
            )
        })?;
        Ok(XksClient::new(target, tls)
            .with_timeout(self.timeout)
            .with_policy(self.policy.clone()))
    }
}

/// `https://host[:port]` -> (host, port). An explicit port is accepted (an on-prem proxy may
/// listen anywhere); AWS itself allows only 443.
pub fn parse_endpoint(uri: &str) -> Option<(String, u16)> {
    let rest = uri.strip_prefix("https://")?;
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()?),
        None => (rest, 443),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    host_ok.then(|| (host.to_ascii_lowercase(), port))
}

/// `[/prefix]/kms/xks/v1`, at most 128 characters of `[a-zA-Z0-9/_-]`.
pub fn valid_uri_path(p: &str) -> bool {
    p.len() <= xks_wire::MAX_URI_PATH_LEN
        && p.starts_with('/')
        && p.ends_with(xks_wire::API_BASE)
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
}

/// Input of CreateCustomKeyStore for an external key store.
pub struct NewXksStore {
    pub name: String,
    pub uri_endpoint: Option<String>,
    pub uri_path: Option<String>,
    pub connectivity: Option<String>,
    pub vpc_endpoint_service_name: Option<String>,
    pub access_key_id: Option<String>,
    pub secret: Option<SecretString>,
}

/// Proxy-side changes of UpdateCustomKeyStore.
pub struct XksUpdate {
    pub uri_endpoint: Option<String>,
    pub uri_path: Option<String>,
    pub connectivity: Option<String>,
    pub vpc_endpoint_service_name: Option<String>,
    pub access_key_id: Option<String>,
    pub secret: Option<SecretString>,
}

/// Which kind of KMS operation a proxy failure is mapped for.
#[derive(Clone, Copy)]
enum Context {
    Management,
    CreateKey,
    Crypto,
}

fn proxy_error(e: &XksError, ctx: Context) -> KmsError {
    use Context::*;
    use ErrorName as N;
    let name = match e {
        XksError::Proxy { name, .. } => *name,
        _ => None,
    };
    match ctx {
        Management => match (e, name) {
            (_, Some(N::AuthenticationFailedException)) => KmsError::XksProxyIncorrectAuthenticationCredential(
                "The external key store proxy rejected the request because it could not authenticate AWS KMS. \
                 Verify the credentials for your external key store proxy."
                    .into(),
            ),
            (_, Some(N::InvalidUriPathException)) => KmsError::XksProxyInvalidConfiguration(
                "The external key store proxy rejected the request because of an invalid URI path. \
                 Verify the URI path for your external key store."
                    .into(),
            ),
            (XksError::InvalidResponse(_), _) | (_, Some(N::ValidationException) | Some(N::InternalException)) => {
                KmsError::XksProxyInvalidResponse(
                    "AWS KMS cannot interpret the response from the external key store proxy.".into(),
                )
            }
            (XksError::RefusedAddress(why), _) => KmsError::XksProxyInvalidConfiguration(format!(
                "XksProxyUriEndpoint resolves to {}. This server connects to external key store \
                 proxies only on addresses its operator allows.",
                why.as_str()
            )),
            (XksError::Tls(_), _) => KmsError::XksProxyInvalidConfiguration(
                "AWS KMS cannot establish a TLS connection to the external key store proxy. Verify \
                 that the proxy supports TLS 1.2 or 1.3 and that its certificate is valid, trusted \
                 and matches the host name in XksProxyUriEndpoint."
                    .into(),
            ),
            _ => KmsError::XksProxyUriUnreachable(
                "AWS KMS cannot communicate with the external key store proxy. Verify the \
                 XksProxyUriEndpoint and XksProxyUriPath, and that the proxy is running."
                    .into(),
            ),
        },
        CreateKey => match name {
            Some(N::KeyNotFoundException) => KmsError::XksKeyNotFound(
                "The external key store proxy rejected the request because it could not find the external key.".into(),
            ),
            Some(N::InvalidStateException) | Some(N::InvalidKeyUsageException) => KmsError::XksKeyInvalidConfiguration(
                "The external key store proxy reports that the external key is not enabled or does not \
                 support the required operations."
                    .into(),
            ),
            Some(N::UnsupportedOperationException) => KmsError::XksKeyInvalidResponse(
                "The external key store proxy rejected the request because it does not support the requested operation.".into(),
            ),
            _ => KmsError::CustomKeyStoreInvalidState(format!("The external key store proxy failed: {e}")),
        },
        Crypto => KmsError::KmsInvalidState(crypto_message(e, name)),
    }
}

/// The cause-specific message of KMSInvalidStateException for crypto operations.
fn crypto_message(e: &XksError, name: Option<ErrorName>) -> String {
    use ErrorName as N;
    let p = "The external key store proxy rejected the request";
    match (e, name) {
        (XksError::Timeout, _) | (_, Some(N::DependencyTimeoutException)) => {
            format!("{p} because the external key store proxy did not respond in time. Retry the request.")
        }
        (XksError::Unreachable | XksError::Tls(_) | XksError::RefusedAddress(_), _) => "AWS KMS cannot communicate with the external key \
            store proxy. This might be a transient network issue. If you see this error repeatedly, verify that \
            your external key store proxy is active and is connected to the network, and that its endpoint URI is \
            correct in your external key store."
            .to_string(),
        (XksError::InvalidResponse(_), _) => {
            "AWS KMS cannot interpret the response from the external key store proxy.".to_string()
        }
        (_, Some(N::InvalidCiphertextException)) => format!(
            "{p} because the specified ciphertext or additional authenticated data is corrupted, missing, or otherwise invalid."
        ),
        (_, Some(N::KeyNotFoundException)) => format!("{p} because it could not find the external key."),
        (_, Some(N::InvalidStateException)) => {
            format!("{p} because the external key is not enabled in the external key manager.")
        }
        (_, Some(N::InvalidKeyUsageException)) => {
            format!("{p} because the external key does not support the requested operation.")
        }
        (_, Some(N::AuthenticationFailedException)) => format!(
            "{p} because it could not authenticate AWS KMS. Verify the credentials for your external key store proxy."
        ),
        (_, Some(N::InvalidUriPathException)) => {
            format!("{p} because of an invalid URI path. Verify the URI path for your external key store.")
        }
        (_, Some(N::ThrottlingException)) => format!("{p} because of a very high request rate. Retry the request."),
        (_, Some(N::AccessDeniedException)) => "The external key store proxy denied access to the operation. Verify \
            that the user and the external key are both authorized for this operation, and try the request again."
            .to_string(),
        (_, Some(N::UnsupportedOperationException)) => {
            format!("{p} because it does not support the requested cryptographic operation.")
        }
        _ => "The external key store proxy is in an unhealthy state. Retry the request.".to_string(),
    }
}

/// The connection error code of a failed health probe at connect time.
fn connect_error_code(e: &XksError) -> &'static str {
    use ErrorName as N;
    match e {
        XksError::Timeout => "XKS_PROXY_TIMED_OUT",
        XksError::Unreachable => "XKS_PROXY_NOT_REACHABLE",
        XksError::Tls(_) => "XKS_PROXY_INVALID_TLS_CONFIGURATION",
        XksError::InvalidResponse(_) => "XKS_PROXY_INVALID_RESPONSE",
        XksError::RefusedAddress(_) => "XKS_PROXY_INVALID_CONFIGURATION",
        XksError::Proxy { name, .. } => match name {
            Some(N::AuthenticationFailedException) => "INVALID_CREDENTIALS",
            Some(N::AccessDeniedException) => "XKS_PROXY_ACCESS_DENIED",
            Some(N::InvalidUriPathException) => "XKS_PROXY_INVALID_CONFIGURATION",
            Some(N::DependencyTimeoutException) => "XKS_PROXY_TIMED_OUT",
            Some(N::ThrottlingException) => "XKS_PROXY_NOT_REACHABLE",
            _ => "XKS_PROXY_INVALID_RESPONSE",
        },
    }
}

fn metadata(call: &Call, key_arn: Option<&str>) -> RequestMetadata {
    RequestMetadata {
        kms_request_id: call.request_id.clone(),
        kms_operation: call.operation.to_string(),
        aws_principal_arn: (!call.principal.arn.is_empty()).then(|| call.principal.arn.clone()),
        kms_key_arn: key_arn.map(str::to_string),
        ..RequestMetadata::default()
    }
}

fn proxy_aad(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let mut d = digest::Context::new(&digest::SHA256);
    d.update(PROXY_AAD_CONTEXT);
    d.update(&ciphertext::aad(header, context));
    d.finish().as_ref().to_vec()
}

/// The outer envelope of a version-2 blob.
struct Outer<'a> {
    iv: &'a [u8],
    tag: &'a [u8],
    metadata: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse_outer(b: &[u8]) -> Option<Outer<'_>> {
    let (&iv_len, rest) = b.split_first()?;
    let iv_len = iv_len as usize;
    if !(iv_len == 12 || iv_len == 16) || rest.len() < iv_len + 16 + 1 {
        return None;
    }
    let (iv, rest) = rest.split_at(iv_len);
    let (tag, rest) = rest.split_at(16);
    let (&cm_len, rest) = rest.split_first()?;
    let cm_len = cm_len as usize;
    if cm_len > xks_wire::MAX_CIPHERTEXT_METADATA || rest.len() < cm_len + 16 {
        return None;
    }
    let (metadata, ciphertext) = rest.split_at(cm_len);
    Some(Outer {
        iv,
        tag,
        metadata,
        ciphertext,
    })
}

/// The proxy's Encrypt answer as the outer envelope of a version-2 blob (what `parse_outer`
/// reads back), or `None` when the answer is not one a proxy may give: Base64 that does not
/// decode, an IV of neither 12 nor 16 bytes, a tag of not 16, metadata over the limit, or a
/// ciphertext whose length differs from the `inner_len` bytes sent.
fn outer_envelope(out: &EncryptResponse, inner_len: usize) -> Option<Vec<u8>> {
    let iv = out.initialization_vector.decode().ok()?;
    let tag = out.authentication_tag.decode().ok()?;
    let ct = out.ciphertext.decode().ok()?;
    let cm = match &out.ciphertext_metadata {
        Some(c) => c.decode().ok()?,
        None => Vec::new(),
    };
    if !(iv.len() == 12 || iv.len() == 16)
        || tag.len() != 16
        || cm.len() > xks_wire::MAX_CIPHERTEXT_METADATA
        || ct.len() != inner_len
    {
        return None;
    }
    let mut e = Vec::with_capacity(2 + iv.len() + tag.len() + cm.len() + ct.len());
    e.push(iv.len() as u8);
    e.extend_from_slice(&iv);
    e.extend_from_slice(&tag);
    e.push(cm.len() as u8);
    e.extend_from_slice(&cm);
    e.extend_from_slice(&ct);
    Some(e)
}

/// Entry points for the fuzz targets (`fuzz/`): the parsers of this module, unchanged.
#[doc(hidden)]
pub mod fuzzing {
    /// The parts of a version-2 blob's outer envelope.
    pub struct OuterParts<'a> {
        pub iv: &'a [u8],
        pub tag: &'a [u8],
        pub metadata: &'a [u8],
        pub ciphertext: &'a [u8],
    }

    /// The outer envelope of a version-2 blob's body.
    pub fn parse_outer(b: &[u8]) -> Option<OuterParts<'_>> {
        super::parse_outer(b).map(|o| OuterParts {
            iv: o.iv,
            tag: o.tag,
            metadata: o.metadata,
            ciphertext: o.ciphertext,
        })
    }

    /// A proxy's Encrypt response body, decoded as the client decodes it, then checked and
    /// turned into the outer envelope as `xks_seal` does.
    pub fn encrypt_response_envelope(body: &[u8], inner_len: usize) -> Option<Vec<u8>> {
        let out: xks_wire::EncryptResponse = serde_json::from_slice(body).ok()?;
        super::outer_envelope(&out, inner_len)
    }
}

impl CustomKeyStores {
    async fn xks_store_of(&self, call: &Call, id: &str) -> KmsResult<CustomKeyStoreRecord> {
        match self.store.get_custom_key_store(id).await? {
            Some(s) if s.account == call.principal.account && s.region == self.region_of(call) => {
                Ok(s)
            }
            _ => Err(KmsError::CustomKeyStoreNotFound(format!(
                "Custom key store '{id}' does not exist"
            ))),
        }
    }

    /// GetHealthStatus through a client; an all-UNAVAILABLE fleet counts as unreachable.
    async fn probe(
        &self,
        client: &XksClient,
        call: &Call,
        store_id: Option<&str>,
    ) -> Result<GetHealthStatusResponse, XksError> {
        let req = MetadataOnlyRequest {
            request_metadata: Some(metadata(call, None)),
        };
        let r = client
            .call::<_, GetHealthStatusResponse>(Operation::GetHealthStatus, "", &req)
            .await;
        if let (Some(id), Ok(h)) = (store_id, &r) {
            let left_out = self.metrics.set_ekm_states(id, &h.ekm_fleet_details);
            if left_out > 0 {
                tracing::warn!(custom_key_store_id = %id, left_out,
                    "external key manager instances left out of the metrics (more than 10, \
                     repeated, or an id that is not 1-64 characters of A-Z a-z 0-9 . _ : -)");
            }
        }
        if let (Some(id), Some(not_after)) = (store_id, client.certificate_not_after()) {
            let days = (not_after - self.clock.now().timestamp()) as f64 / 86_400.0;
            self.metrics.set_cert_days_left(id, days);
        }
        r.and_then(|h| {
            let all_down = !h.ekm_fleet_details.is_empty()
                && h.ekm_fleet_details
                    .iter()
                    .all(|d| d.health_status == HealthStatus::Unavailable);
            if all_down {
                Err(XksError::Unreachable)
            } else {
                Ok(h)
            }
        })
    }

    fn check_credential(akid: &str, secret: &SecretString) -> KmsResult<()> {
        let akid_ok = (20..=30).contains(&akid.len())
            && akid
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
        let s = secret.expose_secret();
        let secret_ok = (43..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if !akid_ok || !secret_ok {
            return Err(KmsError::Validation(
                "XksProxyAuthenticationCredential must have an AccessKeyId of 20-30 characters \
                 [A-Z2-7] and a RawSecretAccessKey of 43-64 characters [a-zA-Z0-9/+=]."
                    .into(),
            ));
        }
        Ok(())
    }

    pub async fn create_xks_store(&self, call: &mut Call, req: NewXksStore) -> KmsResult<String> {
        let (Some(endpoint), Some(path), Some(connectivity), Some(akid), Some(secret)) = (
            req.uri_endpoint,
            req.uri_path,
            req.connectivity,
            req.access_key_id,
            req.secret,
        ) else {
            return Err(KmsError::Validation(
                "XksProxyUriEndpoint, XksProxyUriPath, XksProxyConnectivity and \
                 XksProxyAuthenticationCredential are required for an EXTERNAL_KEY_STORE custom key store."
                    .into(),
            ));
        };
        if parse_endpoint(&endpoint).is_none() {
            return Err(KmsError::Validation(format!(
                "XksProxyUriEndpoint '{endpoint}' must be https://<host name>[:port]"
            )));
        }
        if !valid_uri_path(&path) {
            return Err(KmsError::Validation(format!(
                "XksProxyUriPath '{path}' must begin with / and end with /kms/xks/v1, using only a-z, A-Z, 0-9, /, _ and -"
            )));
        }
        Self::check_credential(&akid, &secret)?;
        if connectivity == "VPC_ENDPOINT_SERVICE" {
            return Err(KmsError::XksProxyVpcEndpointServiceNotFound(
                "VPC endpoint service connectivity is not available in this deployment; use PUBLIC_ENDPOINT.".into(),
            ));
        }
        let account = call.principal.account.clone();
        let existing = self
            .store
            .list_custom_key_stores(&account, self.region_of(call))
            .await?;
        if existing.iter().any(|s| s.name == req.name) {
            return Err(super::custom_key_stores::store_name_in_use(&req.name));
        }
        if existing
            .iter()
            .filter_map(|s| s.xks.as_ref())
            .any(|x| x.uri_endpoint == endpoint && x.uri_path == path)
        {
            return Err(KmsError::XksProxyUriInUse(format!(
                "The XksProxyUriEndpoint and XksProxyUriPath {endpoint}{path} are already used by another external key store"
            )));
        }
        // Refused early here, before the proxy is probed; the store's insert decides.
        let quota = self.limits.custom_key_stores_for(&account);
        if existing.len() >= quota {
            return Err(super::custom_key_stores::store_quota_exceeded(quota));
        }
        let settings = XksProxySettings {
            uri_endpoint: endpoint,
            uri_path: path,
            connectivity,
            vpc_endpoint_service_name: req.vpc_endpoint_service_name,
            access_key_id: akid,
            credential_date: Some(self.clock.now()),
        };
        // Test the configuration the way AWS does: GetHealthStatus signed with the credential.
        let client =
            self.connections
                .xks
                .client_for(&settings, secret.clone(), self.region_of(call))?;
        self.connections.xks.admit_probe(&account)?;
        self.probe(&client, call, None)
            .await
            .map_err(|e| proxy_error(&e, Context::Management))?;
        let id = super::custom_key_stores::new_store_id()?;
        let record = CustomKeyStoreRecord {
            id: id.clone(),
            account,
            region: self.region_of(call).to_string(),
            name: req.name,
            store_type: CustomKeyStoreType::ExternalKeyStore,
            cluster_id: None,
            trust_anchor: None,
            password_encrypted: self.seal_secret(&id, &secret).await?,
            connection_state: ConnectionState::Disconnected,
            connection_error: None,
            creation_date: self.clock.now(),
            row_version: 1,
            xks: Some(settings),
        };
        // Another create may have taken the name since the look-up above: the store decides.
        self.store.insert_custom_key_store(&record, quota).await?;
        Ok(id)
    }

    /// ConnectCustomKeyStore for an external key store (the caller checked the state), under
    /// the store's connect claim (`claim`, or waited for here; see `store_sync`).
    pub(crate) async fn connect_xks_store(
        &self,
        call: &Call,
        mut store: CustomKeyStoreRecord,
        claim: Option<crate::store::Lease>,
    ) -> KmsResult<()> {
        let Some(settings) = store.xks.clone() else {
            return Err(KmsError::internal_because(super::InternalCause::Invariant(
                "an external key store without proxy settings",
            )));
        };
        // Before the turn lock (its holders never wait for a claim); held to the outcome.
        let _claim = match claim {
            Some(c) => c,
            None => self
                .store
                .claim_store_connect(&store.id, true)
                .await?
                .ok_or_else(|| {
                    KmsError::internal_because(super::InternalCause::Invariant(
                        "a waited-for claim was not granted",
                    ))
                })?,
        };
        // One change of this node's attachment at a time (`store_sync`).
        let turn = self.connections.current_turn(&store.id);
        let _one_at_a_time = turn.lock.lock().await;
        let secret = self
            .open_secret(&store.id, &store.password_encrypted)
            .await?;
        store.connection_state = ConnectionState::Connecting;
        store.connection_error = None;
        let mut store = self.store.update_custom_key_store(&store).await?;
        let client = Arc::new(
            self.connections
                .xks
                .client_for(&settings, secret, &store.region)?
                .with_metrics(self.metrics.clone(), &store.id),
        );
        match self.probe(&client, call, Some(&store.id)).await {
            Ok(_) => {
                store.connection_state = ConnectionState::Connected;
                let written = self.store.update_custom_key_store(&store).await?;
                let fp = super::custom_key_stores::fingerprint(&written);
                self.connections.attach_xks(&store.id, client, fp);
            }
            Err(e) => {
                store.connection_state = ConnectionState::Failed;
                store.connection_error = Some(connect_error_code(&e).to_string());
                self.store.update_custom_key_store(&store).await?;
                tracing::warn!(custom_key_store_id = %store.id, error = %e, "external key store connect failed");
            }
        }
        Ok(())
    }

    /// The periodic health check (`KmsHealthCheck`) of every connected proxy; failures are
    /// logged with the connection error code they would cause. With several nodes (each has
    /// every connected store attached) one node checks: the holder of the `XksHealth` lease,
    /// which it keeps across passes while there is a proxy to check, so each proxy is checked
    /// once per maintenance interval however many nodes run passes.
    pub(crate) async fn xks_health_pass(&self) -> usize {
        let clients: Vec<(String, Arc<XksClient>)> = self
            .connections
            .xks
            .connected
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut lease = self.connections.xks.health_lease.lock().await;
        if clients.is_empty() {
            *lease = None; // nothing to check: no database session kept for it
            return 0;
        }
        if !lease.as_ref().is_some_and(|l| l.alive()) {
            *lease = self
                .store
                .try_lease(crate::store::LeaseName::XksHealth)
                .await
                .ok()
                .flatten();
        }
        if lease.is_none() {
            return 0; // another node checks
        }
        let mut unhealthy = 0;
        for (store_id, client) in clients {
            let call = Call::internal("", "KmsHealthCheck");
            if let Ok(Some(rec)) = self.store.get_custom_key_store(&store_id).await {
                if let Some(since) = rec.xks.and_then(|x| x.credential_date) {
                    let days = (self.clock.now() - since).num_seconds() as f64 / 86_400.0;
                    self.metrics.set_credential_age_days(&store_id, days);
                }
            }
            if let Err(e) = self.probe(&client, &call, Some(&store_id)).await {
                unhealthy += 1;
                tracing::warn!(custom_key_store_id = %store_id, code = connect_error_code(&e), error = %e,
                    "external key store proxy health check failed");
            }
        }
        unhealthy
    }

    pub(crate) fn disconnect_xks_store(&self, store_id: &str) {
        self.connections.xks.connected.write().remove(store_id);
        self.metrics.forget_xks_store(store_id);
    }

    /// UpdateCustomKeyStore for an external key store: the new settings are probed first.
    pub(crate) async fn update_xks_store(
        &self,
        call: &Call,
        store: &mut CustomKeyStoreRecord,
        u: XksUpdate,
    ) -> KmsResult<()> {
        let Some(mut settings) = store.xks.clone() else {
            return Err(KmsError::internal_because(super::InternalCause::Invariant(
                "an external key store without proxy settings",
            )));
        };
        let connected = store.connection_state != ConnectionState::Disconnected;
        if connected
            && (u.uri_endpoint.is_some()
                || u.connectivity.is_some()
                || u.vpc_endpoint_service_name.is_some())
        {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {} must be DISCONNECTED to change XksProxyUriEndpoint, \
                 XksProxyConnectivity or XksProxyVpcEndpointServiceName",
                store.id
            )));
        }
        if u.access_key_id.is_some() != u.secret.is_some() {
            return Err(KmsError::Validation(
                "XksProxyAuthenticationCredential needs both AccessKeyId and RawSecretAccessKey."
                    .into(),
            ));
        }
        if let Some(e) = u.uri_endpoint {
            if parse_endpoint(&e).is_none() {
                return Err(KmsError::Validation(format!(
                    "XksProxyUriEndpoint '{e}' must be https://<host name>[:port]"
                )));
            }
            settings.uri_endpoint = e;
        }
        if let Some(p) = u.uri_path {
            if !valid_uri_path(&p) {
                return Err(KmsError::Validation(format!(
                    "XksProxyUriPath '{p}' must begin with / and end with /kms/xks/v1"
                )));
            }
            settings.uri_path = p;
        }
        if let Some(c) = u.connectivity {
            if c == "VPC_ENDPOINT_SERVICE" {
                return Err(KmsError::XksProxyVpcEndpointServiceNotFound(
                    "VPC endpoint service connectivity is not available in this deployment.".into(),
                ));
            }
            settings.connectivity = c;
        }
        let secret = match (u.access_key_id, u.secret) {
            (Some(akid), Some(secret)) => {
                Self::check_credential(&akid, &secret)?;
                settings.access_key_id = akid;
                settings.credential_date = Some(self.clock.now());
                secret
            }
            _ => {
                self.open_secret(&store.id, &store.password_encrypted)
                    .await?
            }
        };
        let client = Arc::new(
            self.connections
                .xks
                .client_for(&settings, secret.clone(), &store.region)?
                .with_metrics(self.metrics.clone(), &store.id),
        );
        self.connections.xks.admit_probe(&store.account)?;
        self.probe(&client, call, Some(&store.id))
            .await
            .map_err(|e| proxy_error(&e, Context::Management))?;
        store.password_encrypted = self.seal_secret(&store.id, &secret).await?;
        store.xks = Some(settings);
        if connected && self.connections.xks.client(&store.id).is_some() {
            self.connections
                .xks
                .connected
                .write()
                .insert(store.id.clone(), client);
        }
        Ok(())
    }

    /// CreateKey with Origin=EXTERNAL_KEY_STORE.
    #[allow(clippy::too_many_arguments)] // CreateKey's members for this key store
    pub async fn create_xks_key(
        &self,
        call: &mut Call,
        store_id: &str,
        xks_key_id: &str,
        description: String,
        policy: Option<String>,
        bypass_policy_lockout: Option<bool>,
        tags: Vec<Tag>,
    ) -> KmsResult<KeyRecord> {
        let store = self.xks_store_of(call, store_id).await?;
        if store.store_type != CustomKeyStoreType::ExternalKeyStore {
            return Err(KmsError::Validation(format!(
                "Custom key store {store_id} is not an EXTERNAL_KEY_STORE; use Origin AWS_CLOUDHSM"
            )));
        }
        let Some(client) = self.connections.xks.client(store_id) else {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {store_id} is not connected"
            )));
        };
        if !xks_wire::is_valid_key_id(xks_key_id) {
            return Err(KmsError::Validation(format!(
                "XksKeyId '{xks_key_id}' must be 1-128 characters of A-Z, a-z, 0-9, -, . and _"
            )));
        }
        if self
            .store
            .find_key_by_xks_id(store_id, xks_key_id)
            .await?
            .is_some()
        {
            return Err(KmsError::XksKeyAlreadyInUse(format!(
                "The external key {xks_key_id} is already associated with a KMS key in custom key store {store_id}"
            )));
        }
        let account = call.principal.account.clone();
        let key_id = KeyId::generate();
        let arn =
            crate::model::KeyArn::new(&self.partition, self.region_of(call), &account, &key_id).0;
        let policy = self.new_key_policy(call, &arn, policy, bypass_policy_lockout)?;
        self.check_key_quota(&account, self.region_of(call)).await?;
        let req = MetadataOnlyRequest {
            request_metadata: Some(metadata(call, None)),
        };
        let meta = client
            .call::<_, GetKeyMetadataResponse>(Operation::GetKeyMetadata, xks_key_id, &req)
            .await
            .map_err(|e| proxy_error(&e, Context::CreateKey))?;
        if meta.key_spec != xks_wire::KEY_SPEC_AES_256 {
            return Err(KmsError::XksKeyInvalidConfiguration(format!(
                "The key spec of the external key must be AES_256. The key spec of the specified external key is {}.",
                meta.key_spec
            )));
        }
        if meta.key_status != xks_wire::KEY_STATUS_ENABLED {
            return Err(KmsError::XksKeyInvalidConfiguration(format!(
                "The external key status must be ENABLED. The status of the specified external key is {}.",
                meta.key_status
            )));
        }
        if !(meta.key_usage.iter().any(|u| u == "ENCRYPT")
            && meta.key_usage.iter().any(|u| u == "DECRYPT"))
        {
            return Err(KmsError::XksKeyInvalidConfiguration(format!(
                "The key usage of the external key must include ENCRYPT and DECRYPT. The key usage of the specified external key is {}.",
                meta.key_usage.join(", ")
            )));
        }
        let wrapped = self
            .root
            .generate_symmetric(MaterialId {
                key_id: &key_id,
                version: 1,
                label: &arn,
                spec: crate::model::KeySpec::SymmetricDefault,
            })
            .await?;
        let now = self.clock.now();
        let key = KeyRecord {
            key_id: key_id.clone(),
            account,
            region: self.region_of(call).to_string(),
            arn,
            description,
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::ExternalKeyStore,
            state: KeyState::Enabled,
            creation_date: now,
            deletion_date: None,
            pending_window_days: None,
            policy,
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation_date: None,
            current_material: 1,
            row_version: 1,
            custom_key_store_id: Some(store_id.to_string()),
            xks_key_id: Some(xks_key_id.to_string()),
            public_key: None,
            mrk_primary_region: None,
            unavailable: false,
        };
        let material = MaterialRecord {
            key_id,
            version: 1,
            wrapped,
            created: now,
            rotation_type: None,
            material_id: None,
            import: None,
        };
        let limit = self.limits.keys_for(&key.account);
        self.store.insert_key(&key, &material, &tags, limit).await?;
        call.touch(&key);
        Ok(key)
    }
}

impl Core {
    /// Double encryption: KMS-side material, then the external key over that ciphertext.
    pub(crate) async fn xks_seal(
        &self,
        call: &Call,
        key: &KeyRecord,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Vec<u8>> {
        let (Some(store_id), Some(xks_key_id)) = (&key.custom_key_store_id, &key.xks_key_id) else {
            return Err(KmsError::internal());
        };
        // Connected check and the per-store quota.
        self.backend_for(key)?;
        let client = self
            .connections
            .xks
            .client(store_id)
            .ok_or_else(|| KmsError::KmsInvalidState(format!("{} is unavailable.", key.arn)))?;
        let version = key.current_material;
        let header = ciphertext::header_v(ciphertext::VERSION_XKS, &key.key_id, version);
        let inner_aad = ciphertext::aad(&header, context);
        let m = MaterialId {
            key_id: &key.key_id,
            version,
            label: &key.arn,
            spec: key.key_spec,
        };
        let root = self.root.as_ref();
        let inner = self
            .with_material(root, m, KmsError::from, || {
                root.encrypt(m, plaintext, &inner_aad)
            })
            .await?;
        let req = EncryptRequest {
            request_metadata: Some(metadata(call, Some(&key.arn))),
            // Only the KMS-side ciphertext reaches the proxy, never the plaintext.
            plaintext: Some(SecretBase64::encode(&inner.ciphertext_and_tag)),
            encryption_algorithm: xks_wire::AES_GCM.to_string(),
            additional_authenticated_data: Some(Base64::encode(&proxy_aad(&header, context))),
            ciphertext_data_integrity_value_algorithm: None,
        };
        let out = client
            .call::<_, EncryptResponse>(Operation::Encrypt, xks_key_id, &req)
            .await
            .map_err(|e| proxy_error(&e, Context::Crypto))?;
        let envelope = outer_envelope(&out, inner.ciphertext_and_tag.len()).ok_or_else(|| {
            KmsError::KmsInvalidState(crypto_message(
                &XksError::InvalidResponse(String::new()),
                None,
            ))
        })?;
        let mut blob = header;
        blob.extend_from_slice(&inner.iv);
        blob.extend_from_slice(&envelope);
        Ok(blob)
    }

    /// Decrypts a version-2 blob: the proxy's layer, then the KMS-side layer.
    pub(crate) async fn xks_open(
        &self,
        call: &Call,
        key: &KeyRecord,
        parsed: &ParsedBlob<'_>,
        context: &EncryptionContext,
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        let (Some(store_id), Some(xks_key_id)) = (&key.custom_key_store_id, &key.xks_key_id) else {
            return Err(KmsError::InvalidCiphertext);
        };
        self.backend_for(key)?;
        let outer = parse_outer(parsed.ciphertext_and_tag).ok_or(KmsError::InvalidCiphertext)?;
        let client = self
            .connections
            .xks
            .client(store_id)
            .ok_or_else(|| KmsError::KmsInvalidState(format!("{} is unavailable.", key.arn)))?;
        let req = DecryptRequest {
            request_metadata: Some(metadata(call, Some(&key.arn))),
            ciphertext: Some(Base64::encode(outer.ciphertext)),
            ciphertext_metadata: (!outer.metadata.is_empty())
                .then(|| Base64::encode(outer.metadata)),
            encryption_algorithm: xks_wire::AES_GCM.to_string(),
            additional_authenticated_data: Some(Base64::encode(&proxy_aad(parsed.header, context))),
            initialization_vector: Some(Base64::encode(outer.iv)),
            authentication_tag: Some(Base64::encode(outer.tag)),
        };
        let out = client
            .call::<_, DecryptResponse>(Operation::Decrypt, xks_key_id, &req)
            .await
            .map_err(|e| proxy_error(&e, Context::Crypto))?;
        let inner_ct = out.plaintext.decode().map_err(|_| {
            KmsError::KmsInvalidState(crypto_message(
                &XksError::InvalidResponse(String::new()),
                None,
            ))
        })?;
        let inner_aad = ciphertext::aad(parsed.header, context);
        let m = MaterialId {
            key_id: &key.key_id,
            version: parsed.material_version,
            label: &key.arn,
            spec: key.key_spec,
        };
        let root = self.root.as_ref();
        let iv = parsed.iv;
        self.with_material(root, m, KmsError::from, || {
            root.decrypt(m, &iv, &inner_ct, &inner_aad)
        })
        .await
    }
}
