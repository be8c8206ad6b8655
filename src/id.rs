//! Content identifiers: 256-bit BLAKE3 hashes, shown as lower-case hex.

use std::fmt;
use std::str::FromStr;

/// A 256-bit identifier (BLAKE3 of a blob's plaintext, or of an object's bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    pub const LEN: usize = 32;

    /// BLAKE3 of `data`.
    pub fn hash(data: &[u8]) -> Id {
        Id(*blake3::hash(data).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits: what people type and tables show.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn from_slice(b: &[u8]) -> Option<Id> {
        <[u8; 32]>::try_from(b).ok().map(Id)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// Error for a string that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("not a 64-digit hex id: {0:?}")]
pub struct ParseIdError(pub String);

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_string()))?;
        Ok(Id(out))
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = Id::hash(b"abc");
        assert_eq!(id.to_hex().parse::<Id>().unwrap(), id);
        assert_eq!(id.short().len(), 8);
        assert!("zz".parse::<Id>().is_err());
    }
}
