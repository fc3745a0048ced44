//! A payment provider simulator: signs a callback exactly as a provider does
//! (`Boxoffice-Signature: t=<unix s>,v1=<hex HMAC-SHA256 over "t.body">`) and posts it to
//! the show's callback endpoint; prints the answer's status and body.
//!
//! `pay-sim --api http://localhost:8080/v1/shows/club --provider sim --secret-file S \
//!    --intent pi_<hold> --amount 2100 --currency EUR [--type payment.succeeded]`

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Sign and send a payment provider callback to a booking shard")]
struct Args {
    /// The show's API base, e.g. http://localhost:8080/v1/shows/club.
    #[arg(long)]
    api: String,
    /// The provider's name (`spec.payments.provider`).
    #[arg(long, default_value = "sim")]
    provider: String,
    /// File holding the provider's signing secret.
    #[arg(long)]
    secret_file: std::path::PathBuf,
    /// The payment intent (from the checkout).
    #[arg(long)]
    intent: String,
    /// The amount paid, in minor units (the checkout's `amountMinor`).
    #[arg(long)]
    amount: i64,
    #[arg(long)]
    currency: String,
    /// payment.succeeded, payment.failed or refund.succeeded.
    #[arg(long = "type", default_value = "payment.succeeded")]
    kind: String,
    /// The event id (a replay sends the same one); default: a new one.
    #[arg(long)]
    event: Option<String>,
    /// The provider's payment id.
    #[arg(long)]
    payment: Option<String>,
    /// Sign with this Unix time instead of now (to try the tolerance window).
    #[arg(long)]
    timestamp: Option<i64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let secret = match std::fs::read_to_string(&args.secret_file) {
        Ok(s) => s.trim().to_string(),
        Err(e) => {
            eprintln!("reading {}: {e}", args.secret_file.display());
            return std::process::ExitCode::FAILURE;
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let event = args
        .event
        .unwrap_or_else(|| format!("evt_{:x}", rand::random::<u64>()));
    let body = json!({
        "id": event,
        "type": args.kind,
        "intent": args.intent,
        "amountMinor": args.amount,
        "currency": args.currency,
        "payment": args.payment.unwrap_or_else(|| format!("pay_{event}")),
    })
    .to_string();
    let t = args.timestamp.unwrap_or(now);
    let header = booking_shard::payments::sign(secret.as_bytes(), t, body.as_bytes());
    let url = format!(
        "{}/payments/{}/callback",
        args.api.trim_end_matches('/'),
        args.provider
    );
    let sent = reqwest::Client::new()
        .post(&url)
        .header(booking_shard::payments::signature::HEADER, header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            println!("{} {text}", status.as_u16());
            if status.is_success() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("POST {url}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
