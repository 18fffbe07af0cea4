//! The agents this gateway node hears from: a bounded in-memory registry,
//! fed by `Forward` (spans, the agent's [`AgentStatus`]) and `Control`
//! (whether the agent's stream is open, since when), read by
//! `GET /api/v1/agents` ([`api`]).
//!
//! Each node knows only the agents that talk to it; the HTTP handler asks
//! the other members for theirs. Nothing here is replicated or persisted: a
//! restarted node starts empty and refills as its agents forward.
//!
//! Bounds: at most [`MAX_AGENTS`] entries. Full policy: a new agent evicts
//! the least recently seen entry, preferring one without an open `Control`
//! stream (an O(n) scan, only when a new agent arrives at a full registry).
//! Agent ids longer than [`MAX_AGENT_ID_BYTES`] are cut. Time is passed in
//! (unix ms) so the core is tested without a clock.

pub mod api;
mod rate;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use model::ClusterId;
use proto::federation::AgentStatus;
use serde::{Deserialize, Serialize};
use telemetry::clock::unix_ms_u64;

pub use rate::SpanRate;

/// Most agents one node keeps.
pub const MAX_AGENTS: usize = 10_000;
/// Longest agent id kept (longer ids are cut at a char boundary).
pub const MAX_AGENT_ID_BYTES: usize = 128;

/// Identity of an agent instance: its cluster (from its certificate) and
/// the id it persists in its buffer dir.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentKey {
    pub cluster: ClusterId,
    pub agent_id: Arc<str>,
}

impl AgentKey {
    pub fn new(cluster: ClusterId, agent_id: &str) -> Self {
        let mut end = agent_id.len().min(MAX_AGENT_ID_BYTES);
        while !agent_id.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            cluster,
            agent_id: Arc::from(&agent_id[..end]),
        }
    }
}

/// The buffer state an agent last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BufferState {
    pub used_bytes: u64,
    pub capacity_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_age_ms: Option<u64>,
}

impl From<&AgentStatus> for BufferState {
    fn from(s: &AgentStatus) -> Self {
        Self {
            used_bytes: s.buffer_used_bytes,
            capacity_bytes: s.buffer_capacity_bytes,
            spans: Some(s.buffer_spans),
            oldest_age_ms: (s.oldest_record_age_ms > 0).then_some(s.oldest_record_age_ms),
        }
    }
}

/// One agent as `GET /api/v1/agents` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub cluster: String,
    pub agent_id: String,
    /// The gateway node that reports it.
    pub gateway: u64,
    pub connected: bool,
    pub last_seen_ms: u64,
    /// Spans per second over the last minute.
    pub spans_per_sec: f64,
    pub spans_total: u64,
    pub buffer: Option<BufferState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug)]
struct Entry {
    last_seen_ms: u64,
    /// Open `Control` streams (two briefly while an agent reconnects).
    control_streams: u32,
    connected_since_ms: Option<u64>,
    spans_total: u64,
    bytes_total: u64,
    rate: SpanRate,
    buffer: Option<BufferState>,
    version: Option<String>,
}

impl Entry {
    fn new(now_ms: u64) -> Self {
        Self {
            last_seen_ms: now_ms,
            control_streams: 0,
            connected_since_ms: None,
            spans_total: 0,
            bytes_total: 0,
            rate: SpanRate::default(),
            buffer: None,
            version: None,
        }
    }
}

/// The registry's state (pure; see [`AgentRegistry`] for the shared handle).
#[derive(Debug)]
pub struct Agents {
    entries: HashMap<AgentKey, Entry>,
    max: usize,
    evicted: u64,
}

impl Agents {
    pub fn new(max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max: max.max(1),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries evicted to make room so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn entry(&mut self, key: &AgentKey, now_ms: u64) -> &mut Entry {
        if !self.entries.contains_key(key) && self.entries.len() >= self.max {
            let victim = self
                .entries
                .iter()
                .min_by_key(|(_, e)| (e.control_streams > 0, e.last_seen_ms))
                .map(|(k, _)| k.clone());
            if let Some(v) = victim {
                self.entries.remove(&v);
                self.evicted += 1;
            }
        }
        let e = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| Entry::new(now_ms));
        e.last_seen_ms = e.last_seen_ms.max(now_ms);
        e
    }

    /// A committed `Forward` batch of `spans` spans (`bytes` uncompressed).
    pub fn forwarded(
        &mut self,
        key: &AgentKey,
        spans: u64,
        bytes: u64,
        status: Option<&AgentStatus>,
        now_ms: u64,
    ) {
        let e = self.entry(key, now_ms);
        e.spans_total = e.spans_total.saturating_add(spans);
        e.bytes_total = e.bytes_total.saturating_add(bytes);
        e.rate.add(spans, now_ms);
        if let Some(s) = status {
            e.buffer = Some(BufferState::from(s));
            if !s.version.is_empty() {
                e.version = Some(s.version.chars().take(64).collect());
            }
        }
    }

    /// A `Control` stream of the agent opened.
    pub fn control_opened(&mut self, key: &AgentKey, now_ms: u64) {
        let e = self.entry(key, now_ms);
        e.control_streams = e.control_streams.saturating_add(1);
        e.connected_since_ms.get_or_insert(now_ms);
    }

    /// A `Control` stream of the agent ended (a no-op for an evicted
    /// agent).
    pub fn control_closed(&mut self, key: &AgentKey, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(key) {
            e.control_streams = e.control_streams.saturating_sub(1);
            e.last_seen_ms = e.last_seen_ms.max(now_ms);
            if e.control_streams == 0 {
                e.connected_since_ms = None;
            }
        }
    }

    /// Every agent, sorted by cluster and id; a connected agent was last
    /// seen now.
    pub fn list(&self, gateway: u64, now_ms: u64) -> Vec<AgentView> {
        let mut out: Vec<AgentView> = self
            .entries
            .iter()
            .map(|(k, e)| {
                let connected = e.control_streams > 0;
                AgentView {
                    cluster: k.cluster.to_string(),
                    agent_id: k.agent_id.to_string(),
                    gateway,
                    connected,
                    last_seen_ms: if connected { now_ms } else { e.last_seen_ms },
                    spans_per_sec: e.rate.per_sec(now_ms),
                    spans_total: e.spans_total,
                    buffer: e.buffer.clone(),
                    version: e.version.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.cluster, &a.agent_id).cmp(&(&b.cluster, &b.agent_id)));
        out
    }
}

/// The shared registry of one gateway node.
#[derive(Debug, Clone)]
pub struct AgentRegistry {
    inner: Arc<Mutex<Agents>>,
}

impl Default for AgentRegistry {
    fn default() -> Self {
        Self::new(MAX_AGENTS)
    }
}

impl AgentRegistry {
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Agents::new(max))),
        }
    }

    /// Runs `f` on the state (a poisoned lock still holds valid counters).
    pub fn with<T>(&self, f: impl FnOnce(&mut Agents) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    }

    /// Marks the agent connected until the returned guard drops (the end
    /// of its `Control` stream).
    pub fn connect(&self, key: AgentKey) -> Connected {
        self.with(|a| a.control_opened(&key, unix_ms_u64()));
        Connected {
            registry: self.clone(),
            key,
        }
    }
}

/// Held by an open `Control` stream.
#[derive(Debug)]
pub struct Connected {
    registry: AgentRegistry,
    key: AgentKey,
}

impl Drop for Connected {
    fn drop(&mut self) {
        let key = &self.key;
        self.registry.with(|a| a.control_closed(key, unix_ms_u64()));
    }
}

#[cfg(test)]
mod tests;
