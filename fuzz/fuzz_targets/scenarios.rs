//! Policy scenario files (`policies/tests/*.yaml`, and the admin set's
//! `policies/admin/tests/*.yaml`), parsed and run as `capgate policy test` runs them, over
//! arbitrary text (seeds: every scenario file of the repository). A scenario may carry a whole
//! policy request, so this also decides arbitrary requests with the example policies.
//!
//! Invariants: no panic; a scenario either cannot be built (and says why) or gets a decision;
//! every decision states a reason and its policy version; an allow is never marked as one a
//! break-glass grant may override.

#![no_main]

use capgate::policy::{AdminRoles, Outcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engine = capgate_fuzz::engine();
    if let Ok(results) = capgate::fuzzing::run_scenario_text(text, engine, capgate_fuzz::registry()) {
        for result in results {
            match &result.decision {
                None => assert!(result.failure.is_some(), "{}: no decision and no reason", result.name),
                Some(decision) => {
                    assert!(!decision.reason.is_empty());
                    assert!(!decision.policy_version.is_empty());
                    if decision.outcome == Outcome::Allow {
                        assert!(!decision.break_glass_may_override);
                    }
                }
            }
        }
    }
    if let Some(admin) = engine.admin() {
        let _ = capgate::fuzzing::run_admin_scenario_text(text, &admin, &AdminRoles::default());
    }
});
