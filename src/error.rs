//! The library's one public error type. Every variant that concerns stored data names
//! the object, and its message says what the operator can do about it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{url}: not a repository location: {reason}")]
    InvalidLocation { url: String, reason: String },

    #[error(
        "{url}: no offsite repository here (no `config` object); create one with `offsite init`"
    )]
    NoRepository { url: String },

    #[error("{url}: a repository already exists here; nothing was changed")]
    AlreadyInitialized { url: String },

    #[error(
        "{url}: wrong password: it opens none of the {keys} key(s) in keys/; nothing was written"
    )]
    WrongPassword { url: String, keys: usize },

    #[error(
        "no password given: set OFFSITE_PASSWORD, pass --password-file FILE, or run on a terminal to be asked"
    )]
    NoPassword,

    #[error("object {object} not found in the store")]
    NotFound { object: String },

    #[error("object {object} already exists; it was not overwritten")]
    AlreadyExists { object: String },

    #[error("{}", crate::store::diagnose::message(object, source, *write))]
    Store {
        object: String,
        #[source]
        source: object_store::Error,
        /// Whether the failed request was a write (access denied means something else).
        write: bool,
    },

    #[error(
        "object {object} is damaged: {what}. It was not changed; run `offsite check --read-data` to see everything affected"
    )]
    Corrupt {
        object: String,
        what: String,
        /// The blob that failed, when one did: carried as data, so a caller acts on it
        /// without reading it back out of the message.
        blob: Option<crate::Id>,
    },

    #[error(
        "object {object} has format version {found}, this offsite reads up to {supported}: upgrade offsite to read it"
    )]
    UnsupportedVersion {
        object: String,
        found: u16,
        supported: u16,
    },

    #[error("object {object}: {what}; is this an offsite repository?")]
    Foreign { object: String, what: String },

    #[error("object {object}: the store returned fewer bytes than asked for")]
    ShortRead { object: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Invalid(String),

    /// A table spilled past the memory budget could not be read back (`repo/table`).
    #[error("{0}")]
    Spill(String),

    /// A provider request object_store cannot make (object lock, restores, bucket
    /// settings) failed; `what` names the request and says what to do.
    #[error("{object}: {what}")]
    Cloud {
        object: String,
        what: String,
        /// The provider's error code (`AccessDenied`, `InvalidObjectState`, …).
        code: String,
    },

    /// The object sits in an archive class and must be restored before it is read.
    #[error(
        "object {object} is archived ({class}) and cannot be read until it is restored: \
         run `offsite restore` with `--retrieve bulk|standard|expedited` (it prints the cost first)"
    )]
    Archived { object: String, class: String },

    #[error("no restore point matches {what}; `offsite points` lists them")]
    NoSuchPoint { what: String },

    #[error("{0}")]
    Locked(String),

    #[error("{0}")]
    Internal(String),

    /// A store error met while opening or creating the repository at `url`: the URL
    /// says which bucket, container or folder the message is about.
    #[error("{url}: {source}")]
    At {
        url: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    pub fn corrupt(object: impl Into<String>, what: impl Into<String>) -> Error {
        Error::Corrupt {
            object: object.into(),
            what: what.into(),
            blob: None,
        }
    }

    /// Blob `blob` inside `object` (a pack) is damaged: the message says `what`.
    pub fn corrupt_blob(
        object: impl Into<String>,
        blob: crate::Id,
        what: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            object: object.into(),
            what: what.into(),
            blob: Some(blob),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// This error, said about the repository at `url` when it is a store error (others
    /// name their object or location already).
    pub fn at(self, url: &str) -> Error {
        match self {
            e @ Error::Store { .. } => Error::At {
                url: url.to_string(),
                source: Box::new(e),
            },
            e => e,
        }
    }

    /// The stored object the error is about, when it is about one.
    pub fn object(&self) -> Option<&str> {
        match self {
            Error::NotFound { object }
            | Error::AlreadyExists { object }
            | Error::Store { object, .. }
            | Error::Corrupt { object, .. }
            | Error::UnsupportedVersion { object, .. }
            | Error::Foreign { object, .. }
            | Error::ShortRead { object }
            | Error::Cloud { object, .. }
            | Error::Archived { object, .. } => Some(object),
            _ => None,
        }
    }

    /// Maps a failed read of `object` to the variant an operator can act on.
    pub fn store(object: impl Into<String>, source: object_store::Error) -> Error {
        Error::from_store(object.into(), source, false)
    }

    /// Maps a failed write of `object`: a write cannot miss its object, so "not found"
    /// means the bucket or container is missing.
    pub fn store_write(object: impl Into<String>, source: object_store::Error) -> Error {
        Error::from_store(object.into(), source, true)
    }

    fn from_store(object: String, source: object_store::Error, write: bool) -> Error {
        use crate::store::diagnose::{Problem, Said};
        let said = Said::of(&source);
        let archived = if write { None } else { said.archived_class() };
        match source {
            object_store::Error::NotFound { .. }
                if !write && said.problem() != Some(Problem::NoBucket) =>
            {
                Error::NotFound { object }
            }
            object_store::Error::AlreadyExists { .. } => Error::AlreadyExists { object },
            _ if archived.is_some() => Error::Archived {
                object,
                class: archived.unwrap_or_default().to_string(),
            },
            source => Error::Store {
                object,
                source,
                write,
            },
        }
    }
}
