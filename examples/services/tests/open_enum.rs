//! docs/EVOLUTION.md's open enum, compiled as the page shows it: an error enum with
//! `#[serde(tag = "kind")]`, a `#[serde(other)]` catch-all and the
//! `x-intercall-unknown-variant` schema extension. A client built against version 1
//! calls a server of version 2, which has a new variant with data: the old client
//! decodes it as `Unknown`. `intercall compat` judges the two versions' real manifests
//! (schemars' output) safe, and the same change to an externally or adjacently tagged
//! enum, which serde cannot decode, breaking.
//!
//! `cargo test -p example-services --features schema`

use intercall::manifest::Manifest;
use intercall_cli::compat::{self, Class};
use serde::{Deserialize, Serialize};

/// Version 1, released: its clients are still running.
mod v1 {
    use intercall::CallError;
    use serde::{Deserialize, Serialize};

    // The recipe, as docs/EVOLUTION.md writes it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, thiserror::Error)]
    #[serde(tag = "kind")] // internally tagged
    #[schemars(extend("x-intercall-unknown-variant" = "Unknown"))] // tells `compat`
    pub enum ShelfError {
        #[error("no product `{id}`")]
        NotFound { id: String },
        #[error("invalid: {reason}")]
        Invalid { reason: String },
        #[error("unavailable: {error}")]
        Unavailable { error: CallError },
        /// A variant this version does not know: a newer server's.
        #[error("a failure this client does not know")]
        #[serde(other)]
        Unknown,
    }

    impl From<CallError> for ShelfError {
        fn from(error: CallError) -> Self {
            ShelfError::Unavailable { error }
        }
    }

    /// Takes a product off the shelf.
    #[intercall::service]
    pub trait Shelf {
        /// Takes one.
        async fn take(&self, id: String) -> Result<String, ShelfError>;
    }
}

/// Version 2, being deployed: one more failure, with data.
mod v2 {
    use intercall::CallError;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, thiserror::Error)]
    #[serde(tag = "kind")]
    #[schemars(extend("x-intercall-unknown-variant" = "Unknown"))]
    pub enum ShelfError {
        #[error("no product `{id}`")]
        NotFound { id: String },
        #[error("invalid: {reason}")]
        Invalid { reason: String },
        #[error("unavailable: {error}")]
        Unavailable { error: CallError },
        /// New in version 2.
        #[error("`{id}` is gone since {since}")]
        Gone { id: String, since: String },
        #[error("a failure this client does not know")]
        #[serde(other)]
        Unknown,
    }

    impl From<CallError> for ShelfError {
        fn from(error: CallError) -> Self {
            ShelfError::Unavailable { error }
        }
    }

    /// Takes a product off the shelf.
    #[intercall::service]
    pub trait Shelf {
        /// Takes one.
        async fn take(&self, id: String) -> Result<String, ShelfError>;
    }

    /// Every product is gone, except `p-1`, and `p-404` was never there.
    pub struct EmptyShelf;

    impl Shelf for EmptyShelf {
        async fn take(&self, id: String) -> Result<String, ShelfError> {
            match id.as_str() {
                "p-1" => Ok(id),
                "p-404" => Err(ShelfError::NotFound { id }),
                _ => Err(ShelfError::Gone { id, since: "2026-01-01".to_owned() }),
            }
        }
    }
}

#[tokio::test]
async fn an_old_client_decodes_a_newer_servers_new_variant_as_unknown() {
    use v1::Shelf as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(intercall::serve(listener, v2::ShelfServer::new(v2::EmptyShelf).into_router()));
    let invoker = intercall::Invoker::builder().service("Shelf", url).retries(false).build().unwrap();
    let old = v1::ShelfProxy::new(invoker).unwrap();

    assert_eq!(old.take("p-1".to_owned()).await.unwrap(), "p-1");
    let known = old.take("p-404".to_owned()).await.unwrap_err();
    assert_eq!(known, v1::ShelfError::NotFound { id: "p-404".to_owned() }, "a variant both versions have");
    let unknown = old.take("p-2".to_owned()).await.unwrap_err();
    assert_eq!(unknown, v1::ShelfError::Unknown, "version 2's `Gone`, with its data, read by version 1");
}

#[test]
fn compat_judges_a_variant_added_to_the_open_enum_safe() {
    let old = Manifest::new(vec![v1::ShelfServer::manifest()]);
    let new = Manifest::new(vec![v2::ShelfServer::manifest()]);
    let error = old.services[0].methods[0].error.schema.as_ref().unwrap();
    assert_eq!(error[compat::OPEN_ENUM], "Unknown", "schemars writes the extension: {error:#}");
    let changes = compat::compare(&old, &new);
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert!(!compat::is_breaking(&changes), "{lines:#?}");
    let gone = changes.iter().find(|change| change.at == "Shelf.take -> error ::Gone").expect("the new variant");
    assert_eq!(gone.class, Class::Safe);
    assert!(gone.reason.contains("as its `Unknown` variant"), "{}", gone.reason);
}

/// The same two versions without `#[serde(tag)]`: `{"Gone": {..}}` cannot be decoded
/// as a unit variant, and `compat` says so.
mod external {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[schemars(extend("x-intercall-unknown-variant" = "Unknown"))]
    pub enum Old {
        NotFound {
            id: String,
        },
        #[serde(other)]
        Unknown,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[schemars(extend("x-intercall-unknown-variant" = "Unknown"))]
    pub enum New {
        NotFound {
            id: String,
        },
        Gone {
            since: String,
        },
        Moved,
        #[serde(other)]
        Unknown,
    }
}

/// A manifest of one method whose error type's schema is `T`'s, from schemars.
fn manifest_with_error<T: schemars::JsonSchema>(rust_type: &str) -> Manifest {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    serde_json::from_value(serde_json::json!({"format": 1, "services": [{"name": "Shelf", "methods": [{
        "name": "take", "arguments": [],
        "result": {"rust_type": "String", "schema": {"type": "string"}},
        "error": {"rust_type": rust_type, "schema": schema}}]}]}))
    .unwrap()
}

#[test]
fn an_externally_tagged_enum_is_open_to_new_unit_variants_only() {
    let gone = serde_json::to_value(external::New::Gone { since: "today".to_owned() }).unwrap();
    assert!(serde_json::from_value::<external::Old>(gone).is_err(), "serde cannot skip the data");
    let moved = serde_json::to_value(external::New::Moved).unwrap();
    assert_eq!(serde_json::from_value::<external::Old>(moved).unwrap(), external::Old::Unknown);

    let changes =
        compat::compare(&manifest_with_error::<external::Old>("Old"), &manifest_with_error::<external::New>("New"));
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    let class = |at: &str| changes.iter().find(|change| change.at == at).map(|change| change.class);
    assert_eq!(class("Shelf.take -> error ::Gone"), Some(Class::Breaking), "{lines:#?}");
    assert_eq!(class("Shelf.take -> error ::Moved"), Some(Class::Safe), "{lines:#?}");
}

/// An adjacently tagged enum (`tag` and `content`) catches only unit variants too: its
/// `#[serde(other)]` variant is read with the content, which a unit cannot take.
/// `compat` tells it from the schema (each variant's data under one member).
#[test]
fn an_adjacently_tagged_enum_is_open_to_new_unit_variants_only() {
    #[derive(Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[serde(tag = "kind", content = "data")]
    #[schemars(extend("x-intercall-unknown-variant" = "Unknown"))]
    enum Old {
        NotFound {
            id: String,
        },
        Invalid {
            reason: String,
        },
        #[serde(other)]
        Unknown,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[serde(tag = "kind", content = "data")]
    #[schemars(extend("x-intercall-unknown-variant" = "Unknown"))]
    enum New {
        NotFound {
            id: String,
        },
        Invalid {
            reason: String,
        },
        Gone {
            since: String,
        },
        Moved,
        #[serde(other)]
        Unknown,
    }
    let gone = serde_json::to_value(New::Gone { since: "today".to_owned() }).unwrap();
    assert!(serde_json::from_value::<Old>(gone).is_err(), "serde cannot take the data");
    assert_eq!(serde_json::from_value::<Old>(serde_json::to_value(New::Moved).unwrap()).unwrap(), Old::Unknown);

    let changes = compat::compare(&manifest_with_error::<Old>("Old"), &manifest_with_error::<New>("New"));
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    let class = |at: &str| changes.iter().find(|change| change.at == at).map(|change| change.class);
    assert_eq!(class("Shelf.take -> error ::Gone"), Some(Class::Breaking), "{lines:#?}");
    assert_eq!(class("Shelf.take -> error ::Moved"), Some(Class::Safe), "{lines:#?}");
}
