//! The built plugin (`libidhost_clickwrap.so`) loads through the SDK's loader and syncs over the
//! stable ABI, the way the host will run it; provisioning is refused as unsupported.

use std::path::PathBuf;
use std::sync::Arc;

use idhost_clickwrap::Clickwrap;
use idhost_connector_sdk::services::HostServices;
use idhost_connector_sdk::{
    Connector, EntitlementRef, ErrorKind, PageToken, ResourceRef, SourceInfo, host,
};
use serde_json::json;
use sim_clickwrap::SimConfig;

use crate::common::Env;

/// The cdylib cargo built for this test run: `target/<profile>/deps/libidhost_clickwrap.so`,
/// beside the test binary (`cargo test` builds it there without copying it up a level, so the
/// copy in `target/<profile>/` may be stale).
fn plugin_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let file = format!(
        "{}idhost_clickwrap{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let deps = exe.parent().expect("target/<profile>/deps");
    let fresh = deps.join(&file);
    if fresh.exists() {
        return fresh;
    }
    deps.parent().map_or(fresh, |profile| profile.join(&file))
}

#[tokio::test]
async fn the_plugin_syncs_over_the_abi_and_refuses_provisioning() {
    let path = plugin_path();
    let library = match host::load(&path) {
        Ok(l) => l,
        Err(e) => panic!("{} does not load: {e}", path.display()),
    };
    assert_eq!(library.manifest(), &Clickwrap::manifest());

    let env = Env::start(SimConfig {
        users: 230,
        ..SimConfig::default()
    })
    .await;
    let settings = env.client_settings(json!({"account_id": env.sim.config().account_id}));
    let services: Arc<dyn HostServices> = env.services.clone();
    let source = {
        let mut built = SourceInfo::default();
        built.source = "clickwrap".to_owned();
        built
    };
    let instance = library
        .open(&settings, source, 2, services)
        .await
        .expect("opens over the ABI");
    instance.validate().await.expect("validates");

    let mut token = PageToken::first();
    let mut users = 0;
    loop {
        let page = instance.list("user", token).await.expect("lists");
        users += page.items.len();
        match page.next {
            Some(next) => token = PageToken::from_string(next),
            None => break,
        }
    }
    assert_eq!(users, 230);
    let sites = instance
        .list("site", PageToken::first())
        .await
        .expect("lists sites");
    assert_eq!(sites.items.len(), 1);
    assert_eq!(sites.entitlements.len(), 3);

    let site = ResourceRef::parse(&sites.items[0].id).expect("site id");
    let entitlement = EntitlementRef {
        resource: site,
        slug: "admin".to_owned(),
    };
    let user = ResourceRef::parse("user:1").expect("user id");
    let err = instance
        .grant(&entitlement, &user)
        .await
        .expect_err("no provisioning");
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert!(
        env.sim
            .faults()
            .log()
            .writes()
            .iter()
            .all(|r| r.path.ends_with("/oauth/token"))
    );
}
