//! STS through the real `aws-sdk-sts` client: clients of a test server, and role sessions made
//! by AssumeRole with the KMS and STS clients that sign with their temporary credentials.

use aws_credential_types::Credentials;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::operation::assume_role::builders::AssumeRoleFluentBuilder;
use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;

/// An STS client of `endpoint` signing with `creds` for `region` (no retries).
pub fn client_in(endpoint: &str, region: &str, creds: Credentials) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

/// An STS client of `endpoint` for a long-term access key (us-east-1).
pub fn client(endpoint: &str, (akid, secret): (&str, &str)) -> aws_sdk_sts::Client {
    client_in(
        endpoint,
        "us-east-1",
        Credentials::new(akid, secret, None, None, "test"),
    )
}

/// A role session: the result of a successful AssumeRole at `endpoint`.
#[derive(Debug, Clone)]
pub struct RoleSession {
    pub endpoint: String,
    pub output: AssumeRoleOutput,
}

impl RoleSession {
    /// Sends `request` (built on a client of `endpoint`); panics unless it succeeds.
    pub async fn assume(endpoint: &str, request: AssumeRoleFluentBuilder) -> RoleSession {
        let role = request.get_role_arn().clone().unwrap_or_default();
        let output = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("AssumeRole {role}: {e:?}"));
        RoleSession {
            endpoint: endpoint.to_string(),
            output,
        }
    }

    /// AssumeRole of `role` as session `name` by the long-term `key` at `endpoint`, the request
    /// completed by `with` (a session policy, tags, ...); panics unless it succeeds.
    pub async fn of(
        endpoint: &str,
        key: (&str, &str),
        role: &str,
        name: &str,
        with: impl FnOnce(AssumeRoleFluentBuilder) -> AssumeRoleFluentBuilder,
    ) -> RoleSession {
        let request = client(endpoint, key)
            .assume_role()
            .role_arn(role)
            .role_session_name(name);
        RoleSession::assume(endpoint, with(request)).await
    }

    /// AssumeRole by this session (role chaining) at its endpoint; panics unless it succeeds.
    pub async fn chain(
        &self,
        request: impl FnOnce(AssumeRoleFluentBuilder) -> AssumeRoleFluentBuilder,
    ) -> RoleSession {
        RoleSession::assume(&self.endpoint, request(self.sts().assume_role())).await
    }

    pub fn credentials(&self) -> &aws_sdk_sts::types::Credentials {
        self.output
            .credentials()
            .expect("AssumeRole returns credentials")
    }

    /// The assumed-role ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`).
    pub fn arn(&self) -> &str {
        self.output
            .assumed_role_user()
            .expect("AssumeRole returns the assumed role user")
            .arn()
    }

    /// The session's credentials for an SDK, with `token` instead of its own session token.
    pub fn sdk_credentials(&self, token: Option<&str>) -> Credentials {
        let c = self.credentials();
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(token.unwrap_or(c.session_token()).to_string()),
            None,
            "assumed",
        )
    }

    /// A KMS client signing with the session, at its endpoint.
    pub fn kms(&self) -> aws_sdk_kms::Client {
        self.kms_at(&self.endpoint, None)
    }

    /// An STS client signing with the session, at its endpoint.
    pub fn sts(&self) -> aws_sdk_sts::Client {
        self.sts_at(&self.endpoint, None)
    }

    /// A KMS client signing with the session at `endpoint`, optionally with another token.
    pub fn kms_at(&self, endpoint: &str, token: Option<&str>) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(self.sdk_credentials(token))
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// An STS client signing with the session at `endpoint`, optionally with another token.
    pub fn sts_at(&self, endpoint: &str, token: Option<&str>) -> aws_sdk_sts::Client {
        client_in(endpoint, "us-east-1", self.sdk_credentials(token))
    }
}
