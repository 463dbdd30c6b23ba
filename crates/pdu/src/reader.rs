//! Bounds-checked octet reader: every read names its field and offset on failure.

use crate::PduError;

/// Reads octets from a PDU, tracking the absolute offset for error messages.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Absolute offset of the next octet.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// Octets not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn truncated(&self, field: &'static str, needed_end: usize) -> PduError {
        PduError::Truncated {
            field,
            offset: needed_end.saturating_sub(1).max(self.pos),
            len: self.bytes.len(),
        }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, PduError> {
        let b = self
            .bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.truncated(field, self.pos.saturating_add(1)))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PduError> {
        let end = self.pos.saturating_add(n);
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(field, end))?;
        self.pos = end;
        Ok(slice)
    }
}
