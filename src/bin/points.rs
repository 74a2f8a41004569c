//! `points`: the one binary — serve the ledger, make keys, act as a wallet, audit, export,
//! reindex, benchmark.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use points_ledger::client::{Client, Wallet};
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::server::{self, ServeConfig};
use points_ledger::store::{Store, StoreConfig, Writer};

#[path = "points/loyalty.rs"]
mod loyalty;

#[derive(Parser)]
#[command(
    name = "points",
    version,
    about = "A loyalty-points program as a verifiable token ledger"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "POINTS_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ledger service (creates a new ledger in an empty data folder).
    ///
    /// Every option also reads a `POINTS_*` environment variable (named in each option's
    /// help). Logs go to stderr: `POINTS_LOG` sets the filter (default `info`; e.g.
    /// `info,tower_http=debug` logs every request), `--log-json` writes JSON lines. Every
    /// request carries an `x-request-id` (kept from the request or made up), echoed in the
    /// response and logged with the request's span.
    Serve(ServeArgs),
    /// Create a new ed25519 key file (mode 0600) and print its public key.
    Keygen {
        /// Where to write the key; refuses to overwrite.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Sign ops with a key and send them to a server; read wallets.
    Wallet(WalletArgs),
    /// Verify a whole ledger as an auditor: every link, hash, signature, rule, invariant and
    /// checkpoint. Exactly one source.
    Audit(AuditArgs),
    /// Write the whole log and its checkpoints to a file, for offline audit.
    Export {
        /// Export a live server.
        #[arg(long, conflicts_with = "data")]
        server: Option<String>,
        /// With --server: the key to sign the request with (an auditor's or the issuer's).
        #[arg(long, env = "POINTS_KEY")]
        key: Option<PathBuf>,
        /// Export a stopped data folder.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// The redemption mall: list, show, add, update, redeem, orders, fulfill, cancel.
    Mall(MallArgs),
    /// Merchant settlement: draft a statement, countersign it, submit it, list settlements.
    Settle(SettleArgs),
    /// Reports.
    Report {
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// GET an API route with a request signed by a key (ledger-spec/api.md §3) and print the
    /// answer; or print only the Authorization header, for curl.
    Get {
        /// Key file to sign with; without it the request is anonymous.
        #[arg(long, env = "POINTS_KEY")]
        key: Option<PathBuf>,
        /// Server URL.
        #[arg(long, env = "POINTS_SERVER", default_value = "http://127.0.0.1:8700")]
        server: String,
        /// Print only the `Authorization` header value for this path (valid for 60 s,
        /// once), e.g. `curl -H "Authorization: $(points get --key K --authorization PATH)"`.
        #[arg(long, requires = "key")]
        authorization: bool,
        /// Path and query, e.g. `/v1/wallets/<account>/history?limit=10`.
        path: String,
    },
    /// Rebuild all derived state by replaying the log (the service must be stopped).
    Reindex {
        /// The data folder.
        #[arg(long, env = "POINTS_DATA", default_value = "points-data")]
        data: PathBuf,
    },
    /// Measure throughput, latency and cost on this machine against its own limits.
    Bench(points_ledger::bench::BenchArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Data folder: keys and the sled database.
    #[arg(long, env = "POINTS_DATA", default_value = "points-data")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "POINTS_LISTEN", default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
    /// Chain id of a new ledger (default: a random `points.local/xxxxxxxx`). Ignored when
    /// the folder already holds a ledger.
    #[arg(long, env = "POINTS_CHAIN_ID")]
    chain_id: Option<String>,
    /// Settlement currency (ISO 4217) of a new ledger.
    #[arg(long, env = "POINTS_CURRENCY", default_value = "CNY")]
    currency: String,
    /// Minor unit digits of the currency.
    #[arg(long, env = "POINTS_MINOR_UNIT_DIGITS", default_value_t = 2)]
    minor_unit_digits: u8,
    /// Sign a new checkpoint at most this often (ms) while entries arrive.
    #[arg(long, env = "POINTS_CHECKPOINT_INTERVAL_MS", default_value_t = 1000)]
    checkpoint_interval_ms: u64,
    /// sled page cache in MiB.
    #[arg(long, env = "POINTS_CACHE_MB", default_value_t = 256)]
    cache_mb: u64,
    /// Most ops in one group commit.
    #[arg(long, env = "POINTS_GROUP_OPS_MAX", default_value_t = 8192)]
    group_ops_max: usize,
    /// Requests that may wait for the sequencer before submitters are made to wait.
    #[arg(long, env = "POINTS_QUEUE_REQUESTS_MAX", default_value_t = 4096)]
    queue_requests_max: usize,
    /// Largest request body in bytes (larger: 413 `body_too_large`).
    #[arg(long, env = "POINTS_BODY_BYTES_MAX", default_value_t = 2 * 1024 * 1024)]
    body_bytes_max: usize,
    /// Most ops in one `POST /v1/ops/batch` (more: 413 `batch_too_large`); at most the
    /// codec's limit.
    #[arg(long, env = "POINTS_BATCH_OPS_MAX", default_value_t = points_ledger::codec::BATCH_OPS_MAX)]
    batch_ops_max: usize,
    /// Largest page a list route returns (`limit` above it: 400 `invalid_query`).
    #[arg(long, env = "POINTS_PAGE_LIMIT_MAX", default_value_t = 1000)]
    page_limit_max: usize,
    /// Page size when a request gives no `limit`.
    #[arg(long, env = "POINTS_PAGE_LIMIT_DEFAULT", default_value_t = 100)]
    page_limit_default: usize,
    /// Per-request timeout in ms (longer: 503 `timeout`).
    #[arg(long, env = "POINTS_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// How far (ms) a signed request's `ts` may be from the server clock, either way.
    #[arg(long, env = "POINTS_AUTH_CLOCK_SKEW_MS_MAX", default_value_t = 60_000)]
    auth_clock_skew_ms_max: u64,
    /// Most request signatures remembered for replay detection; when full of live ones,
    /// signed reads get 503 until old ones age out.
    #[arg(long, env = "POINTS_AUTH_REPLAY_CACHE_MAX", default_value_t = 100_000)]
    auth_replay_cache_max: usize,
    /// Serve /metrics without a signature (for a scraper on a private network); by
    /// default only the issuer and auditors may read it.
    #[arg(long, env = "POINTS_METRICS_PUBLIC")]
    metrics_public: bool,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Points outstanding with members (the liability), in merchants' floats, burned, and
    /// each merchant's open position.
    Liability {
        /// Server URL.
        #[arg(long, env = "POINTS_SERVER", default_value = "http://127.0.0.1:8700")]
        server: String,
        /// The key to sign the request with (an auditor's or the issuer's).
        #[arg(long, env = "POINTS_KEY")]
        key: Option<PathBuf>,
        /// As of this seq (default: the latest).
        #[arg(long)]
        seq: Option<u64>,
    },
}

#[derive(Args)]
struct MallArgs {
    /// Key file to sign ops and reads with (merchant or member); not needed for `list` and
    /// `show`.
    #[arg(long, env = "POINTS_KEY")]
    key: Option<PathBuf>,
    /// Server URL.
    #[arg(long, env = "POINTS_SERVER", default_value = "http://127.0.0.1:8700")]
    server: String,
    #[command(subcommand)]
    command: MallCommand,
}

#[derive(Subcommand)]
enum MallCommand {
    /// Browse the catalog.
    List {
        /// Only this merchant's items.
        #[arg(long)]
        merchant: Option<AccountId>,
        /// Only active items.
        #[arg(long)]
        active: bool,
        /// Lowest price.
        #[arg(long)]
        min_price: Option<u64>,
        /// Highest price.
        #[arg(long)]
        max_price: Option<u64>,
        /// Start after this item id.
        #[arg(long)]
        after: Option<u64>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one item.
    Show {
        /// Item id.
        item: u64,
    },
    /// Merchant: list a new item.
    Add {
        /// Title.
        #[arg(long)]
        title: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Price per unit in points.
        #[arg(long)]
        price: u64,
        /// Units in stock.
        #[arg(long)]
        stock: u64,
        /// Most units per order (0 = no limit).
        #[arg(long, default_value_t = 0)]
        limit_per_order: u64,
        /// Most units per member (0 = no limit).
        #[arg(long, default_value_t = 0)]
        limit_per_member: u64,
        /// Available from (unix ms).
        #[arg(long, default_value_t = 0)]
        from_ms: u64,
        /// Available until (unix ms, exclusive).
        #[arg(long)]
        until_ms: Option<u64>,
        /// List it inactive.
        #[arg(long)]
        inactive: bool,
    },
    /// Merchant: change an item.
    Update {
        /// Item id.
        item: u64,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// New price.
        #[arg(long)]
        price: Option<u64>,
        /// Units to add (or withdraw, negative).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        stock_delta: i64,
        /// New per-order limit.
        #[arg(long)]
        limit_per_order: Option<u64>,
        /// New per-member limit.
        #[arg(long)]
        limit_per_member: Option<u64>,
        /// Activate or deactivate.
        #[arg(long)]
        active: Option<bool>,
    },
    /// Member: redeem an item.
    Redeem {
        /// Item id.
        item: u64,
        /// Units.
        #[arg(long, default_value_t = 1)]
        quantity: u64,
        /// Most you agree to pay per unit (default: the price shown now).
        #[arg(long)]
        max_price: Option<u64>,
    },
    /// Your orders (as a member, or with --merchant as the merchant).
    Orders {
        /// Show the orders placed with you, as a merchant.
        #[arg(long)]
        merchant: bool,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Merchant: mark an order delivered.
    Fulfill {
        /// Order id.
        order: u64,
        /// Fulfilment reference.
        #[arg(long, default_value = "")]
        reference: String,
    },
    /// Cancel an open order (merchant, or the member who placed it): refunds and restocks.
    Cancel {
        /// Order id.
        order: u64,
        /// Reason.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Args)]
struct SettleArgs {
    /// Key file (issuer for draft/submit, merchant for countersign; reads are signed with
    /// it, so `draft` and `list` need the merchant's, an auditor's or the issuer's).
    #[arg(long, env = "POINTS_KEY")]
    key: Option<PathBuf>,
    /// Server URL.
    #[arg(long, env = "POINTS_SERVER", default_value = "http://127.0.0.1:8700")]
    server: String,
    #[command(subcommand)]
    command: SettleCommand,
}

#[derive(Subcommand)]
enum SettleCommand {
    /// Draft a merchant's statement (computed from the chain) and write it to a file.
    Draft {
        /// The merchant.
        #[arg(long)]
        merchant: AccountId,
        /// Period end (default: the latest entry).
        #[arg(long)]
        to: Option<u64>,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Merchant: check a drafted statement against the server's and countersign it.
    Countersign {
        /// The drafted statement.
        #[arg(long)]
        statement: PathBuf,
        /// Output file (statement + countersignature).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Issuer: submit a countersigned statement as a Settle op.
    Submit {
        /// The countersigned statement.
        #[arg(long)]
        countersigned: PathBuf,
    },
    /// List a merchant's settlements.
    List {
        /// The merchant.
        #[arg(long)]
        merchant: AccountId,
    },
}

#[derive(Args)]
struct AuditArgs {
    /// An export file (from `points export`).
    #[arg(long, group = "source")]
    export: Option<PathBuf>,
    /// A live server URL (its `/v1/export` is streamed and audited; needs --key).
    #[arg(long, group = "source")]
    server: Option<String>,
    /// With --server: the key to sign the request with (an auditor's or the issuer's).
    #[arg(long, env = "POINTS_KEY")]
    key: Option<PathBuf>,
    /// A stopped data folder.
    #[arg(long, group = "source")]
    data: Option<PathBuf>,
    /// Entries per verification chunk.
    #[arg(long, default_value_t = 16_384)]
    chunk: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct WalletArgs {
    /// Key file to sign with (from `points keygen`, or the issuer key in the data folder).
    #[arg(long, env = "POINTS_KEY")]
    key: PathBuf,
    /// Server URL.
    #[arg(long, env = "POINTS_SERVER", default_value = "http://127.0.0.1:8700")]
    server: String,
    /// Op id to use (for retrying an op exactly once): the signed op is kept in
    /// `<key>.ops/<id>.op` and a rerun with the same id resends it. Random by default.
    #[arg(long)]
    op_id: Option<u128>,
    #[command(subcommand)]
    command: WalletCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReasonArg {
    Purchase,
    Task,
    Campaign,
    Referral,
    Adjustment,
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusArg {
    Active,
    Suspended,
}

#[derive(Clone, Copy, ValueEnum)]
enum BurnReasonArg {
    Voluntary,
    Expiry,
    Correction,
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Print this key's account (public key).
    Show,
    /// Issuer: register a merchant.
    RegisterMerchant {
        /// The merchant's public key.
        #[arg(long)]
        merchant: AccountId,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Money per point minted to the merchant, as MINOR/POINTS (e.g. 1/1 = one cent a point).
        #[arg(long, default_value = "1/1")]
        issue_rate: String,
        /// Money per point redeemed with the merchant, as MINOR/POINTS.
        #[arg(long, default_value = "1/1")]
        redeem_rate: String,
    },
    /// Issuer: change a merchant's name, rates or status.
    UpdateMerchant {
        /// The merchant's public key.
        #[arg(long)]
        merchant: AccountId,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New issue rate MINOR/POINTS.
        #[arg(long)]
        issue_rate: Option<String>,
        /// New redeem rate MINOR/POINTS.
        #[arg(long)]
        redeem_rate: Option<String>,
        /// New status.
        #[arg(long)]
        status: Option<StatusArg>,
    },
    /// Issuer: register an auditor.
    RegisterAuditor {
        /// The auditor's public key.
        #[arg(long)]
        auditor: AccountId,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Issuer: create points in an account (usually a merchant's float).
    Mint {
        /// Receiving account.
        #[arg(long)]
        to: AccountId,
        /// Points.
        #[arg(long)]
        amount: u64,
        /// Memo (text, stored as bytes; no personal data).
        #[arg(long, default_value = "")]
        memo: String,
        /// The minted lot expires at this time (unix ms); default never. Not for merchants.
        #[arg(long)]
        expires_at_ms: Option<u64>,
    },
    /// Merchant: award points from the float to a member.
    Earn {
        /// The member.
        #[arg(long)]
        member: AccountId,
        /// Points.
        #[arg(long)]
        amount: u64,
        /// Why.
        #[arg(long, value_enum, default_value = "purchase")]
        reason: ReasonArg,
        /// Receipt or task id (opaque; no personal data).
        #[arg(long, default_value = "")]
        reference: String,
        /// The awarded lot expires at this time (unix ms); default never.
        #[arg(long)]
        expires_at_ms: Option<u64>,
        /// Pending until this time (unix ms): counted, not spendable until then.
        #[arg(long, conflicts_with = "pending_until_confirmed")]
        pending_until_ms: Option<u64>,
        /// Pending until you confirm it (`confirm-earn`).
        #[arg(long)]
        pending_until_confirmed: bool,
    },
    /// Move points to another account.
    Transfer {
        /// Receiving account.
        #[arg(long)]
        to: AccountId,
        /// Points.
        #[arg(long)]
        amount: u64,
        /// Memo.
        #[arg(long, default_value = "")]
        memo: String,
    },
    /// Destroy points (your own; the issuer may burn any account's for expiry or correction).
    Burn {
        /// Points.
        #[arg(long)]
        amount: u64,
        /// Account to burn from (default: your own).
        #[arg(long)]
        from: Option<AccountId>,
        /// Why.
        #[arg(long, value_enum, default_value = "voluntary")]
        reason: BurnReasonArg,
    },
    /// Verify your whole history against a signed checkpoint: every signature, inclusion
    /// proof and the checkpoint signature, and consistency with the checkpoint seen last time.
    Verify {
        /// Where to keep the pinned checkpoint key and the last checkpoint seen
        /// (default: the key file's path with `.trust.json` appended).
        #[arg(long)]
        state: Option<PathBuf>,
        /// A witness (auditor) public key whose cosignature counts; repeatable.
        #[arg(long = "witness")]
        witnesses: Vec<AccountId>,
        /// Cosignatures the checkpoint must carry from those witnesses.
        #[arg(long, default_value_t = 0)]
        require_cosignatures: usize,
    },
    /// Auditor: witness the latest checkpoint (after checking it extends the one you
    /// witnessed last) and post your cosignature.
    Cosign {
        /// Where to keep the last witnessed checkpoint (default: key path + `.witness.json`).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Show a wallet's balance (default: your own).
    Balance {
        /// The account.
        account: Option<AccountId>,
    },
    /// Show a wallet's history (default: your own).
    History {
        /// The account.
        account: Option<AccountId>,
        /// Start after this seq.
        #[arg(long)]
        after: Option<u64>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    #[command(flatten)]
    Loyalty(loyalty::LoyaltyCommand),
}

fn parse_rate(s: &str) -> Result<Rate> {
    let (a, b) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("rate `{s}`: write it as MINOR/POINTS, e.g. 1/1 or 5/100"))?;
    let minor_units = a
        .trim()
        .parse()
        .with_context(|| format!("rate `{s}`: bad minor units"))?;
    let per_points = b
        .trim()
        .parse()
        .with_context(|| format!("rate `{s}`: bad points"))?;
    if per_points == 0 {
        bail!("rate `{s}`: points must be at least 1");
    }
    Ok(Rate {
        minor_units,
        per_points,
    })
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POINTS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut config = ServeConfig::new(&args.data);
    config.listen = args.listen;
    config.chain_id = args.chain_id;
    config.currency = args.currency;
    config.minor_unit_digits = args.minor_unit_digits;
    config.checkpoint_interval_ms = args.checkpoint_interval_ms;
    config.store = StoreConfig {
        cache_bytes: args.cache_mb * 1024 * 1024,
        group_ops_max: args.group_ops_max,
        ..StoreConfig::default()
    };
    config.store.queue_requests_max = args.queue_requests_max;
    if args.batch_ops_max == 0 || args.batch_ops_max > points_ledger::codec::BATCH_OPS_MAX {
        bail!(
            "--batch-ops-max must be 1 to {}",
            points_ledger::codec::BATCH_OPS_MAX
        );
    }
    if args.page_limit_default == 0 || args.page_limit_default > args.page_limit_max {
        bail!("--page-limit-default must be 1 to --page-limit-max");
    }
    if args.request_timeout_ms == 0 {
        bail!("--request-timeout-ms must be at least 1");
    }
    if args.auth_replay_cache_max == 0 {
        bail!("--auth-replay-cache-max must be at least 1");
    }
    if args.page_limit_max > u32::MAX as usize {
        bail!("--page-limit-max must fit in 32 bits");
    }
    config.limits.body_bytes_max = args.body_bytes_max;
    config.limits.batch_ops_max = args.batch_ops_max;
    config.limits.page_limit_max = args.page_limit_max;
    config.limits.page_limit_default = args.page_limit_default;
    config.limits.request_timeout_ms = args.request_timeout_ms;
    config.auth.clock_skew_ms_max = args.auth_clock_skew_ms_max;
    config.auth.replay_cache_max = args.auth_replay_cache_max;
    config.auth.metrics_public = args.metrics_public;
    let mut running = server::start(config)
        .await
        .with_context(|| format!("cannot serve the ledger in {}", args.data.display()))?;
    let url = running.url();
    if let Some(created) = &running.created {
        println!(
            "Created a new ledger `{}` in {}",
            created.chain_id,
            args.data.display()
        );
        println!(
            "Issuer key: {} (mode 0600; keep it secret, move it offline in production)",
            created.issuer_key_path.display()
        );
        println!("Issuer public key: {}", created.issuer);
        println!();
        println!("Try it:");
        println!("  points keygen --out merchant.key");
        println!(
            "  points wallet --key {} --server {url} register-merchant --merchant <MERCHANT_PUBLIC_KEY> --name \"My Shop\"",
            created.issuer_key_path.display()
        );
        println!(
            "  points wallet --key {} --server {url} mint --to <MERCHANT_PUBLIC_KEY> --amount 10000",
            created.issuer_key_path.display()
        );
    } else {
        println!(
            "Opened ledger `{}` in {}",
            running.chain_id,
            args.data.display()
        );
    }
    println!("Listening on {url}");
    let stop = running
        .take_shutdown()
        .ok_or_else(|| anyhow!("no shutdown handle"))?;
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop.send(());
    });
    running.wait().await?;
    println!("Stopped cleanly.");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        match term.as_mut() {
            Some(t) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = t.recv() => {},
                }
            }
            None => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn keygen(out: &Path) -> Result<()> {
    let key = Keypair::generate();
    key.write_file(out)?;
    println!("Wrote {} (mode 0600)", out.display());
    println!("Public key: {}", hex::encode(key.public_key()));
    Ok(())
}

async fn wallet(args: WalletArgs) -> Result<()> {
    let key = Keypair::read_file(&args.key)?;
    let me = AccountId(key.public_key());
    if let WalletCommand::Show = args.command {
        println!("{me}");
        return Ok(());
    }
    let client = Client::new(&args.server).with_key(key.clone());
    let op = match args.command {
        WalletCommand::Show => unreachable!("handled above"),
        WalletCommand::Verify {
            state,
            witnesses,
            require_cosignatures,
        } => {
            let state = state.unwrap_or_else(|| suffixed(&args.key, ".trust.json"));
            let mut policy = points_ledger::verify::WitnessPolicy {
                witnesses: Vec::new(),
                require: require_cosignatures,
            };
            for w in witnesses {
                policy
                    .witnesses
                    .push(points_ledger::checkpoint::NoteVerifier::new_cosigner(
                        &w.to_hex(),
                        w.0,
                    )?);
            }
            if policy.require > policy.witnesses.len() {
                bail!(
                    "--require-cosignatures {} but only {} --witness keys given",
                    policy.require,
                    policy.witnesses.len()
                );
            }
            return verify_wallet(&client, &me, &state, &policy).await;
        }
        WalletCommand::Cosign { state } => {
            let state = state.unwrap_or_else(|| suffixed(&args.key, ".witness.json"));
            return cosign(&client, &key, &state).await;
        }
        WalletCommand::Balance { account } => {
            let account = account.unwrap_or(me);
            print_json(&client.wallet(&account).await?)?;
            return Ok(());
        }
        WalletCommand::History {
            account,
            after,
            limit,
        } => {
            let account = account.unwrap_or(me);
            print_json(&client.history(&account, after, limit).await?)?;
            return Ok(());
        }
        WalletCommand::RegisterMerchant {
            merchant,
            name,
            issue_rate,
            redeem_rate,
        } => Op::RegisterMerchant(RegisterMerchant {
            merchant,
            name,
            issue_rate: parse_rate(&issue_rate)?,
            redeem_rate: parse_rate(&redeem_rate)?,
        }),
        WalletCommand::UpdateMerchant {
            merchant,
            name,
            issue_rate,
            redeem_rate,
            status,
        } => Op::UpdateMerchant(UpdateMerchant {
            merchant,
            name,
            issue_rate: issue_rate.as_deref().map(parse_rate).transpose()?,
            redeem_rate: redeem_rate.as_deref().map(parse_rate).transpose()?,
            status: status.map(|s| match s {
                StatusArg::Active => MerchantStatus::Active,
                StatusArg::Suspended => MerchantStatus::Suspended,
            }),
        }),
        WalletCommand::RegisterAuditor { auditor, name } => {
            Op::RegisterAuditor(RegisterAuditor { auditor, name })
        }
        WalletCommand::Loyalty(cmd) => match loyalty::run(cmd, &key, &client, me).await? {
            Some(op) => op,
            None => return Ok(()),
        },
        WalletCommand::Mint {
            to,
            amount,
            memo,
            expires_at_ms,
        } => Op::Mint(Mint {
            to,
            amount: Points(amount),
            memo: Bytes(memo.into_bytes()),
            expires_at_ms,
        }),
        WalletCommand::Earn {
            member,
            amount,
            reason,
            reference,
            expires_at_ms,
            pending_until_ms,
            pending_until_confirmed,
        } => Op::Earn(Earn {
            member,
            amount: Points(amount),
            reason: match reason {
                ReasonArg::Purchase => EarnReason::Purchase,
                ReasonArg::Task => EarnReason::Task,
                ReasonArg::Campaign => EarnReason::Campaign,
                ReasonArg::Referral => EarnReason::Referral,
                ReasonArg::Adjustment => EarnReason::Adjustment,
            },
            reference: Bytes(reference.into_bytes()),
            expires_at_ms,
            pending: (pending_until_confirmed || pending_until_ms.is_some()).then_some(Pending {
                release_at_ms: pending_until_ms,
            }),
        }),
        WalletCommand::Transfer { to, amount, memo } => Op::Transfer(Transfer {
            to,
            amount: Points(amount),
            memo: Bytes(memo.into_bytes()),
        }),
        WalletCommand::Burn {
            amount,
            from,
            reason,
        } => Op::Burn(Burn {
            from: from.unwrap_or(me),
            amount: Points(amount),
            reason: match reason {
                BurnReasonArg::Voluntary => BurnReason::Voluntary,
                BurnReasonArg::Expiry => BurnReason::Expiry,
                BurnReasonArg::Correction => BurnReason::Correction,
            },
        }),
    };
    let wallet = Wallet::connect(key, client).await?;
    let signed = match args.op_id {
        Some(id) => journaled_op(&args.key, &wallet, OpId(id), op)?,
        None => wallet.sign(op),
    };
    let receipt = wallet.client.submit(&signed).await?;
    print_json(&receipt)?;
    Ok(())
}

/// With `--op-id`, the signed op is kept in `<key>.ops/<op id>.op` and a rerun with the same
/// op id resends exactly those bytes, so a retry is the same op (and lands at most once)
/// even though a fresh signature would carry a new `not_after_ms`.
fn journaled_op(key_path: &Path, wallet: &Wallet, op_id: OpId, op: Op) -> Result<SignedOp> {
    let dir = suffixed(key_path, ".ops");
    let path = dir.join(format!("{}.op", op_id.0));
    match std::fs::read(&path) {
        Ok(bytes) => {
            let saved = points_ledger::codec::decode_signed_op(&bytes)
                .with_context(|| format!("{} is not a signed op", path.display()))?;
            if saved.envelope.op != op || saved.envelope.signer != wallet.account() {
                bail!(
                    "op id {} was already used for a different op (kept in {}); choose another op id",
                    op_id.0,
                    path.display()
                );
            }
            Ok(saved)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signed = points_ledger::client::sign_op(
                &wallet.key,
                &wallet.chain_id,
                op_id,
                points_ledger::client::now_ms() + wallet.ttl_ms,
                op,
            );
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, points_ledger::codec::encode_signed_op(&signed))?;
            Ok(signed)
        }
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

async fn verify_wallet(
    client: &Client,
    me: &AccountId,
    state: &Path,
    policy: &points_ledger::verify::WitnessPolicy,
) -> Result<()> {
    use points_ledger::verify::{self, TrustState};
    let trust = TrustState::load(state)?;
    let (report, new_trust) = match verify::verify_wallet_with(client, me, trust, policy).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("VERIFICATION FAILED: {e}");
            eprintln!("Do not trust this server's view of your wallet.");
            bail!("verification failed");
        }
    };
    new_trust.save(state)?;
    if report.pinned_now {
        println!(
            "Pinned the checkpoint key {} (first use; kept in {})",
            new_trust.checkpoint_verifier,
            state.display()
        );
    }
    println!(
        "Verified {} entries of {} against checkpoint {} (root {})",
        report.entries, report.account, report.checkpoint_size, report.checkpoint_root
    );
    println!("  every entry: bytes, entry hash, ed25519 signature, inclusion proof");
    println!("  checkpoint: signed by the pinned key");
    match report.consistent_with {
        Some(seen) => println!("  consistency: extends the checkpoint of size {seen} seen before"),
        None => println!("  consistency: first run, nothing seen before to compare with"),
    }
    println!("  balance from verified history: {}", report.balance);
    Ok(())
}

#[derive(Serialize, serde::Deserialize)]
struct WitnessState {
    size: u64,
    root: Hash32,
}

async fn cosign(client: &Client, key: &Keypair, state: &Path) -> Result<()> {
    use points_ledger::api::dto::{CheckpointView, ConsistencyProofView};
    use points_ledger::checkpoint::{self, NoteVerifier};
    use points_ledger::merkle;
    let info = client.info().await?;
    let log = NoteVerifier::parse(&info.checkpoint_verifier)?;
    let latest: CheckpointView = client.post_empty("/v1/checkpoint").await?;
    let (cp, _) = checkpoint::Checkpoint::open(&latest.note, &log)
        .map_err(|e| anyhow!("the checkpoint does not verify: {e}"))?;
    let seen: Option<WitnessState> = match std::fs::read(state) {
        Ok(b) => Some(serde_json::from_slice(&b).with_context(|| format!("{}", state.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("{}", state.display())),
    };
    if let Some(seen) = &seen {
        if cp.size < seen.size {
            bail!(
                "refusing to cosign: checkpoint size {} is older than {} witnessed before",
                cp.size,
                seen.size
            );
        }
        if cp.size == seen.size && cp.root != seen.root.0 {
            bail!(
                "refusing to cosign: a different root for size {} than witnessed before (fork)",
                cp.size
            );
        }
        if cp.size > seen.size {
            let proof: ConsistencyProofView = client
                .get_json(&format!(
                    "/v1/proofs/consistency?from={}&to={}",
                    seen.size, cp.size
                ))
                .await?;
            let p: Vec<merkle::Hash> = proof.proof.iter().map(|h| h.0).collect();
            merkle::verify_consistency(seen.size, cp.size, &seen.root.0, &cp.root, &p).map_err(
                |e| {
                    anyhow!(
                        "refusing to cosign: not consistent with size {}: {e}",
                        seen.size
                    )
                },
            )?;
        }
    }
    let name = hex::encode(key.public_key());
    let line = checkpoint::cosign(
        &cp.body(),
        &name,
        key,
        points_ledger::client::now_ms() / 1000,
    );
    let updated: CheckpointView = client
        .post_text(&format!("/v1/checkpoints/{}/cosignatures", cp.size), line)
        .await?;
    std::fs::write(
        state,
        serde_json::to_vec_pretty(&WitnessState {
            size: cp.size,
            root: Hash32(cp.root),
        })?,
    )?;
    println!("Cosigned checkpoint {} (root {})", cp.size, Hash32(cp.root));
    println!("{}", updated.note);
    Ok(())
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let pb = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::new_spinner(),
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {pos}/{len} entries ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

async fn audit(args: AuditArgs) -> Result<()> {
    use points_ledger::audit;
    let started = std::time::Instant::now();
    let chunk = args.chunk;
    let (report, source) = if let Some(path) = args.export.clone() {
        let report = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
            let pb = progress_bar(None);
            let r = audit::audit_export(
                std::io::BufReader::with_capacity(1 << 20, file),
                chunk,
                |n| pb.set_position(n),
            );
            pb.finish_and_clear();
            r.map_err(anyhow::Error::from)
        })
        .await??;
        (
            report,
            format!("export {}", args.export.unwrap_or_default().display()),
        )
    } else if let Some(url) = args.server.clone() {
        let client = client_for(&url, &args.key)?;
        let tmp = std::env::temp_dir().join(format!("points-audit-{}.export", std::process::id()));
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            client.export_to(&mut f).await?;
            std::io::Write::flush(&mut f)?;
        }
        let t = tmp.clone();
        let report = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&t)?;
            let pb = progress_bar(None);
            let r = audit::audit_export(
                std::io::BufReader::with_capacity(1 << 20, file),
                chunk,
                |n| pb.set_position(n),
            );
            pb.finish_and_clear();
            r.map_err(anyhow::Error::from)
        })
        .await?;
        let _ = std::fs::remove_file(&tmp);
        (report?, format!("server {url}"))
    } else if let Some(data) = args.data.clone() {
        let report = tokio::task::spawn_blocking(move || {
            let store = Store::open(&data.join(server::LEDGER_DIR), &StoreConfig::default())?;
            let pb = progress_bar(Some(store.entry_count()?));
            let r = audit::audit_store(&store, chunk, |n| pb.set_position(n));
            pb.finish_and_clear();
            r.map_err(anyhow::Error::from)
        })
        .await??;
        (
            report,
            format!("data folder {}", args.data.unwrap_or_default().display()),
        )
    } else {
        bail!("say what to audit: --export FILE, --server URL or --data DIR");
    };
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&report)?;
    } else {
        println!("Audit of {source}: OK");
        println!("  chain:        {}", report.chain_id);
        println!(
            "  entries:      {} (all links, hashes, signatures and rules checked)",
            report.entries
        );
        println!("  accounts:     {}", report.accounts);
        println!(
            "  supply:       {} (minted {} − burned {} = Σ balances)",
            report.supply, report.minted, report.burned
        );
        println!("  root:         {}", report.root);
        println!("  head:         {}", report.head);
        println!(
            "  checkpoints:  {} verified, last at size {}",
            report.checkpoints_verified,
            report
                .last_checkpoint_size
                .map_or("-".to_string(), |s| s.to_string())
        );
        println!(
            "  time:         {secs:.2} s ({:.0} entries/s)",
            report.entries as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

async fn get(server: &str, key: Option<PathBuf>, authorization: bool, path: &str) -> Result<()> {
    if !path.starts_with('/') {
        bail!("the path must start with `/`, e.g. /v1/info");
    }
    if authorization {
        let path_key = key.ok_or_else(|| anyhow!("--authorization needs --key"))?;
        let key = Keypair::read_file(&path_key)?;
        let info = Client::new(server).info().await?;
        let url = reqwest::Url::parse(&format!("{}{path}", server.trim_end_matches('/')))
            .with_context(|| format!("{server}{path}"))?;
        let mut pq = url.path().to_string();
        if let Some(q) = url.query() {
            pq.push('?');
            pq.push_str(q);
        }
        println!(
            "{}",
            points_ledger::api::auth::authorization_value(
                &key,
                "GET",
                &pq,
                points_ledger::client::now_ms(),
                &info.chain_id,
            )
        );
        return Ok(());
    }
    let text = client_for(server, &key)?.get_text(path).await?;
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// A client of `server`, signing its requests with the key file at `key` if given.
fn client_for(server: &str, key: &Option<PathBuf>) -> Result<Client> {
    let client = Client::new(server);
    Ok(match key {
        Some(path) => client.with_key(Keypair::read_file(path)?),
        None => client,
    })
}

async fn export(
    server_url: Option<String>,
    key: Option<PathBuf>,
    data: Option<PathBuf>,
    out: PathBuf,
) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&out).with_context(|| format!("{}", out.display()))?,
    );
    match (server_url, data) {
        (Some(url), None) => {
            let n = client_for(&url, &key)?.export_to(&mut f).await?;
            std::io::Write::flush(&mut f)?;
            println!("Wrote {} bytes to {}", n, out.display());
        }
        (None, Some(data)) => {
            let n = tokio::task::spawn_blocking(move || -> Result<u64> {
                let store = Store::open(&data.join(server::LEDGER_DIR), &StoreConfig::default())?;
                let n = points_ledger::audit::export_store(&store, &mut f)?;
                std::io::Write::flush(&mut f)?;
                Ok(n)
            })
            .await??;
            println!("Wrote {n} entries to {}", out.display());
        }
        _ => bail!("say what to export: --server URL or --data DIR"),
    }
    Ok(())
}

async fn signer(key: &Option<PathBuf>, client: &Client) -> Result<Wallet> {
    let path = key
        .as_ref()
        .ok_or_else(|| anyhow!("this command signs an op: pass --key FILE"))?;
    Ok(Wallet::connect(Keypair::read_file(path)?, client.clone()).await?)
}

async fn mall(args: MallArgs) -> Result<()> {
    use points_ledger::api::dto::Page;
    use points_ledger::mall::{ItemRecord, OrderRecord};
    let client = client_for(&args.server, &args.key)?;
    let op = match args.command {
        MallCommand::List {
            merchant,
            active,
            min_price,
            max_price,
            after,
            limit,
        } => {
            let mut q = format!("/v1/mall/items?limit={limit}");
            if let Some(m) = merchant {
                q.push_str(&format!("&merchant={m}"));
            }
            if active {
                q.push_str("&active=true");
            }
            if let Some(p) = min_price {
                q.push_str(&format!("&min_price={p}"));
            }
            if let Some(p) = max_price {
                q.push_str(&format!("&max_price={p}"));
            }
            if let Some(a) = after {
                q.push_str(&format!("&after={a}"));
            }
            let page: Page<ItemRecord> = client.get_json(&q).await?;
            return print_json(&page);
        }
        MallCommand::Show { item } => {
            let item: ItemRecord = client.get_json(&format!("/v1/mall/items/{item}")).await?;
            return print_json(&item);
        }
        MallCommand::Orders { merchant, status } => {
            let w = signer(&args.key, &client).await?;
            let who = if merchant { "merchants" } else { "wallets" };
            let mut q = format!("/v1/{who}/{}/orders?limit=1000", w.account());
            if let Some(s) = status {
                q.push_str(&format!("&status={s}"));
            }
            let page: Page<OrderRecord> = w.client.get_json(&q).await?;
            return print_json(&page);
        }
        MallCommand::Add {
            title,
            description,
            price,
            stock,
            limit_per_order,
            limit_per_member,
            from_ms,
            until_ms,
            inactive,
        } => Op::ListItem(ListItem {
            title,
            description,
            price: Points(price),
            stock,
            limit_per_order,
            limit_per_member,
            available_from_ms: from_ms,
            available_until_ms: until_ms,
            active: !inactive,
        }),
        MallCommand::Update {
            item,
            title,
            description,
            price,
            stock_delta,
            limit_per_order,
            limit_per_member,
            active,
        } => Op::UpdateItem(UpdateItem {
            item_id: item,
            title,
            description,
            price: price.map(Points),
            stock_delta,
            limit_per_order,
            limit_per_member,
            available_from_ms: None,
            available_until_ms: None,
            active,
        }),
        MallCommand::Redeem {
            item,
            quantity,
            max_price,
        } => {
            let max = match max_price {
                Some(p) => p,
                None => {
                    let shown: ItemRecord =
                        client.get_json(&format!("/v1/mall/items/{item}")).await?;
                    shown.price.0
                }
            };
            Op::Redeem(Redeem {
                item_id: item,
                quantity,
                max_unit_price: Points(max),
            })
        }
        MallCommand::Fulfill { order, reference } => Op::FulfillOrder(FulfillOrder {
            order_id: order,
            reference: Bytes(reference.into_bytes()),
        }),
        MallCommand::Cancel { order, reason } => Op::CancelOrder(CancelOrder {
            order_id: order,
            reason: Bytes(reason.into_bytes()),
        }),
    };
    let w = signer(&args.key, &client).await?;
    print_json(&w.send(op).await?)
}

#[derive(Serialize, serde::Deserialize)]
struct Countersigned {
    statement: points_ledger::settlement::Statement,
    merchant_signature: Signature,
}

async fn settle(args: SettleArgs) -> Result<()> {
    use points_ledger::api::dto::Page;
    use points_ledger::settlement::{self, SettlementRecord, Statement};
    let client = client_for(&args.server, &args.key)?;
    match args.command {
        SettleCommand::Draft { merchant, to, out } => {
            let mut q = format!("/v1/merchants/{merchant}/statement");
            if let Some(t) = to {
                q.push_str(&format!("?to={t}"));
            }
            let st: Statement = client.get_json(&q).await?;
            std::fs::write(&out, serde_json::to_vec_pretty(&st)?)?;
            print_json(&st)?;
            eprintln!(
                "Wrote the draft to {}; the merchant countersigns it next.",
                out.display()
            );
            Ok(())
        }
        SettleCommand::Countersign { statement, out } => {
            let w = signer(&args.key, &client).await?;
            let st: Statement = serde_json::from_slice(&std::fs::read(&statement)?)
                .with_context(|| format!("{}", statement.display()))?;
            if st.merchant != w.account() {
                bail!(
                    "this statement is for {}, not for your key {}",
                    st.merchant,
                    w.account()
                );
            }
            let ours: Statement = client
                .get_json(&format!(
                    "/v1/merchants/{}/statement?to={}",
                    st.merchant, st.to_seq
                ))
                .await?;
            if ours != st {
                bail!("the statement differs from the one recomputed from the chain now; refusing to countersign");
            }
            let merchant_signature = settlement::countersign(&w.chain_id, &w.key, &st);
            std::fs::write(
                &out,
                serde_json::to_vec_pretty(&Countersigned {
                    statement: st,
                    merchant_signature,
                })?,
            )?;
            println!("Countersigned; the issuer submits {} next.", out.display());
            Ok(())
        }
        SettleCommand::Submit { countersigned } => {
            let w = signer(&args.key, &client).await?;
            let c: Countersigned = serde_json::from_slice(&std::fs::read(&countersigned)?)
                .with_context(|| format!("{}", countersigned.display()))?;
            let op = Op::Settle(Settle {
                merchant: c.statement.merchant,
                from_seq: c.statement.from_seq,
                to_seq: c.statement.to_seq,
                totals: c.statement.totals,
                merchant_signature: c.merchant_signature,
            });
            print_json(&w.send(op).await?)
        }
        SettleCommand::List { merchant } => {
            let page: Page<SettlementRecord> = client
                .get_json(&format!("/v1/merchants/{merchant}/settlements?limit=1000"))
                .await?;
            print_json(&page)
        }
    }
}

fn reindex(data: &Path) -> Result<()> {
    let store = std::sync::Arc::new(Store::open(
        &data.join(server::LEDGER_DIR),
        &StoreConfig::default(),
    )?);
    let entries = store.entry_count()?;
    println!("Rebuilding derived state from {entries} entries…");
    let started = std::time::Instant::now();
    store.clear_derived()?;
    let writer = Writer::open(store)?;
    let tip = writer.tip();
    println!(
        "Done in {:.2} s: {} entries, {} accounts, supply {}, root {}",
        started.elapsed().as_secs_f64(),
        tip.size,
        writer.state().account_count(),
        writer.state().totals().supply,
        tip.root
    );
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Keygen { out } => keygen(&out),
        Command::Wallet(args) => wallet(args).await,
        Command::Audit(args) => audit(args).await,
        Command::Export {
            server,
            key,
            data,
            out,
        } => export(server, key, data, out).await,
        Command::Mall(args) => mall(args).await,
        Command::Settle(args) => settle(args).await,
        Command::Report { report } => match report {
            ReportCommand::Liability { server, key, seq } => {
                use points_ledger::api::mall::LiabilityReport;
                let client = client_for(&server, &key)?;
                let mut q = "/v1/reports/liability?limit=1000".to_string();
                if let Some(s) = seq {
                    q.push_str(&format!("&seq={s}"));
                }
                let mut report: LiabilityReport = client.get_json(&q).await?;
                // Follow the pages of merchants, pinned to the first page's seq.
                while let Some(after) = report.next_after.take() {
                    let next: LiabilityReport = client
                        .get_json(&format!(
                            "/v1/reports/liability?limit=1000&seq={}&after={after}",
                            report.as_of_seq
                        ))
                        .await?;
                    report.merchants.extend(next.merchants);
                    report.next_after = next.next_after;
                }
                print_json(&report)
            }
        },
        Command::Get {
            key,
            server,
            authorization,
            path,
        } => get(&server, key, authorization, &path).await,
        Command::Reindex { data } => tokio::task::spawn_blocking(move || reindex(&data)).await?,
        Command::Bench(args) => points_ledger::bench::run(args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
