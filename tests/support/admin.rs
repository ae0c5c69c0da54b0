//! The admin API of a running `Bascule`, as the tests read and drive it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use super::bascule::Bascule;
use super::client::Reply;

/// `method path` to the admin API at `addr` as curl sends it: `Host: ADDR`, no `Origin`, and
/// only `headers` besides.
pub async fn admin_request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    super::client::request(addr, method, &addr.to_string(), path, headers, body).await
}

/// `GET path` from the admin API at `addr` (`Host: ADDR`).
pub async fn admin_get(addr: SocketAddr, path: &str) -> Reply {
    admin_request(addr, Method::GET, path, &[], Bytes::new()).await
}

impl Bascule {
    /// `GET /status` from the admin API, parsed.
    pub async fn status(&self) -> serde_json::Value {
        let r = admin_get(self.admin, "/status").await;
        assert_eq!(r.status, 200, "GET /status: {}", r.text());
        serde_json::from_slice(&r.body).expect("/status is JSON")
    }

    /// `POST path` with a JSON `body` to the admin API: the status and the parsed answer.
    pub async fn admin_post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let r = admin_request(
            self.admin,
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body.to_owned(),
        )
        .await;
        let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
        (r.status.as_u16(), v)
    }

    /// The upstream `name`'s entry in `/status`, asked with a bearer token.
    pub async fn upstream_status_with_token(&self, name: &str, token: &str) -> serde_json::Value {
        let auth = format!("Bearer {token}");
        let r = admin_request(
            self.admin,
            Method::GET,
            "/status",
            &[("authorization", auth.as_str())],
            "",
        )
        .await;
        let s: serde_json::Value = serde_json::from_slice(&r.body).expect("/status is JSON");
        s["upstreams"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no upstream {name} in /status: {s}"))
    }

    /// The upstream `name`'s entry in `/status`.
    pub async fn upstream_status(&self, name: &str) -> serde_json::Value {
        let s = self.status().await;
        s["upstreams"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no upstream {name} in /status: {s}"))
    }

    /// The route `name`'s entry in `/status`.
    pub async fn route_status(&self, name: &str) -> serde_json::Value {
        let s = self.status().await;
        s["routes"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no route {name} in /status: {s}"))
    }

    /// Polls `/status` every 20 ms until `pred` holds, at most `limit`; returns how long it
    /// took, or panics with the last status.
    pub async fn wait_status(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let s = self.status().await;
            if pred(&s) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; last /status: {s:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
