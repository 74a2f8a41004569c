//! The loyalty vectors (`ledger-spec/vectors/loyalty.json`, `ledger-spec/loyalty.md`): a
//! chain that exercises expiring lots, pending awards released by time and by confirmation,
//! reversals of a pending and of a released-and-spent award, tiers and an Expire; the
//! holdings of every account after every entry; award records, tier views and the merchant's
//! statement at the end; and refusals relative to that chain. Also the loyalty rejection
//! cases of `invalid.json` (relative to `chain.json`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use points_ledger::codec;
use points_ledger::loyalty::{self, Holdings};
use points_ledger::op::*;
use points_ledger::rules::{self, Ctx, State, VerifiedOp};
use points_ledger::settlement;

use super::{
    bytes, id, op_vector, rate, rejection_json, sign, write_json, Case, Keys, Ledger, CHAIN_ID,
    DAY, T0,
};

/// `not_after_ms` of the loyalty chain's ops (it runs for 31 days).
const NOT_AFTER: u64 = T0 + 400 * DAY;

fn holdings_json(h: &Holdings) -> Value {
    json!({
        "lots": h.lots.iter().map(|(e, p)| json!({"expires_at_ms": e.ms(), "points": p})).collect::<Vec<_>>(),
        "pending": h.pending,
        "pending_total": h.pending_total,
    })
}

fn all_holdings_json(state: &State) -> Value {
    let sorted: BTreeMap<String, Value> = state
        .balances()
        .keys()
        .map(|a| {
            let h = state.loyalty().holdings(a).cloned().unwrap_or_default();
            (a.to_hex(), holdings_json(&h))
        })
        .collect();
    json!(sorted)
}

struct Step {
    what: &'static str,
    ts: u64,
    signer: &'static str,
    op: Op,
}

/// The chain: (description, timestamp, signer role, op). Entry numbers are the seqs.
fn steps(k: &Keys) -> Vec<Step> {
    let merchant = id(&k.merchant);
    let a = id(&k.member4);
    let b = id(&k.member5);
    let earn = |member: AccountId,
                amount: u64,
                reason: EarnReason,
                reference: &str,
                expires_at_ms: Option<u64>,
                pending: Option<Pending>| {
        Op::Earn(Earn {
            member,
            amount: Points(amount),
            reason,
            reference: bytes(reference),
            expires_at_ms,
            pending,
        })
    };
    let s = |what, ts, signer, op| Step {
        what,
        ts,
        signer,
        op,
    };
    vec![
        s("genesis", T0, "issuer", Op::Genesis(Genesis {
            currency: "CNY".into(),
            minor_unit_digits: 2,
            checkpoint_key: id(&k.checkpoint),
        })),
        s("the issuer registers the merchant", T0 + 1_000, "issuer", Op::RegisterMerchant(RegisterMerchant {
            merchant,
            name: "Jade Tea House".into(),
            issue_rate: rate(1, 1),
            redeem_rate: rate(9, 10),
        })),
        s("the issuer sets the tiers Member (0), Silver (500), Gold (2000) over a 365-day window, 1 growth per point, none for adjustments", T0 + 2_000, "issuer", Op::SetTiers(SetTiers {
            tiers: vec![
                Tier { name: "Member".into(), min_growth: 0 },
                Tier { name: "Silver".into(), min_growth: 500 },
                Tier { name: "Gold".into(), min_growth: 2_000 },
            ],
            window_ms: 365 * DAY,
            growth_per_point: rate(1, 1),
            reason_rates: vec![ReasonRate { reason: EarnReason::Adjustment, rate: rate(0, 1) }],
        })),
        s("the issuer mints 100000 points into the merchant's float (never expires)", T0 + 3_000, "issuer", Op::Mint(Mint {
            to: merchant,
            amount: Points(100_000),
            memo: bytes("INV-1"),
            expires_at_ms: None,
        })),
        s("the issuer mints a 300-point welcome lot to member A, expiring on day 30", T0 + 4_000, "issuer", Op::Mint(Mint {
            to: a,
            amount: Points(300),
            memo: bytes("welcome"),
            expires_at_ms: Some(T0 + 30 * DAY),
        })),
        s("earn 5: the merchant awards member A 1000 points expiring on day 60", T0 + 5_000, "merchant",
            earn(a, 1_000, EarnReason::Purchase, "receipt-1001", Some(T0 + 60 * DAY), None)),
        s("earn 6: the merchant awards member A 800 points, pending until day 14 (the return window), expiring on day 365", T0 + 6_000, "merchant",
            earn(a, 800, EarnReason::Purchase, "receipt-1002", Some(T0 + 365 * DAY), Some(Pending { release_at_ms: Some(T0 + 14 * DAY) }))),
        s("earn 7: the merchant awards member B 500 points for a task, pending until the merchant confirms", T0 + 7_000, "merchant",
            earn(b, 500, EarnReason::Task, "task-77", None, Some(Pending { release_at_ms: None }))),
        s("member A transfers 700 to member B: the 300 expiring on day 30 and 400 of the day-60 lot move with their expiry", T0 + DAY, "member_a", Op::Transfer(Transfer {
            to: b,
            amount: Points(700),
            memo: bytes("gift"),
        })),
        s("the merchant confirms earn 7: member B's 500 points become spendable", T0 + 2 * DAY, "merchant",
            Op::ConfirmEarn(ConfirmEarn { earn_id: 7 })),
        s("member A burns 500 (taken from the day-60 lot); earn 6 is still pending", T0 + 3 * DAY, "member_a", Op::Burn(Burn {
            from: a,
            amount: Points(500),
            reason: BurnReason::Voluntary,
        })),
        s("the purchase of earn 5 is returned: the merchant reverses it; member A holds only 100 spendable points, so 100 come back and 900 stay unrecovered", T0 + 10 * DAY, "merchant",
            Op::ReverseEarn(ReverseEarn { earn_id: 5, reason: bytes("return-1001") })),
        s("earn 12: the merchant awards member B 200 points as an adjustment (no growth), pending until day 40", T0 + 11 * DAY, "merchant",
            earn(b, 200, EarnReason::Adjustment, "adj-3", None, Some(Pending { release_at_ms: Some(T0 + 40 * DAY) }))),
        s("member B transfers 50 to member A (from B's soonest lot, day 30); the entry touches A, so earn 6 (due on day 14) is released first", T0 + 15 * DAY, "member_b", Op::Transfer(Transfer {
            to: a,
            amount: Points(50),
            memo: bytes("thanks"),
        })),
        s("earn 12 is returned while pending: the merchant reverses it and its 200 points go back to the float", T0 + 20 * DAY, "merchant",
            Op::ReverseEarn(ReverseEarn { earn_id: 12, reason: bytes("return-1003") })),
        s("earn 15: the merchant awards member A a 1500-point campaign bonus expiring on day 90 (growth 800 + 1500: member A reaches Gold)", T0 + 21 * DAY, "merchant",
            earn(a, 1_500, EarnReason::Campaign, "spring", Some(T0 + 90 * DAY), None)),
        s("the issuer expires member B's lots due by day 30: exactly 250 points", T0 + 31 * DAY + 1_000, "issuer", Op::Expire(Expire {
            account: b,
            as_of_ms: T0 + 30 * DAY,
            amount: Points(250),
        })),
        s("the issuer expires member A's lots due by day 30: the 50 points from member B", T0 + 31 * DAY + 2_000, "issuer", Op::Expire(Expire {
            account: a,
            as_of_ms: T0 + 30 * DAY,
            amount: Points(50),
        })),
    ]
}

fn signer_key<'a>(k: &'a Keys, role: &str) -> &'a points_ledger::crypto::Keypair {
    match role {
        "issuer" => &k.issuer,
        "merchant" => &k.merchant,
        "member_a" => &k.member4,
        "member_b" => &k.member5,
        other => panic!("no key for {other}"),
    }
}

/// Writes `loyalty.json`; returns op vectors of the loyalty op types for `ops.json`.
pub(super) fn write_chain(out: &Path, k: &Keys) -> Vec<Value> {
    let merchant = id(&k.merchant);
    let mut ledger = Ledger::new();
    let mut prefixes = vec![ledger.clone()];
    let mut entries = Vec::new();
    let mut signed = Vec::new();
    let steps = steps(k);
    for (i, st) in steps.iter().enumerate() {
        let op = sign(
            signer_key(k, st.signer),
            5_000 + i as u128,
            NOT_AFTER,
            st.op.clone(),
        );
        signed.push(op.clone());
        let a = ledger.append(op.clone(), st.ts);
        assert_eq!(a.entry.seq as usize, i);
        let mut e = json!({
            "seq": i,
            "description": st.what,
            "op_type": op.envelope.op.kind(),
            "signer_role": st.signer,
            "timestamp_ms": a.entry.timestamp_ms,
            "signed_op_hex": hex::encode(codec::encode_signed_op(&op)),
            "entry_hex": hex::encode(&a.bytes),
            "entry_hash": a.hash.to_hex(),
            "merkle_root": hex::encode(ledger.frontier.root()),
            "history": a.effects.parties.as_slice().iter().map(AccountId::to_hex).collect::<Vec<_>>(),
            "balances": ledger.balances_json(),
            "holdings": all_holdings_json(&ledger.state),
            "totals": ledger.totals_json(),
        });
        if let Some(id) = a.effects.loyalty.earn {
            e["earn"] = serde_json::to_value(ledger.state.loyalty().earn(id).unwrap()).unwrap();
        }
        entries.push(e);
        prefixes.push(ledger.clone());
    }
    // The Settle of the merchant's whole period, countersigned: reversals are in the totals.
    let n = signed.len() as u64;
    let book = ledger.state.book(&merchant).cloned().unwrap_or_default();
    let statement = settlement::statement(merchant, &book, n - 1).unwrap();
    assert_eq!(statement.totals.points_reversed, 300);
    assert_eq!(statement.totals.points_unrecovered, 900);
    let settle = sign(
        &k.issuer,
        5_000 + n as u128,
        NOT_AFTER,
        Op::Settle(Settle {
            merchant,
            from_seq: 0,
            to_seq: n - 1,
            totals: statement.totals,
            merchant_signature: settlement::countersign(CHAIN_ID, &k.merchant, &statement),
        }),
    );
    let ts = T0 + 32 * DAY;
    let a = ledger.append(settle.clone(), ts);
    entries.push(json!({
        "seq": n,
        "description": "the issuer settles the merchant's period (0, 17], countersigned: 300 points came back by reversals and 900 were not recovered",
        "op_type": "settle",
        "signer_role": "issuer",
        "timestamp_ms": ts,
        "signed_op_hex": hex::encode(codec::encode_signed_op(&settle)),
        "entry_hex": hex::encode(&a.bytes),
        "entry_hash": a.hash.to_hex(),
        "merkle_root": hex::encode(ledger.frontier.root()),
        "history": a.effects.parties.as_slice().iter().map(AccountId::to_hex).collect::<Vec<_>>(),
        "balances": ledger.balances_json(),
        "holdings": all_holdings_json(&ledger.state),
        "totals": ledger.totals_json(),
        "statement": statement,
    }));
    signed.push(settle);
    prefixes.push(ledger.clone());

    // Final records and views.
    let mut earns = serde_json::Map::new();
    let mut ids: Vec<u64> = (0..=n)
        .filter(|i| ledger.state.loyalty().earn(*i).is_some())
        .collect();
    ids.sort_unstable();
    for i in &ids {
        earns.insert(
            i.to_string(),
            serde_json::to_value(ledger.state.loyalty().earn(*i).unwrap()).unwrap(),
        );
    }
    let member_a = id(&k.member4);
    let member_b = id(&k.member5);
    let config = ledger.state.loyalty().tiers().cloned();
    let records: Vec<_> = ids
        .iter()
        .map(|i| ledger.state.loyalty().earn(*i).unwrap().clone())
        .collect();
    let mut views = Vec::new();
    for (who, account, at, why) in [
        (
            "member_a",
            member_a,
            T0 + 13 * DAY,
            "before earn 6 is released: no growth (earn 5 was reversed)",
        ),
        (
            "member_a",
            member_a,
            T0 + 15 * DAY,
            "earn 6 released on day 14: 800 growth, Silver",
        ),
        (
            "member_a",
            member_a,
            T0 + 32 * DAY,
            "with the day-21 bonus: 2300 growth, Gold until day 379, when earn 6 leaves the window",
        ),
        (
            "member_a",
            member_a,
            T0 + 379 * DAY,
            "day 379: earn 6's growth has left the window: Silver (downgrade)",
        ),
        (
            "member_b",
            member_b,
            T0 + 32 * DAY,
            "earn 7 confirmed on day 2: Silver; earn 12 gave no growth and was reversed",
        ),
    ] {
        views.push(json!({
            "account_role": who,
            "as_of_ms": at,
            "description": why,
            "tier": loyalty::tier_status(account, config.as_ref(), &records, at),
        }));
    }
    let lots_views: Vec<Value> = [("member_a", member_a), ("member_b", member_b)]
        .iter()
        .map(|(who, account)| {
            let h = ledger
                .state
                .loyalty()
                .holdings(account)
                .cloned()
                .unwrap_or_default();
            let pending: Vec<_> = h
                .pending
                .iter()
                .filter_map(|i| ledger.state.loyalty().earn(*i).cloned())
                .collect();
            json!({
                "account_role": who,
                "as_of_ms": T0 + 61 * DAY,
                "view": loyalty::lots_view(*account, &h, &pending, false, T0 + 61 * DAY),
            })
        })
        .collect();

    // Refusals relative to the loyalty chain.
    let mut rejections = Vec::new();
    let a_id = member_a;
    let b_id = member_b;
    let cases: Vec<(&str, &str, usize, u64, &str, Op)> = vec![
        ("insufficient_funds_pending", "after entry 7, member B (500 pending, nothing released) transfers 1 point: pending points cannot be spent", 8, T0 + 8_000, "member_b",
            Op::Transfer(Transfer { to: a_id, amount: Points(1), memo: Bytes::default() })),
        ("insufficient_funds_expired", "after entry 17 at day 100, member A (1500 expiring on day 90, 800 on day 365) transfers 801: the expired lot cannot be spent", 17, T0 + 100 * DAY, "member_a",
            Op::Transfer(Transfer { to: b_id, amount: Points(801), memo: Bytes::default() })),
        ("earn_closed_confirm_released", "after entry 13 the merchant confirms earn 6, already released by time", 14, T0 + 21 * DAY, "merchant",
            Op::ConfirmEarn(ConfirmEarn { earn_id: 6 })),
        ("earn_closed_confirm_due", "after entry 12 on day 15 the merchant confirms earn 6, due on day 14 but not yet released: it is released before the checks", 13, T0 + 15 * DAY, "merchant",
            Op::ConfirmEarn(ConfirmEarn { earn_id: 6 })),
        ("earn_closed_reverse_twice", "the merchant reverses earn 5 again", 18, T0 + 31 * DAY + 3_000, "merchant",
            Op::ReverseEarn(ReverseEarn { earn_id: 5, reason: Bytes::default() })),
        ("unknown_earn_transfer", "the merchant confirms entry 8, a transfer, as if it were an earn", 18, T0 + 31 * DAY + 3_000, "merchant",
            Op::ConfirmEarn(ConfirmEarn { earn_id: 8 })),
        ("not_authorized_reverse_by_member", "member A reverses its own earn 15", 18, T0 + 31 * DAY + 3_000, "member_a",
            Op::ReverseEarn(ReverseEarn { earn_id: 15, reason: Bytes::default() })),
        ("expiry_mismatch_short", "after entry 15 the issuer expires 249 of member B's 250 expired points", 16, T0 + 31 * DAY + 1_000, "issuer",
            Op::Expire(Expire { account: b_id, as_of_ms: T0 + 30 * DAY, amount: Points(249) })),
        ("expiry_mismatch_not_yet", "after entry 15 the issuer expires member B's lots as of day 31 counting the day-60 lot too: only the 250 due by day 30 have expired", 16, T0 + 31 * DAY + 1_000, "issuer",
            Op::Expire(Expire { account: b_id, as_of_ms: T0 + 31 * DAY, amount: Points(650) })),
        ("invalid_field_as_of_ms", "an Expire as of a time after the entry's timestamp", 16, T0 + 31 * DAY + 1_000, "issuer",
            Op::Expire(Expire { account: b_id, as_of_ms: T0 + 31 * DAY + 1_001, amount: Points(250) })),
        ("not_authorized_expire", "the merchant signs an Expire", 16, T0 + 31 * DAY + 1_000, "merchant",
            Op::Expire(Expire { account: b_id, as_of_ms: T0 + 30 * DAY, amount: Points(250) })),
        ("invalid_field_expires_at_ms_past", "an earn whose lot would be born expired", 5, T0 + 5_000, "merchant",
            Op::Earn(Earn { member: a_id, amount: Points(1), reason: EarnReason::Purchase, reference: Bytes::default(), expires_at_ms: Some(T0 + 5_000), pending: None })),
        ("invalid_field_expires_at_ms_before_release", "a pending earn that would expire before its release", 5, T0 + 5_000, "merchant",
            Op::Earn(Earn { member: a_id, amount: Points(1), reason: EarnReason::Purchase, reference: Bytes::default(), expires_at_ms: Some(T0 + DAY), pending: Some(Pending { release_at_ms: Some(T0 + DAY) }) })),
        ("invalid_field_expires_at_ms_merchant", "an expiring mint into the merchant's float", 3, T0 + 3_000, "issuer",
            Op::Mint(Mint { to: merchant, amount: Points(1), memo: Bytes::default(), expires_at_ms: Some(T0 + DAY) })),
        ("invalid_field_pending_past", "a pending earn released at or before its own timestamp", 5, T0 + 5_000, "merchant",
            Op::Earn(Earn { member: a_id, amount: Points(1), reason: EarnReason::Purchase, reference: Bytes::default(), expires_at_ms: None, pending: Some(Pending { release_at_ms: Some(T0 + 5_000) }) })),
        ("invalid_field_tiers_order", "tiers whose minimum growth does not increase", 2, T0 + 2_000, "issuer",
            Op::SetTiers(SetTiers { tiers: vec![Tier { name: "A".into(), min_growth: 0 }, Tier { name: "B".into(), min_growth: 0 }], window_ms: DAY, growth_per_point: rate(1, 1), reason_rates: vec![] })),
        ("invalid_field_tiers_base", "a lowest tier that needs growth", 2, T0 + 2_000, "issuer",
            Op::SetTiers(SetTiers { tiers: vec![Tier { name: "A".into(), min_growth: 1 }], window_ms: DAY, growth_per_point: rate(1, 1), reason_rates: vec![] })),
        ("invalid_field_window_ms", "a zero window", 2, T0 + 2_000, "issuer",
            Op::SetTiers(SetTiers { tiers: vec![Tier { name: "A".into(), min_growth: 0 }], window_ms: 0, growth_per_point: rate(1, 1), reason_rates: vec![] })),
        ("invalid_field_reason_rates", "the same reason twice", 2, T0 + 2_000, "issuer",
            Op::SetTiers(SetTiers { tiers: vec![Tier { name: "A".into(), min_growth: 0 }], window_ms: DAY, growth_per_point: rate(1, 1), reason_rates: vec![ReasonRate { reason: EarnReason::Task, rate: rate(1, 1) }, ReasonRate { reason: EarnReason::Task, rate: rate(2, 1) }] })),
    ];
    for (i, (name, what, after, ts, role, op)) in cases.into_iter().enumerate() {
        let signed_op = sign(signer_key(k, role), 9_000 + i as u128, NOT_AFTER, op);
        let mut l = prefixes[after].clone();
        let before = l.state.clone();
        let verified = VerifiedOp::verify(signed_op.clone()).unwrap();
        let ctx = Ctx {
            seq: l.head.next_seq,
            timestamp_ms: ts.max(l.head.timestamp_ms),
        };
        let r = match rules::apply(&mut l.state, &mut l.ids, ctx, &verified) {
            Err(r) => r,
            Ok(o) => panic!("loyalty case {name} was not rejected: {o:?}"),
        };
        assert!(l.state == before, "loyalty case {name} changed the state");
        rejections.push(json!({
            "name": name,
            "description": what,
            "after_entries": after,
            "seq": ctx.seq,
            "timestamp_ms": ctx.timestamp_ms,
            "signed_op_hex": hex::encode(codec::encode_signed_op(&signed_op)),
            "expect": rejection_json(&r),
        }));
    }

    write_json(
        out,
        "loyalty.json",
        &json!({
            "description": "A valid chain exercising ledger-spec/loyalty.md: replay each entry in order through the rules from an empty state; after entry i the balances, holdings (lots by expiry, pending awards) and totals must be as listed. `earn` is the award record an entry wrote. `final` has every award record, tier views and lots views computed from the final records at the given times, and `rejections` are ops refused after the first `after_entries` entries of this chain.",
            "chain_id": CHAIN_ID,
            "entries": entries,
            "final": {
                "size": signed.len(),
                "head_hash": ledger.head.hash.to_hex(),
                "merkle_root": hex::encode(ledger.frontier.root()),
                "earns": earns,
                "tiers": config,
                "tier_views": views,
                "lots_views": lots_views,
            },
            "rejections": rejections,
        }),
    );

    // ops.json vectors of the loyalty op types, taken from this chain.
    let mut vectors = Vec::new();
    for (name, seq) in [
        ("mint_expiring", 4usize),
        ("earn_pending_expiring", 6),
        ("earn_pending_until_confirmed", 7),
        ("expire", 16),
        ("confirm_earn", 9),
        ("reverse_earn", 11),
        ("set_tiers", 2),
    ] {
        vectors.push(op_vector(name, steps[seq].signer, None, &signed[seq]));
    }
    vectors
}

/// Loyalty refusals relative to `chain.json` (after all `n` entries), for `invalid.json`.
pub(super) fn invalid_cases(k: &Keys, n: usize, ts: u64) -> Vec<Case> {
    let member4 = id(&k.member4);
    let mk = |name: &str,
              description: &str,
              signer: &points_ledger::crypto::Keypair,
              op_id: u128,
              op: Op| Case {
        name: name.into(),
        description: description.into(),
        after: n,
        timestamp_ms: ts,
        op: sign(signer, op_id, u64::MAX, op),
    };
    vec![
        mk(
            "expiry_mismatch",
            "the issuer expires 1 point of member A, who holds no expiring lot",
            &k.issuer,
            3001,
            Op::Expire(Expire {
                account: member4,
                as_of_ms: ts,
                amount: Points(1),
            }),
        ),
        mk(
            "unknown_earn",
            "the merchant confirms earn 3, which is a mint",
            &k.merchant,
            3002,
            Op::ConfirmEarn(ConfirmEarn { earn_id: 3 }),
        ),
        mk(
            "earn_closed",
            "the merchant confirms earn 4, awarded without pending terms",
            &k.merchant,
            3003,
            Op::ConfirmEarn(ConfirmEarn { earn_id: 4 }),
        ),
        mk(
            "not_authorized_set_tiers",
            "the merchant signs a SetTiers",
            &k.merchant,
            3004,
            Op::SetTiers(SetTiers {
                tiers: vec![Tier {
                    name: "Member".into(),
                    min_growth: 0,
                }],
                window_ms: DAY,
                growth_per_point: rate(1, 1),
                reason_rates: vec![],
            }),
        ),
        mk(
            "not_authorized_reverse_earn",
            "member B reverses earn 5 (only the merchant that awarded it may)",
            &k.member5,
            3005,
            Op::ReverseEarn(ReverseEarn {
                earn_id: 5,
                reason: Bytes::default(),
            }),
        ),
    ]
}
