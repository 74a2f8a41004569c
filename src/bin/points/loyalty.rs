//! `points wallet …` subcommands of the loyalty program: confirm and reverse awards, expire
//! lots, set tiers, show lots, tier and awards, and award many members from a CSV file
//! (`ledger-spec/loyalty.md`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use serde::Serialize;
use sha2::{Digest, Sha256};

use points_ledger::api::dto::Page;
use points_ledger::client::{self, Client, Wallet};
use points_ledger::crypto::Keypair;
use points_ledger::loyalty::{LotsView, TierStatus};
use points_ledger::op::*;

use super::{parse_rate, print_json};

/// Rows of an `earn-batch` CSV sent in one `POST /v1/ops/batch`.
const EARN_BATCH_ROWS: usize = 256;

/// Loyalty subcommands of `points wallet`.
#[derive(Subcommand)]
pub(crate) enum LoyaltyCommand {
    /// Merchant: release one of your pending awards now.
    ConfirmEarn {
        /// The award (seq of its Earn entry).
        earn: u64,
    },
    /// Merchant: take back one of your awards (a returned purchase): a pending award is
    /// cancelled; a released one is clawed back as far as the member still holds points.
    ReverseEarn {
        /// The award (seq of its Earn entry).
        earn: u64,
        /// Reason (opaque text, e.g. a return id).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Issuer: burn an account's lots that have expired. The amount is the sum of its
    /// expired lots, read from the server, unless given.
    Expire {
        /// The account.
        #[arg(long)]
        account: AccountId,
        /// Burn lots expiring at or before this time (unix ms; default: the server's now).
        #[arg(long)]
        as_of_ms: Option<u64>,
        /// The sum of those lots (default: computed from `GET /v1/wallets/{account}/lots`).
        #[arg(long)]
        amount: Option<u64>,
    },
    /// Issuer: set the program's tiers and how growth accrues.
    SetTiers {
        /// A tier as NAME:MIN_GROWTH, lowest first; the first must be NAME:0. Repeatable.
        #[arg(long = "tier", required = true)]
        tiers: Vec<String>,
        /// Rolling window in ms over which growth counts (default 365 days).
        #[arg(long, default_value_t = 365 * 86_400_000)]
        window_ms: u64,
        /// Growth per point awarded, as GROWTH/POINTS.
        #[arg(long, default_value = "1/1")]
        growth_per_point: String,
        /// A per-reason rate as REASON=GROWTH/POINTS (e.g. adjustment=0/1). Repeatable.
        #[arg(long = "reason-rate")]
        reason_rates: Vec<String>,
    },
    /// Show a wallet's lots: each with its expiry, pending awards, what expires within 30
    /// days (default: your own).
    Lots {
        /// The account.
        account: Option<AccountId>,
    },
    /// Show a member's tier and growth (default: your own).
    Tier {
        /// The account.
        account: Option<AccountId>,
    },
    /// Show awards: a member's (default: your own), or with --merchant those a merchant made.
    Earns {
        /// The account.
        account: Option<AccountId>,
        /// List the awards the account made, as a merchant.
        #[arg(long)]
        merchant: bool,
        /// Start after this earn id.
        #[arg(long)]
        after: Option<u64>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Merchant: award many members from a CSV file with rows
    /// `member,amount,reason,reference[,expires_at_ms]` (an optional header line starting
    /// with `member` is skipped). Every row is signed and sent in batches of 256; one JSON
    /// line per row says what happened. Op ids derive from the file and row, so running the
    /// same file again awards nobody twice (rows already sent come back `duplicate_op_id`).
    EarnBatch {
        /// The CSV file.
        #[arg(long)]
        csv: PathBuf,
    },
}

fn earn_reason(s: &str) -> Result<EarnReason> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase()))
        .map_err(|_| anyhow!("reason `{s}`: one of purchase, task, campaign, referral, adjustment"))
}

fn parse_tier(s: &str) -> Result<Tier> {
    let (name, min) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("tier `{s}`: write it as NAME:MIN_GROWTH, e.g. Gold:1000"))?;
    Ok(Tier {
        name: name.to_string(),
        min_growth: min
            .trim()
            .parse()
            .with_context(|| format!("tier `{s}`: bad growth"))?,
    })
}

fn parse_reason_rate(s: &str) -> Result<ReasonRate> {
    let (reason, rate) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("reason rate `{s}`: write it as REASON=GROWTH/POINTS"))?;
    Ok(ReasonRate {
        reason: earn_reason(reason)?,
        rate: parse_rate(rate)?,
    })
}

/// Runs a loyalty subcommand: reads print and return `None`; the others return the op to
/// sign and submit.
pub(crate) async fn run(
    cmd: LoyaltyCommand,
    key: &Keypair,
    client: &Client,
    me: AccountId,
) -> Result<Option<Op>> {
    Ok(Some(match cmd {
        LoyaltyCommand::ConfirmEarn { earn } => Op::ConfirmEarn(ConfirmEarn { earn_id: earn }),
        LoyaltyCommand::ReverseEarn { earn, reason } => Op::ReverseEarn(ReverseEarn {
            earn_id: earn,
            reason: Bytes(reason.into_bytes()),
        }),
        LoyaltyCommand::Expire {
            account,
            as_of_ms,
            amount,
        } => {
            let (as_of_ms, amount) = match (as_of_ms, amount) {
                (Some(t), Some(a)) => (t, a),
                _ => {
                    let view: LotsView = client
                        .get_json(&format!("/v1/wallets/{account}/lots"))
                        .await?;
                    let t = as_of_ms.unwrap_or(view.as_of_ms);
                    let due = view
                        .lots
                        .iter()
                        .filter(|l| l.expires_at_ms.is_some_and(|e| e <= t))
                        .map(|l| l.points)
                        .sum();
                    (t, amount.unwrap_or(due))
                }
            };
            if amount == 0 {
                bail!("{account} has no lot expired by {as_of_ms}: nothing to burn");
            }
            Op::Expire(Expire {
                account,
                as_of_ms,
                amount: Points(amount),
            })
        }
        LoyaltyCommand::SetTiers {
            tiers,
            window_ms,
            growth_per_point,
            reason_rates,
        } => Op::SetTiers(SetTiers {
            tiers: tiers.iter().map(|t| parse_tier(t)).collect::<Result<_>>()?,
            window_ms,
            growth_per_point: parse_rate(&growth_per_point)?,
            reason_rates: reason_rates
                .iter()
                .map(|r| parse_reason_rate(r))
                .collect::<Result<_>>()?,
        }),
        LoyaltyCommand::Lots { account } => {
            let account = account.unwrap_or(me);
            let view: LotsView = client
                .get_json(&format!("/v1/wallets/{account}/lots"))
                .await?;
            print_json(&view)?;
            return Ok(None);
        }
        LoyaltyCommand::Tier { account } => {
            let account = account.unwrap_or(me);
            let view: TierStatus = client
                .get_json(&format!("/v1/wallets/{account}/tier"))
                .await?;
            print_json(&view)?;
            return Ok(None);
        }
        LoyaltyCommand::Earns {
            account,
            merchant,
            after,
            limit,
        } => {
            let account = account.unwrap_or(me);
            let base = if merchant { "merchants" } else { "wallets" };
            let mut path = format!("/v1/{base}/{account}/earns?limit={limit}");
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            let page: Page<serde_json::Value> = client.get_json(&path).await?;
            print_json(&page)?;
            return Ok(None);
        }
        LoyaltyCommand::EarnBatch { csv } => {
            earn_batch(key, client, &csv).await?;
            return Ok(None);
        }
    }))
}

/// One row of an earn-batch file.
struct Row {
    line: usize,
    earn: Earn,
}

fn parse_csv(text: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') || (i == 0 && raw.starts_with("member")) {
            continue;
        }
        let cols: Vec<&str> = raw.split(',').map(str::trim).collect();
        if !(4..=5).contains(&cols.len()) {
            bail!(
                "line {line}: expected member,amount,reason,reference[,expires_at_ms], got {} columns",
                cols.len()
            );
        }
        let member: AccountId = cols[0]
            .parse()
            .map_err(|e| anyhow!("line {line}: member: {e}"))?;
        let amount: u64 = cols[1]
            .parse()
            .with_context(|| format!("line {line}: amount `{}`", cols[1]))?;
        let reason = earn_reason(cols[2]).with_context(|| format!("line {line}"))?;
        let expires_at_ms = match cols.get(4) {
            None | Some(&"") => None,
            Some(t) => Some(
                t.parse()
                    .with_context(|| format!("line {line}: expires_at_ms `{t}`"))?,
            ),
        };
        rows.push(Row {
            line,
            earn: Earn {
                member,
                amount: Points(amount),
                reason,
                reference: Bytes(cols[3].as_bytes().to_vec()),
                expires_at_ms,
                pending: None,
            },
        });
    }
    Ok(rows)
}

/// What `earn-batch` prints for each row.
#[derive(Serialize)]
struct RowResult {
    line: usize,
    member: AccountId,
    amount: u64,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// A row's op id: SHA-256 of the file, the signer and the line, so a rerun reuses it.
fn row_op_id(file_digest: &[u8; 32], signer: &AccountId, line: usize) -> OpId {
    let mut h = Sha256::new();
    h.update(b"points-ledger/earn-batch/v1\0");
    h.update(file_digest);
    h.update(signer.0);
    h.update((line as u64).to_be_bytes());
    let d = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    OpId(u128::from_be_bytes(id))
}

async fn earn_batch(key: &Keypair, client: &Client, csv: &Path) -> Result<()> {
    let bytes = std::fs::read(csv).with_context(|| format!("reading {}", csv.display()))?;
    let text = std::str::from_utf8(&bytes).context("the CSV file is not UTF-8")?;
    let rows = parse_csv(text)?;
    if rows.is_empty() {
        bail!("{}: no rows", csv.display());
    }
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let wallet = Wallet::connect(key.clone(), client.clone()).await?;
    let me = wallet.account();
    let (mut applied, mut rejected) = (0usize, 0usize);
    for chunk in rows.chunks(EARN_BATCH_ROWS) {
        let not_after = client::now_ms() + wallet.ttl_ms;
        let ops: Vec<SignedOp> = chunk
            .iter()
            .map(|r| {
                client::sign_op(
                    key,
                    &wallet.chain_id,
                    row_op_id(&digest, &me, r.line),
                    not_after,
                    Op::Earn(r.earn.clone()),
                )
            })
            .collect();
        let results = wallet.client.submit_batch(&ops).await?;
        if results.len() != chunk.len() {
            bail!(
                "the server answered {} results for {} ops",
                results.len(),
                chunk.len()
            );
        }
        for (row, item) in chunk.iter().zip(results) {
            let mut out = RowResult {
                line: row.line,
                member: row.earn.member,
                amount: row.earn.amount.0,
                status: item.status.clone(),
                seq: item.receipt.as_ref().map(|r| r.seq),
                code: None,
                detail: None,
            };
            if let Some(p) = item.problem {
                out.code = Some(p.code);
                out.detail = Some(p.detail);
                rejected += 1;
            } else {
                applied += 1;
            }
            println!("{}", serde_json::to_string(&out)?);
        }
    }
    eprintln!("earn-batch: {applied} applied, {rejected} rejected");
    if rejected > 0 {
        bail!("{rejected} of {} rows were rejected", rows.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_parse_with_and_without_expiry() {
        let m = "ab".repeat(32);
        let text =
            format!("member,amount,reason,reference,expires_at_ms\n{m},10,purchase,r1,\n{m},5,Task,r2,1700000000000\n");
        let rows = parse_csv(&text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].earn.expires_at_ms, None);
        assert_eq!(rows[1].earn.reason, EarnReason::Task);
        assert_eq!(rows[1].earn.expires_at_ms, Some(1_700_000_000_000));
        assert!(parse_csv(&format!("{m},x,purchase,r")).is_err());
        assert!(parse_csv(&format!("{m},1,gift,r")).is_err());
        assert!(parse_csv(&format!("{m},1,purchase")).is_err());
    }

    #[test]
    fn row_op_ids_are_stable_and_distinct() {
        let d = [7u8; 32];
        let a = AccountId([1; 32]);
        assert_eq!(row_op_id(&d, &a, 2), row_op_id(&d, &a, 2));
        assert_ne!(row_op_id(&d, &a, 2), row_op_id(&d, &a, 3));
    }
}
