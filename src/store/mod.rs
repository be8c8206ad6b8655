//! Repository locations: turns `s3://bucket/prefix`, `az://container[@account]/prefix`,
//! `file:///path` (or a plain path) and `memory://name` into an `object_store` store and
//! a prefix. Credentials and endpoints come from the environment variables object_store
//! reads (`AWS_*`, `AZURE_*`), so a working `aws`/`az` setup needs nothing new.

pub mod azure;
pub mod class;
pub mod cloud;
pub mod diagnose;
#[cfg(any(test, feature = "testkit"))]
pub mod flaky;
#[cfg(any(test, feature = "testkit"))]
pub mod gated;
pub mod link;
pub mod metered;
pub mod s3;
pub mod throttle;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;

use crate::clock::{Clock, SystemClock};
use crate::{Error, Result};
pub use link::{Inflight, Link};
pub use metered::{RequestCounts, Requests};

/// A store and the prefix inside it where one repository lives.
#[derive(Clone, Debug)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The location as the user wrote it, for messages.
    pub url: String,
    pub kind: StoreKind,
    /// Requests made through this location (every store is wrapped in a counter).
    pub requests: Arc<RequestCounts>,
    /// What the requests show of the link: latency and rate, for sizing requests in flight.
    pub link: Arc<Link>,
    /// The time source of everything done here: retry backoff, lock expiry and waits.
    pub clock: Arc<dyn Clock>,
    /// The provider's own client, for what object_store cannot do (S3 and Azure).
    pub extra: Option<cloud::Provider>,
    /// A folder location's absolute path (where a killed writer's staging files are
    /// found: listings through object_store never show them).
    pub folder: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    S3,
    Azure,
    File,
    Memory,
}

/// A cloud provider as offsite registers it — the one place a new provider is named
/// besides its folder: the name its prices are kept under, the classes (or tiers) its
/// data packs may go to, spelt as it does (the first is where objects go when none is
/// set), which of those are archived (read only after a retrieval), and what it calls
/// them in messages.
#[derive(Debug)]
pub struct ProviderInfo {
    pub kind: StoreKind,
    pub name: &'static str,
    pub classes: &'static [&'static str],
    pub archived: &'static [&'static str],
    pub class_word: &'static str,
    /// What its errors say, and what to tell the operator about them.
    pub vocabulary: diagnose::Vocabulary,
}

impl StoreKind {
    /// The cloud providers offsite knows.
    pub const PROVIDERS: [ProviderInfo; 2] = [s3::info::INFO, azure::info::INFO];

    /// The provider a store of this kind is (`None` for folders and memory).
    pub fn provider(self) -> Option<&'static ProviderInfo> {
        Self::PROVIDERS.iter().find(|p| p.kind == self)
    }

    /// The store kind a provider's name (as the price table keys it) names.
    pub fn by_provider(name: &str) -> Option<StoreKind> {
        Self::PROVIDERS
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.kind)
    }

    /// The provider's name (`None` for folders and memory).
    pub fn provider_name(self) -> Option<&'static str> {
        self.provider().map(|p| p.name)
    }

    /// The class a store of this kind stores in when none is set.
    pub fn default_class(self) -> Option<&'static str> {
        self.provider().and_then(|p| p.classes.first().copied())
    }
}

impl Location {
    /// A location over an existing store (tests, and callers that build their own).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: &str, kind: StoreKind) -> Self {
        let metered = metered::Metered::new(store, Arc::default());
        Location {
            requests: metered.counts.clone(),
            link: metered.link.clone(),
            store: Arc::new(metered),
            prefix: Path::from(prefix),
            url: url.to_string(),
            kind,
            clock: Arc::new(SystemClock),
            extra: None,
            folder: None,
        }
    }

    /// The same location, timed by `clock` (tests run waits and retries in simulated time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same location counting its requests anew (the requests of one part of a job,
    /// such as one chain of a copy); the original's counters still count them too.
    pub fn metered_view(&self) -> Self {
        let metered = metered::Metered::view(self.store.clone(), self.link.clone());
        Location {
            requests: metered.counts.clone(),
            store: Arc::new(metered),
            ..self.clone()
        }
    }

    /// The full store path of object `name` (e.g. `data/ab/abcd…`).
    pub fn path(&self, name: &str) -> Path {
        if self.prefix.as_ref().is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{}", self.prefix, name))
        }
    }

    /// The repository-relative name of a store path.
    pub fn name_of(&self, path: &Path) -> String {
        let p = path.as_ref();
        let pre = self.prefix.as_ref();
        if pre.is_empty() {
            p.to_string()
        } else {
            p.strip_prefix(pre)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(p)
                .to_string()
        }
    }
}

static MEMORY: LazyLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Puts `store` under `memory://name`, so code that opens repositories by URL (a job)
/// can be run over a store a test controls (gated, flaky).
#[cfg(any(test, feature = "testkit"))]
pub fn register_memory(name: &str, store: Arc<dyn ObjectStore>) {
    let mut m = MEMORY.lock().expect("memory registry lock");
    m.insert(name.to_string(), store);
}

/// Checks that `url` names a location offsite can open (scheme, bucket or container,
/// path), without a request: a folder that does not exist yet is fine.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    match open(url, false) {
        Ok(_) | Err(Error::NoRepository { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The kind of store `url` names, from its scheme alone.
pub fn kind_of(url: &str) -> Option<StoreKind> {
    match url.split_once("://").map_or("file", |(s, _)| s) {
        "s3" | "s3a" => Some(StoreKind::S3),
        "az" | "azure" | "abfs" => Some(StoreKind::Azure),
        "memory" => Some(StoreKind::Memory),
        "file" => Some(StoreKind::File),
        _ => None,
    }
}

/// Opens the location `url`; `create` makes a missing local folder (for `init`).
pub fn open(url: &str, create: bool) -> Result<Location> {
    open_throttled(url, create, None)
}

/// What the Azure SDK client needs of the settings object_store is built with: the
/// same account, endpoint (Azurite's when emulating) and key or SAS; without either,
/// it uses object_store's credential provider (identity), handed over after the build.
fn azure_settings(b: &MicrosoftAzureBuilder, container: &str) -> azure::AzureConfig {
    use object_store::azure::AzureConfigKey as K;
    let emulator = b
        .get_config_value(&K::UseEmulator)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let mut key = b.get_config_value(&K::AccessKey);
    let account = match (emulator, b.get_config_value(&K::AccountName)) {
        (_, Some(a)) => a,
        (true, None) => azure_storage::EMULATOR_ACCOUNT.to_string(),
        (false, None) => String::new(),
    };
    let service = if emulator {
        // object_store's default and variable for Azurite, path-style with the account.
        let base = std::env::var("AZURITE_BLOB_STORAGE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:10000".to_string());
        if key.is_none() && b.get_config_value(&K::SasKey).is_none() {
            key = Some(azure_storage::EMULATOR_ACCOUNT_KEY.to_string());
        }
        format!("{}/{account}", base.trim_end_matches('/'))
    } else {
        b.get_config_value(&K::Endpoint)
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"))
    };
    azure::AzureConfig {
        container: container.to_string(),
        account,
        service,
        key,
        sas: b.get_config_value(&K::SasKey),
    }
}

/// [`open`], the HTTP traffic of an S3 or Azure store going through `throttle`
/// (bandwidth and requests in flight; a folder or memory store is not throttled).
pub fn open_throttled(
    url: &str,
    create: bool,
    throttle: Option<Arc<throttle::Throttle>>,
) -> Result<Location> {
    let invalid = |reason: &str| Error::InvalidLocation {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("file", url),
    };
    let (root, prefix) = match rest.split_once('/') {
        Some((r, p)) => (r, p.trim_matches('/')),
        None => (rest, ""),
    };
    match scheme {
        "s3" | "s3a" => {
            if root.is_empty() {
                return Err(invalid("no bucket: write s3://BUCKET/PREFIX"));
            }
            let mut b = AmazonS3Builder::from_env().with_bucket_name(root);
            if let Some(t) = &throttle {
                b = b.with_http_connector(throttle::ThrottleConnector(t.clone()));
            }
            let store = b.build().map_err(|e| invalid(&e.to_string()))?;
            let mut loc = Location::new(Arc::new(store), prefix, url, StoreKind::S3);
            loc.extra = Some(Arc::new(s3::S3Extra::new(root)));
            Ok(loc)
        }
        "az" | "azure" | "abfs" => {
            if root.is_empty() {
                return Err(invalid("no container: write az://CONTAINER/PREFIX"));
            }
            // `az://CONTAINER@ACCOUNT/PREFIX` names the storage account in the URL, so a
            // source and a target may live in different accounts; without it the
            // account comes from AZURE_STORAGE_ACCOUNT_NAME.
            let (container, account) = match root.split_once('@') {
                Some((c, a)) => (c, Some(a.trim_end_matches(".blob.core.windows.net"))),
                None => (root, None),
            };
            if container.is_empty() || account.is_some_and(str::is_empty) {
                return Err(invalid(
                    "write az://CONTAINER/PREFIX or az://CONTAINER@ACCOUNT/PREFIX",
                ));
            }
            let mut b = MicrosoftAzureBuilder::from_env().with_container_name(container);
            if let Some(a) = account {
                b = b.with_account(a);
            }
            if let Some(t) = &throttle {
                b = b.with_http_connector(throttle::ThrottleConnector(t.clone()));
            }
            let settings = azure_settings(&b, container);
            let store = b.build().map_err(|e| match e.to_string() {
                m if m.contains("Account must be specified") => invalid(
                    "no Azure storage account: set AZURE_STORAGE_ACCOUNT_NAME and \
                         AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_KEY), or \
                         AZURE_STORAGE_USE_EMULATOR=true for Azurite",
                ),
                m => invalid(&m),
            })?;
            let extra = azure::AzureExtra::new(settings, store.credentials().clone())?;
            let mut loc = Location::new(Arc::new(store), prefix, url, StoreKind::Azure);
            loc.extra = Some(Arc::new(extra));
            Ok(loc)
        }
        "memory" => {
            let mut m = MEMORY.lock().expect("memory registry lock");
            let store = m
                .entry(root.to_string())
                .or_insert_with(|| Arc::new(InMemory::new()))
                .clone();
            Ok(Location::new(store, prefix, url, StoreKind::Memory))
        }
        "file" => {
            let dir = if url.starts_with("file://") {
                rest
            } else {
                url
            };
            if dir.is_empty() {
                return Err(invalid("empty path"));
            }
            let dir = std::path::Path::new(dir);
            if create {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            if !dir.is_dir() {
                return Err(Error::NoRepository {
                    url: url.to_string(),
                });
            }
            let abs = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
            let store =
                LocalFileSystem::new_with_prefix(&abs).map_err(|e| invalid(&e.to_string()))?;
            let mut loc = Location::new(Arc::new(store), "", url, StoreKind::File);
            loc.folder = Some(abs);
            Ok(loc)
        }
        other => Err(invalid(&format!(
            "unknown scheme {other:?}: use s3://, az://, file:// or a path, or memory://"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let l = open("memory://t1/a/b", false).unwrap();
        assert_eq!(l.path("config").as_ref(), "a/b/config");
        assert_eq!(l.name_of(&l.path("data/x")), "data/x");
        assert!(open("ftp://x", false).is_err());
        assert!(open("s3:///p", false).is_err());
        assert!(open("az://@acct/p", false).is_err());
        assert!(open("az://c@/p", false).is_err());
        let d = tempfile::tempdir().unwrap();
        let l = open(d.path().to_str().unwrap(), false).unwrap();
        assert_eq!(l.path("config").as_ref(), "config");
        assert!(matches!(
            open("/nonexistent/offsite-test", false),
            Err(Error::NoRepository { .. })
        ));
    }
}
