//! Baton-style id parsing (`ResourceRef`, `EntitlementRef`, `GrantRef`), which provisioning
//! applies to ids typed on the command line: never panics, and a parsed ref names the same id.
#![no_main]

use idhost_connector_sdk::{EntitlementRef, GrantRef, ResourceRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(r) = ResourceRef::parse(text) {
        assert_eq!(r.to_id(), text, "{r:?}");
    }
    let _ = EntitlementRef::parse(text);
    let _ = GrantRef::parse(text);
});
