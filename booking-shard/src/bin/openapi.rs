//! Prints the API's OpenAPI document (generated from the handlers' types):
//! `cargo run -p booking-shard --bin openapi > booking-shard/openapi.json`.

fn main() {
    let doc = booking_shard::api::openapi::openapi();
    match serde_json::to_string_pretty(&doc) {
        Ok(text) => println!("{text}"),
        Err(e) => {
            eprintln!("serializing the OpenAPI document: {e}");
            std::process::exit(1);
        }
    }
}
