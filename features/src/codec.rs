//! Compact binary encoding of feature state blobs: LEB128 varints, zig-zag for signed values, length-prefixed
//! strings. Hand-written because the state is the memory budget (see ARCHITECTURE: ≤ 0.3 GiB per million
//! shoppers), and a general-purpose format would spend bytes on field names or fixed-width integers.

use crate::{Error, Result};

/// Appends values to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    pub(crate) fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }

    pub(crate) fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Only format-1 fixtures write full 64-bit values now.
    #[cfg(test)]
    pub(crate) fn fixed_u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// The low 48 bits of `v`, little-endian.
    pub(crate) fn fixed_u48(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes()[..6]);
    }

    /// Two bytes, little-endian.
    pub(crate) fn fixed_u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.usize(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Only format-1 fixtures write optional strings this way now.
    #[cfg(test)]
    pub(crate) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.buf.push(1);
                self.str(s);
            }
            None => self.buf.push(0),
        }
    }
}

/// Reads values written by [`Writer`]; every read checks bounds and reports a corrupt blob as an error.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn corrupt(&self, what: &str) -> Error {
        Error::Internal(format!(
            "corrupt feature blob: cannot read {what} at byte {} of {}",
            self.pos,
            self.buf.len()
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.corrupt("varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint (too long)"))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    pub(crate) fn usize(&mut self) -> Result<usize> {
        let v = self.u64()?;
        // Lengths are bounded by the blob itself: a length beyond it is corruption, not an allocation.
        if v as usize > self.buf.len().saturating_mul(8) + 64 {
            return Err(self.corrupt("length"));
        }
        Ok(v as usize)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| self.corrupt(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn f32(&mut self) -> Result<f32> {
        let b = self.take(4, "f32")?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn fixed_u64(&mut self) -> Result<u64> {
        let b = self.take(8, "u64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        let n = self.usize()?;
        self.string_of(n)
    }

    /// A UTF-8 string of `n` bytes (its length was read separately).
    pub(crate) fn string_of(&mut self, n: usize) -> Result<String> {
        let b = self.take(n, "string")?;
        String::from_utf8(b.to_vec()).map_err(|_| self.corrupt("utf-8 string"))
    }

    /// What [`Writer::fixed_u16`] wrote.
    pub(crate) fn fixed_u16(&mut self) -> Result<u16> {
        let b = self.take(2, "u16")?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// 48-bit little-endian fixed-width value.
    pub(crate) fn fixed_u48(&mut self) -> Result<u64> {
        let b = self.take(6, "u48")?;
        let mut a = [0u8; 8];
        a[..6].copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn opt_string(&mut self) -> Result<Option<String>> {
        match self.take(1, "option tag")?[0] {
            0 => Ok(None),
            _ => Ok(Some(self.string()?)),
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(a in any::<u64>(), b in any::<i64>(), s in ".{0,40}", f in any::<f32>(), o in proptest::option::of("[a-z]{0,5}")) {
            let mut w = Writer::default();
            w.u64(a); w.i64(b); w.str(&s); w.f32(f); w.opt_str(o.as_deref()); w.fixed_u64(a);
            let mut r = Reader::new(&w.buf);
            prop_assert_eq!(r.u64().unwrap(), a);
            prop_assert_eq!(r.i64().unwrap(), b);
            prop_assert_eq!(r.string().unwrap(), s);
            prop_assert_eq!(r.f32().unwrap().to_bits(), f.to_bits());
            prop_assert_eq!(r.opt_string().unwrap(), o);
            prop_assert_eq!(r.fixed_u64().unwrap(), a);
            prop_assert!(r.done());
        }

        #[test]
        fn truncated_input_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut r = Reader::new(&bytes);
            let _ = r.string();
            let _ = r.u64();
            let _ = r.f32();
        }
    }
}
