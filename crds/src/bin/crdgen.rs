//! Writes the Show CRD: `cargo run -p boxoffice-crds --bin crdgen` updates
//! `crds/manifests/shows.boxoffice.dev.yaml` and the Helm chart's CRD template;
//! `crdgen -` prints the plain manifest.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("-") {
        print!("{}", boxoffice_crds::crd_yaml());
        return Ok(());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::write(
        root.join("crds/manifests/shows.boxoffice.dev.yaml"),
        boxoffice_crds::crd_yaml(),
    )?;
    std::fs::write(
        root.join("charts/boxoffice/templates/crd-shows.yaml"),
        boxoffice_crds::chart_crd_template(),
    )?;
    Ok(())
}
