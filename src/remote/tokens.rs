//! The tokens an appliance accepts, each with a name and a scope: the repositories its
//! tasks may name (all, when not limited), and whether it is an admin — one that sees
//! and cancels every task, where any other sees and cancels only the tasks it
//! submitted. Tokens are kept only as BLAKE3 hashes, compared in constant time, and
//! can be replaced while the appliance runs (SIGHUP) without touching running tasks.

use std::sync::{Arc, RwLock};

/// A token's hash, as the appliance holds it.
pub type TokenHash = blake3::Hash;

/// A token as the appliance keeps it: `blake3:<hex>` of the token's bytes.
pub fn token_hash(token: &str) -> String {
    format!("blake3:{}", blake3::hash(token.trim().as_bytes()).to_hex())
}

/// Parses a stored `blake3:<hex>` hash.
pub fn parse_token_hash(s: &str) -> Option<TokenHash> {
    let hex = s.trim().strip_prefix("blake3:")?;
    blake3::Hash::from_hex(hex).ok()
}

/// One accepted token.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// As logs and task listings name it.
    pub name: String,
    pub hash: TokenHash,
    /// The repositories its tasks may name; `None`: every one.
    pub repositories: Option<Vec<String>>,
    /// Sees and cancels every task, not only its own.
    pub admin: bool,
}

impl TokenSpec {
    /// A token named `token-N` with no limits (what a bare hash in `tokens` is).
    pub fn unscoped(n: usize, hash: TokenHash) -> TokenSpec {
        TokenSpec {
            name: format!("token-{n}"),
            hash,
            repositories: None,
            admin: true,
        }
    }

    pub fn may_use(&self, repository: &str) -> bool {
        (self.repositories.as_ref()).is_none_or(|r| r.iter().any(|n| n == repository))
    }

    /// Whether a task submitted by `owner` is this token's to see and cancel.
    pub fn may_see(&self, owner: &str) -> bool {
        self.admin || self.name == owner
    }
}

/// The tokens in force; cloned handles share them, so a reload reaches every route.
#[derive(Clone, Debug, Default)]
pub struct Tokens(Arc<RwLock<Arc<Vec<TokenSpec>>>>);

impl Tokens {
    pub fn new(specs: Vec<TokenSpec>) -> Tokens {
        Tokens(Arc::new(RwLock::new(Arc::new(specs))))
    }

    /// Puts `specs` in force for every request from now on.
    pub fn replace(&self, specs: Vec<TokenSpec>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(specs);
    }

    fn all(&self) -> Arc<Vec<TokenSpec>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The token `given` is. Every hash is compared (`blake3::Hash` in constant time),
    /// so timing says nothing of which, or how much of one, matched.
    pub fn find(&self, given: &str) -> Option<TokenSpec> {
        let h = blake3::hash(given.trim().as_bytes());
        let all = self.all();
        let mut found = None;
        for t in all.iter() {
            if t.hash == h {
                found = Some(t.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let hash = |t: &str| parse_token_hash(&token_hash(t)).unwrap();
        let tokens = Tokens::new(vec![
            TokenSpec {
                name: "eu".into(),
                hash: hash("eu-token-0123456789"),
                repositories: Some(vec!["primary".into(), "offsite".into()]),
                admin: false,
            },
            TokenSpec::unscoped(2, hash("ops-token-0123456789")),
        ]);
        let eu = tokens.find("eu-token-0123456789\n").unwrap();
        assert_eq!(eu.name, "eu");
        assert!(eu.may_use("primary") && !eu.may_use("other"));
        assert!(eu.may_see("eu") && !eu.may_see("token-2"));
        let ops = tokens.find("ops-token-0123456789").unwrap();
        assert!(ops.may_use("other") && ops.may_see("eu"));
        assert!(tokens.find("nope").is_none());
        tokens.replace(vec![TokenSpec::unscoped(1, hash("new-token-0123456789"))]);
        assert!(tokens.find("eu-token-0123456789").is_none());
        assert!(tokens.find("new-token-0123456789").is_some());
    }
}
