//! The member center (会员中心): the static page at `/` with which a member signs in with a
//! key, sees their wallet, history and orders, shops in the mall and transfers points, and
//! a merchant sees orders to fulfill and the draft statement. Documented in
//! `docs/README-web.md`.
//!
//! The page verifies the member's history on the member's own device (entry bytes, hashes,
//! op signatures, inclusion proofs, the checkpoint's signed note under a pinned key,
//! consistency with the last checkpoint seen), and signs ops and read requests there: the
//! key never leaves the browser. Its files live in `web/` as plain HTML, CSS and JavaScript
//! modules with no build step, and are embedded in the binary here, so nothing is fetched
//! at run time from anywhere but this server.
//!
//! Every asset is served with its content type, a strict Content-Security-Policy (only this
//! origin; no inline script or style; Trusted Types with no policy, so the page cannot turn
//! strings into markup), `nosniff`, no referrer, no framing, and an `ETag` so browsers
//! revalidate instead of keeping a stale page after an upgrade.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// The Content-Security-Policy of every page asset.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; \
     form-action 'none'; frame-ancestors 'none'; base-uri 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file of `web/`.
#[derive(Debug)]
pub struct Asset {
    /// The URL path it is served at.
    pub path: &'static str,
    /// Its file name in `web/`.
    pub file: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $ct:expr) => {
        Asset {
            path: $path,
            file: $file,
            content_type: $ct,
            body: include_bytes!(concat!("../web/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page, by URL path.
pub const ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/style.css", "style.css", "text/css; charset=utf-8"),
    asset!("/favicon.svg", "favicon.svg", "image/svg+xml"),
    asset!("/app.js", "app.js", JS),
    asset!("/api.js", "api.js", JS),
    asset!("/bytes.js", "bytes.js", JS),
    asset!("/codec.js", "codec.js", JS),
    asset!("/crypto.js", "crypto.js", JS),
    asset!("/i18n.js", "i18n.js", JS),
    asset!("/merkle.js", "merkle.js", JS),
    asset!("/note.js", "note.js", JS),
    asset!("/ui.js", "ui.js", JS),
    asset!("/verify.js", "verify.js", JS),
];

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12])))
            .collect()
    })
}

/// The response for asset `index` of [`ASSETS`], honouring `If-None-Match`.
pub fn asset_response(index: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    response
}

/// The page's routes for any router state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS
        .iter()
        .enumerate()
        .fold(Router::new(), |r, (i, asset)| {
            r.route(
                asset.path,
                get(move |headers: HeaderMap| async move { asset_response(i, &headers) }),
            )
        })
}

/// The page's routes, merged into [`crate::api::router`].
pub fn routes() -> Router<crate::api::AppState> {
    router()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(t) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_policy() {
        for asset in ASSETS {
            let resp = get(asset.path, None).await;
            assert_eq!(resp.status(), StatusCode::OK, "{}", asset.path);
            let h = resp.headers();
            assert_eq!(h[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let etag = h[header::ETAG].to_str().expect("ascii").to_string();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .expect("body");
            assert_eq!(&body[..], asset.body);
            let again = get(asset.path, Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{}", asset.path);
        }
        assert_eq!(get("/nope.js", None).await.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_policy_allows_only_this_origin() {
        for directive in CONTENT_SECURITY_POLICY.split(';') {
            let d = directive.trim();
            assert!(
                !d.contains("unsafe") && !d.contains("http") && !d.contains('*'),
                "{d}"
            );
        }
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'"));
    }

    fn asset(path: &str) -> Option<&'static Asset> {
        ASSETS.iter().find(|a| a.path == path)
    }

    /// Every module import and every `src`/`href` of the page names an embedded asset, so
    /// the page never asks for a file the binary does not have.
    #[test]
    fn every_reference_is_embedded() {
        let mut checked = 0;
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).expect("UTF-8 asset");
            let mut rest = text;
            while let Some(i) = rest.find("from './") {
                let tail = &rest[i + "from './".len()..];
                let end = tail.find('\'').expect("closing quote");
                let path = format!("/{}", &tail[..end]);
                assert!(asset(&path).is_some(), "{} imports {path}", a.file);
                checked += 1;
                rest = &tail[end..];
            }
            for attr in ["src=\"", "href=\""] {
                let mut rest = text;
                while let Some(i) = rest.find(attr) {
                    let tail = &rest[i + attr.len()..];
                    let end = tail.find('"').expect("closing quote");
                    let target = &tail[..end];
                    if target.starts_with('/') {
                        assert!(asset(target).is_some(), "{} refers to {target}", a.file);
                        checked += 1;
                    } else {
                        assert!(
                            target.starts_with('#') || target.is_empty(),
                            "{} refers to {target} outside this origin",
                            a.file
                        );
                    }
                    rest = &tail[end..];
                }
            }
        }
        assert!(checked > 10, "{checked} references checked");
    }
}
