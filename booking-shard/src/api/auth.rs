//! JWT bearer authentication: `sub` is the user; a `roles` claim with `staff` or
//! `admin` grants privileged calls. HS256 with a shared secret or RS256 with a public key.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;

/// How tokens are verified.
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
}

impl Auth {
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    pub fn rs256(public_pem: &[u8]) -> anyhow::Result<Self> {
        Ok(Self::with(
            DecodingKey::from_rsa_pem(public_pem)?,
            Algorithm::RS256,
        ))
    }

    fn with(key: DecodingKey, alg: Algorithm) -> Self {
        let mut validation = Validation::new(alg);
        validation.validate_aud = false;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { key, validation }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub staff: bool,
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("expected Authorization: Bearer <token>"))?;
        let data = decode::<Claims>(token, &state.auth.key, &state.auth.validation)
            .map_err(|e| unauthorized(&format!("invalid token: {e}")))?;
        if data.claims.sub.is_empty() || data.claims.sub.len() > 256 {
            return Err(unauthorized("invalid subject"));
        }
        let staff = data
            .claims
            .roles
            .iter()
            .any(|r| r == "staff" || r == "admin");
        Ok(User {
            id: data.claims.sub,
            staff,
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
                "forbidden",
                "staff role required",
            ));
        }
        Ok(Staff(user))
    }
}
