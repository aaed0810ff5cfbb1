//! The configuration file (`capgate.toml`): `GatewayConfig::parse` over arbitrary text (seeds:
//! the embedded default, the examples and the test configurations), then what the gateway
//! derives from a configuration it accepted before it starts anything.
//!
//! Invariants: no panic; an accepted configuration has at least one issuer, distinct issuer
//! names and downstream ids, valid downstream ids, and no limit of zero; a refusal names the
//! key it is about.

#![no_main]

use std::path::Path;

use capgate::config::{is_valid_server_id, GatewayConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match GatewayConfig::parse(text, "fuzz.toml", Path::new("/nonexistent")) {
        Err(error) => {
            assert!(!error.key.is_empty(), "a refusal names its key: {error}");
            let _ = error.to_string();
        }
        Ok(config) => {
            assert!(!config.issuers.is_empty());
            for (i, issuer) in config.issuers.iter().enumerate() {
                assert!(
                    config.issuers[..i].iter().all(|other| other.issuer != issuer.issuer),
                    "issuer {:?} twice",
                    issuer.issuer
                );
            }
            for (i, downstream) in config.downstreams.iter().enumerate() {
                assert!(is_valid_server_id(&downstream.id), "{:?}", downstream.id);
                assert!(
                    config.downstreams[..i].iter().all(|other| other.id != downstream.id),
                    "downstream {:?} twice",
                    downstream.id
                );
            }
            let limits = &config.limits;
            assert!(limits.max_connections > 0 && limits.requests_per_second > 0);
            let _ = config.resource_metadata_url();
            let _ = limits.header_read_timeout();
            let _ = limits.session_idle();
            let _ = config.audit.checkpoints();
            let _ = config.audit.log_path(&config.data_dir);
            let _ = config.audit.signing_key_path(&config.data_dir);
            let _ = config.audit.dry_run_for("case", "read_case");
            let _ = capgate::identity::protected_resource_metadata(&config);
        }
    }
});
