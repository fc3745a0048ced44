//! Writes the Show CRD YAML: `cargo run -p boxoffice-crds --bin crdgen [PATH]`.
//! Without PATH it writes `crds/manifests/shows.boxoffice.dev.yaml`; `-` prints it.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let yaml = boxoffice_crds::crd_yaml();
    match std::env::args().nth(1).as_deref() {
        Some("-") => print!("{yaml}"),
        Some(path) => std::fs::write(path, yaml)?,
        None => {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("manifests/shows.boxoffice.dev.yaml");
            std::fs::write(path, yaml)?;
        }
    }
    Ok(())
}
