//! Mints an HS256 JWT for trying the API locally:
//! `mint-token --secret-file <file> --sub alice [--roles staff] [--ttl 3600]`
//! (or `--secret <secret>`, or `BOXOFFICE_JWT_SECRET`).

use clap::Parser;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Mint an HS256 JWT for the booking shard (development and demos)")]
struct Args {
    /// The shard's HS256 secret.
    #[arg(
        long,
        env = "BOXOFFICE_JWT_SECRET",
        hide_env_values = true,
        required_unless_present = "secret_file"
    )]
    secret: Option<String>,
    /// A file holding the shard's HS256 secret (what `--jwt-secret-file` reads).
    #[arg(long, conflicts_with = "secret")]
    secret_file: Option<std::path::PathBuf>,
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
    let secret = match (&args.secret, &args.secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(s) => s.trim().to_string(),
            Err(e) => {
                eprintln!("mint-token: reading {}: {e}", path.display());
                return std::process::ExitCode::FAILURE;
            }
        },
        (None, None) => unreachable!("clap requires one of them"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({"sub": args.sub, "roles": args.roles, "iat": now, "exp": now + args.ttl});
    match encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
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
