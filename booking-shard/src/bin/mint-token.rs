//! Mints an HS256 JWT for trying the API locally:
//! `mint-token --secret <secret> --sub alice [--roles staff] [--ttl 3600]`.

use clap::Parser;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Mint an HS256 JWT for the booking shard (development and demos)")]
struct Args {
    /// The shard's HS256 secret.
    #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// The user (JWT `sub`).
    #[arg(long)]
    sub: String,
    /// Roles, comma-separated (staff, admin).
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({"sub": args.sub, "roles": args.roles, "iat": now, "exp": now + args.ttl});
    match encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(args.secret.as_bytes()),
    ) {
        Ok(token) => {
            println!("{token}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mint-token: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
