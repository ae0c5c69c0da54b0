//! `bascule status`, `bascule reload`, `bascule purge`, and `bascule drain`, `undrain`, `pin` and `unpin`: the
//! operator's overrides, sent to a running bascule's admin API as the JSON POSTs it requires,
//! so that nobody hand-writes curl with headers. Each returns the line to print, or what went wrong in words an operator can act on
//! (an unknown name lists the known ones; a refused token says which flag gives it).

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::client;

/// One override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send no new requests to `upstream` until undrained.
    Drain {
        /// The upstream's name.
        upstream: String,
        /// Kept in the events and shown in `/status`.
        reason: Option<String>,
    },
    /// Use `upstream` again, at once.
    Undrain {
        /// The upstream's name.
        upstream: String,
        /// Kept in the events.
        reason: Option<String>,
    },
    /// Force `route` onto one tier (health still guards it).
    Pin {
        /// The route's name.
        route: String,
        /// A 0-based tier index, or the name of an upstream in that tier.
        tier: String,
        /// Kept in the events and shown in `/status`.
        reason: Option<String>,
    },
    /// Let `route` choose its tier by health again, at once.
    Unpin {
        /// The route's name.
        route: String,
        /// Kept in the events.
        reason: Option<String>,
    },
    /// Re-read the config file now (as SIGHUP does).
    Reload,
    /// Remove stored copies: `path` of `host`, or every path with a prefix (`path` ending
    /// in `*`).
    Purge {
        /// The site's host name.
        host: String,
        /// A path, or a prefix ending in `*`.
        path: String,
    },
}

impl Action {
    /// The command's name, for messages.
    pub fn command(&self) -> &'static str {
        match self {
            Action::Drain { .. } => "drain",
            Action::Undrain { .. } => "undrain",
            Action::Pin { .. } => "pin",
            Action::Unpin { .. } => "unpin",
            Action::Reload => "reload",
            Action::Purge { .. } => "purge",
        }
    }
}

/// `bascule status`: `/status` from the admin API at `admin`, as tables (or the JSON itself).
pub async fn status(admin: &str, token: Option<&str>, json: bool) -> Result<String, String> {
    let body = client::get(admin, "/status", token).await?;
    if json {
        return Ok(String::from_utf8_lossy(&body).into_owned());
    }
    let status: Value =
        serde_json::from_slice(&body).map_err(|e| format!("{admin}/status is not JSON: {e}"))?;
    Ok(super::render::render(&status, std::time::SystemTime::now()))
}

/// Sends `action` to the admin API at `admin`: the line to print, or why it failed.
pub async fn run(admin: &str, token: Option<&str>, action: &Action) -> Result<String, String> {
    let with_reason = |mut body: Value, reason: &Option<String>| {
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        body
    };
    match action {
        Action::Drain { upstream, reason } | Action::Undrain { upstream, reason } => {
            let verb = action.command();
            let path = format!("/upstreams/{upstream}/{verb}");
            let answer = post(admin, token, &path, &with_reason(json!({}), reason)).await;
            let answer = match answer {
                Err(Refused::NotFound(why)) => {
                    let known = names(admin, token, "upstreams").await;
                    return Err(format!("{why}{known}"));
                }
                other => other.map_err(Refused::into_message)?,
            };
            let state = answer["state"].as_str().unwrap_or("?");
            Ok(match answer["drain_reason"].as_str() {
                Some(r) => format!("upstream {upstream}: {state} ({r})"),
                None => format!("upstream {upstream}: {state}"),
            })
        }
        Action::Pin {
            route,
            tier,
            reason,
        } => {
            let status = client::get(admin, "/status", token).await?;
            let status: Value = serde_json::from_slice(&status)
                .map_err(|e| format!("{admin}/status is not JSON: {e}"))?;
            let tiers = route_tiers(&status, route)?;
            let index = tier_index(&tiers, route, tier)?;
            let path = format!("/routes/{route}/pin");
            let body = with_reason(json!({ "tier": index }), reason);
            post(admin, token, &path, &body)
                .await
                .map_err(Refused::into_message)?;
            Ok(format!(
                "route {route}: pinned to tier {index} ({})",
                tiers[index].join(", ")
            ))
        }
        Action::Unpin { route, reason } => {
            let path = format!("/routes/{route}/unpin");
            let answer = match post(admin, token, &path, &with_reason(json!({}), reason)).await {
                Err(Refused::NotFound(why)) => {
                    let known = names(admin, token, "routes").await;
                    return Err(format!("{why}{known}"));
                }
                other => other.map_err(Refused::into_message)?,
            };
            Ok(if answer["was_pinned"] == false {
                format!("route {route}: was not pinned")
            } else {
                format!("route {route}: unpinned")
            })
        }
        Action::Purge { host, path } => {
            let body = json!({ "host": host, "path": path });
            let answer = post(admin, token, "/cache/purge", &body)
                .await
                .map_err(Refused::into_message)?;
            Ok(format!(
                "purged {} stored copies of {host}{path}",
                answer["purged"]
            ))
        }
        Action::Reload => {
            let body = json!({});
            let (code, answer) =
                client::exchange(Method::POST, admin, "/reload", token, Some(&body)).await?;
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            match (code, v["error"].as_str()) {
                (StatusCode::OK, _) => Ok(format!("reloaded: generation {}", v["generation"])),
                // The file's errors, one FILE:LINE:COL line each, as `bascule check` prints them.
                (StatusCode::UNPROCESSABLE_ENTITY, Some(e)) => Err(format!(
                    "the config file was refused; the running config is kept:\n{e}"
                )),
                _ => Err(client::refusal(
                    admin,
                    "/reload",
                    code,
                    &answer,
                    token.is_some(),
                )),
            }
        }
    }
}

/// Why a POST did not succeed: an unknown name (404) apart, since it is worth a second look.
enum Refused {
    NotFound(String),
    Other(String),
}

impl Refused {
    fn into_message(self) -> String {
        match self {
            Refused::NotFound(m) | Refused::Other(m) => m,
        }
    }
}

/// POSTs `body` to `path`: the JSON answer of a 200, else why not.
async fn post(
    admin: &str,
    token: Option<&str>,
    path: &str,
    body: &Value,
) -> Result<Value, Refused> {
    let (status, answer) = client::exchange(Method::POST, admin, path, token, Some(body))
        .await
        .map_err(Refused::Other)?;
    let why = || client::refusal(admin, path, status, &answer, token.is_some());
    match status {
        StatusCode::OK => Ok(serde_json::from_slice(&answer).unwrap_or(Value::Null)),
        StatusCode::NOT_FOUND => Err(Refused::NotFound(why())),
        _ => Err(Refused::Other(why())),
    }
}

/// "; known: a, b" listing the `upstreams` or `routes` of `/status`, or nothing if that
/// cannot be read.
async fn names(admin: &str, token: Option<&str>, what: &str) -> String {
    let Ok(body) = client::get(admin, "/status", token).await else {
        return String::new();
    };
    let Ok(status) = serde_json::from_slice::<Value>(&body) else {
        return String::new();
    };
    let names: Vec<&str> = status[what]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    format!("; {what}: {}", names.join(", "))
}

/// The upstream names of each tier of `route` in `/status`.
fn route_tiers(status: &Value, route: &str) -> Result<Vec<Vec<String>>, String> {
    let routes = status["routes"].as_array().cloned().unwrap_or_default();
    let Some(r) = routes.iter().find(|r| r["name"] == route) else {
        let known: Vec<&str> = routes.iter().filter_map(|r| r["name"].as_str()).collect();
        return Err(format!(
            "no route named {route:?}; routes: {}",
            known.join(", ")
        ));
    };
    Ok(r["tiers"]
        .as_array()
        .map(|tiers| {
            tiers
                .iter()
                .map(|t| {
                    t.as_array()
                        .map(|m| {
                            m.iter()
                                .filter_map(|n| n.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default())
}

/// `tier` as an index into `tiers`: a 0-based number, or the name of an upstream in a tier.
pub fn tier_index(tiers: &[Vec<String>], route: &str, tier: &str) -> Result<usize, String> {
    let found = match tier.parse::<usize>() {
        Ok(i) => (i < tiers.len()).then_some(i),
        Err(_) => tiers.iter().position(|t| t.iter().any(|n| n == tier)),
    };
    found.ok_or_else(|| {
        let listed: Vec<String> = tiers
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{i} ({})", t.join(", ")))
            .collect();
        format!(
            "route {route:?} has no tier {tier:?}; its tiers: {}",
            listed.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<Vec<String>> {
        vec![
            vec!["primary-cdn".into()],
            vec!["secondary-cdn".into()],
            vec!["origin-a".into(), "origin-b".into()],
        ]
    }

    #[test]
    fn a_tier_is_named_by_its_index_or_by_one_of_its_upstreams() {
        assert_eq!(tier_index(&tiers(), "www", "1"), Ok(1));
        assert_eq!(tier_index(&tiers(), "www", "secondary-cdn"), Ok(1));
        assert_eq!(tier_index(&tiers(), "www", "origin-b"), Ok(2));
    }

    #[test]
    fn an_unknown_tier_lists_the_route_s_tiers() {
        let err = tier_index(&tiers(), "www", "3").unwrap_err();
        assert_eq!(
            err,
            "route \"www\" has no tier \"3\"; its tiers: 0 (primary-cdn), 1 (secondary-cdn), \
             2 (origin-a, origin-b)"
        );
        assert!(tier_index(&tiers(), "www", "akamai").is_err());
    }

    #[test]
    fn an_unknown_route_lists_the_routes() {
        let status = json!({"routes": [{"name": "www", "tiers": [["cdn"]]},
                                       {"name": "api", "tiers": [["origin"]]}]});
        assert_eq!(
            route_tiers(&status, "api"),
            Ok(vec![vec!["origin".to_owned()]])
        );
        assert_eq!(
            route_tiers(&status, "wwww"),
            Err("no route named \"wwww\"; routes: www, api".to_owned())
        );
    }
}
