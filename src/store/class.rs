//! Storage classes (S3) and access tiers (Azure) offsite may put data packs in, and
//! which of them are archived: not readable until restored (S3 RestoreObject) or
//! rehydrated (Azure tier change), hours later and at a price.

use super::StoreKind;

/// S3 classes for data packs, as the S3 API spells them.
pub const S3_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
];

/// Azure access tiers for data packs.
pub const AZURE_TIERS: &[&str] = &["Hot", "Cool", "Cold", "Archive"];

/// Whether objects in `class` must be restored before they can be read.
pub fn is_archived(class: &str) -> bool {
    matches!(class, "GLACIER" | "DEEP_ARCHIVE" | "Archive")
}

/// Checks that a store of `kind` can put data packs in `class`, returning the class as
/// the provider spells it (`deep_archive` → `DEEP_ARCHIVE`, `archive` → `Archive`).
pub fn check(kind: StoreKind, class: &str) -> Result<String, String> {
    let s3 = S3_CLASSES.iter().find(|c| c.eq_ignore_ascii_case(class));
    let azure = AZURE_TIERS.iter().find(|c| c.eq_ignore_ascii_case(class));
    match (kind, s3, azure) {
        (StoreKind::S3, Some(c), _) | (StoreKind::Azure, _, Some(c)) => Ok(c.to_string()),
        // Tests put classes on the in-memory store, which keeps them as attributes.
        (StoreKind::Memory, Some(c), _) | (StoreKind::Memory, None, Some(c)) => Ok(c.to_string()),
        (StoreKind::File, ..) => Err(
            "a folder has no storage classes: keep the target in a folder without \
             --data-class, or put it in a bucket"
                .to_string(),
        ),
        (StoreKind::S3, ..) => Err(format!(
            "{class:?} is not an S3 storage class: one of {}",
            S3_CLASSES.join(", ")
        )),
        (StoreKind::Azure, ..) | (StoreKind::Memory, ..) => Err(format!(
            "{class:?} is not an Azure access tier: one of {}",
            AZURE_TIERS.join(", ")
        )),
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
