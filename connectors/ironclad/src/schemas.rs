//! The company's own (custom) User schemas, discovered through `GET /Schemas`.
//!
//! support.ironcladapp.com "Supported User Attributes": besides the core, enterprise and Ironclad
//! schemas, "Ironclad also supports custom attributes", defined in a custom attribute schema the
//! company creates. A company-defined attribute therefore lives under that schema's URN, not in
//! the Ironclad extension (whose documented attributes are `departmentHead`, `provider` and
//! `allowProviderConversion`), and an attribute no schema defines is refused by Ironclad with a
//! SCIM 400. The URN is the company's choice, so it is read from `/Schemas` (SCIM OpenAPI
//! list-all-schemas, scope `scim.schemas.readSchemas`), once per connector instance.

use std::sync::{Arc, Mutex};

use idhost_connector_sdk::prelude::*;
use serde::Deserialize;

use crate::attributes::Attribute;
use crate::client::{Call, Client};
use crate::mapping::{ENTERPRISE_URN, GROUP_URN, IRONCLAD_URN, USER_URN};
use crate::scopes;

/// One custom schema: its URN and the names of its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomSchema {
    pub(crate) urn: String,
    pub(crate) attributes: Vec<String>,
}

/// The discovered custom schemas, fetched on first use.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache(Mutex<Option<Arc<Vec<CustomSchema>>>>);

#[derive(Deserialize)]
struct SchemaList {
    #[serde(default, rename = "Resources", alias = "resources")]
    resources: Vec<SchemaResource>,
}

#[derive(Deserialize)]
struct SchemaResource {
    #[serde(default)]
    id: String,
    #[serde(default)]
    attributes: Vec<SchemaAttribute>,
}

#[derive(Deserialize)]
struct SchemaAttribute {
    #[serde(default)]
    name: String,
}

/// Whether `urn` is one of the schemas Ironclad documents (not a company's own).
fn is_documented(urn: &str) -> bool {
    [USER_URN, GROUP_URN, ENTERPRISE_URN, IRONCLAD_URN]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(urn))
}

impl Client {
    /// The company's custom schemas (`GET /Schemas`, every schema Ironclad does not document).
    pub(crate) async fn custom_schemas(
        &self,
        operation: &str,
    ) -> Result<Arc<Vec<CustomSchema>>, ConnectorError> {
        if let Some(cached) = self.schemas.0.lock().ok().and_then(|c| c.clone()) {
            return Ok(cached);
        }
        self.scopes.require(
            &format!("{operation} (setting a company-defined attribute)"),
            scopes::READ_SCHEMAS,
        )?;
        let call = Call::new("GET", &["Schemas"], &self.budgets.other);
        let list: SchemaList = self
            .ok(&call)
            .await
            .map_err(|e| e.context("reading the company's custom schemas"))?
            .json()?;
        let custom: Vec<CustomSchema> = list
            .resources
            .into_iter()
            .filter(|s| !s.id.is_empty() && !is_documented(&s.id))
            .map(|s| CustomSchema {
                urn: s.id,
                attributes: s.attributes.into_iter().map(|a| a.name).collect(),
            })
            .collect();
        let custom = Arc::new(custom);
        if let Ok(mut cached) = self.schemas.0.lock() {
            *cached = Some(custom.clone());
        }
        Ok(custom)
    }

    /// The SCIM attribute a company-defined attribute `name` (given as `field`) is: the custom
    /// schema that defines it, or a refusal naming the schemas there are.
    pub(crate) async fn custom_attribute(
        &self,
        operation: &str,
        field: &str,
        name: &str,
    ) -> Result<Attribute, ConnectorError> {
        let schemas = self.custom_schemas(operation).await?;
        for schema in schemas.iter() {
            if let Some(attr) = schema
                .attributes
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))
            {
                return Ok(Attribute::Extension(schema.urn.clone(), attr.clone()));
            }
        }
        let known: Vec<String> = schemas
            .iter()
            .flat_map(|s| {
                s.attributes
                    .iter()
                    .map(move |a| format!("`{a}` ({})", s.urn))
            })
            .collect();
        let known = if known.is_empty() {
            "the company defines no custom attributes".to_owned()
        } else {
            format!("its custom attributes are {}", known.join(", "))
        };
        Err(ConnectorError::invalid_input(format!(
            "cannot set `{field}`: no schema of this Ironclad company defines `{name}` \
             (GET /Schemas; {known}); Ironclad refuses unknown attributes; no request was sent"
        )))
    }
}
