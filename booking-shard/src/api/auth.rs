//! JWT bearer authentication: `sub` is the user; a `roles` claim with `staff` or
//! `admin` grants privileged calls.
//!
//! Keys: an HS256 secret (at least 32 bytes), an RSA public key (RS256), or a JWKS
//! file (RS256 and ES256 keys picked by `kid`, as identity providers publish them).
//! Checked on every token: the signature with the key's own algorithm only, `exp`
//! (required), `nbf`, `iss` and `aud` when configured (then required), and a maximum
//! lifetime (`exp` at most that far ahead, and `exp - iat` at most that long). Why a
//! token was refused goes to the log, never into the answer.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorCode};

/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET: usize = 32;

/// What every token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// Accepted issuers (`iss`); empty: not checked.
    pub issuers: Vec<String>,
    /// Accepted audiences (`aud`); empty: not checked.
    pub audiences: Vec<String>,
    /// The longest a token may live.
    pub max_lifetime: Duration,
    /// Issuers whose `staff`/`admin` roles count; empty: every accepted issuer.
    pub privileged_issuers: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            max_lifetime: Duration::from_secs(24 * 3600),
            privileged_issuers: Vec::new(),
            leeway: Duration::from_secs(5),
        }
    }
}

/// A verification key, the one algorithm it verifies, and the claim rules for it
/// (built once, not per request).
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

impl Key {
    fn new(kid: Option<String>, alg: Algorithm, key: DecodingKey, rules: &TokenRules) -> Self {
        let mut validation = Validation::new(alg);
        validation.leeway = rules.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if rules.issuers.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&rules.issuers);
            required.push("iss");
        }
        if rules.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&rules.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Self {
            kid,
            alg,
            key,
            validation,
        }
    }
}

/// How tokens are verified.
pub struct Auth {
    keys: Vec<Key>,
    rules: TokenRules,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the HS256 secret must be at least {MIN_HS256_SECRET} bytes")]
    ShortSecret,
    #[error("no usable key in the JWKS (RSA for RS256 or P-256 EC for ES256)")]
    EmptyJwks,
    #[error(transparent)]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Auth {
    pub fn hs256(secret: &[u8], rules: TokenRules) -> Result<Self, KeyError> {
        if secret.len() < MIN_HS256_SECRET {
            return Err(KeyError::ShortSecret);
        }
        Ok(Self::single(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            rules,
        ))
    }

    pub fn rs256(public_pem: &[u8], rules: TokenRules) -> Result<Self, KeyError> {
        Ok(Self::single(
            DecodingKey::from_rsa_pem(public_pem)?,
            Algorithm::RS256,
            rules,
        ))
    }

    /// Keys from a JWKS document (`{"keys": [...]}`): RSA keys verify RS256, P-256
    /// keys ES256; other keys are skipped.
    pub fn jwks(document: &[u8], rules: TokenRules) -> Result<Self, KeyError> {
        let set: JwkSet = serde_json::from_slice(document)?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            keys.push(Key::new(
                jwk.common.key_id.clone(),
                alg,
                DecodingKey::from_jwk(jwk)?,
                &rules,
            ));
        }
        if keys.is_empty() {
            return Err(KeyError::EmptyJwks);
        }
        Ok(Self { keys, rules })
    }

    fn single(key: DecodingKey, alg: Algorithm, rules: TokenRules) -> Self {
        Self {
            keys: vec![Key::new(None, alg, key, &rules)],
            rules,
        }
    }

    /// Verifies a token; the error is for the log only.
    pub fn verify(&self, token: &str) -> Result<User, String> {
        let header = decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let key = self
            .keys
            .iter()
            .find(|k| {
                k.alg == header.alg
                    && (k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
            })
            .ok_or_else(|| format!("no key for alg {:?} kid {:?}", header.alg, header.kid))?;
        let data = decode::<Claims>(token, &key.key, &key.validation)
            .map_err(|e| format!("invalid: {e}"))?;
        let claims = data.claims;
        self.check_lifetime(&claims)?;
        if claims.sub.is_empty() || claims.sub.len() > 256 {
            return Err("subject empty or longer than 256 bytes".into());
        }
        let privileged = self.rules.privileged_issuers.is_empty()
            || claims
                .iss
                .as_deref()
                .is_some_and(|iss| self.rules.privileged_issuers.iter().any(|p| p == iss));
        let roles: HashSet<&str> = claims.roles.iter().map(String::as_str).collect();
        Ok(User {
            id: claims.sub,
            staff: privileged && (roles.contains("staff") || roles.contains("admin")),
        })
    }

    fn check_lifetime(&self, claims: &Claims) -> Result<(), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let max = self.rules.max_lifetime.as_secs();
        let leeway = self.rules.leeway.as_secs();
        if claims.exp > now.saturating_add(max).saturating_add(leeway) {
            return Err(format!("expires more than {max} s from now"));
        }
        if let Some(iat) = claims.iat {
            if iat > now.saturating_add(leeway) {
                return Err("issued in the future".into());
            }
            if claims.exp.saturating_sub(iat) > max {
                return Err(format!("lives longer than {max} s"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub staff: bool,
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "a valid bearer token is required",
    )
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(unauthorized)?;
        state.auth.verify(token.trim()).map_err(|why| {
            tracing::info!(reason = %why, "token refused");
            unauthorized()
        })
    }
}

/// A caller with the staff or admin role.
pub struct Staff(pub User);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = User::from_request_parts(parts, state).await?;
        if !user.staff {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "staff role required",
            ));
        }
        Ok(Staff(user))
    }
}

#[cfg(test)]
mod tests;
