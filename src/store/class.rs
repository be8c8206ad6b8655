//! Storage classes (S3) and access tiers (Azure) offsite may put data packs in, as each
//! provider's registration lists them (`StoreKind::PROVIDERS`), and which of them are
//! archived: not readable until restored (S3 RestoreObject) or rehydrated (Azure tier
//! change), hours later and at a price.

use super::StoreKind;

/// Whether `class` (as a provider spells it) is archived: readable only after a retrieval.
pub fn is_archived(class: &str) -> bool {
    StoreKind::PROVIDERS
        .iter()
        .any(|p| p.archived.contains(&class))
}

/// `class` checked against the store's provider, and spelt as the provider does
/// (`deep_archive` → `DEEP_ARCHIVE`); in memory (tests), any provider's class.
pub fn check(kind: StoreKind, class: &str) -> Result<String, String> {
    let spelt = |classes: &[&str]| {
        (classes.iter())
            .find(|c| c.eq_ignore_ascii_case(class))
            .map(|c| c.to_string())
    };
    match (kind, kind.provider()) {
        (StoreKind::File, _) => Err(
            "a folder has no storage classes: keep the target in a folder without \
             --data-class, or put it in a bucket"
                .to_string(),
        ),
        (_, Some(p)) => spelt(p.classes).ok_or_else(|| {
            format!(
                "{class:?} is not {}: one of {}",
                p.class_word,
                p.classes.join(", ")
            )
        }),
        (_, None) => (StoreKind::PROVIDERS.iter())
            .find_map(|p| spelt(p.classes))
            .ok_or_else(|| format!("{class:?} is no provider's storage class or tier")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_checked_per_store_and_spelt_as_the_provider_does() {
        assert_eq!(
            check(StoreKind::S3, "deep_archive").unwrap(),
            "DEEP_ARCHIVE"
        );
        assert_eq!(check(StoreKind::Azure, "archive").unwrap(), "Archive");
        assert!(
            check(StoreKind::S3, "Archive")
                .unwrap_err()
                .contains("S3 storage class")
        );
        assert!(
            check(StoreKind::Azure, "GLACIER")
                .unwrap_err()
                .contains("access tier")
        );
        assert!(
            check(StoreKind::File, "GLACIER")
                .unwrap_err()
                .contains("folder")
        );
        assert!(is_archived("DEEP_ARCHIVE") && is_archived("Archive"));
        assert!(!is_archived("GLACIER_IR") && !is_archived("Cool"));
    }
}
