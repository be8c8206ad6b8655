//! What a store error means for the person at the keyboard. object_store reports the
//! HTTP exchange (and repeats it once per wrapping layer); an operator needs one sentence:
//! which thing is missing or refused, and what to set or grant. The raw cause stays
//! available, on one line, for `-v` and for bug reports.
//!
//! The service's error code is read out of the answer once ([`Said`]); what a code means
//! and what to tell the operator is each provider's own ([`Vocabulary`], registered with
//! the provider in `StoreKind::PROVIDERS`). Only the transport's failures (a refused
//! connection, an unknown host) are recognised here, for every store alike.

use super::{ProviderInfo, StoreKind};

/// The message of a failed store request on `object`: the problem and what to do, with
/// the raw cause on one line under it; or, for nothing recognised, the error itself.
pub fn message(object: &str, e: &object_store::Error, write: bool) -> String {
    let said = Said::of(e);
    let problem = said.problem().or_else(|| {
        (write && matches!(e, object_store::Error::NotFound { .. })).then_some(Problem::NoBucket)
    });
    match problem {
        Some(p) => format!(
            "{}\n  cause: {}",
            said.explain(p, object, write),
            root_cause(e)
        ),
        None => format!("store error on {object}: {}", root_cause(e)),
    }
}

/// A problem an operator can fix, recognised in a store error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No credentials were found (S3 fell back to the instance metadata service).
    NoCredentials,
    /// The store refused the credentials given (wrong key, unknown access key id).
    BadCredentials,
    /// The credentials are valid but may not do this (read or write) here.
    AccessDenied,
    /// The bucket or container does not exist.
    NoBucket,
    /// Nothing answers at the endpoint.
    ConnectionRefused,
    /// The endpoint's host name does not resolve.
    UnknownHost,
    /// The object is in an archive class and has not been restored.
    Archived,
}

impl Problem {
    /// Recognises the problem in an error. `None`: nothing an operator could fix by
    /// configuration (a server error, a timeout).
    pub fn of(e: &object_store::Error) -> Option<Problem> {
        Said::of(e).problem()
    }

    /// Whether trying again can help: a server that is restarting refuses connections
    /// for a moment; a wrong name, key or grant stays wrong.
    pub fn is_transient(self) -> bool {
        matches!(self, Problem::ConnectionRefused)
    }
}

/// What a provider's errors say and what to tell the operator about them: part of its
/// registration.
#[derive(Debug)]
pub struct Vocabulary {
    /// The name object_store gives the store in its errors (`Error::Generic::store`).
    pub store_name: &'static str,
    /// The service's error codes (`<Code>…</Code>`) an operator can act on.
    pub codes: &'static [(&'static str, Problem)],
    /// Text only this provider's errors carry (its hosts, headers, the metadata
    /// service it falls back to), and the problem it shows, if any.
    pub marks: &'static [(&'static str, Option<Problem>)],
    /// The class named when a read finds an object archived.
    pub archived_class: &'static str,
    /// One sentence for the problem, in the provider's terms (`None`: the generic one).
    pub explain: fn(Problem, &Context) -> Option<String>,
}

/// What a message is about: the object, whether it was being written, and the endpoint.
#[derive(Debug)]
pub struct Context<'a> {
    pub object: &'a str,
    pub write: bool,
    pub endpoint: String,
}

/// What a store error says: the store object_store names, the service's error code,
/// and the whole chain's text (for the transport's failures).
#[derive(Debug)]
pub struct Said {
    store: Option<&'static str>,
    code: Option<String>,
    text: String,
    permission_denied: bool,
}

impl Said {
    pub fn of(e: &object_store::Error) -> Said {
        let text = chain_text(e);
        Said {
            store: match e {
                object_store::Error::Generic { store, .. } => Some(store),
                _ => None,
            },
            code: error_code(&text),
            permission_denied: matches!(e, object_store::Error::PermissionDenied { .. }),
            text,
        }
    }

    /// The service's error code, as it spelt it.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The provider that answered: the store object_store names, else the one whose
    /// codes or marks the error carries (object_store names no store in `NotFound` and
    /// `PermissionDenied`).
    pub fn provider(&self) -> Option<&'static ProviderInfo> {
        let words = |p: &&ProviderInfo| {
            let v = &p.vocabulary;
            self.store.is_some_and(|s| s.contains(v.store_name))
                || (self.code.as_deref()).is_some_and(|c| v.codes.iter().any(|(k, _)| *k == c))
                || v.marks.iter().any(|(m, _)| self.text.contains(m))
        };
        StoreKind::PROVIDERS.iter().find(words)
    }

    /// The problem recognised: the provider's marks and codes first, then the
    /// transport's failures and a refusal by status.
    pub fn problem(&self) -> Option<Problem> {
        if let Some(p) = self.provider() {
            let v = &p.vocabulary;
            let marked = v.marks.iter().find(|(m, _)| self.text.contains(m));
            if let Some(problem) = marked.and_then(|(_, p)| *p) {
                return Some(problem);
            }
            let code = self.code.as_deref();
            if let Some((_, problem)) = v.codes.iter().find(|(k, _)| Some(*k) == code) {
                return Some(*problem);
            }
        }
        let has = |s: &str| self.text.contains(s);
        if self.permission_denied || has("403 Forbidden") {
            return Some(Problem::AccessDenied);
        }
        if has("dns error") || has("failed to lookup address") || has("Name or service not known") {
            return Some(Problem::UnknownHost);
        }
        if has("Connection refused") || has("tcp connect error") {
            return Some(Problem::ConnectionRefused);
        }
        None
    }

    /// The class a read found the object archived in, when that is what the error says.
    pub fn archived_class(&self) -> Option<&'static str> {
        let p = self.provider()?;
        (self.problem() == Some(Problem::Archived)).then_some(p.vocabulary.archived_class)
    }

    /// One sentence: what is wrong with `object` (`write`: while writing it) and what to do.
    pub fn explain(&self, problem: Problem, object: &str, write: bool) -> String {
        let cx = Context {
            object,
            write,
            endpoint: endpoint_of(&self.text).unwrap_or_else(|| "the store's endpoint".into()),
        };
        self.provider()
            .and_then(|p| (p.vocabulary.explain)(problem, &cx))
            .unwrap_or_else(|| generic(problem, &cx))
    }
}

/// The sentence for a problem when the provider has none of its own.
fn generic(problem: Problem, cx: &Context) -> String {
    let Context {
        object, endpoint, ..
    } = cx;
    let doing = if cx.write { "writing" } else { "reading" };
    match problem {
        Problem::NoCredentials => format!("no credentials were found for {object}"),
        Problem::BadCredentials => format!("the store refused the credentials for {object}"),
        Problem::AccessDenied => format!(
            "access denied {doing} {object}: the credentials are valid but may not do that here"
        ),
        Problem::NoBucket => {
            "the bucket does not exist: create it first (offsite does not create buckets)".into()
        }
        Problem::ConnectionRefused => format!(
            "nothing answers at {endpoint} (connection refused): is the server running, and is \
             the endpoint right?"
        ),
        Problem::UnknownHost => format!(
            "the host of {endpoint} is unknown (DNS lookup failed): check the endpoint and the \
             network"
        ),
        Problem::Archived => format!("{object} is archived: restore it before reading"),
    }
}

/// The service's error code in an answer's body: S3 and Azure both write `<Code>…</Code>`.
fn error_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = text[start..start + len].trim();
    (!code.is_empty() && code.len() <= 128).then(|| code.to_string())
}

/// Every message of the error's chain, joined.
fn chain_text(e: &object_store::Error) -> String {
    let mut out = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        out.push_str(" | ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The innermost cause of the error, on one line: the most specific thing that went
/// wrong (a refused connection, the service's error code).
pub fn root_cause(e: &object_store::Error) -> String {
    let mut last = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        let t = s.to_string();
        if !t.trim().is_empty() {
            last = t;
        }
        cur = s.source();
    }
    one_line(&last)
}

/// `text` on one line (whitespace runs made one space), cut at 300 bytes.
pub fn one_line(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut s = words.join(" ");
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// `scheme://host:port` of the first URL in the error's text.
fn endpoint_of(text: &str) -> Option<String> {
    let start = text.find("http://").or_else(|| text.find("https://"))?;
    let rest = &text[start..];
    let after_scheme = rest.find("://")? + 3;
    let end = rest[after_scheme..]
        .find(|c: char| c == '/' || c.is_whitespace())
        .map_or(rest.len(), |i| after_scheme + i);
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(store: &'static str, msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store,
            source: msg.to_string().into(),
        }
    }

    #[test]
    fn recognises_what_operators_trip_over() {
        let cases = [
            (
                "S3",
                "Error performing PUT http://169.254.169.254/latest/api/token - 403 Forbidden: resolve_deny",
                Problem::NoCredentials,
            ),
            (
                "S3",
                "Error performing GET http://127.0.0.1:1/b/config - tcp connect error: Connection refused (os error 111)",
                Problem::ConnectionRefused,
            ),
            (
                "S3",
                "Error performing GET http://nope.invalid:4566/b/c - dns error: failed to lookup address information",
                Problem::UnknownHost,
            ),
            (
                "S3",
                "Server returned non-2xx status code: 404 Not Found: <Code>NoSuchBucket</Code>",
                Problem::NoBucket,
            ),
            (
                "S3",
                "403 Forbidden: <Code>AccessDenied</Code>",
                Problem::AccessDenied,
            ),
            (
                "S3",
                "403 Forbidden: <Code>SignatureDoesNotMatch</Code>",
                Problem::BadCredentials,
            ),
            (
                "S3",
                "403 Forbidden: <Code>InvalidObjectState</Code>",
                Problem::Archived,
            ),
            (
                "MicrosoftAzure",
                "403 Forbidden: <Code>AuthorizationFailure</Code>",
                Problem::BadCredentials,
            ),
            (
                "MicrosoftAzure",
                "404 Not Found: <Code>ContainerNotFound</Code>",
                Problem::NoBucket,
            ),
            (
                "MicrosoftAzure",
                "409 Conflict: <Code>BlobArchived</Code>",
                Problem::Archived,
            ),
        ];
        for (store, msg, want) in cases {
            let e = generic(store, msg);
            assert_eq!(Problem::of(&e), Some(want), "{msg}");
            let said = Said::of(&e);
            assert_eq!(
                said.provider().map(|p| p.vocabulary.store_name),
                Some(store)
            );
            assert!(!said.explain(want, "config", true).contains('\n'));
        }
        assert_eq!(
            Problem::of(&generic("S3", "500 Internal Server Error")),
            None
        );
    }

    #[test]
    fn the_code_names_the_provider_when_the_store_is_not_named() {
        let denied = object_store::Error::PermissionDenied {
            path: "data/x".into(),
            source: "403 Forbidden: <Code>AuthorizationPermissionMismatch</Code>".into(),
        };
        let said = Said::of(&denied);
        assert_eq!(said.code(), Some("AuthorizationPermissionMismatch"));
        assert_eq!(said.provider().map(|p| p.kind), Some(StoreKind::Azure));
        assert_eq!(said.problem(), Some(Problem::AccessDenied));
        let archived = object_store::Error::PermissionDenied {
            path: "data/x".into(),
            source: "<Error><Code>InvalidObjectState</Code></Error>".into(),
        };
        assert_eq!(
            Said::of(&archived).archived_class(),
            Some(crate::store::s3::info::INFO.vocabulary.archived_class)
        );
        // A folder's refusal: no provider, the generic words.
        let local = object_store::Error::PermissionDenied {
            path: "/srv/x".into(),
            source: "Permission denied (os error 13)".into(),
        };
        assert_eq!(Said::of(&local).provider().map(|p| p.name), None);
        assert_eq!(Problem::of(&local), Some(Problem::AccessDenied));
    }

    #[test]
    fn messages_name_the_endpoint_and_the_object() {
        let refused = generic("S3", "GET http://127.0.0.1:9/x - Connection refused");
        let said = Said::of(&refused);
        assert_eq!(
            endpoint_of(&said.text).as_deref(),
            Some("http://127.0.0.1:9")
        );
        let m = said.explain(Problem::ConnectionRefused, "config", false);
        assert!(m.contains("http://127.0.0.1:9"), "{m}");
        let m = message("data/ab/x", &refused, false);
        assert_eq!(m.lines().count(), 2, "{m}");
    }
}
