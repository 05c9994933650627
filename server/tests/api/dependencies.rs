//! The server's memory depends on a patched WebSocket library (vendor/README.md); this test fails
//! when a dependency update leaves the server on a copy without the patch.

use std::path::Path;

/// Every `tungstenite` in the workspace's lock file, as (version, source); the source is `None` for
/// a path dependency such as the vendored copy that `[patch.crates-io]` puts in place.
fn locked_tungstenites(lock_file: &str) -> Vec<(String, Option<String>)> {
    lock_file
        .split("[[package]]")
        .filter_map(|package| {
            let field = |key: &str| {
                package.lines().find_map(|line| {
                    let value = line.strip_prefix(key)?.trim().strip_prefix("= ")?;
                    Some(value.trim_matches('"').to_owned())
                })
            };
            (field("name").as_deref() == Some("tungstenite"))
                .then(|| (field("version").unwrap_or_default(), field("source")))
        })
        .collect()
}

/// axum's WebSocket, the native worker and the tests all use one tungstenite, and it is the vendored,
/// patched one. A second version would mean axum (or a test client) moved to a release the patch
/// does not cover: vendor that release with the same change, or drop the copy if upstream now
/// releases the buffers itself. Read from Cargo.lock, which `cargo` keeps in step with the build.
#[test]
fn the_only_tungstenite_in_the_tree_is_the_patched_copy() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lock_file = std::fs::read_to_string(workspace.join("Cargo.lock")).expect("Cargo.lock");
    let packages = locked_tungstenites(&lock_file);
    assert_eq!(
        packages.len(),
        1,
        "one tungstenite in Cargo.lock, found {packages:?}"
    );
    let (version, source) = &packages[0];
    assert_eq!(
        source, &None,
        "tungstenite {version} comes from a registry, not vendor/"
    );
    let vendored = workspace.join(format!("vendor/tungstenite-{version}/Cargo.toml"));
    assert!(
        vendored.is_file(),
        "tungstenite {version} is a path dependency, but {} is missing",
        vendored.display()
    );
}

#[test]
fn a_registry_tungstenite_in_the_lock_file_is_seen() {
    let lock_file = r#"
[[package]]
name = "tungstenite"
version = "0.29.0"

[[package]]
name = "tungstenite"
version = "0.30.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "00"
"#;
    assert_eq!(
        locked_tungstenites(lock_file),
        [
            ("0.29.0".to_owned(), None),
            (
                "0.30.0".to_owned(),
                Some("registry+https://github.com/rust-lang/crates.io-index".to_owned())
            ),
        ]
    );
}
