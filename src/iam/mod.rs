//! Identities: who may call, with which identity policies. The configured users, roles, groups
//! and guardrails ([`Directory`], an immutable snapshot swapped atomically on reload), the
//! temporary credentials of role sessions made by `sts:AssumeRole` ([`sessions`]), and the
//! resolution of an access key id to a [`Principal`].
//!
//! It does not evaluate policies (that is `kms_policy`, asked by the service) and does not
//! verify signatures (that is the API layer's SigV4 check, which asks this module for the
//! secret of an access key).

pub mod sessions;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use kms_policy::{Caller, Policy, PrincipalDirectory};
use parking_lot::RwLock;
use secrecy::SecretString;

use crate::config::{IamConfig, RoleConfig, UserConfig};
use crate::model::Principal;
use sessions::SessionTokens;

/// One immutable set of identities (from one read of the configuration).
#[derive(Debug, Default)]
pub struct Directory {
    users: HashMap<String, UserConfig>,
    roles: HashMap<String, RoleConfig>,
    /// (account, role name) -> role ARN: session ARNs name the role without its path.
    role_names: HashMap<(String, String), String>,
    /// Long-term access key id -> its secret and the principal it authenticates as, built once
    /// per snapshot (`None`: the credential names no valid principal).
    credentials: HashMap<String, (SecretString, Option<Arc<Principal>>)>,
    guardrails: HashMap<String, Arc<[Arc<Policy>]>>,
    no_policies: Arc<[Arc<Policy>]>,
}

impl Directory {
    pub fn new(config: &IamConfig) -> Directory {
        let users = config
            .users
            .iter()
            .map(|u| (u.arn.clone(), u.clone()))
            .collect();
        let roles: HashMap<String, RoleConfig> = config
            .roles
            .iter()
            .map(|r| (r.arn.clone(), r.clone()))
            .collect();
        let role_names = roles
            .values()
            .map(|r| ((r.account.clone(), r.name.clone()), r.arn.clone()))
            .collect();
        let guardrails = config
            .guardrails
            .iter()
            .map(|(account, p)| (account.clone(), p.iter().cloned().collect()))
            .collect();
        let mut directory = Directory {
            users,
            roles,
            role_names,
            credentials: HashMap::new(),
            guardrails,
            no_policies: Arc::from(Vec::new()),
        };
        // Principals of long-term keys do not change within a snapshot: build each once, not
        // per request.
        directory.credentials = config
            .credentials
            .iter()
            .map(|c| {
                let principal = directory
                    .principal_of(&c.principal_arn, &c.access_key_id)
                    .map(Arc::new);
                (
                    c.access_key_id.clone(),
                    (c.secret_access_key.clone(), principal),
                )
            })
            .collect();
        directory
    }

    pub fn role(&self, arn: &str) -> Option<&RoleConfig> {
        self.roles.get(arn)
    }

    /// The role of an account by name (session ARNs carry the name only).
    pub fn role_named(&self, account: &str, name: &str) -> Option<&RoleConfig> {
        self.role_names
            .get(&(account.to_string(), name.to_string()))
            .and_then(|arn| self.roles.get(arn))
    }

    pub fn user(&self, arn: &str) -> Option<&UserConfig> {
        self.users.get(arn)
    }

    /// The guardrail (deny-only) policies of an account.
    pub fn guardrails(&self, account: &str) -> Arc<[Arc<Policy>]> {
        self.guardrails
            .get(account)
            .cloned()
            .unwrap_or_else(|| self.no_policies.clone())
    }

    /// The principal of a long-term access key, with its secret.
    pub fn long_term(&self, access_key_id: &str) -> Option<(SecretString, Arc<Principal>)> {
        let (secret, principal) = self.credentials.get(access_key_id)?;
        Some((secret.clone(), principal.clone()?))
    }

    /// A root or user principal as a request sees it.
    fn principal_of(&self, arn: &str, access_key_id: &str) -> Option<Principal> {
        let caller = Caller::from_arn(arn).ok()?;
        let account = caller.account().to_string();
        let (caller, policies) = match self.users.get(arn) {
            Some(u) => (
                caller.with_unique_id(u.unique_id.clone()),
                u.policies.iter().cloned().collect(),
            ),
            // The root user: its identity is the account; identity policies do not apply.
            None => (
                caller.with_unique_id(account.clone()),
                self.no_policies.clone(),
            ),
        };
        Some(Principal {
            account: account.clone(),
            arn: arn.to_string(),
            access_key_id: access_key_id.to_string(),
            caller: Some(caller),
            policies,
            session_policies: None,
            guardrails: self.guardrails(&account),
            principal_tags: Arc::from(Vec::new()),
            source_identity: None,
            transitive_tag_keys: Arc::from(Vec::new()),
            token_issue_time: None,
        })
    }

    /// The principal of a role session: the role as configured now (`None` when the role is
    /// gone), narrowed by the session policy, with the session's tags, transitive tag keys,
    /// source identity and issue time.
    pub fn session_principal(&self, session: &sessions::Session) -> Option<Principal> {
        let role = self.roles.get(&session.role_arn)?;
        let caller = Caller::assumed_role(&role.arn, &session.session_name)
            .ok()?
            .with_unique_id(format!("{}:{}", role.unique_id, session.session_name));
        Some(Principal {
            account: role.account.clone(),
            arn: caller.arn().to_string(),
            access_key_id: session.access_key_id.clone(),
            caller: Some(caller),
            policies: role.policies.iter().cloned().collect(),
            session_policies: session.session_policy.clone().map(|p| Arc::from(vec![p])),
            guardrails: self.guardrails(&role.account),
            principal_tags: session
                .tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
            source_identity: session.source_identity.clone(),
            transitive_tag_keys: session.transitive_tag_keys.iter().cloned().collect(),
            token_issue_time: Some(session.issued),
        })
    }
}

impl PrincipalDirectory for Directory {
    /// Whether a principal named in a policy exists (AWS refuses unknown principals when a
    /// policy is written). Users and roles must be configured; a session of a configured role
    /// exists; account roots always do.
    fn principal_exists(&self, arn: &str) -> bool {
        if self.users.contains_key(arn) || self.roles.contains_key(arn) {
            return true;
        }
        if arn.ends_with(":root") {
            return true;
        }
        // arn:aws:sts::<account>:assumed-role/<role>/<session>
        let Some(rest) = arn.split(":assumed-role/").nth(1) else {
            return false;
        };
        let account = arn.split(':').nth(4).unwrap_or_default();
        let role = rest.split('/').next().unwrap_or_default();
        self.role_named(account, role).is_some()
    }
}

/// The identities in force now, the role sessions, and where a reload reads from.
pub struct Iam {
    current: RwLock<Arc<Directory>>,
    sessions: SessionTokens,
    /// The configuration file and environment a reload reads (`None`: nothing to reload).
    source: Option<(Option<PathBuf>, HashMap<String, String>)>,
}

impl Iam {
    pub fn new(config: &IamConfig) -> Iam {
        Iam {
            current: RwLock::new(Arc::new(Directory::new(config))),
            sessions: SessionTokens::default(),
            source: None,
        }
    }

    /// Reloads read `file` (if any) with `env`, as at start-up.
    pub fn with_source(mut self, file: Option<PathBuf>, env: HashMap<String, String>) -> Self {
        self.source = Some((file, env));
        self
    }

    /// The identities in force.
    pub fn directory(&self) -> Arc<Directory> {
        self.current.read().clone()
    }

    /// The session-token key and the opened sessions.
    pub fn sessions(&self) -> &SessionTokens {
        &self.sessions
    }

    /// Swaps in a new set of identities.
    pub fn replace(&self, config: &IamConfig) {
        *self.current.write() = Arc::new(Directory::new(config));
    }

    /// Reads the identity sections again; on any problem the identities in force stay and the
    /// problems are returned.
    pub fn reload(&self) -> Result<ReloadOutcome, crate::config::ConfigErrors> {
        let Some((file, env)) = &self.source else {
            return Ok(ReloadOutcome::NoSource);
        };
        let config = crate::config::load_iam(file.as_deref(), env)?;
        let summary = ReloadOutcome::Reloaded {
            users: config.users.len(),
            roles: config.roles.len(),
            credentials: config.credentials.len(),
        };
        self.replace(&config);
        Ok(summary)
    }
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The server was not started from a configuration file or environment to read again.
    NoSource,
    Reloaded {
        users: usize,
        roles: usize,
        credentials: usize,
    },
}

/// Reloads the identities on SIGHUP and every `every`, until the returned task is aborted.
/// A reload that fails keeps the identities in force and logs why.
pub fn spawn_reloader(iam: Arc<Iam>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            #[cfg(unix)]
            let trigger = async {
                match hup.as_mut() {
                    Some(h) => {
                        tokio::select! { _ = h.recv() => "SIGHUP", _ = tick.tick() => "timer" }
                    }
                    None => {
                        tick.tick().await;
                        "timer"
                    }
                }
            };
            #[cfg(not(unix))]
            let trigger = async {
                tick.tick().await;
                "timer"
            };
            let why = trigger.await;
            match iam.reload() {
                Ok(ReloadOutcome::Reloaded {
                    users,
                    roles,
                    credentials,
                }) => tracing::debug!(why, users, roles, credentials, "identities reloaded"),
                Ok(ReloadOutcome::NoSource) => {}
                Err(e) => tracing::error!(
                    why,
                    problems = %e.0.join("; "),
                    "identity reload failed; the identities in force stay"
                ),
            }
        }
    })
}
