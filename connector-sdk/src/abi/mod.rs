//! The stable ABI between the host and connector plugins. Nothing here is public API: connector
//! authors use the traits in [`crate::connector`], the host uses [`crate::host`].
//!
//! Shape (abi_stable's interface / plugin / host split):
//! - one prefix-type root module per plugin ([`ConnectorMod`]): the interface version, the
//!   manifest, and `open`. Fields are only ever appended (below the last prefix field), so a
//!   newer host still loads an older plugin of the same major version;
//! - two `#[sabi_trait]` objects: [`HostServicesAbi`] (host → plugin services: HTTP, logs,
//!   state, timers) and [`ConnectorAbi`] (plugin → host: one `call(op, payload)` entry point);
//! - every async call crosses as an `async_ffi::FfiFuture`, polled on the host's tokio runtime,
//!   cancelled by dropping it;
//! - payloads cross as JSON text, one versioned encoding shared by both sides ([`codec`]).
//!   One entry point with named operations lets the interface grow (a new operation) without a
//!   layout change, and an old plugin answers an unknown operation with `Unsupported`.

// abi_stable's derive needs the `open` fn-pointer type spelled out (it does not see through type
// aliases) and repeats it in the accessors it generates, hence the module-wide allowance.
#![allow(clippy::type_complexity)]

pub(crate) mod codec;
pub(crate) mod logging;
pub(crate) mod plugin;
pub(crate) mod types;

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, RResult, RString};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings};
use async_ffi::FfiFuture;

pub(crate) use types::{AbiError, ConnectorAbi_TO, HostServicesAbi_TO};

/// Bumped on any change a plugin must be rebuilt for. The loader refuses a plugin built with
/// another value, naming both and the fix, before calling into it.
pub const INTERFACE_VERSION: u32 = 1;

/// The symbol the root module is exported under; `export_connector!` hard-codes it because
/// `#[export_root_module]` would need the plugin to depend on abi_stable itself. A unit test
/// checks it against `abi_stable::library::ROOT_MODULE_LOADER_NAME`.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// `open(settings JSON, open-info JSON, host services)` (the derive needs the type spelled out
/// in the struct, so this alias is for the glue only).
pub(crate) type OpenFn =
    extern "C" fn(
        RString,
        RString,
        HostServicesAbi_TO<'static, RBox<()>>,
    ) -> FfiFuture<RResult<ConnectorAbi_TO<'static, RBox<()>>, AbiError>>;

/// The root module every plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ConnectorModRef)))]
#[sabi(missing_field(panic))]
pub struct ConnectorMod {
    /// [`INTERFACE_VERSION`] of the SDK the plugin was built with.
    pub interface_version: u32,
    /// The manifest, as JSON.
    pub manifest: extern "C" fn() -> RResult<RString, AbiError>,
    /// Opens a connector instance for one source.
    ///
    /// Add new fields below this one, never above, and never change the ones above.
    #[sabi(last_prefix_field)]
    pub open: extern "C" fn(
        RString,
        RString,
        HostServicesAbi_TO<'static, RBox<()>>,
    )
        -> FfiFuture<RResult<ConnectorAbi_TO<'static, RBox<()>>, AbiError>>,
}

impl RootModule for ConnectorModRef {
    declare_root_module_statics! {ConnectorModRef}
    const BASE_NAME: &'static str = "idhost_connector";
    const NAME: &'static str = "idhost_connector";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Limits glibc's malloc to one arena, turns its fastbins off and fixes its mmap threshold,
/// once: the host calls it first thing, [`crate::host::load`] again before a plugin is mapped
/// (for a host of its own).
///
/// Host and plugins (`cdylib`s with Rust's default allocator) allocate with glibc's malloc,
/// which gives every thread that allocates at once an arena of its own, up to 8 per core,
/// each a 64 MB mapping that keeps what it freed. A sync allocates a page of records on one
/// thread and frees it on another (the plugin runtime's, tokio's, SQLite's blocking tasks), so
/// a page's buffers end up spread over arenas that each stay at their high-water mark. In one
/// arena, what one page freed is what the next page reuses. Measured on an Ironclad sync of
/// 12,500 users (peak RSS): mimalloc 208 MB, glibc with two arenas 145 MB, one arena 74 MB,
/// at the same CPU time there. It costs CPU where several threads allocate hard at once (the
/// Entra bench: 17 s with mimalloc, 30 s in one glibc arena), a part of which comes back with
/// fastbins off (`M_MXFAST = 0`): freed small chunks go to the per-thread cache or the bins
/// directly, so no large allocation stops to consolidate them under the arena's lock (10–13%
/// less CPU on an Entra sync of 30k users, the same RSS). A fixed `M_MMAP_THRESHOLD` of
/// 256 KiB (which also stops glibc raising it after each large free) gives a page's large
/// buffers — response bodies, the JSON of a page crossing the ABI — their own mappings, returned
/// whole when freed instead of kept at the heap's top: 69 → 61 MB on an Ironclad sync of 50,000
/// users, 55 → 50 MB at 20,000, no CPU change there or on Entra. An operator's own
/// `MALLOC_ARENA_MAX` wins (and leaves all three alone).
pub fn tune_malloc() {
    /// Allocations from this size up get a mapping of their own.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: `mallopt` only sets a tunable of glibc's allocator under its own lock; it is
        // sound to call from any thread at any time: M_ARENA_MAX only bounds arenas created
        // later (existing ones are kept), M_MXFAST consolidates the fastbins it retires before
        // it returns, and M_MMAP_THRESHOLD only decides how later allocations are served.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
            libc::mallopt(libc::M_MXFAST, 0);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
