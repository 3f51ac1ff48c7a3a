//! Provisioning: group membership (PATCH add/remove), user create/update/delete, group create.
//!
//! Every operation refuses on a read-only source before any request. Under `--dry-run` the
//! host intercepts writes (reads still go out), and each operation returns what it would have
//! done: a membership check still tells `already` truthfully; created resources carry the
//! upstream id `dry-run`.

use idhost_connector_sdk::prelude::*;
use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};

use crate::Ironclad;
use crate::attributes::{self, Attribute};
use crate::client::{Call, Client};
use crate::filter;
use crate::mapping::{self, GROUP_URN, PATCH_URN, USER_URN};
use crate::scopes;

/// Placeholder sent instead of a generated password under `--dry-run`, so the host's display of
/// the request it would send never shows a real credential.
const DRY_RUN_PASSWORD: &str = "<generated password>";

impl Ironclad {
    /// Refuses `operation` before any request on a read-only source, and when the source does
    /// not ask for every scope in `needs` (DESIGN §7.5).
    fn writable(&self, operation: &str, needs: &[&str]) -> Result<(), ConnectorError> {
        if self.read_only {
            return Err(ConnectorError::permission_denied(format!(
                "{operation} refused: the Ironclad source is read-only (it holds read scopes \
                 only); no request was sent"
            )));
        }
        for scope in needs {
            self.client.scopes.require(operation, scope)?;
        }
        Ok(())
    }

    /// `attribute`, with a company-defined one resolved to its custom schema.
    async fn resolved(
        &self,
        operation: &str,
        field: &str,
        attribute: Attribute,
    ) -> Result<Attribute, ConnectorError> {
        match attribute {
            Attribute::Custom(name) => self.client.custom_attribute(operation, field, &name).await,
            other => Ok(other),
        }
    }
}

/// `(group id, user id)` of a membership, or why it is not one this connector manages.
fn membership<'a>(
    entitlement: &'a EntitlementRef,
    principal: &'a ResourceRef,
) -> Result<(&'a str, &'a str), ConnectorError> {
    if entitlement.resource.rtype != "group" || entitlement.slug != "member" {
        return Err(ConnectorError::invalid_input(format!(
            "Ironclad grants only group membership (`group:<id>:member`); got `{}`",
            entitlement.to_id()
        )));
    }
    if principal.rtype != "user" {
        return Err(ConnectorError::invalid_input(format!(
            "Ironclad groups hold users only; got principal `{}`",
            principal.to_id()
        )));
    }
    Ok((&entitlement.resource.id, &principal.id))
}

impl Client {
    /// The id of the user whose userName is `user_name`, found with a SCIM filter whose
    /// literal is escaped as RFC 7644 §3.4.2.2 says (a JSON string).
    async fn user_id_by_name(&self, user_name: &str) -> Result<Option<String>, ConnectorError> {
        let call = Call::new("GET", &["Users"], &self.budgets.users_read)
            .query("filter", filter::eq("userName", user_name))
            .query("count", 1);
        let list: Value = self.ok(&call).await?.json()?;
        Ok(list
            .get("Resources")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .and_then(|u| u.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// The member ids of a group, `None` if the group does not exist.
    async fn group_members(&self, group_id: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        let call = Call::new("GET", &["Groups", group_id], &self.budgets.groups);
        let response = self.send(&call).await?;
        if response.status == 404 {
            return Ok(None);
        }
        if !response.is_success() {
            return Err(crate::error::upstream_error(&response));
        }
        let group: Value = response.json()?;
        let members = group
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned))
            .collect();
        Ok(Some(members))
    }

    /// `PATCH /Groups/{id}` with one `add` or `remove` of `members` (the documented shape);
    /// never a read-modify-write of the whole member list.
    async fn patch_members(
        &self,
        group_id: &str,
        op: &str,
        user_id: &str,
    ) -> Result<(), ConnectorError> {
        let body = json!({
            "schemas": [PATCH_URN],
            "Operations": [{"op": op, "path": "members", "value": [{"value": user_id}]}],
        });
        let call = Call::new("PATCH", &["Groups", group_id], &self.budgets.groups).body(body);
        self.ok(&call).await.map(drop)
    }
}

/// A password meeting Ironclad's policy (create-a-user, `password`: "16+ characters, at least
/// one lowercase letter, one uppercase letter, one number, one special character").
fn generate_password() -> SecretString {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    const SPECIAL: &[u8] = b"!#$%&*+-.:=?@^_~";
    const LENGTH: usize = 24;
    let mut rng = rand::thread_rng();
    let mut pick = |set: &[u8]| char::from(set[rng.gen_range(0..set.len())]);
    let mut chars: Vec<char> = [LOWER, UPPER, DIGITS, SPECIAL].map(&mut pick).to_vec();
    let all = [LOWER, UPPER, DIGITS, SPECIAL].concat();
    while chars.len() < LENGTH {
        chars.push(pick(&all));
    }
    chars.shuffle(&mut rand::thread_rng());
    SecretString::from(chars.into_iter().collect::<String>())
}

/// A company-defined profile attribute of a new account, to be placed once its custom schema is
/// known: `(field as given, attribute name, value)`.
type PendingCustom = (String, String, Value);

/// The `POST /Users` body for `info` (without a password), and the company-defined profile
/// attributes still to be placed.
fn account_body(
    info: &AccountInfo,
) -> Result<(Map<String, Value>, Vec<PendingCustom>), ConnectorError> {
    let login = info.login.trim();
    // create-a-user, `userName`: "The email address of the user (e.g., jdoe@acme.com)".
    if !login.contains('@') {
        return Err(ConnectorError::invalid_input(format!(
            "the login of an Ironclad user is their email address (e.g. `alex.doe@example.com`); got `{login}`"
        )));
    }
    let mut body = Map::new();
    body.insert("userName".into(), Value::from(login));
    body.insert("name".into(), Value::Object(user_name(info, login)));
    if let Some(display) = &info.display_name {
        body.insert("displayName".into(), Value::from(display.as_str()));
    }
    if let Some(email) = &info.email {
        body.insert(
            "emails".into(),
            json!([{"value": email, "type": "work", "primary": true}]),
        );
    }
    let mut custom = Vec::new();
    for (field, value) in &info.profile {
        if value.is_null() {
            continue;
        }
        if attributes::is_identity(field) {
            return Err(ConnectorError::invalid_input(format!(
                "`{field}` is taken from the account's login/email, not from its profile"
            )));
        }
        match attributes::resolve(field)? {
            Attribute::Custom(name) => custom.push((field.clone(), name, value.clone())),
            attribute => attribute.set_in(&mut body, value.clone()),
        }
    }
    Ok((body, custom))
}

/// `schemas` naming the core User schema and every extension the body carries.
fn with_schemas(mut body: Map<String, Value>) -> Map<String, Value> {
    let mut schemas = vec![Value::from(USER_URN)];
    schemas.extend(
        body.keys()
            .filter(|k| k.starts_with("urn:"))
            .map(|k| Value::from(k.as_str())),
    );
    body.insert("schemas".into(), Value::from(schemas));
    body
}

/// The `name` of a new user. create-a-user requires `name` ("The first name and last name of
/// the user"), and RFC 7643 §2.5 counts an empty complex value as unassigned, so an empty
/// `name: {}` is a missing required attribute. Without given or family names the display name
/// is split at its last space (one word is the given name), and without a display name the
/// login's local part (`jdoe` of `jdoe@acme.com`) is the given name.
fn user_name(info: &AccountInfo, login: &str) -> Map<String, Value> {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (given, family) = match (text(&info.given_name), text(&info.family_name)) {
        (None, None) => match text(&info.display_name) {
            Some(display) => match display.rsplit_once(' ') {
                Some((given, family)) => (Some(given.trim().to_owned()), Some(family.to_owned())),
                None => (Some(display), None),
            },
            None => (
                Some(login.split('@').next().unwrap_or(login).to_owned()),
                None,
            ),
        },
        names => names,
    };
    let mut name = Map::new();
    if let Some(given) = given {
        name.insert("givenName".into(), Value::from(given));
    }
    if let Some(family) = family {
        name.insert("familyName".into(), Value::from(family));
    }
    name
}

impl Provisioner for Ironclad {
    async fn grant(
        &self,
        entitlement: &EntitlementRef,
        principal: &ResourceRef,
    ) -> Result<GrantOutcome, ConnectorError> {
        self.writable("grant", &[scopes::READ_GROUPS, scopes::UPDATE_GROUPS])?;
        let (group_id, user_id) = membership(entitlement, principal)?;
        let grant = Grant::new(&entitlement.to_id(), &principal.to_id());
        // How `already` is known: SCIM's PATCH add answers the same whether the member was new
        // or not (RFC 7644 §3.5.2.1), so the answer cannot tell. One GET of the group (counted
        // against the 600/min groups limit, not the 50/min user writes) says whether the user
        // is a member; only a missing membership costs the PATCH. Ironclad documents no filter
        // narrower than the group itself (only `displayName eq` on /Groups).
        match self.client.group_members(group_id).await? {
            None => Err(ConnectorError::not_found(format!(
                "GET Groups/{group_id}: the Ironclad group {group_id} does not exist"
            ))),
            Some(members) if members.iter().any(|m| m == user_id) => {
                Ok(GrantOutcome::new(grant, true))
            }
            Some(_) => {
                self.client.patch_members(group_id, "add", user_id).await?;
                tracing::info!(
                    group = group_id,
                    user = user_id,
                    "added Ironclad group member"
                );
                Ok(GrantOutcome::new(grant, false))
            }
        }
    }

    async fn revoke(&self, grant: &GrantRef) -> Result<RevokeOutcome, ConnectorError> {
        self.writable("revoke", &[scopes::READ_GROUPS, scopes::UPDATE_GROUPS])?;
        let (group_id, user_id) = membership(&grant.entitlement, &grant.principal)?;
        // Same check as `grant`: a group or membership that is not there is already revoked.
        match self.client.group_members(group_id).await? {
            None => {
                tracing::info!(
                    group = group_id,
                    "Ironclad group is gone; nothing to revoke"
                );
                Ok(RevokeOutcome::new(true))
            }
            Some(members) if !members.iter().any(|m| m == user_id) => Ok(RevokeOutcome::new(true)),
            Some(_) => {
                self.client
                    .patch_members(group_id, "remove", user_id)
                    .await?;
                tracing::info!(
                    group = group_id,
                    user = user_id,
                    "removed Ironclad group member"
                );
                Ok(RevokeOutcome::new(false))
            }
        }
    }

    async fn create_account(
        &self,
        info: AccountInfo,
        credentials: CredentialOptions,
    ) -> Result<AccountCreated, ConnectorError> {
        self.writable("create-account", &[scopes::CREATE_USERS])?;
        let (mut body, custom) = account_body(&info)?;
        for (field, name, value) in custom {
            let attribute = self
                .resolved("create-account", &field, Attribute::Custom(name))
                .await?;
            attribute.set_in(&mut body, value);
        }
        let body = with_schemas(body);
        let login = info.login.trim();
        let password = credentials.generate_password.then(generate_password);
        let mut sent = body.clone();
        if let Some(password) = &password {
            let value = if self.dry_run {
                DRY_RUN_PASSWORD
            } else {
                password.expose_secret()
            };
            sent.insert("password".into(), Value::from(value));
        }
        let call = Call::new("POST", &["Users"], &self.client.budgets.users_read)
            .body(Value::Object(sent));
        let response = match self.client.ok(&call).await {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                let existing = self.client.user_id_by_name(login).await.ok().flatten();
                let which = match existing {
                    Some(id) => format!("an Ironclad user `{login}` already exists (`user:{id}`)"),
                    None => format!("an Ironclad user `{login}` already exists"),
                };
                return Err(e.context(which));
            }
            Err(e) if e.kind == ErrorKind::InvalidInput && password.is_none() => {
                // create-a-user: a password is "Required if there are no SAML configurations
                // set up for the company".
                return Err(e.context(format!(
                    "creating Ironclad user `{login}` (without SAML, Ironclad needs a password: \
                     ask for a generated one)"
                )));
            }
            Err(e) => return Err(e.context(format!("creating Ironclad user `{login}`"))),
        };
        if response.dry_run {
            let mut planned = body;
            planned.insert("id".into(), Value::from("dry-run"));
            let resource = mapping::user(&Value::Object(planned))?;
            // Nothing was created, so no credential is handed back.
            return Ok(AccountCreated::new(resource, None));
        }
        let resource = mapping::user(&response.json::<Value>()?)?;
        tracing::info!(user = %resource.id, login, "created Ironclad user");
        Ok(AccountCreated::new(resource, password))
    }

    async fn create_resource(
        &self,
        rtype: &str,
        spec: ResourceSpec,
    ) -> Result<Resource, ConnectorError> {
        self.writable("create-resource", &[scopes::CREATE_GROUPS])?;
        if rtype != "group" {
            return Err(ConnectorError::unsupported(format!(
                "Ironclad resources of type `{rtype}` cannot be created; create `group`s, \
                 or users with create-account"
            )));
        }
        let name = spec.display_name.trim();
        if name.is_empty() {
            return Err(ConnectorError::invalid_input(
                "an Ironclad group needs a display name",
            ));
        }
        let mut body = json!({"schemas": [GROUP_URN], "displayName": name});
        for (key, value) in &spec.profile {
            match key.as_str() {
                "externalId" | "external_id" => body["externalId"] = value.clone(),
                other => {
                    return Err(ConnectorError::invalid_input(format!(
                        "an Ironclad group takes only `externalId` besides its name; got `{other}`"
                    )));
                }
            }
        }
        let call = Call::new("POST", &["Groups"], &self.client.budgets.groups).body(body.clone());
        let response = self
            .client
            .ok(&call)
            .await
            .map_err(|e| e.context(format!("creating Ironclad group `{name}`")))?;
        let created = if response.dry_run {
            body["id"] = Value::from("dry-run");
            body
        } else {
            response.json::<Value>()?
        };
        let (group, _, _) = mapping::group(&created)?;
        tracing::info!(group = %group.id, "created Ironclad group");
        Ok(group)
    }

    async fn update(&self, resource: &ResourceRef, changes: Changes) -> Result<(), ConnectorError> {
        if resource.rtype != "user" {
            return Err(ConnectorError::unsupported(format!(
                "only Ironclad users can be updated; got `{}` (group membership changes through \
                 grant and revoke)",
                resource.to_id()
            )));
        }
        let operation = format!("update of `{}`", resource.to_id());
        self.writable(&operation, &[scopes::UPDATE_USERS])?;
        // Every field is checked before any write, so a refused userName/email change sends
        // nothing.
        let mut operations = Vec::with_capacity(changes.set.len());
        for (field, value) in &changes.set {
            let attribute = attributes::resolve(field)?;
            let path = self.resolved(&operation, field, attribute).await?.path();
            operations.push(if value.is_null() {
                json!({"op": "remove", "path": path})
            } else {
                json!({"op": "replace", "path": path, "value": value})
            });
        }
        if operations.is_empty() {
            return Ok(());
        }
        let body = json!({"schemas": [PATCH_URN], "Operations": operations});
        let call = Call::new(
            "PATCH",
            &["Users", &resource.id],
            &self.client.budgets.users_write,
        )
        .body(body);
        self.client.ok(&call).await?;
        tracing::info!(user = %resource.id, fields = changes.set.len(), "updated Ironclad user");
        Ok(())
    }

    async fn delete(&self, resource: &ResourceRef) -> Result<(), ConnectorError> {
        self.writable("delete", &[scopes::DELETE_USERS])?;
        if resource.rtype != "user" {
            return Err(ConnectorError::unsupported(format!(
                "only Ironclad users can be deleted; got `{}`",
                resource.to_id()
            )));
        }
        let call = Call::new(
            "DELETE",
            &["Users", &resource.id],
            &self.client.budgets.users_write,
        );
        let response = self.client.send(&call).await?;
        match response.status {
            // An absent user is already deleted: the outcome the caller wanted.
            404 => tracing::info!(user = %resource.id, "Ironclad user already absent"),
            _ if response.dry_run || response.is_success() => {
                tracing::info!(user = %resource.id, "deleted Ironclad user");
            }
            _ => return Err(crate::error::upstream_error(&response)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_the_documented_policy() {
        for _ in 0..200 {
            let p = generate_password();
            let p = p.expose_secret();
            assert!(p.chars().count() >= 16);
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| c.is_ascii_punctuation()));
        }
        assert_ne!(
            generate_password().expose_secret(),
            generate_password().expose_secret()
        );
    }

    #[test]
    fn account_body_carries_names_email_and_profile_attributes() {
        let mut profile = Profile::new();
        profile.insert("title".into(), Value::from("Counsel"));
        profile.insert("department".into(), Value::from("Legal"));
        profile.insert("managementLevel".into(), Value::from("Director"));
        let (body, custom) = account_body(&{
            let mut built = AccountInfo::default();
            built.login = "new.user@example.com".into();
            built.email = Some("new.user@example.com".into());
            built.given_name = Some("New".into());
            built.family_name = Some("User".into());
            built.display_name = None;
            built.profile = profile;
            built
        })
        .expect("valid");
        // A company-defined attribute waits for its custom schema (`/Schemas`).
        assert_eq!(
            custom,
            [(
                "managementLevel".to_owned(),
                "managementLevel".to_owned(),
                Value::from("Director")
            )]
        );
        let body = Value::Object(with_schemas(body));
        assert_eq!(body["userName"], "new.user@example.com");
        assert_eq!(
            body["name"],
            json!({"givenName": "New", "familyName": "User"})
        );
        assert_eq!(body["title"], "Counsel");
        assert_eq!(body[mapping::ENTERPRISE_URN]["department"], "Legal");
        assert_eq!(body["schemas"].as_array().map(Vec::len), Some(2));
        let err = account_body(&{
            let mut built = AccountInfo::default();
            built.login = "not-an-email".into();
            built
        })
        .expect_err("login must be an email");
        assert!(err.message.contains("email"));
    }

    #[test]
    fn a_user_with_no_known_names_still_gets_a_name() {
        let name = |info: AccountInfo| Value::Object(user_name(&info, "jdoe@acme.com"));
        assert_eq!(name(AccountInfo::default()), json!({"givenName": "jdoe"}));
        assert_eq!(
            name({
                let mut built = AccountInfo::default();
                built.display_name = Some("Jane van Doe".into());
                built
            }),
            json!({"givenName": "Jane van", "familyName": "Doe"})
        );
        assert_eq!(
            name({
                let mut built = AccountInfo::default();
                built.family_name = Some("Doe".into());
                built
            }),
            json!({"familyName": "Doe"})
        );
    }
}
