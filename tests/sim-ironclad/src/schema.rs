//! Schema URNs and the `/Schemas` resources Ironclad documents.

use serde_json::{Value, json};

/// RFC 7643 core User schema.
pub(crate) const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// RFC 7643 core Group schema.
pub(crate) const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// RFC 7643 §4.3 enterprise User extension.
pub(crate) const ENTERPRISE_URN: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Ironclad's own User extension (SCIM OpenAPI `IroncladUserSchema`).
pub(crate) const IRONCLAD_URN: &str = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User";
/// RFC 7644 §3.4.2 ListResponse.
pub(crate) const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// RFC 7644 §3.12 Error.
pub(crate) const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// RFC 7644 §3.5.2 PatchOp.
pub(crate) const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Where the real service lives; `meta.location` uses it exactly as the docs show
/// ("https://na1.ironcladapp.com/scim/v2/Users/67e4488c605caf0d8aa2e5c6"). Clients must not
/// follow it: it points at production, not at the simulator.
pub(crate) const SCIM_BASE: &str = "https://na1.ironcladapp.com/scim/v2";

/// Whether `urn` names the core User or Group schema (whose attributes sit at the top level).
pub(crate) fn is_core_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(USER_URN) || urn.eq_ignore_ascii_case(GROUP_URN)
}

/// This company's own attribute schema. support.ironcladapp.com "Supported User Attributes":
/// "In addition to supporting this defined schema for user attributes, Ironclad also supports
/// custom attributes", in a custom attribute schema the company creates; its URN is the
/// company's choice, so clients find it through `GET /Schemas`.
pub const CUSTOM_URN: &str = "urn:ietf:params:scim:schemas:extension:examplecorp:2.0:User";

/// The attributes of the custom schema.
pub(crate) const CUSTOM_ATTRIBUTES: [&str; 2] = ["managementLevel", "costCode"];

/// The User extension URNs this company knows.
pub(crate) const USER_EXTENSIONS: [&str; 3] = [ENTERPRISE_URN, IRONCLAD_URN, CUSTOM_URN];

/// The attributes a write may set inside extension `urn` (`None`: not an extension this company
/// has). The enterprise extension's are RFC 7643 §4.3's; the Ironclad extension's are the
/// documented IroncladUserSchema's `departmentHead` plus the User object's `provider` and
/// `allowProviderConversion` (SCIM OpenAPI UserCreateRequestBody); the custom schema's are its
/// own. Anything else in a write is refused with SCIM's 400, as Ironclad does.
pub(crate) fn extension_attributes(urn: &str) -> Option<&'static [&'static str]> {
    const ENTERPRISE: [&str; 6] = [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "manager",
    ];
    const IRONCLAD: [&str; 3] = ["departmentHead", "provider", "allowProviderConversion"];
    if urn.eq_ignore_ascii_case(ENTERPRISE_URN) {
        Some(&ENTERPRISE)
    } else if urn.eq_ignore_ascii_case(IRONCLAD_URN) {
        Some(&IRONCLAD)
    } else if urn.eq_ignore_ascii_case(CUSTOM_URN) {
        Some(&CUSTOM_ATTRIBUTES)
    } else {
        None
    }
}

/// Top-level core User attributes.
// support.ironcladapp.com/hc/en-us/articles/12286070700183-Supported-User-Attributes lists the
// singular (userName, name, displayName, nickName, profileUrl, title, userType,
// preferredLanguage, locale, timezone, active, password) and multi-valued (emails,
// phoneNumbers, ims, photos, addresses, groups, entitlements, roles, x509Certificates) core
// attributes; externalId is RFC 7643 §3.1 common.
pub(crate) const CORE_USER_ATTRIBUTES: [&str; 22] = [
    "userName",
    "name",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "active",
    "password",
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
    "externalId",
];

/// `(name, type, multiValued, required, caseExact, mutability, uniqueness)` of one attribute.
type Attr = (
    &'static str,
    &'static str,
    bool,
    bool,
    bool,
    &'static str,
    &'static str,
);

fn attribute(a: Attr, description: &str, sub: &[(Attr, &str)]) -> Value {
    let (name, kind, multi, required, case_exact, mutability, uniqueness) = a;
    let mut v = json!({
        "name": name, "type": kind, "multiValued": multi, "description": description,
        "required": required, "caseExact": case_exact, "mutability": mutability,
        "returned": "default", "uniqueness": uniqueness,
    });
    if !sub.is_empty() {
        // developer.ironcladapp.com SCIM OpenAPI GroupSchema/CoreUserSchema spell the key
        // `subattributes` (lower case), not RFC 7643 §7's `subAttributes`; we follow the docs.
        v["subattributes"] = sub
            .iter()
            .map(|(a, d)| attribute(*a, d, &[]))
            .collect::<Vec<_>>()
            .into();
    }
    v
}

fn schema(id: &str, name: &str, description: &str, attributes: Vec<Value>) -> Value {
    json!({
        "id": id, "name": name, "description": description, "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{SCIM_BASE}/Schemas/{id}")},
    })
}

const RW: &str = "readWrite";

/// The four schemas `GET /Schemas` documents ("totalResults: 4"), with the attributes the SCIM
/// OpenAPI's GroupSchema, CoreUserSchema, EnterpriseUserSchema and IroncladUserSchema list, and
/// this company's custom schema.
pub(crate) fn all() -> Vec<Value> {
    let s = |name, mutability| (name, "string", false, false, false, mutability, "none");
    vec![
        schema(
            GROUP_URN,
            "Group",
            "Group",
            vec![
                attribute(
                    ("displayName", "string", false, true, false, RW, "none"),
                    "A human-readable name for the Group.  REQUIRED.",
                    &[],
                ),
                attribute(
                    ("members", "complex", true, false, false, RW, "none"),
                    "A list of members of the Group.",
                    &[
                        (
                            s("value", "immutable"),
                            "Identifier of the member of this Group.",
                        ),
                        (
                            (
                                "$ref",
                                "reference",
                                false,
                                false,
                                false,
                                "immutable",
                                "none",
                            ),
                            "The URI corresponding to a SCIM resource that is a member of this Group.",
                        ),
                        (
                            s("type", "immutable"),
                            "A label indicating the type of resource, e.g., 'User' or 'Group'.",
                        ),
                    ],
                ),
            ],
        ),
        schema(
            USER_URN,
            "User",
            "User Account",
            vec![
                attribute(
                    ("userName", "string", false, true, false, RW, "server"),
                    "Unique identifier for the User. REQUIRED.",
                    &[],
                ),
                attribute(
                    ("name", "complex", false, false, false, RW, "none"),
                    "The components of the user's real name.",
                    &[
                        (s("formatted", RW), "The full name."),
                        (s("familyName", RW), "The family name of the User."),
                        (s("givenName", RW), "The given name of the User."),
                    ],
                ),
                attribute(
                    ("displayName", "string", false, false, false, RW, "server"),
                    "The name of the User, suitable for display to end-users.",
                    &[],
                ),
                attribute(
                    ("nickName", "string", false, false, false, RW, "server"),
                    "The casual way to address the user in real life.",
                    &[],
                ),
                attribute(
                    ("title", "string", false, false, false, RW, "server"),
                    "The user's title, such as \"Vice President.\"",
                    &[],
                ),
                attribute(
                    ("active", "boolean", false, false, false, RW, "none"),
                    "A Boolean value indicating the User's administrative status.",
                    &[],
                ),
                attribute(
                    ("emails", "complex", true, false, false, RW, "none"),
                    "Email addresses for the user.",
                    &[
                        (s("value", RW), "Email addresses for the user."),
                        (
                            s("display", "readOnly"),
                            "A human-readable name.  READ-ONLY.",
                        ),
                        (
                            s("type", RW),
                            "A label indicating the attribute's function.",
                        ),
                    ],
                ),
            ],
        ),
        schema(
            ENTERPRISE_URN,
            "EnterpriseUser",
            "Enterprise User",
            vec![
                attribute(
                    s("employeeNumber", RW),
                    "Numeric or alphanumeric identifier assigned to a person.",
                    &[],
                ),
                attribute(
                    s("costCenter", RW),
                    "Identifies the name of a cost center.",
                    &[],
                ),
                attribute(
                    s("organization", RW),
                    "Identifies the name of an organization.",
                    &[],
                ),
                attribute(
                    s("department", RW),
                    "Identifies the name of a department.",
                    &[],
                ),
                attribute(
                    ("manager", "complex", false, false, false, RW, "none"),
                    "The User's manager.",
                    &[
                        (
                            s("value", RW),
                            "The id of the SCIM resource representing the User's manager.",
                        ),
                        (
                            ("$ref", "reference", false, false, false, RW, "none"),
                            "The URI of the manager.",
                        ),
                        (
                            s("displayName", "readOnly"),
                            "The displayName of the User's manager.",
                        ),
                    ],
                ),
            ],
        ),
        // The documented IroncladUserSchema lists departmentHead only; the User object also
        // carries provider and allowProviderConversion.
        schema(
            IRONCLAD_URN,
            "IroncladUser",
            "Ironclad User",
            vec![attribute(
                s("departmentHead", RW),
                "The email address (username) of the user's department head",
                &[],
            )],
        ),
        // Companies add custom attributes in a schema of their own (Supported-User-Attributes
        // article), as this company did.
        schema(
            CUSTOM_URN,
            "ExampleCorpUser",
            "Example Corp custom attributes",
            vec![
                attribute(s("managementLevel", RW), "The user's management level", &[]),
                attribute(s("costCode", RW), "The user's cost code", &[]),
            ],
        ),
    ]
}

/// `GET /Schemas` — list-all-schemas, scope `scim.schemas.readSchemas` ("All other APIs": 800/min).
pub(crate) async fn list(
    axum::extract::State(sim): axum::extract::State<crate::Simulator>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use crate::guard::{Bucket, admit};
    use axum::response::IntoResponse;
    if let Err(err) = admit(
        &sim,
        &headers,
        Bucket::Other,
        crate::oauth::Scope::ReadSchemas,
    ) {
        return err.into_response();
    }
    let schemas: Vec<String> = all().iter().map(Value::to_string).collect();
    let total = schemas.len();
    crate::respond::list(Some(total), 1, total, &schemas)
}

/// `GET /Schemas/{schemaId}` — retrieve-a-schema; 404 for an unknown URN.
pub(crate) async fn fetch(
    axum::extract::State(sim): axum::extract::State<crate::Simulator>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> axum::response::Response {
    use crate::guard::{Bucket, admit};
    use crate::respond::ScimError;
    use axum::response::IntoResponse;
    if let Err(err) = admit(
        &sim,
        &headers,
        Bucket::Other,
        crate::oauth::Scope::ReadSchemas,
    ) {
        return err.into_response();
    }
    match all().into_iter().find(|s| {
        s["id"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(&id))
    }) {
        Some(schema) => crate::respond::json(axum::http::StatusCode::OK, schema.to_string()),
        None => ScimError::not_found(&id).into_response(),
    }
}
