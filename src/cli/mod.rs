//! Command-line glue: the commands and global flags (clap), how each failure maps to an exit
//! code, and one file per command or group (`setup.rs` turns flags into a store, the
//! configuration and a runtime builder for all of them).
//! Exit codes: 0 success, 1 the run failed or was cancelled, 2 bad input, 130 interrupted.

mod agents;
mod approve;
mod backup;
mod bench;
mod checkpoints;
mod gather;
mod gc;
mod interrupt;
mod keys;
mod mcp;
mod nodes;
mod progress;
mod prp;
mod questions;
mod route;
mod run;
mod runs;
mod serve;
mod setup;
mod telemetry;
mod templates;
mod usage;
mod validate;

pub use setup::{
    builder, describe_store, dir_or_default, lease_ttl, load_agents, load_models, load_templates,
    open_existing_store, open_store, runtime,
};
pub use validate::{check_plan, plan_inputs, read_plan};

use crate::config::ConfigErrors;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// nofx: run plans as durable DAGs of agent actors.
#[derive(Parser)]
#[command(name = "nofx", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes.
#[derive(Args, Clone)]
pub struct Global {
    /// Data directory: the default SQLite store, run workspaces and artifacts.
    #[arg(long, global = true, default_value = ".nofx", value_name = "DIR")]
    data_dir: PathBuf,
    /// Store URL (sqlite://PATH or postgres://…); default: SQLite in the data directory.
    #[arg(
        long,
        global = true,
        env = "NOFX_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Policies directory (default: ./policies when present, else built-in defaults).
    #[arg(long, global = true, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Templates directory, loaded by `serve` and `templates` (default: ./templates when present).
    #[arg(long, global = true, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Agents directory (default: ./agents when present, else built-in agents).
    #[arg(long, global = true, value_name = "DIR")]
    agents: Option<PathBuf>,
    /// Seconds a run's lease lasts without a heartbeat; another process may take over a run
    /// whose owner stopped renewing it after this long.
    #[arg(long, global = true, default_value_t = 15.0, value_name = "SECONDS")]
    lease_ttl: f64,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, global = true, default_value = "warn", value_name = "FILTER")]
    log_level: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a plan file (YAML or JSON), or a goal (--goal) the planner decomposes, and wait
    /// for it to finish.
    Run(run::RunArgs),
    /// Check a plan file without running it.
    Validate(validate::ValidateArgs),
    /// Resume a stored run, or every unfinished run no live process owns.
    Resume(run::ResumeArgs),
    /// Inspect and control runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Inspect agents.
    #[command(subcommand)]
    Agents(agents::AgentsCommand),
    /// Apply store migrations.
    Migrate,
    /// Copy the SQLite store to a new file while runs execute (consistent as of one commit).
    Backup(backup::BackupArgs),
    /// Print JSON Schemas.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Benchmark the runtime with generated plans of test:echo tasks.
    Bench(bench::BenchArgs),
    /// Model usage and cost over a time range, by hour, day or ISO week.
    Usage(usage::UsageArgs),
    /// Which model the routing rules choose for a request (`--explain`: and why).
    Route(route::RouteArgs),
    /// API keys of `nofx serve`.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Run the runtime and the HTTP API in one process.
    Serve(serve::ServeArgs),
    /// Plan templates.
    #[command(subcommand)]
    Templates(templates::TemplatesCommand),
    /// Checkpoints of runs.
    #[command(subcommand)]
    Checkpoints(checkpoints::CheckpointsCommand),
    /// Delete what is past retention (policies/retention.toml): old runs' events, metrics,
    /// checkpoints and workspaces, checkpoints over the limit, unreferenced artifact files.
    Gc(gc::GcArgs),
    /// Nodes of a fleet (processes of `nofx serve` sharing the store), their load and leases.
    #[command(subcommand)]
    Nodes(nodes::NodesCommand),
    /// Approve a task waiting at a manual gate (it succeeds with its outputs) or on an
    /// agent's tool call (the call runs).
    Approve(approve::DecideArgs),
    /// Reject a task waiting at a manual gate (it fails) or on an agent's tool call (the
    /// model is told the call was declined).
    Reject(approve::DecideArgs),
    /// MCP servers agents may call (policies/mcp.toml).
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
    /// Typed questions runs ask the user.
    #[command(subcommand)]
    Questions(questions::QuestionsCommand),
    /// Answer a question a run asks (VALUE, or --idk for its default).
    Answer(questions::AnswerArgs),
    /// Gather requirements with a questionnaire (answered here, from a file or over the API)
    /// and print the plan they make; --run runs it.
    Gather(gather::GatherArgs),
    /// PRPs: validate, run step by step behind gates with rollback, report.
    #[command(subcommand)]
    Prp(prp::PrpCommand),
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// The JSON Schema of a plan (always JSON; `--json` is accepted like every read command).
    Plan {
        /// JSON on stdout (the only form).
        #[arg(long)]
        json: bool,
    },
    /// The JSON Schema of a PRP.
    Prp {
        /// JSON on stdout (the only form).
        #[arg(long)]
        json: bool,
    },
}

/// A failure and its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad plan, flags or configuration: exit 2.
    Input(String),
    /// The run failed or was cancelled (already reported): exit 1.
    RunFailed,
    /// Anything else: exit 1.
    Error(String),
    /// Interrupted: exit 130.
    Interrupted,
}

impl From<ConfigErrors> for Failure {
    fn from(e: ConfigErrors) -> Self {
        Failure::Input(e.to_string())
    }
}

impl From<crate::RuntimeError> for Failure {
    fn from(e: crate::RuntimeError) -> Self {
        match e {
            crate::RuntimeError::Plan(p) => Failure::Input(p.to_string()),
            crate::RuntimeError::Config(c) => Failure::Input(c.to_string()),
            crate::RuntimeError::Planner(e) => Failure::Input(e.to_string()),
            crate::RuntimeError::BadGoal(m)
            | crate::RuntimeError::BadFork(m)
            | crate::RuntimeError::NotWaiting(m)
            | crate::RuntimeError::NotApprover(m)
            | crate::RuntimeError::NoSuchTask(m)
            | crate::RuntimeError::NoSuchQuestion(m)
            | crate::RuntimeError::Answered(m) => Failure::Input(m),
            crate::RuntimeError::BadAnswer(r) => Failure::Input(r.to_string()),
            crate::RuntimeError::BadPrp(e) => Failure::Input(e.to_string()),
            crate::RuntimeError::Store(e) => Failure::from(e),
            // A data directory that cannot be made is the caller's configuration.
            e @ crate::RuntimeError::Io { .. } => Failure::Input(e.to_string()),
            other => Failure::Error(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            // What the caller named, and where the store is (URL, database, file): exit 2.
            crate::store::StoreError::NoSuchRun(_)
            | crate::store::StoreError::NoSuchCheckpoint(_)
            | crate::store::StoreError::AmbiguousRun(_)
            | crate::store::StoreError::BadInput(_)
            | crate::store::StoreError::Open { .. }
            | crate::store::StoreError::BadUrl(_) => Failure::Input(e.to_string()),
            other => Failure::Error(other.to_string()),
        }
    }
}

pub type CliResult = Result<(), Failure>;

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    crate::mcp::use_ring_for_tls();
    let cli = Cli::parse();
    let telemetry = match telemetry::init(&cli.global) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(dispatch(cli));
    drop(rt);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::RunFailed) => ExitCode::from(1),
        Err(Failure::Interrupted) => ExitCode::from(130),
        Err(Failure::Input(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Error(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// `nofx runs ls | head -1`: when the reader of stdout goes away, printing fails with EPIPE;
/// that ends the command quietly (exit 0), as it does for other command-line tools, instead of
/// a panic.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Whether the command may follow a run until it ends (and so handles Ctrl-C itself).
fn follows_a_run(command: &Command) -> bool {
    matches!(
        command,
        Command::Run(_)
            | Command::Resume(_)
            | Command::Templates(templates::TemplatesCommand::Instantiate { .. })
            | Command::Checkpoints(checkpoints::CheckpointsCommand::Restore { .. })
            | Command::Runs(runs::RunsCommand::Fork { .. } | runs::RunsCommand::Events { .. })
    )
}

async fn dispatch(cli: Cli) -> CliResult {
    let g = cli.global;
    // Global flags are checked for every command, not only those that start a runtime.
    lease_ttl(&g)?;
    if follows_a_run(&cli.command) {
        interrupt::catch();
    }
    match cli.command {
        Command::Run(a) => run::run(&g, a).await,
        Command::Resume(a) => run::resume(&g, a).await,
        Command::Validate(a) => validate::validate(&g, a),
        Command::Runs(c) => runs::dispatch(&g, c).await,
        Command::Agents(agents::AgentsCommand::Ls { json }) => agents::agents_ls(&g, json),
        Command::Backup(a) => backup::backup(&g, a).await,
        Command::Migrate => {
            let store = open_store(&g).await?;
            println!(
                "migrations applied ({} store at {})",
                store.backend(),
                describe_store(&g)
            );
            store.close().await;
            Ok(())
        }
        Command::Schema(SchemaCommand::Plan { json: _ }) => {
            let schema = serde_json::to_string_pretty(&crate::domain::plan::plan_schema())
                .map_err(|e| Failure::Error(e.to_string()))?;
            println!("{schema}");
            Ok(())
        }
        Command::Schema(SchemaCommand::Prp { json: _ }) => {
            let schema = serde_json::to_string_pretty(&crate::domain::prp::prp_schema())
                .map_err(|e| Failure::Error(e.to_string()))?;
            println!("{schema}");
            Ok(())
        }
        Command::Usage(a) => usage::usage(&g, a).await,
        Command::Route(a) => route::route(&g, a),
        Command::Keys(c) => keys::dispatch(&g, c).await,
        Command::Serve(a) => serve::serve(&g, a).await,
        Command::Templates(c) => templates::dispatch(&g, c).await,
        Command::Checkpoints(c) => checkpoints::dispatch(&g, c).await,
        Command::Gc(a) => gc::gc(&g, a).await,
        Command::Nodes(c) => nodes::dispatch(&g, c).await,
        Command::Approve(a) => approve::decide(&g, a, true).await,
        Command::Reject(a) => approve::decide(&g, a, false).await,
        Command::Bench(a) => bench::bench(&g, a).await,
        Command::Mcp(c) => mcp::dispatch(&g, c).await,
        Command::Questions(c) => questions::dispatch(&g, c).await,
        Command::Answer(a) => questions::answer(&g, a).await,
        Command::Gather(a) => gather::gather(&g, a).await,
        Command::Prp(c) => prp::dispatch(&g, c).await,
    }
}
