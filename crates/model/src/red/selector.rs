//! Which RED series a query or an alert rule reads.

use super::SeriesKey;

/// Which series to read (unset: all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub cluster: Option<String>,
    pub services: Vec<String>,
    pub operation: Option<String>,
    pub span_kind: Option<String>,
}

impl Selector {
    pub fn matches(&self, s: &SeriesKey) -> bool {
        self.cluster.as_ref().is_none_or(|c| *c == s.cluster)
            && (self.services.is_empty() || self.services.contains(&s.service))
            && self.operation.as_ref().is_none_or(|o| *o == s.operation)
            && self.span_kind.as_ref().is_none_or(|k| *k == s.span_kind)
    }
}
