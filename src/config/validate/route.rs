//! `[[routes]]`: hosts, prefix, tiers and `[routes.retry]`.

use std::collections::{BTreeMap, HashSet};

use toml::Spanned;

use super::super::defaults;
use super::super::file::{self, Scalar, Text, TierEntry};
use super::super::*;
use super::Checker;

impl Checker<'_> {
    pub(super) fn routes(
        &mut self,
        routes: &[Spanned<file::Route>],
        known: &HashSet<&str>,
    ) -> Vec<RouteSpec> {
        let mut names = HashSet::new();
        let mut seen_pairs: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut out = Vec::new();
        for r in routes {
            let r = r.get_ref();
            let name = self.text(&r.name, "routes.name").unwrap_or_default();
            let ctx = format!("route {name:?}");
            if name.is_empty() {
                self.error(r.name.span(), "route name must not be empty".into());
            } else if !names.insert(name.clone()) {
                self.error(r.name.span(), format!("{ctx}: duplicate route name"));
            }
            let path_prefix = match &r.path_prefix {
                None => defaults::PATH_PREFIX.to_owned(),
                Some(t) => self
                    .value(t, &format!("{ctx}: path_prefix"), |s| {
                        if s.starts_with('/') {
                            Ok(s.to_owned())
                        } else {
                            Err(format!("{s:?} must start with '/'"))
                        }
                    })
                    .unwrap_or_else(|| defaults::PATH_PREFIX.to_owned()),
            };
            if r.hosts.get_ref().is_empty() {
                self.error(r.hosts.span(), format!("{ctx}: hosts must not be empty"));
            }
            let mut hosts = Vec::new();
            for h in r.hosts.get_ref() {
                let Some(pattern) = self.value(h, &format!("{ctx}: host"), parse_host_pattern)
                else {
                    continue;
                };
                let pair = (pattern.to_string(), path_prefix.clone());
                match seen_pairs.get(&pair) {
                    Some(other) => self.error(
                        h.span(),
                        format!(
                            "{ctx}: host {} with prefix {:?} is already routed by route {other:?}",
                            pair.0, pair.1
                        ),
                    ),
                    None => {
                        seen_pairs.insert(pair, name.clone());
                    }
                }
                hosts.push(pattern);
            }
            let tiers = self.tiers(&r.tiers, &ctx, known);
            let failback_delay = match &r.failback_delay {
                None => defaults::FAILBACK_DELAY,
                Some(t) => self
                    .value(t, &format!("{ctx}: failback_delay"), units::duration)
                    .unwrap_or_default(),
            };
            let cache = match &r.cache {
                None => CacheMode::default(),
                Some(t) => self
                    .value(t, &format!("{ctx}: cache"), |s| match s {
                        "direct" => Ok(CacheMode::Direct),
                        "always" => Ok(CacheMode::Always),
                        "off" => Ok(CacheMode::Off),
                        other => Err(format!(
                            "{other:?} is not \"direct\", \"always\" or \"off\""
                        )),
                    })
                    .unwrap_or_default(),
            };
            let standby_share = self.share(
                r.standby_share.as_ref(),
                &format!("{ctx}: standby_share"),
                (|x| (0.0..1.0).contains(&x), "at least 0 and below 1"),
                defaults::STANDBY_SHARE,
            );
            let retry = self.retry(&r.retry, &ctx);
            let damping_memory = (self.env)(DAMPING_MEMORY_ENV)
                .and_then(|v| units::duration(&v).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(crate::select::DAMPING_MEMORY);
            out.push(RouteSpec {
                cache,
                name,
                hosts,
                path_prefix,
                tiers,
                failback_delay,
                standby_share,
                damping_memory,
                retry,
            });
        }
        out
    }

    fn tiers(
        &mut self,
        tiers: &Spanned<Vec<TierEntry>>,
        ctx: &str,
        known: &HashSet<&str>,
    ) -> Vec<Vec<String>> {
        if tiers.get_ref().is_empty() {
            self.error(tiers.span(), format!("{ctx}: tiers must not be empty"));
        }
        let mut used = HashSet::new();
        let mut out = Vec::new();
        for entry in tiers.get_ref() {
            let names: Vec<&Text> = match entry {
                TierEntry::One(t) => vec![t],
                TierEntry::Group(g) => {
                    if g.is_empty() {
                        self.error(
                            tiers.span(),
                            format!("{ctx}: a tier group must not be empty"),
                        );
                    }
                    g.iter().collect()
                }
            };
            let mut tier = Vec::new();
            for t in names {
                let Some(n) = self.text(t, &format!("{ctx}: tier")) else {
                    continue;
                };
                if !known.contains(n.as_str()) {
                    self.error(
                        t.span(),
                        format!("{ctx}: tier {n:?} is not a defined upstream"),
                    );
                } else if !used.insert(n.clone()) {
                    self.error(
                        t.span(),
                        format!("{ctx}: upstream {n:?} appears in more than one place in tiers"),
                    );
                }
                tier.push(n);
            }
            out.push(tier);
        }
        out
    }

    fn retry(&mut self, r: &file::Retry, ctx: &str) -> RetrySpec {
        let max = i64::try_from(MAX_ATTEMPTS).unwrap_or(16);
        let attempts = self.count(
            r.attempts.as_ref(),
            &format!("{ctx}: retry.attempts"),
            1,
            max,
            defaults::RETRY_ATTEMPTS,
        ) as usize;
        let mut on_status = StatusSet::default();
        match &r.on_status {
            None => {
                for (lo, hi) in defaults::RETRY_ON_STATUS {
                    let _always_valid = on_status.add_range(lo, hi);
                }
            }
            Some(list) => {
                for v in list {
                    let res = match v.get_ref() {
                        Scalar::Int(n) => u16::try_from(*n)
                            .map_err(|_| format!("invalid status {n}"))
                            .and_then(|c| on_status.add_range(c, c)),
                        Scalar::Str(s) => on_status.add_text(s),
                    };
                    if let Err(e) = res {
                        self.error(v.span(), format!("{ctx}: retry.on_status: {e}"));
                    }
                }
            }
        }
        let buffer_body = self.size(
            r.buffer_body.as_ref(),
            &format!("{ctx}: retry.buffer_body"),
            defaults::BUFFER_BODY,
        );
        let hedge_after = r
            .hedge_after
            .as_ref()
            .and_then(|t| self.value(t, &format!("{ctx}: retry.hedge_after"), HedgeAfter::parse))
            .unwrap_or(HedgeAfter::Auto);
        let budget = match &r.budget {
            None => defaults::RETRY_BUDGET,
            Some(v) if (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                let msg = format!(
                    "{ctx}: retry.budget: must be a share between 0 and 1, got {}",
                    v.get_ref()
                );
                self.error(v.span(), msg);
                defaults::RETRY_BUDGET
            }
        };
        let budget_min_per_sec = self.count(
            r.budget_min_per_sec.as_ref(),
            &format!("{ctx}: retry.budget_min_per_sec"),
            0,
            100_000,
            defaults::RETRY_BUDGET_MIN_PER_SEC,
        );
        RetrySpec {
            attempts,
            on_status,
            buffer_body: usize::try_from(buffer_body).unwrap_or(usize::MAX),
            hedge_after,
            budget,
            budget_min_per_sec,
        }
    }
}

fn parse_host_pattern(s: &str) -> Result<HostPattern, String> {
    let lower = s.trim().to_ascii_lowercase();
    if lower == "*" {
        return Ok(HostPattern::Any);
    }
    let (body, wildcard) = match lower.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (lower.as_str(), false),
    };
    let ok = !body.is_empty()
        && !body.starts_with('.')
        && !body.ends_with('.')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !ok {
        return Err(format!(
            "invalid host pattern {s:?}: use \"name\", \"*.suffix\" or \"*\" (no port)"
        ));
    }
    Ok(if wildcard {
        HostPattern::Suffix(format!(".{body}"))
    } else {
        HostPattern::Exact(body.to_owned())
    })
}
