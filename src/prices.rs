//! The price table (`docs/prices.toml`, built in; `--prices FILE` or `OFFSITE_PRICES`
//! replaces it): what a provider charges per class for storage, writes, reads and
//! retrievals, so a dry run and a retrieval plan can say what they will cost before
//! anything is spent. Estimates, in US dollars; the file says where the figures are from.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::store::StoreKind;
use crate::store::cloud::RetrievalTier;
use crate::{Error, Result};

/// The table shipped with offsite.
pub const DEFAULT: &str = include_str!("../docs/prices.toml");

const GB: f64 = 1e9;

/// The table: per provider, by the name the store registration gives it
/// (`StoreKind::PROVIDERS`: `s3`, `azure`).
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct Prices {
    pub providers: BTreeMap<String, Provider>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Provider {
    #[serde(default)]
    pub transfer_out_per_gb: f64,
    #[serde(flatten)]
    pub classes: BTreeMap<String, Class>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    #[serde(default)]
    pub storage_gb_month: f64,
    #[serde(default)]
    pub put_per_1000: f64,
    #[serde(default)]
    pub get_per_1000: f64,
    #[serde(default)]
    pub min_days: u32,
    #[serde(default)]
    pub retrieval: BTreeMap<RetrievalTier, Retrieval>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retrieval {
    pub per_gb: f64,
    pub per_1000: f64,
    /// Fastest and slowest hours until readable.
    pub hours: [f64; 2],
}

/// What retrieving some objects in one tier costs and takes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RetrievalQuote {
    pub tier: RetrievalTier,
    pub usd: f64,
    pub hours: [f64; 2],
}

impl Prices {
    /// The built-in table, or the file named by `path` (or `OFFSITE_PRICES`).
    pub fn load(path: Option<&std::path::Path>) -> Result<Prices> {
        let env = std::env::var_os("OFFSITE_PRICES").map(std::path::PathBuf::from);
        match path.map(std::path::Path::to_path_buf).or(env) {
            None => Prices::parse(DEFAULT, "the built-in price table"),
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
                Prices::parse(&text, &p.display().to_string())
            }
        }
    }

    pub fn parse(text: &str, what: &str) -> Result<Prices> {
        let p: Prices = toml::from_str(text).map_err(|e| {
            Error::Invalid(format!("{what}: {e}(the keys are in docs/prices.toml)"))
        })?;
        let known: Vec<&str> = StoreKind::PROVIDERS.iter().map(|p| p.name).collect();
        if let Some(other) = p.providers.keys().find(|n| !known.contains(&n.as_str())) {
            return Err(Error::Invalid(format!(
                "{what}: [{other}] is no provider offsite knows ({}); the keys are in docs/prices.toml",
                known.join(", ")
            )));
        }
        for (name, c) in p.providers.values().flat_map(|p| &p.classes) {
            let figures = [c.storage_gb_month, c.put_per_1000, c.get_per_1000];
            let tiers = c
                .retrieval
                .values()
                .flat_map(|r| [r.per_gb, r.per_1000, r.hours[0], r.hours[1]]);
            if figures
                .into_iter()
                .chain(tiers)
                .any(|v| !v.is_finite() || v < 0.0)
            {
                return Err(Error::Invalid(format!(
                    "{what}: class {name} has a negative or non-finite price"
                )));
            }
        }
        Ok(p)
    }

    /// The provider of a store (`None` for folders and memory: free, as far as we know).
    pub fn provider(&self, kind: StoreKind) -> Option<&Provider> {
        self.providers.get(kind.provider_name()?)
    }

    /// The class `class` (the default class when `None`) of a store of `kind`.
    pub fn class(&self, kind: StoreKind, class: Option<&str>) -> Option<&Class> {
        let p = self.provider(kind)?;
        p.classes.get(class.or(kind.default_class())?)
    }
}

impl Class {
    /// Retrieval of `objects` objects holding `bytes` in each tier the class offers.
    pub fn quotes(&self, objects: u64, bytes: u64) -> Vec<RetrievalQuote> {
        self.retrieval
            .iter()
            .map(|(tier, r)| RetrievalQuote {
                tier: *tier,
                usd: r.per_gb * bytes as f64 / GB + r.per_1000 * objects as f64 / 1000.0,
                hours: r.hours,
            })
            .collect()
    }

    /// Writes and reads.
    pub fn requests_usd(&self, puts: u64, gets: u64) -> f64 {
        self.put_per_1000 * puts as f64 / 1000.0 + self.get_per_1000 * gets as f64 / 1000.0
    }

    /// A month of `bytes`.
    pub fn month_usd(&self, bytes: u64) -> f64 {
        self.storage_gb_month * bytes as f64 / GB
    }
}

/// What a copy costs, projected from its plan: requests to the source and the target,
/// reading out of the source's region, and a month of the bytes it adds to the target.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CopyCost {
    pub requests_usd: f64,
    pub transfer_usd: f64,
    /// Storage of the added bytes for a month, in the target's data class.
    pub storage_month_usd: f64,
    /// The class priced for the target (its data class, or the default).
    pub target_class: String,
}

impl CopyCost {
    /// Adds `o`'s amounts to these (the class stays).
    pub fn add(&mut self, o: &CopyCost) {
        self.requests_usd += o.requests_usd;
        self.transfer_usd += o.transfer_usd;
        self.storage_month_usd += o.storage_month_usd;
    }
}

impl Prices {
    /// The cost of reading `bytes` in `gets` requests from a `source` store and writing
    /// them in `puts` requests into a `target` store's `class`. Folders and memory cost
    /// nothing; a class missing from the table is priced as the default class.
    pub fn copy_cost(
        &self,
        source: StoreKind,
        target: StoreKind,
        class: Option<&str>,
        (gets, bytes, puts): (u64, u64, u64),
    ) -> CopyCost {
        let mut c = CopyCost {
            target_class: class.unwrap_or("default").to_string(),
            ..Default::default()
        };
        if let Some(s) = self.class(source, None) {
            c.requests_usd += s.requests_usd(0, gets);
        }
        if let Some(p) = self.provider(source) {
            c.transfer_usd = p.transfer_out_per_gb * bytes as f64 / GB;
        }
        if let Some(t) = self
            .class(target, class)
            .or_else(|| self.class(target, None))
        {
            c.requests_usd += t.requests_usd(puts, 0);
            c.storage_month_usd = t.month_usd(bytes);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_parses_and_quotes() {
        let p = Prices::load(None).unwrap();
        let deep = p.class(StoreKind::S3, Some("DEEP_ARCHIVE")).unwrap();
        let q = deep.quotes(10, 10_000_000_000);
        let tiers: Vec<_> = q.iter().map(|q| q.tier).collect();
        assert_eq!(tiers, [RetrievalTier::Bulk, RetrievalTier::Standard]);
        // 10 GB in bulk: 10 × 0.0025 + 10 / 1000 × 0.025.
        assert!((q[0].usd - 0.02525).abs() < 1e-9, "{q:?}");
        assert!(p.class(StoreKind::Azure, None).is_some());
        assert!(p.class(StoreKind::File, None).is_none());
    }

    #[test]
    fn a_copy_is_priced_by_its_requests_transfer_and_storage() {
        let p = Prices::load(None).unwrap();
        // 10 GB read in 2,500 GETs from S3, written in 200 PUTs to Deep Archive.
        let c = p.copy_cost(
            StoreKind::S3,
            StoreKind::S3,
            Some("DEEP_ARCHIVE"),
            (2500, 10_000_000_000, 200),
        );
        assert!(
            (c.requests_usd - (2.5 * 0.0004 + 0.2 * 0.05)).abs() < 1e-9,
            "{c:?}"
        );
        assert!((c.transfer_usd - 0.9).abs() < 1e-9, "{c:?}");
        assert!((c.storage_month_usd - 0.0099).abs() < 1e-9, "{c:?}");
        let free = p.copy_cost(StoreKind::File, StoreKind::File, None, (10, 10, 10));
        assert_eq!(
            free.requests_usd + free.transfer_usd + free.storage_month_usd,
            0.0
        );
    }

    #[test]
    fn a_bad_table_is_refused_with_its_name() {
        let e = Prices::parse("[s3.STANDARD]\nstorage_gb_month = -1\n", "mine.toml").unwrap_err();
        assert!(e.to_string().contains("mine.toml"), "{e}");
        let e = Prices::parse("[s3.STANDARD]\nstorage = 1\n", "mine.toml").unwrap_err();
        assert!(e.to_string().contains("storage"), "{e}");
        // A provider the registration does not name (a typo, or one not supported).
        let e = Prices::parse("[gcs.STANDARD]\nstorage_gb_month = 1\n", "mine.toml").unwrap_err();
        assert!(e.to_string().contains("[gcs]"), "{e}");
        // Each provider by its name.
        let p = Prices::parse("[azure.Cool]\nstorage_gb_month = 0.01\n", "mine.toml").unwrap();
        assert_eq!(p.providers.keys().collect::<Vec<_>>(), ["azure"]);
        assert!(p.class(StoreKind::S3, None).is_none());
    }
}
