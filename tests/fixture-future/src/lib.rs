//! A connector plugin standing in for one built against a newer 1.x SDK (issue 14 point 8).
//!
//! A newer SDK would have new variants, say `Capability::Teleport` and `Status::Suspended`,
//! serialized as `"teleport"` and `"suspended"`. This SDK's `from_wire` makes exactly those
//! wire values (`Other("teleport")`, `Other("suspended")`), so this plugin sends what a newer
//! one would, and the host under test (built with this SDK) must load it, sync it, and report
//! the values it does not know instead of failing.
//!
//! Settings: `users` (default 10) users `f0`.., of which every third is `suspended`, and every
//! fifth is an account of the unknown type `robot`; one group `g0` whose members hold an
//! entitlement of the unknown purpose `delegation`.

use idhost_connector_sdk::prelude::*;
use serde::Deserialize;

/// Settings of the future fixture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FutureSettings {
    #[serde(default = "default_users")]
    users: u64,
}

fn default_users() -> u64 {
    10
}

/// The capability and the values a newer SDK would know and this one does not.
const NEW_CAPABILITY: &str = "teleport";
const NEW_STATUS: &str = "suspended";
const NEW_ACCOUNT_TYPE: &str = "robot";
const NEW_PURPOSE: &str = "delegation";

/// The future fixture connector.
pub struct Future {
    settings: FutureSettings,
}

impl Connector for Future {
    type Settings = FutureSettings;

    fn manifest() -> Manifest {
        Manifest::new(
            "fixture_future".into(),
            env!("CARGO_PKG_VERSION").into(),
            "A plugin from a newer 1.x SDK, for the host's forward-compatibility test".into(),
        )
        .with_resource_types(vec![
            ResourceTypeSpec::new("user", "Generated users, some with a newer status"),
            ResourceTypeSpec::new("group", "One group; members side-loaded"),
        ])
        .with_capabilities(vec![
            Capability::Update,
            Capability::from_wire(NEW_CAPABILITY),
        ])
        .with_config_keys(vec![ConfigKey::optional("users", "number of users")])
    }

    async fn open(settings: FutureSettings, _ctx: Context) -> Result<Self, ConnectorError> {
        Ok(Self { settings })
    }

    async fn validate(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn list(&self, rtype: &str, _page: PageToken) -> Result<Page<Resource>, ConnectorError> {
        match rtype {
            "user" => {
                let users = (0..self.settings.users)
                    .map(|n| {
                        let mut user = Resource::new("user", &format!("f{n}"), format!("User {n}"));
                        let mut traits = {
                            let mut built = UserTrait::default();
                            built.login = Some(format!("f{n}@example.com"));
                            built
                        };
                        if n % 5 == 0 {
                            traits.account_type = AccountType::from_wire(NEW_ACCOUNT_TYPE);
                        }
                        user.user = Some(traits);
                        if n % 3 == 0 {
                            user.status = Status::from_wire(NEW_STATUS);
                        }
                        user
                    })
                    .collect();
                Ok(Page::last(users))
            }
            "group" => {
                let group = Resource::new("group", "g0", "Group 0");
                let entitlement = Entitlement::new(
                    &group.id,
                    "member",
                    Purpose::from_wire(NEW_PURPOSE),
                    &["user"],
                );
                let grants = (0..self.settings.users)
                    .map(|n| Grant::new(&entitlement.id, &format!("user:f{n}")))
                    .collect();
                Ok(Page::last(vec![group])
                    .with_entitlements(vec![entitlement])
                    .with_grants(grants))
            }
            other => Err(ConnectorError::invalid_input(format!(
                "the future fixture has no resource type `{other}`"
            ))),
        }
    }
}

export_connector!(Future);
