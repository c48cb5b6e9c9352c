//! Shared harnesses of the fuzz targets: an in-process KMS (software root, SQLite in a temporary
//! directory, audit to `/dev/null`) and an in-process XKS proxy (a SoftHSM token private to the
//! process), both driven through their real routers with correctly signed requests, so that the
//! fuzzed bytes reach the JSON decoding, validation and service code behind SigV4.
//!
//! State persists between inputs of one process (keys created by one input are there for the
//! next): a crash is reproduced by its input most of the time, and the target's assertions say
//! what must hold whatever came before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use http_body_util::BodyExt;
use kms::service::clock::SystemClock;
use tower::ServiceExt;

/// The credential of the in-process KMS (account 111122223333).
pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-east-1";

/// Every operation of the KMS JSON API, in a fixed order (the first input byte picks one).
pub const OPERATIONS: &[&str] = &[
    "CancelKeyDeletion",
    "ConnectCustomKeyStore",
    "CreateAlias",
    "CreateCustomKeyStore",
    "CreateGrant",
    "CreateKey",
    "Decrypt",
    "DeleteAlias",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DescribeKey",
    "DisableKey",
    "DisableKeyRotation",
    "DisconnectCustomKeyStore",
    "EnableKey",
    "EnableKeyRotation",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetParametersForImport",
    "GetPublicKey",
    "ImportKeyMaterial",
    "ListAliases",
    "ListGrants",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
    "PutKeyPolicy",
    "ReEncrypt",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "RotateKeyOnDemand",
    "ScheduleKeyDeletion",
    "Sign",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
    "Verify",
    "VerifyMac",
];

/// A directory for throwaway state: `/dev/shm` when there is one (SQLite's fsyncs cost nothing
/// there), else the system's temporary directory.
fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    if shm.is_dir() {
        b.tempdir_in(shm).expect("tempdir in /dev/shm")
    } else {
        b.tempdir().expect("tempdir")
    }
}

/// An in-process KMS on the software root.
pub struct Kms {
    pub rt: tokio::runtime::Runtime,
    router: axum::Router,
    /// Kept (not leaked) for the life of the process: its HSM threads and audit writer.
    _app: kms::app::App,
    signer: sigv4::Signer,
    _dir: tempfile::TempDir,
}

/// An answer: HTTP status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (every answer of the JSON API is JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} with a body that is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl Kms {
    /// The process's KMS, built on first use, with a key of each family under a fixed alias
    /// (the seeds name them): `alias/fuzz-sym`, `alias/fuzz-hmac`, `alias/fuzz-rsa`,
    /// `alias/fuzz-ecc`.
    pub fn get() -> &'static Kms {
        static K: OnceLock<Kms> = OnceLock::new();
        K.get_or_init(|| {
            let kms = Kms::build();
            for (alias, create) in [
                ("alias/fuzz-sym", serde_json::json!({})),
                (
                    "alias/fuzz-hmac",
                    serde_json::json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}),
                ),
                (
                    "alias/fuzz-rsa",
                    serde_json::json!({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}),
                ),
                (
                    "alias/fuzz-ecc",
                    serde_json::json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "KEY_AGREEMENT"}),
                ),
            ] {
                let key = kms.ok("CreateKey", create);
                let id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
                kms.ok(
                    "CreateAlias",
                    serde_json::json!({"AliasName": alias, "TargetKeyId": id}),
                );
            }
            kms
        })
    }

    fn build() -> Kms {
        let dir = scratch_dir("kms-fuzz-");
        let cfg_path = dir.path().join("kms.toml");
        std::fs::write(
            &cfg_path,
            format!(
                "[server]\nlisten = '127.0.0.1:0'\ndata_dir = '{}'\nregion = '{REGION}'\n\
                 [audit]\npath = '/dev/null'\n\
                 [[credentials]]\naccess_key_id = '{ACCESS_KEY}'\nsecret_access_key = '{SECRET_KEY}'\n\
                 principal = 'arn:aws:iam::111122223333:user/alice'\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let config = kms::config::load(Some(&cfg_path), std::iter::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let app = rt
            .block_on(kms::app::build(&config, Arc::new(SystemClock)))
            .unwrap_or_else(|e| panic!("{e}"));
        let router = kms::api::router(app.state.clone());
        Kms {
            rt,
            router,
            _app: app,
            signer: sigv4::Signer::new(ACCESS_KEY, SECRET_KEY, REGION, "kms"),
            _dir: dir,
        }
    }

    /// Sends `TrentService.<operation>` with `body`, signed, and returns the answer.
    pub fn call(&self, operation: &str, body: &[u8]) -> Answer {
        // Signed with the wall clock, as SigV4's skew window is checked against it (a harness
        // that signed with a frozen clock saw every request fail after 5 minutes).
        let headers = self
            .signer
            .sign_kms_json("localhost", operation, body, chrono::Utc::now())
            .unwrap();
        let mut req = http::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "localhost");
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req.body(Body::from(body.to_vec())).unwrap();
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            Answer {
                status,
                body: body.to_vec(),
            }
        })
    }

    /// Like [`Kms::call`] with a JSON value; panics unless it succeeds.
    pub fn ok(&self, operation: &str, body: serde_json::Value) -> serde_json::Value {
        let a = self.call(operation, body.to_string().as_bytes());
        assert_eq!(
            a.status,
            200,
            "{operation}: {}",
            String::from_utf8_lossy(&a.body)
        );
        a.json()
    }
}

/// Checks the shape every non-200 answer must have: AWS's `{"__type", "message"?}`, and never
/// a 500 (an internal error on client input is a bug: the input should have been refused).
pub fn check_error_shape(operation: &str, input: &[u8], a: &Answer) {
    if a.status == 200 {
        return;
    }
    let v = a.json();
    let ty = v.get("__type").and_then(|t| t.as_str()).unwrap_or_else(|| {
        panic!("{operation}: HTTP {} without __type: {v}", a.status);
    });
    assert!(
        a.status != 500,
        "{operation}: internal error ({ty}) for input {:?}: {v}",
        String::from_utf8_lossy(input)
    );
    assert!(
        (400..500).contains(&a.status),
        "{operation}: HTTP {} ({ty}) for client input",
        a.status
    );
}

// ---------------------------------------------------------------------------------------------
// XKS proxy
// ---------------------------------------------------------------------------------------------

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234";
const SO_PIN: &str = "12345678";
/// The proxy's credential.
pub const XKS_AKID: &str = "AKIAXKSPROXYFUZZONE2";
const XKS_SECRET: &str = "ZnV6ei1zZWNyZXQtb25lLWZvci14a3MtcHJveHktZnV6emluZw==";
/// The proxy's URI path prefix.
pub const XKS_PREFIX: &str = "fuzz/prefix";
/// The external key the proxy serves.
pub const XKS_KEY_ID: &str = "fuzz-key-1";

/// An in-process XKS proxy on a SoftHSM token of its own.
pub struct Proxy {
    pub rt: tokio::runtime::Runtime,
    router: axum::Router,
    /// Kept (not leaked) for the life of the process.
    _running: xks_proxy::RunningProxy,
    signer: sigv4::Signer,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// The process's proxy, built on first use (needs SoftHSMv2: `softhsm/install.sh`).
    pub fn get() -> &'static Proxy {
        static P: OnceLock<Proxy> = OnceLock::new();
        P.get_or_init(Proxy::build)
    }

    fn build() -> Proxy {
        assert!(
            Path::new(SOFTHSM).exists(),
            "SoftHSMv2 is not installed ({SOFTHSM} missing): run softhsm/install.sh"
        );
        let dir = scratch_dir("xks-fuzz-");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Read at C_Initialize, before the module is first loaded by this process.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
        let label = "xks-fuzz";
        hsm::token::init_token(
            Path::new(SOFTHSM),
            label,
            &SO_PIN.to_string().into(),
            &PIN.to_string().into(),
            &profile,
        )
        .unwrap();
        create_aes_key(label, "fuzz-key-label", &profile);
        let cfg_path: PathBuf = dir.path().join("xks-proxy.toml");
        std::fs::write(
            &cfg_path,
            format!(
                "[server]\nlisten = '127.0.0.1:0'\nregion = '{REGION}'\n\
                 [[hsms]]\nname = 'softhsm-a'\nmodule = '{SOFTHSM}'\ntoken_label = '{label}'\npin = '{PIN}'\nmax_sessions = 2\n\
                 [[keys]]\nid = '{XKS_KEY_ID}'\nlabel = 'fuzz-key-label'\nenabled = true\n\
                 [[keystores]]\nprefix = '{XKS_PREFIX}'\n\
                 [[keystores.credentials]]\naccess_key_id = '{XKS_AKID}'\nsecret_access_key = '{XKS_SECRET}'\n"
            ),
        )
        .unwrap();
        let cfg = xks_proxy::config::load(&cfg_path).unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let running = rt
            .block_on(xks_proxy::start(cfg))
            .unwrap_or_else(|e| panic!("{e}"));
        let router = xks_proxy::router(running.state.clone());
        Proxy {
            rt,
            router,
            _running: running,
            signer: sigv4::Signer::new(XKS_AKID, XKS_SECRET, REGION, xks_wire::SIGV4_SERVICE),
            _dir: dir,
        }
    }

    /// POSTs `body` to `path`, signed as AWS KMS signs towards a proxy.
    pub fn call(&self, path: &str, body: &[u8]) -> Answer {
        let Ok(uri) = path.parse::<http::Uri>() else {
            return Answer {
                status: 0,
                body: Vec::new(),
            };
        };
        let signed = self.signer.sign(
            &sigv4::SignableRequest {
                method: "POST",
                host: "localhost",
                path: uri.path(),
                query: uri.query().unwrap_or(""),
                headers: &[],
                body,
            },
            chrono::Utc::now(),
        );
        let Ok(signed) = signed else {
            return Answer {
                status: 0,
                body: Vec::new(),
            };
        };
        let mut req = http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("host", "localhost")
            .header("content-type", "application/json");
        for (name, value) in signed.headers() {
            req = req.header(name, value);
        }
        let req = req.body(Body::from(body.to_vec())).unwrap();
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            Answer {
                status,
                body: body.to_vec(),
            }
        })
    }
}

/// Creates a persistent AES-256 key for the proxy on `token_label`.
fn create_aes_key(token_label: &str, label: &str, profile: &hsm::VendorProfile) {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    use cryptoki::session::UserType;
    let ctx = hsm::module::load(Path::new(SOFTHSM)).unwrap();
    let slot = hsm::token::find_slot(&ctx, token_label, profile).unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&PIN.to_string().into()))
        .unwrap();
    let template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::ValueLen(32.into()),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let _exclusive = hsm::module::object_store_lock().write();
    s.generate_key(&Mechanism::AesKeyGen, &template).unwrap();
}
