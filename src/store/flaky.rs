//! A store wrapper that fails requests the way S3 and Azure do, for tests that prove the
//! retry, "landed but the answer was lost" and crash paths without a server. Faults are
//! chosen by rule (the Nth request of a kind, on names containing a string) or at random
//! with a seeded generator, so a failing run can be replayed.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

/// The kind of request a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Head,
    Put,
    /// Completing a multipart upload.
    Complete,
    List,
    Delete,
}

/// How a request fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request does not reach the store (503 Slow Down, a reset connection).
    Unavailable,
    /// The write (or completion) lands, then the answer is lost: the caller sees an error.
    LandThenFail,
    /// A read answers with a body cut short.
    ShortBody,
}

/// Fail `times` requests of kind `op` on names containing `name` (any name when empty),
/// after letting `skip` matching requests through.
#[derive(Clone, Debug)]
pub struct Rule {
    pub op: Op,
    pub name: String,
    pub fault: Fault,
    pub skip: u32,
    pub times: u32,
}

#[derive(Debug)]
struct State {
    rules: Vec<Rule>,
    /// Probability of an `Unavailable` fault on any request, and the generator state.
    random: f64,
    seed: u64,
    injected: u64,
    /// Writes and deletes still allowed before the store "crashes": every request after
    /// that fails. `None`: never.
    writes_left: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct FlakyStore {
    inner: Arc<dyn ObjectStore>,
    state: Arc<Mutex<State>>,
}

impl FlakyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> FlakyStore {
        FlakyStore {
            inner,
            state: Arc::new(Mutex::new(State {
                rules: Vec::new(),
                random: 0.0,
                seed: 1,
                injected: 0,
                writes_left: None,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add_rule(&self, rule: Rule) {
        self.state().rules.push(rule);
    }

    /// Fails `times` of the next requests of kind `op` on names containing `name`.
    pub fn fail(&self, op: Op, name: &str, fault: Fault, times: u32) {
        self.add_rule(Rule {
            op,
            name: name.to_string(),
            fault,
            skip: 0,
            times,
        });
    }

    /// Makes any request unavailable with probability `p`, from generator `seed`.
    pub fn fail_randomly(&self, p: f64, seed: u64) {
        let mut s = self.state();
        s.random = p.clamp(0.0, 1.0);
        s.seed = seed.max(1);
    }

    /// Lets `n` more writes and deletes through, then fails every request: the process
    /// using the store dies at that moment, as far as the store can tell.
    pub fn crash_after_writes(&self, n: u64) {
        self.state().writes_left = Some(n);
    }

    /// The process that "crashed" is gone; the next one's requests go through again.
    pub fn revive(&self) {
        self.state().writes_left = None;
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.state().injected
    }

    fn fault_for(&self, op: Op, path: &Path) -> Option<Fault> {
        let mut s = self.state();
        let name = path.as_ref();
        let mut hit = None;
        match s.writes_left {
            Some(0) => hit = Some(Fault::Unavailable),
            Some(n) if matches!(op, Op::Put | Op::Complete | Op::Delete) => {
                s.writes_left = Some(n - 1)
            }
            _ => {}
        }
        for r in s.rules.iter_mut() {
            if hit.is_some() {
                break;
            }
            if r.op != op || r.times == 0 || !name.contains(&r.name) {
                continue;
            }
            if r.skip > 0 {
                r.skip -= 1;
                continue;
            }
            r.times -= 1;
            hit = Some(r.fault);
            break;
        }
        if hit.is_none() && s.random > 0.0 {
            // xorshift64: reproducible from the seed.
            s.seed ^= s.seed << 13;
            s.seed ^= s.seed >> 7;
            s.seed ^= s.seed << 17;
            let draw = (s.seed >> 11) as f64 / (1u64 << 53) as f64;
            if draw < s.random {
                hit = Some(Fault::Unavailable);
            }
        }
        if hit.is_some() {
            s.injected += 1;
        }
        hit
    }
}

fn unavailable(path: &Path) -> object_store::Error {
    object_store::Error::Generic {
        store: "flaky",
        source: format!("injected fault: 503 Slow Down on {path}").into(),
    }
}

impl std::fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Flaky({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        match self.fault_for(Op::Put, location) {
            Some(Fault::LandThenFail) => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(unavailable(location))
            }
            Some(_) => Err(unavailable(location)),
            None => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        if self.fault_for(Op::Put, location).is_some() {
            return Err(unavailable(location));
        }
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FlakyUpload {
            inner,
            store: self.clone(),
            path: location.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        match self.fault_for(op, location) {
            Some(Fault::ShortBody) if !options.head => {
                let mut r = self.inner.get_opts(location, options).await?;
                let payload = std::mem::replace(
                    &mut r.payload,
                    GetResultPayload::Stream(futures::stream::empty().boxed()),
                );
                let mut body: Vec<u8> = match payload {
                    GetResultPayload::Stream(s) => {
                        let parts: Vec<Bytes> = s.try_collect().await?;
                        parts.concat()
                    }
                    // Bodies read from local files are not cut; the request fails instead.
                    _ => return Err(unavailable(location)),
                };
                body.truncate(body.len() / 2);
                let body = Bytes::from(body);
                r.payload = GetResultPayload::Stream(
                    futures::stream::once(async move { Ok::<Bytes, _>(body) }).boxed(),
                );
                Ok(r)
            }
            Some(_) => Err(unavailable(location)),
            None => self.inner.get_opts(location, options).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let me = self.clone();
        let checked = locations
            .map(move |p| {
                let p = p?;
                match me.fault_for(Op::Delete, &p) {
                    Some(_) => Err(unavailable(&p)),
                    None => Ok(p),
                }
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let p = prefix.cloned().unwrap_or_default();
        match self.fault_for(Op::List, &p) {
            Some(_) => futures::stream::once(async move { Err(unavailable(&p)) }).boxed(),
            None => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let p = prefix.cloned().unwrap_or_default();
        if self.fault_for(Op::List, &p).is_some() {
            return Err(unavailable(&p));
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if self.fault_for(Op::Put, to).is_some() {
            return Err(unavailable(to));
        }
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        if self.fault_for(Op::Put, to).is_some() {
            return Err(unavailable(to));
        }
        self.inner.rename_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct FlakyUpload {
    inner: Box<dyn MultipartUpload>,
    store: FlakyStore,
    path: Path,
}

#[async_trait]
impl MultipartUpload for FlakyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        match self.store.fault_for(Op::Complete, &self.path) {
            Some(Fault::LandThenFail) => {
                self.inner.complete().await?;
                Err(unavailable(&self.path))
            }
            Some(_) => Err(unavailable(&self.path)),
            None => self.inner.complete().await,
        }
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
