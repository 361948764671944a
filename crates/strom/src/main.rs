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
    /// Check a config file and print every error as FILE:LINE:COL: message.
    Check {
        #[arg(short, long)]
        config: PathBuf,
        /// Print the config as strom understood it.
        #[arg(long)]
        print: bool,
    },
}

fn load(path: Option<&Path>) -> Result<Config, String> {
    let (name, text) = match path {
        None => ("<embedded default>".to_string(), DEFAULT_CONFIG.to_string()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            (p.display().to_string(), text)
        }
    };
    strom_config::parse(&name, &text).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
        format!("{}\n{} error(s)", lines.join("\n"), errs.len())
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
        Cmd::Check { config, print } => match load(Some(&config)) {
            Ok(c) => {
                if print {
                    print!("{}", c.to_text());
                }
                eprintln!("{}: ok ({} streams)", config.display(), c.streams.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
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
