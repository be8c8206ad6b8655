//! What `object_store` cannot do on Azure Blob, through the Azure SDK crates: a blob's
//! access tier, rehydration and immutability state, rehydration (Set Blob Tier with a
//! priority), writes under version-level immutability set **with the write** (the
//! `x-ms-immutability-policy-*` headers on Put Blob / Put Block List), extensions of a
//! blob's policy, and the container's settings.
//!
//! `azure_storage_blobs` builds the requests it has (put blob, blocks, block list, tier,
//! container create); the two it lacks — a HEAD whose headers it does not keep, and Set
//! Blob Immutability Policy — go through `azure_storage`'s own signed pipeline, so every
//! request is authenticated by the SDK. Credentials follow the object store's: an
//! account key or SAS from the same environment, Azurite's well-known key, or (managed
//! or workload identity, client secret, CLI) the bearer token object_store's credential
//! provider fetches and renews.

pub mod info;
mod provider;

use azure_core::headers::{HeaderName, Headers};
use azure_core::prelude::IfMatchCondition;
use azure_core::{Body, ClientOptions, Context, CustomHeaders, Method, Url};
use azure_storage::clients::ServiceType;
use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::{
    AccessTier, BlobBlockType, BlobClient, BlockId, BlockList, ClientBuilder, ContainerClient,
    RehydratePriority,
};
use chrono::{DateTime, Utc};
use object_store::azure::{AzureCredential, AzureCredentialProvider};

use super::cloud::{BucketSettings, ObjectState, Restore, RestoreAsked, RetrievalTier};
use crate::format::config::LockMode;
use crate::{Error, Result};

const UNTIL: &str = "x-ms-immutability-policy-until-date";
const MODE: &str = "x-ms-immutability-policy-mode";

/// How the Azure client proves who it is.
#[derive(Clone)]
enum Auth {
    Key(String),
    Sas(String),
    /// object_store's provider: a bearer token (identity), fetched and renewed there.
    Store(AzureCredentialProvider),
}

/// The provider client of one Azure container.
#[derive(Clone)]
pub struct AzureExtra {
    pub container: String,
    account: String,
    /// The blob service's URL: `https://ACCOUNT.blob.core.windows.net`, or Azurite's
    /// `http://HOST:PORT/ACCOUNT`.
    service: Url,
    auth: Auth,
}

impl std::fmt::Debug for AzureExtra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or token.
        f.debug_struct("AzureExtra")
            .field("container", &self.container)
            .field("account", &self.account)
            .field("service", &self.service.as_str())
            .finish()
    }
}

/// The settings object_store was built with, as far as this client needs them.
pub struct AzureConfig {
    pub container: String,
    pub account: String,
    /// The blob service's URL.
    pub service: String,
    pub key: Option<String>,
    pub sas: Option<String>,
}

/// The service's dates (RFC 1123), in whole seconds rounded up: a policy never ends
/// before the date asked for.
fn http_date(t: DateTime<Utc>) -> String {
    let up = i64::from(t.timestamp_subsec_nanos() > 0);
    let t = DateTime::from_timestamp(t.timestamp() + up, 0).unwrap_or(t);
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn policy_mode(m: LockMode) -> &'static str {
    // Unlocked: an identity with the immutability super-user action can still shorten
    // or remove it (S3's governance); Locked: nobody can (compliance).
    match m {
        LockMode::Governance => "Unlocked",
        LockMode::Compliance => "Locked",
    }
}

/// The immutability headers of a write, carried into the SDK's request by its
/// custom-headers policy.
fn lock_context(mode: LockMode, until: DateTime<Utc>) -> Context {
    let mut h = Headers::new();
    h.insert(HeaderName::from_static(UNTIL), http_date(until));
    h.insert(HeaderName::from_static(MODE), policy_mode(mode));
    let mut ctx = Context::new();
    ctx.insert(CustomHeaders::from(h));
    ctx
}

fn access_tier(class: &str) -> Result<AccessTier> {
    class
        .parse()
        .map_err(|_| Error::Invalid(format!("{class:?} is not an Azure access tier")))
}

/// An SDK failure as the library's error: the object, the operation, the service's
/// status and code, and what to do when the code says.
fn sdk_err(object: &str, op: &str, e: &azure_core::Error) -> Error {
    let (status, code) = match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, error_code } => {
            (Some(*status as u16), error_code.clone().unwrap_or_default())
        }
        _ => (None, String::new()),
    };
    tracing::debug!("{object}: {op}: {e:?}");
    if status == Some(404) && code != "ContainerNotFound" {
        return Error::NotFound {
            object: object.to_string(),
        };
    }
    let hint = match (status, code.as_str()) {
        (_, "ContainerNotFound") => "; create it with `offsite target create`",
        (_, "AuthorizationPermissionMismatch" | "AuthorizationFailure")
            if op.contains("mmutab") =>
        {
            "; the identity may not set immutability policies: that needs the data action \
             …/blobs/immutableStorage/runAsSuperUser/action (terraform/azure's `blob_locks` \
             role, or Storage Blob Data Owner)"
        }
        (_, "AuthorizationPermissionMismatch" | "AuthorizationFailure") => {
            "; the identity lacks this permission (grant it Storage Blob Data Contributor on \
             the container)"
        }
        (Some(501), _) => "; this service does not implement it (Azurite has no immutability)",
        (_, "InvalidHeaderValue" | "InvalidQueryParameterValue") if op.contains("mmutab") => {
            "; is version-level immutability enabled on the container? `offsite target \
             verify` tells"
        }
        _ => "",
    };
    let said = match (status, code.as_str()) {
        (Some(s), "") => format!("HTTP {s}"),
        (Some(s), c) => format!("HTTP {s} {c}"),
        (None, _) => e.to_string().lines().next().unwrap_or("").to_string(),
    };
    Error::Cloud {
        object: object.to_string(),
        what: format!("{op} failed: {said}{hint}"),
        code,
    }
}

/// A create-only write's answer: a blob already there is `AlreadyExists` (409 from the
/// service, 412 from some proxies), never overwritten.
fn created<T>(key: &str, op: &str, r: azure_core::Result<T>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if matches!(http_status(&e), Some(409 | 412)) => Err(Error::AlreadyExists {
            object: key.to_string(),
        }),
        Err(e) => Err(sdk_err(key, op, &e)),
    }
}

fn http_status(e: &azure_core::Error) -> Option<u16> {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, .. } => Some(*status as u16),
        _ => None,
    }
}

fn error_code(e: &azure_core::Error) -> Option<&str> {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

impl AzureExtra {
    /// The client for `c`; `credentials` (object_store's) serve when `c` has neither
    /// key nor SAS.
    pub fn new(c: AzureConfig, credentials: AzureCredentialProvider) -> Result<AzureExtra> {
        let service = Url::parse(c.service.trim_end_matches('/'))
            .map_err(|e| Error::Invalid(format!("{}: not a blob service URL: {e}", c.service)))?;
        let auth = match (c.key, c.sas) {
            (Some(k), _) => Auth::Key(k),
            (None, Some(s)) => Auth::Sas(s),
            (None, None) => Auth::Store(credentials),
        };
        Ok(AzureExtra {
            container: c.container,
            account: c.account,
            service,
            auth,
        })
    }

    async fn credentials(&self) -> Result<StorageCredentials> {
        let bad = |e: String| Error::Cloud {
            object: self.container.clone(),
            what: format!("Azure credentials: {e}"),
            code: String::new(),
        };
        Ok(match &self.auth {
            Auth::Key(k) => StorageCredentials::access_key(self.account.clone(), k.clone()),
            Auth::Sas(s) => StorageCredentials::sas_token(s).map_err(|e| bad(e.to_string()))?,
            Auth::Store(p) => match p
                .get_credential()
                .await
                .map_err(|e| bad(e.to_string()))?
                .as_ref()
            {
                AzureCredential::BearerToken(t) => StorageCredentials::bearer_token(t.clone()),
                AzureCredential::SASToken(pairs) => {
                    let q = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs)
                        .finish();
                    StorageCredentials::sas_token(q).map_err(|e| bad(e.to_string()))?
                }
                AzureCredential::AccessKey(_) => {
                    return Err(bad("an account key object_store holds but does not show: \
                                    set AZURE_STORAGE_ACCOUNT_KEY"
                        .into()));
                }
            },
        })
    }

    async fn container_client(&self) -> Result<ContainerClient> {
        let location = CloudLocation::Custom {
            account: self.account.clone(),
            uri: self.service.to_string().trim_end_matches('/').to_string(),
        };
        Ok(
            ClientBuilder::with_location(location, self.credentials().await?)
                .container_client(self.container.clone()),
        )
    }

    async fn blob_client(&self, key: &str) -> Result<BlobClient> {
        Ok(self.container_client().await?.blob_client(key))
    }

    /// The URL of `key` in the container (or of the container itself).
    fn url(&self, key: Option<&str>) -> Result<Url> {
        let mut u = self.service.clone();
        {
            let mut s = u
                .path_segments_mut()
                .map_err(|_| Error::Invalid(format!("{}: not a blob service URL", self.service)))?;
            s.pop_if_empty().push(&self.container);
            if let Some(k) = key {
                s.extend(k.split('/'));
            }
        }
        Ok(u)
    }

    /// One request the SDK has no builder for, signed and retried by its pipeline.
    async fn send_raw(
        &self,
        method: Method,
        url: Url,
        headers: Headers,
    ) -> azure_core::Result<azure_core::Response> {
        let creds = self.credentials().await.map_err(|e| {
            azure_core::Error::message(azure_core::error::ErrorKind::Credential, e.to_string())
        })?;
        let pipeline =
            azure_storage::clients::new_pipeline_from_options(ClientOptions::default(), creds);
        let mut request = azure_storage::clients::finalize_request(url, method, headers, None)?;
        let mut ctx = Context::new();
        ctx.insert(ServiceType::Blob);
        pipeline.send(&ctx, &mut request).await
    }

    /// The container's existence and version-level immutability. Blob versioning and
    /// the clean-up of uncommitted blocks are the account's and the service's: offsite
    /// cannot read the first through the blob API, and the service discards the second
    /// after seven days by itself.
    pub async fn container_settings(&self) -> Result<BucketSettings> {
        let mut url = self.url(None)?;
        url.query_pairs_mut().append_pair("restype", "container");
        let r = self.send_raw(Method::Head, url, Headers::new()).await;
        let r = match r {
            Ok(r) => r,
            Err(e) if http_status(&e) == Some(404) => return Ok(BucketSettings::default()),
            Err(e) => return Err(sdk_err(&self.container, "Get Container Properties", &e)),
        };
        let immutable = r
            .headers()
            .get_optional_str(&HeaderName::from_static(
                "x-ms-immutable-storage-with-versioning-enabled",
            ))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(BucketSettings {
            exists: true,
            // Version-level immutability requires versioning on the account.
            versioning: immutable,
            object_lock: immutable,
            abort_incomplete_multipart_days: Some(7),
        })
    }

    /// Creates the container (without immutability: that is set on the account or at
    /// creation through Azure Resource Manager, which the blob API cannot reach).
    pub async fn create_container(&self) -> Result<()> {
        self.container_client()
            .await?
            .create()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err(&self.container, "Create Container", &e))
    }
}

/// A blob's HEAD answer as an [`ObjectState`].
fn parse_state(h: &Headers) -> ObjectState {
    let get = |n: &'static str| h.get_optional_str(&HeaderName::from_static(n));
    let tier = get("x-ms-access-tier").map(str::to_string);
    let restore = match get("x-ms-archive-status") {
        Some(s) if s.starts_with("rehydrate-pending") => Restore::InProgress,
        _ => Restore::None,
    };
    let lock = match (get(UNTIL), get(MODE)) {
        (Some(d), Some(m)) => DateTime::parse_from_rfc2822(d).ok().map(|d| {
            let mode = match m.to_ascii_lowercase().as_str() {
                "locked" => LockMode::Compliance,
                _ => LockMode::Governance,
            };
            (mode, d.with_timezone(&Utc))
        }),
        _ => None,
    };
    ObjectState {
        size: get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0),
        class: tier.filter(|t| t != "Hot"),
        restore,
        lock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cloud::CloudProvider;
    use std::sync::Arc;
    use wiremock::matchers::{
        body_string_contains, header, header_exists, method, path, query_param,
    };
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[test]
    fn head_answers_are_read() {
        let mut h = Headers::new();
        h.insert(HeaderName::from_static("content-length"), "1234");
        h.insert(HeaderName::from_static("x-ms-access-tier"), "Archive");
        h.insert(
            HeaderName::from_static("x-ms-archive-status"),
            "rehydrate-pending-to-hot",
        );
        h.insert(
            HeaderName::from_static(UNTIL),
            "Fri, 21 Dec 2012 00:00:00 GMT",
        );
        h.insert(HeaderName::from_static(MODE), "locked");
        let s = parse_state(&h);
        assert_eq!(s.size, 1234);
        assert_eq!(s.class.as_deref(), Some("Archive"));
        assert_eq!(s.restore, Restore::InProgress);
        let (mode, until) = s.lock.unwrap();
        assert_eq!(mode, LockMode::Compliance);
        assert_eq!(until.to_rfc3339(), "2012-12-21T00:00:00+00:00");
        assert!(s.needs_retrieval());

        let mut h = Headers::new();
        h.insert(HeaderName::from_static("x-ms-access-tier"), "Hot");
        let s = parse_state(&h);
        assert!(!s.needs_retrieval());
        assert_eq!((s.class, s.lock), (None, None));
    }

    #[test]
    fn dates_round_up_to_the_second() {
        let t = DateTime::parse_from_rfc3339("2026-11-29T10:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(t), "Sun, 29 Nov 2026 10:00:01 GMT");
    }

    // Request shapes, recorded from the Blob service's REST reference, against wiremock:
    // Azurite answers immutability requests with 501 and rehydrates at once, so these
    // paths are only emulated (docs/ARCHITECTURE.md lists them).

    const ACCOUNT: &str = "devstoreaccount1";

    /// A header's whole value (wiremock's `header` splits values at commas, and dates
    /// have one).
    fn raw_header(name: &'static str, value: &'static str) -> impl wiremock::Match {
        move |r: &wiremock::Request| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == value)
        }
    }

    fn client(server: &MockServer) -> AzureExtra {
        let creds: AzureCredentialProvider = Arc::new(object_store::StaticCredentialProvider::new(
            AzureCredential::BearerToken("unused".into()),
        ));
        AzureExtra::new(
            AzureConfig {
                container: "target".into(),
                account: ACCOUNT.into(),
                service: format!("{}/{ACCOUNT}", server.uri()),
                key: Some(azure_storage::EMULATOR_ACCOUNT_KEY.into()),
                sas: None,
            },
            creds,
        )
        .unwrap()
    }

    /// The headers every write answer of the service carries (the SDK parses them).
    fn written(status: u16) -> ResponseTemplate {
        ResponseTemplate::new(status)
            .insert_header("etag", "\"0x8D\"")
            .insert_header("last-modified", "Sun, 29 Nov 2026 10:00:00 GMT")
            .insert_header("date", "Sun, 29 Nov 2026 10:00:00 GMT")
            .insert_header("x-ms-request-id", "00000000-0000-0000-0000-000000000000")
            .insert_header("x-ms-version", "2022-11-02")
            .insert_header("x-ms-request-server-encrypted", "true")
    }

    fn refused(status: u16, code: &str) -> ResponseTemplate {
        ResponseTemplate::new(status)
            .insert_header("x-ms-error-code", code)
            .insert_header("x-ms-request-id", "00000000-0000-0000-0000-000000000000")
    }

    fn until() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2027-01-01T00:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[tokio::test]
    async fn a_locked_put_carries_its_policy_tier_and_create_only_condition() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path(format!("/{ACCOUNT}/target/p/data/ab/abcd")))
            .and(header("x-ms-blob-type", "BlockBlob"))
            .and(raw_header(UNTIL, "Fri, 01 Jan 2027 00:00:01 GMT"))
            .and(header(MODE, "Unlocked"))
            .and(header("x-ms-access-tier", "Archive"))
            .and(header("if-none-match", "*"))
            .and(header_exists("authorization"))
            .respond_with(written(201))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .respond_with(refused(409, "BlobAlreadyExists"))
            .mount(&server)
            .await;
        let az = client(&server);
        az.put_locked(
            "p/data/ab/abcd",
            b"pack".to_vec(),
            Some("Archive"),
            LockMode::Governance,
            until(),
        )
        .await
        .unwrap();
        // The second write of the same name is refused, not an overwrite.
        let e = az
            .put_locked(
                "p/data/ab/abcd",
                b"pack".to_vec(),
                None,
                LockMode::Governance,
                until(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
        let auth = server.received_requests().await.unwrap()[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(auth.starts_with(&format!("SharedKey {ACCOUNT}:")), "{auth}");
    }

    #[tokio::test]
    async fn a_large_blob_is_committed_with_its_policy_by_the_block_list() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(query_param("comp", "block"))
            .respond_with(written(201))
            .expect(3)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(query_param("comp", "blocklist"))
            .and(raw_header(UNTIL, "Fri, 01 Jan 2027 00:00:01 GMT"))
            .and(header(MODE, "Locked"))
            .and(header("x-ms-access-tier", "Cold"))
            .and(header("if-none-match", "*"))
            .and(body_string_contains("<Uncommitted>"))
            .respond_with(written(201))
            .expect(1)
            .mount(&server)
            .await;
        let az = client(&server);
        az.put_locked_multipart(
            "p/data/cd/cdef",
            3,
            &|i| Ok(vec![i as u8; 10]),
            Some("Cold"),
            LockMode::Compliance,
            until(),
        )
        .await
        .unwrap();
        let reqs = server.received_requests().await.unwrap();
        // Blocks in order, ids of one length, and the list names them in that order.
        let ids: Vec<String> = reqs
            .iter()
            .filter_map(|r| {
                r.url
                    .query_pairs()
                    .find(|(k, _)| k == "blockid")
                    .map(|(_, v)| v.to_string())
            })
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|i| i.len() == ids[0].len()));
        let list = String::from_utf8(reqs.last().unwrap().body.clone()).unwrap();
        let at: Vec<usize> = ids.iter().map(|i| list.find(i.as_str()).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{list}");
    }

    #[tokio::test]
    async fn a_policy_is_extended_by_set_blob_immutability_policy() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path(format!("/{ACCOUNT}/target/p/snapshots/ef")))
            .and(query_param("comp", "immutabilityPolicies"))
            .and(raw_header(UNTIL, "Fri, 01 Jan 2027 00:00:01 GMT"))
            .and(header(MODE, "Unlocked"))
            .and(header_exists("x-ms-version"))
            .and(header_exists("authorization"))
            .respond_with(written(200))
            .expect(1)
            .mount(&server)
            .await;
        client(&server)
            .extend_lock("p/snapshots/ef", LockMode::Governance, until())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn rehydration_sets_the_hot_tier_with_a_priority() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path(format!("/{ACCOUNT}/target/p/data/01/0123")))
            .and(query_param("comp", "tier"))
            .and(header("x-ms-access-tier", "Hot"))
            .and(header("x-ms-rehydrate-priority", "High"))
            .respond_with(written(202))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(query_param("comp", "tier"))
            .and(header("x-ms-rehydrate-priority", "Standard"))
            .respond_with(refused(409, "BlobBeingRehydrated"))
            .mount(&server)
            .await;
        let az = client(&server);
        let a = az
            .restore("p/data/01/0123", RetrievalTier::Expedited, 1)
            .await
            .unwrap();
        assert_eq!(a, RestoreAsked::Started);
        let a = az
            .restore("p/data/01/0123", RetrievalTier::Standard, 1)
            .await
            .unwrap();
        assert_eq!(a, RestoreAsked::AlreadyUnderway);
    }

    #[tokio::test]
    async fn state_and_container_settings_are_read_from_heads() {
        let server = MockServer::start().await;
        Mock::given(method("HEAD"))
            .and(path(format!("/{ACCOUNT}/target/p/data/01/0123")))
            .respond_with(
                written(200)
                    .insert_header("x-ms-access-tier", "Archive")
                    .insert_header("x-ms-archive-status", "rehydrate-pending-to-hot")
                    .insert_header(UNTIL, "Fri, 01 Jan 2027 00:00:01 GMT")
                    .insert_header(MODE, "unlocked"),
            )
            .mount(&server)
            .await;
        Mock::given(method("HEAD"))
            .and(path(format!("/{ACCOUNT}/target")))
            .and(query_param("restype", "container"))
            .respond_with(
                written(200)
                    .insert_header("x-ms-immutable-storage-with-versioning-enabled", "true"),
            )
            .mount(&server)
            .await;
        Mock::given(method("HEAD"))
            .respond_with(refused(404, "BlobNotFound"))
            .mount(&server)
            .await;
        let az = client(&server);
        let s = az.state("p/data/01/0123").await.unwrap();
        assert_eq!(s.class.as_deref(), Some("Archive"));
        assert_eq!(s.restore, Restore::InProgress);
        assert_eq!(s.lock.unwrap().0, LockMode::Governance);
        let e = az.state("p/data/02/gone").await.unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        let c = az.container_settings().await.unwrap();
        assert!(c.exists && c.object_lock, "{c:?}");
    }

    #[tokio::test]
    async fn a_service_without_immutability_is_named_in_the_error() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(refused(501, "NotImplemented"))
            .mount(&server)
            .await;
        let e = client(&server)
            .put_locked("p/x", vec![1], None, LockMode::Governance, until())
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("p/x") && m.contains("501") && m.contains("immutability"),
            "{m}"
        );
    }
}
