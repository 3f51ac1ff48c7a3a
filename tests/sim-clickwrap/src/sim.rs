//! `Simulator`: shared state, the router, and the controls tests use to change the account.

use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use serde_json::Value;
use sim_common::{Faults, FixedWindow, RunningServer, fault_layer, unexpected_route};

use crate::auth::{self, Tokens};
use crate::config::SimConfig;
use crate::store::Store;
use crate::{dataset, routes};

/// REST limits of reference/rate-limits.
pub(crate) struct Limits {
    /// "2000 maximum per 1 minute", per API token.
    pub(crate) authenticated: FixedWindow,
    /// "60 maximum per 1 minute", per IP address.
    pub(crate) unauthenticated: FixedWindow,
}

struct Inner {
    config: SimConfig,
    store: RwLock<Store>,
    tokens: Tokens,
    limits: Limits,
    faults: Faults,
}

/// One simulated Clickwrap account behind `https://api.pactsafe.com`. Clones share state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("account_id", &self.inner.config.account_id)
            .field("users", &self.user_count())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Builds the account described by `config`; the dataset depends only on `config`.
    pub fn new(config: SimConfig) -> Self {
        let store = dataset::build(&config);
        let faults = Faults::new();
        faults.set_latency(config.latency);
        Self {
            inner: Arc::new(Inner {
                store: RwLock::new(store),
                tokens: Tokens::default(),
                limits: Limits {
                    authenticated: FixedWindow::new(2000, Duration::from_secs(60)),
                    unauthenticated: FixedWindow::new(60, Duration::from_secs(60)),
                },
                faults,
                config,
            }),
        }
    }

    /// The routes, behind the bearer check, the fault layer and the loud fallback.
    ///
    /// The origin stands for `https://api.pactsafe.com`: REST under `/v1.1` (the `servers` entry
    /// of every reference page) and the token endpoint at `/oauth/token`
    /// (reference/createregenerate-access-token).
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/v1.1/sites", get(routes::list_sites))
            .route("/v1.1/sites/{site_id}", get(routes::get_site))
            .route(
                "/v1.1/sites/{site_id}/memberships",
                get(routes::list_memberships),
            )
            .route(
                "/v1.1/accounts/{account_id}/members",
                get(routes::list_members),
            )
            .route_layer(from_fn_with_state(self.clone(), auth::require_bearer));
        Router::new()
            .route("/oauth/token", post(auth::token))
            .merge(api)
            .fallback(unexpected_route)
            .with_state(self.clone())
            .layer(from_fn_with_state(self.inner.faults.clone(), fault_layer))
    }

    /// Serves `router()` on `127.0.0.1:port` (`0` picks a free port).
    pub async fn serve(&self, port: u16) -> std::io::Result<RunningServer> {
        sim_common::serve(self.router(), port).await
    }

    /// Latency, scripted faults and the request log.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The configuration this simulator was built from.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Number of current account members.
    pub fn user_count(&self) -> usize {
        self.read(|s| s.members.len())
    }

    /// Ids of current account members, ascending.
    pub fn user_ids(&self) -> Vec<u64> {
        self.read(|s| s.members.clone())
    }

    /// Ids of the account's sites, ascending; the first is the primary site.
    pub fn site_ids(&self) -> Vec<u64> {
        self.read(|s| s.sites.iter().map(|x| x.id).collect())
    }

    /// A current member as the API renders it, or `None` if unknown or removed.
    pub fn user(&self, id: u64) -> Option<Value> {
        self.read(|s| s.active_user(id).map(|u| u.to_json()))
    }

    /// Removes a user from the account and from every site; `false` if unknown or already removed.
    ///
    /// Lets tests model an admin removing someone, which connectors must turn into a deactivation.
    /// The simulator allows removing an owner, which the UI refuses ("Owners … cannot be removed
    /// from a site unless they transfer the Owner role", support article "Manage Clickwrap Users").
    pub fn remove_user(&self, id: u64) -> bool {
        self.write(|s| s.remove(id))
    }

    /// Brings a removed user back with the same id, fields and site roles; `false` if not removed.
    pub fn restore_user(&self, id: u64) -> bool {
        self.write(|s| s.restore(id))
    }

    /// Invites a user: a new, unverified account member who is a `member` of the first site.
    /// An email that already has a user returns that user's id (re-added if removed).
    pub fn add_user(&self, email: &str, name: &str) -> u64 {
        self.write(|s| s.add(email, name))
    }

    /// Sets one field of a user (`name`, `email`, `locale`, `time_zone`, `verified`,
    /// `verified_time`, or any new field). `false` if the user is unknown, the field is derived
    /// (`id`, `profiles`), the JSON type does not match, or the email belongs to someone else.
    pub fn set_user_field(&self, id: u64, field: &str, value: Value) -> bool {
        self.write(|s| s.set_field(id, field, value))
    }

    /// Invalidates every token issued by `/oauth/token`, so clients must fetch a new one. The
    /// configured long-lived `access_token` stays valid: it models the key shown once in the UI.
    pub fn expire_tokens(&self) {
        self.inner.tokens.expire_all();
    }

    pub(crate) fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Runs `f` under the read lock. Callers are synchronous, so the lock never spans an await.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        let guard: RwLockReadGuard<'_, Store> =
            self.inner.store.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    fn write<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut guard: RwLockWriteGuard<'_, Store> =
            self.inner.store.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}
