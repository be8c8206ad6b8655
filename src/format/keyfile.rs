//! Key files (`keys/<id>`): the repository's master key, wrapped under one password.
//!
//! ```text
//! "OFSKEY" u16 version | u8 kdf (1 = Argon2id v0x13) | u32 m_cost KiB | u32 t_cost | u32 p_cost
//! | salt (32) | i64 created (unix s) | u16 host length | host (UTF-8) | sealed master key (32)
//! ```
//! Everything before the sealed part is authenticated with it, so the KDF parameters and
//! the metadata cannot be altered without the password failing.

use super::{MAGIC_KEY, Reader};
use crate::{Error, Result};

pub const KDF_ARGON2ID: u8 = 1;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

/// Upper bounds a reader accepts, so a hostile key file cannot make it allocate 4 TiB.
pub const MAX_M_COST_KIB: u32 = 4 << 20;
pub const MAX_T_COST: u32 = 100;
pub const MAX_P_COST: u32 = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    pub params: KdfParams,
    pub salt: [u8; 32],
    pub created: i64,
    pub host: String,
    /// `codec | nonce | ciphertext | tag` of the 32-byte master key.
    pub sealed_key: Vec<u8>,
}

impl KeyFile {
    /// The authenticated part: everything before the sealed key.
    pub fn encode_header(&self) -> Vec<u8> {
        let mut out = super::header(MAGIC_KEY).to_vec();
        out.push(KDF_ARGON2ID);
        out.extend_from_slice(&self.params.m_cost_kib.to_le_bytes());
        out.extend_from_slice(&self.params.t_cost.to_le_bytes());
        out.extend_from_slice(&self.params.p_cost.to_le_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.created.to_le_bytes());
        let host = &self.host.as_bytes()[..self.host.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(host.len() as u16).to_le_bytes());
        out.extend_from_slice(host);
        out
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_header();
        out.extend_from_slice(&self.sealed_key);
        out
    }

    /// Parses a key file, returning it and the length of its authenticated header.
    pub fn decode(object: &str, bytes: &[u8]) -> Result<(KeyFile, usize)> {
        let body = super::check_header(object, MAGIC_KEY, bytes)?;
        let bad = |w: &str| Error::corrupt(object, format!("key file: {w}"));
        let mut r = Reader::new(body);
        let kdf = r.u8().ok_or_else(|| bad("truncated"))?;
        if kdf != KDF_ARGON2ID {
            return Err(bad(&format!("unknown key derivation function {kdf}")));
        }
        let m_cost_kib = r.u32().ok_or_else(|| bad("truncated"))?;
        let t_cost = r.u32().ok_or_else(|| bad("truncated"))?;
        let p_cost = r.u32().ok_or_else(|| bad("truncated"))?;
        if !(8..=MAX_M_COST_KIB).contains(&m_cost_kib)
            || !(1..=MAX_T_COST).contains(&t_cost)
            || !(1..=MAX_P_COST).contains(&p_cost)
            || m_cost_kib < 8 * p_cost
        {
            return Err(bad("Argon2 parameters out of range"));
        }
        let salt: [u8; 32] = r
            .take(32)
            .ok_or_else(|| bad("truncated"))?
            .try_into()
            .expect("32 bytes");
        let created = r.u64().ok_or_else(|| bad("truncated"))? as i64;
        let hl = r.u16().ok_or_else(|| bad("truncated"))? as usize;
        let host = String::from_utf8_lossy(r.take(hl).ok_or_else(|| bad("truncated"))?).into();
        let header_len = bytes.len() - r.remaining();
        let sealed_key = r.rest().to_vec();
        if sealed_key.len() != crate::crypto::SEAL_OVERHEAD + 32 {
            return Err(bad("wrapped key has the wrong length"));
        }
        Ok((
            KeyFile {
                params: KdfParams {
                    m_cost_kib,
                    t_cost,
                    p_cost,
                },
                salt,
                created,
                host,
                sealed_key,
            },
            header_len,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = b"OFSKEY\x01\x00".to_vec();
            b.extend_from_slice(&bytes);
            let _ = KeyFile::decode("k", &b);
            let _ = KeyFile::decode("k", &bytes);
        }
    }

    #[test]
    fn round_trip() {
        let k = KeyFile {
            params: KdfParams {
                m_cost_kib: 64,
                t_cost: 1,
                p_cost: 1,
            },
            salt: [9; 32],
            created: 1_700_000_000,
            host: "h".into(),
            sealed_key: vec![0; 73],
        };
        let bytes = k.encode();
        let (back, hl) = KeyFile::decode("k", &bytes).unwrap();
        assert_eq!(back, k);
        assert_eq!(hl, bytes.len() - 73);
    }
}
