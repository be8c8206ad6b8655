//! A repository: a location, its unlocked master key and its config. Every read and
//! write of stored objects goes through here, so names, conditional creates and error
//! messages are the same everywhere.

pub mod adopt;
pub mod blob;
pub mod immutable;
pub mod index;
pub mod lock;
pub mod marks;
mod open;
pub mod packer;
mod points;
pub mod reach;
pub mod read_list;
pub mod reads;
pub mod reindex;
pub mod repack;
pub mod retry;
pub mod sweep;
pub mod table;
pub mod tree;
mod upload;
pub mod warm;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{Attributes, ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::clock::Clock;
use crate::crypto::SecretKey;
use crate::format::config::{ChunkerParams, Config, StoragePolicy};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::keyfile::KdfParams;

use crate::format::{self, CONFIG, INDEX, KEYS};
use crate::keys::{self, MasterKey};
use crate::store::Location;
use crate::{Error, Id, Result};
use retry::retry;

pub use index::{BlobLocation, IndexBuilder, MasterIndex};
pub use open::{open_repository, open_repository_with};
pub use warm::{Warm, WarmSpec};

/// How many object reads or writes one operation keeps in flight.
pub const IO_CONCURRENCY: usize = 8;

/// Packs at least this large go up as multipart uploads.
pub const MULTIPART_THRESHOLD: usize = 32 << 20;
pub const MULTIPART_PART: usize = 8 << 20;

/// Packs listed per index file; keeps each index file small enough to read quickly.
pub const PACKS_PER_INDEX: usize = 2000;
/// Blobs one index file lists at most (a single larger pack goes alone): a file is
/// encoded, compressed and sealed whole, so a chain of millions of tiny blobs writes
/// several files of a few MiB instead of one whose copies take hundreds.
pub const BLOBS_PER_INDEX: usize = 1 << 16;

/// `packs` in consecutive groups of at most [`PACKS_PER_INDEX`] packs and
/// [`BLOBS_PER_INDEX`] blobs (a pack with more blobs than that forms a group alone).
pub fn index_groups(packs: &[IndexedPack]) -> Vec<&[IndexedPack]> {
    let mut groups = Vec::new();
    let (mut start, mut blobs) = (0, 0);
    for (i, p) in packs.iter().enumerate() {
        let full = i - start >= PACKS_PER_INDEX || blobs + p.entries.len() > BLOBS_PER_INDEX;
        if i > start && full {
            groups.push(&packs[start..i]);
            (start, blobs) = (i, 0);
        }
        blobs += p.entries.len();
    }
    if start < packs.len() {
        groups.push(&packs[start..]);
    }
    groups
}

/// Settings chosen at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub compression: i32,
    pub pack_size: u64,
    pub chunker: Option<ChunkerParams>,
    pub kdf: KdfParams,
    /// Storage class of data packs and object lock (`offsite target set` changes it later).
    pub storage: StoragePolicy,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            compression: 3,
            pack_size: 16 << 20,
            chunker: None,
            kdf: keys::DEFAULT_KDF,
            storage: StoragePolicy::default(),
        }
    }
}

#[derive(Clone)]
pub struct Repository {
    pub loc: Location,
    master: MasterKey,
    key: SecretKey,
    pub config: Config,
    /// The key file the password opened (`keys/<id>`).
    pub key_name: String,
    pub multipart_threshold: usize,
    /// What was read ahead while the key was derived (empty unless opened warm).
    warm: Arc<Warm>,
    /// Restore points read so far. A point's name is the hash of its bytes, so it never
    /// changes: an interval that looks at a source's points several times (catch-up,
    /// the copy, the machine table) reads each once.
    points_read: Arc<std::sync::Mutex<std::collections::HashMap<Id, crate::format::point::Point>>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("url", &self.loc.url)
            .field("config", &self.config)
            .finish()
    }
}

fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

impl Repository {
    /// Creates a repository at `loc` with a new master key wrapped under `password`.
    pub async fn init(loc: Location, password: &[u8], opts: InitOptions) -> Result<Repository> {
        let url = loc.url.clone();
        if Repository::exists_at(&loc).await.map_err(|e| e.at(&url))? {
            return Err(Error::AlreadyInitialized { url: loc.url });
        }
        let storage = immutable::storage_for(&loc, opts.storage)?;
        let seed = u64::from_le_bytes(crate::crypto::random_bytes());
        let config = Config {
            id: Id(crate::crypto::random_bytes()),
            created: chrono::Utc::now(),
            chunker: opts.chunker.unwrap_or(ChunkerParams::data_default(seed)),
            tree_chunker: ChunkerParams::tree_default(seed),
            compression: opts.compression,
            pack_size: opts.pack_size,
            storage,
        };
        config.validate().map_err(Error::Invalid)?;
        let master = MasterKey::generate();
        let key = master.cipher();
        let kbytes = keys::wrap(&master, password, opts.kdf, &host_name())?;
        let key_name = format::key_name(&Id::hash(&kbytes));
        let repo = Repository {
            loc,
            master,
            key,
            config,
            key_name: key_name.clone(),
            multipart_threshold: MULTIPART_THRESHOLD,
            warm: Arc::default(),
            points_read: Arc::default(),
        };
        repo.put_new(&key_name, kbytes.into())
            .await
            .map_err(|e| e.at(&url))?;
        // The key goes first: if two inits race, the loser removes its key and the
        // winner's repository stays whole.
        let sealed = repo.config.seal(&repo.key);
        match repo.put_new(CONFIG, sealed.into()).await {
            Ok(_) => {}
            Err(Error::AlreadyExists { .. }) => {
                let _ = repo.delete(&key_name).await;
                return Err(Error::AlreadyInitialized { url: repo.loc.url });
            }
            Err(e) => return Err(e),
        }
        Ok(repo)
    }

    /// Whether a repository (its `config`) exists at `loc`.
    pub async fn exists_at(loc: &Location) -> Result<bool> {
        exists(loc, CONFIG).await
    }

    /// Opens the repository at `loc` with `password`.
    pub async fn open(loc: Location, password: &[u8]) -> Result<Repository> {
        // The config and the key files are asked for at once: one round trip less.
        let config_path = loc.path(CONFIG);
        let (config, key_objects) = tokio::join!(loc.store.get(&config_path), list(&loc, KEYS));
        let config_bytes = match config {
            Ok(r) => r.bytes().await.map_err(|e| Error::store(CONFIG, e))?,
            Err(e @ object_store::Error::NotFound { .. }) => {
                return Err(match Error::store(CONFIG, e) {
                    Error::NotFound { .. } => Error::NoRepository { url: loc.url },
                    missing_bucket => missing_bucket.at(&loc.url),
                });
            }
            Err(e) => return Err(Error::store(CONFIG, e).at(&loc.url)),
        };
        format::check_header(CONFIG, format::MAGIC_CONFIG, &config_bytes)?;
        let key_objects = key_objects?;
        for meta in &key_objects {
            let name = loc.name_of(&meta.location);
            let bytes = get(&loc, &name).await?;
            // The KDF takes ~0.5 s of CPU by design: off the async threads, so opening
            // the source and the target of a copy derive their keys side by side.
            let (n, pw) = (name.clone(), password.to_vec());
            let unwrapped = tokio::task::spawn_blocking(move || keys::unwrap(&n, &bytes, &pw))
                .await
                .map_err(|e| Error::Internal(format!("key derivation failed: {e}")))?;
            let master = match unwrapped {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("skipping key file {name}: {e}");
                    continue;
                }
            };
            let key = master.cipher();
            let config = Config::open(&key, &config_bytes)?;
            return Ok(Repository {
                loc,
                master,
                key,
                config,
                key_name: name,
                multipart_threshold: MULTIPART_THRESHOLD,
                warm: Arc::default(),
                points_read: Arc::default(),
            });
        }
        Err(Error::WrongPassword {
            url: loc.url,
            keys: key_objects.len(),
        })
    }

    /// Opens the repository and, while its key is derived, reads ahead what `spec`
    /// names ([`warm`]: only for operations that re-read under their locks what must
    /// be current).
    pub async fn open_warm(loc: Location, password: &[u8], spec: WarmSpec) -> Result<Repository> {
        let (repo, warm) = tokio::join!(
            Repository::open(loc.clone(), password),
            Warm::fetch(&loc, spec)
        );
        let mut repo = repo?;
        repo.warm = Arc::new(warm);
        Ok(repo)
    }

    /// Changes the storage policy (class of data packs, object lock) for every writer
    /// from now on; packs already stored keep their class and locks. The config is the
    /// one shared object offsite ever replaces, and only here.
    pub async fn set_storage(&mut self, storage: StoragePolicy) -> Result<()> {
        let mut config = self.config.clone();
        config.storage = immutable::storage_for(&self.loc, storage)?;
        config.validate().map_err(Error::Invalid)?;
        if config == self.config {
            return Ok(());
        }
        if config.storage.lock.is_some() {
            immutable::check_lock_support(&self.loc).await?;
        }
        self.put_overwrite(CONFIG, config.seal(&self.key).into())
            .await?;
        self.config = config;
        Ok(())
    }

    /// The same repository, timed by `clock` (lock expiry, retries, waits).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.loc.clock = clock;
        self
    }

    pub fn clock(&self) -> &dyn Clock {
        self.loc.clock.as_ref()
    }

    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    pub fn url(&self) -> &str {
        &self.loc.url
    }

    /// The same repository counting its requests anew (see [`Location::metered_view`]).
    pub fn metered_view(&self) -> Repository {
        Repository {
            loc: self.loc.metered_view(),
            ..self.clone()
        }
    }

    pub async fn get(&self, name: &str) -> Result<Bytes> {
        if let Some(b) = self.warm.take_object(name) {
            return Ok(b);
        }
        get(&self.loc, name).await
    }

    pub async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes> {
        retry(self.clock(), name, || async {
            let bytes = self
                .loc
                .store
                .get_range(&self.loc.path(name), range.clone())
                .await
                .map_err(|e| Error::store(name, e))?;
            if bytes.len() as u64 != range.end - range.start {
                return Err(Error::ShortRead {
                    object: name.to_string(),
                });
            }
            Ok(bytes)
        })
        .await
    }

    /// Creates object `name`; never overwrites. `AlreadyExists` if another writer's
    /// object is there. A create that finds the object already there reads it back: the
    /// same bytes mean an earlier attempt of ours landed (its answer was lost and the
    /// store client retried), which is success. Names are content hashes or random, so
    /// equal bytes cannot be someone else's.
    pub async fn put_new(&self, name: &str, payload: PutPayload) -> Result<()> {
        self.put_new_with(name, payload, &Attributes::new()).await
    }

    /// [`Repository::put_new`] with object attributes (a pack's storage class).
    pub async fn put_new_with(
        &self,
        name: &str,
        payload: PutPayload,
        attributes: &Attributes,
    ) -> Result<()> {
        let path = self.loc.path(name);
        let r = retry(self.clock(), name, || {
            let payload = payload.clone();
            let path = path.clone();
            let opts = PutOptions {
                mode: PutMode::Create,
                attributes: attributes.clone(),
                ..Default::default()
            };
            async move {
                self.loc
                    .store
                    .put_opts(&path, payload, opts)
                    .await
                    .map(|_| ())
                    .map_err(|e| Error::store_write(name, e))
            }
        })
        .await;
        match r {
            Err(Error::AlreadyExists { .. }) => {
                let ours: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
                match self.get(name).await {
                    Ok(b) if b.as_ref() == ours.as_slice() => Ok(()),
                    _ => Err(Error::AlreadyExists {
                        object: name.to_string(),
                    }),
                }
            }
            r => r,
        }
    }

    /// Overwrites object `name` (only for objects a writer owns, such as its lock).
    pub async fn put_overwrite(&self, name: &str, payload: PutPayload) -> Result<()> {
        retry(self.clock(), name, || async {
            self.loc
                .store
                .put(&self.loc.path(name), payload.clone())
                .await
                .map(|_| ())
                .map_err(|e| Error::store_write(name, e))
        })
        .await
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        retry(self.clock(), name, || async {
            self.loc
                .store
                .delete(&self.loc.path(name))
                .await
                .map_err(|e| Error::store(name, e))
        })
        .await
    }

    /// Deletes `names`, several at a time; one already gone is fine. The first failure
    /// is returned once every delete has been tried.
    pub async fn delete_all(&self, names: Vec<String>) -> Result<()> {
        let done: Vec<Result<()>> = futures::stream::iter(names.into_iter().map(|n| async move {
            match self.delete(&n).await {
                Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }))
        .buffer_unordered(IO_CONCURRENCY)
        .collect()
        .await;
        done.into_iter().collect()
    }

    pub async fn exists(&self, name: &str) -> Result<bool> {
        exists(&self.loc, name).await
    }

    pub async fn list(&self, dir: &str) -> Result<Vec<ObjectMeta>> {
        if let Some(l) = self.warm.take_list(dir) {
            return Ok(l);
        }
        list(&self.loc, dir).await
    }

    /// Writes an index file; returns its name.
    pub async fn save_index(&self, index: &IndexFile) -> Result<String> {
        let sealed = index.seal(&self.key);
        let name = format::index_name(&Id::hash(&sealed));
        self.put_new(&name, sealed.into()).await?;
        Ok(name)
    }

    /// Indexes `packs` (already stored): index files of at most [`PACKS_PER_INDEX`] packs
    /// and [`BLOBS_PER_INDEX`] blobs each (see [`index_groups`]).
    /// Returns the names of the index files written.
    pub async fn save_indexes(&self, packs: &[IndexedPack]) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for group in index_groups(packs) {
            let name = self
                .save_index(&IndexFile {
                    packs: group.to_vec(),
                })
                .await?;
            names.push(name);
        }
        Ok(names)
    }

    /// Reads every index file into one in-memory index.
    pub async fn load_index(&self) -> Result<MasterIndex> {
        let names = self.index_names().await?;
        let mut builder = index::IndexBuilder::default();
        let mut files = std::pin::pin!(self.index_file_stream(names));
        while let Some((name, f)) = files.try_next().await? {
            builder.add_file(&name, &f);
        }
        Ok(builder.finish())
    }

    /// The names of every index file (one LIST).
    pub async fn index_names(&self) -> Result<Vec<String>> {
        Ok(self
            .list(INDEX)
            .await?
            .iter()
            .map(|m| self.loc.name_of(&m.location))
            .collect())
    }

    /// Reads and opens the index files `names`, several at a time.
    pub async fn load_index_files(&self, names: Vec<String>) -> Result<Vec<(String, IndexFile)>> {
        self.index_file_stream(names).try_collect().await
    }

    /// The index files `names`, read and opened several at a time, as they arrive.
    fn index_file_stream(
        &self,
        names: Vec<String>,
    ) -> impl futures::Stream<Item = Result<(String, IndexFile)>> + '_ {
        futures::stream::iter(names.into_iter().map(move |name| async move {
            let bytes = self.get(&name).await?;
            let f = IndexFile::open(&self.key, &name, &bytes)?;
            Ok::<_, Error>((name, f))
        }))
        .buffer_unordered(IO_CONCURRENCY)
    }

    /// Reads, opens and verifies one blob: decrypts, decompresses, checks its id.
    pub async fn read_blob(
        &self,
        id: &Id,
        loc: &BlobLocation,
        packs: &MasterIndex,
    ) -> Result<Vec<u8>> {
        let pack = packs.pack_id(loc.pack);
        let name = format::pack_name(&pack);
        let sealed = self
            .get_range(&name, loc.offset..loc.offset + u64::from(loc.length))
            .await?;
        blob::open(&self.key, &name, id, loc.raw_length, &sealed)
    }

    /// Adds a key file wrapping the master key under another password.
    pub async fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        let kbytes = keys::wrap(&self.master, password, kdf, &host_name())?;
        let name = format::key_name(&Id::hash(&kbytes));
        self.put_new(&name, kbytes.into()).await?;
        Ok(name)
    }
}

pub(crate) async fn get(loc: &Location, name: &str) -> Result<Bytes> {
    retry(loc.clock.as_ref(), name, || async {
        let r = loc
            .store
            .get(&loc.path(name))
            .await
            .map_err(|e| Error::store(name, e))?;
        r.bytes().await.map_err(|e| Error::store(name, e))
    })
    .await
}

/// Whether object `name` is there (a HEAD; retried like every other request).
async fn exists(loc: &Location, name: &str) -> Result<bool> {
    retry(loc.clock.as_ref(), name, || async {
        match loc.store.head(&loc.path(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(name, e)),
        }
    })
    .await
}

pub(crate) async fn list(loc: &Location, dir: &str) -> Result<Vec<ObjectMeta>> {
    let prefix = loc.path(dir);
    retry(loc.clock.as_ref(), dir, || async {
        loc.store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::store(format!("{dir}/"), e))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobKind, PackEntry};

    fn pack(n: u8, blobs: usize) -> IndexedPack {
        let entry = PackEntry {
            kind: BlobKind::Data,
            id: Id::hash(&[n]),
            offset: 0,
            length: 1,
            raw_length: 1,
        };
        IndexedPack {
            id: Id::hash(&[n, 1]),
            size: 1,
            entries: vec![entry; blobs],
        }
    }

    /// Index files stay bounded by blobs as well as by packs; a pack larger than the
    /// bound goes alone; every pack is in exactly one group, in order.
    #[test]
    fn index_groups_bound_blobs_and_packs() {
        let half = BLOBS_PER_INDEX / 2;
        let packs = vec![
            pack(0, half),
            pack(1, half),
            pack(2, 1),
            pack(3, 3 * half),
            pack(4, 1),
        ];
        let sizes: Vec<usize> = index_groups(&packs).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![2, 1, 1, 1]);
        let many: Vec<IndexedPack> = (0..=PACKS_PER_INDEX).map(|i| pack(i as u8, 1)).collect();
        let sizes: Vec<usize> = index_groups(&many).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![PACKS_PER_INDEX, 1]);
        assert!(index_groups(&[]).is_empty());
    }
}
