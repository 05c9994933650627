//! The server's memory depends on a patched WebSocket library (vendor/README.md); these tests fail
//! when a dependency update leaves the server on a copy without the patch.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Every `tungstenite` in the resolved tree, as (version, manifest path, source) from `cargo
/// metadata`; the source is `None` for a path dependency such as the vendored copy.
fn tungstenite_packages() -> Vec<(String, String, Option<String>)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(&workspace)
        .output()
        .expect("runs cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let text = |package: &Value, key: &str| package[key].as_str().map(str::to_owned);
    metadata["packages"]
        .as_array()
        .expect("a package list")
        .iter()
        .filter(|package| package["name"] == "tungstenite")
        .map(|package| {
            (
                text(package, "version").expect("a version"),
                text(package, "manifest_path").expect("a manifest path"),
                text(package, "source"),
            )
        })
        .collect()
}

/// axum's WebSocket, the native worker and the tests all use one tungstenite, and it is the vendored,
/// patched one. A second version would mean axum (or a test client) moved to a release the patch
/// does not cover: vendor that release with the same change, or drop the copy if upstream now
/// releases the buffers itself.
#[test]
fn the_only_tungstenite_in_the_tree_is_the_patched_copy() {
    let packages = tungstenite_packages();
    assert_eq!(
        packages.len(),
        1,
        "one tungstenite in the dependency tree, found {packages:?}"
    );
    let (version, manifest_path, source) = &packages[0];
    assert_eq!(
        source, &None,
        "tungstenite {version} comes from a registry, not vendor/"
    );
    let expected = Path::new("vendor")
        .join(format!("tungstenite-{version}"))
        .join("Cargo.toml");
    assert!(
        Path::new(manifest_path).ends_with(&expected),
        "tungstenite {version} is built from {manifest_path}, not {}",
        expected.display()
    );
}
