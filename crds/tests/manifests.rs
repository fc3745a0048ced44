//! The checked-in CRD matches the types, and the example Shows are valid.

use std::path::Path;

use boxoffice_crds::{ShowConfig, VenueLayout, chart_crd_template, crd_yaml};

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn checked_in_crd_is_current() {
    let checked_in = repo_file("crds/manifests/shows.boxoffice.dev.yaml");
    assert!(
        checked_in == crd_yaml(),
        "crds/manifests/shows.boxoffice.dev.yaml is stale: run `cargo run -p boxoffice-crds --bin crdgen`"
    );
}

#[test]
fn chart_crd_template_is_current() {
    let checked_in = repo_file("charts/boxoffice/templates/crd-shows.yaml");
    assert!(
        checked_in == chart_crd_template(),
        "charts/boxoffice/templates/crd-shows.yaml is stale: run `cargo run -p boxoffice-crds --bin crdgen`"
    );
    assert!(checked_in.contains("helm.sh/resource-policy: keep"));
}

fn example(name: &str) -> (ShowConfig, VenueLayout) {
    let text = repo_file(&format!("examples/shows/{name}"));
    let config = ShowConfig::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let layout = VenueLayout::from_seating(&config.spec.seating).expect("layout");
    (config, layout)
}

#[test]
fn club_has_forty_seats() {
    let (config, layout) = example("club.yaml");
    assert_eq!(config.name, "club-night");
    assert_eq!(config.namespace, "default");
    assert_eq!(layout.reserved_seats(), 40);
    assert_eq!(layout.total_capacity(), 40);
}

#[test]
fn theatre_has_two_categories_and_standing() {
    let (config, layout) = example("theatre.yaml");
    assert_eq!(config.spec.categories.len(), 2);
    assert_eq!(layout.reserved_seats(), 26 * 32 + 16 * 30);
    assert_eq!(layout.areas.len(), 1);
    assert_eq!(layout.total_capacity(), 1512);
    assert!(layout.contains(&"circle:AP:30".parse().expect("seat id")));
}

#[test]
fn stadium_is_compact_and_has_eighty_thousand_seats() {
    let text = repo_file("examples/shows/stadium.yaml");
    assert!(
        text.len() < 100 * 1024,
        "stadium manifest is {} bytes",
        text.len()
    );
    let (_, layout) = example("stadium.yaml");
    assert_eq!(layout.reserved_seats(), 80_000);
    assert_eq!(layout.seat_ids().count(), 80_000);
}

#[test]
fn normalized_config_round_trips() {
    let (config, _) = example("theatre.yaml");
    let again = ShowConfig::parse(&config.to_json()).expect("normalized form parses");
    assert_eq!(again, config);
}

#[test]
fn invalid_manifest_is_refused_with_field_names() {
    let text = repo_file("examples/shows/club.yaml")
        .replace("replicas: 2", "replicas: 0")
        .replace("ttl: 5m", "ttl: 10h")
        .replace("category: standard", "category: gold");
    let err = ShowConfig::parse(&text)
        .expect_err("must be rejected")
        .to_string();
    for field in [
        "spec.shard.replicas",
        "spec.holds.ttl",
        "spec.seating.sections[0].category",
    ] {
        assert!(err.contains(field), "{err} should name {field}");
    }
}
