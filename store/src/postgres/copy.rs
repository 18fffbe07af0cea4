//! Postgres binary COPY encoding for the column types the chunk rows use.

/// Rows in `COPY … FROM STDIN (FORMAT binary)` form.
#[derive(Debug)]
pub(crate) struct BinaryCopy {
    buf: Vec<u8>,
}

impl BinaryCopy {
    pub(crate) fn new() -> Self {
        let mut buf = Vec::with_capacity(64 << 10);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension
        Self { buf }
    }

    pub(crate) fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    pub(crate) fn int4(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn int8(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Values over 1 GiB cannot be stored by Postgres; callers keep chunks
    /// far below (a request is at most a few MiB).
    pub(crate) fn bytea(&mut self, v: &[u8]) -> &mut Self {
        let len = i32::try_from(v.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(v);
        self
    }

    pub(crate) fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(u8::from(v));
        self
    }

    /// A one-dimensional `bigint[]` without NULLs (an empty slice is the
    /// empty array). Callers pass at most a request's spans.
    pub(crate) fn int8_array(&mut self, v: &[i64]) -> &mut Self {
        const INT8_OID: i32 = 20;
        let (dims, body): (i32, usize) = if v.is_empty() {
            (0, 12)
        } else {
            (1, 20 + 12 * v.len())
        };
        let len = i32::try_from(body).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&dims.to_be_bytes());
        self.buf.extend_from_slice(&0i32.to_be_bytes()); // no NULLs
        self.buf.extend_from_slice(&INT8_OID.to_be_bytes());
        if dims == 1 {
            let n = i32::try_from(v.len()).unwrap_or(i32::MAX);
            self.buf.extend_from_slice(&n.to_be_bytes());
            self.buf.extend_from_slice(&1i32.to_be_bytes()); // lower bound
            for x in v {
                self.buf.extend_from_slice(&8i32.to_be_bytes());
                self.buf.extend_from_slice(&x.to_be_bytes());
            }
        }
        self
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_binary_copy_format() {
        let mut c = BinaryCopy::new();
        c.row(2).int4(7).bytea(b"ab");
        let out = c.finish();
        assert_eq!(&out[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&out[11..19], &[0; 8]);
        assert_eq!(&out[19..21], &2i16.to_be_bytes());
        assert_eq!(&out[21..29], &[0, 0, 0, 4, 0, 0, 0, 7]);
        assert_eq!(&out[29..35], &[0, 0, 0, 2, b'a', b'b']);
        assert_eq!(&out[35..], &[0xff, 0xff]);
    }

    #[test]
    fn int8_arrays() {
        let mut c = BinaryCopy::new();
        c.row(2).int8_array(&[]).int8_array(&[-2, 7]);
        let out = c.finish();
        let body = &out[21..];
        // Empty: 12 bytes (ndim 0, no nulls, element oid 20).
        assert_eq!(
            &body[..16],
            &[0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20]
        );
        let arr = &body[16..];
        assert_eq!(&arr[..4], &44i32.to_be_bytes());
        assert_eq!(
            &arr[4..24],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 1]
        );
        assert_eq!(&arr[24..28], &8i32.to_be_bytes());
        assert_eq!(&arr[28..36], &(-2i64).to_be_bytes());
        assert_eq!(&arr[40..48], &7i64.to_be_bytes());
        assert_eq!(&arr[48..], &[0xff, 0xff]);
    }
}
