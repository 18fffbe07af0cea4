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
/// A declared size is trusted for one exact allocation only up to this
/// many times the body's length (JSON bodies compress 3–10×): a 20-byte
/// body claiming 64 MiB must not get them before it is inflated.
const PLAUSIBLE_RATIO: usize = 64;
/// Largest zstd window a streamed body may ask the decoder for (8 MiB; our
/// encoder's level 1 uses far less).
const MAX_WINDOW_LOG: u32 = 23;

fn corrupt_body(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("span body: {e}"))
}

/// How a body is inflated: into one allocation of its declared size (our
/// bodies always declare it), or streamed, growing with the output. Also
/// the plan of Postgres chunk bodies (`chunk::ChunkDecoder`).
pub(crate) fn plan(body: &[u8]) -> Result<Option<usize>, StoreError> {
    match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(n)) if n > MAX_BODY as u64 => {
            Err(StoreError::Corrupt(format!("body claims {n} bytes")))
        }
        Ok(Some(n)) if n as usize <= body.len().saturating_mul(PLAUSIBLE_RATIO) + 4096 => {
            Ok(Some(n as usize))
        }
        Ok(_) => Ok(None),
        Err(_) => Err(StoreError::Corrupt("body is not a zstd frame".into())),
    }
}

/// Inflates a frame that declares no size (or an implausible one), never
/// past [`MAX_BODY`].
pub(crate) fn stream(body: &[u8]) -> Result<Vec<u8>, StoreError> {
    use std::io::Read;
    let mut decoder = zstd::stream::read::Decoder::with_buffer(body).map_err(corrupt_body)?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(corrupt_body)?;
    let mut out = Vec::new();
    decoder
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(corrupt_body)?;
    if out.len() > MAX_BODY {
        return Err(StoreError::Corrupt(format!(
            "body inflates beyond {MAX_BODY} bytes"
        )));
    }
    Ok(out)
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
        let json = match plan(body)? {
            Some(size) => self.zstd.decompress(body, size).map_err(corrupt_body)?,
            None => stream(body)?,
        };
        serde_json::from_slice(&json).map_err(corrupt_body)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        crate::testsuite::SpanBuilder::new(1, 1, "checkout")
            .name("PlaceOrder")
            .build()
    }

    /// Found by the fuzzer (fuzz/, target store-span-body): a frame
    /// that declares no size got `MAX_BODY` (64 MiB) preallocated, and one
    /// that declares 64 MiB would too, whatever its length.
    #[test]
    fn a_body_gets_no_more_room_than_it_can_fill() {
        let json = b"{}".repeat(1000);
        // zstd without the content size in its frame header.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &json).unwrap();
        let sizeless = enc.finish().unwrap();
        assert_eq!(plan(&sizeless).unwrap(), None);
        assert_eq!(stream(&sizeless).unwrap(), json);
        let sized = zstd::bulk::compress(&json, 1).unwrap();
        assert_eq!(plan(&sized).unwrap(), Some(json.len()));
        // A 9-byte frame header claiming 60 MiB is streamed, not trusted.
        let claim = [0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0x00, 0x00, 0xc0, 0x03];
        assert_eq!(plan(&claim).unwrap(), None);
        assert!(stream(&claim).is_err());
        // And a real body still decodes.
        let mut enc = Encoder::new().unwrap();
        let body = enc.encode(&span()).unwrap();
        assert_eq!(Decoder::new().unwrap().decode(&body).unwrap(), span());
    }
}
