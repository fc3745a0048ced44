//! What a Show may ask of the operator. A Show author chooses the shard's image and
//! etcd endpoints in `spec.shard`; left unchecked, that runs an image of their choosing
//! with the namespace's database and JWT Secrets, and makes the operator itself call
//! addresses they name. The operator's configuration says which overrides are allowed;
//! a Show that asks for anything else is refused whole: none of its objects change and
//! nothing it names is contacted. So is a Show whose webhooks would make its shard
//! refuse to start (two naming one endpoint, its own or the operator's defaults). Pure,
//! so every rule is unit-tested.

use boxoffice_crds::Show;

use crate::config::Config;

/// Why a Show's spec was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    ImageNotAllowed,
    EtcdEndpointsNotAllowed,
    WebhookConflict,
}

impl RefusalReason {
    /// The condition and Event reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::ImageNotAllowed => "ImageNotAllowed",
            RefusalReason::EtcdEndpointsNotAllowed => "EtcdEndpointsNotAllowed",
            RefusalReason::WebhookConflict => "WebhookConflict",
        }
    }
}

/// A refused spec: the reason and a message naming the field and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub message: String,
}

/// Checks a Show's overrides against the operator's allowlists.
pub fn check(show: &Show, config: &Config) -> Result<(), Refusal> {
    if let Some(image) = &show.spec.shard.image
        && !image_allowed(image, config)
    {
        return Err(Refusal {
            reason: RefusalReason::ImageNotAllowed,
            message: format!(
                "spec.shard.image {image:?} is not allowed by the operator \
                 (allowed: {}); nothing was changed",
                describe(allowed_images(config))
            ),
        });
    }
    let refused: Vec<&String> = show
        .spec
        .shard
        .etcd_endpoints
        .iter()
        .filter(|e| !etcd_endpoint_allowed(e, config))
        .collect();
    if !refused.is_empty() {
        let names: Vec<String> = refused.iter().map(|e| format!("{e:?}")).collect();
        let allowed = config.etcd.iter().chain(&config.allowed_etcd_endpoints);
        return Err(Refusal {
            reason: RefusalReason::EtcdEndpointsNotAllowed,
            message: format!(
                "spec.shard.etcdEndpoints names {}, which the operator does not allow \
                 (allowed: {}); nothing was changed or contacted",
                names.join(", "),
                describe(allowed)
            ),
        });
    }
    if let Some(message) = crate::events::conflict(show, config) {
        return Err(Refusal {
            reason: RefusalReason::WebhookConflict,
            message,
        });
    }
    Ok(())
}

fn allowed_images(config: &Config) -> impl Iterator<Item = &String> {
    std::iter::once(&config.shard_image).chain(&config.allowed_shard_images)
}

fn describe<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The operator's own image is always allowed. An allowlist entry ending in `/` or `:`
/// is a prefix (a registry or repository path, every tag of a repository); any other
/// entry must match exactly. A prefix without its separator would let
/// `registry.example` admit `registry.example.attacker.test/...`, so there is none.
pub fn image_allowed(image: &str, config: &Config) -> bool {
    if image == config.shard_image {
        return true;
    }
    // Path tricks and odd characters never name a real image; refuse them before any
    // prefix can match.
    let plausible = !image.is_empty()
        && !image.contains("..")
        && !image.contains("//")
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    plausible
        && config
            .allowed_shard_images
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .any(|a| {
                if a.ends_with('/') || a.ends_with(':') {
                    image.starts_with(a) && image.len() > a.len()
                } else {
                    image == a
                }
            })
}

/// An etcd endpoint is allowed when it is one of the operator's own or listed in the
/// allowlist, compared exactly (a trailing `/` aside): a prefix of a URL is no boundary.
pub fn etcd_endpoint_allowed(endpoint: &str, config: &Config) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_string();
    let endpoint = norm(endpoint);
    !endpoint.is_empty()
        && config
            .etcd
            .iter()
            .chain(&config.allowed_etcd_endpoints)
            .any(|a| norm(a) == endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxoffice_crds::ShowConfig;
    use clap::Parser;

    fn show() -> Show {
        let config =
            ShowConfig::parse(include_str!("../../examples/shows/club.yaml")).expect("club");
        Show::new(&config.name, config.spec)
    }

    fn config(extra: &[&str]) -> Config {
        let mut args = vec![
            "boxoffice-operator",
            "--shard-image",
            "ghcr.io/boxoffice-dev/booking-shard:0.1.0",
            "--etcd",
            "http://etcd-a:2379,http://etcd-b:2379",
        ];
        args.extend_from_slice(extra);
        Config::parse_from(args)
    }

    fn with_image(image: &str) -> Show {
        let mut s = show();
        s.spec.shard.image = Some(image.into());
        s
    }

    #[test]
    fn no_override_is_always_fine() {
        assert_eq!(check(&show(), &config(&[])), Ok(()));
    }

    #[test]
    fn by_default_only_the_operators_image_is_allowed() {
        let c = config(&[]);
        assert_eq!(
            check(&with_image("ghcr.io/boxoffice-dev/booking-shard:0.1.0"), &c),
            Ok(())
        );
        let refusal = check(&with_image("evil.example/miner:latest"), &c).expect_err("refused");
        assert_eq!(refusal.reason, RefusalReason::ImageNotAllowed);
        assert_eq!(refusal.reason.as_str(), "ImageNotAllowed");
        assert!(
            refusal.message.contains("spec.shard.image")
                && refusal.message.contains("evil.example/miner:latest"),
            "{}",
            refusal.message
        );
        // Another tag of the operator's own repository is an override like any other.
        assert!(!image_allowed(
            "ghcr.io/boxoffice-dev/booking-shard:0.2.0",
            &c
        ));
    }

    #[test]
    fn exact_and_prefix_entries() {
        let c = config(&[
            "--allowed-shard-images",
            "registry.example/boxoffice/,ghcr.io/boxoffice-dev/booking-shard:,mirror.example/shard:1.0",
        ]);
        for ok in [
            "registry.example/boxoffice/booking-shard:1.2",
            "registry.example/boxoffice/team/shard@sha256:abcd",
            "ghcr.io/boxoffice-dev/booking-shard:0.2.0",
            "mirror.example/shard:1.0",
        ] {
            assert!(image_allowed(ok, &c), "{ok} should be allowed");
        }
        for refused in [
            // An exact entry is no prefix.
            "mirror.example/shard:1.0-evil",
            "mirror.example/shard:1.1",
            // A prefix ends at its separator.
            "registry.example/boxofficeevil/shard:1",
            "registry.example/boxoffice/",
            "ghcr.io/boxoffice-dev/booking-shard-evil:1",
            // No climbing out of an allowed path, no odd characters.
            "registry.example/boxoffice/../evil/shard:1",
            "registry.example/boxoffice//evil:1",
            "registry.example/boxoffice/shard:1 --privileged",
            "",
        ] {
            assert!(!image_allowed(refused, &c), "{refused:?} should be refused");
        }
    }

    #[test]
    fn a_registry_host_without_a_slash_is_an_exact_entry() {
        let c = config(&["--allowed-shard-images", "registry.example"]);
        assert!(!image_allowed("registry.example.attacker.test/shard:1", &c));
        assert!(!image_allowed("registry.example/shard:1", &c));
    }

    #[test]
    fn etcd_endpoints_only_from_the_operator_or_its_allowlist() {
        let mut s = show();
        let c = config(&[]);
        // The operator's own endpoints (in any order, with a trailing slash) are fine.
        s.spec.shard.etcd_endpoints =
            vec!["http://etcd-b:2379/".into(), "http://etcd-a:2379".into()];
        assert_eq!(check(&s, &c), Ok(()));

        s.spec.shard.etcd_endpoints = vec![
            "http://etcd-a:2379".into(),
            "http://169.254.169.254:80".into(),
        ];
        let refusal = check(&s, &c).expect_err("refused");
        assert_eq!(refusal.reason, RefusalReason::EtcdEndpointsNotAllowed);
        assert!(
            refusal
                .message
                .starts_with("spec.shard.etcdEndpoints names \"http://169.254.169.254:80\", which"),
            "{}",
            refusal.message
        );

        let c = config(&[
            "--allowed-etcd-endpoints",
            "https://etcd-arts.example:2379,https://etcd-sport.example:2379",
        ]);
        s.spec.shard.etcd_endpoints = vec!["https://etcd-arts.example:2379".into()];
        assert_eq!(check(&s, &c), Ok(()));
        // Exact only: a longer URL with an allowed one as its prefix is refused.
        s.spec.shard.etcd_endpoints = vec!["https://etcd-arts.example:23799".into()];
        assert!(check(&s, &c).is_err());
        s.spec.shard.etcd_endpoints = vec!["https://etcd-arts.example:2379.evil.test".into()];
        assert!(check(&s, &c).is_err());
    }

    #[test]
    fn the_image_is_checked_before_the_endpoints() {
        let mut s = with_image("evil.example/x:1");
        s.spec.shard.etcd_endpoints = vec!["http://elsewhere:2379".into()];
        assert_eq!(
            check(&s, &config(&[])).map_err(|r| r.reason),
            Err(RefusalReason::ImageNotAllowed)
        );
    }
}
