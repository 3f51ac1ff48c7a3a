//! SCIM answers as Ironclad documents them: error bodies, ListResponse, list query parameters,
//! `excludedAttributes`, and JSON bodies.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::schema::{ERROR_URN, LIST_URN};

// developer.ironcladapp.com/reference (SCIM OpenAPI): every documented response, errors included,
// is `content: application/json`, not RFC 7644 §3.1's `application/scim+json`. We answer what
// Ironclad documents; a client must not insist on either.
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Documented default page size (SCIM OpenAPI `Count`: "default: 25").
pub(crate) const DEFAULT_COUNT: usize = 25;
/// Documented largest page size (SCIM OpenAPI `Count`: "maximum: 1000").
pub(crate) const MAX_COUNT: usize = 1000;

/// A JSON answer with the documented content type.
pub(crate) fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A SCIM error, rendered in the shapes the Ironclad SCIM OpenAPI documents per status.
#[derive(Debug, Clone)]
pub(crate) struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: Option<String>,
    /// Spell the schema key `schema`, as the documented filter-400 example does.
    singular_schema_key: bool,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: Option<String>) -> Self {
        Self {
            status,
            scim_type,
            detail,
            singular_schema_key: false,
        }
    }

    /// 400 with a scimType keyword (RFC 7644 §3.12 table 9) and a detail.
    pub(crate) fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some(scim_type),
            Some(detail.into()),
        )
    }

    /// 400 invalidValue with the documented detail shape ("Invalid value at name.givenName: 123").
    pub(crate) fn invalid_value(path: &str, value: &Value) -> Self {
        Self::bad_request("invalidValue", format!("Invalid value at {path}: {value}"))
    }

    /// 400 invalidFilter.
    // developer.ironcladapp.com/reference/retrieve-all-users, UserFilterResponse400: the example
    // body spells the key `"schema"` (not `"schemas"`) with detail "No matching schema for
    // attribute: name,lastName". We answer exactly that shape, so clients must parse it.
    pub(crate) fn invalid_filter(detail: impl Into<String>) -> Self {
        Self {
            singular_schema_key: true,
            ..Self::bad_request("invalidFilter", detail)
        }
    }

    /// 401 for a missing, unknown, expired or revoked bearer token.
    // The SCIM OpenAPI documents no 401; the OAuth OpenAPI's resource endpoints answer 401 with
    // the messages "invalid authentication token", "token has been revoked", "token has expired".
    // We keep those messages in a SCIM error body (RFC 7644 §3.12: 401 "Authorization failure").
    pub(crate) fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, Some(detail.to_owned()))
    }

    /// 403: documented body is `schemas` and `status` only (ForbiddenResponse403).
    pub(crate) fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, None, None)
    }

    /// 404 with the documented detail "Resource <id> not found" (NotFoundResponse404).
    pub(crate) fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            None,
            Some(format!("Resource {id} not found")),
        )
    }

    /// 409: documented body is `schemas` and `status` only (AlreadyExistsResponse409).
    pub(crate) fn conflict() -> Self {
        Self::new(StatusCode::CONFLICT, None, None)
    }

    /// 429 once a documented per-account limit is spent.
    // developer.ironcladapp.com/reference/clm-api-rate-limits: "If the rate limit is exceeded,
    // the API responds with a 429 Too Many Requests status code." No Retry-After is documented,
    // so none is sent; the body is not documented either, so it is a plain SCIM error.
    pub(crate) fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            Some("Too Many Requests".to_owned()),
        )
    }

    /// The HTTP status.
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The scimType keyword.
    #[cfg(test)]
    pub(crate) fn scim_type(&self) -> Option<&'static str> {
        self.scim_type
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        let key = if self.singular_schema_key {
            "schema"
        } else {
            "schemas"
        };
        body.insert(key.to_owned(), Value::from(vec![ERROR_URN]));
        // RFC 7643/7644 and the docs: "The HTTP status code expressed as a string."
        body.insert(
            "status".to_owned(),
            Value::from(self.status.as_u16().to_string()),
        );
        if let Some(scim_type) = self.scim_type {
            body.insert("scimType".to_owned(), Value::from(scim_type));
        }
        if let Some(detail) = self.detail {
            body.insert("detail".to_owned(), Value::from(detail));
        }
        json(self.status, Value::Object(body).to_string())
    }
}

/// `startIndex`, `count`, `filter` and `excludedAttributes` of a list request.
#[derive(Debug, Clone)]
pub(crate) struct ListQuery {
    /// 1-based index of the first resource.
    pub(crate) start_index: usize,
    /// Page size after clamping.
    pub(crate) count: usize,
    /// Raw filter expression.
    pub(crate) filter: Option<String>,
    /// Attributes to drop from each resource.
    pub(crate) excluded: Vec<String>,
}

/// Parses the query string of a list request.
pub(crate) fn list_query(raw: Option<&str>) -> Result<ListQuery, ScimError> {
    let mut query = ListQuery {
        start_index: 1,
        count: DEFAULT_COUNT,
        filter: None,
        excluded: Vec::new(),
    };
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match name.to_ascii_lowercase().as_str() {
            // RFC 7644 §3.4.2.4: "A value less than 1 SHALL be interpreted as 1."
            "startindex" => query.start_index = integer("startIndex", &value)?.max(1) as usize,
            // RFC 7644 §3.4.2.4: "A negative value SHALL be interpreted as "0"". Above the
            // documented maximum of 1000 we clamp rather than refuse: RFC 7644 §3.4.2.4 lets a
            // provider return fewer results than asked, and the docs document no 400 for it.
            "count" => {
                query.count = (integer("count", &value)?.max(0) as usize).min(MAX_COUNT);
            }
            "filter" => query.filter = Some(value.into_owned()),
            "excludedattributes" => query.excluded = excluded_attributes(Some(&value)),
            _ => {}
        }
    }
    Ok(query)
}

fn integer(name: &str, value: &str) -> Result<i64, ScimError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ScimError::invalid_value(name, &Value::from(value)))
}

/// The comma-separated `excludedAttributes` of any request's query.
pub(crate) fn excluded_from_query(raw: Option<&str>) -> Vec<String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(name, _)| name.eq_ignore_ascii_case("excludedAttributes"))
        .map(|(_, value)| excluded_attributes(Some(&value)))
        .unwrap_or_default()
}

fn excluded_attributes(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Drops `excluded` attributes from a serialized resource. Attribute names are case-insensitive
/// (RFC 7643 §2.1); `id` and `schemas` are "returned: always" and stay (RFC 7643 §2.4). Supports
/// `attr`, `attr.sub` and `urn:…:attr`.
pub(crate) fn exclude(resource: &str, excluded: &[String]) -> String {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(resource) else {
        return resource.to_owned();
    };
    for path in excluded {
        let (container, attr) = match path.rsplit_once(':') {
            Some((urn, attr)) if path.starts_with("urn:") => (Some(urn), attr),
            _ => (None, path.as_str()),
        };
        let target = match container {
            Some(urn) if !crate::schema::is_core_urn(urn) => {
                match find_key(&object, urn).and_then(|k| object.get_mut(&k)) {
                    Some(Value::Object(ext)) => ext,
                    _ => continue,
                }
            }
            _ => &mut object,
        };
        let (head, sub) = match attr.split_once('.') {
            Some((head, sub)) => (head, Some(sub)),
            None => (attr, None),
        };
        if head.eq_ignore_ascii_case("id") || head.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let Some(key) = find_key(target, head) else {
            continue;
        };
        match sub {
            None => {
                target.remove(&key);
            }
            Some(sub) => match target.get_mut(&key) {
                Some(Value::Object(inner)) => {
                    if let Some(k) = find_key(inner, sub) {
                        inner.remove(&k);
                    }
                }
                Some(Value::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Value::Object(inner) = item
                            && let Some(k) = find_key(inner, sub)
                        {
                            inner.remove(&k);
                        }
                    }
                }
                _ => {}
            },
        }
    }
    Value::Object(object).to_string()
}

/// The existing key of `object` equal to `name` ignoring ASCII case (RFC 7643 §2.1: attribute
/// names are case-insensitive).
pub(crate) fn find_key(object: &Map<String, Value>, name: &str) -> Option<String> {
    if object.contains_key(name) {
        return Some(name.to_owned());
    }
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

/// A ListResponse built by concatenating already-serialized resources, so a page of 1000 users
/// costs one copy of their JSON and no re-serialization.
// developer.ironcladapp.com/reference/retrieve-all-users, UsersResponse200: `itemsPerPage`
// "Specifies the maximum number of resources that can be returned in a single page of results"
// (example 25). Ironclad describes it as the page size, not RFC 7644 §3.4.2's "number of resources
// returned", so we echo the effective `count`.
pub(crate) fn list<S: AsRef<str>>(
    total: Option<usize>,
    start_index: usize,
    items_per_page: usize,
    resources: &[S],
) -> Response {
    let size: usize = resources.iter().map(|r| r.as_ref().len() + 1).sum();
    let mut body = String::with_capacity(size + 160);
    body.push_str("{\"schemas\":[\"");
    body.push_str(LIST_URN);
    body.push_str("\"],");
    if let Some(total) = total {
        body.push_str("\"totalResults\":");
        body.push_str(&total.to_string());
        body.push(',');
    }
    body.push_str("\"Resources\":[");
    for (i, resource) in resources.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(resource.as_ref());
    }
    body.push_str("],\"startIndex\":");
    body.push_str(&start_index.to_string());
    body.push_str(",\"itemsPerPage\":");
    body.push_str(&items_per_page.to_string());
    body.push('}');
    json(StatusCode::OK, body)
}

/// Parses a request body as JSON. Content-Type is not checked: the docs send `application/json`
/// and RFC 7644 clients send `application/scim+json`; both are accepted.
pub(crate) fn body_json(bytes: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(bytes)
        .map_err(|err| ScimError::bad_request("invalidSyntax", format!("Invalid JSON: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_above_the_documented_maximum_is_clamped_and_negative_means_zero() {
        let q = list_query(Some("count=5000&startIndex=0")).unwrap();
        assert_eq!((q.count, q.start_index), (1000, 1));
        assert_eq!(list_query(Some("count=-3")).unwrap().count, 0);
        let err = list_query(Some("count=ten")).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.scim_type(), Some("invalidValue"));
    }

    #[test]
    fn exclude_drops_top_level_sub_and_extension_attributes_but_never_id() {
        let user = r#"{"schemas":["x"],"id":"1","name":{"givenName":"A","familyName":"B"},"title":"T","urn:e:2.0:User":{"department":"Legal","k":1}}"#;
        let out: Value = serde_json::from_str(&exclude(
            user,
            &[
                "Title".into(),
                "name.givenName".into(),
                "urn:e:2.0:User:department".into(),
                "id".into(),
            ],
        ))
        .unwrap();
        assert_eq!(
            out,
            serde_json::json!({"schemas":["x"],"id":"1","name":{"familyName":"B"},"urn:e:2.0:User":{"k":1}})
        );
    }
}
