//! S3 as offsite registers it (`StoreKind::PROVIDERS`): its storage classes, the codes
//! of its error answers an operator can act on, and what to tell them in S3's terms.

use crate::store::diagnose::{Context, Problem, Vocabulary};
use crate::store::{ProviderInfo, StoreKind};

pub const INFO: ProviderInfo = ProviderInfo {
    kind: StoreKind::S3,
    name: "s3",
    classes: &[
        "STANDARD",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
        "GLACIER",
        "DEEP_ARCHIVE",
    ],
    archived: &["GLACIER", "DEEP_ARCHIVE"],
    class_word: "an S3 storage class",
    vocabulary: Vocabulary {
        store_name: "S3",
        codes: &[
            ("NoSuchBucket", Problem::NoBucket),
            ("InvalidAccessKeyId", Problem::BadCredentials),
            ("SignatureDoesNotMatch", Problem::BadCredentials),
            ("InvalidToken", Problem::BadCredentials),
            ("ExpiredToken", Problem::BadCredentials),
            ("AccessDenied", Problem::AccessDenied),
            ("InvalidObjectState", Problem::Archived),
        ],
        // With no credentials set, the client asks the instance metadata service.
        marks: &[
            ("169.254.169.254", Some(Problem::NoCredentials)),
            ("/latest/api/token", Some(Problem::NoCredentials)),
            ("/latest/meta-data", Some(Problem::NoCredentials)),
            ("bucket does not exist", Some(Problem::NoBucket)),
        ],
        archived_class: "an S3 archive class",
        explain,
    },
};

fn explain(problem: Problem, cx: &Context) -> Option<String> {
    let Context {
        object, endpoint, ..
    } = cx;
    Some(match problem {
        Problem::NoCredentials => {
            let mut m = "no S3 credentials were found: set AWS_ACCESS_KEY_ID and \
                         AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or \
                         run where an instance role or AWS_WEB_IDENTITY_TOKEN_FILE provides them"
                .to_string();
            // A profile is what most people have; the store client does not read them.
            if std::env::var_os("AWS_PROFILE").is_some() {
                m.push_str(
                    "; AWS_PROFILE is set, but profiles are not read: export the profile's \
                     credentials with `eval \"$(aws configure export-credentials --format env)\"`",
                );
            }
            m
        }
        Problem::BadCredentials => format!(
            "the S3 service refused the credentials for {object}: check AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), and AWS_REGION"
        ),
        Problem::AccessDenied => {
            let (doing, grant) = match cx.write {
                true => ("writing", "s3:PutObject and s3:DeleteObject"),
                false => ("reading", "s3:GetObject and s3:ListBucket"),
            };
            format!(
                "access denied {doing} {object}: the credentials are valid but may not do that \
                 here; grant {grant} on this bucket and prefix"
            )
        }
        Problem::NoBucket => {
            "the bucket does not exist: create it first (offsite does not create buckets)".into()
        }
        Problem::ConnectionRefused => format!(
            "nothing answers at {endpoint} (connection refused): is the server running, and is \
             the endpoint (AWS_ENDPOINT_URL) right?"
        ),
        Problem::UnknownHost => format!(
            "the host of {endpoint} is unknown (DNS lookup failed): check the endpoint \
             (AWS_ENDPOINT_URL) and the network"
        ),
        Problem::Archived => return None,
    })
}
