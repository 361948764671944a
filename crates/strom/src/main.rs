//! The `strom` binary: parses arguments, loads the config and runs a node.
//! All behaviour lives in `strom-node` and `strom-config`.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use strom_config::Config;
use tokio_util::sync::CancellationToken;

/// The config used when `strom run` gets no `-c`: one demo channel on port 8080.
const DEFAULT_CONFIG: &str = "\
# strom's embedded default: a looping test channel.
http 8080;
stream demo {
  input builtin://demo;
}
";

#[derive(Parser)]
#[command(name = "strom", version, about = "Live-streaming and IPTV server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a media node.
    Run {
        /// Config file; without it, the embedded demo config.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
    },
    /// Run the viewer balancer in front of a farm of streaming servers.
    Balancer {
        /// Balancer config file (`server`, `channel`, `refresh`, ...).
        #[arg(short, long)]
        config: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
    },
    /// Check a node or balancer config file and print every error as FILE:LINE:COL: message.
    Check {
        #[arg(short, long)]
        config: PathBuf,
        /// Print the config as strom understood it.
        #[arg(long)]
        print: bool,
    },
}

fn read(path: Option<&Path>) -> Result<(String, String), String> {
    match path {
        None => Ok(("<embedded default>".to_string(), DEFAULT_CONFIG.to_string())),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p.display().to_string(), text))
        }
    }
}

fn report(errs: &[strom_config::Diagnostic]) -> String {
    let lines: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
    format!("{}\n{} error(s)", lines.join("\n"), errs.len())
}

fn load(path: Option<&Path>) -> Result<Config, String> {
    let (name, text) = read(path)?;
    strom_config::parse(&name, &text).map_err(|e| report(&e))
}

fn load_balancer(path: &Path) -> Result<strom_config::BalancerConfig, String> {
    let (name, text) = read(Some(path))?;
    strom_config::parse_balancer(&name, &text).map_err(|e| report(&e))
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Runs the balancer; SIGHUP reloads the config (a bad one is refused and the old one keeps running).
fn run_balancer(path: PathBuf) -> ExitCode {
    let cfg = match load_balancer(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let shared = match strom_balancer::service::Shared::new(cfg) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let token = CancellationToken::new();
        tokio::spawn(shutdown_signal(token.clone()));
        #[cfg(unix)]
        {
            let shared = shared.clone();
            let path = path.clone();
            tokio::spawn(async move {
                let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    match load_balancer(&path).map(|c| shared.reload(c)) {
                        Ok(Ok(())) => tracing::info!(config = %path.display(), "config reloaded"),
                        Ok(Err(e)) | Err(e) => tracing::error!(config = %path.display(), error = %e, "new config refused; keeping the old one"),
                    }
                }
            });
        }
        match strom_balancer::service::run(shared, token).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("strom balancer: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    token.cancel();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { config, print } => {
            let parsed = read(Some(&config))
                .and_then(|(name, text)| strom_config::parse_any(&name, &text).map_err(|e| report(&e)));
            match parsed {
                Ok(strom_config::AnyConfig::Node(c)) => {
                    if print {
                        print!("{}", c.to_text());
                    }
                    eprintln!("{}: ok ({} streams)", config.display(), c.streams.len());
                    ExitCode::SUCCESS
                }
                Ok(strom_config::AnyConfig::Balancer(c)) => {
                    if print {
                        print!("{}", c.to_text());
                    }
                    eprintln!("{}: ok (balancer, {} servers)", config.display(), c.servers.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Balancer { config, json_logs } => {
            init_logs(json_logs);
            run_balancer(config)
        }
        Cmd::Run { config, json_logs } => {
            init_logs(json_logs);
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(async {
                let token = CancellationToken::new();
                tokio::spawn(shutdown_signal(token.clone()));
                match strom_node::run(cfg, token).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "node failed");
                        eprintln!("strom: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
