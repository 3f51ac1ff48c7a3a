//! Plugin-side glue: what `export_connector!` instantiates for a connector type.
//!
//! Every exported function and every returned future runs inside `catch_unwind`, so a panic
//! in connector code becomes an `Internal` error of that source instead of unwinding across
//! `extern "C"` (which would abort the host).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use abi_stable::library::LibHeader;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RBox, ROption, RResult, RStr, RString};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use tracing::Instrument as _;

use super::codec::{self, OpenInfo};
use super::types::{AbiHttpRequest, ConnectorAbi, HostServicesAbi_TO};
use super::{AbiError, ConnectorAbi_TO, ConnectorMod, ConnectorModRef, INTERFACE_VERSION, logging};
use crate::connector::{Connector, Page, Provisioner};
use crate::context::{Context, HostFeatures};
use crate::error::ConnectorError;
use crate::http::{HttpRequest, HttpResponse};
use crate::services::{HostServices, LogRecord};

/// Text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// Runs `fut`, turning a panic anywhere in it (even before its first `.await`) into an error.
pub(crate) async fn catching<T>(
    what: &'static str,
    fut: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(ConnectorError::internal(format!(
            "the connector panicked during {what}: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

/// Host services inside the plugin, over the ABI object the host passed to `open`.
pub(crate) struct PluginServices {
    host: HostServicesAbi_TO<'static, RBox<()>>,
    pub(crate) instance: u64,
}

impl HostServices for PluginServices {
    fn http(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, ConnectorError>> {
        let fut = self.host.http(AbiHttpRequest::from(request));
        Box::pin(async move {
            fut.await
                .into_result()
                .map(HttpResponse::from)
                .map_err(ConnectorError::from)
        })
    }

    fn log(&self, record: LogRecord) {
        self.host.log(record.into());
    }

    fn state_get(&self, key: &str) -> Option<String> {
        self.host
            .state_get(RStr::from_str(key))
            .into_option()
            .map(String::from)
    }

    fn state_set(&self, key: &str, value: Option<String>) {
        self.host
            .state_set(RStr::from_str(key), ROption::from(value.map(RString::from)));
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Box::pin(self.host.sleep(millis))
    }
}

type ProvisionDispatch<C> =
    fn(Arc<C>, String, String) -> BoxFuture<'static, Option<Result<String, ConnectorError>>>;

/// One opened connector behind the ABI.
struct Glue<C: Connector> {
    connector: Arc<C>,
    instance: u64,
    source: String,
    provision: Option<ProvisionDispatch<C>>,
    host: HostFeatures,
}

impl<C: Connector> ConnectorAbi for Glue<C> {
    fn call(&self, op: RString, payload: RString) -> FfiFuture<RResult<RString, AbiError>> {
        let connector = self.connector.clone();
        let provision = self.provision;
        let host = self.host;
        let span = tracing::info_span!("connector", idhost_instance = self.instance, source = %self.source, op = %op);
        let op = String::from(op);
        let payload = String::from(payload);
        async move {
            let result = catching("a call", async move {
                if let Some(result) = dispatch_sync(connector.as_ref(), host, &op, &payload).await {
                    return result;
                }
                if let Some(provision) = provision
                    && let Some(result) = provision(connector, op.clone(), payload).await
                {
                    return result;
                }
                Err(ConnectorError::unsupported(format!(
                    "this connector does not support the `{op}` operation"
                )))
            })
            .await;
            RResult::from(result.map(RString::from).map_err(AbiError::from))
        }
        .instrument(span)
        .into_ffi()
    }
}

async fn dispatch_sync<C: Connector>(
    connector: &C,
    host: HostFeatures,
    op: &str,
    payload: &str,
) -> Option<Result<String, ConnectorError>> {
    use codec::*;
    let result = match op {
        OP_NOOP => Ok(String::new()),
        OP_VALIDATE => match connector.validate().await {
            Ok(()) => Ok("null".to_owned()),
            Err(err) => Err(err),
        },
        OP_CHECK_NOTES => encode(&connector.check_notes()),
        OP_LOGIN_FLOW => match connector.login_flow().await {
            Ok(flow) => encode(&flow),
            Err(err) => Err(err),
        },
        OP_LIST => {
            async {
                let args: ListArgs = decode("list arguments", payload)?;
                let page = connector.list(&args.rtype, args.page).await?;
                encode(&relist_for(host, &args.rtype, page)?)
            }
            .await
        }
        OP_ENTITLEMENTS => {
            async {
                let args: DetailArgs = decode("entitlements arguments", payload)?;
                let page = connector.entitlements(&args.resource, args.page).await?;
                encode(&relist_for(host, &args.resource.id, page)?)
            }
            .await
        }
        OP_GRANTS => {
            async {
                let args: DetailArgs = decode("grants arguments", payload)?;
                let page = connector.grants(&args.resource, args.page).await?;
                encode(&relist_for(host, &args.resource.id, page)?)
            }
            .await
        }
        _ => return None,
    };
    Some(result)
}

/// A relist page goes to a host that advertised it can relist; to any other host it is an
/// error, because an older host would take the empty page for the end of a complete listing
/// and deactivate everything it had not seen yet.
pub(crate) fn relist_for<T>(
    host: HostFeatures,
    what: &str,
    page: Page<T>,
) -> Result<Page<T>, ConnectorError> {
    match &page.relist {
        Some(reason) if !host.relist => Err(ConnectorError {
            relist: true,
            ..ConnectorError::unavailable(format!(
                "listing `{what}`: the upstream's listing shifted while it was paged ({reason}); \
             this host cannot list it again within one sync, so the sync stops here rather \
             than treat an incomplete listing as complete (nothing is deactivated); the next \
             sync lists it from the start"
            ))
        }),
        _ => Ok(page),
    }
}

/// Provisioning operations, for connectors exported with `provisioner`.
pub(crate) fn provision_dispatch<C: Provisioner>(
    connector: Arc<C>,
    op: String,
    payload: String,
) -> BoxFuture<'static, Option<Result<String, ConnectorError>>> {
    Box::pin(async move {
        use codec::*;
        let c = connector.as_ref();
        let p = payload.as_str();
        let result = match op.as_str() {
            OP_GRANT => {
                async {
                    let args: GrantArgs = decode("grant arguments", p)?;
                    args.entitlement.validate()?;
                    args.principal.validate()?;
                    encode(&c.grant(&args.entitlement, &args.principal).await?)
                }
                .await
            }
            OP_REVOKE => {
                async {
                    let args: RevokeArgs = decode("revoke arguments", p)?;
                    args.grant.validate()?;
                    encode(&c.revoke(&args.grant).await?)
                }
                .await
            }
            OP_CREATE_ACCOUNT => {
                async {
                    let args: CreateAccountArgs = decode("create-account arguments", p)?;
                    encode(&c.create_account(args.info, args.credentials).await?)
                }
                .await
            }
            OP_CREATE_RESOURCE => {
                async {
                    let args: CreateResourceArgs = decode("create-resource arguments", p)?;
                    encode(&c.create_resource(&args.rtype, args.spec).await?)
                }
                .await
            }
            OP_UPDATE => {
                async {
                    let args: UpdateArgs = decode("update arguments", p)?;
                    args.resource.validate()?;
                    c.update(&args.resource, args.changes).await?;
                    Ok("null".to_owned())
                }
                .await
            }
            OP_DELETE => {
                async {
                    let args: DeleteArgs = decode("delete arguments", p)?;
                    args.resource.validate()?;
                    c.delete(&args.resource).await?;
                    Ok("null".to_owned())
                }
                .await
            }
            _ => return None,
        };
        Some(result)
    })
}

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

extern "C" fn manifest<C: Connector>() -> RResult<RString, AbiError> {
    let result =
        std::panic::catch_unwind(|| codec::encode(&C::manifest())).unwrap_or_else(|payload| {
            Err(ConnectorError::internal(format!(
                "the connector panicked building its manifest: {}",
                panic_message(payload.as_ref())
            )))
        });
    RResult::from(result.map(RString::from).map_err(AbiError::from))
}

fn open_impl<C: Connector>(
    settings: RString,
    info: RString,
    host: HostServicesAbi_TO<'static, RBox<()>>,
    provision: Option<ProvisionDispatch<C>>,
) -> FfiFuture<RResult<ConnectorAbi_TO<'static, RBox<()>>, AbiError>> {
    let started = std::panic::catch_unwind(AssertUnwindSafe(move || {
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let services = Arc::new(PluginServices { host, instance });
        async move {
            let info: OpenInfo = codec::decode("open information", info.as_str())?;
            logging::register(services.clone(), info.max_log_level);
            let source = info.source.source.clone();
            let host = info.host;
            let settings: C::Settings = crate::settings::from_str(settings.as_str())
                .map_err(|err| err.context(format!("invalid settings for source `{source}`")))?;
            let ctx = Context::new(services.clone(), info.source);
            let span = tracing::info_span!("connector", idhost_instance = instance, source = %source, op = "open");
            let connector = catching("open", C::open(settings, ctx))
                .instrument(span)
                .await?;
            let glue = Glue {
                connector: Arc::new(connector),
                instance,
                source,
                provision,
                host,
            };
            Ok(ConnectorAbi_TO::from_value(glue, TD_Opaque))
        }
    }));
    match started {
        Ok(fut) => async move {
            let result = catching("open", fut).await;
            RResult::from(result.map_err(AbiError::from))
        }
        .into_ffi(),
        Err(payload) => {
            let err = ConnectorError::internal(format!(
                "the connector panicked while opening: {}",
                panic_message(payload.as_ref())
            ));
            async move { RResult::RErr(AbiError::from(err)) }.into_ffi()
        }
    }
}

extern "C" fn open_sync_only<C: Connector>(
    settings: RString,
    info: RString,
    host: HostServicesAbi_TO<'static, RBox<()>>,
) -> FfiFuture<RResult<ConnectorAbi_TO<'static, RBox<()>>, AbiError>> {
    open_impl::<C>(settings, info, host, None)
}

extern "C" fn open_provisioner<C: Provisioner>(
    settings: RString,
    info: RString,
    host: HostServicesAbi_TO<'static, RBox<()>>,
) -> FfiFuture<RResult<ConnectorAbi_TO<'static, RBox<()>>, AbiError>> {
    open_impl::<C>(settings, info, host, Some(provision_dispatch::<C>))
}

fn root_module(
    interface_version: u32,
    open: super::OpenFn,
    manifest: extern "C" fn() -> RResult<RString, AbiError>,
) -> ConnectorModRef {
    ConnectorMod {
        interface_version,
        manifest,
        open,
    }
    .leak_into_prefix()
}

extern "C" fn load_sync_only<C: Connector>() -> abi_stable::library::RootModuleResult {
    abi_stable::library::__call_root_module_loader(|| {
        Ok::<_, abi_stable::std_types::RBoxError>(root_module(
            INTERFACE_VERSION,
            open_sync_only::<C>,
            manifest::<C>,
        ))
    })
}

extern "C" fn load_provisioner<C: Provisioner>() -> abi_stable::library::RootModuleResult {
    abi_stable::library::__call_root_module_loader(|| {
        Ok::<_, abi_stable::std_types::RBoxError>(root_module(
            INTERFACE_VERSION,
            open_provisioner::<C>,
            manifest::<C>,
        ))
    })
}

extern "C" fn load_with_version<C: Connector, const V: u32>()
-> abi_stable::library::RootModuleResult {
    abi_stable::library::__call_root_module_loader(|| {
        Ok::<_, abi_stable::std_types::RBoxError>(root_module(
            V,
            open_sync_only::<C>,
            manifest::<C>,
        ))
    })
}

/// The library header for a sync-only connector.
pub const fn lib_header_sync<C: Connector>() -> LibHeader {
    // SAFETY: `from_constructor` requires the constructor to return a `PrefixRef` of the module
    // type it is instantiated with. `load_sync_only` returns exactly a `ConnectorModRef` through
    // abi_stable's own `__call_root_module_loader`, the same path `#[export_root_module]` uses.
    unsafe {
        LibHeader::from_constructor::<ConnectorModRef>(
            load_sync_only::<C>,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
}

/// The library header for a connector that also provisions.
pub const fn lib_header_provisioner<C: Provisioner>() -> LibHeader {
    // SAFETY: as in `lib_header_sync`: `load_provisioner` returns a `ConnectorModRef`.
    unsafe {
        LibHeader::from_constructor::<ConnectorModRef>(
            load_provisioner::<C>,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
}

/// A header claiming interface version `V`: only for the loader's own rejection tests.
pub const fn lib_header_with_version<C: Connector, const V: u32>() -> LibHeader {
    // SAFETY: as in `lib_header_sync`: `load_with_version` returns a `ConnectorModRef`.
    unsafe {
        LibHeader::from_constructor::<ConnectorModRef>(
            load_with_version::<C, V>,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
}
