//! `points bench`: throughput and cost of the ledger on this machine, in one run.
//!
//! Every figure is measured next to the limit it is bounded by, in the same run, and is
//! printed with its ratio to that limit:
//!
//! 1. the machine's limits: strict single-signature verification on all cores,
//!    [`crypto::verify_batch`] (256 signatures per batch equation, all cores),
//!    [`rules::verify_many`] (what the sequencer calls: payload encoding + SHA-256 + batch
//!    verification), and the latency of a 4 KiB write + `fdatasync` in the data folder;
//! 2. in-process ingest through the library, durable: [`Writer::commit_group`] with full
//!    groups, and [`Sequencer::submit`] from many concurrent tasks (one op each);
//! 3. HTTP single-op ingest (`POST /v1/ops`, canonical bytes) from C concurrent clients;
//! 4. HTTP batch ingest (`POST /v1/ops/batch`, canonical bytes, batches of 256);
//! 5. reads: a wallet history page with inclusion proofs, and a single inclusion proof,
//!    against the same work done in-process;
//! 6. a full audit of the resulting ledger ([`audit::audit_store`], or
//!    [`audit::audit_export`] of a remote server's export);
//! 7. process memory (VmRSS / VmHWM) and bytes on disk per entry.
//!
//! Ops are generated and signed before any timing starts, so client-side signing is never
//! counted. Each phase starts from a fresh ledger with the same issuer key and chain id, so
//! one pre-signed op set serves every phase and every run; medians over `--runs` are
//! reported. Nothing here asserts a target: targets are printed as met or missed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use axum::body::Bytes as HttpBytes;
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::{OsRng, RngCore};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit;
use crate::client::{self, Client};
use crate::codec;
use crate::crypto::{self, Keypair};
use crate::merkle;
use crate::op::*;
use crate::rules::{self, Rejection};
use crate::server::{self, ServeConfig};
use crate::store::{Receipt, Sequencer, Store, StoreConfig, Writer};

/// Ops per request in the un-timed setup (funding) batches; the API's default limit.
const SETUP_BATCH: usize = codec::BATCH_OPS_MAX;
/// Signatures in the corpus used to measure the verification limits.
const LIMIT_CORPUS: usize = 4096;
/// Trials of each verification limit, and the time of one. The best trial is the limit: on
/// a shared machine other load only ever lowers a trial.
const LIMIT_TRIALS: usize = 5;
const LIMIT_TRIAL_TIME: Duration = Duration::from_millis(400);
/// Most `fdatasync` samples, and the most time spent taking them.
const FSYNC_SAMPLES: usize = 1000;
const FSYNC_TIME: Duration = Duration::from_millis(3000);
/// Entries per audit chunk (as `points audit`).
const AUDIT_CHUNK: usize = 16_384;
/// History page size of the read phase.
const HISTORY_LIMIT: usize = 50;
/// How long pre-signed ops stay valid: long enough for many runs.
const OP_TTL_MS: u64 = 12 * 60 * 60 * 1000;

/// The op mix of the measured ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Half `Earn` (merchant to member), half `Transfer` (member to member).
    Mixed,
    /// Only `Transfer` between members (the workload of the Postgres peer).
    Transfer,
}

/// A part of the benchmark that `--phases` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Signature verification and fdatasync limits.
    Limits,
    /// In-process ingest through the library (commit_group and the sequencer).
    Lib,
    /// HTTP single-op ingest.
    HttpSingle,
    /// HTTP batch ingest, then the reads, the audit and the disk figures on its ledger.
    HttpBatch,
}

/// Options of `points bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Member wallets (each is funded before the measured ops).
    #[arg(long, default_value_t = 20_000)]
    pub members: usize,
    /// Measured ops per ingest phase.
    #[arg(long, default_value_t = 200_000)]
    pub ops: usize,
    /// Merchants signing the `Earn` ops.
    #[arg(long, default_value_t = 16)]
    pub merchants: usize,
    /// Op mix.
    #[arg(long, value_enum, default_value = "mixed")]
    pub mode: Mode,
    /// Concurrent clients (and in-process tasks) submitting one op at a time.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Ops per `POST /v1/ops/batch`.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Concurrent clients posting batches.
    #[arg(long, default_value_t = 16)]
    pub batch_clients: usize,
    /// Concurrent clients in the read phase.
    #[arg(long, default_value_t = 4)]
    pub read_clients: usize,
    /// Requests of each kind in the read phase.
    #[arg(long, default_value_t = 2000)]
    pub reads: usize,
    /// Folder for the benchmark ledgers (a fresh sub-folder is made inside it).
    #[arg(long, default_value = "bench-data")]
    pub data: PathBuf,
    /// Keep the ledgers instead of removing them afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Run the HTTP parts against this already running server instead of an in-process one.
    #[arg(long, requires = "issuer_key")]
    pub server: Option<String>,
    /// The issuer key of `--server`'s ledger, used to register and fund the bench wallets.
    #[arg(long)]
    pub issuer_key: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Phases to run (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "limits,lib,http-single,http-batch"
    )]
    pub phases: Vec<Phase>,
    /// Seed of the workload (keys and op mix); random if absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also run `bench/postgres/run.sh` and compare with it.
    #[arg(long)]
    pub compare_postgres: bool,
    /// The Postgres peer script (default: `bench/postgres/run.sh` here or in the source tree).
    #[arg(long)]
    pub postgres_script: Option<PathBuf>,
    /// Seconds of pgbench per client count.
    #[arg(long, default_value_t = 20)]
    pub pg_duration: u64,
    /// pgbench client counts (comma-separated).
    #[arg(long, default_value = "1,16,64")]
    pub pg_clients: String,
}

/// Everything one run measured. `None` where a phase did not run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunResult {
    /// Strict single verification on all cores, signatures/s.
    pub verify_single_per_s: Option<f64>,
    /// `crypto::verify_batch` (256 per batch equation) on all cores, signatures/s.
    pub verify_batch_per_s: Option<f64>,
    /// `rules::verify_many` (payload encoding + SHA-256 + batch verification), ops/s.
    pub verify_many_per_s: Option<f64>,
    /// 4 KiB append + fdatasync, median, ms.
    pub fsync_p50_ms: Option<f64>,
    /// 4 KiB append + fdatasync, 99th percentile, ms.
    pub fsync_p99_ms: Option<f64>,
    /// 4 KiB overwrite (preallocated file) + fdatasync, median, ms.
    pub fsync_overwrite_p50_ms: Option<f64>,
    /// 4 KiB overwrite (preallocated file) + fdatasync, 99th percentile, ms.
    pub fsync_overwrite_p99_ms: Option<f64>,
    /// `Writer::commit_group` with full groups, ops/s.
    pub lib_group_ops_per_s: Option<f64>,
    /// Ops per group in that phase.
    pub lib_group_size: Option<f64>,
    /// `Sequencer::submit` from `concurrency` tasks, one op each, ops/s.
    pub lib_seq_ops_per_s: Option<f64>,
    /// Its latency, median, ms.
    pub lib_seq_p50_ms: Option<f64>,
    /// Its latency, 99th percentile, ms.
    pub lib_seq_p99_ms: Option<f64>,
    /// `POST /v1/ops` from `concurrency` clients, ops/s.
    pub http_single_ops_per_s: Option<f64>,
    /// Its latency, median, ms.
    pub http_single_p50_ms: Option<f64>,
    /// Its latency, 99th percentile, ms.
    pub http_single_p99_ms: Option<f64>,
    /// Its latency, 99.9th percentile, ms.
    pub http_single_p999_ms: Option<f64>,
    /// Ops not applied (errors and rejections).
    pub http_single_failed: Option<f64>,
    /// `POST /v1/ops/batch`, ops/s.
    pub http_batch_ops_per_s: Option<f64>,
    /// Latency of one batch request, median, ms.
    pub http_batch_p50_ms: Option<f64>,
    /// Latency of one batch request, 99th percentile, ms.
    pub http_batch_p99_ms: Option<f64>,
    /// Ops not applied (errors and rejections).
    pub http_batch_failed: Option<f64>,
    /// History page with proofs over HTTP, median, ms.
    pub history_p50_ms: Option<f64>,
    /// History page with proofs over HTTP, 99th percentile, ms.
    pub history_p99_ms: Option<f64>,
    /// History pages/s.
    pub history_per_s: Option<f64>,
    /// Inclusion proof over HTTP, median, ms.
    pub inclusion_p50_ms: Option<f64>,
    /// Inclusion proof over HTTP, 99th percentile, ms.
    pub inclusion_p99_ms: Option<f64>,
    /// Inclusion proofs/s.
    pub inclusion_per_s: Option<f64>,
    /// The same history page built in-process from the store, median, ms.
    pub local_history_p50_ms: Option<f64>,
    /// The same inclusion proof built in-process from the store, median, ms.
    pub local_inclusion_p50_ms: Option<f64>,
    /// Entries audited.
    pub audit_entries: Option<f64>,
    /// Audit time, s.
    pub audit_seconds: Option<f64>,
    /// Audit rate, entries/s.
    pub audit_entries_per_s: Option<f64>,
    /// VmRSS after the HTTP batch phase (server state loaded, op sets in memory), bytes.
    pub rss_bytes: Option<f64>,
    /// VmRSS just before the HTTP batch server started, bytes.
    pub rss_before_server_bytes: Option<f64>,
    /// VmHWM (peak RSS) at the end of the run, bytes.
    pub peak_rss_bytes: Option<f64>,
    /// Size of the HTTP batch ledger on disk, bytes.
    pub disk_bytes: Option<f64>,
    /// Entries in that ledger.
    pub disk_entries: Option<f64>,
    /// Bytes on disk per entry.
    pub disk_bytes_per_entry: Option<f64>,
}

/// The Postgres peer's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostgresResult {
    /// Transfers/s at each client count.
    pub by_clients: BTreeMap<usize, f64>,
    /// The best of them.
    pub best_transfers_per_s: f64,
    /// The client count of the best.
    pub best_clients: usize,
}

/// One target and whether the medians meet it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What is asked.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Whether it is met (`None`: not measured).
    pub met: Option<bool>,
}

/// The whole report, as written by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Settings of the run.
    pub config: BenchConfig,
    /// Each run.
    pub runs: Vec<RunResult>,
    /// Field-wise medians of the runs.
    pub median: RunResult,
    /// Average canonical entry size of a measured op, bytes.
    pub entry_bytes: f64,
    /// The targets of the issue.
    pub targets: Vec<TargetCheck>,
    /// The Postgres peer, with `--compare-postgres`.
    pub postgres: Option<PostgresResult>,
}

/// Settings echoed in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Op mix.
    pub mode: Mode,
    /// Member wallets.
    pub members: usize,
    /// Merchants.
    pub merchants: usize,
    /// Measured ops per phase.
    pub ops: usize,
    /// Single-op clients.
    pub concurrency: usize,
    /// Ops per batch.
    pub batch: usize,
    /// Batch clients.
    pub batch_clients: usize,
    /// Runs.
    pub runs: usize,
    /// Workload seed.
    pub seed: u64,
    /// Cores available.
    pub cores: usize,
    /// Remote server, if any.
    pub server: Option<String>,
    /// Phases run.
    pub phases: Vec<Phase>,
}

// ---------------------------------------------------------------------------------------
// Workload

/// A small, fast, seedable generator (SplitMix64) for the op mix.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

fn derive_seed(seed: u64, what: &str, i: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"points-bench/key\0");
    h.update(seed.to_le_bytes());
    h.update(what.as_bytes());
    h.update((i as u64).to_le_bytes());
    h.finalize().into()
}

/// Keys and chain of one ledger the bench writes to.
struct Workload {
    chain_id: String,
    issuer: Keypair,
    merchants: Vec<Keypair>,
    members: Vec<Keypair>,
    mode: Mode,
    seed: u64,
    not_after_ms: u64,
}

/// What a measured op does, before it is signed.
enum Spec {
    Earn {
        merchant: usize,
        member: usize,
        amount: u64,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: u64,
    },
}

/// Pre-signed ops for one fresh ledger (or one phase against a remote one).
struct OpSet {
    /// Issuer mints into the merchants' floats (after registration).
    mints: Vec<SignedOp>,
    /// Merchants fund every member with exactly what it will send, plus a little.
    funding: Vec<SignedOp>,
    /// The measured ops.
    ops: Vec<SignedOp>,
}

impl Workload {
    fn new(chain_id: String, issuer: Keypair, args: &BenchArgs, seed: u64) -> Workload {
        let merchants = (0..args.merchants)
            .into_par_iter()
            .map(|i| Keypair::from_seed(derive_seed(seed, "merchant", i)))
            .collect();
        let members = (0..args.members)
            .into_par_iter()
            .map(|i| Keypair::from_seed(derive_seed(seed, "member", i)))
            .collect();
        Workload {
            chain_id,
            issuer,
            merchants,
            members,
            mode: args.mode,
            seed,
            not_after_ms: client::now_ms() + OP_TTL_MS,
        }
    }

    fn sign(&self, key: &Keypair, op_id: u128, op: Op) -> SignedOp {
        client::sign_op(key, &self.chain_id, OpId(op_id), self.not_after_ms, op)
    }

    /// Registers every merchant (once per ledger). Op ids derive from the seed, so running
    /// this again against the same ledger is an idempotent retry.
    fn registration(&self) -> Vec<SignedOp> {
        let salt = u128::from(u64::from_le_bytes(
            derive_seed(self.seed, "registration", 0)[..8]
                .try_into()
                .unwrap_or([1; 8]),
        )) << 64;
        self.merchants
            .iter()
            .enumerate()
            .map(|(i, m)| {
                self.sign(
                    &self.issuer,
                    salt | i as u128,
                    Op::RegisterMerchant(RegisterMerchant {
                        merchant: AccountId(m.public_key()),
                        name: format!("bench merchant {i}"),
                        issue_rate: Rate {
                            minor_units: 1,
                            per_points: 1,
                        },
                        redeem_rate: Rate {
                            minor_units: 1,
                            per_points: 1,
                        },
                    }),
                )
            })
            .collect()
    }

    /// Generates and signs `count` measured ops and what they need first. Op ids carry a
    /// fresh random salt, so two sets never collide on a ledger.
    fn build_set(&self, count: usize, rng: &mut Rng, what: &str) -> OpSet {
        let members = self.members.len();
        let merchants = self.merchants.len();
        let mut need = vec![0u64; members];
        let mut float = vec![0u64; merchants];
        let specs: Vec<Spec> = (0..count)
            .map(|_| {
                let earn = match self.mode {
                    Mode::Mixed => rng.next_u64() & 1 == 0,
                    Mode::Transfer => false,
                };
                if earn {
                    let merchant = rng.below(merchants);
                    let amount = 1 + rng.below(500) as u64;
                    float[merchant] += amount;
                    Spec::Earn {
                        merchant,
                        member: rng.below(members),
                        amount,
                    }
                } else {
                    let from = rng.below(members);
                    let to = (from + 1 + rng.below(members - 1)) % members;
                    let amount = 1 + rng.below(50) as u64;
                    need[from] += amount;
                    Spec::Transfer { from, to, amount }
                }
            })
            .collect();
        let funding_amounts: Vec<u64> = need.iter().map(|n| n + 100).collect();
        for (j, a) in funding_amounts.iter().enumerate() {
            float[j % merchants] += a;
        }
        let salt = u128::from(OsRng.next_u64() | 1) << 64;
        let pb = bar(
            (merchants + members + count) as u64,
            &format!("signing {what}"),
        );
        let mints = float
            .iter()
            .enumerate()
            .map(|(m, amount)| {
                self.sign(
                    &self.issuer,
                    salt | m as u128,
                    Op::Mint(Mint {
                        to: AccountId(self.merchants[m].public_key()),
                        amount: Points(amount + 1),
                        memo: Bytes::default(),
                        expires_at_ms: None,
                    }),
                )
            })
            .collect();
        pb.inc(merchants as u64);
        let funding = funding_amounts
            .par_iter()
            .enumerate()
            .map(|(j, amount)| {
                let merchant = j % merchants;
                let op = self.sign(
                    &self.merchants[merchant],
                    salt | (merchants + j) as u128,
                    Op::Earn(Earn {
                        member: AccountId(self.members[j].public_key()),
                        amount: Points(*amount),
                        reason: EarnReason::Campaign,
                        reference: Bytes(b"fund".to_vec()),
                        expires_at_ms: None,
                        pending: None,
                    }),
                );
                pb.inc(1);
                op
            })
            .collect();
        let base = merchants + members;
        let ops = specs
            .par_iter()
            .enumerate()
            .map(|(i, spec)| {
                let op_id = salt | (base + i) as u128;
                let op = match *spec {
                    Spec::Earn {
                        merchant,
                        member,
                        amount,
                    } => self.sign(
                        &self.merchants[merchant],
                        op_id,
                        Op::Earn(Earn {
                            member: AccountId(self.members[member].public_key()),
                            amount: Points(amount),
                            reason: EarnReason::Purchase,
                            reference: Bytes((i as u64).to_be_bytes().to_vec()),
                            expires_at_ms: None,
                            pending: None,
                        }),
                    ),
                    Spec::Transfer { from, to, amount } => self.sign(
                        &self.members[from],
                        op_id,
                        Op::Transfer(Transfer {
                            to: AccountId(self.members[to].public_key()),
                            amount: Points(amount),
                            memo: Bytes::default(),
                        }),
                    ),
                };
                pb.inc(1);
                op
            })
            .collect();
        pb.finish_and_clear();
        OpSet {
            mints,
            funding,
            ops,
        }
    }
}

/// Average canonical size of the entries the measured ops become.
fn average_entry_bytes(ops: &[SignedOp]) -> f64 {
    if ops.is_empty() {
        return 0.0;
    }
    let sample = &ops[..ops.len().min(4096)];
    let total: usize = sample
        .iter()
        .map(|op| {
            codec::encode_entry(&Entry {
                seq: 1 << 40,
                prev_hash: Hash32::ZERO,
                timestamp_ms: client::now_ms(),
                signed_op: op.clone(),
            })
            .len()
        })
        .sum();
    total as f64 / sample.len() as f64
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix:<28} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// Nearest-rank percentile of sorted microsecond samples, in ms.
fn percentile_ms(sorted_us: &[u32], p: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    // The small epsilon keeps p99.9 of 1000 samples at rank 999 despite float rounding.
    let rank = ((p / 100.0) * sorted_us.len() as f64 - 1e-9).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    Some(f64::from(sorted_us[i]) / 1000.0)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// VmRSS and VmHWM of this process, bytes.
fn memory() -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.trim();
            let kb: f64 = rest.trim_end_matches("kB").trim().parse().ok()?;
            Some(kb * 1024.0)
        })
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn check_all_applied(results: &[Result<Receipt, Rejection>], what: &str) -> Result<()> {
    let bad: Vec<&Rejection> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = bad.first() {
        bail!(
            "{what}: {} of {} ops rejected (first: {})",
            bad.len(),
            results.len(),
            first.code()
        );
    }
    Ok(())
}

/// A fresh data folder holding the bench issuer key, so its genesis names that issuer.
fn fresh_ledger(root: &Path, name: &str, w: &Workload) -> Result<ServeConfig> {
    let dir = root.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    w.issuer
        .write_file(&dir.join(server::ISSUER_KEY_FILE))
        .with_context(|| format!("writing the issuer key into {}", dir.display()))?;
    let mut config = ServeConfig::new(&dir);
    config.chain_id = Some(w.chain_id.clone());
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    Ok(config)
}

fn remove_ledger(config: &ServeConfig, keep: bool) {
    if !keep {
        let _ = std::fs::remove_dir_all(&config.data_dir);
    }
}

/// Applies registration, mints and funding through a writer (un-timed).
fn setup_writer(writer: &mut Writer, w: &Workload, set: &OpSet) -> Result<()> {
    let mut first = w.registration();
    first.extend(set.mints.iter().cloned());
    check_all_applied(&writer.commit_group(first)?, "registration and mints")?;
    let group = StoreConfig::default().group_ops_max;
    for chunk in set.funding.chunks(group) {
        check_all_applied(&writer.commit_group(chunk.to_vec())?, "funding")?;
    }
    Ok(())
}

/// Applies registration (optional), mints and funding over HTTP (un-timed).
async fn setup_http(base: &str, registration: Option<Vec<SignedOp>>, set: &OpSet) -> Result<()> {
    let client = Client::new(base);
    let check = |items: Vec<crate::api::dto::BatchItem>, what: &str| -> Result<()> {
        if let Some(bad) = items.iter().find(|i| i.status != "applied") {
            let code = bad.problem.as_ref().map_or("?", |p| p.code.as_str());
            bail!("{what}: an op was rejected over HTTP ({code})");
        }
        Ok(())
    };
    if let Some(reg) = registration {
        for chunk in reg.chunks(SETUP_BATCH) {
            check(client.submit_batch(chunk).await?, "registration")?;
        }
    }
    for chunk in set.mints.chunks(SETUP_BATCH) {
        check(client.submit_batch(chunk).await?, "mints")?;
    }
    let chunks: Vec<Vec<SignedOp>> = set.funding.chunks(SETUP_BATCH).map(<[_]>::to_vec).collect();
    let results = futures_util::future::join_all(chunks.iter().map(|c| client.submit_batch(c)));
    for r in results.await {
        check(r?, "funding")?;
    }
    Ok(())
}

fn http_client(pool: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")
}

async fn tip_size(base: &str) -> Result<u64> {
    Ok(Client::new(base).health().await?.size)
}

// ---------------------------------------------------------------------------------------
// Phase 1: the machine's limits

struct MachineLimits {
    verify_single: f64,
    verify_batch: f64,
    verify_many: f64,
    fsync_p50_ms: Option<f64>,
    fsync_p99_ms: Option<f64>,
    overwrite_p50_ms: Option<f64>,
    overwrite_p99_ms: Option<f64>,
}

fn measure_limits(ops: &[SignedOp], dir: &Path) -> Result<MachineLimits> {
    let corpus: Vec<SignedOp> = ops.iter().take(LIMIT_CORPUS).cloned().collect();
    if corpus.is_empty() {
        bail!("no ops to measure the verification limits with");
    }
    let payloads: Vec<Vec<u8>> = corpus
        .iter()
        .map(|op| codec::signing_payload(&op.envelope))
        .collect();
    let items: Vec<crypto::BatchItem<'_>> = corpus
        .iter()
        .zip(&payloads)
        .map(|(op, payload)| crypto::BatchItem {
            public_key: &op.envelope.signer.0,
            msg: payload,
            signature: &op.signature.0,
        })
        .collect();

    let pb = bar(3 * LIMIT_TRIALS as u64, "limits: verification");
    // Strict single verification, every core busy.
    let verify_single = best_rate(&pb, || {
        let bad = items
            .par_iter()
            .filter(|it| crypto::verify(it.public_key, it.msg, it.signature).is_err())
            .count();
        if bad > 0 {
            bail!("{bad} bench signatures do not verify");
        }
        Ok(items.len())
    })?;
    // verify_batch over the whole corpus: chunks of 256 spread over all cores.
    let verify_batch = best_rate(&pb, || {
        let bad = crypto::verify_batch(&items)
            .iter()
            .filter(|r| r.is_err())
            .count();
        if bad > 0 {
            bail!("{bad} bench signatures do not verify in a batch");
        }
        Ok(items.len())
    })?;
    // What the sequencer runs per group: payload encoding, SHA-256 digests, batch verify.
    // (The clone of the input is inside the timing; it is small next to the rest.)
    let verify_many = best_rate(&pb, || Ok(rules::verify_many(corpus.clone()).len()))?;
    pb.finish_and_clear();

    let (fsync_p50_ms, fsync_p99_ms) = measure_fsync(dir, true)?;
    let (overwrite_p50_ms, overwrite_p99_ms) = measure_fsync(dir, false)?;
    Ok(MachineLimits {
        verify_single,
        verify_batch,
        verify_many,
        fsync_p50_ms,
        fsync_p99_ms,
        overwrite_p50_ms,
        overwrite_p99_ms,
    })
}

/// The best rate of [`LIMIT_TRIALS`] trials; `work` does one round and says how many items.
fn best_rate(pb: &ProgressBar, mut work: impl FnMut() -> Result<usize>) -> Result<f64> {
    let mut best = 0f64;
    for _ in 0..LIMIT_TRIALS {
        let started = Instant::now();
        let mut n = 0usize;
        while started.elapsed() < LIMIT_TRIAL_TIME {
            n += work()?;
        }
        best = best.max(n as f64 / started.elapsed().as_secs_f64());
        pb.inc(1);
    }
    Ok(best)
}

/// Writes 4 KiB and fdatasyncs, repeatedly, in the data folder: appending (the file grows,
/// as sled's log does) or overwriting a preallocated file (as a database's WAL does).
fn measure_fsync(dir: &Path, append: bool) -> Result<(Option<f64>, Option<f64>)> {
    use std::io::{Seek, SeekFrom};
    const BLOCK: usize = 4096;
    const PREALLOCATED_BLOCKS: u64 = 1024;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-probe.bin");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}", path.display()))?;
    let block = vec![0x5au8; BLOCK];
    if !append {
        for _ in 0..PREALLOCATED_BLOCKS {
            file.write_all(&block)?;
        }
        file.sync_all()?;
    }
    let mut samples = Vec::with_capacity(FSYNC_SAMPLES);
    let started = Instant::now();
    while samples.len() < FSYNC_SAMPLES && started.elapsed() < FSYNC_TIME {
        if !append {
            let at = (samples.len() as u64 % PREALLOCATED_BLOCKS) * BLOCK as u64;
            file.seek(SeekFrom::Start(at))?;
        }
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(micros(t.elapsed()));
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    samples.sort_unstable();
    Ok((percentile_ms(&samples, 50.0), percentile_ms(&samples, 99.0)))
}

// ---------------------------------------------------------------------------------------
// Phase 2: in-process ingest

/// `Writer::commit_group` with full groups on a fresh ledger.
fn lib_group(config: &ServeConfig, w: &Workload, set: &OpSet) -> Result<(f64, f64)> {
    let opened = server::open_or_init(config)?;
    let mut writer = opened.writer;
    setup_writer(&mut writer, w, set)?;
    let group = StoreConfig::default().group_ops_max;
    let groups: Vec<Vec<SignedOp>> = set.ops.chunks(group).map(<[_]>::to_vec).collect();
    let pb = bar(set.ops.len() as u64, "lib commit_group");
    let started = Instant::now();
    let mut applied = 0usize;
    for g in groups {
        let n = g.len();
        let results = writer.commit_group(g)?;
        check_all_applied(&results, "commit_group")?;
        applied += n;
        pb.inc(n as u64);
    }
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok((applied as f64 / secs, group.min(set.ops.len()) as f64))
}

struct Latencies {
    ops_per_s: f64,
    sorted_us: Vec<u32>,
    failed: usize,
    first_error: Option<String>,
}

/// `Sequencer::submit` from `tasks` concurrent tasks, one op per submission.
async fn lib_sequencer(
    config: &ServeConfig,
    w: &Workload,
    set: &Arc<OpSet>,
    tasks: usize,
) -> Result<Latencies> {
    let writer = tokio::task::block_in_place(|| -> Result<Writer> {
        let mut writer = server::open_or_init(config)?.writer;
        setup_writer(&mut writer, w, set)?;
        Ok(writer)
    })?;
    let (sequencer, thread) = Sequencer::start(writer, &StoreConfig::default());
    let next = Arc::new(AtomicUsize::new(0));
    let pb = bar(set.ops.len() as u64, "lib sequencer");
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks.max(1) {
        let (sequencer, next, set, pb) = (sequencer.clone(), next.clone(), set.clone(), pb.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0usize;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(op) = set.ops.get(i) else { break };
                let t = Instant::now();
                match sequencer.submit(vec![op.clone()]).await {
                    Ok(mut r) => match r.pop() {
                        Some(Ok(_)) => {}
                        Some(Err(rej)) => {
                            failed += 1;
                            first_error.get_or_insert_with(|| rej.code().to_string());
                        }
                        None => failed += 1,
                    },
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                lat.push(micros(t.elapsed()));
                pb.inc(1);
            }
            (lat, failed, first_error)
        }));
    }
    let mut out = collect(handles).await?;
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    drop(sequencer);
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow!("the sequencer thread panicked"))?;
    out.ops_per_s = (set.ops.len() - out.failed) as f64 / secs;
    Ok(out)
}

type TaskOutput = (Vec<u32>, usize, Option<String>);

async fn collect(handles: Vec<tokio::task::JoinHandle<TaskOutput>>) -> Result<Latencies> {
    let mut sorted_us = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for h in handles {
        let (lat, f, e) = h.await?;
        sorted_us.extend(lat);
        failed += f;
        if first_error.is_none() {
            first_error = e;
        }
    }
    sorted_us.sort_unstable();
    Ok(Latencies {
        ops_per_s: 0.0,
        sorted_us,
        failed,
        first_error,
    })
}

// ---------------------------------------------------------------------------------------
// Phases 3 and 4: HTTP ingest

/// POSTs every body from `clients` concurrent clients; one latency sample per request.
async fn post_all(
    url: String,
    bodies: Arc<Vec<HttpBytes>>,
    ops_per_body: Vec<usize>,
    clients: usize,
    label: &str,
) -> Result<(Latencies, usize, f64)> {
    let http = http_client(clients)?;
    let total_ops: usize = ops_per_body.iter().sum();
    let ops_per_body = Arc::new(ops_per_body);
    let next = Arc::new(AtomicUsize::new(0));
    let pb = bar(total_ops as u64, label);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        let (http, url, bodies, sizes, next, pb) = (
            http.clone(),
            url.clone(),
            bodies.clone(),
            ops_per_body.clone(),
            next.clone(),
            pb.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0usize;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let sent = http
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(resp) => {
                        let status = resp.status();
                        let text = resp.bytes().await;
                        if !status.is_success() || text.is_err() {
                            failed += sizes[i];
                            first_error.get_or_insert_with(|| {
                                format!(
                                    "HTTP {status}: {}",
                                    text.map(|b| String::from_utf8_lossy(&b).into_owned())
                                        .unwrap_or_default()
                                )
                            });
                        }
                    }
                    Err(e) => {
                        failed += sizes[i];
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                lat.push(micros(t.elapsed()));
                pb.inc(sizes[i] as u64);
            }
            (lat, failed, first_error)
        }));
    }
    let out = collect(handles).await?;
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok((out, total_ops, secs))
}

/// `POST /v1/ops` of every op, one op per request, canonical bytes.
async fn http_single(base: &str, set: &OpSet, clients: usize) -> Result<Latencies> {
    let bodies: Vec<HttpBytes> = set
        .ops
        .iter()
        .map(|op| HttpBytes::from(codec::encode_signed_op(op)))
        .collect();
    let sizes = vec![1; bodies.len()];
    let before = tip_size(base).await?;
    let (mut out, total, secs) = post_all(
        format!("{base}/v1/ops"),
        Arc::new(bodies),
        sizes,
        clients,
        "HTTP single-op",
    )
    .await?;
    let appended = tip_size(base).await?.saturating_sub(before) as usize;
    out.failed = out.failed.max(total.saturating_sub(appended));
    out.ops_per_s = appended.min(total) as f64 / secs;
    Ok(out)
}

/// `POST /v1/ops/batch` of every op, `batch` per request, canonical bytes.
async fn http_batch(base: &str, set: &OpSet, batch: usize, clients: usize) -> Result<Latencies> {
    let chunks: Vec<&[SignedOp]> = set.ops.chunks(batch.max(1)).collect();
    let sizes = chunks.iter().map(|c| c.len()).collect();
    let bodies: Vec<HttpBytes> = chunks
        .iter()
        .map(|c| HttpBytes::from(codec::encode_batch(c)))
        .collect();
    let before = tip_size(base).await?;
    let (mut out, total, secs) = post_all(
        format!("{base}/v1/ops/batch"),
        Arc::new(bodies),
        sizes,
        clients,
        "HTTP batch",
    )
    .await?;
    let appended = tip_size(base).await?.saturating_sub(before) as usize;
    // A batch answered 200 may still hold rejected ops: the tip tells.
    out.failed = out.failed.max(total.saturating_sub(appended));
    out.ops_per_s = appended.min(total) as f64 / secs;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Phase 5: reads

/// A GET: path and query, and the `Authorization` value when the route needs one.
type Get = (String, Option<String>);

/// GETs every path from `clients` concurrent clients.
async fn get_all(base: &str, paths: Vec<Get>, clients: usize, label: &str) -> Result<Latencies> {
    let n = paths.len();
    let bodies: Arc<Vec<Get>> = Arc::new(paths);
    let http = http_client(clients)?;
    let next = Arc::new(AtomicUsize::new(0));
    let pb = bar(n as u64, label);
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, base, paths, next, pb) = (
            http.clone(),
            base.to_string(),
            bodies.clone(),
            next.clone(),
            pb.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0usize;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, auth)) = paths.get(i) else {
                    break;
                };
                let mut request = http.get(format!("{base}{path}"));
                if let Some(a) = auth {
                    request = request.header(reqwest::header::AUTHORIZATION, a);
                }
                let t = Instant::now();
                match request.send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let body = resp.bytes().await;
                        if !status.is_success() || body.is_err() {
                            failed += 1;
                            first_error.get_or_insert_with(|| format!("{path}: HTTP {status}"));
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                lat.push(micros(t.elapsed()));
                pb.inc(1);
            }
            (lat, failed, first_error)
        }));
    }
    let mut out = collect(handles).await?;
    out.ops_per_s = (n - out.failed) as f64 / started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok(out)
}

struct ReadPlan {
    /// Members whose history is read (each signs its own request).
    readers: Vec<usize>,
    accounts: Vec<AccountId>,
    seqs: Vec<u64>,
}

fn read_plan(w: &Workload, size: u64, count: usize, rng: &mut Rng) -> ReadPlan {
    let readers: Vec<usize> = (0..count).map(|_| rng.below(w.members.len())).collect();
    let accounts = readers
        .iter()
        .map(|m| AccountId(w.members[*m].public_key()))
        .collect();
    let seqs = (0..count)
        .map(|_| rng.below(size.max(1) as usize) as u64)
        .collect();
    ReadPlan {
        readers,
        accounts,
        seqs,
    }
}

async fn http_reads(
    base: &str,
    w: &Workload,
    plan: &ReadPlan,
    clients: usize,
) -> Result<(Latencies, Latencies)> {
    // Make sure a checkpoint of the final tip exists, so the reads do not time its signing.
    let _: crate::api::dto::CheckpointView = Client::new(base).post_empty("/v1/checkpoint").await?;
    // A wallet's history is read by its holder, with a signed request (signed here, before
    // the timing starts; the server's check of the signature is part of what is measured).
    // Each request gets its own timestamp: the same member may be drawn twice, and the
    // server refuses a replayed (key, ts, signature).
    let ts = client::now_ms();
    let mut drawn: std::collections::HashMap<usize, u64> = std::collections::HashMap::new();
    let repeat: Vec<u64> = plan
        .readers
        .iter()
        .map(|m| {
            let n = drawn.entry(*m).or_insert(0);
            *n += 1;
            *n - 1
        })
        .collect();
    let history: Vec<Get> = tokio::task::block_in_place(|| {
        plan.readers
            .par_iter()
            .zip(&plan.accounts)
            .zip(&repeat)
            .map(|((m, a), r)| {
                let path = format!("/v1/wallets/{a}/history?proofs=true&limit={HISTORY_LIMIT}");
                let auth = crate::api::auth::authorization_value(
                    &w.members[*m],
                    "GET",
                    &path,
                    ts + r,
                    &w.chain_id,
                );
                (path, Some(auth))
            })
            .collect()
    });
    let h = get_all(base, history, clients, "reads: history+proofs").await?;
    let inclusion = plan
        .seqs
        .iter()
        .map(|s| (format!("/v1/proofs/inclusion?seq={s}"), None))
        .collect();
    let i = get_all(base, inclusion, clients, "reads: inclusion").await?;
    Ok((h, i))
}

/// The work of the two reads done in-process, without HTTP and JSON.
fn local_reads(store: &Store, plan: &ReadPlan) -> Result<(Option<f64>, Option<f64>)> {
    let size = store.entry_count()?;
    let mut hist = Vec::with_capacity(plan.accounts.len());
    for a in &plan.accounts {
        let t = Instant::now();
        let seqs = store.history(a, None, HISTORY_LIMIT)?;
        let mut bytes = 0usize;
        for s in seqs {
            let entry = store.entry_bytes(s)?.map_or(0, |b| b.len());
            let proof = merkle::inclusion_proof(s, size, store)?;
            bytes += entry + proof.len();
        }
        std::hint::black_box(bytes);
        hist.push(micros(t.elapsed()));
    }
    let mut incl = Vec::with_capacity(plan.seqs.len());
    for s in &plan.seqs {
        let t = Instant::now();
        let leaf = store.entry_bytes(*s)?.map(|b| merkle::leaf_hash(&b));
        let proof = merkle::inclusion_proof(*s, size, store)?;
        std::hint::black_box((leaf, proof));
        incl.push(micros(t.elapsed()));
    }
    hist.sort_unstable();
    incl.sort_unstable();
    Ok((percentile_ms(&hist, 50.0), percentile_ms(&incl, 50.0)))
}

/// Opens a store a server just released (its last handles may take a moment to drop).
fn open_released(path: &Path) -> Result<Store> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(path, &StoreConfig::default()) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "store still held; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The run

struct Env {
    args: BenchArgs,
    root: PathBuf,
    local: Workload,
    local_set: Arc<OpSet>,
    remote: Option<Workload>,
    rng: Rng,
}

/// Runs the benchmark and prints the table (and writes JSON with `--json`).
pub async fn run(args: BenchArgs) -> Result<()> {
    if args.members < 2 {
        bail!("--members must be at least 2");
    }
    if args.merchants == 0 || args.merchants > 1000 {
        bail!("--merchants must be 1 to 1000");
    }
    if args.ops == 0 || args.runs == 0 || args.batch == 0 {
        bail!("--ops, --runs and --batch must be at least 1");
    }
    if args.batch > codec::BATCH_OPS_MAX {
        bail!("--batch is at most {}", codec::BATCH_OPS_MAX);
    }
    let seed = args.seed.unwrap_or_else(|| OsRng.next_u64());
    let root = args
        .data
        .join(format!("bench-{}-{}", std::process::id(), client::now_ms()));
    std::fs::create_dir_all(&root).with_context(|| format!("{}", root.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "points bench: {} members, {} ops/phase, mode {:?}, {} runs, data in {}",
        args.members,
        args.ops,
        args.mode,
        args.runs,
        root.display()
    );

    let mut rng = Rng(seed);
    let chain_id = format!("bench.local/{:08x}", seed as u32);
    let local = {
        let a = args.clone();
        tokio::task::spawn_blocking(move || {
            Workload::new(
                chain_id,
                Keypair::from_seed(derive_seed(seed, "issuer", 0)),
                &a,
                seed,
            )
        })
        .await?
    };
    let signing = Instant::now();
    let (local, local_set) = {
        let count = args.ops;
        let mut r = Rng(rng.next_u64());
        tokio::task::spawn_blocking(move || {
            let set = local.build_set(count, &mut r, "ops");
            (local, Arc::new(set))
        })
        .await?
    };
    eprintln!(
        "signed {} ops (+{} setup) in {:.1} s (not counted)",
        local_set.ops.len(),
        local_set.mints.len() + local_set.funding.len(),
        signing.elapsed().as_secs_f64()
    );
    let remote = match &args.server {
        None => None,
        Some(url) => Some(remote_workload(url, &args, seed).await?),
    };
    let entry_bytes = average_entry_bytes(&local_set.ops);
    let mut env = Env {
        args: args.clone(),
        root: root.clone(),
        local,
        local_set,
        remote,
        rng,
    };

    let mut runs = Vec::with_capacity(args.runs);
    for r in 0..args.runs {
        let result = one_run(&mut env, r).await;
        match result {
            Ok(res) => {
                eprintln!("run {}/{} done", r + 1, args.runs);
                runs.push(res);
            }
            Err(e) => {
                if !args.keep {
                    let _ = std::fs::remove_dir_all(&root);
                    let _ = std::fs::remove_dir(&args.data);
                }
                return Err(e.context(format!("run {}", r + 1)));
            }
        }
    }
    let median = median_of(&runs)?;

    let postgres = if args.compare_postgres {
        Some(run_postgres(&args).await?)
    } else {
        None
    };
    let report = Report {
        config: BenchConfig {
            mode: args.mode,
            members: args.members,
            merchants: args.merchants,
            ops: args.ops,
            concurrency: args.concurrency,
            batch: args.batch,
            batch_clients: args.batch_clients,
            runs: args.runs,
            seed,
            cores,
            server: args.server.clone(),
            phases: args.phases.clone(),
        },
        targets: targets(&median),
        runs,
        median,
        entry_bytes,
        postgres,
    };
    print!("{}", render(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("{}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if args.keep {
        eprintln!("kept the ledgers in {}", root.display());
    } else {
        let _ = std::fs::remove_dir_all(&root);
        // The parent too, when nothing else is in it (it fails otherwise, as intended).
        let _ = std::fs::remove_dir(&args.data);
    }
    Ok(())
}

/// The workload against `--server`: its chain id, the given issuer key, merchants
/// registered once.
async fn remote_workload(url: &str, args: &BenchArgs, seed: u64) -> Result<Workload> {
    let path = args
        .issuer_key
        .as_ref()
        .ok_or_else(|| anyhow!("--server needs --issuer-key"))?;
    let issuer = Keypair::read_file(path)?;
    let info = Client::new(url).info().await?;
    if info.issuer.0 != issuer.public_key() {
        bail!(
            "{} is not the issuer of {url} (its issuer is {})",
            path.display(),
            info.issuer
        );
    }
    let a = args.clone();
    let w =
        tokio::task::spawn_blocking(move || Workload::new(info.chain_id, issuer, &a, seed)).await?;
    let reg = w.registration();
    let client = Client::new(url);
    for chunk in reg.chunks(SETUP_BATCH) {
        for item in client.submit_batch(chunk).await? {
            let code = item.problem.as_ref().map(|p| p.code.as_str());
            if item.status != "applied" && code != Some("merchant_exists") {
                bail!("registering the bench merchants: {}", code.unwrap_or("?"));
            }
        }
    }
    Ok(w)
}

/// A fresh op set for the remote server (un-timed signing).
async fn remote_set(w: &Workload, count: usize, seed: u64, what: &str) -> Result<Arc<OpSet>> {
    let mut r = Rng(seed);
    let what = what.to_string();
    // The workload is borrowed: sign on this thread's rayon pool via block_in_place.
    Ok(Arc::new(tokio::task::block_in_place(|| {
        w.build_set(count, &mut r, &what)
    })))
}

async fn one_run(env: &mut Env, r: usize) -> Result<RunResult> {
    let args = env.args.clone();
    let mut res = RunResult::default();
    let phases = &args.phases;
    let label = |what: &str| format!("run {}/{}: {what}", r + 1, args.runs);

    if phases.contains(&Phase::Limits) {
        let root = env.root.clone();
        let set = env.local_set.clone();
        let l = tokio::task::spawn_blocking(move || measure_limits(&set.ops, &root)).await??;
        res.verify_single_per_s = Some(l.verify_single);
        res.verify_batch_per_s = Some(l.verify_batch);
        res.verify_many_per_s = Some(l.verify_many);
        res.fsync_p50_ms = l.fsync_p50_ms;
        res.fsync_p99_ms = l.fsync_p99_ms;
        res.fsync_overwrite_p50_ms = l.overwrite_p50_ms;
        res.fsync_overwrite_p99_ms = l.overwrite_p99_ms;
        eprintln!(
            "{}: verify {:.0}/s single, {:.0}/s batch, {:.0}/s verify_many; fdatasync p50 {:.3} ms",
            label("limits"),
            l.verify_single,
            l.verify_batch,
            l.verify_many,
            l.fsync_p50_ms.unwrap_or(f64::NAN)
        );
    }

    if phases.contains(&Phase::Lib) {
        let config = fresh_ledger(&env.root, &format!("run{r}-lib-group"), &env.local)?;
        let set = env.local_set.clone();
        let (ops_per_s, group) =
            tokio::task::block_in_place(|| lib_group(&config, &env.local, &set))?;
        remove_ledger(&config, args.keep);
        res.lib_group_ops_per_s = Some(ops_per_s);
        res.lib_group_size = Some(group);
        eprintln!(
            "{}: {ops_per_s:.0} ops/s (RSS now {})",
            label("lib commit_group"),
            mib(memory().0)
        );

        let config = fresh_ledger(&env.root, &format!("run{r}-lib-seq"), &env.local)?;
        let out = lib_sequencer(&config, &env.local, &env.local_set, args.concurrency).await?;
        remove_ledger(&config, args.keep);
        if out.failed > 0 {
            bail!(
                "lib sequencer: {} ops failed ({})",
                out.failed,
                out.first_error.unwrap_or_default()
            );
        }
        res.lib_seq_ops_per_s = Some(out.ops_per_s);
        res.lib_seq_p50_ms = percentile_ms(&out.sorted_us, 50.0);
        res.lib_seq_p99_ms = percentile_ms(&out.sorted_us, 99.0);
        eprintln!(
            "{}: {:.0} ops/s (RSS now {})",
            label("lib sequencer"),
            out.ops_per_s,
            mib(memory().0)
        );
    }

    if phases.contains(&Phase::HttpSingle) {
        let out = match env.remote.as_ref() {
            None => {
                let config = fresh_ledger(&env.root, &format!("run{r}-http-single"), &env.local)?;
                let running = server::start(config.clone()).await?;
                let base = running.url();
                setup_http(&base, Some(env.local.registration()), &env.local_set).await?;
                let out = http_single(&base, &env.local_set, args.concurrency).await?;
                running.shutdown().await?;
                remove_ledger(&config, args.keep);
                out
            }
            Some(w) => {
                let url = args.server.clone().unwrap_or_default();
                let set = remote_set(w, args.ops, env.rng.next_u64(), "ops (remote)").await?;
                setup_http(&url, None, &set).await?;
                http_single(&url, &set, args.concurrency).await?
            }
        };
        if let Some(e) = &out.first_error {
            eprintln!("HTTP single-op: {} ops failed; first: {e}", out.failed);
        }
        res.http_single_ops_per_s = Some(out.ops_per_s);
        res.http_single_p50_ms = percentile_ms(&out.sorted_us, 50.0);
        res.http_single_p99_ms = percentile_ms(&out.sorted_us, 99.0);
        res.http_single_p999_ms = percentile_ms(&out.sorted_us, 99.9);
        res.http_single_failed = Some(out.failed as f64);
        eprintln!(
            "{}: {:.0} ops/s, p99 {:.1} ms (RSS now {})",
            label("HTTP single-op"),
            out.ops_per_s,
            res.http_single_p99_ms.unwrap_or(f64::NAN),
            mib(memory().0)
        );
    }

    if phases.contains(&Phase::HttpBatch) {
        batch_phase(env, r, &mut res).await?;
    }
    let (_, hwm) = memory();
    res.peak_rss_bytes = hwm;
    Ok(res)
}

/// HTTP batch ingest, then reads, audit, memory and disk on the resulting ledger.
async fn batch_phase(env: &mut Env, r: usize, res: &mut RunResult) -> Result<()> {
    let args = env.args.clone();
    let label = |what: &str| format!("run {}/{}: {what}", r + 1, args.runs);
    let mut plan_rng = Rng(env.rng.next_u64());
    match env.remote.as_ref() {
        None => {
            let config = fresh_ledger(&env.root, &format!("run{r}-http-batch"), &env.local)?;
            res.rss_before_server_bytes = memory().0;
            let running = server::start(config.clone()).await?;
            let base = running.url();
            setup_http(&base, Some(env.local.registration()), &env.local_set).await?;
            let out = http_batch(&base, &env.local_set, args.batch, args.batch_clients).await?;
            record_batch(res, &out);
            eprintln!("{}: {:.0} ops/s", label("HTTP batch"), out.ops_per_s);
            res.rss_bytes = memory().0;
            let size = tip_size(&base).await?;
            let plan = read_plan(&env.local, size, args.reads, &mut plan_rng);
            let (h, i) = http_reads(&base, &env.local, &plan, args.read_clients).await?;
            record_reads(res, &h, &i);
            running.shutdown().await?;

            let ledger = config.data_dir.join(server::LEDGER_DIR);
            let (store_figures, audit) = tokio::task::spawn_blocking(move || -> Result<_> {
                let store = open_released(&ledger)?;
                let entries = store.entry_count()?;
                let disk = store.size_on_disk()?;
                let local = local_reads(&store, &plan)?;
                let pb = bar(entries, "audit");
                let started = Instant::now();
                let report = audit::audit_store(&store, AUDIT_CHUNK, |n| pb.set_position(n))?;
                let secs = started.elapsed().as_secs_f64();
                pb.finish_and_clear();
                Ok(((entries, disk, local), (report.entries, secs)))
            })
            .await??;
            let (entries, disk, (lh, li)) = store_figures;
            res.disk_bytes = Some(disk as f64);
            res.disk_entries = Some(entries as f64);
            res.disk_bytes_per_entry = Some(disk as f64 / entries.max(1) as f64);
            res.local_history_p50_ms = lh;
            res.local_inclusion_p50_ms = li;
            record_audit(res, audit.0, audit.1);
            remove_ledger(&config, args.keep);
        }
        Some(w) => {
            let url = args.server.clone().unwrap_or_default();
            let set = remote_set(w, args.ops, env.rng.next_u64(), "ops (remote)").await?;
            setup_http(&url, None, &set).await?;
            let out = http_batch(&url, &set, args.batch, args.batch_clients).await?;
            record_batch(res, &out);
            eprintln!("{}: {:.0} ops/s", label("HTTP batch"), out.ops_per_s);
            res.rss_bytes = memory().0;
            let size = tip_size(&url).await?;
            let plan = read_plan(w, size, args.reads, &mut plan_rng);
            let (h, i) = http_reads(&url, w, &plan, args.read_clients).await?;
            record_reads(res, &h, &i);
            // Audit the server's export.
            let path = env.root.join(format!("run{r}.export"));
            {
                let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                Client::new(&url)
                    .with_key(w.issuer.clone())
                    .export_to(&mut f)
                    .await?;
                f.flush()?;
            }
            let p = path.clone();
            let (entries, secs) = tokio::task::spawn_blocking(move || -> Result<(u64, f64)> {
                let file = std::fs::File::open(&p)?;
                let pb = bar(size, "audit (export)");
                let started = Instant::now();
                let report = audit::audit_export(
                    std::io::BufReader::with_capacity(1 << 20, file),
                    AUDIT_CHUNK,
                    |n| pb.set_position(n),
                )?;
                let secs = started.elapsed().as_secs_f64();
                pb.finish_and_clear();
                Ok((report.entries, secs))
            })
            .await??;
            if !args.keep {
                let _ = std::fs::remove_file(&path);
            }
            record_audit(res, entries, secs);
        }
    }
    eprintln!(
        "{}: {:.0} entries/s",
        label("audit"),
        res.audit_entries_per_s.unwrap_or(f64::NAN)
    );
    Ok(())
}

fn record_batch(res: &mut RunResult, out: &Latencies) {
    if let Some(e) = &out.first_error {
        eprintln!("HTTP batch: {} ops failed; first: {e}", out.failed);
    }
    res.http_batch_ops_per_s = Some(out.ops_per_s);
    res.http_batch_p50_ms = percentile_ms(&out.sorted_us, 50.0);
    res.http_batch_p99_ms = percentile_ms(&out.sorted_us, 99.0);
    res.http_batch_failed = Some(out.failed as f64);
}

fn record_reads(res: &mut RunResult, h: &Latencies, i: &Latencies) {
    for (what, l) in [("history", h), ("inclusion", i)] {
        if let Some(e) = &l.first_error {
            eprintln!("reads ({what}): {} failed; first: {e}", l.failed);
        }
    }
    res.history_p50_ms = percentile_ms(&h.sorted_us, 50.0);
    res.history_p99_ms = percentile_ms(&h.sorted_us, 99.0);
    res.history_per_s = Some(h.ops_per_s);
    res.inclusion_p50_ms = percentile_ms(&i.sorted_us, 50.0);
    res.inclusion_p99_ms = percentile_ms(&i.sorted_us, 99.0);
    res.inclusion_per_s = Some(i.ops_per_s);
}

fn record_audit(res: &mut RunResult, entries: u64, secs: f64) {
    res.audit_entries = Some(entries as f64);
    res.audit_seconds = Some(secs);
    res.audit_entries_per_s = Some(entries as f64 / secs.max(1e-9));
}

/// Field-wise median of the runs (fields absent from every run stay absent).
fn median_of(runs: &[RunResult]) -> Result<RunResult> {
    let values: Vec<serde_json::Value> = runs
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let mut out = serde_json::Map::new();
    let Some(serde_json::Value::Object(first)) = values.first() else {
        return Ok(RunResult::default());
    };
    for key in first.keys() {
        let mut xs: Vec<f64> = values
            .iter()
            .filter_map(|v| v.get(key).and_then(serde_json::Value::as_f64))
            .collect();
        xs.sort_by(f64::total_cmp);
        let m = match xs.len() {
            0 => serde_json::Value::Null,
            n if n % 2 == 1 => serde_json::json!(xs[n / 2]),
            n => serde_json::json!((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
        };
        out.insert(key.clone(), m);
    }
    Ok(serde_json::from_value(serde_json::Value::Object(out))?)
}

// ---------------------------------------------------------------------------------------
// The Postgres peer

fn postgres_script(args: &BenchArgs) -> Result<PathBuf> {
    if let Some(p) = &args.postgres_script {
        return Ok(p.clone());
    }
    let here = PathBuf::from("bench/postgres/run.sh");
    if here.exists() {
        return Ok(here);
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/postgres/run.sh");
    if source.exists() {
        return Ok(source);
    }
    bail!("bench/postgres/run.sh not found: pass --postgres-script PATH")
}

async fn run_postgres(args: &BenchArgs) -> Result<PostgresResult> {
    let script = postgres_script(args)?;
    let clients = args.pg_clients.replace(',', " ");
    let duration = args.pg_duration;
    let members = args.members;
    eprintln!(
        "postgres peer: {} (clients {clients}, {duration} s each)",
        script.display()
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(&script)
            .env("PG_DURATION", duration.to_string())
            .env("PG_CLIENTS", clients)
            .env("PG_MEMBERS", members.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("the postgres peer failed ({}):\n{stdout}", output.status);
    }
    let mut by_clients = BTreeMap::new();
    for line in stdout.lines().filter(|l| !l.starts_with("best")) {
        let mut c = None;
        let mut tps = None;
        for word in line.split_whitespace() {
            if let Some(v) = word.strip_prefix("clients=") {
                c = v.parse::<usize>().ok();
            }
            if let Some(v) = word.strip_prefix("transfers_per_sec=") {
                tps = v.parse::<f64>().ok();
            }
        }
        if let (Some(c), Some(t)) = (c, tps) {
            by_clients.insert(c, t);
        }
    }
    let (best_clients, best) = by_clients
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(c, t)| (*c, *t))
        .ok_or_else(|| anyhow!("the postgres peer printed no result:\n{stdout}"))?;
    Ok(PostgresResult {
        by_clients,
        best_transfers_per_s: best,
        best_clients,
    })
}

// ---------------------------------------------------------------------------------------
// Report

fn targets(m: &RunResult) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let batch = m.http_batch_ops_per_s;
    out.push(TargetCheck {
        target: "HTTP batch ingest >= 50,000 signed ops/s".into(),
        measured: batch.map_or("-".into(), |b| format!("{} ops/s", thousands(b))),
        met: batch.map(|b| b >= 50_000.0),
    });
    let share = batch.zip(m.verify_batch_per_s).map(|(b, v)| b / v);
    out.push(TargetCheck {
        target: "HTTP batch ingest >= 40% of the verify_batch limit".into(),
        measured: share.map_or("-".into(), |s| format!("{:.0}%", s * 100.0)),
        met: share.map(|s| s >= 0.40),
    });
    let single = m.http_single_ops_per_s.zip(m.http_single_p99_ms);
    out.push(TargetCheck {
        target: "HTTP single-op >= 20,000 ops/s with p99 <= 25 ms".into(),
        measured: single.map_or("-".into(), |(s, p)| {
            format!("{} ops/s, p99 {p:.1} ms", thousands(s))
        }),
        met: single.map(|(s, p)| s >= 20_000.0 && p <= 25.0),
    });
    let audit_1m = m.audit_entries_per_s.map(|r| 1e6 / r);
    out.push(TargetCheck {
        target: "audit of 1M entries <= 10 s".into(),
        measured: audit_1m.map_or("-".into(), |s| format!("{s:.1} s (extrapolated)")),
        met: audit_1m.map(|s| s <= 10.0),
    });
    out
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn ms(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| {
        if v < 1.0 {
            format!("{v:.3}")
        } else {
            format!("{v:.1}")
        }
    })
}

fn ratio(x: Option<f64>, of: Option<f64>) -> Option<f64> {
    match (x, of) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn mib(x: Option<f64>) -> String {
    x.map_or("-".into(), |b| format!("{:.0} MiB", b / (1024.0 * 1024.0)))
}

/// The table printed by `points bench`.
pub fn render(report: &Report) -> String {
    let m = &report.median;
    let c = &report.config;
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let section = |rows: &mut Vec<(String, String, String)>, name: &str| {
        rows.push((name.to_string(), String::new(), String::new()));
    };
    let rate =
        |x: Option<f64>, unit: &str| x.map_or("-".into(), |v| format!("{} {unit}", thousands(v)));
    let of_batch = |x: Option<f64>| {
        ratio(x, m.verify_batch_per_s).map_or(String::new(), |r| format!("{r:.2} of verify_batch"))
    };
    let lat3 = |p50: Option<f64>, p99: Option<f64>| format!("p50 {} / p99 {} ms", ms(p50), ms(p99));

    section(&mut rows, "machine limits");
    rows.push((
        "  strict verify, 1 sig/call, all cores".into(),
        rate(m.verify_single_per_s, "sig/s"),
        ratio(m.verify_single_per_s, m.verify_batch_per_s)
            .map_or(String::new(), |r| format!("{r:.2} of verify_batch")),
    ));
    rows.push((
        "  crypto::verify_batch, 256/batch".into(),
        rate(m.verify_batch_per_s, "sig/s"),
        if m.verify_batch_per_s.is_some() {
            "1.00 (the limit)".into()
        } else {
            String::new()
        },
    ));
    rows.push((
        "  rules::verify_many (encode+sha+batch)".into(),
        rate(m.verify_many_per_s, "ops/s"),
        of_batch(m.verify_many_per_s),
    ));
    rows.push((
        "  append 4 KiB + fdatasync".into(),
        lat3(m.fsync_p50_ms, m.fsync_p99_ms),
        "the file grows, as sled's log does".into(),
    ));
    rows.push((
        "  overwrite 4 KiB + fdatasync".into(),
        lat3(m.fsync_overwrite_p50_ms, m.fsync_overwrite_p99_ms),
        "preallocated file, as a WAL".into(),
    ));

    section(&mut rows, "in-process ingest (durable)");
    rows.push((
        format!(
            "  Writer::commit_group, {} ops/group",
            m.lib_group_size.map_or("-".into(), thousands)
        ),
        rate(m.lib_group_ops_per_s, "ops/s"),
        of_batch(m.lib_group_ops_per_s),
    ));
    rows.push((
        format!("  Sequencer::submit, {} tasks x 1 op", c.concurrency),
        rate(m.lib_seq_ops_per_s, "ops/s"),
        of_batch(m.lib_seq_ops_per_s),
    ));
    rows.push((
        "    latency".into(),
        lat3(m.lib_seq_p50_ms, m.lib_seq_p99_ms),
        ratio(m.lib_seq_p50_ms, m.fsync_p50_ms)
            .map_or(String::new(), |r| format!("p50 = {r:.1}x fdatasync")),
    ));

    section(&mut rows, "HTTP ingest (durable)");
    rows.push((
        format!("  POST /v1/ops, {} clients", c.concurrency),
        rate(m.http_single_ops_per_s, "ops/s"),
        of_batch(m.http_single_ops_per_s),
    ));
    rows.push((
        "    latency".into(),
        format!(
            "p50 {} / p99 {} / p999 {} ms",
            ms(m.http_single_p50_ms),
            ms(m.http_single_p99_ms),
            ms(m.http_single_p999_ms)
        ),
        ratio(m.http_single_ops_per_s, m.lib_seq_ops_per_s)
            .map_or(String::new(), |r| format!("{r:.2} of in-process sequencer")),
    ));
    rows.push((
        format!(
            "  POST /v1/ops/batch, {} x {} clients",
            c.batch, c.batch_clients
        ),
        rate(m.http_batch_ops_per_s, "ops/s"),
        of_batch(m.http_batch_ops_per_s),
    ));
    rows.push((
        "    latency per batch".into(),
        lat3(m.http_batch_p50_ms, m.http_batch_p99_ms),
        ratio(m.http_batch_ops_per_s, m.lib_group_ops_per_s)
            .map_or(String::new(), |r| format!("{r:.2} of commit_group")),
    ));
    let failed = m.http_single_failed.unwrap_or(0.0) + m.http_batch_failed.unwrap_or(0.0);
    if failed > 0.0 {
        rows.push((
            "  ops not applied (median)".into(),
            thousands(failed),
            "see stderr".into(),
        ));
    }

    section(&mut rows, "reads");
    rows.push((
        format!("  history?proofs=true&limit={HISTORY_LIMIT}"),
        lat3(m.history_p50_ms, m.history_p99_ms),
        ratio(m.history_p50_ms, m.local_history_p50_ms).map_or(String::new(), |r| {
            format!(
                "p50 = {r:.1}x in-process ({} ms)",
                ms(m.local_history_p50_ms)
            )
        }),
    ));
    rows.push((
        "    throughput".into(),
        rate(m.history_per_s, "pages/s"),
        String::new(),
    ));
    rows.push((
        "  /v1/proofs/inclusion".into(),
        lat3(m.inclusion_p50_ms, m.inclusion_p99_ms),
        ratio(m.inclusion_p50_ms, m.local_inclusion_p50_ms).map_or(String::new(), |r| {
            format!(
                "p50 = {r:.1}x in-process ({} ms)",
                ms(m.local_inclusion_p50_ms)
            )
        }),
    ));
    rows.push((
        "    throughput".into(),
        rate(m.inclusion_per_s, "proofs/s"),
        String::new(),
    ));

    section(&mut rows, "audit");
    rows.push((
        format!(
            "  {} entries",
            m.audit_entries.map_or("-".into(), thousands)
        ),
        rate(m.audit_entries_per_s, "entries/s"),
        of_batch(m.audit_entries_per_s),
    ));
    rows.push((
        "    1M entries would take".into(),
        m.audit_entries_per_s
            .map_or("-".into(), |r| format!("{:.1} s", 1e6 / r)),
        String::new(),
    ));

    section(&mut rows, "resources");
    rows.push((
        "  RSS after HTTP batch / peak".into(),
        format!("{} / {}", mib(m.rss_bytes), mib(m.peak_rss_bytes)),
        m.rss_bytes.zip(m.rss_before_server_bytes).map_or(
            "whole bench process".into(),
            |(a, b)| {
                format!(
                    "whole process; {} more than before the server",
                    mib(Some(a - b))
                )
            },
        ),
    ));
    rows.push((
        "  disk per entry".into(),
        m.disk_bytes_per_entry
            .map_or("-".into(), |b| format!("{b:.0} B")),
        ratio(m.disk_bytes_per_entry, Some(report.entry_bytes)).map_or(String::new(), |r| {
            format!("{r:.1}x the {:.0} B canonical entry", report.entry_bytes)
        }),
    ));
    rows.push((
        "  ledger size on disk".into(),
        mib(m.disk_bytes),
        m.disk_entries
            .map_or(String::new(), |e| format!("{} entries", thousands(e))),
    ));

    if let Some(pg) = &report.postgres {
        section(&mut rows, "postgres peer (bench/postgres)");
        for (clients, tps) in &pg.by_clients {
            rows.push((
                format!("  pgbench transfer, {clients} clients"),
                format!("{} transfers/s", thousands(*tps)),
                String::new(),
            ));
        }
        let note = if c.mode == Mode::Transfer {
            ""
        } else {
            " (mode is not transfer)"
        };
        for (name, ours) in [
            ("HTTP single-op", m.http_single_ops_per_s),
            ("HTTP batch", m.http_batch_ops_per_s),
            ("commit_group", m.lib_group_ops_per_s),
        ] {
            if let Some(ours) = ours {
                rows.push((
                    format!("  ours / postgres best: {name}"),
                    format!("{:.2}x", ours / pg.best_transfers_per_s),
                    note.to_string(),
                ));
            }
        }
    }

    // Leave out what was not measured (phases not run), and sections left empty by that.
    let measured = |r: &(String, String, String)| r.1.bytes().any(|b| b.is_ascii_digit());
    let mut kept: Vec<(String, String, String)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let header = row.1.is_empty() && row.2.is_empty();
        if header {
            let next_header = rows[i + 1..]
                .iter()
                .position(|r| r.1.is_empty() && r.2.is_empty())
                .map_or(rows.len(), |p| i + 1 + p);
            if rows[i + 1..next_header].iter().any(measured) {
                kept.push(row.clone());
            }
        } else if measured(row) {
            kept.push(row.clone());
        }
    }
    let rows = kept;
    let w1 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0) + 2;
    let w2 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0) + 2;
    let mut out = String::new();
    out.push_str(&format!(
        "points bench: mode {:?}, {} members, {} merchants, {} ops/phase, {} cores, median of {} run(s){}\n",
        c.mode,
        thousands(c.members as f64),
        c.merchants,
        thousands(c.ops as f64),
        c.cores,
        c.runs,
        c.server.as_ref().map_or(String::new(), |s| format!(", server {s}"))
    ));
    out.push_str(&format!("{}\n", "-".repeat(w1 + w2 + 30)));
    for (a, b, r) in rows {
        if b.is_empty() && r.is_empty() {
            out.push_str(&format!("{a}\n"));
        } else {
            out.push_str(&format!("{a:<w1$}{b:<w2$}{r}\n"));
        }
    }
    out.push_str(&format!("{}\n", "-".repeat(w1 + w2 + 30)));
    out.push_str("targets (measured, not asserted)\n");
    for t in &report.targets {
        let mark = match t.met {
            Some(true) => "met   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        out.push_str(&format!("  [{mark}] {:<52} {}\n", t.target, t.measured));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), Some(500.0));
        assert_eq!(percentile_ms(&v, 99.0), Some(990.0));
        assert_eq!(percentile_ms(&v, 99.9), Some(999.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }

    #[test]
    fn medians_are_field_wise() {
        let mk = |x: f64| RunResult {
            http_batch_ops_per_s: Some(x),
            ..RunResult::default()
        };
        let m = median_of(&[mk(3.0), mk(1.0), mk(2.0)]).unwrap();
        assert_eq!(m.http_batch_ops_per_s, Some(2.0));
        assert_eq!(m.audit_seconds, None);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(12.0), "12");
    }
}
