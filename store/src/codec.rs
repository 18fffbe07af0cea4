//! Span bodies: the model span as JSON, zstd-compressed (level 1).

use model::Span;

use crate::StoreError;

/// Encodes span bodies; one per batch, so the zstd context and the JSON
/// buffer are reused across spans.
pub(crate) struct Encoder {
    zstd: zstd::bulk::Compressor<'static>,
    json: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new() -> Result<Self, StoreError> {
        Ok(Self {
            zstd: zstd::bulk::Compressor::new(1).map_err(|e| StoreError::Backend(e.to_string()))?,
            json: Vec::with_capacity(4096),
        })
    }

    pub(crate) fn encode(&mut self, span: &Span) -> Result<Vec<u8>, StoreError> {
        self.json.clear();
        serde_json::to_writer(&mut self.json, span)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.zstd
            .compress(&self.json)
            .map_err(|e| StoreError::Backend(e.to_string()))
    }
}

/// Stored bodies are at most a few MiB; refuse anything that claims more.
const MAX_BODY: usize = 64 << 20;

/// The decompressed size a body declares (our bodies always do), capped:
/// sizing the buffer exactly avoids a large allocation per body.
fn declared_size(body: &[u8]) -> Result<usize, StoreError> {
    match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(n)) if n <= MAX_BODY as u64 => Ok(n as usize),
        Ok(Some(n)) => Err(StoreError::Corrupt(format!("body claims {n} bytes"))),
        Ok(None) => Ok(MAX_BODY),
        Err(_) => Err(StoreError::Corrupt("body is not a zstd frame".into())),
    }
}

/// Decodes span bodies, reusing one zstd context.
pub(crate) struct Decoder {
    zstd: zstd::bulk::Decompressor<'static>,
}

impl Decoder {
    pub(crate) fn new() -> Result<Self, StoreError> {
        Ok(Self {
            zstd: zstd::bulk::Decompressor::new()
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        })
    }

    pub(crate) fn decode(&mut self, body: &[u8]) -> Result<Span, StoreError> {
        let json = self
            .zstd
            .decompress(body, declared_size(body)?)
            .map_err(|e| StoreError::Corrupt(format!("span body: {e}")))?;
        serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(format!("span body: {e}")))
    }
}

/// The (key, value) rows indexed for tag search: span, resource and event
/// attributes in their string form, plus Jaeger's synthetic tags.
pub(crate) fn search_tags(span: &Span) -> Vec<(&str, String)> {
    let mut tags: Vec<(&str, String)> =
        Vec::with_capacity(span.attributes.len() + span.resource.attributes.len() + 3);
    for kv in span
        .attributes
        .iter()
        .chain(&span.resource.attributes)
        .chain(span.events.iter().flat_map(|e| &e.attributes))
    {
        tags.push((kv.key.as_str(), kv.value.to_search_string()));
    }
    if let Some(kind) = span.kind.jaeger_name() {
        tags.push(("span.kind", kind.to_owned()));
    }
    match span.status_code {
        model::StatusCode::Error => {
            tags.push(("error", "true".to_owned()));
            tags.push(("otel.status_code", "ERROR".to_owned()));
        }
        model::StatusCode::Ok => tags.push(("otel.status_code", "OK".to_owned())),
        model::StatusCode::Unset => {}
    }
    tags.sort_unstable();
    tags.dedup();
    tags
}
