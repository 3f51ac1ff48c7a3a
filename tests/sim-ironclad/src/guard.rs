//! What every SCIM call must pass before its handler runs: a valid bearer token, the account's
//! rate limit, an acting user, and the operation's scope.

use std::time::Duration;

use axum::http::{HeaderMap, header};
use sim_common::FixedWindow;

use crate::Simulator;
use crate::oauth::{INVALID_TOKEN, Scope};
use crate::respond::ScimError;

/// Which documented limit a request counts against.
// developer.ironcladapp.com/reference/clm-api-rate-limits ("These API limits are set on a per
// account basis"): "GET/PUT/POST scim/v2/users* 600 requests per minute", "PATCH/DELETE
// scim/v2/users* 50 requests per minute", "All scim/v2/groups* 600 requests per minute", "All
// other APIs 800 requests per minute".
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bucket {
    UsersReadWrite,
    UsersPatchDelete,
    Groups,
    Other,
}

/// The account's fixed one-minute windows.
#[derive(Debug)]
pub(crate) struct Limits {
    users_read_write: FixedWindow,
    users_patch_delete: FixedWindow,
    groups: FixedWindow,
    other: FixedWindow,
}

impl Limits {
    pub(crate) fn documented() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            users_read_write: FixedWindow::new(600, minute),
            users_patch_delete: FixedWindow::new(50, minute),
            groups: FixedWindow::new(600, minute),
            other: FixedWindow::new(800, minute),
        }
    }

    fn check(&self, bucket: Bucket) -> Result<(), ScimError> {
        let window = match bucket {
            Bucket::UsersReadWrite => &self.users_read_write,
            Bucket::UsersPatchDelete => &self.users_patch_delete,
            Bucket::Groups => &self.groups,
            Bucket::Other => &self.other,
        };
        window
            .check("account")
            .map_err(|_| ScimError::too_many_requests())
    }
}

/// Admits one SCIM request, in this order: bearer token (401), rate limit (429, counted only for
/// authenticated requests since limits are per account), acting user (403), scope (403).
pub(crate) fn admit(
    sim: &Simulator,
    headers: &HeaderMap,
    bucket: Bucket,
    scope: Scope,
) -> Result<(), ScimError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ScimError::unauthorized(INVALID_TOKEN))?;
    let scopes = sim
        .tokens()
        .authenticate(bearer, &sim.config().bearer_token)
        .map_err(ScimError::unauthorized)?;
    if let Some(limits) = sim.limits() {
        limits.check(bucket)?;
    }
    // SCIM OpenAPI parameters XAsUserEmail / XAsUserId: "This or `x-as-user-id` is required when
    // the associated token was produced from the Client Credentials grant or with legacy bearer
    // tokens" — which is every token here. The SCIM endpoints document only 403 for a refused
    // actor (ForbiddenResponse403, `schemas` and `status` only), so a missing or unknown actor is
    // 403. Any existing user may act; per-user permissions are not simulated.
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let actor_exists = {
        let store = sim.read();
        match (header("x-as-user-email"), header("x-as-user-id")) {
            (Some(email), _) => store.user_id_by_name(email).is_some(),
            (None, Some(id)) => store.users.contains(id),
            (None, None) => false,
        }
    };
    // A person's token (authorization-code grant) acts as that person: no actor needed.
    if !actor_exists && !sim.tokens().acts_as_person(bearer) {
        return Err(ScimError::forbidden());
    }
    // Each operation's doc names its scope ("OAuth Scope required: scim.users.readUsers"); a token
    // without it is refused like any other permission failure, with the documented 403.
    if !scopes.has(scope) {
        return Err(ScimError::forbidden());
    }
    Ok(())
}
