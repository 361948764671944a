//! The `strom` binary: parses arguments, loads the config and runs a node.
//! All behaviour lives in `strom-node` and `strom-config`.

use clap::{ArgGroup, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use strom_config::{Config, Warning};
use tokio_util::sync::CancellationToken;

/// The process's allocator: jemalloc (feature `jemalloc`, on by default).
///
/// With glibc's malloc a node's memory crept and fragmented: segments are
/// ~750 KB blocks that live the window's ~20 s, and glibc's dynamic mmap
/// threshold soon moves blocks of that size from mmap into its per-thread
/// heaps, where frees on other threads and mixed lifetimes leave holes.
/// 40 channels of 3 Mbit/s (`bench/ingest_cpu.sh`): 10.6 MiB RSS per
/// channel, still growing 5 % from minute 2 to minute 10; with jemalloc
/// 9.5 MiB, flat within 1 %.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The config used when `strom run` gets no `-c`: one demo channel on port
/// 8080 of every address (a bare port means `[::]`, IPv6 and IPv4).
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
        /// Node config file; without it, the embedded default (a demo
        /// channel on port 8080).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
    },
    /// Run the viewer balancer in front of a farm of streaming servers.
    Balancer {
        /// Balancer config file (`server`, `channel`, `refresh`, ...).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
    },
    /// Check a node or balancer config file: print every error as
    /// FILE:LINE:COL: message (and exit non-zero) and every warning as
    /// FILE:LINE:COL: warning: message.
    #[command(group(ArgGroup::new("file_arg").required(true).args(["file", "config"])))]
    Check {
        /// Config file to check (the same as `-c FILE`).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Config file to check.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
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

/// Prints each warning to stderr as `FILE:LINE:COL: warning: message`.
fn print_warnings(warnings: &[Warning]) {
    for w in warnings {
        eprintln!("{w}");
    }
}

fn load(path: Option<&Path>) -> Result<Config, String> {
    let (name, text) = read(path)?;
    strom_config::parse(&name, &text).map_err(|e| report(&e))
}

fn load_balancer(path: &Path) -> Result<strom_config::BalancerConfig, String> {
    let (name, text) = read(Some(path))?;
    strom_config::parse_balancer(&name, &text).map_err(|e| report(&e))
}

/// I/O events a worker takes from the kernel per poll when it has nothing
/// else to run: at most its local run queue (256 tasks), so a poll never
/// overflows it.
const IO_EVENTS_IDLE: usize = 256;
/// I/O events a busy worker takes per poll, and how many tasks it runs
/// between polls. With tokio's defaults (1,024 events every 61 tasks) a
/// worker serving a thousand busy connections overflows its local queue
/// at every poll; tokio then moves the oldest half of the queue to the
/// shared queue, where those connections wait behind every new wake-up.
/// Service turned unfair: at c=1000, bytes served per connection ranged
/// 64–164 KB in 5 s (nginx: 84.0–84.7 KB) and p99 latency was 160 ms
/// against a 3.5 ms median. Taking fewer events than tasks run between
/// polls keeps the queue from growing, so every ready connection is
/// served once per round, as nginx's event loop does.
const IO_EVENTS_BUSY: usize = 128;
/// Tasks run between polls of the I/O driver while busy.
const EVENT_INTERVAL: u32 = 255;

/// The runtime of `run` and `balance`: one worker per CPU this process may
/// use, with the I/O batching above.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_io_events_per_tick(IO_EVENTS_IDLE)
        .max_io_events_per_busy_tick(IO_EVENTS_BUSY)
        .event_interval(EVENT_INTERVAL)
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
    // A log consumer that goes away (a closed pipe) must never take the node
    // down: write errors are dropped silently instead of reported on stderr,
    // which would panic. Colours only on a terminal.
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
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
        Cmd::Check { file, config, print } => {
            // clap's group requires exactly one of the two.
            let Some(config) = file.or(config) else {
                eprintln!("strom check: give the config file, as `strom check FILE` or `strom check -c FILE`");
                return ExitCode::from(2);
            };
            let parsed = read(Some(&config))
                .and_then(|(name, text)| strom_config::parse_any(&name, &text).map_err(|e| report(&e)));
            match parsed {
                Ok(strom_config::AnyConfig::Node(c)) => {
                    if print {
                        print!("{}", c.to_text());
                    }
                    print_warnings(&c.warnings);
                    let warnings = match c.warnings.len() {
                        0 => String::new(),
                        n => format!(", {n} warning(s)"),
                    };
                    eprintln!("{}: ok ({} streams{warnings})", config.display(), c.streams.len());
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
            print_warnings(&cfg.warnings);
            for w in &cfg.warnings {
                tracing::warn!(file = %w.file, line = w.line, col = w.col, kind = ?w.kind, "{}", w.message);
            }
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn check_file(args: &[&str]) -> Result<Option<PathBuf>, clap::error::ErrorKind> {
        match Cli::try_parse_from(args) {
            Ok(Cli {
                cmd: Cmd::Check { file, config, .. },
            }) => Ok(file.or(config)),
            Ok(_) => panic!("not check"),
            Err(e) => Err(e.kind()),
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_takes_the_file_either_way() {
        let want = Ok(Some(PathBuf::from("a.conf")));
        assert_eq!(check_file(&["strom", "check", "a.conf"]), want);
        assert_eq!(check_file(&["strom", "check", "-c", "a.conf"]), want);
        assert_eq!(check_file(&["strom", "check", "--config", "a.conf", "--print"]), want);
        assert_eq!(
            check_file(&["strom", "check", "a.conf", "-c", "b.conf"]),
            Err(clap::error::ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            check_file(&["strom", "check"]),
            Err(clap::error::ErrorKind::MissingRequiredArgument)
        );
    }

    #[test]
    fn run_flags() {
        let Ok(Cli {
            cmd: Cmd::Run { config, json_logs },
        }) = Cli::try_parse_from(["strom", "run", "-c", "n.conf", "--json-logs"])
        else {
            panic!("run parses");
        };
        assert_eq!(config, Some(PathBuf::from("n.conf")));
        assert!(json_logs);
        // The guard against an unenforced `on_play` is gone with the flag.
        assert!(Cli::try_parse_from(["strom", "run", "--allow-unimplemented"]).is_err());
    }

    #[test]
    fn dvr_and_on_play_do_not_warn_but_offline_recording_of_a_static_stream_does() {
        let text = "source o { dvr /s 1d; dvr_offline; on_play http://auth/; }\nstream a {\n  input publish://;\n  on_play http://auth/ { timeout 1s; }\n}\n\
                    stream b { input publish://; dvr /d 1d; dvr_offline; on_play http://auth/; }\n";
        let cfg = strom_config::parse("n.conf", text).expect("valid");
        let warnings: Vec<String> = cfg.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            ["n.conf:6:41: warning: `dvr_offline` changes nothing: stream `b` is not `ondemand`, so it runs and records without viewers anyway"]
        );
        assert!(cfg
            .warnings
            .iter()
            .all(|w| w.kind == strom_config::WarningKind::DvrOfflineWithoutOndemand));
    }

    #[test]
    fn embedded_default_is_dual_stack_and_clean() {
        let cfg = strom_config::parse("default", DEFAULT_CONFIG).expect("valid");
        assert_eq!(cfg.http, ["[::]:8080".parse().expect("addr")]);
        assert!(cfg.warnings.is_empty());
    }
}
