//! The version documents and the OpenAPI document.

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::json_response;
use crate::config::Config;

/// The OpenAPI document, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");
const UPDATED: &str = "2025-01-01T00:00:00Z";

/// The base of the links: `[api] public_endpoint` when set (what keystonemiddleware-fronted
/// services call their public endpoint); else the request's own `Host` (and
/// `X-Forwarded-Proto`), which a client controls, so deployments behind a proxy should set it.
fn base_url(headers: &HeaderMap, config: &Config) -> String {
    if let Some(public) = &config.public_endpoint {
        return public.clone();
    }
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost:4224");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

fn version_object(base: &str) -> Value {
    json!({
        "id": "v1.0",
        "status": "CURRENT",
        "updated": UPDATED,
        "links": [
            {"rel": "self", "href": format!("{base}/v1/")},
            {"rel": "describedby", "type": "application/vnd.oai.openapi+json;version=3.0",
             "href": format!("{base}/v1/openapi.json")}
        ],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.guest-agent+json;version=1"}]
    })
}

pub(super) fn versions(headers: &HeaderMap, config: &Config) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({"versions": [version_object(&base_url(headers, config))]}),
    )
}

pub(super) fn version(headers: &HeaderMap, config: &Config) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({"version": version_object(&base_url(headers, config))}),
    )
}
