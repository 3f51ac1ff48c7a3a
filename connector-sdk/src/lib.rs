//! # idhost connector SDK
//!
//! Write an idhost connector plugin in plain async Rust. Implement [`Connector`] (and, to change
//! the upstream, [`Provisioner`]), then export it:
//!
//! ```no_run
//! use idhost_connector_sdk::prelude::*;
//!
//! pub struct Acme {
//!     ctx: Context,
//!     base_url: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! pub struct AcmeSettings {
//!     base_url: String,
//! }
//!
//! /// One page of the upstream's user list, as its docs show it.
//! #[derive(serde::Deserialize)]
//! struct UserPage {
//!     users: Vec<AcmeUser>,
//!     next: Option<String>,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct AcmeUser {
//!     id: String,
//!     name: String,
//! }
//!
//! impl Connector for Acme {
//!     type Settings = AcmeSettings;
//!
//!     fn manifest() -> Manifest {
//!         Manifest::new("acme".into(), env!("CARGO_PKG_VERSION").into(), "Acme users".into())
//!             .with_resource_types(vec![ResourceTypeSpec::new("user", "Acme users")])
//!             .with_config_keys(vec![ConfigKey::required("base_url", "The API's origin")])
//!     }
//!
//!     async fn open(settings: AcmeSettings, ctx: Context) -> Result<Self, ConnectorError> {
//!         Ok(Acme { ctx, base_url: settings.base_url })
//!     }
//!
//!     async fn list(&self, _rtype: &str, page: PageToken) -> Result<Page<Resource>, ConnectorError> {
//!         let url = match page.as_str() {
//!             Some(next) => next.to_owned(),
//!             None => format!("{}/users", self.base_url),
//!         };
//!         let answer: UserPage = self.ctx.http().get(url).send().await?.json()?;
//!         let users = answer
//!             .users
//!             .iter()
//!             .map(|u| Resource::new("user", &u.id, u.name.clone()))
//!             .collect();
//!         Ok(Page::new(users, answer.next))
//!     }
//! }
//!
//! export_connector!(Acme); // or export_connector!(Acme, provisioner);
//! ```
//!
//! Build the crate as a `cdylib` and drop the library into the host's plugin directory.
//!
//! What the SDK does for you: the stable ABI (abi_stable, FFI-safe futures polled on the host's
//! runtime), panic containment (a panic fails the call, never the host), log forwarding (your
//! `tracing` events reach the host's subscriber), and upstream HTTP through the host (retries,
//! `Retry-After`, rate budgets, dry-run, redaction). A connector never touches an ABI type.
#![deny(missing_docs)]

pub mod connector;
pub mod context;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod http;
pub mod login;
pub mod model;
pub mod oauth;
pub mod oauth_http;
pub mod paging;
pub mod services;
pub mod settings;
#[cfg(feature = "testing")]
pub mod testing;

// The ABI boundary is the one place `unsafe` is allowed; each use says why it is sound.
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod abi;
mod secret_serde;
mod wire;
pub use wire::UnknownName;

pub use connector::{
    AccountCreated, AccountInfo, Capability, Changes, CheckNote, ConfigKey, Connector,
    CredentialOptions, GrantOutcome, Manifest, Page, PageToken, Provisioner, ResourceSpec,
    ResourceTypeSpec, RevokeOutcome,
};
pub use context::{Context, HostFeatures, SourceInfo, State};
pub use error::{ConnectorError, ErrorKind};
pub use http::{Budget, Http, HttpRequest, HttpResponse, RequestBuilder};
pub use model::*;
pub use secrecy::{ExposeSecret, SecretString};
pub use settings::{SettingsError, SettingsErrorKind};

/// Everything a connector module usually needs.
pub mod prelude {
    pub use crate::connector::{
        AccountCreated, AccountInfo, Capability, Changes, CheckNote, ConfigKey, Connector,
        CredentialOptions, GrantOutcome, Manifest, Page, PageToken, Provisioner, ResourceSpec,
        ResourceTypeSpec, RevokeOutcome,
    };
    pub use crate::context::{Context, SourceInfo};
    pub use crate::error::{ConnectorError, ErrorKind};
    pub use crate::export_connector;
    pub use crate::http::{Budget, Http, HttpResponse};
    pub use crate::model::*;
    pub use crate::oauth::{CachedToken, TokenCache, TokenRequestStyle, TokenSource};
    pub use crate::paging::{CursorGuard, all_pages};
    pub use crate::settings::{SettingsError, SettingsErrorKind};
    pub use secrecy::{ExposeSecret, SecretString};
}

#[doc(hidden)]
pub mod __private {
    pub use crate::abi::plugin::{
        lib_header_provisioner, lib_header_sync, lib_header_with_version,
    };
    pub use abi_stable::library::LibHeader;
}

/// Exports a connector type as this library's plugin root module.
///
/// `export_connector!(MyConnector)` for a sync-only connector,
/// `export_connector!(MyConnector, provisioner)` when it also implements [`Provisioner`].
///
/// The static is named as abi_stable's loader expects (`ROOT_MODULE_LOADER_NAME`) and built with
/// `$crate` paths, so the plugin crate needs no abi_stable dependency of its own.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        #[doc(hidden)]
        #[allow(unsafe_code, non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader =
            $crate::__private::lib_header_sync::<$connector>();
    };
    ($connector:ty, provisioner) => {
        #[doc(hidden)]
        #[allow(unsafe_code, non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader =
            $crate::__private::lib_header_provisioner::<$connector>();
    };
    // For the loader's own tests: a plugin claiming another interface version.
    ($connector:ty, __interface_version = $version:literal) => {
        #[doc(hidden)]
        #[allow(unsafe_code, non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader =
            $crate::__private::lib_header_with_version::<$connector, $version>();
    };
}
