//! Which paths of a point a restore (or `ls`) takes: `--include` and `--exclude` globs
//! matched against a node's path and each of its ancestors, so `--include etc` takes
//! everything under `etc`, and `--exclude '*.log'` drops every log file.

use crate::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct PathFilter {
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
}

impl PathFilter {
    /// Everything, when both lists are empty.
    pub fn new(include: &[String], exclude: &[String]) -> Result<PathFilter> {
        let parse = |pats: &[String]| {
            pats.iter()
                .map(|p| {
                    glob::Pattern::new(p.trim_matches('/'))
                        .map_err(|e| Error::Invalid(format!("path pattern {p:?}: {e}")))
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok(PathFilter {
            include: parse(include)?,
            exclude: parse(exclude)?,
        })
    }

    pub fn is_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether the node at `path` (relative, `/`-separated) is taken.
    pub fn takes(&self, path: &[u8]) -> bool {
        let path = String::from_utf8_lossy(path);
        let hits =
            |pats: &[glob::Pattern]| ancestors(&path).any(|p| pats.iter().any(|g| g.matches(p)));
        (self.include.is_empty() || hits(&self.include)) && !hits(&self.exclude)
    }
}

/// `a/b/c`, `a/b`, `a`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rfind('/').map(|i| &p[..i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_take_subtrees_and_excludes_win() {
        let f = PathFilter::new(
            &["etc".into(), "var/www/*.html".into()],
            &["*.log".into(), "etc/secret".into()],
        )
        .unwrap();
        assert!(f.takes(b"etc/hosts"));
        assert!(f.takes(b"etc/app/conf.d/x"));
        assert!(f.takes(b"var/www/index.html"));
        assert!(!f.takes(b"var/www/img.png"));
        assert!(!f.takes(b"etc/app.log"));
        assert!(!f.takes(b"etc/secret/key"));
        assert!(!f.takes(b"usr/bin/ls"));
        let all = PathFilter::new(&[], &[]).unwrap();
        assert!(all.is_everything() && all.takes(b"any/thing"));
        assert!(PathFilter::new(&["[".into()], &[]).is_err());
    }
}
