//! A store wrapper that counts requests by kind (GET, PUT, LIST, HEAD, DELETE), so
//! reports can say what a job cost in requests — the unit object storage bills by.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;

use super::link::Link;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

/// Requests made through one location, by kind. A LIST counts one request per page of
/// up to 1000 names; a multipart upload counts its create, each part and its completion.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub get: AtomicU64,
    pub put: AtomicU64,
    pub list: AtomicU64,
    pub head: AtomicU64,
    pub delete: AtomicU64,
    /// Bytes received in GET bodies, and sent in PUT bodies and parts.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub get: u64,
    pub put: u64,
    pub list: u64,
    pub head: u64,
    pub delete: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Requests {
    /// Counts made between `earlier` and `self`.
    pub fn since(&self, earlier: &Requests) -> Requests {
        Requests {
            get: self.get - earlier.get,
            put: self.put - earlier.put,
            list: self.list - earlier.list,
            head: self.head - earlier.head,
            delete: self.delete - earlier.delete,
            bytes_in: self.bytes_in - earlier.bytes_in,
            bytes_out: self.bytes_out - earlier.bytes_out,
        }
    }

    pub fn total(&self) -> u64 {
        self.get + self.put + self.list + self.head + self.delete
    }
}

impl std::ops::AddAssign for Requests {
    fn add_assign(&mut self, o: Requests) {
        self.get += o.get;
        self.put += o.put;
        self.list += o.list;
        self.head += o.head;
        self.delete += o.delete;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

impl RequestCounts {
    pub fn snapshot(&self) -> Requests {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Requests {
            get: l(&self.get),
            put: l(&self.put),
            list: l(&self.list),
            head: l(&self.head),
            delete: l(&self.delete),
            bytes_in: l(&self.bytes_in),
            bytes_out: l(&self.bytes_out),
        }
    }
}

fn inc(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn ObjectStore>,
    pub counts: Arc<RequestCounts>,
    /// Latency and rate of the requests, shared by every view of the location.
    pub link: Arc<Link>,
    /// Whether this layer logs and samples requests (a view over another metered store
    /// only counts: the layer under it logs and samples them already).
    outermost: bool,
}

impl Metered {
    pub fn new(inner: Arc<dyn ObjectStore>, link: Arc<Link>) -> Metered {
        Metered {
            inner,
            counts: Arc::default(),
            link,
            outermost: true,
        }
    }

    /// Counts of its own over a store that is metered already.
    pub fn view(inner: Arc<dyn ObjectStore>, link: Arc<Link>) -> Metered {
        Metered {
            outermost: false,
            ..Metered::new(inner, link)
        }
    }
}

impl std::fmt::Display for Metered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Metered {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let len = payload.content_length() as u64;
        inc(&self.counts.put, 1);
        inc(&self.counts.bytes_out, len);
        let sent = Instant::now();
        let r = self.inner.put_opts(location, payload, opts).await;
        if !self.outermost {
            return r;
        }
        tracing::trace!(
            "PUT {location} ({len} bytes): answered in {:.1?}",
            sent.elapsed()
        );
        if r.is_ok() {
            self.link.upload_sample(len, sent.elapsed());
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        inc(&self.counts.put, 1);
        let sent = Instant::now();
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        if self.outermost {
            tracing::trace!(
                "PUT {location} (multipart upload created): answered in {:.1?}",
                sent.elapsed()
            );
        }
        Ok(Box::new(MeteredUpload {
            inner,
            counts: self.counts.clone(),
            link: self.outermost.then(|| self.link.clone()),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            inc(&self.counts.head, 1);
        } else {
            inc(&self.counts.get, 1);
        }
        let asked = Instant::now();
        let head = options.head;
        let mut r = self.inner.get_opts(location, options).await?;
        if !self.outermost {
            inc(&self.counts.bytes_in, r.range.end - r.range.start);
            return Ok(r);
        }
        let answered = Instant::now();
        tracing::trace!(
            "{} {location} {:?}: answered in {:.1?}",
            if head { "HEAD" } else { "GET" },
            r.range,
            answered - asked
        );
        self.link.latency_sample(answered - asked);
        let len = r.range.end - r.range.start;
        inc(&self.counts.bytes_in, len);
        if let GetResultPayload::Stream(body) = r.payload {
            // The body's time, from the headers to its last byte, gives the rate.
            let (link, mut got) = (self.link.clone(), 0u64);
            let timed = body.inspect(move |chunk| {
                if let Ok(c) = chunk {
                    got += c.len() as u64;
                    if got == len {
                        link.transfer_sample(len, answered.elapsed());
                    }
                }
            });
            r.payload = GetResultPayload::Stream(timed.boxed());
        }
        Ok(r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let counts = self.counts.clone();
        let counted = locations.inspect(move |_| inc(&counts.delete, 1)).boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        inc(&self.counts.list, 1);
        if self.outermost {
            tracing::trace!("LIST {}", prefix.map(|p| p.as_ref()).unwrap_or(""));
        }
        let counts = self.counts.clone();
        let mut n = 0u64;
        self.inner
            .list(prefix)
            .inspect(move |_| {
                n += 1;
                if n.is_multiple_of(1000) {
                    inc(&counts.list, 1);
                }
            })
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        inc(&self.counts.list, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        inc(&self.counts.list, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        inc(&self.counts.put, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        inc(&self.counts.put, 1);
        inc(&self.counts.delete, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct MeteredUpload {
    inner: Box<dyn MultipartUpload>,
    counts: Arc<RequestCounts>,
    /// Where part timings go (only on the outermost layer).
    link: Option<Arc<Link>>,
}

#[async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        inc(&self.counts.put, 1);
        inc(&self.counts.bytes_out, len);
        let part = self.inner.put_part(data);
        let Some(link) = self.link.clone() else {
            return part;
        };
        let sent = Instant::now();
        Box::pin(async move {
            let r = part.await;
            tracing::trace!("PUT part ({len} bytes): answered in {:.1?}", sent.elapsed());
            if r.is_ok() {
                link.upload_sample(len, sent.elapsed());
            }
            r
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        inc(&self.counts.put, 1);
        let sent = Instant::now();
        let r = self.inner.complete().await;
        if self.link.is_some() {
            tracing::trace!("PUT multipart complete: answered in {:.1?}", sent.elapsed());
        }
        r
    }

    async fn abort(&mut self) -> Result<()> {
        inc(&self.counts.delete, 1);
        self.inner.abort().await
    }
}
