//! Routes of the verifiable history: checkpoints, cosignatures, Merkle proofs, histories with
//! proofs, and the export stream (`ledger-spec/api.md` §4, `ledger-spec/checkpoints.md`).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use utoipa::IntoParams;

use super::auth::{AccountAccess, Overseer};
use super::dto::*;
use super::error::Problem;
use super::{entry_view, AccountPath, AppState, PageQuery, P, Q};
use crate::checkpoint::{self, Checkpoint, NoteVerifier};
use crate::export;
use crate::merkle;
use crate::op::Hash32;
use crate::store::Receipt;

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

/// Parses a stored note into its JSON view (the store only holds notes it signed).
pub(crate) fn checkpoint_view(note: &str) -> Result<CheckpointView, Problem> {
    let body = note.split("\n\n").next().unwrap_or("");
    let cp = Checkpoint::parse_body(&format!("{body}\n")).map_err(|e| {
        tracing::error!(error = %e, "stored checkpoint does not parse");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "stored checkpoint is unreadable",
        )
    })?;
    Ok(CheckpointView {
        origin: cp.origin,
        size: cp.size,
        root: Hash32(cp.root),
        head: Hash32(cp.head),
        time_ms: cp.time_ms,
        note: note.to_string(),
    })
}

fn note_response(note: String, headers: &HeaderMap) -> Result<Response, Problem> {
    if wants_json(headers) {
        return Ok(Json(checkpoint_view(&note)?).into_response());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// The latest checkpoint, signing one first if the log has grown past it.
pub(crate) async fn latest_note(app: &AppState) -> Result<(u64, String), Problem> {
    let tip = app.sequencer.tip();
    match app.store.latest_checkpoint()? {
        Some((size, note)) if size >= tip.size => Ok((size, note)),
        stored => match app.checkpointer.checkpoint(tip).await {
            Ok(c) => Ok(c),
            // Signing a new one failed (a full disk, say): the stored one is still valid.
            Err(e) => match stored {
                Some(c) => {
                    tracing::warn!(error = %e, "cannot sign a new checkpoint; serving the stored one");
                    Ok(c)
                }
                None => Err(e.into()),
            },
        },
    }
}

/// The latest signed checkpoint
///
/// Public. A C2SP signed note (`text/plain`), or its parsed view when the request accepts
/// `application/json`. Signs one first if there is none yet.
#[utoipa::path(
    get,
    path = "/v1/checkpoint",
    tag = "verifiable",
    responses((status = 200, description = "The latest checkpoint", content(
        (String = "text/plain"),
        (CheckpointView = "application/json"),
    )))
)]
pub(super) async fn latest_checkpoint(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (_, note) = match app.store.latest_checkpoint()? {
        Some(c) => c,
        None => latest_note(&app).await?,
    };
    note_response(note, &headers)
}

/// A checkpoint of the current tip
///
/// Public: signs a checkpoint of the durable tip unless the latest already covers it (at
/// most one per tree size), and returns it.
#[utoipa::path(
    post,
    path = "/v1/checkpoint",
    tag = "verifiable",
    responses((status = 200, description = "A checkpoint covering the tip", body = CheckpointView))
)]
pub(super) async fn new_checkpoint(
    State(app): State<AppState>,
) -> Result<Json<CheckpointView>, Problem> {
    let (_, note) = latest_note(&app).await?;
    Ok(Json(checkpoint_view(&note)?))
}

/// The checkpoint of one tree size
///
/// Public. Content negotiation as for `GET /v1/checkpoint`.
#[utoipa::path(
    get,
    path = "/v1/checkpoints/{size}",
    tag = "verifiable",
    params(("size" = u64, Path, description = "Tree size")),
    responses((status = 200, description = "The checkpoint", content(
        (String = "text/plain"),
        (CheckpointView = "application/json"),
    )))
)]
pub(super) async fn checkpoint_at(
    State(app): State<AppState>,
    P(size): P<u64>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let note = app
        .store
        .checkpoint(size)?
        .ok_or_else(|| Problem::not_found(format!("no checkpoint of size {size}")))?;
    note_response(note, &headers)
}

/// Add a witness cosignature
///
/// The body is one C2SP signature line (`— <auditor hex> <base64>`) by a registered
/// auditor over the checkpoint's body; the signature itself authorizes the request. A new
/// line from the same auditor replaces its previous one.
#[utoipa::path(
    post,
    path = "/v1/checkpoints/{size}/cosignatures",
    tag = "verifiable",
    params(("size" = u64, Path, description = "Tree size")),
    request_body(content = String, content_type = "text/plain", description = "One signature line"),
    responses(
        (status = 200, description = "The checkpoint with the cosignature", body = CheckpointView),
        (status = 403, description = "`forbidden`: the key is not a registered auditor", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`body_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`bad_signature`: the cosignature does not verify", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn add_cosignature(
    State(app): State<AppState>,
    P(size): P<u64>,
    body: Bytes,
) -> Result<Json<CheckpointView>, Problem> {
    let line = std::str::from_utf8(&body)
        .map_err(|_| Problem::bad_request("malformed_body", "the cosignature line is not UTF-8"))?
        .trim_end_matches('\n');
    let note = app
        .store
        .checkpoint(size)?
        .ok_or_else(|| Problem::not_found(format!("no checkpoint of size {size}")))?;
    let body_text = format!("{}\n", note.split("\n\n").next().unwrap_or(""));
    let name = line
        .strip_prefix("— ")
        .and_then(|rest| rest.split(' ').next())
        .ok_or_else(|| {
            Problem::bad_request(
                "malformed_body",
                "not a signature line (`— <name> <base64>`)",
            )
        })?;
    let auditor: crate::op::AccountId = name.parse().map_err(|_| {
        Problem::bad_request(
            "malformed_body",
            "the witness key name must be the auditor's account (64 lowercase hex)",
        )
    })?;
    if app.store.auditor(&auditor)?.is_none() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{auditor} is not a registered auditor"),
        ));
    }
    let witness = NoteVerifier::new_cosigner(name, auditor.0)
        .map_err(|e| Problem::bad_request("malformed_body", e.to_string()))?;
    checkpoint::verify_cosignature(&body_text, line, &witness).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_signature",
            format!("cosignature does not verify: {e}"),
        )
    })?;
    // One cosignature per auditor: a new one replaces the old, so the note stays bounded
    // by the number of registered auditors.
    let prefix = format!("— {name} ");
    let mut updated = String::with_capacity(note.len() + line.len() + 1);
    let (body_part, sigs) = note.split_once("\n\n").unwrap_or((&note, ""));
    updated.push_str(body_part);
    updated.push_str("\n\n");
    for l in sigs.lines().filter(|l| !l.is_empty()) {
        if !l.starts_with(&prefix) {
            updated.push_str(l);
            updated.push('\n');
        }
    }
    updated.push_str(line);
    updated.push('\n');
    let store = app.store.clone();
    let u = updated.clone();
    tokio::task::spawn_blocking(move || store.put_checkpoint(size, &u))
        .await
        .map_err(|e| {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    Ok(Json(checkpoint_view(&updated)?))
}

/// `seq` and `size` of an inclusion proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The entry.
    pub seq: u64,
    /// Tree size; the latest checkpoint's size if absent.
    pub size: Option<u64>,
}

/// An inclusion proof
///
/// Public: the RFC 9162 proof that entry `seq` is in the tree of `size`.
#[utoipa::path(
    get,
    path = "/v1/proofs/inclusion",
    tag = "verifiable",
    params(InclusionQuery),
    responses((status = 200, description = "The proof", body = InclusionProofView))
)]
pub(super) async fn inclusion(
    State(app): State<AppState>,
    Q(q): Q<InclusionQuery>,
) -> Result<Json<InclusionProofView>, Problem> {
    let size = match q.size {
        Some(s) => s,
        None => latest_note(&app).await?.0,
    };
    let tip = app.sequencer.tip().size;
    if size > tip || q.seq >= size {
        return Err(Problem::bad_request(
            "invalid_query",
            format!("need seq < size <= {tip}; got seq {} size {size}", q.seq),
        ));
    }
    let bytes = app
        .store
        .entry_bytes(q.seq)?
        .ok_or_else(|| Problem::not_found(format!("no entry {}", q.seq)))?;
    let proof = merkle::inclusion_proof(q.seq, size, app.store.as_ref()).map_err(merkle_problem)?;
    Ok(Json(InclusionProofView {
        seq: q.seq,
        size,
        leaf_hash: Hash32(merkle::leaf_hash(&bytes)),
        proof: proof.into_iter().map(Hash32).collect(),
    }))
}

fn merkle_problem(e: merkle::MerkleError) -> Problem {
    tracing::error!(error = %e, "merkle proof failed");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "proof could not be built",
    )
}

/// Sizes of a consistency proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
}

/// A consistency proof
///
/// Public: the RFC 9162 proof that the tree of `to` extends the tree of `from`.
#[utoipa::path(
    get,
    path = "/v1/proofs/consistency",
    tag = "verifiable",
    params(ConsistencyQuery),
    responses((status = 200, description = "The proof", body = ConsistencyProofView))
)]
pub(super) async fn consistency(
    State(app): State<AppState>,
    Q(q): Q<ConsistencyQuery>,
) -> Result<Json<ConsistencyProofView>, Problem> {
    let tip = app.sequencer.tip().size;
    if q.from == 0 || q.from > q.to || q.to > tip {
        return Err(Problem::bad_request(
            "invalid_query",
            format!(
                "need 0 < from <= to <= {tip}; got from {} to {}",
                q.from, q.to
            ),
        ));
    }
    let proof =
        merkle::consistency_proof(q.from, q.to, app.store.as_ref()).map_err(merkle_problem)?;
    Ok(Json(ConsistencyProofView {
        from: q.from,
        to: q.to,
        proof: proof.into_iter().map(Hash32).collect(),
    }))
}

/// Query of a wallet history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Cursor.
    pub after: Option<u64>,
    /// Page size.
    pub limit: Option<u32>,
    /// Include inclusion proofs against one checkpoint.
    #[serde(default)]
    pub proofs: bool,
    /// With proofs: the checkpoint size to prove against (the latest if absent).
    pub size: Option<u64>,
}

/// A wallet's history
///
/// For the wallet's holder, auditors and the issuer. Plain receipts, or with
/// `proofs=true` the entries with inclusion proofs against one checkpoint.
#[utoipa::path(
    get,
    path = "/v1/wallets/{account}/history",
    tag = "wallets",
    params(AccountPath, HistoryQuery),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "A page of the history, oldest first: a `Page` of receipts, or with `proofs=true` a `ProvenHistory`", body = super::openapi::HistoryResponse))
)]
pub(super) async fn history(
    State(app): State<AppState>,
    AccountAccess { account, .. }: AccountAccess,
    Q(q): Q<HistoryQuery>,
) -> Result<Response, Problem> {
    let page = PageQuery {
        after: q.after,
        limit: q.limit,
    };
    let limit = page.limit(&app.limits)?;
    if !q.proofs {
        let seqs = app.store.history(&account, q.after, limit)?;
        let mut items: Vec<Receipt> = Vec::with_capacity(seqs.len());
        for seq in &seqs {
            if let Some(r) = app.store.receipt(*seq)? {
                items.push(r);
            }
        }
        let next_after = (seqs.len() == limit)
            .then(|| seqs.last().copied())
            .flatten();
        return Ok(Json(Page { items, next_after }).into_response());
    }
    let (size, note) = match q.size {
        Some(size) => (
            size,
            app.store
                .checkpoint(size)?
                .ok_or_else(|| Problem::not_found(format!("no checkpoint of size {size}")))?,
        ),
        None => latest_note(&app).await?,
    };
    let checkpoint = checkpoint_view(&note)?;
    let seqs: Vec<u64> = app
        .store
        .history(&account, q.after, limit)?
        .into_iter()
        .filter(|s| *s < size)
        .collect();
    let mut items = Vec::with_capacity(seqs.len());
    for seq in &seqs {
        let Some(entry) = entry_view(&app, *seq)? else {
            continue;
        };
        let proof =
            merkle::inclusion_proof(*seq, size, app.store.as_ref()).map_err(merkle_problem)?;
        items.push(ProvenEntry {
            entry,
            proof: proof.into_iter().map(Hash32).collect(),
        });
    }
    let next_after = (seqs.len() == limit)
        .then(|| seqs.last().copied())
        .flatten();
    Ok(Json(ProvenHistory {
        account,
        checkpoint,
        items,
        next_after,
    })
    .into_response())
}

/// Streams the export: every checkpoint, then every entry up to the tip.
/// Export the whole log
///
/// For auditors and the issuer: every checkpoint, then every entry up to the tip, in the
/// export format (`ledger-spec/export.md`), streamed.
#[utoipa::path(
    get,
    path = "/v1/export",
    tag = "audit",
    security(("points_ed25519" = [])),
    responses((status = 200, description = "The export stream", content_type = "application/octet-stream", body = Vec<u8>))
)]
pub(super) async fn export_stream(
    State(app): State<AppState>,
    _who: Overseer,
) -> Result<Response, Problem> {
    // Make sure the export ends with a checkpoint of its last entry.
    let (size, _) = latest_note(&app).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || {
        let send = |buf: Vec<u8>| tx.blocking_send(Ok(Bytes::from(buf))).is_ok();
        let mut buf = Vec::with_capacity(1 << 20);
        if export::write_header(&mut buf).is_err() {
            return;
        }
        for item in store.checkpoints() {
            match item {
                Ok((s, note)) if s <= size => {
                    let _ = export::write_frame(&mut buf, &export::Frame::Checkpoint(note));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
        }
        for seq in 0..size {
            match store.entry_bytes(seq) {
                Ok(Some(bytes)) => {
                    let _ = export::encode_frame(&mut buf, export::KIND_ENTRY, &bytes);
                }
                other => {
                    let msg = format!("entry {seq} unreadable: {other:?}");
                    let _ = tx.blocking_send(Err(std::io::Error::other(msg)));
                    return;
                }
            }
            if buf.len() >= 1 << 20
                && !send(std::mem::replace(&mut buf, Vec::with_capacity(1 << 20)))
            {
                return;
            }
        }
        let _ = export::write_end(&mut buf);
        send(buf);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}
