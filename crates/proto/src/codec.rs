//! The federation service's gRPC codec: prost, with the received message
//! checked against [`crate::bounds`] before it is decoded. tonic's own
//! codec decodes straight away, so a `DigestBatch` of empty digests
//! (`1a 00`, 2 bytes each, 64 once decoded) within the 32 MiB message limit
//! asked for a gigabyte before the service could count them.
//!
//! The generated federation code names this codec (`codec_path` in
//! `tests/generated_code.rs`), for the server and the agents' client alike.

use std::marker::PhantomData;

use bytes::Buf;
use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};

use crate::bounds::{self, DecodeLimits, Schema};
use crate::federation::{
    ControlRequest, ControlUpdate, DigestBatch, ForwardRequest, ForwardResponse, VerdictBatch,
};

/// A message the codec decodes, with its schema and limits.
pub trait Bounded: Message + Default {
    const SCHEMA: Schema;
    const LIMITS: DecodeLimits = DecodeLimits::FEDERATION;
}

impl Bounded for ForwardRequest {
    const SCHEMA: Schema = Schema::FLAT;
}

impl Bounded for ForwardResponse {
    const SCHEMA: Schema = Schema::FLAT;
}

impl Bounded for ControlRequest {
    const SCHEMA: Schema = Schema::FLAT;
}

impl Bounded for ControlUpdate {
    const SCHEMA: Schema = Schema::CONTROL_UPDATE;
    /// A member list and a policy: far below this.
    const LIMITS: DecodeLimits = DecodeLimits {
        max_decoded_bytes: 1 << 20,
        ..DecodeLimits::FEDERATION
    };
}

impl Bounded for DigestBatch {
    const SCHEMA: Schema = Schema::DIGEST_BATCH;
    /// The relay refuses more than 4,096 digests and 256 policy names per
    /// batch (`stitch::tail::wire`): about 300 KiB decoded.
    const LIMITS: DecodeLimits = DecodeLimits {
        max_decoded_bytes: 1 << 20,
        ..DecodeLimits::FEDERATION
    };
}

impl Bounded for VerdictBatch {
    const SCHEMA: Schema = Schema::VERDICT_BATCH;
}

/// prost's encoder, and [`BoundedDecoder`].
#[derive(Debug)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Bounded + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(PhantomData)
    }
}

/// Checks [`Bounded::LIMITS`], then decodes. Refusals: RESOURCE_EXHAUSTED
/// (a cap) or INVALID_ARGUMENT (malformed).
#[derive(Debug)]
pub struct BoundedDecoder<U>(PhantomData<U>);

/// Checks `bytes` as a `U`, then decodes it.
pub fn decode<U: Bounded>(bytes: &[u8]) -> Result<U, Status> {
    bounds::check_protobuf(bytes, &U::SCHEMA, &U::LIMITS).map_err(|e| {
        if e.is_malformed() {
            Status::invalid_argument(e.to_string())
        } else {
            Status::resource_exhausted(e.to_string())
        }
    })?;
    U::decode(bytes).map_err(|e| Status::invalid_argument(format!("invalid message: {e}")))
}

impl<U: Bounded> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let len = buf.remaining();
        // tonic hands the whole message in one buffer; copy only if not.
        let out = if buf.chunk().len() == len {
            let r = decode(buf.chunk());
            buf.advance(len);
            r
        } else {
            let bytes = buf.copy_to_bytes(len);
            decode(&bytes)
        };
        out.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_empty_digests_is_refused_before_decoding() {
        // 4 MiB of `1a 00`: 2 M digests, ~128 MiB decoded.
        let bytes = [0x1a, 0x00].repeat(2 << 20);
        let err = decode::<DigestBatch>(&bytes).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        // A real batch decodes.
        let batch = DigestBatch {
            agent_id: "a".into(),
            cluster: "c".into(),
            digests: vec![Default::default(); 512],
            policies: vec!["p".into()],
        };
        assert_eq!(
            decode::<DigestBatch>(&batch.encode_to_vec()).unwrap(),
            batch
        );
        let bad = decode::<DigestBatch>(&[0x1a, 0x05]).unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    }
}
