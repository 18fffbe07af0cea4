//! Trace and span ids: fixed-size, never all zero, parsed from bytes or hex.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why bytes or text could not become an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be {expected} bytes, got {got}")]
    Length {
        kind: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{kind} must not be all zeros")]
    Zero { kind: &'static str },
    #[error("{kind} is not valid hex: {text:?}")]
    Hex { kind: &'static str, text: String },
}

/// A W3C / OTLP trace id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// A span id: 8 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

fn parse_hex<const N: usize>(kind: &'static str, text: &str) -> Result<[u8; N], IdError> {
    // Shorter ids are left-padded with zeros, as Zipkin and Jaeger allow
    // 16-hex-character (64-bit) trace ids.
    if text.is_empty() || text.len() > N * 2 {
        return Err(IdError::Length {
            kind,
            expected: N,
            got: text.len().div_ceil(2),
        });
    }
    let padded;
    let full = if text.len() == N * 2 {
        text
    } else {
        padded = format!("{text:0>width$}", width = N * 2);
        padded.as_str()
    };
    let mut out = [0u8; N];
    hex::decode_to_slice(full, &mut out).map_err(|_| IdError::Hex {
        kind,
        text: text.chars().take(64).collect(),
    })?;
    Ok(out)
}

fn from_slice<const N: usize>(kind: &'static str, bytes: &[u8]) -> Result<[u8; N], IdError> {
    let arr: [u8; N] = bytes.try_into().map_err(|_| IdError::Length {
        kind,
        expected: N,
        got: bytes.len(),
    })?;
    if arr.iter().all(|b| *b == 0) {
        return Err(IdError::Zero { kind });
    }
    Ok(arr)
}

impl TraceId {
    pub const KIND: &'static str = "trace id";

    /// From the 16 raw bytes of an OTLP span.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        from_slice(Self::KIND, bytes).map(Self)
    }

    /// From 1–32 hex characters (shorter ids are left-padded with zeros).
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        let arr = parse_hex::<16>(Self::KIND, text)?;
        Self::from_bytes(&arr)
    }

    pub const fn from_array(arr: [u8; 16]) -> Self {
        Self(arr)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The full 32-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Jaeger's form: 16 characters when the high 64 bits are zero, else 32.
    pub fn to_jaeger_hex(&self) -> String {
        if self.0[..8].iter().all(|b| *b == 0) {
            hex::encode(&self.0[8..])
        } else {
            hex::encode(self.0)
        }
    }

    /// The low 56 bits, the randomness W3C consistent sampling uses.
    pub fn randomness(&self) -> u64 {
        let mut low = [0u8; 8];
        low.copy_from_slice(&self.0[8..]);
        u64::from_be_bytes(low) & ((1u64 << 56) - 1)
    }
}

impl SpanId {
    pub const KIND: &'static str = "span id";

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        from_slice(Self::KIND, bytes).map(Self)
    }

    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        let arr = parse_hex::<8>(Self::KIND, text)?;
        Self::from_bytes(&arr)
    }

    pub const fn from_array(arr: [u8; 8]) -> Self {
        Self(arr)
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

macro_rules! id_traits {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
id_traits!(TraceId);
id_traits!(SpanId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_rules() {
        assert_eq!(
            TraceId::from_bytes(&[0; 16]),
            Err(IdError::Zero { kind: "trace id" })
        );
        assert!(matches!(
            TraceId::from_bytes(&[1; 15]),
            Err(IdError::Length { got: 15, .. })
        ));
        let short = TraceId::from_hex("00000000000000ff").unwrap();
        assert_eq!(short.to_jaeger_hex(), "00000000000000ff");
        assert_eq!(short.to_hex(), "000000000000000000000000000000ff");
        let long = TraceId::from_hex("0102030405060708090a0b0c0d0e0f10").unwrap();
        assert_eq!(long.to_jaeger_hex(), "0102030405060708090a0b0c0d0e0f10");
        assert!(matches!(TraceId::from_hex("zz"), Err(IdError::Hex { .. })));
        assert!(matches!(
            TraceId::from_hex(&"a".repeat(33)),
            Err(IdError::Length { .. })
        ));
        assert_eq!(long.randomness(), 0x0a0b0c0d0e0f10);
    }

    #[test]
    fn span_id_rules() {
        assert!(SpanId::from_hex("0000000000000000").is_err());
        assert_eq!(SpanId::from_hex("1").unwrap().to_hex(), "0000000000000001");
        let id: SpanId = serde_json::from_str("\"00000000000000aa\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"00000000000000aa\"");
    }
}
