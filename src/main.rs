//! The `kms` server binary: CLI -> Config -> App -> serve.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

/// mimalloc instead of glibc malloc: the request path allocates many small buffers from
/// several threads (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kms",
    version,
    about = "AWS-KMS-compatible key management service"
)]
struct Cli {
    /// TOML configuration file (see hsm-config/ for examples).
    #[arg(long, env = "KMS_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending schema migrations to the configured metadata store and exit (under the
    /// database's lock: safe while other nodes start or run).
    Migrate,
    /// Copy the SQLite metadata store to a new file while the node runs (a consistent
    /// snapshot; PostgreSQL: use pg_dump). The root key file or HSM is not copied.
    Backup {
        /// The new file to write.
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KMS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,cryptoki=off")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = match kms::config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.async_threads())
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Migrate) => return runtime.block_on(migrate(&config)),
        Some(Command::Backup { output }) => return runtime.block_on(backup(&config, &output)),
        Some(Command::Serve) | None => {}
    }
    let (code, service) = runtime.block_on(run(config));
    // Ends every task (their handles to the service included) and joins tokio's blocking
    // threads; then the service, its HSM threads and sessions go, and the modules last.
    drop(runtime);
    hsm::module::finalize_after(service);
    code
}

async fn migrate(config: &kms::config::Config) -> ExitCode {
    match kms::store::migrate(&config.store).await {
        Ok(m) if m.from == m.to => {
            println!("schema is up to date (version {})", m.to);
            ExitCode::SUCCESS
        }
        Ok(m) => {
            println!("schema migrated from version {} to {}", m.from, m.to);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kms migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn backup(config: &kms::config::Config, output: &std::path::Path) -> ExitCode {
    match kms::store::backup(&config.store, output).await {
        Ok(r) => {
            println!(
                "backed up {} keys (schema version {}) to {}",
                r.keys,
                r.schema_version,
                output.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kms backup: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: kms::config::Config) -> (ExitCode, Option<Arc<kms::service::Kms>>) {
    let app = match kms::app::build(&config, Arc::new(kms::service::clock::SystemClock)).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kms: cannot start: {e}");
            return (ExitCode::FAILURE, None);
        }
    };
    let service = Some(app.state.service.clone());
    tracing::info!(
        async_threads = config.async_threads(),
        hsm_threads = config.hsm_threads().unwrap_or(0),
        "threads"
    );
    match &config.root {
        kms::config::RootConfig::Software { key_file } => tracing::warn!(
            root_key_file = %key_file.display(),
            created = app.root_created,
            "DEVELOPMENT ONLY: key material is protected by a software root key file, not an HSM"
        ),
        kms::config::RootConfig::Pkcs11 { token, .. } => tracing::info!(
            token = %token.token_label,
            profile = %token.profile.name,
            "key material is generated and used in the PKCS#11 token"
        ),
    }
    let tcp = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kms: cannot listen on {}: {e}", config.listen);
            return (ExitCode::FAILURE, service);
        }
    };
    let addr = tcp.local_addr().unwrap_or(config.listen);
    let router = kms::api::router(app.state.clone());
    let server = match kms::api::server::listener(tcp, router, &config, app.state.service.metrics())
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kms: TLS: {e}");
            return (ExitCode::FAILURE, service);
        }
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let endpoint = format!("{scheme}://{addr}");
    // The PostgreSQL CA file reloads on SIGHUP (before the banner: whoever waits for it may
    // signal at once).
    let ca_reloader = spawn_ca_reloader(&config.store);
    // Written with errors ignored: a closed stdout must not take the server down.
    let mut banner = format!("kms listening on {endpoint} (region {})\n", config.region);
    if config.dev_credential {
        banner.push_str(&format!(
            "development credential: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}\n",
            kms::config::DEV_ACCESS_KEY_ID,
            kms::config::DEV_SECRET_ACCESS_KEY
        ));
    }
    banner.push_str(&format!(
        "try: aws kms create-key --endpoint-url {endpoint} --region {}\n",
        config.region
    ));
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }
    let maintenance = kms::service::maintenance::spawn_maintenance(
        app.state.service.clone(),
        config.maintenance_interval,
    );
    // Identities (users, roles, policies, access keys) reload on SIGHUP and on a timer; a bad
    // reload keeps the ones in force and says why.
    let reloader = kms::iam::spawn_reloader(app.state.auth.iam().clone(), config.identity_reload);
    if let Some(addr) = config.metrics_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let r = kms::api::metrics_router(app.state.service.clone());
                // Scrapers hold a connection or two; the cap keeps a misbehaving one from
                // taking the process's descriptors.
                let metrics = serve::Server::new(l, r).config(serve::ServeConfig {
                    max_connections: 64,
                    ..serve::ServeConfig::default()
                });
                tokio::spawn(metrics.run(std::future::pending()));
                tracing::info!(%addr, "metrics on /metrics");
            }
            Err(e) => {
                eprintln!("kms: cannot listen on {addr} for metrics: {e}");
                return (ExitCode::FAILURE, service);
            }
        }
    }
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    // Draining from the signal on: /readyz answers 503 so a load balancer stops sending.
    let draining = app.state.service.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("draining: not ready for new requests");
        draining.start_draining();
    };
    // Returns once requests in flight have finished (or `server.shutdown_grace_ms` passed).
    server.run(shutdown).await;
    maintenance.abort();
    reloader.abort();
    if let Some(r) = ca_reloader {
        r.abort();
    }
    app.state.service.flush_audit();
    tracing::info!("kms stopped");
    drop(app);
    (ExitCode::SUCCESS, service)
}

/// Reads `store.tls_ca_file` again on every SIGHUP (PostgreSQL with a CA file): new
/// connections verify against it; a file that cannot be read or holds no certificate leaves
/// the CAs in force, with a warning.
fn spawn_ca_reloader(store: &kms::config::StoreConfig) -> Option<tokio::task::JoinHandle<()>> {
    let kms::config::StoreConfig::Postgres(pg) = store else {
        return None;
    };
    let ca = pg.ca.clone()?;
    #[cfg(unix)]
    {
        let mut hup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()?;
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match ca.reload() {
                    Ok(n) => tracing::info!(
                        file = %ca.path.display(),
                        certificates = n,
                        "store.tls_ca_file reloaded: new connections to PostgreSQL verify \
                         against it"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "store.tls_ca_file not reloaded: the CAs in force stay"
                    ),
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = ca;
        None
    }
}
