//! Azure Blob as offsite registers it (`StoreKind::PROVIDERS`): its access tiers, the
//! codes of its error answers an operator can act on, and what to tell them in Azure's
//! terms.

use crate::store::diagnose::{Context, Problem, Vocabulary};
use crate::store::{ProviderInfo, StoreKind};

pub const INFO: ProviderInfo = ProviderInfo {
    kind: StoreKind::Azure,
    name: "azure",
    classes: &["Hot", "Cool", "Cold", "Archive"],
    archived: &["Archive"],
    class_word: "an Azure access tier",
    vocabulary: Vocabulary {
        store_name: "MicrosoftAzure",
        codes: &[
            ("ContainerNotFound", Problem::NoBucket),
            ("AuthenticationFailed", Problem::BadCredentials),
            ("AuthorizationFailure", Problem::BadCredentials),
            ("AuthorizationPermissionMismatch", Problem::AccessDenied),
            ("BlobArchived", Problem::Archived),
        ],
        // Errors that name no store still carry Azure's hosts and headers.
        marks: &[(".blob.core.", None), ("x-ms-", None)],
        archived_class: "Archive",
        explain,
    },
};

const ENDPOINT: &str =
    "AZURE_STORAGE_ENDPOINT, or AZURITE_BLOB_STORAGE_URL with AZURE_STORAGE_USE_EMULATOR";

fn explain(problem: Problem, cx: &Context) -> Option<String> {
    let Context {
        object, endpoint, ..
    } = cx;
    Some(match problem {
        Problem::NoCredentials | Problem::BadCredentials => format!(
            "the Azure storage account refused the credentials for {object}: check \
             AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or the SAS token)"
        ),
        Problem::AccessDenied => {
            let (doing, role) = match cx.write {
                true => (
                    "writing",
                    "a role with blob write access (Storage Blob Data Contributor)",
                ),
                false => (
                    "reading",
                    "a role with blob read access (Storage Blob Data Reader)",
                ),
            };
            format!(
                "access denied {doing} {object}: the credentials are valid but may not do that \
                 here; grant {role} on this container and prefix"
            )
        }
        Problem::NoBucket => {
            "the container does not exist: create it first (offsite does not create containers)"
                .into()
        }
        Problem::ConnectionRefused => format!(
            "nothing answers at {endpoint} (connection refused): is the server running, and is \
             the endpoint ({ENDPOINT}) right?"
        ),
        Problem::UnknownHost => format!(
            "the host of {endpoint} is unknown (DNS lookup failed): check the endpoint \
             ({ENDPOINT}) and the network"
        ),
        Problem::Archived => return None,
    })
}
