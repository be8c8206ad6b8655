//! Azure Blob as a [`CloudProvider`]: the requests of [`AzureExtra`], the refusal of a
//! lock a container cannot keep, and the container a target needs — checked (version-
//! level immutability) and created.

use async_trait::async_trait;

// The client's helpers and the SDK's types, as the parent module names them.
use super::*;
use crate::store::cloud::{CloudProvider, PartReader, Verdict, Wants};

#[async_trait]
impl CloudProvider for AzureExtra {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn bucket(&self) -> &str {
        &self.container
    }

    /// HEAD: size, tier, rehydration and immutability state.
    async fn state(&self, key: &str) -> Result<ObjectState> {
        let r = self
            .send_raw(Method::Head, self.url(Some(key))?, Headers::new())
            .await
            .map_err(|e| sdk_err(key, "HEAD", &e))?;
        Ok(parse_state(r.headers()))
    }

    /// Rehydrates an archived blob to the hot tier (`days` does not apply: the blob
    /// stays hot until moved back, by a lifecycle rule or by hand).
    async fn restore(&self, key: &str, tier: RetrievalTier, _days: i32) -> Result<RestoreAsked> {
        let priority = match tier {
            RetrievalTier::Bulk | RetrievalTier::Standard => RehydratePriority::Standard,
            RetrievalTier::Expedited => RehydratePriority::High,
        };
        let r = self
            .blob_client(key)
            .await?
            .set_blob_tier(AccessTier::Hot)
            .rehydrate_priority(priority)
            .await;
        match r {
            Ok(_) => Ok(RestoreAsked::Started),
            Err(e) if error_code(&e) == Some("BlobBeingRehydrated") => {
                Ok(RestoreAsked::AlreadyUnderway)
            }
            Err(e) => Err(sdk_err(key, "Set Blob Tier (rehydrate)", &e)),
        }
    }

    /// Creates `key` with `body` under an immutability policy until `until`, in `class`;
    /// never over an existing blob (`AlreadyExists`).
    async fn put_locked(
        &self,
        key: &str,
        body: Vec<u8>,
        class: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let mut req = self
            .blob_client(key)
            .await?
            .put_block_blob(Body::from(bytes::Bytes::from(body)))
            .if_match(IfMatchCondition::NotMatch("*".into()))
            .context(lock_context(mode, until));
        if let Some(c) = class {
            req = req.access_tier(access_tier(c)?);
        }
        created(key, "Put Blob with immutability policy", req.await)
    }

    /// A blob in blocks, committed with its immutability policy by Put Block List;
    /// `part(i)` gives block `i` (0-based) of `parts`. Uncommitted blocks of a failed
    /// attempt are discarded by the service after a week.
    async fn put_locked_multipart(
        &self,
        key: &str,
        parts: usize,
        part: PartReader<'_>,
        class: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let blob = self.blob_client(key).await?;
        let mut blocks = Vec::with_capacity(parts);
        for i in 0..parts {
            let body = part(i).map_err(|e| Error::io(std::env::temp_dir(), e))?;
            // Block ids must all have the same length within a blob.
            let id = BlockId::new(format!("offsite-{i:08}").into_bytes());
            blob.put_block(id.clone(), Body::from(bytes::Bytes::from(body)))
                .await
                .map_err(|e| sdk_err(key, "Put Block", &e))?;
            blocks.push(BlobBlockType::new_uncommitted(id));
        }
        let mut req = blob
            .put_block_list(BlockList { blocks })
            .if_match(IfMatchCondition::NotMatch("*".into()))
            .context(lock_context(mode, until));
        if let Some(c) = class {
            req = req.access_tier(access_tier(c)?);
        }
        created(key, "Put Block List with immutability policy", req.await)
    }

    /// Moves the blob's policy to `until` (only ever later: a locked policy cannot be
    /// shortened, and the caller asks only for later dates).
    async fn extend_lock(&self, key: &str, mode: LockMode, until: DateTime<Utc>) -> Result<()> {
        let mut url = self.url(Some(key))?;
        url.query_pairs_mut()
            .append_pair("comp", "immutabilityPolicies");
        let mut h = Headers::new();
        h.insert(HeaderName::from_static(UNTIL), http_date(until));
        h.insert(HeaderName::from_static(MODE), policy_mode(mode));
        self.send_raw(Method::Put, url, h)
            .await
            .map(|_| ())
            .map_err(|e| sdk_err(key, "Set Blob Immutability Policy", &e))
    }

    /// A container without version-level immutability accepts (Azurite) or refuses each
    /// locked write only later, mid-copy: refused here, before anything is written.
    async fn check_lock_support(&self, url: &str) -> Result<()> {
        let c = self.container_settings().await?;
        if !c.object_lock {
            return Err(Error::Invalid(format!(
                "{url}: container {} has no version-level immutability, so its blobs cannot \
                 be locked; `offsite target verify {url} --object-lock governance` says how \
                 to turn it on. Nothing was changed",
                self.container
            )));
        }
        Ok(())
    }

    async fn verify(&self, url: &str, wants: Wants) -> Result<Verdict> {
        let settings = self.container_settings().await?;
        let c = &self.container;
        let mut missing = Vec::new();
        if !settings.exists {
            missing.push(format!(
                "container {c} does not exist: `offsite target create {}`",
                url
            ));
        } else if (wants.object_lock || wants.versioning) && !settings.object_lock {
            missing.push(format!(
                "container {c} has no version-level immutability (which needs blob versioning \
                 on the account): it is set on the storage account or when the container is \
                 created, through Azure Resource Manager, not the blob API — terraform/azure \
                 does both (`immutable_storage_with_versioning`, `versioning_enabled`), or \
                 `az storage container-rm create --enable-vlw`"
            ));
        }
        Ok(Verdict {
            bucket: c.clone(),
            settings,
            missing,
            changed: Vec::new(),
        })
    }

    /// Creates the container if missing; version-level immutability is set through
    /// Resource Manager only, so what it lacks stays in `missing`.
    async fn create(&self, url: &str, wants: Wants) -> Result<Verdict> {
        let mut changed = Vec::new();
        if !self.container_settings().await?.exists {
            self.create_container().await?;
            changed.push(format!("created container {}", self.container));
        }
        let mut v = self.verify(url, wants).await?;
        v.changed = changed;
        Ok(v)
    }
}
