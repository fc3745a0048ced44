//! `spec.payments`: how a Show confirms bookings (docs/architecture.md, "A booking's
//! life").

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::rules;
use crate::show::SecretKeyRef;

/// Who may turn a hold into a booking.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum PaymentMode {
    /// Free events: the user confirms their hold.
    #[default]
    None,
    /// A payment provider's signed callback confirms (`POST
    /// /v1/shows/{show}/payments/{provider}/callback`).
    Provider,
    /// A service holding a token with the `payments` role confirms (a cash desk, an
    /// external checkout).
    TrustedService,
}

/// How the Show takes payments.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(rules::PROVIDER_NEEDS_SECRET)
    .message("payments.mode provider needs payments.provider and payments.providerSecretRef")
    .field_path(".providerSecretRef"))]
pub struct PaymentPolicy {
    /// provider, trustedService or none (the default: free events).
    #[serde(default)]
    pub mode: PaymentMode,
    /// The provider's name in the callback path (mode provider), e.g. `sim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub provider: Option<String>,
    /// The Secret key holding the provider's callback signing secret (mode provider);
    /// the shard reads it as a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_secret_ref: Option<SecretKeyRef>,
    /// How long a checkout keeps the seats while the payment runs (Go duration, 1m to
    /// 1h).
    #[serde(default = "default_window")]
    #[schemars(
        length(min = 2, max = 16),
        regex(pattern = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$")
    )]
    #[x_kube(validation = Rule::new(rules::PAYMENT_WINDOW_BOUNDS)
        .message("payments.window must be between 1m and 1h"))]
    pub window: String,
    /// How far a callback's signed timestamp may be from the shard's clock (Go
    /// duration, 10s to 10m); older callbacks are refused as replays.
    #[serde(default = "default_tolerance")]
    #[schemars(
        length(min = 2, max = 16),
        regex(pattern = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$")
    )]
    #[x_kube(validation = Rule::new(rules::PAYMENT_TOLERANCE_BOUNDS)
        .message("payments.tolerance must be between 10s and 10m"))]
    pub tolerance: String,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        Self {
            mode: PaymentMode::None,
            provider: None,
            provider_secret_ref: None,
            window: default_window(),
            tolerance: default_tolerance(),
        }
    }
}

fn default_window() -> String {
    "15m".into()
}

fn default_tolerance() -> String {
    "5m".into()
}
