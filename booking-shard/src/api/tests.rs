//! Unit tests of the API module.

/// The checked-in document (for readers and client generators) is the one the code
/// generates: `cargo run -p booking-shard --bin openapi > booking-shard/openapi.json`.
#[test]
fn the_checked_in_openapi_document_is_current() {
    let generated = super::openapi::openapi();
    let checked_in: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json parses");
    assert!(
        generated == checked_in,
        "booking-shard/openapi.json is stale: run `cargo run -p booking-shard --bin openapi > booking-shard/openapi.json`"
    );
}
