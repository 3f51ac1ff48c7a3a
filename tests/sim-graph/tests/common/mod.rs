//! In-process harness: drives `Simulator::router()` with `tower::ServiceExt::oneshot`.

#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use sim_graph::{SimConfig, Simulator};

/// Host every in-process request claims; links must point back at it.
pub const HOST: &str = "graph.test";
pub const ORIGIN: &str = "http://graph.test";

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    pub fn values(&self) -> Vec<Value> {
        self.body["value"].as_array().cloned().unwrap_or_default()
    }

    pub fn ids(&self) -> Vec<String> {
        self.values()
            .iter()
            .map(|v| v["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn next_link(&self) -> Option<String> {
        self.body["@odata.nextLink"].as_str().map(str::to_owned)
    }

    pub fn delta_link(&self) -> Option<String> {
        self.body["@odata.deltaLink"].as_str().map(str::to_owned)
    }
}

pub struct Harness {
    pub sim: Simulator,
    pub app: Router,
    pub token: String,
}

pub async fn raw(app: &Router, request: Request<Body>) -> Answer {
    let answer = idhost_e2e::oneshot::send(app, request).await;
    Answer {
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
        text: answer.text,
    }
}

pub fn token_request(tenant: &str, form: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("/{tenant}/oauth2/v2.0/token"))
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

pub fn good_form(config: &SimConfig) -> String {
    format!(
        "client_id={}&client_secret={}&scope=http%3A%2F%2Fgraph.test%2F.default&grant_type=client_credentials",
        config.client_id, config.client_secret
    )
}

/// Strips the origin from an absolute link (they must start with it).
pub fn relative(link: &str) -> String {
    link.strip_prefix(ORIGIN)
        .unwrap_or_else(|| panic!("link {link} does not point at {ORIGIN}"))
        .to_owned()
}

impl Harness {
    pub async fn new(config: SimConfig) -> Self {
        let sim = Simulator::new(config);
        let app = sim.router();
        let answer = raw(
            &app,
            token_request(&sim.config().tenant_id, &good_form(sim.config())),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let token = answer.body["access_token"].as_str().unwrap().to_owned();
        Self { sim, app, token }
    }

    pub async fn small() -> Self {
        Self::new(SimConfig::default()).await
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let uri = if uri.starts_with("http") {
            relative(uri)
        } else {
            uri.to_owned()
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(
                uri.replace(' ', "%20")
                    .replace('\'', "%27")
                    .replace('"', "%22"),
            )
            .header("host", HOST)
            .header("authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = match body {
            Some(b) => builder
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => builder.body(Body::empty()),
        }
        .unwrap();
        raw(&self.app, request).await
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.send(Method::GET, uri, None, &[]).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Answer {
        self.send(Method::POST, uri, Some(body), &[]).await
    }

    pub async fn delete(&self, uri: &str) -> Answer {
        self.send(Method::DELETE, uri, None, &[]).await
    }

    /// Follows nextLinks from `uri`, returning every page.
    pub async fn all_pages(&self, uri: &str) -> Vec<Answer> {
        let mut pages = vec![self.get(uri).await];
        while let Some(next) = pages.last().and_then(Answer::next_link) {
            assert!(pages.len() < 10_000, "paging does not terminate");
            pages.push(self.get(&next).await);
        }
        pages
    }

    pub fn object_ref(&self, id: &str) -> Value {
        serde_json::json!({ "@odata.id": format!("{ORIGIN}/v1.0/directoryObjects/{id}") })
    }
}
