//! A store wrapper that holds chosen requests until a test lets them go, so an
//! interleaving of concurrent writers — or a bound on requests in flight — is forced and
//! observed, not hoped for. A [`Gate`] matches requests by kind and name; each one that
//! arrives waits for a permit the test hands out with [`Gate::release`] or
//! [`Gate::open`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use tokio::sync::{Semaphore, watch};

pub use super::flaky::Op;

/// Where matching requests wait.
#[derive(Debug)]
pub struct Gate {
    op: Op,
    name: String,
    permits: Semaphore,
    arrived: watch::Sender<usize>,
}

impl Gate {
    /// Lets `n` more held (or future) requests through.
    pub fn release(&self, n: usize) {
        self.permits.add_permits(n);
    }

    /// Lets every request through from now on.
    pub fn open(&self) {
        self.permits.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Requests that reached the gate so far (held or let through).
    pub fn arrivals(&self) -> usize {
        *self.arrived.borrow()
    }

    /// Waits until `n` requests have reached the gate.
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.arrived.subscribe();
        // The sender lives as long as the gate, so waiting cannot fail.
        let _ = rx.wait_for(|a| *a >= n).await;
    }

    async fn pass(&self) {
        self.arrived.send_modify(|a| *a += 1);
        if let Ok(p) = self.permits.acquire().await {
            p.forget();
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatedStore {
    inner: Arc<dyn ObjectStore>,
    gates: Arc<Mutex<Vec<Arc<Gate>>>>,
}

impl GatedStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> GatedStore {
        GatedStore {
            inner,
            gates: Arc::default(),
        }
    }

    /// A closed gate for requests of kind `op` on names containing `name`.
    pub fn gate(&self, op: Op, name: &str) -> Arc<Gate> {
        let g = Arc::new(Gate {
            op,
            name: name.to_string(),
            permits: Semaphore::new(0),
            arrived: watch::Sender::new(0),
        });
        self.gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(g.clone());
        g
    }

    async fn wait(&self, op: Op, path: &Path) {
        let gate = self
            .gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|g| g.op == op && path.as_ref().contains(&g.name))
            .cloned();
        if let Some(g) = gate {
            g.pass().await;
        }
    }
}

impl std::fmt::Display for GatedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gated({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for GatedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.wait(Op::Put, location).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.wait(Op::Put, location).await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        self.wait(op, location).await;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Deletes are not held: nothing in the tests needs them to wait.
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        // Listing is a stream made synchronously; it is not held either.
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.wait(Op::Put, to).await;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.wait(Op::Put, to).await;
        self.inner.rename_opts(from, to, options).await
    }
}
