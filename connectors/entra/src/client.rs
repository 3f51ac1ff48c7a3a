//! The Graph client: tokens, base URL, rate budgets, and the one request helper every call
//! goes through (bearer token, one retry after a 401, Graph error parsing).
//!
//! Retries on 429/5xx are the host's job (its HTTP service honours `Retry-After`); the only
//! retry loop in this crate is for reads *inside* a `$batch`, whose outer answer is 200 and
//! which the host therefore cannot see (batch.rs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idhost_connector_sdk::oauth::{AssertionSigner, TokenCache, TokenRequestStyle, TokenSource};
use idhost_connector_sdk::{
    Budget, ConnectorError, Context, HttpResponse, RequestBuilder, SecretString,
};
use serde_json::Value;

use crate::config::{Credential, Endpoints};
use crate::error::{GraphError, graph_error};

/// Graph's identity-and-access throttle, as host budgets (concepts/throttling-limits.md).
///
/// Reads are metered in resource units per app+tenant: S (< 50 users) 3,500, M (50–500)
/// 5,000, L (> 500) 8,000 per 10 s. Each request costs by its path (`users` 2,
/// `groups/{id}/members` 3, `transitiveMembers` 5, `appRoleAssignments` 2, anything else 1;
/// `$select` −1, `$expand` +1, `$top` under 20 −1, never below 1), and every inner request of a
/// `$batch` is charged on its own. So reads draw their cost from a units budget sized by the
/// tenant (the users listed so far, or at the last sync) at 95% of the quota: the host's clock
/// and Graph's are not the same clock, and a 429 costs a whole `Retry-After` second. Writes
/// have their own quota, 3,000 per 2 min 30 s per app+tenant. Whatever slips through is answered
/// 429 with `Retry-After`, which the host (outer) and batch.rs (inner) honour; a throttled
/// answer's `x-ms-throttle-scope` and `x-ms-throttle-information` are named in the error.
///
/// The other published limits — 150,000 units per 20 s and 70,000 writes per 5 min per app,
/// 18,000 writes per 5 min per tenant, and the global 130,000 requests per 10 s per app across
/// all tenants (the page's figure today; older copies said 2,000 per second) — count requests
/// of every tenant and app, which one source cannot see, so they are not paced here.
#[derive(Debug, Clone)]
pub(crate) struct Budgets {
    /// Resource units of S, M and L tenants.
    units: [Budget; 3],
    pub(crate) write: Budget,
}

/// Connector state key of the number of users the last full listing saw.
pub(crate) const TENANT_USERS_KEY: &str = "tenant_users";

/// Users from which a tenant is M (50) and L (501) for the throttle.
const TENANT_SIZES: [usize; 2] = [50, 501];

impl Budgets {
    fn new() -> Self {
        let units =
            |name: &str, quota: u32| Budget::new(name, quota / 20 * 19, Duration::from_secs(10));
        Self {
            units: [
                units("graph-units-s", 3_500),
                units("graph-units-m", 5_000),
                units("graph-units-l", 8_000),
            ],
            write: Budget::new("graph-write", 3_000, Duration::from_secs(150)),
        }
    }

    /// The units budget of a tenant with `users` users.
    pub(crate) fn units(&self, users: usize) -> &Budget {
        let size = TENANT_SIZES.iter().filter(|&&n| users >= n).count();
        &self.units[size.min(2)]
    }
}

/// The resource units a read of `path_and_query` costs (the table above).
pub(crate) fn read_cost(path_and_query: &str) -> u32 {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let base: i64 = match segments.as_slice() {
        [.., "users"] | [.., "users", "delta()" | "delta"] => 2,
        [.., "transitiveMembers"] => 5,
        [.., "groups", _, "members"] => 3,
        [.., "appRoleAssignments"] => 2,
        _ => 1,
    };
    let mut cost = base;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "$select" | "%24select" => cost -= 1,
            "$expand" | "%24expand" => cost += 1,
            "$top" | "%24top" if value.parse::<u32>().is_ok_and(|t| t < 20) => cost -= 1,
            _ => {}
        }
    }
    u32::try_from(cost.max(1)).unwrap_or(1)
}

/// Microsoft Graph v1.0 for one tenant.
pub(crate) struct Graph {
    pub(crate) ctx: Context,
    pub(crate) endpoints: Endpoints,
    pub(crate) budgets: Budgets,
    tokens: TokenCache,
    /// `auth = "device_code"` and the vault holds no refresh token for the source.
    pub(crate) needs_login: bool,
    /// Users listed by this sync, and by the last complete one: the tenant's size class.
    users_listed: AtomicUsize,
    users_known: AtomicUsize,
}

impl Graph {
    pub(crate) fn new(
        ctx: Context,
        endpoints: Endpoints,
        client_id: &str,
        credential: Credential,
    ) -> Self {
        // v2-oauth2-client-creds-grant-flow.md: form body, scope `{graph root}/.default`; with
        // a certificate, `client_assertion` replaces `client_secret` (certificate-credentials.md).
        let mut needs_login = false;
        let mut rotates = false;
        let source = match credential {
            Credential::Secret(secret) => TokenSource::ClientCredentials {
                token_url: endpoints.token_url(),
                client_id: client_id.to_owned(),
                client_secret: secret,
                scope: Some(endpoints.scope()),
                style: TokenRequestStyle::Form,
            },
            Credential::DeviceCode => {
                let refresh = ctx.vault_refresh_token();
                needs_login = refresh.is_none();
                rotates = true;
                // v2-oauth2-device-code.md then the refresh grant of v2-oauth2-auth-code-flow.md:
                // a public client (no secret), form body, the delegated scopes again.
                TokenSource::RefreshToken {
                    token_url: endpoints.token_url(),
                    client_id: client_id.to_owned(),
                    client_secret: None,
                    refresh_token: refresh.unwrap_or_else(|| SecretString::from(String::new())),
                    style: TokenRequestStyle::Form,
                }
            }
            Credential::Certificate(certificate) => {
                let id = client_id.to_owned();
                TokenSource::ClientAssertion {
                    token_url: endpoints.token_url(),
                    client_id: client_id.to_owned(),
                    scope: Some(endpoints.scope()),
                    signer: AssertionSigner::new(move |token_url| {
                        certificate.check_valid_now()?;
                        certificate.assertion(&id, token_url)
                    }),
                }
            }
        };
        let mut tokens = TokenCache::new(ctx.http().clone(), source);
        if rotates {
            // Entra replaces the refresh token on every use (refresh-tokens.md): keep the new
            // one in the vault at once, so the next sync starts from it.
            let keep = ctx.clone();
            tokens = tokens
                .refresh_scope(endpoints.delegated_scopes().join(" "))
                .on_rotation(move |token| keep.store_refresh_token(token));
        }
        Self {
            ctx,
            endpoints,
            budgets: Budgets::new(),
            tokens,
            needs_login,
            users_listed: AtomicUsize::new(0),
            users_known: AtomicUsize::new(0),
        }
    }

    /// Counts `n` more listed users towards the tenant's size; returns the count so far.
    pub(crate) fn saw_users(&self, n: usize) -> usize {
        self.users_listed.fetch_add(n, Ordering::Relaxed) + n
    }

    /// The tenant's size as the last complete sync saw it.
    pub(crate) fn knew_users(&self, n: usize) {
        self.users_known.store(n, Ordering::Relaxed);
    }

    /// The tenant's size as far as this sync knows.
    pub(crate) fn tenant_users(&self) -> usize {
        self.users_listed
            .load(Ordering::Relaxed)
            .max(self.users_known.load(Ordering::Relaxed))
    }

    /// The units budget for this tenant's size.
    pub(crate) fn units_budget(&self) -> &Budget {
        self.budgets.units(self.tenant_users())
    }

    /// `{graph}/v1.0{path}`; `path` starts with `/`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoints.api())
    }

    /// Sends the request `build` makes with a bearer token; after a 401 it fetches a new token
    /// and sends once more. Any other status comes back as is.
    pub(crate) async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<HttpResponse, ConnectorError> {
        if self.needs_login {
            let source = &self.ctx.source().source;
            return Err(ConnectorError::unauthenticated(format!(
                "source `{source}` signs in with `auth = \"device_code\"` and the vault holds no \
                 refresh token for it: run `idhost login -c FILE --source {source}` first"
            )));
        }
        // The SDK's one "refresh once after a 401" (Entra's tokens are always renewable).
        self.tokens.send_authorized(build).await
    }

    /// GET `url` (absolute) as JSON; non-2xx answers become errors.
    pub(crate) async fn get_json(&self, url: &str) -> Result<Value, ConnectorError> {
        let response = self.get(url).await?;
        if !response.is_success() {
            return Err(graph_error(&response));
        }
        response.json()
    }

    /// GET `url` (absolute), any status.
    pub(crate) async fn get(&self, url: &str) -> Result<HttpResponse, ConnectorError> {
        self.send(|| {
            self.ctx
                .http()
                .get(url)
                .header("accept", "application/json")
                .budget_cost(self.units_budget(), read_cost(url))
        })
        .await
    }

    /// GET `url` and every page its `@odata.nextLink`s lead to; the `value` items of all.
    pub(crate) async fn get_all(&self, url: &str) -> Result<Vec<Value>, ConnectorError> {
        let mut items = Vec::new();
        let mut next = Some(url.to_owned());
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = next.take() {
            if !seen.insert(url.clone()) {
                return Err(ConnectorError::internal(format!(
                    "Graph handed back the same @odata.nextLink twice: {url}"
                )));
            }
            let body = self.get_json(&url).await?;
            items.extend(values(&body));
            next = self.next_link(&body)?;
        }
        Ok(items)
    }

    /// A write (`POST`/`DELETE`) with an optional JSON body, any status.
    pub(crate) async fn write(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse, ConnectorError> {
        self.send(|| {
            let request = self
                .ctx
                .http()
                .request(method, url)
                .header("accept", "application/json")
                .budget(&self.budgets.write);
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        })
        .await
    }

    /// The page's `@odata.nextLink`, checked to point at our Graph root.
    pub(crate) fn next_link(&self, body: &Value) -> Result<Option<String>, ConnectorError> {
        self.link(body, "@odata.nextLink")
    }

    /// `@odata.nextLink` or `@odata.deltaLink` of a page, to follow verbatim (paging.md).
    ///
    /// A link under our `{graph}/v1.0` is returned as is. A link to another origin (Graph
    /// behind a proxy in `graph_url` that does not rewrite links) keeps its path and query
    /// but is re-rooted on `graph_url`, so the bearer token never leaves the configured
    /// origin; anything that is not a `/v1.0/` URL is an error.
    pub(crate) fn link(&self, body: &Value, key: &str) -> Result<Option<String>, ConnectorError> {
        let Some(link) = body.get(key).and_then(Value::as_str) else {
            return Ok(None);
        };
        match self.relative(link) {
            Some(rest) => Ok(Some(self.url(&rest))),
            None => Err(ConnectorError::internal(format!(
                "Graph answered with {key} `{link}`, which is not a Graph v1.0 URL"
            ))),
        }
    }

    /// Whether `link` is under our own `{graph}/v1.0/` (stored delta links must be: one kept
    /// for another cloud is not reused).
    pub(crate) fn owns(&self, link: &str) -> bool {
        strip_prefix_ignore_case(link, &self.endpoints.api()).is_some_and(|r| r.starts_with('/'))
    }

    /// The path and query of a Graph v1.0 `link` below `/v1.0` (what a `$batch` inner
    /// request's `url` is), byte for byte.
    pub(crate) fn relative(&self, link: &str) -> Option<String> {
        if let Some(rest) = strip_prefix_ignore_case(link, &self.endpoints.api()) {
            return rest.starts_with('/').then(|| rest.to_owned());
        }
        let authority_and_path = link.split_once("://")?.1;
        let path = &authority_and_path[authority_and_path.find('/')?..];
        let rest = strip_prefix_ignore_case(path, "/v1.0")?;
        if rest.starts_with('/') {
            tracing::debug!(
                link,
                "re-rooting a Graph link from another origin on graph_url"
            );
            Some(rest.to_owned())
        } else {
            None
        }
    }

    /// Whether a failed GET says the delta link expired.
    pub(crate) fn expired_delta(response: &HttpResponse) -> bool {
        GraphError::from_response(response).is_expired_delta(response.status)
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The `value` array of a collection page (empty when absent).
pub(crate) fn values(body: &Value) -> Vec<Value> {
    match body.get("value") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// Percent-encodes a query value the way Graph expects in `$filter`/`$select` (spaces as `%20`).
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use idhost_connector_sdk::SourceInfo;
    use idhost_connector_sdk::testing::TestServices;
    use serde_json::json;

    #[test]
    fn read_costs_follow_the_throttling_table() {
        assert_eq!(read_cost("/users?$select=id&$top=999"), 1);
        assert_eq!(
            read_cost("https://graph.microsoft.com/v1.0/users?$top=999"),
            2
        );
        assert_eq!(read_cost("/groups/g1/members?$select=id&$top=999"), 2);
        assert_eq!(read_cost("/groups/g1/members"), 3);
        assert_eq!(read_cost("/groups/g1/owners?$select=id&$top=999"), 1);
        assert_eq!(read_cost("/groups/g1/transitiveMembers?$expand=x"), 6);
        assert_eq!(read_cost("/groups/g1/members?$top=5"), 2);
        assert_eq!(read_cost("/servicePrincipals/s/appRoleAssignedTo"), 1);
    }

    #[test]
    fn the_units_budget_follows_the_tenant_size() {
        let budgets = Budgets::new();
        assert_eq!(budgets.units(10).requests, 3_325);
        assert_eq!(budgets.units(50).requests, 4_750);
        assert_eq!(budgets.units(100_000).requests, 7_600);
    }

    use super::*;

    fn graph() -> Graph {
        let endpoints = Endpoints {
            graph: "https://graph.microsoft.us".into(),
            login: "https://login.microsoftonline.us".into(),
            tenant_id: "t".into(),
        };
        let ctx = Context::new(TestServices::new(), SourceInfo::default());
        Graph::new(
            ctx,
            endpoints,
            "c",
            Credential::Secret(SecretString::from("s")),
        )
    }

    #[test]
    fn links_are_followed_verbatim_and_never_leave_graph_url() {
        let g = graph();
        let own = "https://graph.microsoft.us/v1.0/groups/g1/members?$select=id&$skiptoken=X'%27";
        let body = json!({ "@odata.nextLink": own });
        assert_eq!(g.next_link(&body).expect("ok").as_deref(), Some(own));
        assert_eq!(
            g.relative(own).as_deref(),
            Some("/groups/g1/members?$select=id&$skiptoken=X'%27")
        );
        assert!(g.owns(own));
        // A link from another origin keeps its path and query, on our origin.
        let foreign =
            json!({ "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=a" });
        assert_eq!(
            g.next_link(&foreign).expect("ok").as_deref(),
            Some("https://graph.microsoft.us/v1.0/users?$skiptoken=a")
        );
        assert!(!g.owns("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=a"));
        let bogus = json!({ "@odata.nextLink": "https://evil.example/steal" });
        assert!(g.next_link(&bogus).is_err());
        assert_eq!(g.next_link(&json!({})).expect("ok"), None);
        assert_eq!(
            encode("servicePrincipalType eq 'Application'"),
            "servicePrincipalType%20eq%20%27Application%27"
        );
    }
}
