//! The operator's overrides on the admin API (DESIGN §5): drain and undrain an upstream, pin
//! and unpin a route to a tier, each with an optional reason kept in the events (and, for a
//! drain, in `/status`). 404 for an unknown name, 422 for a tier the route does not have.

use std::net::SocketAddr;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{json_answer, not_found, AdminApi, Answer};

impl AdminApi {
    /// `POST /upstreams/NAME/drain` (`drain`) or `/undrain`.
    pub(super) fn drain(&self, name: &str, drain: bool, reason: &str) -> Answer {
        let table = self.table.load_full();
        let Some(u) = table.upstream_named(name) else {
            return not_found("upstream", name);
        };
        if drain {
            u.live.health.drain(reason);
        } else {
            u.live.health.undrain(reason);
        }
        json_answer(
            StatusCode::OK,
            &json!({
                "upstream": name,
                "state": u.live.health.state(),
                "drain_reason": u.live.health.drain_reason(),
            }),
        )
    }

    /// `POST /routes/NAME/pin`.
    pub(super) fn pin(&self, name: &str, tier: Option<i64>, reason: &str) -> Answer {
        let table = self.table.load_full();
        let Some(route) = table.route_named(name) else {
            return not_found("route", name);
        };
        let count = route.tiers.len();
        let Some(tier) = tier
            .and_then(|t| usize::try_from(t).ok())
            .filter(|t| *t < count)
        else {
            let msg = format!(
                "route {name:?} has tiers 0 to {}; give {{\"tier\": N}}",
                count.saturating_sub(1)
            );
            return json_answer(StatusCode::UNPROCESSABLE_ENTITY, &json!({ "error": msg }));
        };
        route.state.set_pin(tier, reason);
        json_answer(StatusCode::OK, &json!({"route": name, "pinned": tier}))
    }

    /// `POST /routes/NAME/unpin`.
    pub(super) fn unpin(&self, name: &str, reason: &str) -> Answer {
        let table = self.table.load_full();
        let Some(route) = table.route_named(name) else {
            return not_found("route", name);
        };
        let was = route.state.unpin(reason);
        json_answer(
            StatusCode::OK,
            &json!({"route": name, "pinned": null, "was_pinned": was}),
        )
    }
}

/// `{"reason": "..."}`, optional as a whole.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Reason {
    pub(super) reason: Option<String>,
}

impl Reason {
    /// The reason given, else who asked.
    pub(super) fn reason_or(self, peer: SocketAddr) -> String {
        self.reason.unwrap_or_else(|| by(peer))
    }
}

/// `{"tier": 1, "reason": "..."}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PinBody {
    pub(super) tier: Option<i64>,
    pub(super) reason: Option<String>,
}

/// `{"host": "www.example.com", "path": "/news/*"}` (`POST /cache/purge`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Purge {
    pub(super) host: String,
    pub(super) path: String,
}

/// The reason recorded when a request gives none.
pub(super) fn by(peer: SocketAddr) -> String {
    format!("admin API request from {}", peer.ip())
}
