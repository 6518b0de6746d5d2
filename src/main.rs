//! The `fjord` binary: command line -> Config -> logging -> node::start -> wait for SIGINT or
//! SIGTERM -> drain and close. With a subcommand (`fjord topic ...`, `fjord consume ...`) it is
//! instead the admin CLI of `fjord::cli`, a Kafka client that starts no broker.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use fjord::config::Config;

#[derive(Parser, Debug)]
#[command(name = "fjord", version, about = "A Kafka-protocol message broker in one native binary", args_conflicts_with_subcommands = true)]
struct Args {
    /// A Kafka server.properties file (Kafka's property names and defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a property, overriding the file; repeatable: --override log.dirs=/var/fjord
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Log format: human or json.
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
    /// Without a subcommand, fjord starts the broker.
    #[command(subcommand)]
    command: Option<fjord::cli::Command>,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FJORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The known properties with their defaults, for --help.
fn properties_help() -> String {
    let mut s = String::from("Properties (Kafka names; set in --config FILE or with --override):\n");
    for d in fjord::config::BROKER_CONFIGS {
        s.push_str(&format!("  {:42} default {:<28} {}\n", d.name, d.default.unwrap_or("null"), d.doc));
    }
    s
}

/// Raises the soft open-files limit to the hard one (what Kafka operators do by hand with
/// `ulimit -n`), before any file or socket is opened, and logs both. Segment files stay under
/// `fjord.log.open.files.max` anyway; this leaves sockets the rest.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit / setrlimit read and write the struct they are given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-files limit");
        return;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), soft = before, hard = lim.rlim_max, "cannot raise the open-files limit");
            return;
        }
    }
    tracing::info!(soft_before = before, soft = lim.rlim_cur, hard = lim.rlim_max, "open-files limit (RLIMIT_NOFILE)");
}

fn main() -> ExitCode {
    let args = Args::command().after_help(properties_help()).get_matches();
    let args = match Args::from_arg_matches(&args) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    if let Some(command) = args.command {
        return fjord::cli::run(command);
    }
    init_logging(&args.log_format);
    raise_open_files_limit();
    let config = match Config::load(args.config.as_deref(), &args.overrides) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // num.network.threads: the workers that serve every connection (Kafka's network threads).
    if let Some(n) = config.num_network_threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if !config.topology.roles.broker {
            // process.roles=controller: a voter of the metadata quorum, no broker.
            let running = match fjord::node::start_controller(config).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    return ExitCode::FAILURE;
                }
            };
            wait_for_signal().await;
            running.shutdown().await;
            return ExitCode::SUCCESS;
        }
        let running = match fjord::node::start(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        // As Kafka halts: with every log dir offline nothing can be served, and a restart
        // recovers each partition from what is on disk (a supervisor brings the broker back).
        running.broker.replicas.logs().failures().on_all_offline(|| {
            tracing::error!("halting: every log dir is offline after I/O errors");
            std::process::exit(1);
        });
        wait_for_signal().await;
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}
