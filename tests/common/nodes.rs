//! Several `kms` processes on one fresh PostgreSQL database and one root of trust: the same
//! root key file (software root) or the same SoftHSM token and domain key
//! (`KMS_TEST_BACKEND=pkcs11`). Needs the cluster of `tests/pg/cluster.sh`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Stdio};

use aws_sdk_kms::Client;

/// One node: its process (killed on drop), a client, its data directory.
pub struct Node {
    pub child: Child,
    pub client: Client,
    /// The node's endpoint URL (for clients other than `client`, e.g. STS).
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// The node's audit records.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A group of nodes on one fresh database and one root.
pub struct Cluster {
    pub url: String,
    pub env: Vec<(String, String)>,
    root_dir: tempfile::TempDir,
}

impl Cluster {
    pub fn new() -> Cluster {
        let url = super::pg::fresh_database();
        let root_dir = tempfile::tempdir().unwrap();
        // One root for every node: the PKCS#11 settings (token, domain key label) are made
        // once, or one software root key file.
        let mut env = if super::backend() == "pkcs11" {
            super::pkcs11_env()
        } else {
            vec![(
                "KMS_ROOT__KEY_FILE".to_string(),
                root_dir.path().join("root.key").display().to_string(),
            )]
        };
        env.extend(super::pg::store_env(&url));
        env.push((
            "KMS_SERVER__MAINTENANCE_INTERVAL_SECONDS".into(),
            "1".into(),
        ));
        env.push(("KMS_LOG".into(), "warn".into()));
        Cluster { url, env, root_dir }
    }

    /// Every node also reads `toml` as its configuration file (`[[clusters]]`, `[xks]`, ...).
    pub fn with_config(mut self, toml: &str) -> Cluster {
        let path = self.root_dir.path().join("kms.toml");
        std::fs::write(&path, toml).unwrap();
        self.env
            .push(("KMS_CONFIG".into(), path.display().to_string()));
        self
    }

    /// Starts a node (returns once it listens: its root and schema are ready).
    pub fn node(&self) -> Node {
        self.node_with_config(None)
    }

    /// Starts a node that reads `toml` as its configuration file instead of the group's.
    pub fn node_with_config(&self, toml: Option<&str>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut env = self.env.clone();
        if let Some(toml) = toml {
            let path = dir.path().join("own.toml");
            std::fs::write(&path, toml).unwrap();
            env.retain(|(k, _)| k != "KMS_CONFIG");
            env.push(("KMS_CONFIG".into(), path.display().to_string()));
        }
        // `KMS_TEST_NODE_LOGS=1`: the nodes' logs on the test's stderr.
        let stderr = if std::env::var_os("KMS_TEST_NODE_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let (child, endpoint) = super::spawn_kms(dir.path(), env, stderr);
        let client = super::sdk_client(
            &endpoint,
            kms::config::DEV_ACCESS_KEY_ID,
            kms::config::DEV_SECRET_ACCESS_KEY,
        );
        Node {
            child,
            client,
            endpoint,
            dir,
        }
    }
}
