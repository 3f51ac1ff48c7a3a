//! The host's side of the plugin boundary: load a plugin file, read its manifest, open
//! connector instances and call them with plain Rust types.
//!
//! Libraries are loaded with `lib_header_from_path(..).init_root_module()`, never
//! `RootModule::load_from_file`, which caches one module per interface type and would hand a
//! second connector back as the first. Loaded libraries are never unloaded (abi_stable leaks
//! them by design): reloading a plugin means restarting the host.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RBox, ROption, RResult, RStr, RString};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::codec::{self, OpenInfo};
use crate::abi::plugin::panic_message;
use crate::abi::types::{AbiHttpRequest, AbiHttpResponse, AbiLogRecord, HostServicesAbi};
use crate::abi::{
    AbiError, ConnectorAbi_TO, ConnectorModRef, HostServicesAbi_TO, INTERFACE_VERSION,
};
use crate::connector::{
    AccountCreated, AccountInfo, Changes, CredentialOptions, GrantOutcome, Manifest, Page,
    PageToken, ResourceSpec, RevokeOutcome,
};
use crate::context::{HostFeatures, SourceInfo};
use crate::error::ConnectorError;
use crate::model::{Entitlement, EntitlementRef, Grant, GrantRef, Resource, ResourceRef};
use crate::services::HostServices;

pub use crate::abi::INTERFACE_VERSION as SDK_INTERFACE_VERSION;

/// Why a plugin file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file is not a loadable shared library, or exports no idhost root module.
    #[error("{path}: not an idhost connector plugin: {reason}")]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// What the dynamic loader or abi_stable said.
        reason: String,
    },
    /// Built against another major version of the SDK (abi_stable's version check).
    #[error(
        "{path}: built against idhost-connector-sdk {found}, this host speaks {expected}: rebuild the plugin against idhost-connector-sdk {expected_major}.x"
    )]
    IncompatibleSdk {
        /// The file.
        path: PathBuf,
        /// SDK version the host was built with.
        expected: String,
        /// SDK version the plugin was built with.
        found: String,
        /// Major version to rebuild against.
        expected_major: String,
    },
    /// Same SDK major version but another interface version.
    #[error(
        "{path}: plugin speaks connector interface version {found}, this host speaks {expected}: rebuild the plugin against the idhost-connector-sdk this host ships with"
    )]
    InterfaceVersion {
        /// The file.
        path: PathBuf,
        /// The host's interface version.
        expected: u32,
        /// The plugin's.
        found: u32,
    },
    /// The layout of the ABI types differs (abi_stable's layout check).
    #[error(
        "{path}: the plugin's ABI layout does not match this host's (it was built against a different idhost-connector-sdk): {detail}; rebuild the plugin against the SDK this host ships with"
    )]
    Layout {
        /// The file.
        path: PathBuf,
        /// The last lines of abi_stable's report.
        detail: String,
    },
    /// The plugin's manifest could not be read.
    #[error("{path}: the plugin's manifest is unusable: {reason}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// A loaded plugin library.
#[derive(Clone)]
pub struct PluginLibrary {
    path: PathBuf,
    module: ConnectorModRef,
    manifest: Arc<Manifest>,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("manifest", &self.manifest.name)
            .finish()
    }
}

/// The last few meaningful lines of a long abi_stable report (a layout mismatch prints
/// hundreds of lines; the end says what differs).
fn tail_lines(text: &str, lines: usize) -> String {
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = kept.len().saturating_sub(lines);
    kept[start..].join(" | ")
}

fn classify(path: &Path, err: LibraryError) -> LoadError {
    let path = path.to_owned();
    match err {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::IncompatibleSdk {
            path,
            expected_major: expected_version.major.to_string(),
            expected: expected_version.to_string(),
            found: actual_version.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin {
            path,
            reason: "it exports no idhost root module; connector plugins are built with `idhost_connector_sdk::export_connector!` as a cdylib".to_owned(),
        },
        LibraryError::OpenError { err, .. } => LoadError::NotAPlugin {
            path,
            reason: format!("the dynamic loader refused it: {err}"),
        },
        LibraryError::AbiInstability(report) => LoadError::Layout {
            path,
            detail: tail_lines(&report.to_string(), 4),
        },
        other => LoadError::NotAPlugin {
            path,
            reason: tail_lines(&other.to_string(), 3),
        },
    }
}

/// Loads the plugin at `path`, checks its SDK version, layout and interface version, and reads
/// its manifest. Never panics on a bad file.
pub fn load(path: &Path) -> Result<PluginLibrary, LoadError> {
    crate::abi::tune_malloc();
    let header = lib_header_from_path(path).map_err(|err| classify(path, err))?;
    let module = header
        .init_root_module::<ConnectorModRef>()
        .map_err(|err| classify(path, err))?;
    let found = module.interface_version();
    if found != INTERFACE_VERSION {
        return Err(LoadError::InterfaceVersion {
            path: path.to_owned(),
            expected: INTERFACE_VERSION,
            found,
        });
    }
    let manifest_json = (module.manifest())()
        .into_result()
        .map_err(|err| LoadError::Manifest {
            path: path.to_owned(),
            reason: ConnectorError::from(err).message,
        })?;
    let manifest: Manifest =
        serde_json::from_str(manifest_json.as_str()).map_err(|err| LoadError::Manifest {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
    if manifest.name.is_empty() {
        return Err(LoadError::Manifest {
            path: path.to_owned(),
            reason: "the connector name is empty".to_owned(),
        });
    }
    Ok(PluginLibrary {
        path: path.to_owned(),
        module,
        manifest: Arc::new(manifest),
    })
}

impl PluginLibrary {
    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connector's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The interface version the plugin speaks.
    pub fn interface_version(&self) -> u32 {
        self.module.interface_version()
    }

    /// Opens a connector instance for one source with `settings` (the `[sources.X.settings]`
    /// table as JSON) and the host's `services` for that source. The host advertises no
    /// [`HostFeatures`]: a page that asks for a relist fails the call.
    pub async fn open(
        &self,
        settings: &serde_json::Value,
        source: SourceInfo,
        max_log_level: u8,
        services: Arc<dyn HostServices>,
    ) -> Result<ConnectorInstance, ConnectorError> {
        self.open_with(
            settings,
            source,
            max_log_level,
            HostFeatures::none(),
            services,
        )
        .await
    }

    /// [`PluginLibrary::open`] for a host that supports `features` (e.g. relisting).
    pub async fn open_with(
        &self,
        settings: &serde_json::Value,
        source: SourceInfo,
        max_log_level: u8,
        features: HostFeatures,
        services: Arc<dyn HostServices>,
    ) -> Result<ConnectorInstance, ConnectorError> {
        let settings = codec::encode(settings)?;
        let info = codec::encode(&OpenInfo {
            source,
            max_log_level,
            host: features,
        })?;
        let services = HostServicesAbi_TO::from_value(HostAdapter { inner: services }, TD_Opaque);
        let fut = (self.module.open())(settings.into(), info.into(), services);
        let instance = fut.await.into_result().map_err(ConnectorError::from)?;
        Ok(ConnectorInstance {
            inner: Arc::new(instance),
            manifest: self.manifest.clone(),
            features,
        })
    }
}

/// One opened connector. Cheap to clone; every call is cancellable by dropping its future.
#[derive(Clone)]
pub struct ConnectorInstance {
    inner: Arc<ConnectorAbi_TO<'static, RBox<()>>>,
    manifest: Arc<Manifest>,
    features: HostFeatures,
}

impl std::fmt::Debug for ConnectorInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorInstance")
            .field("connector", &self.manifest.name)
            .finish()
    }
}

impl ConnectorInstance {
    /// The connector's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Calls operation `op` with a raw JSON payload (the benchmark measures the boundary with it).
    pub async fn call_raw(&self, op: &str, payload: String) -> Result<String, ConnectorError> {
        let fut = self.inner.call(RString::from(op), RString::from(payload));
        fut.await
            .into_result()
            .map(String::from)
            .map_err(ConnectorError::from)
    }

    async fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        op: &str,
        args: &A,
    ) -> Result<R, ConnectorError> {
        let payload = codec::encode(args)?;
        let answer = self.call_raw(op, payload).await?;
        codec::decode(op, &answer)
    }

    /// An empty round trip across the boundary.
    pub async fn noop(&self) -> Result<(), ConnectorError> {
        self.call_raw(codec::OP_NOOP, String::new()).await.map(drop)
    }

    /// Connection and permission check.
    pub async fn validate(&self) -> Result<(), ConnectorError> {
        let _: serde_json::Value = self.call(codec::OP_VALIDATE, &()).await?;
        Ok(())
    }

    /// What the connector says about its credentials for `idhost check` (e.g. a certificate's
    /// subject and expiry). A plugin built before this operation existed has none to say.
    pub async fn check_notes(&self) -> Result<Vec<crate::connector::CheckNote>, ConnectorError> {
        match self.call(codec::OP_CHECK_NOTES, &()).await {
            Err(err) if err.kind == crate::ErrorKind::Unsupported => Ok(Vec::new()),
            other => other,
        }
    }

    /// The interactive flow `idhost login` runs for this source.
    pub async fn login_flow(&self) -> Result<crate::login::LoginFlow, ConnectorError> {
        self.call(codec::OP_LOGIN_FLOW, &()).await
    }

    /// One page of resources of type `rtype`.
    pub async fn list(
        &self,
        rtype: &str,
        page: PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        let page = self
            .call(
                codec::OP_LIST,
                &codec::ListArgs {
                    rtype: rtype.to_owned(),
                    page,
                },
            )
            .await?;
        // A plugin's glue refuses a relist to a host that did not advertise it; a plugin that
        // sends one anyway still never reaches a host loop that would take it for the end.
        crate::abi::plugin::relist_for(self.features, rtype, page)
    }

    /// One page of entitlements of `resource`.
    pub async fn entitlements(
        &self,
        resource: &Resource,
        page: PageToken,
    ) -> Result<Page<Entitlement>, ConnectorError> {
        let page = self
            .call(
                codec::OP_ENTITLEMENTS,
                &codec::DetailArgs {
                    resource: resource.clone(),
                    page,
                },
            )
            .await?;
        crate::abi::plugin::relist_for(self.features, &resource.id, page)
    }

    /// One page of grants on `resource`.
    pub async fn grants(
        &self,
        resource: &Resource,
        page: PageToken,
    ) -> Result<Page<Grant>, ConnectorError> {
        let page = self
            .call(
                codec::OP_GRANTS,
                &codec::DetailArgs {
                    resource: resource.clone(),
                    page,
                },
            )
            .await?;
        crate::abi::plugin::relist_for(self.features, &resource.id, page)
    }

    /// Grants `entitlement` to `principal`.
    pub async fn grant(
        &self,
        entitlement: &EntitlementRef,
        principal: &ResourceRef,
    ) -> Result<GrantOutcome, ConnectorError> {
        entitlement.validate()?;
        principal.validate()?;
        self.call(
            codec::OP_GRANT,
            &codec::GrantArgs {
                entitlement: entitlement.clone(),
                principal: principal.clone(),
            },
        )
        .await
    }

    /// Revokes `grant`.
    pub async fn revoke(&self, grant: &GrantRef) -> Result<RevokeOutcome, ConnectorError> {
        grant.validate()?;
        self.call(
            codec::OP_REVOKE,
            &codec::RevokeArgs {
                grant: grant.clone(),
            },
        )
        .await
    }

    /// Creates an account.
    pub async fn create_account(
        &self,
        info: AccountInfo,
        credentials: CredentialOptions,
    ) -> Result<AccountCreated, ConnectorError> {
        self.call(
            codec::OP_CREATE_ACCOUNT,
            &codec::CreateAccountArgs { info, credentials },
        )
        .await
    }

    /// Creates a non-user resource.
    pub async fn create_resource(
        &self,
        rtype: &str,
        spec: ResourceSpec,
    ) -> Result<Resource, ConnectorError> {
        self.call(
            codec::OP_CREATE_RESOURCE,
            &codec::CreateResourceArgs {
                rtype: rtype.to_owned(),
                spec,
            },
        )
        .await
    }

    /// Updates a resource.
    pub async fn update(
        &self,
        resource: &ResourceRef,
        changes: Changes,
    ) -> Result<(), ConnectorError> {
        resource.validate()?;
        let _: serde_json::Value = self
            .call(
                codec::OP_UPDATE,
                &codec::UpdateArgs {
                    resource: resource.clone(),
                    changes,
                },
            )
            .await?;
        Ok(())
    }

    /// Deletes a resource.
    pub async fn delete(&self, resource: &ResourceRef) -> Result<(), ConnectorError> {
        resource.validate()?;
        let _: serde_json::Value = self
            .call(
                codec::OP_DELETE,
                &codec::DeleteArgs {
                    resource: resource.clone(),
                },
            )
            .await?;
        Ok(())
    }
}

/// Host services behind the ABI. Every method catches panics from the host implementation:
/// a panic in a host callback called from plugin code would otherwise end the process.
struct HostAdapter {
    inner: Arc<dyn HostServices>,
}

impl HostServicesAbi for HostAdapter {
    fn http(&self, request: AbiHttpRequest) -> FfiFuture<RResult<AbiHttpResponse, AbiError>> {
        let inner = self.inner.clone();
        async move {
            let result = AssertUnwindSafe(async move { inner.http(request.into()).await })
                .catch_unwind()
                .await
                .unwrap_or_else(|payload| {
                    Err(ConnectorError::internal(format!(
                        "the host's HTTP service panicked: {}",
                        panic_message(payload.as_ref())
                    )))
                });
            RResult::from(result.map(AbiHttpResponse::from).map_err(AbiError::from))
        }
        .into_ffi()
    }

    fn log(&self, record: AbiLogRecord) {
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.log(record.into())));
    }

    fn state_get(&self, key: RStr<'_>) -> ROption<RString> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.state_get(key.as_str())))
            .ok()
            .flatten()
            .map(RString::from)
            .into()
    }

    fn state_set(&self, key: RStr<'_>, value: ROption<RString>) {
        let value = value.into_option().map(String::from);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.inner.state_set(key.as_str(), value)
        }));
    }

    fn sleep(&self, millis: u64) -> FfiFuture<()> {
        let inner = self.inner.clone();
        async move {
            let _ =
                AssertUnwindSafe(async move { inner.sleep(Duration::from_millis(millis)).await })
                    .catch_unwind()
                    .await;
        }
        .into_ffi()
    }
}
