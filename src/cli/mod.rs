//! The `fjord` admin CLI: `fjord topic|produce|consume|group|cluster ...`, subcommands of the
//! broker's own binary for people without a JVM. It speaks only the Kafka protocol (through
//! [`crate::client`]), never Fjord's internals, so it works against any Kafka-compatible broker,
//! Apache Kafka included. `fjord format` is the exception: it prepares this node's own log dirs. Tables for people by default, `--json` for scripts; progress goes to
//! stderr. This file holds the command line and the dispatch; each family has its own file.

pub mod conn;
pub mod consume;
pub mod group;
pub mod member;
pub mod output;
pub mod produce;
pub mod topic;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use conn::Cluster;

/// Options every CLI subcommand takes (before or after the subcommand's name).
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The broker(s) to bootstrap from: HOST:PORT[,HOST:PORT...].
    #[arg(short = 'b', long = "bootstrap-server", value_name = "HOST:PORT", default_value = "127.0.0.1:9092", global = true, env = "FJORD_BOOTSTRAP_SERVER")]
    pub bootstrap: String,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for a connection or for one response, in milliseconds.
    #[arg(long = "timeout-ms", value_name = "MS", default_value_t = 30_000, global = true)]
    pub timeout_ms: u64,
}

/// The CLI's subcommands; with none, `fjord` starts the broker.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List, create, describe, configure, grow and delete topics.
    Topic {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Produce records read from stdin (or a file), one per line.
    Produce {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: produce::ProduceArgs,
    },
    /// Consume records and print them (kcat-like formats).
    Consume {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: consume::ConsumeArgs,
    },
    /// List, describe (with lag), reset offsets of and delete consumer groups.
    Group {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// The cluster: id, controller, brokers.
    Cluster {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Prepare this node's log dirs before its first start, as kafka-storage.sh format does.
    /// Fjord needs it only to start a dynamic quorum with several voters at once.
    Format(FormatArgs),
}

/// `fjord format`, with kafka-storage.sh format's options.
#[derive(Args, Debug, Clone)]
pub struct FormatArgs {
    /// The node's server.properties (the one it will start with).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: std::path::PathBuf,
    /// Set a property, overriding the file; repeatable.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The voters the dynamic quorum starts with: id@host:port:directoryId,... (the same list on
    /// every controller; this node's directory id is taken from it).
    #[arg(short = 'I', long = "initial-controllers", value_name = "LIST")]
    pub initial_controllers: Option<String>,
    /// A SCRAM user the new cluster starts with, as Kafka's format takes it:
    /// 'SCRAM-SHA-256=[name=alice,password=alice-secret]' (also iterations=, salt=, or
    /// saltedpassword= with salt=); repeatable.
    #[arg(short = 'S', long = "add-scram", value_name = "MECHANISM=[...]")]
    pub add_scram: Vec<String>,
    /// The cluster id (a Kafka uuid, as kafka-storage.sh random-uuid prints); default: one derived
    /// from the initial controllers, the same on every node.
    #[arg(short = 't', long = "cluster-id", value_name = "ID")]
    pub cluster_id: Option<String>,
    /// Leave dirs already formatted as they are instead of refusing.
    #[arg(short = 'g', long = "ignore-formatted")]
    pub ignore_formatted: bool,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers (from Metadata).
    Info,
}

/// Runs one CLI command to its end and returns the process's exit code: 0 on success, 1 with
/// the error on stderr otherwise.
pub fn run(command: Command) -> ExitCode {
    // `fjord consume ... | head` should end quietly when the reader goes, as Unix tools do; Rust
    // ignores SIGPIPE by default, which would turn that into a panic on the next print. Only
    // the CLI does this: the broker keeps ignoring SIGPIPE (a closed socket is an error there).
    // SAFETY: restoring a signal's default disposition, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(common: &Common) -> anyhow::Result<Cluster> {
    Cluster::connect(&common.bootstrap, Duration::from_millis(common.timeout_ms)).await
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Topic { common, command } => topic::run(&mut connect(&common).await?, &common, command).await,
        Command::Produce { common, args } => produce::run(&mut connect(&common).await?, &common, args).await,
        Command::Consume { common, args } => consume::run(&mut connect(&common).await?, &common, args).await,
        Command::Group { common, command } => group::run(&mut connect(&common).await?, &common, command).await,
        Command::Cluster { common, command: ClusterCommand::Info } => cluster_info(&mut connect(&common).await?, &common).await,
        Command::Format(args) => format(&args),
    }
}

/// `fjord format`: this node's own log dirs (see [`crate::node::format`]); the one subcommand
/// that is not a Kafka client.
fn format(args: &FormatArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::Config::load(Some(&args.config), &args.overrides)?;
    let request = crate::node::format::FormatRequest {
        cluster_id: args.cluster_id.clone(),
        initial_controllers: match &args.initial_controllers {
            Some(list) => crate::node::format::parse_initial_controllers(list).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        },
        scram: args.add_scram.iter().map(|a| crate::node::format::parse_add_scram(a)).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?,
        ignore_formatted: args.ignore_formatted,
    };
    for line in crate::node::format::format(&config, &request).map_err(anyhow::Error::msg)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `fjord cluster info`: Metadata's cluster id, controller and brokers. (Against a KRaft
/// cluster, Kafka answers Metadata with a live broker as the "controller", as its own tools show.)
async fn cluster_info(cluster: &mut Cluster, common: &Common) -> anyhow::Result<ExitCode> {
    let md = cluster.metadata(Some(&[])).await?;
    let cluster_id = md.cluster_id.as_ref().map(|s| s.to_string());
    let mut brokers: Vec<_> = md.brokers.iter().collect();
    brokers.sort_by_key(|b| b.node_id.0);
    if common.json {
        let list: Vec<_> = brokers
            .iter()
            .map(|b| serde_json::json!({"id": b.node_id.0, "host": b.host.as_str(), "port": b.port, "rack": b.rack.as_ref().map(|r| r.as_str())}))
            .collect();
        output::print_json(&serde_json::json!({"cluster_id": cluster_id, "controller_id": md.controller_id.0, "brokers": list}));
    } else {
        println!("Cluster id: {}", cluster_id.as_deref().unwrap_or("-"));
        println!("Controller: {}", md.controller_id.0);
        let mut t = output::Table::new(&["ID", "HOST", "PORT", "RACK"]);
        for b in brokers {
            t.row(vec![b.node_id.0.to_string(), b.host.to_string(), b.port.to_string(), b.rack.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "-".into())]);
        }
        t.print();
    }
    Ok(ExitCode::SUCCESS)
}
