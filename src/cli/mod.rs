//! Command-line glue: arguments (clap), configuration lookup, output and exit codes.
//! Exit codes: 0 success, 1 the run failed or was cancelled, 2 bad input, 130 interrupted.

mod approve;
mod checkpoints;
mod gc;
mod interrupt;
mod keys;
mod nodes;
mod progress;
mod route;
mod run;
mod runs;
mod serve;
mod telemetry;
mod templates;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nofx::config::{self, ConfigErrors};
use nofx::domain::plan::{Format, PlanSource};
use nofx::tools::CommandPolicy;
use nofx::{AgentSpec, Runtime, RuntimeBuilder};
use std::path::{Path, PathBuf};
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
    Validate(ValidateArgs),
    /// Resume a stored run, or every unfinished run no live process owns.
    Resume(run::ResumeArgs),
    /// Inspect and control runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Inspect agents.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Apply store migrations.
    Migrate,
    /// Print JSON Schemas.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Benchmark the runtime with generated plans of test:echo tasks.
    Bench(BenchArgs),
    /// Model usage and cost over a time range, by hour, day or ISO week.
    Usage(UsageArgs),
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
    /// Approve a task waiting at a manual gate: it succeeds with its outputs.
    Approve(approve::DecideArgs),
    /// Reject a task waiting at a manual gate: it fails.
    Reject(approve::DecideArgs),
}

#[derive(Args)]
struct UsageArgs {
    /// Start of the range (inclusive): YYYY-MM-DD (UTC midnight) or RFC 3339; default 7 days ago.
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// End of the range (exclusive): YYYY-MM-DD or RFC 3339; default now.
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// Bucket width.
    #[arg(long, value_enum, default_value = "day")]
    group_by: GroupByArg,
    /// Only this project's calls.
    #[arg(long, value_name = "NAME")]
    project: Option<String>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum GroupByArg {
    Hour,
    Day,
    Week,
}

/// Reads `YYYY-MM-DD` (UTC midnight) or an RFC 3339 time as milliseconds since the epoch.
fn parse_date(flag: &str, s: &str) -> Result<i64, Failure> {
    nofx::store::parse_date(s).ok_or_else(|| {
        Failure::Input(format!(
            "{flag} `{s}` is not a date (YYYY-MM-DD) or an RFC 3339 time"
        ))
    })
}

async fn usage(g: &Global, a: UsageArgs) -> CliResult {
    let now = nofx::domain::time::now_ms();
    let until = match &a.until {
        Some(s) => parse_date("--until", s)?,
        None => now,
    };
    let since = match &a.since {
        Some(s) => parse_date("--since", s)?,
        None => until - 7 * 86_400_000,
    };
    let group = match a.group_by {
        GroupByArg::Hour => nofx::store::GroupBy::Hour,
        GroupByArg::Day => nofx::store::GroupBy::Day,
        GroupByArg::Week => nofx::store::GroupBy::Week,
    };
    if until <= since {
        return Err(Failure::Input(format!(
            "--until ({}) must be after --since ({})",
            nofx::domain::time::rfc3339(until),
            nofx::domain::time::rfc3339(since)
        )));
    }
    let store = open_existing_store(g).await?;
    let report = store.usage(since, until, group, a.project.as_deref()).await;
    store.close().await;
    let report = report.map_err(|e| match e {
        nofx::store::StoreError::BadRange(m) => Failure::Input(m),
        other => Failure::from(other),
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Failure::Error(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{:<22} {:>6} {:>7} {:>7} {:>10} {:>12} {:>10} {:>7}",
        "BUCKET", "RUNS", "TASKS", "CALLS", "TOKENS", "COST (USD)", "AVG MS", "ERRORS"
    );
    for b in &report.usage {
        println!(
            "{:<22} {:>6} {:>7} {:>7} {:>10} {:>12.6} {:>10.1} {:>7}",
            b.bucket, b.runs, b.tasks, b.calls, b.tokens, b.cost, b.avg_duration, b.errors
        );
    }
    let s = &report.summary;
    println!(
        "{:<22} {:>6} {:>7} {:>7} {:>10} {:>12.6} {:>10.1} {:>7}",
        "total",
        s.total_runs,
        s.total_tasks,
        s.total_calls,
        s.total_tokens,
        s.total_cost,
        s.average_duration,
        s.total_errors
    );
    Ok(())
}

#[derive(Args)]
struct ValidateArgs {
    /// The plan file.
    file: PathBuf,
    /// Plan inputs, NAME=VALUE (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    inputs: Vec<String>,
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// List the agents.
    Ls {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// The JSON Schema of a plan (always JSON; `--json` is accepted like every read command).
    Plan {
        /// JSON on stdout (the only form).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// Plan shape.
    #[arg(long, value_enum, default_value = "fanout")]
    shape: BenchShape,
    /// Number of tasks; several sizes (`10000,100000`) run one after another in this
    /// process, one JSON line each.
    #[arg(long, default_value = "1000", value_delimiter = ',', num_args = 1..)]
    tasks: Vec<usize>,
    /// With several sizes: exit 1 when the largest run takes more than this many times as
    /// long as the smallest (a cost per task that grows with the run shows as a ratio above
    /// the ratio of the sizes, whatever the machine's speed).
    #[arg(long, value_name = "RATIO")]
    max_ratio: Option<f64>,
    /// Store.
    #[arg(long, value_enum, default_value = "memory")]
    store: BenchStoreArg,
}

/// Plan shape (the CLI's names for [`nofx::bench::Shape`]).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BenchShape {
    /// N tasks in sequence.
    Chain,
    /// One root, N parallel tasks, one sink.
    Fanout,
    /// N/100 layers of 100 tasks, each depending on the whole previous layer.
    Layered,
}

impl From<BenchShape> for nofx::bench::Shape {
    fn from(s: BenchShape) -> Self {
        match s {
            BenchShape::Chain => Self::Chain,
            BenchShape::Fanout => Self::Fanout,
            BenchShape::Layered => Self::Layered,
        }
    }
}

/// Which store (the CLI's names for [`nofx::bench::BenchStore`]).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BenchStoreArg {
    /// In-memory SQLite.
    Memory,
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on a Postgres server.
    Postgres,
}

impl From<BenchStoreArg> for nofx::bench::BenchStore {
    fn from(s: BenchStoreArg) -> Self {
        match s {
            BenchStoreArg::Memory => Self::Memory,
            BenchStoreArg::Sqlite => Self::Sqlite,
            BenchStoreArg::Postgres => Self::Postgres,
        }
    }
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

impl From<nofx::RuntimeError> for Failure {
    fn from(e: nofx::RuntimeError) -> Self {
        match e {
            nofx::RuntimeError::Plan(p) => Failure::Input(p.to_string()),
            nofx::RuntimeError::Config(c) => Failure::Input(c.to_string()),
            nofx::RuntimeError::Planner(e) => Failure::Input(e.to_string()),
            nofx::RuntimeError::BadGoal(m)
            | nofx::RuntimeError::BadFork(m)
            | nofx::RuntimeError::NotWaiting(m)
            | nofx::RuntimeError::NotApprover(m)
            | nofx::RuntimeError::NoSuchTask(m) => Failure::Input(m),
            nofx::RuntimeError::Store(e) => Failure::from(e),
            // A data directory that cannot be made is the caller's configuration.
            e @ nofx::RuntimeError::Io { .. } => Failure::Input(e.to_string()),
            other => Failure::Error(other.to_string()),
        }
    }
}

impl From<nofx::store::StoreError> for Failure {
    fn from(e: nofx::store::StoreError) -> Self {
        match e {
            // What the caller named, and where the store is (URL, database, file): exit 2.
            nofx::store::StoreError::NoSuchRun(_)
            | nofx::store::StoreError::NoSuchCheckpoint(_)
            | nofx::store::StoreError::AmbiguousRun(_)
            | nofx::store::StoreError::BadInput(_)
            | nofx::store::StoreError::Open { .. }
            | nofx::store::StoreError::BadUrl(_) => Failure::Input(e.to_string()),
            other => Failure::Error(other.to_string()),
        }
    }
}

pub type CliResult = Result<(), Failure>;

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
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
        Command::Validate(a) => validate(&g, a),
        Command::Runs(c) => runs::dispatch(&g, c).await,
        Command::Agents(AgentsCommand::Ls { json }) => agents_ls(&g, json),
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
            let schema = serde_json::to_string_pretty(&nofx::domain::plan::plan_schema())
                .map_err(|e| Failure::Error(e.to_string()))?;
            println!("{schema}");
            Ok(())
        }
        Command::Usage(a) => usage(&g, a).await,
        Command::Route(a) => route::route(&g, a),
        Command::Keys(c) => keys::dispatch(&g, c).await,
        Command::Serve(a) => serve::serve(&g, a).await,
        Command::Templates(c) => templates::dispatch(&g, c).await,
        Command::Checkpoints(c) => checkpoints::dispatch(&g, c).await,
        Command::Gc(a) => gc::gc(&g, a).await,
        Command::Nodes(c) => nodes::dispatch(&g, c).await,
        Command::Approve(a) => approve::decide(&g, a, true).await,
        Command::Reject(a) => approve::decide(&g, a, false).await,
        Command::Bench(a) => bench(&g, a).await,
    }
}

async fn bench(g: &Global, a: BenchArgs) -> CliResult {
    let mut reports = Vec::new();
    for &n in &a.tasks {
        let report = nofx::bench::run(a.shape.into(), n, a.store.into(), g.database_url.as_deref())
            .await
            .map_err(|e| match e {
                nofx::bench::BenchError::Input(m) => Failure::Input(m),
                other => Failure::Error(other.to_string()),
            })?;
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Failure::Error(e.to_string()))?
        );
        reports.push(report);
    }
    let Some(max) = a.max_ratio else {
        return Ok(());
    };
    let small = reports.iter().min_by_key(|r| r.tasks);
    let large = reports.iter().max_by_key(|r| r.tasks);
    let (Some(small), Some(large)) = (small, large) else {
        return Ok(());
    };
    if small.tasks == large.tasks {
        return Err(Failure::Input(
            "--max-ratio needs two different --tasks sizes".into(),
        ));
    }
    let ratio = large.seconds / small.seconds.max(1e-9);
    eprintln!(
        "{} tasks took {:.2}s, {} tasks {:.2}s: {ratio:.1} times as long for {:.0} times the tasks (limit {max})",
        small.tasks,
        small.seconds,
        large.tasks,
        large.seconds,
        large.tasks as f64 / small.tasks as f64
    );
    if ratio > max {
        return Err(Failure::Error(format!(
            "the cost per task grows with the run: {ratio:.1} times as long is over the limit of {max}"
        )));
    }
    Ok(())
}

/// The store URL the flags name.
pub fn store_url(g: &Global) -> String {
    match &g.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", g.data_dir.join("nofx.db").display()),
    }
}

fn describe_store(g: &Global) -> String {
    match &g.database_url {
        Some(u) if u.starts_with("postgres") => {
            // Never print a password.
            match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => format!("{}://…@{}", &u[..s], &u[at + 1..]),
                _ => u.clone(),
            }
        }
        Some(u) => u.clone(),
        None => g.data_dir.join("nofx.db").display().to_string(),
    }
}

/// Opens a store that must exist already (commands that only read or change what is there):
/// a SQLite file that is not there is an error, not a new empty store.
pub async fn open_existing_store(g: &Global) -> Result<nofx::store::Store, Failure> {
    let url = store_url(g);
    let file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .filter(|p| *p != ":memory:");
    if let Some(f) = file {
        if !Path::new(f).exists() {
            return Err(Failure::Input(format!(
                "no store at {f}: nothing has run with this data directory yet (see --data-dir and --database-url)"
            )));
        }
    }
    open_store(g).await
}

/// Opens the store for reads (creating the data directory for the default SQLite file).
pub async fn open_store(g: &Global) -> Result<nofx::store::Store, Failure> {
    if g.database_url.is_none() {
        std::fs::create_dir_all(&g.data_dir).map_err(|e| {
            Failure::Input(format!(
                "cannot create data directory {}: {e}",
                g.data_dir.display()
            ))
        })?;
    }
    Ok(nofx::store::Store::open(&store_url(g)).await?)
}

pub fn dir_or_default(flag: &Option<PathBuf>, default: &str) -> Result<Option<PathBuf>, Failure> {
    match flag {
        Some(d) if d.is_dir() => Ok(Some(d.clone())),
        Some(d) => Err(Failure::Input(format!(
            "{} is not a directory",
            d.display()
        ))),
        None => Ok(Some(PathBuf::from(default)).filter(|p| p.is_dir())),
    }
}

/// The agents the flags name.
pub fn load_agents(g: &Global) -> Result<Vec<AgentSpec>, Failure> {
    Ok(match dir_or_default(&g.agents, "agents")? {
        Some(dir) => config::load_agents(&dir)?,
        None => config::builtin_agents(),
    })
}

/// The command policy the flags name; without a policy file, `default` applies (the CLI
/// allows any command, `nofx serve` none).
pub fn load_policy(g: &Global, default: CommandPolicy) -> Result<CommandPolicy, Failure> {
    Ok(match dir_or_default(&g.policies, "policies")? {
        Some(dir) => nofx::tools::load_command_policy(&dir, default)?,
        None => default,
    })
}

/// Models configured from the policies directory and the environment (keys and base URLs
/// named by `models.toml`).
pub fn load_models(g: &Global) -> Result<nofx::models::ModelsConfig, Failure> {
    let dir = dir_or_default(&g.policies, "policies")?;
    Ok(nofx::models::ModelsConfig::load(dir.as_deref())?.with_env(|k| std::env::var(k).ok()))
}

/// A runtime configured from the flags.
pub async fn runtime(g: &Global) -> Result<Runtime, Failure> {
    runtime_with(g, CommandPolicy::allow_all()).await
}

/// A runtime configured from the flags, with `default_policy` when no tools.toml exists.
pub async fn runtime_with(g: &Global, default_policy: CommandPolicy) -> Result<Runtime, Failure> {
    Ok(builder(g, default_policy)?.build().await?)
}

/// The builder of [`runtime_with`], for commands that set more. Every problem of the flags,
/// agents and policies is reported at once.
pub fn builder(g: &Global, default_policy: CommandPolicy) -> Result<RuntimeBuilder, Failure> {
    fn keep<T>(problems: &mut Vec<String>, r: Result<T, Failure>) -> Option<T> {
        match r {
            Ok(x) => Some(x),
            Err(Failure::Input(m) | Failure::Error(m)) => {
                problems.push(m);
                None
            }
            Err(_) => None,
        }
    }
    let mut problems: Vec<String> = Vec::new();
    let p = &mut problems;
    let ttl = keep(p, lease_ttl(g));
    let agents = keep(p, load_agents(g));
    let policy = keep(p, load_policy(g, default_policy));
    let checkpoints = keep(
        p,
        dir_or_default(&g.policies, "policies").and_then(|dir| {
            Ok(match dir {
                Some(dir) => config::load_checkpoint_policy(&dir)?,
                None => Default::default(),
            })
        }),
    );
    let models = keep(p, load_models(g));
    let (Some(ttl), Some(agents), Some(policy), Some(checkpoints), Some(models)) =
        (ttl, agents, policy, checkpoints, models)
    else {
        return Err(Failure::Input(problems.join("\n")));
    };
    let mut b: RuntimeBuilder = Runtime::builder()
        .checkpoint_policy(checkpoints)
        .data_dir(g.data_dir.clone())
        .database_url(store_url(g))
        .agents(agents)
        .command_policy(policy)
        .models(models)
        .lease_ttl(ttl);
    if let Ok(exe) = std::env::current_exe() {
        b = b.process_guard(exe);
    }
    Ok(b)
}

fn lease_ttl(g: &Global) -> Result<std::time::Duration, Failure> {
    if !(g.lease_ttl.is_finite() && (1.0..=3600.0).contains(&g.lease_ttl)) {
        return Err(Failure::Input(format!(
            "--lease-ttl must be between 1 and 3600 seconds, got {}",
            g.lease_ttl
        )));
    }
    Ok(std::time::Duration::from_secs_f64(g.lease_ttl))
}

/// Checks a plan as `nofx run` would before running it, without opening the store: the
/// configuration (agents, policies, models) and the plan, every problem at once.
pub fn check_plan(
    g: &Global,
    src: &PlanSource,
    inputs: &serde_json::Map<String, serde_json::Value>,
) -> Result<nofx::domain::plan::ValidatedPlan, Failure> {
    match builder(g, CommandPolicy::allow_all()) {
        Ok(b) => Ok(b.check(src, inputs)?),
        Err(Failure::Input(config)) => {
            // The configuration is broken; the plan's own problems are listed too, checked
            // against the agents that did load (else the built-in ones).
            let agents = load_agents(g).unwrap_or_else(|_| config::builtin_agents());
            let plan = nofx::domain::plan::validate(
                src,
                inputs,
                &nofx::tools::ToolRegistry::builtin(),
                &agents,
            )
            .err()
            .map(|e| format!("\n{e}"))
            .unwrap_or_default();
            Err(Failure::Input(format!("{config}{plan}")))
        }
        Err(other) => Err(other),
    }
}

/// Loads the shipped templates the flags name into the store (only the commands that serve
/// or list templates need them, so other commands start without this work).
pub async fn load_templates(g: &Global, rt: &Runtime) -> Result<(), Failure> {
    if let Some(dir) = dir_or_default(&g.templates, "templates")? {
        rt.load_templates(&dir).await?;
    }
    Ok(())
}

/// Reads a plan file; `-` reads the plan from standard input (YAML, or JSON).
pub fn read_plan(path: &Path) -> Result<PlanSource, Failure> {
    let (text, name) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::Input(format!("cannot read the plan from stdin: {e}")))?;
        (text, "<stdin>".to_string())
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::Input(format!("cannot read plan file {}: {e}", path.display()))
        })?;
        (text, path.display().to_string())
    };
    PlanSource::parse(&text, Format::for_path(&name), Some(&name))
        .map_err(|e| Failure::Input(e.to_string()))
}

/// Splits `NAME=VALUE` flags and types them by the plan's declared inputs.
pub fn plan_inputs(
    src: &PlanSource,
    raw: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for r in raw {
        let (k, v) = r
            .split_once('=')
            .ok_or_else(|| Failure::Input(format!("--input `{r}` must be NAME=VALUE")))?;
        let k = k.trim().to_string();
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(Failure::Input(format!(
                "--input `{k}` is given more than once; give each input once"
            )));
        }
        pairs.push((k, v.to_string()));
    }
    nofx::domain::plan::inputs_from_text(&src.plan, &pairs)
        .map_err(|e| Failure::Input(e.to_string()))
}

fn validate(g: &Global, a: ValidateArgs) -> CliResult {
    let src = read_plan(&a.file)?;
    let inputs = plan_inputs(&src, &a.inputs)?;
    let v = check_plan(g, &src, &inputs)?;
    let n = v.graph.len();
    println!(
        "{}: plan `{}` is valid ({n} task{})",
        a.file.display(),
        v.plan.name,
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}

fn agents_ls(g: &Global, json: bool) -> CliResult {
    let agents = load_agents(g)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "agents": agents }))
                .map_err(|e| Failure::Error(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{:<16} {:<12} {:>4} {:>8}  {:<28} AFFINITY",
        "ID", "ROLE", "MAX", "RATE/S", "CAPABILITIES"
    );
    for a in agents {
        println!(
            "{:<16} {:<12} {:>4} {:>8}  {:<28} {}",
            a.id,
            a.role,
            a.max_concurrency,
            a.rate.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            a.capabilities.join(","),
            a.affinity.join(",")
        );
    }
    Ok(())
}
