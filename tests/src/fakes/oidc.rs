//! A fake OpenID Connect issuer: `/.well-known/openid-configuration` answers the discovery
//! document the test sets ([`OidcIssuer::set_document`]), and every other request is
//! recorded, so a test can show that nothing went to the endpoints a refused document names.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

pub struct OidcIssuer {
    pub addr: SocketAddr,
    document: Arc<Mutex<Value>>,
    others: Arc<Mutex<Vec<String>>>,
}

impl OidcIssuer {
    /// An issuer whose document is `null` until [`OidcIssuer::set_document`].
    pub async fn start() -> Self {
        let document = Arc::new(Mutex::new(Value::Null));
        let others = Arc::new(Mutex::new(Vec::new()));
        let (answer, record) = (document.clone(), others.clone());
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(answer.lock().expect("document").clone()) }),
            )
            .fallback(move |request: axum::extract::Request| {
                let record = record.clone();
                async move {
                    let line = format!("{} {}", request.method(), request.uri());
                    record.lock().expect("issuer requests").push(line);
                    axum::http::StatusCode::NOT_FOUND
                }
            });
        let addr = super::serve(router).await;
        Self {
            addr,
            document,
            others,
        }
    }

    pub fn set_document(&self, document: Value) {
        *self.document.lock().expect("document") = document;
    }

    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An `oidc` account table for this issuer (a public client: no secret needed).
    pub fn account_toml(&self, name: &str) -> String {
        format!(
            "[[account]]\nname = \"{name}\"\nprovider = \"oidc\"\nissuer = \"{}\"\n\
             client_id = \"tw-e2e\"\nclient_auth = \"none\"\n",
            self.url()
        )
    }

    /// Requests to anything but the discovery document, as `METHOD TARGET`.
    pub fn other_requests(&self) -> Vec<String> {
        self.others.lock().expect("issuer requests").clone()
    }
}
