//! The payment provider's signing secret of a Show (`spec.payments.providerSecretRef`),
//! mounted into the shard as a read-only file holding only that key, like the JWT
//! secret; never an environment variable.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::EnvVar;

use boxoffice_crds::{SecretKeyRef, Show};

/// Where the shard finds the provider secret.
pub const PAYMENT_DIR: &str = "/var/run/secrets/boxoffice-payments";
/// The file, under [`PAYMENT_DIR`], holding it.
pub const PAYMENT_FILE: &str = "provider";

/// The Secret key holding the provider's signing secret, when the Show names one.
pub fn secret_ref(show: &Show) -> Option<&SecretKeyRef> {
    show.spec
        .payments
        .as_ref()
        .and_then(|p| p.provider_secret_ref.as_ref())
}

/// Adds the provider secret's volume, mount and `BOXOFFICE_PAYMENT_SECRET_FILE` to the
/// shard container when the Show names one.
pub fn mount_payment_secret(deployment: &mut Deployment, show: &Show) {
    let Some(secret) = secret_ref(show) else {
        return;
    };
    crate::builders::mount_secret_key(deployment, "payments", secret, PAYMENT_DIR, PAYMENT_FILE);
    let Some((_, container)) = crate::builders::shard_volumes_and_container(deployment) else {
        return;
    };
    container.env.get_or_insert_default().push(EnvVar {
        name: "BOXOFFICE_PAYMENT_SECRET_FILE".into(),
        value: Some(format!("{PAYMENT_DIR}/{PAYMENT_FILE}")),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use boxoffice_crds::{PaymentMode, PaymentPolicy, SecretKeyRef, ShowConfig};
    use clap::Parser;

    use super::*;
    use crate::builders::deployment;
    use crate::config::Config;

    fn show(payments: Option<PaymentPolicy>) -> Show {
        let text = include_str!("../../examples/shows/theatre.yaml");
        let config = ShowConfig::parse(text).expect("theatre parses");
        let mut show = Show::new(&config.name, config.spec);
        show.metadata.namespace = Some("arts".into());
        show.spec.payments = payments;
        show
    }

    fn pod(show: &Show) -> k8s_openapi::api::core::v1::PodSpec {
        let config = Config::parse_from(["boxoffice-operator", "--etcd", "http://etcd:2379"]);
        let d = deployment(show, &config);
        d.spec.expect("spec").template.spec.expect("pod")
    }

    #[test]
    fn the_provider_secret_is_a_read_only_file_with_only_its_key() {
        let p = pod(&show(Some(PaymentPolicy {
            mode: PaymentMode::Provider,
            provider: Some("sim".into()),
            provider_secret_ref: Some(SecretKeyRef {
                name: "arts-payments".into(),
                key: "whsec".into(),
            }),
            ..PaymentPolicy::default()
        })));
        let c = &p.containers[0];
        let env = c.env.iter().flatten();
        let file: Vec<_> = env
            .filter(|e| e.name.starts_with("BOXOFFICE_PAYMENT"))
            .map(|e| (e.name.as_str(), e.value.as_deref(), e.value_from.is_some()))
            .collect();
        assert_eq!(
            file,
            [(
                "BOXOFFICE_PAYMENT_SECRET_FILE",
                Some("/var/run/secrets/boxoffice-payments/provider"),
                false
            )]
        );
        let secret = crate::builders::mounted_secret(&p, PAYMENT_DIR);
        assert_eq!(secret.secret_name.as_deref(), Some("arts-payments"));
        let items: Vec<(&str, &str)> = secret
            .items
            .iter()
            .flatten()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect();
        assert_eq!(items, [("whsec", "provider")]);
        assert_eq!(secret.default_mode, Some(0o440));
    }

    #[test]
    fn a_show_without_a_provider_secret_mounts_nothing_more() {
        for payments in [None, Some(PaymentPolicy::default())] {
            let p = pod(&show(payments));
            assert!(p.volumes.iter().flatten().all(|v| v.name != "payments"));
            let c = &p.containers[0];
            assert!(c.env.iter().flatten().all(|e| !e.name.contains("PAYMENT")));
        }
    }
}
