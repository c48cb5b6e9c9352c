//! Audit records: one CloudTrail-shaped JSON line per API call (allowed or failed) and per
//! service-internal event (`DeleteKey`, `RotateKey`).
//!
//! This module owns the record shape and the writer. Callers put only sanitized request
//! parameters in a record: key ids, encryption context, algorithms, sizes — never plaintext,
//! ciphertext, data keys, key material or secrets.
//!
//! Durable mode (`[audit] durable = true`): a record is acknowledged only once it is written
//! and `fdatasync`ed (one sync per batch, so concurrent requests share it); the API layer
//! sends the response only after the acknowledgement and fails the request when the record
//! could not be written. Otherwise records are written in the background and a crash may lose
//! the last few milliseconds of them.

use parking_lot::Mutex;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use serde::Serialize;
use serde_json::Value;

/// `userIdentity` of a record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    /// Role sessions only (IAM users and root have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_context: Option<SessionContext>,
}

/// `userIdentity.sessionContext` of a role session, as CloudTrail writes it for an
/// AssumeRole session.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    /// The role: `{"type": "Role", "principalId", "arn", "accountId", "userName"}`.
    pub session_issuer: SessionIssuer,
    /// Always `{}`: CloudTrail writes the empty object for sessions that no web identity
    /// provider issued, and AssumeRoleWithWebIdentity is not served here.
    pub web_id_federation_data: serde_json::Map<String, Value>,
    pub attributes: SessionAttributes,
    /// The session's source identity, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
}

/// `sessionContext.sessionIssuer`: the role a session was issued for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer {
    /// `Role`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The role's unique id (`AROA...`).
    pub principal_id: String,
    /// The role ARN, with its path.
    pub arn: String,
    pub account_id: String,
    /// The role name (without path).
    pub user_name: String,
}

/// `sessionContext.attributes`: both strings, as CloudTrail writes them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAttributes {
    /// When the session was issued, `YYYY-MM-DDTHH:MM:SSZ`.
    pub creation_date: String,
    /// `"true"` or `"false"`.
    pub mfa_authenticated: &'static str,
}

/// One entry of `resources`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub account_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "ARN")]
    pub arn: String,
}

impl Resource {
    pub fn key(account: &str, arn: &str) -> Self {
        Resource {
            account_id: account.into(),
            kind: "AWS::KMS::Key".into(),
            arn: arn.into(),
        }
    }
}

/// A CloudTrail-shaped KMS event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub event_version: &'static str,
    pub user_identity: UserIdentity,
    pub event_time: String,
    pub event_source: &'static str,
    pub event_name: String,
    pub aws_region: String,
    pub source_i_p_address: String,
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub request_parameters: Value,
    pub response_elements: Value,
    #[serde(rename = "requestID")]
    pub request_id: String,
    /// Left empty by producers: the sink assigns a fresh UUID off the request path
    /// ([`AuditEvent::assign_id`]).
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    pub resources: Vec<Resource>,
    pub event_type: &'static str,
    pub management_event: bool,
    pub recipient_account_id: String,
    pub event_category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_event_details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Value>,
}

impl AuditEvent {
    /// Gives the event its `eventID` unless it has one.
    pub fn assign_id(&mut self) {
        if self.event_id.is_empty() {
            self.event_id = uuid::Uuid::new_v4().to_string();
        }
    }
}

/// Resolves to `true` once a durable record is on disk, `false` if it could not be written.
pub type AuditAck = tokio::sync::oneshot::Receiver<bool>;

/// Where audit events go.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: AuditEvent);
    /// Blocks until everything recorded so far is written.
    fn flush(&self) {}
    /// Whether responses wait for their record to be on disk ([`Self::record_durable`]).
    fn durable(&self) -> bool {
        false
    }
    /// Records `event` and acknowledges when it is on disk.
    fn record_durable(&self, event: AuditEvent) -> AuditAck {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.record(event);
        let _ = tx.send(true);
        rx
    }
}

enum Msg {
    Event(Box<AuditEvent>),
    Durable(Box<AuditEvent>, tokio::sync::oneshot::Sender<bool>),
    Flush(SyncSender<()>),
}

/// Writes JSON lines to a file from a background thread so request paths never wait on disk
/// (nor spend time serializing: the writer serializes, in batches). The queue is bounded; if
/// the writer falls behind by more than the bound, the event is written synchronously rather
/// than dropped.
pub struct FileAuditSink {
    tx: SyncSender<Msg>,
    path: PathBuf,
    fallback: Mutex<()>,
    durable: bool,
}

impl FileAuditSink {
    /// Durable mode: see the module documentation.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::sync_channel::<Msg>(65_536);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer_loop(file, rx))?;
        Ok(FileAuditSink {
            tx,
            path: path.to_path_buf(),
            fallback: Mutex::new(()),
            durable: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn writer_loop(file: std::fs::File, rx: Receiver<Msg>) {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
    while let Ok(first) = rx.recv() {
        // Drain what is queued, then flush once.
        let mut acks = Vec::new();
        let mut durable = Vec::new();
        let mut written = true;
        let mut next = Some(first);
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                Msg::Event(mut event) => written &= write_line(&mut w, &mut event),
                Msg::Durable(mut event, ack) => {
                    written &= write_line(&mut w, &mut event);
                    durable.push(ack);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
        }
        if let Err(e) = w.flush() {
            written = false;
            tracing::error!(error = %e, "audit log write failed");
        }
        let synced = !durable.is_empty();
        if synced {
            // One sync for the batch; every durable record in it shares the outcome.
            if let Err(e) = w.get_ref().sync_data() {
                written = false;
                tracing::error!(error = %e, "audit log sync failed");
            }
            for ack in durable {
                let _ = ack.send(written);
            }
        }
        if !written {
            // A failed write leaves the buffer in an unknown state: start the next batch clean.
            let file = w.into_parts().0;
            w = std::io::BufWriter::with_capacity(1 << 16, file);
        }
        for ack in acks {
            let _ = ack.send(());
        }
        if synced {
            // Durable records are waited for: no batching pause.
            continue;
        }
        // Batch: under load one wake-up per interval instead of one per event (this is the
        // audit writer's own thread, never an async worker).
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// One JSON line. A record that cannot be serialized is reported, never half-written; write
/// errors also surface at the writer's flush. Returns whether the line was written.
fn write_line(w: &mut impl Write, event: &mut AuditEvent) -> bool {
    event.assign_id();
    match serde_json::to_vec(event) {
        Ok(mut line) => {
            line.push(b'\n');
            w.write_all(&line).is_ok()
        }
        Err(e) => {
            tracing::error!(error = %e, "audit event not serializable");
            false
        }
    }
}

impl AuditSink for FileAuditSink {
    fn record(&self, event: AuditEvent) {
        match self.tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Event(mut event))) => {
                let _g = self.fallback.lock();
                if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&self.path) {
                    write_line(&mut f, &mut event);
                }
            }
            Err(TrySendError::Full(Msg::Flush(_) | Msg::Durable(..))) => {}
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("audit writer stopped");
            }
        }
    }

    fn flush(&self) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }

    fn durable(&self) -> bool {
        self.durable
    }

    fn record_durable(&self, event: AuditEvent) -> AuditAck {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A stopped writer drops the sender, which the waiting request sees as a failure.
        if let Err(TrySendError::Full(Msg::Durable(mut event, tx))) =
            self.tx.try_send(Msg::Durable(Box::new(event), tx))
        {
            // The writer is behind: written and synced here, as `record` does.
            let _g = self.fallback.lock();
            let written = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .is_ok_and(|mut f| write_line(&mut f, &mut event) && f.sync_data().is_ok());
            let _ = tx.send(written);
        }
        rx
    }
}

/// Keeps events in memory (tests).
#[derive(Default)]
pub struct MemoryAuditSink(pub Mutex<Vec<Value>>);

impl AuditSink for MemoryAuditSink {
    fn record(&self, mut event: AuditEvent) {
        event.assign_id();
        if let Ok(v) = serde_json::to_value(&event) {
            self.0.lock().push(v);
        }
    }
}
