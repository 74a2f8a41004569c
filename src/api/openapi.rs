//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers'
//! `#[utoipa::path]` attributes and the types' `ToSchema` derives (`ledger-spec/api.md` §1).
//!
//! The errors every operation can answer with (401/403 for signed routes, 400 for bad
//! parameters, 500 and 503) are added here in one place, so they cannot drift per route.

use std::borrow::Cow;

use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::schema::{AnyOfBuilder, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::dto::{Page, ProvenHistory};
use super::Limits;
use crate::op::{AccountId, Bytes, Hash32, OpId, Signature};
use crate::store::Receipt;

/// The name of the security scheme in the document.
pub const SECURITY_SCHEME: &str = "points_ed25519";

fn hex_string(len_bytes: usize, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[0-9a-f]{{{}}}$", 2 * len_bytes)))
        .min_length(Some(2 * len_bytes))
        .max_length(Some(2 * len_bytes))
        .description(Some(description))
        .build()
}

macro_rules! fixed_hex_schema {
    ($ty:ty, $name:literal, $len:expr, $desc:literal) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                hex_string($len, $desc).into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

fixed_hex_schema!(
    AccountId,
    "AccountId",
    32,
    "An account: the ed25519 public key of its holder, 64 lowercase hex digits."
);
fixed_hex_schema!(
    Hash32,
    "Hash32",
    32,
    "A SHA-256 digest, 64 lowercase hex digits."
);
fixed_hex_schema!(
    Signature,
    "Signature",
    64,
    "An ed25519 signature, 128 lowercase hex digits."
);

impl PartialSchema for OpId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{1,39}$"))
            .description(Some(
                "The signer's idempotency key, a u128 in decimal (a string: JSON numbers lose precision above 2^53).",
            ))
            .build()
            .into()
    }
}

impl ToSchema for OpId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OpId")
    }
}

impl PartialSchema for Bytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^([0-9a-f]{2})*$"))
            .description(Some(
                "Opaque bytes (a reference or memo), lowercase hex; never personal data.",
            ))
            .build()
            .into()
    }
}

impl ToSchema for Bytes {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Bytes")
    }
}

/// The body of `GET /v1/wallets/{account}/history`: a page of receipts, or a proven page
/// (`proofs=true`). `anyOf`, not `oneOf`: a proven entry is also a valid receipt.
pub struct HistoryResponse;

impl PartialSchema for HistoryResponse {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(<Page<Receipt> as PartialSchema>::schema())
            .item(Ref::from_schema_name(ProvenHistory::name()))
            .into()
    }
}

impl ToSchema for HistoryResponse {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("HistoryResponse")
    }

    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        <Page<Receipt> as ToSchema>::schemas(out);
        out.push((ProvenHistory::name().into_owned(), ProvenHistory::schema()));
        <ProvenHistory as ToSchema>::schemas(out);
    }
}

/// The document, as the handlers describe it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "points-ledger",
        description = "A loyalty-points program as a verifiable token ledger. Writes are ed25519-signed ops; private reads are signed requests (see the `points_ed25519` security scheme); checkpoints, proofs and the mall catalog are public. Errors are RFC 9457 problem+json with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::healthz,
        super::openapi_json,
        super::metrics::metrics,
        super::info,
        super::submit,
        super::submit_batch,
        super::wallet,
        super::verifiable::history,
        super::mall::member_orders,
        super::verifiable::latest_checkpoint,
        super::verifiable::new_checkpoint,
        super::verifiable::checkpoint_at,
        super::verifiable::add_cosignature,
        super::verifiable::inclusion,
        super::verifiable::consistency,
        super::verifiable::export_stream,
        super::entries,
        super::entry,
        super::mall::items,
        super::mall::item,
        super::mall::order,
        super::mall::merchant_orders,
        super::mall::statement,
        super::mall::merchant_settlements,
        super::mall::settlement_by_id,
        super::mall::liability,
    ),
    components(schemas(
        super::error::Problem,
        super::mall::StatementFormat,
        crate::mall::OrderStatus,
    )),
    tags(
        (name = "ledger", description = "Identity, health and op submission"),
        (name = "wallets", description = "Balances and histories (holder, auditors, issuer)"),
        (name = "verifiable", description = "Checkpoints, Merkle proofs, export"),
        (name = "mall", description = "The redemption mall"),
        (name = "merchants", description = "Merchant orders, statements and settlements"),
        (name = "audit", description = "Whole-ledger reads (auditors and the issuer)"),
        (name = "operations", description = "Health, metrics and this document"),
        (name = "web", description = "The member center's static files (`crate::web`)"),
    )
)]
pub struct ApiDoc;

/// Adds the security scheme and the errors every operation shares.
struct Common;

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Authorization: Points-Ed25519 key=<64 hex>, ts=<unix ms>, sig=<128 hex>` where sig is the ed25519 signature by `key` over `\"points-ledger/request/v1\\0\" || method || \"\\n\" || path_and_query || \"\\n\" || ts || \"\\n\" || chain_id` (chain_id from `GET /v1/info`). ts must be within ±60 s (configurable) of the server clock and each signature is accepted once. See ledger-spec/api.md §3.",
            ))),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let has_path_params = path.contains('{');
            for op in operations(item) {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_input = has_path_params
                    || op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let r = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    r.entry(status.to_string())
                        .or_insert_with(|| problem(description));
                };
                if has_input {
                    add(
                        "400",
                        "Bad input: `invalid_path`, `invalid_query`, `malformed_body` or `malformed_op`",
                    );
                }
                if secured {
                    add(
                        "401",
                        "`unauthorized`: no Authorization header, a malformed one, a ts outside the window, a signature that does not verify, or a signature used before",
                    );
                    add(
                        "403",
                        "`forbidden`: the signing key may not read this resource",
                    );
                }
                if has_path_params {
                    add(
                        "404",
                        "`not_found` (or a more specific `unknown_*` code): no such resource",
                    );
                }
                add(
                    "500",
                    "`internal`: a storage failure; the detail is logged, not shown",
                );
                add(
                    "503",
                    "`timeout` (the request took longer than the server allows) or `unavailable` (shutting down, or the replay cache is full)",
                );
            }
        }
    }
}

/// Documents the member center's static files, which [`super::router`] merges in.
fn add_web_assets(doc: &mut Document) {
    for asset in crate::web::ASSETS {
        let media = asset.content_type.split(';').next().unwrap_or("").trim();
        let op = OperationBuilder::new()
            .tag("web")
            .summary(Some(format!("The member center's `{}`", asset.file)))
            .response(
                "200",
                ResponseBuilder::new().description("The file").content(
                    media,
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                ),
            )
            .response(
                "304",
                ResponseBuilder::new().description("Not modified (`If-None-Match` matched)"),
            )
            .build();
        doc.paths
            .add_path_operation(asset.path, vec![HttpMethod::Get], op);
    }
}

/// The document for a server with these limits (page sizes are the configured ones).
pub fn document(limits: &Limits) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::loyalty::LoyaltyApi::openapi());
    add_web_assets(&mut doc);
    Common.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for p in op.parameters.iter_mut().flatten() {
                if p.name != "limit" {
                    continue;
                }
                p.description = Some(format!(
                    "Page size, 1 to {} (default {}).",
                    limits.page_limit_max, limits.page_limit_default
                ));
                p.schema = Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Int32,
                        )))
                        .minimum(Some(1))
                        .maximum(Some(limits.page_limit_max as u64))
                        .into(),
                );
            }
        }
    }
    doc
}
