//! One crypto stack: JWT verification runs on aws-lc-rs, the crypto TLS already compiles, so no
//! RustCrypto RSA (`rsa`, with its Marvin-attack advisory and ~8x slower RS256) comes back into
//! the build unnoticed. And `rand`: the versions the graph still needs, and no more. Read from
//! `Cargo.lock`, which holds every package the build could use (a superset of `cargo tree`: a
//! package absent from it is absent from every build).

use std::collections::BTreeSet;

use crate::common::repo_root;

/// The versions of `name` in Cargo.lock.
fn locked_versions(name: &str) -> BTreeSet<String> {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).expect("Cargo.lock");
    let mut versions = BTreeSet::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
            {
                versions.insert(version.to_string());
            }
        }
    }
    versions
}

#[test]
fn one_crypto_stack_and_no_rand_beyond_what_dependencies_need() {
    for rust_crypto in ["rsa", "p256", "p384"] {
        assert_eq!(
            locked_versions(rust_crypto),
            BTreeSet::new(),
            "`{rust_crypto}` is back in Cargo.lock; `cargo tree -i {rust_crypto}` says who brings it"
        );
    }
    assert_eq!(locked_versions("aws-lc-rs").len(), 1);
    // rand 0.10: capgate, rmcp (streamable HTTP server), tokio-postgres, proptest. rand 0.9:
    // opentelemetry_sdk 0.33 (its `trace` feature; no release on 0.10 yet). When it moves,
    // this becomes one.
    let rand: Vec<String> = locked_versions("rand")
        .into_iter()
        .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."))
        .collect();
    assert_eq!(rand, ["0.10", "0.9"], "`cargo tree -i rand@<version>`");
}
