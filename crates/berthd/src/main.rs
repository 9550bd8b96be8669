//! `berthd`: the Berth daemon. Serves the Docker Engine API on Unix sockets; containers
//! run under their own monitors and outlive it.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

mod tls;

use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;

/// The Berth daemon: runs containers and serves the Docker Engine API.
///
/// Point any Docker client at it: `DOCKER_HOST=unix:///run/berth/berth.sock docker ps`.
/// Containers keep running while berthd is stopped or restarted; a new berthd re-adopts
/// them.
#[derive(Debug, Parser)]
#[command(name = "berthd", version, about, long_about)]
struct Args {
    /// Where to listen: unix:///path (repeatable) [default: unix:///run/berth/berth.sock]
    #[arg(short = 'H', long = "host", value_name = "ADDR")]
    hosts: Vec<String>,
    /// Persistent state: images, container records, logs [default: /var/lib/berth]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Runtime state (a tmpfs): monitors, sockets [default: /run/berth]
    #[arg(long = "exec-root", value_name = "DIR")]
    exec_root: Option<PathBuf>,
    /// daemon.json-style configuration file
    #[arg(
        long = "config-file",
        value_name = "FILE",
        default_value = "/etc/berth/daemon.json"
    )]
    config_file: PathBuf,
    /// The berth-monitor binary [default: next to berthd]
    #[arg(long, value_name = "PATH")]
    monitor: Option<PathBuf>,
    /// Group owning the Unix socket (created if missing)
    #[arg(short = 'G', long, default_value = "berth")]
    group: String,
    /// Log debug messages
    #[arg(short = 'D', long)]
    debug: bool,
    /// Require TLS with client certificates on tcp:// listeners (the only way berthd
    /// serves TCP)
    #[arg(long)]
    tlsverify: bool,
    /// CA that signs the clients' certificates
    #[arg(long, value_name = "FILE")]
    tlscacert: Option<PathBuf>,
    /// The server's certificate
    #[arg(long, value_name = "FILE")]
    tlscert: Option<PathBuf>,
    /// The server's key
    #[arg(long, value_name = "FILE")]
    tlskey: Option<PathBuf>,
    /// Serve tcp:// without TLS. Anyone who reaches the port owns the host: only for
    /// throw-away test machines
    #[arg(long)]
    allow_insecure_tcp: bool,
}

/// What `/etc/berth/daemon.json` may set (dockerd's key names).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct FileConfig {
    hosts: Vec<String>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    group: Option<String>,
    debug: bool,
    log_opts: std::collections::BTreeMap<String, String>,
    tlsverify: bool,
    tlscacert: Option<PathBuf>,
    tlscert: Option<PathBuf>,
    tlskey: Option<PathBuf>,
}

fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    match std::fs::read(path) {
        Ok(data) => {
            serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| f.get(2)?.parse().ok())
            .flatten()
    })
}

fn ensure_group(name: &str) -> Option<u32> {
    if let Some(g) = group_id(name) {
        return Some(g);
    }
    let ok = std::process::Command::new("groupadd")
        .args(["--system", name])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        tracing::warn!(
            group = name,
            "could not create the socket group; the socket stays root-only"
        );
    }
    group_id(name)
}

fn bind_unix(path: &Path, gid: Option<u32>) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use: is another berthd running?", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    if let Some(g) = gid {
        rustix::fs::chown(path, None, rustix::process::Gid::from_raw(g).into())
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(l)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down (containers keep running)");
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = read_config(&args.config_file)?;
    let debug = args.debug || file.debug;
    tracing_subscriber::fmt()
        .with_max_level(if debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        })
        .with_writer(std::io::stderr)
        .init();
    let root = args
        .root
        .or(file.data_root)
        .unwrap_or_else(|| "/var/lib/berth".into());
    let exec_root = args
        .exec_root
        .or(file.exec_root)
        .unwrap_or_else(|| "/run/berth".into());
    let monitor = match args
        .monitor
        .or_else(|| std::env::var_os("BERTH_MONITOR").map(PathBuf::from))
    {
        Some(m) => m,
        None => std::env::current_exe()
            .context("finding berthd's own path")?
            .with_file_name("berth-monitor"),
    };
    if !monitor.exists() {
        bail!(
            "berth-monitor not found at {} (set --monitor or BERTH_MONITOR)",
            monitor.display()
        );
    }
    let mut hosts = if args.hosts.is_empty() {
        file.hosts
    } else {
        args.hosts
    };
    if hosts.is_empty() {
        hosts.push(format!("unix://{}", exec_root.join("berth.sock").display()));
    }
    let group = file.group.unwrap_or(args.group);
    let gid = ensure_group(&group);
    let tls_files = if args.tlsverify || file.tlsverify {
        let pick = |a: Option<PathBuf>, f: Option<PathBuf>, what: &str| {
            a.or(f)
                .with_context(|| format!("--tlsverify needs --{what}"))
        };
        Some(tls::TlsFiles {
            ca: pick(args.tlscacert.clone(), file.tlscacert.clone(), "tlscacert")?,
            cert: pick(args.tlscert.clone(), file.tlscert.clone(), "tlscert")?,
            key: pick(args.tlskey.clone(), file.tlskey.clone(), "tlskey")?,
        })
    } else {
        None
    };
    let mut listeners = Vec::new();
    let mut tcp_listeners = Vec::new();
    for h in &hosts {
        match h.strip_prefix("unix://") {
            Some(p) => listeners.push((h.clone(), bind_unix(Path::new(p), gid)?)),
            None => match h.strip_prefix("tcp://") {
                Some(addr) => {
                    let acceptor = match &tls_files {
                        Some(f) => Some(tls::acceptor(f).context("setting up TLS")?),
                        None if args.allow_insecure_tcp => {
                            tracing::warn!("!!! SERVING THE API ON {h} WITHOUT TLS: anyone who can reach this port has root on this host !!!");
                            None
                        }
                        None => bail!(
                            "{h}: TCP is served only with mutual TLS (--tlsverify --tlscacert --tlscert --tlskey); --allow-insecure-tcp forces plain TCP (anyone reaching the port gets root on this host)"
                        ),
                    };
                    let l = tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("binding {addr}"))?;
                    tcp_listeners.push((h.clone(), l, acceptor));
                }
                None => bail!("{h}: unsupported address (use unix:///path or tcp://host:port)"),
            },
        }
    }
    let mut config = berth_engine::EngineConfig::new(&root, &exec_root, monitor);
    if let Some(s) = file.log_opts.get("max-size").and_then(|s| parse_size(s)) {
        config.log_max_size = s;
    }
    if let Some(n) = file.log_opts.get("max-file").and_then(|s| s.parse().ok()) {
        config.log_max_files = n;
    }
    let engine = berth_engine::Engine::open(config)
        .await
        .context("opening the engine state")?;
    let app = berth_api::service(berth_api::ApiState {
        engine,
        daemon_version: env!("CARGO_PKG_VERSION"),
        root,
    });
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for (h, l) in listeners {
        tracing::info!(host = %h, "API listening");
        let app = app.clone();
        let mut rx = tx.subscribe();
        tasks.push(tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.recv().await;
                })
                .await
        }));
    }
    for (h, l, acceptor) in tcp_listeners {
        tracing::info!(host = %h, tls = acceptor.is_some(), "API listening");
        let app = app.clone();
        let rx = tx.subscribe();
        tasks.push(tokio::spawn(async move {
            tls::serve_tcp(l, acceptor, app, rx).await;
            Ok(())
        }));
    }
    shutdown_signal().await;
    let _ = tx.send(());
    for t in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
    }
    for h in &hosts {
        if let Some(p) = h.strip_prefix("unix://") {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(())
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1024u64),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}
