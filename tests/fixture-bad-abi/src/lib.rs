//! A plugin that claims connector interface version 999: the host's loader must refuse it with
//! an error naming the file, both versions and the fix, without calling into it.

use idhost_connector_sdk::prelude::*;

/// A connector that is never opened.
pub struct FromTheFuture;

impl Connector for FromTheFuture {
    type Settings = serde::de::IgnoredAny;

    fn manifest() -> Manifest {
        Manifest::new("from-the-future".into(), "9.9.9".into(), String::new())
            .with_resource_types(vec![ResourceTypeSpec::new("user", "")])
            .with_capabilities(vec![])
            .with_config_keys(vec![])
    }

    async fn open(_settings: Self::Settings, _ctx: Context) -> Result<Self, ConnectorError> {
        Ok(FromTheFuture)
    }

    async fn list(&self, _rtype: &str, _page: PageToken) -> Result<Page<Resource>, ConnectorError> {
        Ok(Page::empty())
    }
}

export_connector!(FromTheFuture, __interface_version = 999);
