//! Content-defined chunking with FastCDC (2020), with the repository's parameters and
//! gear seed: a streaming reader for file content and an incremental chunker for the
//! tree stream, which is produced a line at a time.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization, StreamCDC};

use crate::format::config::ChunkerParams;

/// Chunks a reader (a file, a disk image) without holding more than one maximum-size
/// chunk in memory.
pub fn stream<R: Read>(p: &ChunkerParams, r: R) -> StreamCDC<R> {
    StreamCDC::with_level_and_seed(
        r,
        p.min as usize,
        p.avg as usize,
        p.max as usize,
        Normalization::Level1,
        p.seed,
    )
}

/// The (offset, length) cuts of a slice held whole in memory.
pub fn cuts(p: &ChunkerParams, data: &[u8]) -> Vec<(usize, usize)> {
    if data.is_empty() {
        return Vec::new();
    }
    cutter(p, data).map(|c| (c.offset, c.length)).collect()
}

/// FastCDC over a slice with the repository's parameters.
fn cutter<'a>(p: &ChunkerParams, data: &'a [u8]) -> FastCDC<'a> {
    FastCDC::with_level_and_seed(
        data,
        p.min as usize,
        p.avg as usize,
        p.max as usize,
        Normalization::Level1,
        p.seed,
    )
}

/// Chunks a byte stream that arrives in pieces. Emits a chunk as soon as the cut point
/// is certain, which is when at least `max` bytes are buffered.
pub struct IncrementalChunker {
    params: ChunkerParams,
    buf: Vec<u8>,
}

impl IncrementalChunker {
    pub fn new(params: ChunkerParams) -> Self {
        IncrementalChunker {
            params,
            buf: Vec::new(),
        }
    }

    /// Appends `bytes`; returns the chunks completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while self.buf.len() >= self.params.max as usize {
            let len = match cutter(&self.params, &self.buf).next() {
                Some(c) => c.length,
                None => break,
            };
            out.push(self.buf.drain(..len).collect());
        }
        out
    }

    /// The remaining chunks at the end of the stream.
    pub fn finish(self) -> Vec<Vec<u8>> {
        cutter(&self.params, &self.buf)
            .map(|c| self.buf[c.offset..c.offset + c.length].to_vec())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_matches_whole_stream() {
        let p = ChunkerParams {
            min: 1024,
            avg: 4096,
            max: 16384,
            seed: 42,
        };
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let whole: Vec<Vec<u8>> = stream(&p, &data[..]).map(|c| c.unwrap().data).collect();
        let mut inc = IncrementalChunker::new(p);
        let mut got = Vec::new();
        for piece in data.chunks(777) {
            got.extend(inc.push(piece));
        }
        got.extend(inc.finish());
        assert_eq!(got, whole);
        assert!(whole.len() > 10);
    }
}
