//! What a store error means for the person at the keyboard. object_store reports the
//! HTTP exchange (and repeats it once per wrapping layer); an operator needs one sentence:
//! which thing is missing or refused, and what to set or grant. The raw cause stays
//! available, on one line, for `-v` and for bug reports.

/// The message of a failed store request on `object`: the problem and what to do, with
/// the raw cause on one line under it; or, for nothing recognised, the error itself.
pub fn message(object: &str, e: &object_store::Error, write: bool) -> String {
    let problem = Problem::of(e).or_else(|| {
        (write && matches!(e, object_store::Error::NotFound { .. })).then_some(Problem::NoBucket)
    });
    match problem {
        Some(p) => format!(
            "{}\n  cause: {}",
            p.explain(object, write, e),
            root_cause(e)
        ),
        None => format!("store error on {object}: {}", root_cause(e)),
    }
}

/// A problem an operator can fix, recognised in a store error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// S3 found no credentials (it fell back to the instance metadata service).
    NoS3Credentials,
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
}

impl Problem {
    /// Recognises the problem in an error's text (its whole chain). `None`: nothing an
    /// operator could fix by configuration (a server error, a timeout).
    pub fn of(e: &object_store::Error) -> Option<Problem> {
        let text = chain_text(e);
        let has = |s: &str| text.contains(s);
        if has("169.254.169.254") || has("/latest/api/token") || has("/latest/meta-data") {
            return Some(Problem::NoS3Credentials);
        }
        if has("NoSuchBucket") || has("ContainerNotFound") || has("bucket does not exist") {
            return Some(Problem::NoBucket);
        }
        if has("InvalidAccessKeyId")
            || has("SignatureDoesNotMatch")
            || has("AuthenticationFailed")
            || has("AuthorizationFailure")
            || has("InvalidToken")
            || has("ExpiredToken")
        {
            return Some(Problem::BadCredentials);
        }
        if has("AccessDenied")
            || has("AuthorizationPermissionMismatch")
            || has("403 Forbidden")
            || matches!(e, object_store::Error::PermissionDenied { .. })
        {
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

    /// Whether trying again can help: a server that is restarting refuses connections
    /// for a moment; a wrong name, key or grant stays wrong.
    pub fn is_transient(self) -> bool {
        matches!(self, Problem::ConnectionRefused)
    }

    /// One sentence: what is wrong with `object` (`write`: while writing it) and what to do.
    pub fn explain(self, object: &str, write: bool, e: &object_store::Error) -> String {
        let azure = is_azure(e);
        let endpoint = endpoint_of(e).unwrap_or_else(|| "the store's endpoint".into());
        match self {
            Problem::NoS3Credentials => {
                let mut m = "no S3 credentials were found: set AWS_ACCESS_KEY_ID and \
                             AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or \
                             run where an instance role or AWS_WEB_IDENTITY_TOKEN_FILE provides them"
                    .to_string();
                // A profile is what most people have; the store client does not read them.
                if std::env::var_os("AWS_PROFILE").is_some() {
                    m.push_str(
                        "; AWS_PROFILE is set, but profiles are not read: export the profile's \
                         credentials with `eval \"$(aws configure export-credentials --format env)\"`",
                    );
                }
                m
            }
            Problem::BadCredentials if azure => format!(
                "the Azure storage account refused the credentials for {object}: check \
                 AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or the SAS token)"
            ),
            Problem::BadCredentials => format!(
                "the S3 service refused the credentials for {object}: check AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), and AWS_REGION"
            ),
            Problem::AccessDenied => {
                let (doing, grant) = match (write, azure) {
                    (true, false) => ("writing", "s3:PutObject and s3:DeleteObject"),
                    (false, false) => ("reading", "s3:GetObject and s3:ListBucket"),
                    (true, true) => (
                        "writing",
                        "a role with blob write access (Storage Blob Data Contributor)",
                    ),
                    (false, true) => (
                        "reading",
                        "a role with blob read access (Storage Blob Data Reader)",
                    ),
                };
                format!(
                    "access denied {doing} {object}: the credentials are valid but may not do that here; \
                     grant {grant} on this bucket and prefix"
                )
            }
            Problem::NoBucket if azure => {
                "the container does not exist: create it first (offsite does not create containers)"
                    .to_string()
            }
            Problem::NoBucket => {
                "the bucket does not exist: create it first (offsite does not create buckets)"
                    .to_string()
            }
            Problem::ConnectionRefused => format!(
                "nothing answers at {endpoint} (connection refused): is the server running, and is \
                 the endpoint ({}) right?",
                endpoint_variable(azure)
            ),
            Problem::UnknownHost => format!(
                "the host of {endpoint} is unknown (DNS lookup failed): check the endpoint ({}) \
                 and the network",
                endpoint_variable(azure)
            ),
        }
    }
}

fn endpoint_variable(azure: bool) -> &'static str {
    if azure {
        "AZURE_STORAGE_ENDPOINT, or AZURITE_BLOB_STORAGE_URL with AZURE_STORAGE_USE_EMULATOR"
    } else {
        "AWS_ENDPOINT_URL"
    }
}

/// Whether the error came from Azure Blob: its store name, or an error code only Azure
/// uses (object_store names no store in `PermissionDenied` and `NotFound`).
fn is_azure(e: &object_store::Error) -> bool {
    if let object_store::Error::Generic { store, .. } = e {
        return store.contains("Azure");
    }
    let text = chain_text(e);
    [
        "MicrosoftAzure",
        ".blob.core.",
        "AuthorizationFailure",
        "AuthenticationFailed",
        "AuthorizationPermissionMismatch",
        "ContainerNotFound",
        "x-ms-",
    ]
    .iter()
    .any(|m| text.contains(m))
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
    let one_line: Vec<&str> = last.split_whitespace().collect();
    let mut s = one_line.join(" ");
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
fn endpoint_of(e: &object_store::Error) -> Option<String> {
    let text = chain_text(e);
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
                Problem::NoS3Credentials,
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
                "MicrosoftAzure",
                "403 Forbidden: <Code>AuthorizationFailure</Code>",
                Problem::BadCredentials,
            ),
            (
                "MicrosoftAzure",
                "404 Not Found: <Code>ContainerNotFound</Code>",
                Problem::NoBucket,
            ),
        ];
        for (store, msg, want) in cases {
            let e = generic(store, msg);
            assert_eq!(Problem::of(&e), Some(want), "{msg}");
            let said = want.explain("config", true, &e);
            assert!(!said.contains('\n'), "{said}");
        }
        assert_eq!(
            Problem::of(&generic("S3", "500 Internal Server Error")),
            None
        );
        let refused = generic("S3", "GET http://127.0.0.1:9/x - Connection refused");
        assert!(
            Problem::ConnectionRefused
                .explain("config", false, &refused)
                .contains("http://127.0.0.1:9")
        );
        let denied = generic(
            "MicrosoftAzure",
            "<Code>AuthorizationPermissionMismatch</Code>",
        );
        assert!(
            Problem::AccessDenied
                .explain("data/x", true, &denied)
                .starts_with("access denied writing data/x")
        );
    }
}
