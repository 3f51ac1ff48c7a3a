//! Helpers for driving the simulator's router with `oneshot`.
#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use sim_ironclad::{SimConfig, Simulator};

pub const ADMIN: &str = "it-admin@example.com";
pub const LEGACY: &str = "ironclad-legacy-token";
pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const IRONCLAD_URN: &str = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One answer: status, headers and the body as JSON (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A simulator and its router.
pub struct Harness {
    pub sim: Simulator,
    pub router: Router,
}

impl Harness {
    pub fn new(config: SimConfig) -> Self {
        let sim = Simulator::new(config);
        let router = sim.router();
        Self { sim, router }
    }

    pub fn small() -> Self {
        Self::new(SimConfig::default())
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let answer = idhost_e2e::oneshot::send(&self.router, request).await;
        Answer {
            status: answer.status,
            body: answer.json_or_text(),
            headers: answer.headers,
        }
    }

    /// A SCIM call with the legacy token, acting as the admin.
    pub async fn scim(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.scim_as(LEGACY, method, path, body).await
    }

    /// A SCIM call with `token`, acting as the admin.
    pub async fn scim_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.send(scim_request(
            method,
            path,
            Some(token),
            Some(("x-as-user-email", ADMIN)),
            body,
        ))
        .await
    }

    /// A client-credentials token request with a JSON body.
    pub async fn token(&self, scope: Option<&str>) -> Answer {
        let mut body = json!({
            "grant_type": "client_credentials",
            "client_id": self.sim.config().client_id,
            "client_secret": self.sim.config().client_secret,
        });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        self.send(json_post("/oauth/token", &body)).await
    }

    /// An access token with every scope.
    pub async fn access_token(&self) -> String {
        let answer = self.token(None).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Creates a user through the API and returns its JSON.
    pub async fn create_user(&self, user_name: &str) -> Value {
        let answer = self
            .scim(
                "POST",
                "/scim/v2/Users",
                Some(json!({"schemas": [USER_URN], "userName": user_name,
                            "name": {"givenName": "New", "familyName": "User"}})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body
    }
}

pub fn scim_request(
    method: &str,
    path: &str,
    token: Option<&str>,
    actor: Option<(&str, &str)>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some((name, value)) = actor {
        builder = builder.header(name, value);
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/scim+json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

pub fn json_post(path: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// A fixture from `tests/resources`, with placeholders replaced.
pub fn fixture(name: &str, replacements: &[(&str, &str)]) -> Value {
    let path = format!("{}/tests/resources/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).expect("fixture");
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A PatchOp body.
pub fn patch_op(operations: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": operations})
}

/// The ids of a ListResponse's resources.
pub fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}
