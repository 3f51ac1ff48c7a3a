//! The scripted upstream change `idhost demo` makes between its two syncs, so `query diff` has
//! real events and `query orphans` a real leaver. Every change goes through the upstream's
//! documented HTTP API, as the upstream's admin (or an IdP) would make it:
//!
//! - Ironclad (SCIM 2.0, RFC 7644): `POST /Users` for three Entra people, one of whom is the
//!   leaver below; `PATCH /Users/{id}` (a new title); `DELETE /Users/{id}`; `PATCH
//!   /Groups/{id}` adding two of the new accounts (the leaver's among them);
//! - Entra (Microsoft Graph): `POST /groups/{id}/members/$ref` and `DELETE
//!   /groups/{id}/members/{member}/$ref`;
//! - the leaver is deleted from Entra through the simulator's own admin handle: the Graph
//!   simulator serves no `DELETE /users/{id}` (the demo's connector never deletes users).
//!
//! It also picks, from the first sync's data, what the "Try next" hints show: a person whose
//! access flows through nested groups, and the outer group.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde_json::{Value, json};

/// Where the simulators are and how to sign in (the simulators' demo credentials).
pub(crate) struct Upstreams<'a> {
    /// Ironclad origin.
    pub(crate) ironclad: String,
    /// Ironclad OAuth client id, secret and acting admin.
    pub(crate) ironclad_client: (&'a str, &'a str, &'a str),
    /// Graph origin (also the token origin).
    pub(crate) graph: String,
    /// Entra tenant, client id and secret.
    pub(crate) entra_client: (&'a str, &'a str, &'a str),
    /// The Graph simulator (for the one change Graph serves no endpoint for here).
    pub(crate) graph_sim: &'a sim_graph::Simulator,
}

/// What the demo's hints point at.
#[derive(Debug, Clone)]
pub(crate) struct Story {
    /// Email of a person whose access flows through nested groups.
    pub(crate) nested_person: String,
    /// The outer group's membership entitlement.
    pub(crate) outer_entitlement: String,
    /// Email of the person deleted from Entra who still has an Ironclad account.
    pub(crate) leaver: String,
}

/// A corp user with an email.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    name: String,
    email: String,
}

fn email_of(user: &str) -> Option<String> {
    let user: Value = serde_json::from_str(user).ok()?;
    let emails = user.get("emails")?.as_array()?;
    emails
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| e.get("address")?.as_str())
        .map(str::to_owned)
}

fn person(conn: &Connection, id: &str) -> anyhow::Result<Person> {
    let (name, user): (String, Option<String>) = conn.query_row(
        "SELECT display_name, user FROM resources WHERE source = 'corp' AND id = ?1",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let email = user
        .as_deref()
        .and_then(email_of)
        .ok_or_else(|| anyhow!("corp user {id} has no email"))?;
    Ok(Person {
        id: id.to_owned(),
        name,
        email,
    })
}

/// The resource's upstream id (`user:abc` → `abc`).
fn bare(id: &str) -> &str {
    id.split_once(':').map_or(id, |(_, rest)| rest)
}

async fn send(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{what}: HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        );
    }
    Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Makes the change and says what the hints should show.
pub(crate) async fn change(db_path: &Path, up: &Upstreams<'_>) -> anyhow::Result<Story> {
    let conn = crate::db::open_read_only(db_path)
        .with_context(|| format!("reading {}", db_path.display()))?;
    // A user in a group that is itself a member of another group.
    let (nested_user, outer_entitlement): (String, String) = conn
        .query_row(
            "SELECT m.principal, n.entitlement FROM grants n
             JOIN grants m ON m.source = 'corp' AND m.entitlement = n.principal || ':member'
             JOIN resources r ON r.source = 'corp' AND r.id = m.principal
             WHERE n.source = 'corp' AND n.principal LIKE 'group:%' AND n.entitlement LIKE 'group:%:member'
               AND m.principal LIKE 'user:%' AND json_extract(r.user, '$.emails[0].address') IS NOT NULL
             ORDER BY n.id, m.id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| anyhow!("the simulated tenant has no nested group with a user in it"))?;
    let nested = person(&conn, &nested_user)?;
    let others: Vec<String> = conn
        .prepare(
            "SELECT id FROM resources WHERE source = 'corp' AND type = 'user' AND id != ?1
               AND json_extract(user, '$.account_type') = 'human'
               AND json_extract(user, '$.emails[0].address') IS NOT NULL
             ORDER BY id LIMIT 2",
        )?
        .query_map(params![nested_user], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let [leaver, joiner] = others.as_slice() else {
        bail!("the simulated tenant has too few people with an email");
    };
    let (leaver, joiner) = (person(&conn, leaver)?, person(&conn, joiner)?);
    let legal_users: Vec<String> = conn
        .prepare(
            "SELECT id FROM resources WHERE source = 'legal' AND type = 'user'
               AND lower(json_extract(user, '$.login')) != lower(?1) ORDER BY id LIMIT 2",
        )?
        .query_map(params![up.ironclad_client.2], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let [retitled, removed] = legal_users.as_slice() else {
        bail!("the simulated Ironclad company has too few users");
    };
    let legal_group: String = conn.query_row(
        "SELECT id FROM resources WHERE source = 'legal' AND type = 'group' ORDER BY id LIMIT 1",
        [],
        |r| r.get(0),
    )?;
    // Group 0 of the simulated tenant is a cloud security group (members can be changed).
    let entra_group = up
        .graph_sim
        .group_ids()
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the simulated tenant has no group"))?;
    let dropped_member: String = conn.query_row(
        "SELECT principal FROM grants WHERE source = 'corp' AND entitlement = ?1
           AND principal LIKE 'user:%' AND principal NOT IN (?2, ?3, ?4) ORDER BY id LIMIT 1",
        params![
            format!("group:{entra_group}:member"),
            nested.id,
            leaver.id,
            joiner.id
        ],
        |r| r.get(0),
    )?;
    let joiner_in_group: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM grants WHERE source = 'corp' AND entitlement = ?1 AND principal = ?2)",
        params![format!("group:{entra_group}:member"), joiner.id],
        |r| r.get(0),
    )?;
    drop(conn);

    let http = crate::services::http::build_client().context("an HTTP client")?;

    // --- Ironclad, as its SCIM provisioning client would.
    let (client_id, secret, admin) = up.ironclad_client;
    let token = send(
        http.post(format!("{}/oauth/token", up.ironclad)).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ]),
        "Ironclad token",
    )
    .await?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let scim = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}/scim/v2{path}", up.ironclad))
            .bearer_auth(&token)
            .header("x-as-user-email", admin)
            .header("content-type", "application/scim+json")
    };
    let mut created = Vec::new();
    for p in [&leaver, &nested, &joiner] {
        let (given, family) = p.name.split_once(' ').unwrap_or((&p.name, ""));
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": p.email,
            "name": {"givenName": given, "familyName": family},
            "emails": [{"value": p.email, "primary": true, "type": "work"}],
            "active": true,
        });
        let user = send(
            scim(reqwest::Method::POST, "/Users").json(&body),
            &format!("SCIM POST /Users ({})", p.email),
        )
        .await?;
        created.push(user["id"].as_str().unwrap_or_default().to_owned());
    }
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    send(
        scim(
            reqwest::Method::PATCH,
            &format!("/Users/{}", bare(retitled)),
        )
        .json(&patch(
            json!([{"op": "replace", "path": "title", "value": "Deputy General Counsel"}]),
        )),
        "SCIM PATCH /Users (title)",
    )
    .await?;
    send(
        scim(
            reqwest::Method::DELETE,
            &format!("/Users/{}", bare(removed)),
        ),
        "SCIM DELETE /Users",
    )
    .await?;
    // The leaver and one joiner get an Ironclad group: access the leaver keeps after leaving.
    let members: Vec<Value> = created
        .iter()
        .take(2)
        .filter(|id| !id.is_empty())
        .map(|id| json!({ "value": id }))
        .collect();
    send(
        scim(
            reqwest::Method::PATCH,
            &format!("/Groups/{}", bare(&legal_group)),
        )
        .json(&patch(
            json!([{"op": "add", "path": "members", "value": members}]),
        )),
        "SCIM PATCH /Groups (add members)",
    )
    .await?;

    // --- Entra, through Graph.
    let (tenant, entra_id, entra_secret) = up.entra_client;
    let token = send(
        http.post(format!("{}/{tenant}/oauth2/v2.0/token", up.graph))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", entra_id),
                ("client_secret", entra_secret),
                ("scope", &format!("{}/.default", up.graph)),
            ]),
        "Entra token",
    )
    .await?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !joiner_in_group {
        send(
            http.post(format!("{}/v1.0/groups/{entra_group}/members/$ref", up.graph))
                .bearer_auth(&token)
                .json(&json!({"@odata.id": format!("{}/v1.0/directoryObjects/{}", up.graph, bare(&joiner.id))})),
            "Graph POST /groups/{id}/members/$ref",
        )
        .await?;
    }
    send(
        http.delete(format!(
            "{}/v1.0/groups/{entra_group}/members/{}/$ref",
            up.graph,
            bare(&dropped_member)
        ))
        .bearer_auth(&token),
        "Graph DELETE /groups/{id}/members/{id}/$ref",
    )
    .await?;
    if !up.graph_sim.remove_user(bare(&leaver.id)) {
        bail!("the simulated tenant has no user {}", leaver.id);
    }
    Ok(Story {
        nested_person: nested.email,
        outer_entitlement,
        leaver: leaver.email,
    })
}
