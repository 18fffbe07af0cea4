//! The wire-format cursor of [`super::parse`], with prost's rules for
//! varints, keys and lengths.

use super::{Result, ViewError};

/// A cursor over one message's bytes; `base` is where they start in the
/// request (for [`ResourceView`] ranges).
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    base: usize,
}

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const FIXED32: u8 = 5;

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, at: 0, base }
    }

    pub(super) fn done(&self) -> bool {
        self.at >= self.buf.len()
    }

    pub(super) fn pos(&self) -> usize {
        self.base + self.at
    }

    /// prost's `decode_varint`: at most 10 bytes, the 10th below 2.
    pub(super) fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.at + i) else {
                return Err(ViewError::Malformed("truncated varint"));
            };
            if i == 9 && b >= 0x02 {
                return Err(ViewError::Malformed("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.at += i + 1;
                return Ok(v);
            }
        }
        Err(ViewError::Malformed("varint longer than 10 bytes"))
    }

    /// prost's `decode_key`: a key within u32, a wire type 0–5, a tag ≥ 1.
    pub(super) fn key(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| ViewError::Malformed("key above u32"))?;
        let wire = (key & 7) as u8;
        if wire > 5 {
            return Err(ViewError::Malformed("wire type above 5"));
        }
        if key >> 3 == 0 {
            return Err(ViewError::Malformed("field number 0"));
        }
        Ok((key >> 3, wire))
    }

    pub(super) fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.buf.len() - self.at)
            .ok_or(ViewError::Malformed("field runs past the end"))?;
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    pub(super) fn expect(wire: u8, want: u8) -> Result<()> {
        if wire == want {
            Ok(())
        } else {
            Err(ViewError::Malformed("wire type does not match the field"))
        }
    }

    pub(super) fn len_field(&mut self, wire: u8) -> Result<&'a [u8]> {
        Self::expect(wire, LEN)?;
        let n = self.varint()?;
        self.take(n)
    }

    pub(super) fn string(&mut self, wire: u8) -> Result<&'a str> {
        let b = self.len_field(wire)?;
        std::str::from_utf8(b).map_err(|_| ViewError::Malformed("string is not UTF-8"))
    }

    pub(super) fn uint(&mut self, wire: u8) -> Result<u64> {
        Self::expect(wire, VARINT)?;
        self.varint()
    }

    pub(super) fn fixed64(&mut self, wire: u8) -> Result<u64> {
        Self::expect(wire, FIXED64)?;
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(super) fn fixed32(&mut self, wire: u8) -> Result<()> {
        Self::expect(wire, FIXED32)?;
        self.take(4).map(|_| ())
    }

    /// An unknown field (prost skips it; groups are refused here).
    pub(super) fn skip(&mut self, wire: u8) -> Result<()> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.take(8).map(|_| ()),
            LEN => {
                let n = self.varint()?;
                self.take(n).map(|_| ())
            }
            FIXED32 => self.take(4).map(|_| ()),
            _ => Err(ViewError::Unsupported("groups")),
        }
    }
}
