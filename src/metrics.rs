//! Prometheus metrics (DESIGN §5; the names are a contract), with the official client crate.
//! Exposed by the admin API as `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `result` of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// "success" or "error".
    pub result: &'static str,
}

/// Every metric bascule exports.
pub struct Metrics {
    registry: Registry,
    config_reloads: Family<ReloadLabels, Counter>,
    config_generation: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "bascule_config_reloads",
            "Config reloads, by result (success or error)",
            config_reloads.clone(),
        );
        let config_generation = Gauge::default();
        registry.register(
            "bascule_config_generation",
            "Generation of the serving config: 1 after start, +1 per applied reload",
            config_generation.clone(),
        );
        // Both results exist from the start, so that rate() and alerts see a zero.
        for result in ["success", "error"] {
            config_reloads
                .get_or_create(&ReloadLabels { result })
                .inc_by(0);
        }
        config_generation.set(1);
        Metrics {
            registry,
            config_reloads,
            config_generation,
        }
    }

    /// Counts a reload; `generation` is the serving one afterwards.
    pub fn reloaded(&self, ok: bool, generation: u64) {
        let result = if ok { "success" } else { "error" };
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        self.config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_are_counted_by_result() {
        let m = Metrics::new();
        m.reloaded(true, 2);
        m.reloaded(false, 2);
        m.reloaded(false, 2);
        let text = m.encode();
        assert!(
            text.contains("bascule_config_reloads_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bascule_config_reloads_total{result=\"error\"} 2"),
            "{text}"
        );
        assert!(text.contains("bascule_config_generation 2"), "{text}");
    }
}
