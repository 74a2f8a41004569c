//! The OpenAPI document (`/openapi.json`) describes the router exactly: every route the
//! router serves is documented, nothing else is, every operation documents its errors as
//! problem+json, and the problem schema lists every code.

mod common;

use std::collections::BTreeSet;

use common::*;
use points_ledger::api::error::all_codes;
use points_ledger::api::{openapi, route_table, Limits};
use serde_json::Value;

fn document() -> Value {
    serde_json::to_value(openapi::document(&Limits::default())).expect("the document is JSON")
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn every_route_of_the_router_is_documented_and_nothing_else() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = operations(&doc);
    let routed: BTreeSet<(String, String)> = route_table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&routed).collect();
    assert!(phantom.is_empty(), "documented but not routed: {phantom:?}");
}

#[test]
fn every_operation_documents_its_errors_as_problems() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().expect("responses");
            assert!(responses.contains_key("200"), "{method} {path}");
            for status in ["500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            if secured {
                for status in ["401", "403"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_problem_schema_lists_every_code_and_the_scheme_is_described() {
    let doc = document();
    let codes: BTreeSet<&str> = doc["components"]["schemas"]["Problem"]["properties"]["code"]
        ["enum"]
        .as_array()
        .expect("code enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = all_codes().collect();
    assert_eq!(codes, expected);
    let scheme = &doc["components"]["securitySchemes"][openapi::SECURITY_SCHEME];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "Authorization");
    assert!(scheme["description"]
        .as_str()
        .unwrap()
        .contains("points-ledger/request/v1"));
}

#[test]
fn private_routes_require_the_scheme_and_public_ones_do_not() {
    let doc = document();
    let public: BTreeSet<&str> = [
        "/healthz",
        "/openapi.json",
        "/v1/info",
        "/v1/ops",
        "/v1/ops/batch",
        "/v1/checkpoint",
        "/v1/checkpoints/{size}",
        "/v1/checkpoints/{size}/cosignatures",
        "/v1/proofs/inclusion",
        "/v1/proofs/consistency",
        "/v1/mall/items",
        "/v1/mall/items/{id}",
    ]
    .into_iter()
    .chain(points_ledger::web::ASSETS.iter().map(|a| a.path))
    .collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            assert_eq!(
                secured,
                !public.contains(path.as_str()),
                "{method} {path}: security {:?}",
                op.get("security")
            );
        }
    }
}

#[tokio::test]
async fn the_server_serves_the_document_with_its_configured_limits() {
    let srv = TestServer::start().await;
    let resp = srv.http.get(srv.at("/openapi.json")).send().await.unwrap();
    assert_eq!(
        resp.headers()[reqwest::header::CONTENT_TYPE],
        "application/json"
    );
    let served: Value = expect_json(resp).await;
    let mut expected = document();
    expected["info"]["version"] = served["info"]["version"].clone();
    assert_eq!(served, expected);
    let limit = served["paths"]["/v1/entries"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("a limit parameter");
    assert_eq!(limit["schema"]["maximum"], 1000);
}
