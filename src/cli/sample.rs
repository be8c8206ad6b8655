//! Deterministic sample bytes for the demo and the tests (which include this file by path): a xorshift stream, so sample
//! machines need no files from elsewhere and every run sees the same data.

/// `len` pseudo-random bytes from `seed` (incompressible, as real binaries and media are).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
