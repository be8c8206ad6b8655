//! Passwords and the master key: Argon2id turns a password into a wrapping key that
//! seals the repository's random master key in one key file per password. Adding or
//! removing a password never touches data.

use argon2::{Algorithm, Argon2, Params, Version};

use crate::crypto::{CODEC_RAW, SecretKey, random_bytes};
use crate::format::keyfile::{KdfParams, KeyFile};
use crate::{Error, Result};

/// Argon2id costs that take about half a second on the 2-core machines we measure on
/// (see docs/BENCHMARKS.md).
pub const DEFAULT_KDF: KdfParams = KdfParams {
    m_cost_kib: 64 * 1024,
    t_cost: 10,
    p_cost: 1,
};

/// Costs for throw-away keys that protect nothing (a dry run's stand-in repository).
pub const DRY_RUN_KDF: KdfParams = KdfParams {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

/// `OFFSITE_KDF=m_kib,t,p` overrides the costs of keys created from now on (tests and
/// small devices use it); stored keys keep the costs they were made with.
pub fn kdf_from_env() -> Result<KdfParams> {
    let Ok(v) = std::env::var("OFFSITE_KDF") else {
        return Ok(DEFAULT_KDF);
    };
    let parts: Vec<u32> = v.split(',').filter_map(|p| p.trim().parse().ok()).collect();
    match parts[..] {
        [m_cost_kib, t_cost, p_cost] => Ok(KdfParams {
            m_cost_kib,
            t_cost,
            p_cost,
        }),
        _ => Err(Error::Invalid(format!(
            "OFFSITE_KDF={v:?}: expected three numbers, memory KiB, iterations, lanes (e.g. 65536,10,1)"
        ))),
    }
}

/// The master key in the clear: 32 random bytes, made once at `init`.
#[derive(Clone)]
pub struct MasterKey {
    pub bytes: [u8; 32],
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        MasterKey {
            bytes: random_bytes(),
        }
    }

    pub fn cipher(&self) -> SecretKey {
        SecretKey::from_bytes(&self.bytes)
    }
}

fn derive(password: &[u8], params: KdfParams, salt: &[u8; 32]) -> Result<SecretKey> {
    let p = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| Error::Invalid(format!("Argon2 parameters {params:?}: {e}")))?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::Invalid(format!("Argon2: {e}")))?;
    Ok(SecretKey::from_bytes(&out))
}

/// Wraps `master` under `password` into the bytes of a new key file.
pub fn wrap(master: &MasterKey, password: &[u8], params: KdfParams, host: &str) -> Result<Vec<u8>> {
    let mut kf = KeyFile {
        params,
        salt: random_bytes(),
        created: chrono::Utc::now().timestamp(),
        host: host.to_string(),
        sealed_key: Vec::new(),
    };
    let wrapping = derive(password, params, &kf.salt)?;
    let header = kf.encode_header();
    kf.sealed_key = wrapping.seal(&header, CODEC_RAW, &master.bytes);
    Ok(kf.encode())
}

/// Unwraps the master key from key file `object`: `Ok(None)` if the password does not fit.
pub fn unwrap(object: &str, bytes: &[u8], password: &[u8]) -> Result<Option<MasterKey>> {
    let (kf, header_len) = KeyFile::decode(object, bytes)?;
    let wrapping = derive(password, kf.params, &kf.salt)?;
    match wrapping.open(&bytes[..header_len], &kf.sealed_key) {
        Ok((_, key)) => {
            let bytes: [u8; 32] = key
                .try_into()
                .map_err(|_| Error::corrupt(object, "wrapped key is not 32 bytes"))?;
            Ok(Some(MasterKey { bytes }))
        }
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn wrap_unwrap() {
        let m = MasterKey::generate();
        let f = wrap(&m, b"pw", FAST, "host").unwrap();
        assert_eq!(unwrap("keys/a", &f, b"pw").unwrap().unwrap().bytes, m.bytes);
        assert!(unwrap("keys/a", &f, b"nope").unwrap().is_none());
        // tampering with the stored costs breaks the seal, not the process
        let mut t = f.clone();
        t[9] ^= 1;
        assert!(unwrap("keys/a", &t, b"pw").unwrap().is_none());
    }
}
