//! The operations `ConnectorAbi::call` carries and their JSON payloads. Both sides of the
//! boundary use these exact structs, so the encoding cannot drift between them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connector::{AccountInfo, Changes, CredentialOptions, PageToken, ResourceSpec};
use crate::context::{HostFeatures, SourceInfo};
use crate::error::ConnectorError;
use crate::model::{EntitlementRef, GrantRef, Resource, ResourceRef};

pub(crate) const OP_NOOP: &str = "noop";
pub(crate) const OP_VALIDATE: &str = "validate";
pub(crate) const OP_LIST: &str = "list";
pub(crate) const OP_ENTITLEMENTS: &str = "entitlements";
pub(crate) const OP_GRANTS: &str = "grants";
pub(crate) const OP_GRANT: &str = "grant";
pub(crate) const OP_REVOKE: &str = "revoke";
pub(crate) const OP_CREATE_ACCOUNT: &str = "create_account";
pub(crate) const OP_CREATE_RESOURCE: &str = "create_resource";
pub(crate) const OP_UPDATE: &str = "update";
pub(crate) const OP_DELETE: &str = "delete";
pub(crate) const OP_CHECK_NOTES: &str = "check_notes";
pub(crate) const OP_LOGIN_FLOW: &str = "login_flow";

/// What `open` receives beside the settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenInfo {
    pub(crate) source: SourceInfo,
    /// Most verbose level the host will record (1 = error … 5 = trace); the plugin drops the
    /// rest before they cross the boundary.
    pub(crate) max_log_level: u8,
    /// What the host supports; absent from an older host, which supports none of it.
    #[serde(default)]
    pub(crate) host: HostFeatures,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ListArgs {
    pub(crate) rtype: String,
    pub(crate) page: PageToken,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DetailArgs {
    pub(crate) resource: Resource,
    pub(crate) page: PageToken,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GrantArgs {
    pub(crate) entitlement: EntitlementRef,
    pub(crate) principal: ResourceRef,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RevokeArgs {
    pub(crate) grant: GrantRef,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CreateAccountArgs {
    pub(crate) info: AccountInfo,
    pub(crate) credentials: CredentialOptions,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CreateResourceArgs {
    pub(crate) rtype: String,
    pub(crate) spec: ResourceSpec,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UpdateArgs {
    pub(crate) resource: ResourceRef,
    pub(crate) changes: Changes,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeleteArgs {
    pub(crate) resource: ResourceRef,
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, ConnectorError> {
    serde_json::to_string(value).map_err(|err| {
        ConnectorError::internal(format!(
            "could not encode across the plugin boundary: {err}"
        ))
    })
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, ConnectorError> {
    serde_json::from_str(text).map_err(|err| {
        ConnectorError::internal(format!(
            "could not decode {what} across the plugin boundary: {err}"
        ))
    })
}
