//! Uploading a finished pack: one conditional PUT below the multipart threshold, else a
//! multipart upload streamed part by part from the spool. Either way through the one
//! retry loop of [`super::retry`], and never over an existing pack: content addressing
//! makes a repeated upload (a retry, or a rerun after a crash) harmless.

use bytes::Bytes;
use object_store::{Attribute, Attributes, PutMultipartOptions, WriteMultipart};

use super::packer::PackData;
use super::retry::retry;
use super::{MULTIPART_PART, Repository};
use crate::format;
use crate::{Error, Id, Result};

/// The most parts of one multipart upload in flight.
const PARTS_CAP: usize = 4;

impl Repository {
    /// Uploads a finished pack under its content name, in storage class `class` (the
    /// store's default when `None`).
    pub async fn save_pack(&self, id: &Id, data: PackData, class: Option<&str>) -> Result<()> {
        let name = format::pack_name(id);
        let len = data.len();
        let spool_err = |e| Error::io(std::env::temp_dir(), e);
        let mut attributes = Attributes::new();
        if let Some(c) = class {
            attributes.insert(Attribute::StorageClass, c.to_string().into());
        }
        if let Some(lock) = self.new_lock()? {
            if len < self.multipart_threshold as u64 {
                let bytes = data.into_bytes().map_err(spool_err)?;
                return self.put_new_locked(&name, bytes, class, lock).await;
            }
            return self
                .save_pack_locked_multipart(&name, &data, class, lock)
                .await;
        }
        if len < self.multipart_threshold as u64 {
            let bytes = data.into_bytes().map_err(spool_err)?;
            return match self.put_new_with(&name, bytes.into(), &attributes).await {
                Ok(()) | Err(Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            };
        }
        // Multipart uploads cannot be conditional in object_store: the first attempt
        // looks (side by side with creating the upload, which costs nothing until it
        // completes), so a pack already there is never rewritten.
        let first = std::sync::atomic::AtomicBool::new(true);
        // A failed attempt is aborted and the whole upload starts again.
        retry(self.clock(), &name, || async {
            let look = first.swap(false, std::sync::atomic::Ordering::Relaxed);
            let r = self
                .multipart_once(&name, &data, len, look, &attributes)
                .await;
            // A completion whose answer was lost (and whose retry then found no upload)
            // still made the object: objects appear whole or not at all.
            if r.is_err() && self.exists(&name).await.unwrap_or(false) {
                return Ok(());
            }
            r
        })
        .await
    }

    async fn multipart_once(
        &self,
        name: &str,
        data: &PackData,
        len: u64,
        look: bool,
        attributes: &Attributes,
    ) -> Result<()> {
        let path = self.loc.path(name);
        let exists = async {
            match look {
                true => self.exists(name).await,
                false => Ok(false),
            }
        };
        let opts = PutMultipartOptions {
            attributes: attributes.clone(),
            ..Default::default()
        };
        let (exists, upload) = tokio::join!(exists, self.loc.store.put_multipart_opts(&path, opts));
        let mut upload = upload.map_err(|e| Error::store_write(name, e))?;
        match exists {
            Ok(false) => {}
            Ok(true) => {
                let _ = upload.abort().await;
                return Ok(());
            }
            Err(e) => {
                let _ = upload.abort().await;
                return Err(e);
            }
        }
        let mut w = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
        let mut at = 0u64;
        while at < len {
            let n = (len - at).min(MULTIPART_PART as u64) as usize;
            // Parts in flight sized to the link (one on a link without latency), while
            // the next is read: at most PARTS_CAP + 1 parts of memory per upload.
            let parts = self.loc.link.in_flight(MULTIPART_PART as u64, 1, PARTS_CAP);
            if let Err(e) = w.wait_for_capacity(parts).await {
                let _ = w.abort().await;
                return Err(Error::store_write(name, e));
            }
            let part = match data.read_at(at, n) {
                Ok(p) => p,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(Error::io(std::env::temp_dir(), e));
                }
            };
            w.put(Bytes::from(part));
            at += n as u64;
        }
        w.finish().await.map_err(|e| Error::store_write(name, e))?;
        Ok(())
    }
}
