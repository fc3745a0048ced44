//! How boxoffice reaches etcd and PostgreSQL: TLS with a private CA, client
//! certificates, and etcd user auth, all configured from files.
//!
//! The shard and the operator flatten the same [`EtcdAccess`] and [`DatabaseTls`] flags,
//! so both binaries take the same options under the same env vars ([`env`]); the
//! operator points shard pods at Secrets mounted as files through those names. Secrets
//! are read from files only, never from a flag's value, and never appear in an error.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The env vars of the flags below: the contract between the operator's pod builder and
/// the shard.
pub mod env {
    pub const ETCD_CA_FILE: &str = "BOXOFFICE_ETCD_CA_FILE";
    pub const ETCD_CERT_FILE: &str = "BOXOFFICE_ETCD_CERT_FILE";
    pub const ETCD_KEY_FILE: &str = "BOXOFFICE_ETCD_KEY_FILE";
    pub const ETCD_USER: &str = "BOXOFFICE_ETCD_USER";
    pub const ETCD_PASSWORD_FILE: &str = "BOXOFFICE_ETCD_PASSWORD_FILE";
    pub const DATABASE_CA_FILE: &str = "BOXOFFICE_DATABASE_CA_FILE";
    pub const DATABASE_CERT_FILE: &str = "BOXOFFICE_DATABASE_CERT_FILE";
    pub const DATABASE_KEY_FILE: &str = "BOXOFFICE_DATABASE_KEY_FILE";
}

/// Why a connection could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{flag} {}: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag} {}: {what}", path.display())]
    BadFile {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
}

type Result<T, E = TransportError> = std::result::Result<T, E>;

/// TLS and user auth for etcd.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EtcdAccess {
    /// PEM file with the CA certificate(s) that sign etcd's serving certificate. With
    /// https:// endpoints and no CA file, the system's roots are trusted.
    #[arg(long, env = env::ETCD_CA_FILE)]
    pub etcd_ca_file: Option<PathBuf>,

    /// PEM client certificate presented to etcd (for etcd's --client-cert-auth).
    #[arg(long, env = env::ETCD_CERT_FILE, requires = "etcd_key_file")]
    pub etcd_cert_file: Option<PathBuf>,

    /// PEM private key of --etcd-cert-file.
    #[arg(long, env = env::ETCD_KEY_FILE, requires = "etcd_cert_file")]
    pub etcd_key_file: Option<PathBuf>,

    /// etcd user name (etcd auth); its password comes from --etcd-password-file.
    #[arg(long, env = env::ETCD_USER, requires = "etcd_password_file")]
    pub etcd_user: Option<String>,

    /// File holding the etcd user's password (a trailing newline is ignored).
    #[arg(long, env = env::ETCD_PASSWORD_FILE, requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
}

impl EtcdAccess {
    /// Whether TLS or credentials are configured.
    pub fn is_secured(&self) -> bool {
        self.etcd_ca_file.is_some() || self.etcd_cert_file.is_some() || self.etcd_user.is_some()
    }

    /// Adds TLS and credentials for `endpoints` to `options`. Files are read now, so a
    /// missing or unreadable one is reported at start, naming its flag.
    pub fn apply(&self, endpoints: &[String], options: ConnectOptions) -> Result<ConnectOptions> {
        let https = endpoints
            .iter()
            .filter(|e| e.starts_with("https://"))
            .count();
        let files = self.etcd_ca_file.is_some() || self.etcd_cert_file.is_some();
        if https > 0 && https < endpoints.len() {
            return Err(TransportError::Invalid(
                "etcd endpoints mix https:// and plain ones".into(),
            ));
        }
        if files && let Some(plain) = endpoints.iter().find(|e| e.starts_with("http://")) {
            return Err(TransportError::Invalid(format!(
                "--etcd-ca-file/--etcd-cert-file need https:// etcd endpoints, not {plain}"
            )));
        }
        let mut options = options;
        if https > 0 || files {
            let mut tls = TlsOptions::new();
            tls = match &self.etcd_ca_file {
                Some(path) => {
                    tls.ca_certificate(Certificate::from_pem(certificates("--etcd-ca-file", path)?))
                }
                None => tls.with_native_roots(),
            };
            if let (Some(cert), Some(key)) = (&self.etcd_cert_file, &self.etcd_key_file) {
                tls = tls.identity(Identity::from_pem(
                    certificates("--etcd-cert-file", cert)?,
                    private_key("--etcd-key-file", key)?,
                ));
            }
            options = options.with_tls(tls);
        }
        if let (Some(user), Some(path)) = (&self.etcd_user, &self.etcd_password_file) {
            let password = secret("--etcd-password-file", path)?;
            // etcd's tokens expire (5 min by default without use): sign in again then.
            options = options
                .with_user(user.clone(), password)
                .with_auto_token_refresh(true);
        }
        Ok(options)
    }
}

/// TLS for PostgreSQL, on top of what the database URL says.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DatabaseTls {
    /// PEM file with the CA certificate(s) of PostgreSQL's server certificate. Setting it
    /// means sslmode=verify-full: TLS is required and the certificate must name the host.
    #[arg(long, env = env::DATABASE_CA_FILE)]
    pub database_ca_file: Option<PathBuf>,

    /// PEM client certificate presented to PostgreSQL (pg_hba.conf `cert` or
    /// `clientcert=verify-full`).
    #[arg(long, env = env::DATABASE_CERT_FILE, requires = "database_key_file")]
    pub database_cert_file: Option<PathBuf>,

    /// PEM private key of --database-cert-file.
    #[arg(long, env = env::DATABASE_KEY_FILE, requires = "database_cert_file")]
    pub database_key_file: Option<PathBuf>,
}

impl DatabaseTls {
    /// Connection options from `url` (which also may set sslmode, sslrootcert, sslcert and
    /// sslkey) and these files. The URL never appears in an error: it may hold a password.
    /// The files are checked now and read by each new connection, so renewed
    /// certificates are picked up without a restart.
    pub fn connect_options(&self, url: &str) -> Result<PgConnectOptions> {
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            TransportError::Invalid(format!(
                "the database URL is not valid ({})",
                redact(&e.to_string(), url)
            ))
        })?;
        if let Some(path) = &self.database_ca_file {
            certificates("--database-ca-file", path)?;
            options = options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(path);
        }
        if let (Some(cert), Some(key)) = (&self.database_cert_file, &self.database_key_file) {
            certificates("--database-cert-file", cert)?;
            private_key("--database-key-file", key)?;
            options = options.ssl_client_cert(cert).ssl_client_key(key);
        }
        Ok(options)
    }
}

/// `text` without `url` or the URL's password, should a parser have echoed them.
fn redact(text: &str, url: &str) -> String {
    let mut out = text.replace(url, "<database URL>");
    if let Some(password) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty())
    {
        out = out.replace(password, "<password>");
    }
    out
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| TransportError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    })
}

/// A PEM file with at least one certificate.
fn certificates(flag: &'static str, path: &Path) -> Result<Vec<u8>> {
    let pem = read(flag, path)?;
    if !contains(&pem, b"-----BEGIN CERTIFICATE-----") {
        return Err(TransportError::BadFile {
            flag,
            path: path.to_path_buf(),
            what: "holds no PEM certificate",
        });
    }
    Ok(pem)
}

/// A PEM file with a private key.
fn private_key(flag: &'static str, path: &Path) -> Result<Vec<u8>> {
    let pem = read(flag, path)?;
    if !contains(&pem, b"PRIVATE KEY-----") {
        return Err(TransportError::BadFile {
            flag,
            path: path.to_path_buf(),
            what: "holds no PEM private key",
        });
    }
    Ok(pem)
}

/// A one-line secret; the trailing newline an editor or `echo` adds is not part of it.
fn secret(flag: &'static str, path: &Path) -> Result<String> {
    let bytes = read(flag, path)?;
    let text = String::from_utf8(bytes).map_err(|_| TransportError::BadFile {
        flag,
        path: path.to_path_buf(),
        what: "is not UTF-8",
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(TransportError::BadFile {
            flag,
            path: path.to_path_buf(),
            what: "is empty",
        });
    }
    Ok(value.to_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An etcd client error with the causes behind it (etcd-client's error does not expose
/// them through `source()`), e.g. the TLS alert behind "Unavailable".
pub fn explain_etcd_error(e: &etcd_client::Error) -> String {
    let (mut text, mut cause): (String, Option<&(dyn std::error::Error + 'static)>) = match e {
        etcd_client::Error::GRpcStatus(status) => (
            if status.message().is_empty() {
                format!("{:?}", status.code())
            } else {
                format!("{:?}: {}", status.code(), status.message())
            },
            std::error::Error::source(status),
        ),
        etcd_client::Error::TransportError(t) => (t.to_string(), std::error::Error::source(t)),
        other => (other.to_string(), None),
    };
    while let Some(c) = cause {
        let line = c.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        etcd: EtcdAccess,
        #[command(flatten)]
        database: DatabaseTls,
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    fn file(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_a_user_needs_a_password_file() {
        assert!(Flags::try_parse_from(["t", "--etcd-cert-file", "c"]).is_err());
        assert!(Flags::try_parse_from(["t", "--etcd-user", "u"]).is_err());
        assert!(Flags::try_parse_from(["t", "--database-key-file", "k"]).is_err());
        assert!(
            Flags::try_parse_from(["t", "--etcd-user", "u", "--etcd-password-file", "p"]).is_ok()
        );
    }

    #[test]
    fn the_password_file_is_read_without_its_newline_and_never_shown() {
        let dir = tempfile::tempdir().expect("dir");
        let password = file(dir.path(), "pw", "s3cret-etcd-pw\n");
        let flags = Flags::parse_from([
            "t",
            "--etcd-user",
            "shard",
            "--etcd-password-file",
            &password,
        ]);
        assert!(flags.etcd.is_secured());
        flags
            .etcd
            .apply(&["http://127.0.0.1:2379".into()], ConnectOptions::new())
            .expect("options");
        let debug = format!("{:?}", flags.etcd);
        assert!(!debug.contains("s3cret"), "{debug}");
        let empty = file(dir.path(), "empty", "\n");
        let flags =
            Flags::parse_from(["t", "--etcd-user", "shard", "--etcd-password-file", &empty]);
        let err = flags
            .etcd
            .apply(&["http://127.0.0.1:2379".into()], ConnectOptions::new())
            .expect_err("empty password");
        assert!(err.to_string().contains("--etcd-password-file"), "{err}");
    }

    #[test]
    fn tls_files_need_https_endpoints_and_pem_content() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = file(dir.path(), "ca.crt", CERT);
        let flags = Flags::parse_from(["t", "--etcd-ca-file", &ca]);
        let err = flags
            .etcd
            .apply(&["http://etcd:2379".into()], ConnectOptions::new())
            .expect_err("http with a CA");
        assert!(err.to_string().contains("https://"), "{err}");
        assert!(
            flags
                .etcd
                .apply(&["https://etcd:2379".into()], ConnectOptions::new())
                .is_ok()
        );
        let not_pem = file(dir.path(), "key-as-ca", KEY);
        let flags = Flags::parse_from(["t", "--etcd-ca-file", &not_pem]);
        let err = flags
            .etcd
            .apply(&["https://etcd:2379".into()], ConnectOptions::new())
            .expect_err("a key is no CA");
        assert!(err.to_string().contains("--etcd-ca-file"), "{err}");
        let flags = Flags::parse_from(["t", "--etcd-ca-file", "/nonexistent/ca.crt"]);
        let err = flags
            .etcd
            .apply(&["https://etcd:2379".into()], ConnectOptions::new())
            .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/ca.crt"), "{err}");
    }

    #[test]
    fn a_database_ca_file_means_verify_full_and_the_url_never_shows() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = file(dir.path(), "ca.crt", CERT);
        let cert = file(dir.path(), "tls.crt", CERT);
        let key = file(dir.path(), "tls.key", KEY);
        let flags = Flags::parse_from([
            "t",
            "--database-ca-file",
            &ca,
            "--database-cert-file",
            &cert,
            "--database-key-file",
            &key,
        ]);
        let options = flags
            .database
            .connect_options("postgres://shard:pw@db:5432/boxoffice?sslmode=disable")
            .expect("options");
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        let err = flags
            .database
            .connect_options("postgres://shard:hunter2@db:notaport/boxoffice")
            .expect_err("bad port");
        let text = err.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("db:notaport"),
            "{text}"
        );
        // Without flags the URL decides, as libpq's parameters do.
        let options = DatabaseTls::default()
            .connect_options(
                "postgres://shard@db/boxoffice?sslmode=verify-full&sslrootcert=/ca.crt",
            )
            .expect("options");
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
    }

    #[test]
    fn a_redacted_text_names_neither_url_nor_password() {
        let url = "postgres://u:p4ss@h/db";
        assert_eq!(redact(&format!("bad {url}"), url), "bad <database URL>");
        assert_eq!(redact("p4ss!", url), "<password>!");
        assert_eq!(redact("fine", "postgres://u@h/db"), "fine");
    }
}
