//! Test harness: an in-process KMS server on 127.0.0.1:0 with its own data directory and a
//! manual clock, plus real `aws-sdk-kms` clients pointed at it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

pub mod fault_module;
pub mod nodes;
pub mod openssl_import;
pub mod sts;
pub mod xks_test_proxy;

use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use kms::api::AppState;
use kms::service::clock::ManualClock;

/// A real `aws-sdk-kms` client for `endpoint` (us-east-1, no retries).
pub fn sdk_client(endpoint: &str, akid: &str, secret: &str) -> aws_sdk_kms::Client {
    sdk_client_in(endpoint, akid, secret, "us-east-1")
}

/// A real `aws-sdk-kms` client for `endpoint` signing for `region` (no retries).
pub fn sdk_client_in(
    endpoint: &str,
    akid: &str,
    secret: &str,
    region: &str,
) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// Starts the real `kms` binary on 127.0.0.1:0 with `data_dir` and the extra environment
/// `env`, and returns it with its endpoint (read from the first line it prints).
pub fn spawn_kms(
    data_dir: &std::path::Path,
    env: Vec<(String, String)>,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let env = with_store_env(data_dir, env);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kms"))
        .env("KMS_SERVER__LISTEN", "127.0.0.1:0")
        .env("KMS_SERVER__DATA_DIR", data_dir)
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
        .to_string();
    (child, endpoint)
}

/// The metadata store under test: `KMS_TEST_STORE=postgres` runs every suite against
/// PostgreSQL (the cluster of `tests/pg/cluster.sh`, a fresh database per server); anything
/// else is SQLite.
pub fn store() -> &'static str {
    match std::env::var("KMS_TEST_STORE").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// Adds the store under test to the environment of a server on `data_dir` (unless the test
/// chose a store). On PostgreSQL the data directory remembers its database, so a server
/// restarted on the same directory finds its keys.
pub fn with_store_env(
    data_dir: &std::path::Path,
    mut env: Vec<(String, String)>,
) -> Vec<(String, String)> {
    // AWS's request quotas (CreateKey 5/s, ...) are on by default; suites create keys faster
    // than that, so a test server enforces them only when its test asks (tests/quotas.rs).
    if !env.iter().any(|(k, _)| k == "KMS_LIMITS__REQUEST_QUOTAS") {
        env.push(("KMS_LIMITS__REQUEST_QUOTAS".into(), "false".into()));
    }
    if store() == "postgres" && !env.iter().any(|(k, _)| k == "KMS_STORE__KIND") {
        let marker = data_dir.join("test-postgres-url");
        let url = match std::fs::read_to_string(&marker) {
            Ok(url) => url,
            Err(_) => {
                let url = pg::fresh_database();
                std::fs::write(&marker, &url).unwrap();
                url
            }
        };
        env.extend(pg::store_env(&url));
    }
    env
}

/// Runs SQL on the store of the server on `data_dir` (its PostgreSQL database, or its SQLite
/// file with foreign keys on, so deletes cascade as kms's own do): an operator's hand edit.
pub fn store_sql(data_dir: &std::path::Path, sql: &str) {
    if store() == "postgres" {
        let url = std::fs::read_to_string(data_dir.join("test-postgres-url")).unwrap();
        pg::psql(&url, sql);
    } else {
        sqlite_sql(&data_dir.join("kms.sqlite3"), sql);
    }
}

/// Runs SQL on the SQLite database `path` (foreign keys on, waiting out the server's writer).
pub fn sqlite_sql(path: &std::path::Path, sql: &str) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute_batch(&format!("PRAGMA foreign_keys = ON; {sql}"))
        .unwrap();
}

pub mod pg {
    //! The PostgreSQL cluster of `tests/pg/cluster.sh` (`KMS_TEST_PG_URL`,
    //! `KMS_TEST_PG_PASSWORD`).

    /// The admin database's URL; panics (fails the test) when no cluster was started.
    pub fn admin_url() -> String {
        std::env::var("KMS_TEST_PG_URL").unwrap_or_else(|_| {
            panic!(
                "KMS_TEST_PG_URL is not set: start PostgreSQL with \
                 eval \"$(bash tests/pg/cluster.sh start)\""
            )
        })
    }

    pub fn password() -> String {
        std::env::var("KMS_TEST_PG_PASSWORD").expect("KMS_TEST_PG_PASSWORD (tests/pg/cluster.sh)")
    }

    /// Runs SQL with psql against `url`; returns its output (unaligned, tuples only).
    pub fn psql(url: &str, sql: &str) -> String {
        let out = std::process::Command::new("psql")
            .env("PGPASSWORD", password())
            .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output()
            .expect("psql (postgresql-client) must be installed");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates an empty database for one server (or one group of nodes) and returns its URL.
    pub fn fresh_database() -> String {
        let admin = admin_url();
        let name = format!("kms_{}", uuid::Uuid::new_v4().simple());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("KMS_TEST_PG_URL {admin} has no database part"),
        }
    }

    /// `KMS_*` settings for a node on the database at `url`.
    pub fn store_env(url: &str) -> Vec<(String, String)> {
        vec![
            ("KMS_STORE__KIND".into(), "postgres".into()),
            ("KMS_STORE__URL".into(), url.into()),
            ("KMS_STORE__TLS".into(), "disable".into()),
            (
                "KMS_STORE__PASSWORD_ENV".into(),
                "KMS_TEST_PG_PASSWORD".into(),
            ),
            ("KMS_TEST_PG_PASSWORD".into(), password()),
            ("KMS_STORE__POOL_SIZE".into(), "4".into()),
        ]
    }

    /// The store URL a server was started with (from its environment).
    pub fn url_of(env: &[(String, String)]) -> Option<String> {
        env.iter()
            .find(|(k, _)| k == "KMS_STORE__URL")
            .map(|(_, v)| v.clone())
    }

    /// A PostgreSQL cluster of the test's own (`tests/pg/cluster.sh`): restarting the shared one
    /// would disturb the other tests. Stopped and removed on drop.
    pub struct OwnCluster {
        pub dir: std::path::PathBuf,
        pub url: String,
        pub password: String,
        /// The throwaway CA that signed the cluster's server certificate.
        pub ca_file: std::path::PathBuf,
    }

    impl OwnCluster {
        pub fn script() -> std::path::PathBuf {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg/cluster.sh")
        }

        pub fn start() -> OwnCluster {
            Self::start_with(&[])
        }

        /// A cluster started with `cluster.sh start DIR ARGS...` (e.g. `hostssl-only`).
        pub fn start_with(args: &[&str]) -> OwnCluster {
            let dir = std::env::temp_dir().join(format!("kms-pg-own-{}", uuid::Uuid::new_v4()));
            let out = std::process::Command::new("bash")
                .arg(Self::script())
                .args(["start", dir.to_str().unwrap()])
                .args(args)
                .stderr(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "cluster.sh start failed");
            let text = String::from_utf8(out.stdout).unwrap();
            let value = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("export {name}='")))
                    .and_then(|v| v.strip_suffix('\''))
                    .unwrap()
                    .to_string()
            };
            OwnCluster {
                url: value("KMS_TEST_PG_URL"),
                password: value("KMS_TEST_PG_PASSWORD"),
                ca_file: value("KMS_TEST_PG_CA_FILE").into(),
                dir,
            }
        }

        pub fn run(&self, cmd: &str) {
            let status = std::process::Command::new("bash")
                .arg(Self::script())
                .args([cmd, self.dir.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "cluster.sh {cmd} failed");
        }

        /// Has the server present another certificate (`cluster.sh install-cert`: the files
        /// replaced, the configuration reloaded; new sessions get it once the reload is done).
        pub fn install_cert(&self, cert: &std::path::Path, key: &std::path::Path) {
            let status = std::process::Command::new("bash")
                .arg(Self::script())
                .arg("install-cert")
                .args([self.dir.as_path(), cert, key])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "cluster.sh install-cert failed");
        }

        /// The port the cluster listens on (from its URL).
        pub fn port(&self) -> u16 {
            self.url
                .rsplit_once(':')
                .and_then(|(_, rest)| rest.split('/').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no port in {}", self.url))
        }
    }

    impl Drop for OwnCluster {
        fn drop(&mut self) {
            self.run("stop");
        }
    }
}

pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// A second principal in another account.
pub const OTHER_ACCESS_KEY: &str = "AKIAOTHERACCOUNT0001";
pub const OTHER_SECRET_KEY: &str = "otherSecretKeyForTheSecondAccount0000001";

/// The backend under test: `KMS_TEST_BACKEND=pkcs11` runs every suite on the PKCS#11 root
/// (SoftHSMv2, a token created for this test process); anything else is the software root.
pub fn backend() -> &'static str {
    match std::env::var("KMS_TEST_BACKEND").as_deref() {
        Ok("pkcs11") => "pkcs11",
        _ => "software",
    }
}

/// Environment overrides that select the backend under test.
pub fn backend_env() -> Vec<(String, String)> {
    if backend() != "pkcs11" {
        return Vec::new();
    }
    pkcs11_env()
}

/// Environment overrides for the PKCS#11 root on this process's SoftHSM token.
pub fn pkcs11_env() -> Vec<(String, String)> {
    let token = softhsm::test_token();
    vec![
        ("KMS_ROOT__KIND".into(), "pkcs11".into()),
        ("KMS_ROOT__MODULE".into(), token.module.clone()),
        ("KMS_ROOT__TOKEN_LABEL".into(), token.label.clone()),
        ("KMS_ROOT__PIN_ENV".into(), "KMS_TEST_TOKEN_PIN".into()),
        ("KMS_TEST_TOKEN_PIN".into(), token.pin.clone()),
        // A domain key per server, so concurrent tests never race to create one.
        (
            "KMS_ROOT__DOMAIN_KEY_LABEL".into(),
            format!("kms-domain-{}", uuid::Uuid::new_v4()),
        ),
    ]
}

pub mod softhsm {
    //! A SoftHSMv2 token private to this test process.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    /// A fresh cluster for one test: new tokens with user PIN `pin`, the same cluster key
    /// provisioned on each (as an operator would), and a trust anchor certificate.
    pub struct TestCluster {
        pub id: String,
        pub members: Vec<String>,
        pub pin: String,
        pub trust_anchor_pem: String,
        pub trust_anchor_path: std::path::PathBuf,
        /// The PKCS#11 module the server uses for each member.
        pub modules: Vec<String>,
        /// The account that owns the cluster (default: the development credential's).
        pub account: String,
        /// Lines of the `[[clusters]]` table besides id and trust anchor (`profile`, `sessions`,
        /// `requests_per_second`, ...).
        pub settings: String,
    }

    impl TestCluster {
        /// CreateCustomKeyStore on this cluster, named `name`, with `password` as the crypto
        /// user's password; the new store's id.
        pub async fn create_store(
            &self,
            kms: &aws_sdk_kms::Client,
            name: &str,
            password: &str,
        ) -> String {
            kms.create_custom_key_store()
                .custom_key_store_name(name)
                .cloud_hsm_cluster_id(&self.id)
                .trust_anchor_certificate(&self.trust_anchor_pem)
                .key_store_password(password)
                .send()
                .await
                .unwrap()
                .custom_key_store_id
                .unwrap()
        }

        /// The `[[clusters]]` TOML section for this cluster.
        pub fn toml(&self) -> String {
            let mut t = format!(
                "[[clusters]]\nid = '{}'\naccount = '{}'\ntrust_anchor_file = '{}'\n{}\n",
                self.id,
                self.account,
                self.trust_anchor_path.display(),
                self.settings
            );
            for (i, m) in self.members.iter().enumerate() {
                t.push_str(&format!(
                    "[[clusters.members]]\nname = 'hsm-{i}'\nmodule = '{}'\ntoken_label = '{m}'\n",
                    self.modules[i]
                ));
            }
            t
        }

        /// Path of a fault marker of a member (see softhsm/fault-module/fault.c).
        fn marker(&self, member: usize, kind: &str) -> std::path::PathBuf {
            fault_dir().join(format!("{}.{kind}", self.members[member]))
        }

        /// Makes a member's HSM fail: every call on it returns CKR_DEVICE_ERROR (needs a
        /// cluster from [`fault_cluster`]).
        pub fn fail_member(&self, member: usize) {
            std::fs::write(self.marker(member, "fail"), b"").unwrap();
        }

        /// Removes a member's token: it leaves the slot list, calls return
        /// CKR_TOKEN_NOT_PRESENT / CKR_DEVICE_REMOVED.
        pub fn remove_member(&self, member: usize) {
            std::fs::write(self.marker(member, "removed"), b"").unwrap();
        }

        /// Undoes [`Self::fail_member`] and [`Self::remove_member`].
        pub fn restore_member(&self, member: usize) {
            for kind in ["fail", "removed"] {
                let _ = std::fs::remove_file(self.marker(member, kind));
            }
        }

        /// Makes each C_Encrypt/C_Decrypt on a member take `ms` longer (0: no delay).
        pub fn delay_member(&self, member: usize, ms: u64) {
            if ms == 0 {
                let _ = std::fs::remove_file(self.marker(member, "delay-ms"));
            } else {
                std::fs::write(self.marker(member, "delay-ms"), ms.to_string()).unwrap();
            }
        }

        /// Makes each user login (C_Login as CKU_USER) on a member take `ms` longer (0: none).
        pub fn delay_logins(&self, member: usize, ms: u64) {
            if ms == 0 {
                let _ = std::fs::remove_file(self.marker(member, "login-delay-ms"));
            } else {
                std::fs::write(self.marker(member, "login-delay-ms"), ms.to_string()).unwrap();
            }
        }

        /// Consecutive wrong user PINs the fault module counted on a member.
        pub fn failed_logins(&self, member: usize) -> u32 {
            std::fs::read_to_string(self.marker(member, "failed-logins"))
                .map(|s| s.trim().parse().unwrap())
                .unwrap_or(0)
        }

        /// Keeps each member's crypto user PIN in the fault module, shared by every process
        /// (as a networked HSM does; SoftHSM keeps the PIN a process saw when it loaded the
        /// module). Needs a cluster from [`fault_cluster`].
        pub fn share_pins(&self) {
            for m in 0..self.members.len() {
                std::fs::write(self.marker(m, "shared-pin"), format!("{POOL_PIN}\n")).unwrap();
            }
        }

        /// The hash the fault module keeps of a member's current PIN ([`Self::share_pins`]).
        pub fn shared_pin_hash(&self, member: usize) -> Option<String> {
            std::fs::read_to_string(self.marker(member, "pin-hash"))
                .ok()
                .map(|s| s.trim().to_string())
        }

        /// Unlocks a locked-out user (as the cluster's administrator would).
        pub fn unlock_member(&self, member: usize) {
            let _ = std::fs::remove_file(self.marker(member, "failed-logins"));
        }
    }

    /// The directory of fault markers read by the fault module (`KMS_FAULT_DIR`).
    pub fn fault_dir() -> std::path::PathBuf {
        test_token().dir.join("faults")
    }

    /// Builds the fault-injection PKCS#11 module (softhsm/fault-module/) once per process and
    /// returns its path. It forwards to SoftHSM, so its tokens are this process's tokens.
    pub fn fault_module() -> &'static str {
        static PATH: OnceLock<String> = OnceLock::new();
        PATH.get_or_init(|| {
            let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("kms-fault-module")
                .join("libkmsfault.so");
            super::fault_module::build(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), &out);
            out.display().to_string()
        })
    }

    /// A cluster whose members the server reaches through SoftHSM itself.
    pub fn cluster(n_members: usize) -> TestCluster {
        cluster_on(n_members, MODULE)
    }

    /// A cluster whose members the server reaches through the fault module, so a test can
    /// fail, remove, slow down or lock out a member.
    pub fn fault_cluster(n_members: usize) -> TestCluster {
        cluster_on(n_members, fault_module())
    }

    fn cluster_on(n_members: usize, server_module: &str) -> TestCluster {
        use cryptoki::object::{Attribute, KeyType, ObjectClass};
        use cryptoki::session::UserType;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(0);
        let token = test_token();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let first = NEXT_TOKEN.fetch_add(n_members, Ordering::SeqCst);
        let pid = std::process::id();
        let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
        let module = std::path::Path::new(MODULE);
        assert!(
            first + n_members <= POOL,
            "the test process used up its {POOL} cluster tokens (raise POOL)"
        );
        let pin = POOL_PIN.to_string();
        let mut value = [0u8; 32];
        for (i, b) in value.iter_mut().enumerate() {
            *b = (uuid::Uuid::new_v4().as_bytes()[i % 16]) ^ (i as u8);
        }
        let mut members = Vec::new();
        for m in 0..n_members {
            let label = format!("pool-{}", first + m);
            let ctx = hsm::module::load(module).unwrap();
            let slot = hsm::token::find_slot(&ctx, &label, &profile).unwrap();
            let s = ctx.open_rw_session(slot).unwrap();
            s.login(UserType::User, Some(&pin.clone().into())).unwrap();
            // Other tests of this process may be writing or searching SoftHSM's object store.
            let _exclusive = hsm::module::object_store_lock().write();
            s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
                Attribute::Label(b"kms-cluster-key".to_vec()),
                Attribute::Value(value.to_vec()),
            ])
            .unwrap();
            s.logout().unwrap();
            members.push(label);
        }
        let cert = rcgen::generate_simple_self_signed(vec![format!("cluster-{n}")]).unwrap();
        let pem = cert.cert.pem();
        let path = token.dir.join(format!("customerCA-{n}.crt"));
        std::fs::write(&path, &pem).unwrap();
        TestCluster {
            id: format!(
                "cluster-{:0>11}",
                format!("t{pid}x{n}").chars().take(11).collect::<String>()
            ),
            modules: vec![server_module.to_string(); members.len()],
            members,
            pin,
            trust_anchor_pem: pem,
            trust_anchor_path: path,
            account: "111122223333".into(),
            settings: "profile = 'softhsm2'\nsession_wait_ms = 200".into(),
        }
    }

    pub struct TestToken {
        pub module: String,
        pub label: String,
        pub pin: String,
        pub so_pin: String,
        pub dir: std::path::PathBuf,
    }

    pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    /// Cluster member tokens available to one test process.
    const POOL: usize = 24;
    /// The initial user PIN of the pool tokens (the cluster's `kmsuser` password).
    pub const POOL_PIN: &str = "kmsuserPIN1";

    /// Creates (once per process) a token directory and configuration, points SOFTHSM2_CONF at
    /// it before the module is first loaded, and initializes a token. Panics (fails the test)
    /// when SoftHSMv2 is not installed: run `softhsm/install.sh`.
    pub fn test_token() -> &'static TestToken {
        static TOKEN: OnceLock<TestToken> = OnceLock::new();
        TOKEN.get_or_init(|| {
            assert!(
                std::path::Path::new(MODULE).exists(),
                "SoftHSMv2 is not installed ({MODULE} missing): run softhsm/install.sh"
            );
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("kms-test-softhsm-{}", std::process::id()));
            // A directory of this name is a dead process's whose PID was reused: its tokens
            // carry the same labels (one with a PIN a test changed made a pool login fail with
            // CKR_PIN_INCORRECT), so start from nothing.
            let _ = std::fs::remove_dir_all(&dir);
            let tokens = dir.join("tokens");
            std::fs::create_dir_all(&tokens).unwrap();
            let conf = dir.join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                    tokens.display()
                ),
            )
            .unwrap();
            std::env::set_var("SOFTHSM2_CONF", &conf);
            // Read by the fault module (softhsm/fault-module/) when it is first loaded.
            std::fs::create_dir_all(dir.join("faults")).unwrap();
            std::env::set_var("KMS_FAULT_DIR", dir.join("faults"));
            // SoftHSM lists slots once per process (at C_Initialize), so every token this
            // process will use is created now, before the module is loaded: the server's token
            // and a pool of cluster member tokens.
            let mut labels = vec!["kms-test".to_string()];
            labels.extend((0..POOL).map(|i| format!("pool-{i}")));
            for label in &labels {
                let pin = if label == "kms-test" { "1234" } else { POOL_PIN };
                let out = std::process::Command::new("softhsm2-util")
                    .env("SOFTHSM2_CONF", &conf)
                    .args(["--init-token", "--free", "--label", label, "--so-pin", "12345678", "--pin", pin])
                    .output()
                    .expect("softhsm2-util (package softhsm2) must be installed");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
            TestToken {
                module: MODULE.into(),
                label: "kms-test".into(),
                pin: "1234".into(),
                so_pin: "12345678".into(),
                dir,
            }
        })
    }
}

/// Server logs for tests: `KMS_LOG=debug cargo test ...`.
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("KMS_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

pub struct TestServer {
    pub endpoint: String,
    pub clock: Arc<ManualClock>,
    pub state: Arc<AppState>,
    pub data_dir: tempfile::TempDir,
    /// The `KMS_*` overrides the server was started with.
    pub env: Vec<(String, String)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts a server with two credentials: the default dev user (account 111122223333) and
    /// a user in account 444455556666.
    pub async fn start() -> TestServer {
        Self::start_with(backend_env()).await
    }

    /// Starts a server on the PKCS#11 root whatever `KMS_TEST_BACKEND` says.
    pub async fn start_pkcs11() -> TestServer {
        Self::start_with(pkcs11_env()).await
    }

    /// Starts a server with extra configuration from `env` (`KMS_*` variables).
    pub async fn start_with(env: Vec<(String, String)>) -> TestServer {
        Self::start_with_config("", env).await
    }

    /// Starts a server with extra TOML appended to its configuration file.
    pub async fn start_with_config(extra_toml: &str, env: Vec<(String, String)>) -> TestServer {
        init_logs();
        let data_dir = tempfile::tempdir().unwrap();
        let env = with_store_env(data_dir.path(), env);
        let cfg_path = data_dir.path().join("kms.toml");
        std::fs::write(
            &cfg_path,
            format!(
                "[server]\nlisten = '127.0.0.1:0'\ndata_dir = '{}'\nbaseline_route = true\n\
                 [[credentials]]\naccess_key_id = '{ACCESS_KEY}'\nsecret_access_key = '{SECRET_KEY}'\n\
                 principal = 'arn:aws:iam::111122223333:user/alice'\n\
                 [[credentials]]\naccess_key_id = '{OTHER_ACCESS_KEY}'\nsecret_access_key = '{OTHER_SECRET_KEY}'\n\
                 principal = 'arn:aws:iam::444455556666:user/bob'\n{extra_toml}\n",
                data_dir.path().display()
            ),
        )
        .unwrap();
        let config = kms::config::load(Some(&cfg_path), env.clone()).unwrap();
        let clock = Arc::new(ManualClock::default());
        let app = kms::app::build(&config, clock.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = kms::api::router(app.state.clone());
        let server =
            kms::api::server::listener(listener, router, &config, app.state.service.metrics())
                .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        TestServer {
            endpoint: format!("{scheme}://{addr}"),
            clock,
            state: app.state,
            data_dir,
            env,
            stop: Some(tx),
        }
    }

    /// An SDK client for the default user.
    pub fn client(&self) -> aws_sdk_kms::Client {
        self.client_with(ACCESS_KEY, SECRET_KEY)
    }

    /// An SDK client for the user in the other account.
    pub fn other_client(&self) -> aws_sdk_kms::Client {
        self.client_with(OTHER_ACCESS_KEY, OTHER_SECRET_KEY)
    }

    pub fn client_with(&self, akid: &str, secret: &str) -> aws_sdk_kms::Client {
        sdk_client(&self.endpoint, akid, secret)
    }

    /// Runs one maintenance pass (deletions and scheduled rotations) now. On PostgreSQL the
    /// previous pass's lease is released when its connection closes, asynchronously; a pass
    /// that found the lease still held did nothing, so it is run again (for up to 5 s).
    pub async fn run_maintenance(&self) -> kms::service::maintenance::MaintenanceReport {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let report = self.state.service.run_maintenance().await.unwrap();
            if !report.skipped || std::time::Instant::now() > deadline {
                return report;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The audit records written so far (waits briefly for the writer thread).
    pub async fn audit_records(&self) -> Vec<serde_json::Value> {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let text =
            std::fs::read_to_string(self.data_dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Calls the server's metadata cache has passed on to its store so far.
pub fn store_calls(srv: &TestServer) -> u64 {
    srv.state
        .service
        .core()
        .cache_stats()
        .expect("a metadata cache")
        .store_calls
}

/// DescribeKey, and the calls to the store it made.
pub async fn describe_counting(
    srv: &TestServer,
    kms: &aws_sdk_kms::Client,
    key: &str,
) -> (aws_sdk_kms::types::KeyMetadata, u64) {
    let before = store_calls(srv);
    let md = kms
        .describe_key()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    (md, store_calls(srv) - before)
}

/// Describes `key` until a DescribeKey makes no store call (on PostgreSQL the cache is in force
/// once the node's change listener is up, and a node's own writes come back through it as
/// drops); then 20 more DescribeKeys must make none. Returns the metadata.
pub async fn describe_from_cache(
    srv: &TestServer,
    kms: &aws_sdk_kms::Client,
    key: &str,
) -> aws_sdk_kms::types::KeyMetadata {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let md = loop {
        let (md, calls) = describe_counting(srv, kms, key).await;
        if calls == 0 {
            break md;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every DescribeKey of {key} still calls the store ({calls} calls)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for _ in 0..20 {
        let (again, calls) = describe_counting(srv, kms, key).await;
        assert_eq!(calls, 0, "DescribeKey of a cached key called the store");
        assert_eq!(again, md);
    }
    md
}

/// The AWS error code of an SDK error.
pub fn code<E, R>(e: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata,
{
    aws_sdk_kms::error::ProvideErrorMetadata::code(e)
        .unwrap_or("<none>")
        .to_string()
}

/// The AWS error message of an SDK error.
pub fn message<E, R>(e: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata,
{
    aws_sdk_kms::error::ProvideErrorMetadata::message(e)
        .unwrap_or("")
        .to_string()
}

/// The (code, message) of a call that must fail.
pub fn fail<O, E, R>(r: Result<O, aws_sdk_kms::error::SdkError<E, R>>) -> (String, String)
where
    O: std::fmt::Debug,
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let e = r.expect_err("the call should have failed");
    (code(&e), message(&e))
}

/// Creates a symmetric encryption key with CreateKey's defaults; returns (key id, ARN).
pub async fn new_key(kms: &aws_sdk_kms::Client) -> (String, String) {
    let md = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    (md.key_id().to_string(), md.arn().unwrap().to_string())
}

/// Creates a key of `spec` and `usage`; returns (key id, ARN).
pub async fn new_key_of(
    kms: &aws_sdk_kms::Client,
    spec: aws_sdk_kms::types::KeySpec,
    usage: aws_sdk_kms::types::KeyUsageType,
) -> (String, String) {
    let md = kms
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    (md.key_id().to_string(), md.arn().unwrap().to_string())
}

/// Sends one raw HTTP/1.1 request on a fresh connection (with `host` set to the endpoint's
/// address) and returns the status, the `x-amzn-requestid` header and the body: for tests of
/// what the SDKs cannot send.
pub async fn raw_request(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Option<String>, bytes::Bytes) {
    let (status, headers, bytes) = raw_exchange(endpoint, method, path, headers, body).await;
    let request_id = headers
        .get("x-amzn-requestid")
        .map(|v| v.to_str().unwrap().to_string());
    (status, request_id, bytes)
}

/// [`raw_request`] with every response header.
pub async fn raw_exchange(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, bytes::Bytes) {
    raw_exchange_from(None, endpoint, method, path, headers, body).await
}

/// [`raw_exchange`] from the local address `from` (such as 127.0.0.2, another loopback
/// address: a test's stand-in for a load balancer or a distinct client) when given.
pub async fn raw_exchange_from(
    from: Option<std::net::IpAddr>,
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, bytes::Bytes) {
    use http_body_util::BodyExt;
    let addr = endpoint.trim_start_matches("http://").to_string();
    let stream = match from {
        None => tokio::net::TcpStream::connect(&addr).await.unwrap(),
        Some(local) => {
            let socket = match local {
                std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .unwrap();
            socket.bind(std::net::SocketAddr::new(local, 0)).unwrap();
            socket.connect(addr.parse().unwrap()).await.unwrap()
        }
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(
            req.body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}
