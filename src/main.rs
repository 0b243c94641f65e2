//! The `kefud` command: run the daemon, check a config, or administer agents.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kefud::config::Config;

#[global_allocator]
static ALLOCATOR: kefud::alloc_count::CountingAllocator = kefud::alloc_count::CountingAllocator;

/// glibc raises its mmap threshold after a large block is freed, so later large blocks
/// (Argon2's 12 MiB, a big upload) come from the heap and stay resident after they are freed.
/// A fixed threshold keeps every block over 256 KiB in its own mapping, returned at free.
fn return_large_buffers_to_the_os() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[derive(Parser)]
#[command(
    name = "kefud",
    version,
    about = "Omnichannel customer-service engine for a Raspberry Pi"
)]
struct Cli {
    /// Config file (TOML); without it kefud runs on its embedded defaults.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Validate the config and exit (for systemd's ExecStartPre=).
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Manage agent accounts (works while the daemon runs).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// The knowledge base the bot answers from and routes by.
    #[command(subcommand)]
    Kb(KbCommand),
    /// API keys of the HTTP API channel (POST /api/v1/inbox/{channel}/messages).
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// The write-ahead journal (needs the daemon stopped).
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Back up the data directory into DEST (new or empty), while the daemon runs or not.
    Backup { dest: PathBuf },
    /// Restore the backup in SRC into the configured data directory, which must be empty;
    /// every file is verified first.
    Restore { src: PathBuf },
    /// Put the store back as it was before the schema migrations made since an upgrade
    /// installed at MS (Unix time in ms), keeping the newer store aside; for `kefud-rollback`,
    /// which then puts the previous kefud back. Needs the daemon stopped.
    RollbackStore {
        #[arg(long, value_name = "MS")]
        since_ms: u64,
    },
    /// Bring another system's history in, once: a run killed part way and run again finishes
    /// the job; needs the daemon stopped.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Wait until this config's kefud answers GET /healthz with status ok (exit 0), or say why
    /// not when the timeout has passed (exit 1).
    Healthcheck {
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        timeout_secs: u64,
    },
    /// Make the local MQTT broker (mosquitto) save what it acknowledged within MS
    /// milliseconds of its arrival, and never while nothing arrives (SIGUSR1 to its process;
    /// run as the broker's user).
    BrokerSaver {
        /// The broker, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:1883")]
        broker: String,
        /// The broker's pid file.
        #[arg(long, value_name = "FILE", conflicts_with = "pid")]
        pid_file: Option<PathBuf>,
        /// The broker's process id.
        #[arg(long)]
        pid: Option<i32>,
        #[arg(long, value_name = "MS", default_value_t = 100)]
        min_interval_ms: u64,
    },
    /// Signed update bundles: the release key, making a bundle, checking one as this box would.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Print contacts, conversations and messages as JSON Lines (read-only; works while the
    /// daemon runs).
    Export {
        /// Only this contact's (a customer's own data).
        #[arg(long, value_name = "ID")]
        contact: Option<i64>,
    },
}

#[derive(Subcommand)]
enum UpdateCommand {
    /// A new release key pair: PREFIX.key (secret: keep it off the box and out of the
    /// repository) and PREFIX.pub (packaged as /usr/share/kefud/update-key.pub).
    Keygen { prefix: PathBuf },
    /// Print the public key file of a secret key file.
    PublicKey {
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// A bundle of kefud VERSION (default: this kefud's) from its .deb files (one per
    /// architecture, named kefud_VERSION-REVISION_ARCH.deb as cargo deb names them), signed
    /// with the secret key.
    Bundle {
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long)]
        version: Option<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(required = true)]
        debs: Vec<PathBuf>,
    },
    /// Check a bundle as this box would install it (signature, version, architecture,
    /// checksums) and, with --extract-to, write its package for this box there.
    Verify {
        file: PathBuf,
        /// The public key file.
        #[arg(long, value_name = "FILE", default_value = kefud::update::PUBLIC_KEY_PATH)]
        key: PathBuf,
        /// The Debian architecture (default: this kefud's).
        #[arg(long)]
        arch: Option<String>,
        /// The version that runs (default: this kefud's); the bundle must be newer.
        #[arg(long)]
        running: Option<String>,
        #[arg(long, value_name = "FILE")]
        extract_to: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// go-fly's database, from its mysqldump file (no MySQL server needed): agents (disabled
    /// until given a password), visitors, messages, canned replies.
    Gofly {
        file: PathBuf,
        #[command(flatten)]
        options: ImportOptions,
    },
    /// A CSV or JSON Lines history, one message per line: contact, sender, text, time
    /// (optionally channel, name, agent).
    History {
        file: PathBuf,
        /// csv or jsonl (default: from the file's extension, else jsonl).
        #[arg(long)]
        format: Option<String>,
        #[command(flatten)]
        options: ImportOptions,
    },
}

#[derive(clap::Args)]
struct ImportOptions {
    /// A contact's messages further apart than this many hours start a new conversation.
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    gap_hours: u64,
    /// Read and check the file, report what would be imported, write nothing.
    #[arg(long)]
    check: bool,
}

impl ImportOptions {
    fn options(&self) -> kefud::import::Options {
        kefud::import::Options {
            gap: std::time::Duration::from_secs(self.gap_hours.max(1) * 3600),
            check_only: self.check,
        }
    }
}

#[derive(Subcommand)]
enum JournalCommand {
    /// After startup refused a damaged last segment: cut it at the offset the refusal named,
    /// losing the records from there on. The cut bytes are kept in journal/damaged/.
    Truncate {
        /// The segment file the refusal named (path or file name).
        file: PathBuf,
        /// The offset the refusal named.
        offset: u64,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create a key for a channel (printed once).
    Add {
        channel: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    List,
    /// Revoke a key by id; it stops working at once.
    Revoke {
        id: i64,
    },
}

#[derive(Subcommand)]
enum KbCommand {
    /// Import a JSON Lines or CSV file (one example question per line) into the knowledge
    /// base; needs the daemon stopped (use POST /api/v1/kb/import while it runs).
    Import {
        file: String,
        /// jsonl or csv (default: from the file's extension, else jsonl).
        #[arg(long)]
        format: Option<String>,
        /// Remove entries the file does not name.
        #[arg(long)]
        replace: bool,
    },
    /// Print the knowledge base in the import format.
    Export {
        /// jsonl (default) or csv.
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Add an agent; the password is read from stdin.
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List agents.
    List,
    /// Set an agent's password and sign out their sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> ExitCode {
    return_large_buffers_to_the_os();
    let cli = Cli::parse();
    let cfg = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(cfg) => cfg,
            Err(e) => {
                eprintln!("kefud: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if cli.check_config {
        println!("config OK");
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Some(Command::Agent(AgentCommand::Add {
            name,
            admin,
            password_stdin,
            display_name,
        })) => kefud::admin::agent_add(&cfg, &name, display_name.as_deref(), admin, password_stdin),
        Some(Command::Agent(AgentCommand::List)) => kefud::admin::agent_list(&cfg),
        Some(Command::Agent(AgentCommand::Passwd {
            name,
            password_stdin,
        })) => kefud::admin::agent_passwd(&cfg, &name, password_stdin),
        Some(Command::Kb(KbCommand::Import {
            file,
            format,
            replace,
        })) => kefud::admin::kb_import(&cfg, &file, format.as_deref(), replace),
        Some(Command::Kb(KbCommand::Export { format })) => {
            kefud::admin::kb_export(&cfg, format.as_deref())
        }
        Some(Command::Apikey(ApikeyCommand::Add { channel, name })) => {
            kefud::admin::apikey_add(&cfg, &channel, &name)
        }
        Some(Command::Apikey(ApikeyCommand::List)) => kefud::admin::apikey_list(&cfg),
        Some(Command::Apikey(ApikeyCommand::Revoke { id })) => {
            kefud::admin::apikey_revoke(&cfg, id)
        }
        Some(Command::Journal(JournalCommand::Truncate { file, offset })) => {
            kefud::admin::journal_truncate(&cfg, &file, offset)
        }
        Some(Command::Backup { dest }) => kefud::admin::backup(&cfg, &dest),
        Some(Command::Restore { src }) => kefud::admin::restore(&cfg, &src),
        Some(Command::RollbackStore { since_ms }) => kefud::admin::rollback_store(&cfg, since_ms),
        Some(Command::Import(command)) => return run_import(&cfg, command),
        Some(Command::Update(command)) => run_update(command).map_err(Into::into),
        Some(Command::BrokerSaver {
            broker,
            pid_file,
            pid,
            min_interval_ms,
        }) => return run_broker_saver(&broker, pid_file, pid, min_interval_ms),
        Some(Command::Healthcheck { timeout_secs }) => {
            kefud::admin::healthcheck(&cfg, std::time::Duration::from_secs(timeout_secs))
        }
        Some(Command::Export { contact }) => {
            let out = &mut std::io::stdout().lock();
            return match kefud::export::export(&cfg.db_path(), contact, out) {
                Ok(lines) => {
                    eprintln!("kefud: exported {lines} records");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("kefud: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        None => return run_daemon(cfg, cli.config),
    };
    match result {
        Ok(out) => {
            println!("{}", out.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kefud: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_broker_saver(
    broker: &str,
    pid_file: Option<PathBuf>,
    pid: Option<i32>,
    min_interval_ms: u64,
) -> ExitCode {
    use kefud::broker_saver::{run, BrokerProcess, Options};
    let process = match (pid_file, pid) {
        (Some(file), _) => BrokerProcess::PidFile(file),
        (None, Some(pid)) => BrokerProcess::Pid(pid),
        (None, None) => {
            eprintln!(
                "kefud broker-saver: name the broker's process: --pid-file FILE or --pid PID"
            );
            return ExitCode::from(2);
        }
    };
    let Some((host, port)) = broker
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
    else {
        eprintln!("kefud broker-saver: --broker {broker:?} is not HOST:PORT");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kefud broker-saver: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(Options {
        host,
        port,
        broker: process,
        min_interval: std::time::Duration::from_millis(min_interval_ms.max(1)),
    }));
    ExitCode::SUCCESS
}

fn run_update(command: UpdateCommand) -> Result<String, kefud::update::UpdateError> {
    use kefud::update::cli;
    match command {
        UpdateCommand::Keygen { prefix } => cli::keygen(&prefix),
        UpdateCommand::PublicKey { key } => cli::public_key(&key),
        UpdateCommand::Bundle {
            key,
            version,
            out,
            debs,
        } => cli::bundle(&key, version.as_deref(), &out, &debs),
        UpdateCommand::Verify {
            file,
            key,
            arch,
            running,
            extract_to,
        } => cli::verify(
            &file,
            &key,
            arch.as_deref(),
            running.as_deref(),
            extract_to.as_deref(),
        ),
    }
}

fn run_import(cfg: &Config, command: ImportCommand) -> ExitCode {
    let result = match command {
        ImportCommand::Gofly { file, options } => {
            kefud::import::import_gofly(cfg, &file, &options.options())
        }
        ImportCommand::History {
            file,
            format,
            options,
        } => match kefud::import::HistoryFormat::named(format.as_deref(), &file) {
            Some(format) => kefud::import::import_history(cfg, &file, format, &options.options()),
            None => {
                eprintln!("kefud: unknown format {format:?}: use csv or jsonl");
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kefud: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_daemon(cfg: Config, config_path: Option<PathBuf>) -> ExitCode {
    let log = kefud::telemetry::init(&cfg.log.level);
    let reloader = kefud::reload::Reloader {
        path: config_path,
        log,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kefud: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    runtime.spawn(kefud::app::cancel_on_signal(shutdown.clone()));
    match runtime.block_on(kefud::run(cfg, reloader, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(
                message_id = kefud::telemetry::message_id::FAILED,
                "kefud stopped: {e}"
            );
            eprintln!("kefud: {e}");
            ExitCode::FAILURE
        }
    }
}
