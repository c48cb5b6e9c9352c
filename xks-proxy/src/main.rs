//! The `xks-proxy` binary: CLI -> Config -> start -> wait for SIGTERM/SIGINT -> drain.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc (as in the `kms` binary): many small buffers per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "xks-proxy",
    version,
    about = "AWS KMS External Key Store (XKS) proxy in front of PKCS#11 key managers"
)]
struct Cli {
    /// TOML configuration file (example: hsm-config/xks-proxy.toml).
    #[arg(long, global = true, env = "XKS_PROXY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the configuration, print every problem, and exit (64 when invalid).
    CheckConfig,
    /// Create an AES-256 key (a persistent, sensitive, non-extractable token object) on one of
    /// the configured HSMs. For development and tests: in production, keys are created with
    /// the key manager's own tools.
    CreateKey {
        /// Name of the [[hsms]] entry.
        #[arg(long)]
        hsm: Option<String>,
        /// CKA_LABEL of the new key (the `label` of a [[keys]] entry, by default its id).
        #[arg(long)]
        label: String,
        /// Allowed uses: any of encrypt, decrypt (empty: neither).
        #[arg(long, value_delimiter = ',', default_value = "encrypt,decrypt")]
        usage: Vec<String>,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XKS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,cryptoki=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(path) = cli.config.clone() else {
        eprintln!("xks-proxy: --config FILE (or XKS_PROXY_CONFIG) is required");
        return ExitCode::from(64);
    };
    let config = match xks_proxy::config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(64);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            println!(
                "{}: valid ({} HSM(s), {} key(s), {} keystore(s))",
                path.display(),
                config.hsms.len(),
                config.dynamic.keys.len(),
                config.dynamic.keystores.len()
            );
            ExitCode::SUCCESS
        }
        Command::CreateKey { hsm, label, usage } => {
            init_logging(false);
            create_key(&config, hsm.as_deref(), &label, &usage)
        }
        Command::Run => {
            init_logging(config.server.json_logs);
            let runtime = match xks_proxy::runtime_builder(&config).build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("xks-proxy: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let (code, state) = runtime.block_on(run(config));
            // Ends every task and joins tokio's blocking threads; then the proxy's state (HSM
            // threads, sessions) goes, and the PKCS#11 modules are finalized last.
            drop(runtime);
            hsm::module::finalize_after(state);
            code
        }
    }
}

async fn run(config: xks_proxy::Config) -> (ExitCode, Option<std::sync::Arc<xks_proxy::AppState>>) {
    let (async_threads, hsm_threads) = (config.server.async_threads, config.pool.threads);
    let proxy = match xks_proxy::start(config).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("xks-proxy: cannot start: {e}");
            return (ExitCode::FAILURE, None);
        }
    };
    let d = proxy.state.dynamic();
    let mut prefixes: Vec<String> = d
        .keystores
        .keys()
        .map(|p| {
            if p.is_empty() {
                "/kms/xks/v1".to_string()
            } else {
                format!("/{p}/kms/xks/v1")
            }
        })
        .collect();
    prefixes.sort();
    tracing::info!(
        endpoint = %proxy.endpoint(),
        metrics = %proxy.metrics_addr.map(|a| format!("http://{a}/metrics")).unwrap_or_default(),
        mtls = proxy.state.tls.as_ref().is_some_and(|t| t.mtls),
        keys = d.keys.len(),
        uri_paths = %prefixes.join(" "),
        async_threads,
        hsm_threads,
        "xks-proxy listening"
    );
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "xks-proxy listening on {}", proxy.endpoint());
        let _ = out.flush();
    }
    wait_for_signal().await;
    tracing::info!("shutting down: draining requests in flight");
    let state = proxy.state.clone();
    proxy.shutdown().await;
    tracing::info!("xks-proxy stopped");
    (ExitCode::SUCCESS, Some(state))
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn create_key(
    config: &xks_proxy::Config,
    hsm: Option<&str>,
    label: &str,
    usage: &[String],
) -> ExitCode {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, ObjectClass};
    let h = match (hsm, config.hsms.as_slice()) {
        (Some(name), all) => all.iter().find(|h| h.name == name),
        (None, [only]) => Some(only),
        (None, _) => None,
    };
    let Some(h) = h else {
        eprintln!("xks-proxy: name the HSM with --hsm (one of the [[hsms]] names)");
        return ExitCode::from(64);
    };
    let mut encrypt = false;
    let mut decrypt = false;
    for u in usage.iter().filter(|u| !u.is_empty()) {
        match u.as_str() {
            "encrypt" => encrypt = true,
            "decrypt" => decrypt = true,
            other => {
                eprintln!("xks-proxy: unknown usage '{other}' (encrypt, decrypt)");
                return ExitCode::from(64);
            }
        }
    }
    let token = match hsm::Token::open(h.token.clone()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xks-proxy: HSM '{}': {e}", h.name);
            return ExitCode::FAILURE;
        }
    };
    match token.find(ObjectClass::SECRET_KEY, label) {
        Ok(found) if !found.is_empty() => {
            eprintln!(
                "xks-proxy: a key labelled '{label}' already exists on HSM '{}'",
                h.name
            );
            return ExitCode::FAILURE;
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("xks-proxy: HSM '{}': {e}", h.name);
            return ExitCode::FAILURE;
        }
    }
    let template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(encrypt),
        Attribute::Decrypt(decrypt),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::ValueLen(32.into()),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    match token.with_object_write(|s| s.generate_key(&Mechanism::AesKeyGen, &template)) {
        Ok(_) => {
            println!(
                "created AES-256 key '{label}' on HSM '{}' (encrypt={encrypt}, decrypt={decrypt})",
                h.name
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xks-proxy: cannot create the key: {e}");
            ExitCode::FAILURE
        }
    }
}
