//! Keystone, natively, the way keystonemiddleware does it: the service's own token
//! (password method, re-authenticated before expiry or on 401), validation of callers'
//! tokens with `GET /v3/auth/tokens`, and a validation cache keyed by SHA-256 of the token
//! (never the token itself) kept until the earlier of the token's expiry and
//! `token_cache_time`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::catalog::Service;
use crate::config::{KeystoneConfig, Secret};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, OutboundError};
use crate::timefmt::parse_timestamp;

/// Cache entries kept at most (a full cache is purged of expired entries, then cleared).
const CACHE_CAPACITY: usize = 100_000;
/// The service token is renewed when less than this is left.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// A cached validation: valid until the instant.
/// Until when, and what Keystone said: the token's facts, or `None` for a rejection.
type CacheEntry = (Instant, Option<Arc<TokenInfo>>);

/// One validation shared by every request that presents the same token while it runs.
type Pending = Arc<tokio::sync::OnceCell<Result<Arc<TokenInfo>, ApiError>>>;

/// Validations running against Keystone at once; more wait (up to the outbound timeout).
const MAX_VALIDATIONS: usize = 32;

/// Whether `token` could be a Keystone token at all: Fernet tokens are URL-safe base64 of
/// 150-250 characters, JWS tokens three base64url parts joined by dots. Anything else (empty,
/// huge, spaces, quotes...) is refused without asking Keystone.
fn plausible(token: &str) -> bool {
    (16..=8192).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.'))
}

/// What a validated token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub user_name: String,
    /// The project the token is scoped to, if project-scoped.
    pub project_id: Option<String>,
    /// True for a system-scoped token.
    pub system: bool,
    /// Role names (implied roles included).
    pub roles: Vec<String>,
    /// When the token expires.
    pub expires_at: SystemTime,
    /// The first audit id: names the token in logs without revealing it.
    pub audit_id: String,
}

impl TokenInfo {
    /// Whether the token holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The service's own token and what came with it.
#[derive(Debug)]
pub struct ServiceToken {
    /// The token.
    pub token: Secret,
    /// When to renew it.
    renew_at: Instant,
    /// The service project's catalog.
    pub catalog: Vec<Service>,
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenFields,
}

#[derive(Deserialize)]
struct TokenFields {
    expires_at: String,
    #[serde(default)]
    user: Option<Named>,
    #[serde(default)]
    project: Option<Named>,
    #[serde(default)]
    system: Option<serde_json::Value>,
    #[serde(default)]
    roles: Vec<Named>,
    #[serde(default)]
    audit_ids: Vec<String>,
    #[serde(default)]
    catalog: Vec<Service>,
}

#[derive(Deserialize)]
struct Named {
    id: String,
    #[serde(default)]
    name: String,
}

fn parse_token(body: &[u8]) -> Result<(TokenInfo, Vec<Service>), String> {
    let b: TokenBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let t = b.token;
    let expires_at = parse_timestamp(&t.expires_at)
        .ok_or_else(|| format!("bad expires_at {:?}", t.expires_at))?;
    let user = t.user.ok_or("no user in the token")?;
    let system = t
        .system
        .as_ref()
        .and_then(|s| s.get("all"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    Ok((
        TokenInfo {
            user_id: user.id,
            user_name: user.name,
            project_id: t.project.map(|p| p.id),
            system,
            roles: t.roles.into_iter().map(|r| r.name).collect(),
            expires_at,
            audit_id: t.audit_ids.into_iter().next().unwrap_or_default(),
        },
        t.catalog,
    ))
}

/// Keystone for one configuration.
#[derive(Debug)]
pub struct Keystone {
    cfg: KeystoneConfig,
    http: Outbound,
    timeout: Duration,
    metrics: Arc<Metrics>,
    current: Mutex<Option<Arc<ServiceToken>>>,
    renewing: tokio::sync::Mutex<()>,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    pending: Mutex<HashMap<[u8; 32], Pending>>,
    validations: tokio::sync::Semaphore,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::Unavailable("The Keystone service is temporarily unavailable.".into())
}

impl Keystone {
    /// Keystone as configured; nothing is sent until the first request.
    pub fn new(
        cfg: KeystoneConfig,
        http: Outbound,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cfg,
            http,
            timeout,
            metrics,
            current: Mutex::new(None),
            renewing: tokio::sync::Mutex::new(()),
            cache: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            validations: tokio::sync::Semaphore::new(MAX_VALIDATIONS),
        }
    }

    /// The `WWW-Authenticate` value of our 401s.
    pub fn www_authenticate(&self) -> String {
        format!("Keystone uri=\"{}\"", self.cfg.www_authenticate_uri)
    }

    fn count(&self, kind: &str, result: &str) {
        self.metrics.inc(
            "nova_guest_api_upstream_requests_total",
            format!("service=\"keystone\",call=\"{kind}\",result=\"{result}\""),
        );
    }

    /// The service token, renewed when it is close to expiry.
    ///
    /// # Errors
    ///
    /// 503 when Keystone is unreachable or refuses our credentials.
    pub async fn service_token(&self) -> Result<Arc<ServiceToken>, ApiError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _renewing = self.renewing.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let token = Arc::new(self.authenticate().await?);
        if let Ok(mut c) = self.current.lock() {
            *c = Some(token.clone());
        }
        Ok(token)
    }

    fn fresh(&self) -> Option<Arc<ServiceToken>> {
        let c = self.current.lock().ok()?;
        c.as_ref().filter(|t| Instant::now() < t.renew_at).cloned()
    }

    /// Drops `stale` (an upstream answered 401 to it) so the next call re-authenticates.
    pub fn invalidate(&self, stale: &Arc<ServiceToken>) {
        if let Ok(mut c) = self.current.lock()
            && c.as_ref().is_some_and(|t| Arc::ptr_eq(t, stale))
        {
            *c = None;
        }
    }

    async fn authenticate(&self) -> Result<ServiceToken, ApiError> {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.cfg.username,
                "domain": {"name": self.cfg.user_domain_name},
                "password": self.cfg.password.expose()}}},
            "scope": {"project": {"name": self.cfg.project_name,
                                  "domain": {"name": self.cfg.project_domain_name}}}}});
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/auth/tokens", self.cfg.auth_url))
            .header("content-type", "application/json")
            .header("user-agent", crate::USER_AGENT)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| unavailable("bad Keystone auth_url", e))?;
        let reply = match self.http.send(request, self.timeout).await {
            Ok(r) => r,
            Err(e) => {
                self.count("authenticate", "error");
                return Err(unavailable("cannot reach Keystone to authenticate", e));
            }
        };
        if reply.status != StatusCode::CREATED && reply.status != StatusCode::OK {
            self.count("authenticate", reply.status.as_str());
            return Err(unavailable(
                "Keystone refused the service credentials",
                format!("status {}", reply.status),
            ));
        }
        self.count("authenticate", "ok");
        let token = reply
            .headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unavailable("Keystone authentication", "no X-Subject-Token"))?
            .to_owned();
        let (info, catalog) =
            parse_token(&reply.body).map_err(|e| unavailable("Keystone authentication", e))?;
        let left = info
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        // Renew with two minutes (or a tenth of a short lifetime) to spare.
        let margin = RENEW_BEFORE.min(left / 10);
        tracing::info!(
            user = %self.cfg.username,
            project = %self.cfg.project_name,
            expires_in = ?left,
            "service token obtained"
        );
        Ok(ServiceToken {
            token: Secret::new(token),
            renew_at: Instant::now() + left.saturating_sub(margin),
            catalog,
        })
    }

    /// Validates a caller's token: `GET /v3/auth/tokens` with our service token, as
    /// keystonemiddleware does. What Keystone answers is cached by SHA-256 of the token (the
    /// token itself is never kept): acceptances until the earlier of the token's expiry and
    /// `token_cache_time`, rejections for `token_cache_time` (a rejected token never becomes
    /// valid; keystonemiddleware caches them the same way). Requests presenting one token
    /// while it is being validated share that one call, at most 32 validations run at once,
    /// and a string that cannot be a token is refused without a call.
    ///
    /// # Errors
    ///
    /// [`ApiError::Unauthorized`] for a token Keystone does not accept, 503 when Keystone
    /// cannot answer.
    pub async fn validate(&self, token: &str) -> Result<Arc<TokenInfo>, ApiError> {
        if !plausible(token) {
            self.metrics.inc(
                "nova_guest_api_token_cache_total",
                "result=\"malformed\"".into(),
            );
            return Err(ApiError::Unauthorized);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).filter(|(until, _)| now < *until).cloned());
        match cached {
            Some((_, Some(info))) if SystemTime::now() < info.expires_at => {
                self.metrics
                    .inc("nova_guest_api_token_cache_total", "result=\"hit\"".into());
                return Ok(info);
            }
            Some((_, None)) => {
                self.metrics.inc(
                    "nova_guest_api_token_cache_total",
                    "result=\"rejected\"".into(),
                );
                return Err(ApiError::Unauthorized);
            }
            _ => {}
        }
        self.metrics
            .inc("nova_guest_api_token_cache_total", "result=\"miss\"".into());
        let pending = match self.pending.lock() {
            Ok(mut p) => p.entry(key).or_default().clone(),
            Err(_) => Pending::default(),
        };
        let result = pending
            .get_or_init(|| async {
                let result = self.validate_remote(token).await;
                self.remember(key, &result);
                result
            })
            .await
            .clone();
        if let Ok(mut p) = self.pending.lock()
            && p.get(&key).is_some_and(|q| Arc::ptr_eq(q, &pending))
        {
            p.remove(&key);
        }
        result
    }

    /// Caches Keystone's answer (not an outage: a 503 is asked again next time).
    fn remember(&self, key: [u8; 32], result: &Result<Arc<TokenInfo>, ApiError>) {
        let now = Instant::now();
        let ttl = match result {
            Ok(info) => self.cfg.token_cache_time.min(
                info.expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default(),
            ),
            Err(ApiError::Unauthorized) => self.cfg.token_cache_time,
            Err(_) => return,
        };
        if ttl.is_zero() {
            return;
        }
        let Ok(mut c) = self.cache.lock() else {
            return;
        };
        if c.len() >= CACHE_CAPACITY {
            c.retain(|_, (until, _)| now < *until);
            if c.len() >= CACHE_CAPACITY {
                c.clear();
            }
        }
        c.insert(key, (now + ttl, result.as_ref().ok().cloned()));
    }

    /// One validation call to Keystone (with a renewal of our own token on 401).
    async fn validate_remote(&self, token: &str) -> Result<Arc<TokenInfo>, ApiError> {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.timeout, self.validations.acquire()).await
        else {
            return Err(unavailable(
                "too many token validations waiting for Keystone",
                "validation queue full",
            ));
        };
        let mut retried = false;
        let info = loop {
            let service = self.service_token().await?;
            let request = Request::builder()
                .method(Method::GET)
                .uri(format!("{}/auth/tokens?nocatalog", self.cfg.auth_url))
                .header("x-auth-token", service.token.expose())
                .header("x-subject-token", token)
                .header("user-agent", crate::USER_AGENT)
                .body(Full::new(Bytes::new()))
                .map_err(|_| ApiError::Unauthorized)?;
            let reply = match self.http.send(request, self.timeout).await {
                Ok(r) => r,
                Err(e @ (OutboundError::Timeout(_) | OutboundError::Connect(_))) => {
                    self.count("validate", "error");
                    return Err(unavailable("cannot reach Keystone to validate a token", e));
                }
                Err(e) => {
                    self.count("validate", "error");
                    return Err(unavailable("Keystone validation failed", e));
                }
            };
            self.count("validate", reply.status.as_str());
            match reply.status {
                StatusCode::OK => match parse_token(&reply.body) {
                    Ok((info, _)) => break info,
                    Err(e) => return Err(unavailable("Keystone's token body", e)),
                },
                // The caller's token is garbage, expired or revoked.
                StatusCode::NOT_FOUND => return Err(ApiError::Unauthorized),
                // Our own token is no longer accepted: renew once.
                StatusCode::UNAUTHORIZED if !retried => {
                    retried = true;
                    self.invalidate(&service);
                }
                StatusCode::FORBIDDEN => {
                    return Err(unavailable(
                        "Keystone refused the validation: the service user needs the \
                         `service` role",
                        "403",
                    ));
                }
                status => {
                    return Err(unavailable(
                        "Keystone validation failed",
                        format!("status {status}"),
                    ));
                }
            }
        };
        let left = info
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if left.is_zero() {
            return Err(ApiError::Unauthorized);
        }
        Ok(Arc::new(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_body_project_and_system() {
        let body = br#"{"token": {"methods": ["password"],
            "user": {"domain": {"id": "default"}, "id": "u1", "name": "alice"},
            "project": {"domain": {"id": "default"}, "id": "p1", "name": "alpha"},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
            "expires_at": "2026-11-22T13:01:22.000000Z", "audit_ids": ["wBS4f3VSTZC5AnUEZL4p_g"],
            "catalog": [{"type": "compute", "endpoints": [{"interface": "internal", "url": "x"}]}]}}"#;
        let (info, catalog) = parse_token(body).unwrap();
        assert_eq!(info.project_id.as_deref(), Some("p1"));
        assert!(info.has_role("member") && info.has_role("reader") && !info.has_role("admin"));
        assert!(!info.system);
        assert_eq!(info.audit_id, "wBS4f3VSTZC5AnUEZL4p_g");
        assert_eq!(catalog.len(), 1);
        let sys = br#"{"token": {"user": {"id": "a", "name": "admin"}, "system": {"all": true},
            "roles": [{"id": "x", "name": "admin"}], "expires_at": "2026-01-01T00:00:00Z"}}"#;
        let (info, _) = parse_token(sys).unwrap();
        assert!(info.system && info.project_id.is_none());
        assert!(parse_token(br#"{"token": {"expires_at": "never"}}"#).is_err());
    }
}
