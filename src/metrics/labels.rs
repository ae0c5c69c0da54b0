//! The label sets of bascule's metric families.

use prometheus_client::encoding::EncodeLabelSet;

/// `{route, upstream, code}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub(crate) route: String,
    pub(crate) upstream: String,
    pub(crate) code: String,
}

/// `{route}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub(crate) route: String,
}

/// `{upstream}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabel {
    pub(crate) upstream: String,
}

/// `{upstream, outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub(crate) upstream: String,
    pub(crate) outcome: &'static str,
}

/// `{upstream, fault}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FaultLabels {
    pub(crate) upstream: String,
    pub(crate) fault: &'static str,
}

/// `{route, from, to}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailoverLabels {
    pub(crate) route: String,
    pub(crate) from: String,
    pub(crate) to: String,
}

/// `{op}` of a local resource failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub(crate) op: &'static str,
}

/// `{result}` of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub(crate) result: &'static str,
}

/// `{route, result}` of a request that met the cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub(crate) route: String,
    pub(crate) result: &'static str,
}
