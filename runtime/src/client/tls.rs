//! TLS for the built-in transport (feature `tls`): which roots a client trusts, and the
//! certificate it presents.
//!
//! Roots: the platform's, as `rustls-native-certs` reads them (the OS store, or
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` when set), plus a service's `ca_file`. When the
//! platform yields no root at all and neither variable is set (a container built
//! from scratch, without `ca-certificates`), the webpki bundle compiled into the binary
//! stands in, with a warning: public services keep working there, as they did before
//! this crate read the platform's roots. A variable that is set is the operator's
//! choice, and is never overridden by the bundle.
//!
//! The PEM files of a configuration are read once, while it is validated, so a missing
//! or malformed file is a start-up error at its line in `services.toml`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// The TLS settings of one service, as `services.toml` gives them, with the files
/// already read.
///
/// Two settings are equal when they name the same files, so services with the same
/// `ca_file` and client certificate share one pool.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// PEM roots trusted beside the platform's.
    ca_file: Option<PathBuf>,
    /// The client certificate chain and its key (mTLS), both PEM.
    client_identity: Option<(PathBuf, PathBuf)>,
    #[cfg(feature = "tls")]
    loaded: Loaded,
}

/// What the files held when the configuration was read.
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
struct Loaded {
    roots: Option<std::sync::Arc<rustls::RootCertStore>>,
    identity: Option<std::sync::Arc<rustls::sign::CertifiedKey>>,
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &Self) -> bool {
        (&self.ca_file, &self.client_identity) == (&other.ca_file, &other.client_identity)
    }
}

impl Eq for TlsSettings {}

impl Hash for TlsSettings {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.ca_file, &self.client_identity).hash(state);
    }
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_file", &self.ca_file)
            .field("client_identity", &self.client_identity)
            .finish()
    }
}

/// Which key of a table a TLS error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsKey {
    CaFile,
    ClientCert,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    ClientKey,
}

/// The PEM files of one configuration, each read once however many services name it,
/// and the directory relative paths start from.
pub(crate) struct PemFiles {
    /// The directory of the services.toml file; none for text or a builder (the
    /// current directory).
    base: Option<PathBuf>,
    #[cfg(feature = "tls")]
    roots: std::collections::HashMap<PathBuf, std::sync::Arc<rustls::RootCertStore>>,
    #[cfg(feature = "tls")]
    identities: std::collections::HashMap<(PathBuf, PathBuf), std::sync::Arc<rustls::sign::CertifiedKey>>,
}

impl PemFiles {
    /// Files named relative to `base` (the services.toml file's directory), or to the
    /// current directory when `None`.
    pub(crate) fn new(base: Option<&Path>) -> Self {
        Self {
            base: base.map(Path::to_owned),
            #[cfg(feature = "tls")]
            roots: Default::default(),
            #[cfg(feature = "tls")]
            identities: Default::default(),
        }
    }

    /// `path` as written in a table, resolved against the base directory.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        match &self.base {
            Some(base) => base.join(path),
            None => PathBuf::from(path),
        }
    }

    /// Reads the files a table names (resolved paths) into its settings; an error
    /// names the key whose file is wrong.
    pub(crate) fn settings(
        &mut self,
        ca_file: Option<PathBuf>,
        client_identity: Option<(PathBuf, PathBuf)>,
    ) -> Result<TlsSettings, (TlsKey, String)> {
        #[cfg(feature = "tls")]
        {
            let roots = ca_file.as_deref().map(|path| self.roots(path)).transpose().map_err(|m| (TlsKey::CaFile, m))?;
            let identity = client_identity.as_ref().map(|(cert, key)| self.identity(cert, key)).transpose()?;
            Ok(TlsSettings { ca_file, client_identity, loaded: Loaded { roots, identity } })
        }
        #[cfg(not(feature = "tls"))]
        {
            let key = if ca_file.is_some() { TlsKey::CaFile } else { TlsKey::ClientCert };
            match (ca_file, client_identity) {
                (None, None) => Ok(TlsSettings::default()),
                _ => Err((key, "needs intercall's `tls` feature; enable it, or remove the key".to_owned())),
            }
        }
    }
}

#[cfg(feature = "tls")]
mod load {
    use std::path::Path;
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::pki_types::pem::{self, PemObject};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::sign::CertifiedKey;

    use super::{PemFiles, TlsKey};

    impl PemFiles {
        /// The CA certificates in a PEM file, as a root store.
        pub(super) fn roots(&mut self, path: &Path) -> Result<Arc<RootCertStore>, String> {
            if let Some(roots) = self.roots.get(path) {
                return Ok(Arc::clone(roots));
            }
            let mut roots = RootCertStore::empty();
            for (n, cert) in certificates(path)?.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    format!("certificate {} in `{}` cannot be a trusted root: {e}", n + 1, path.display())
                })?;
            }
            let roots = Arc::new(roots);
            self.roots.insert(path.to_owned(), Arc::clone(&roots));
            Ok(roots)
        }

        /// A client certificate chain and its key, checked against each other.
        pub(super) fn identity(&mut self, cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, (TlsKey, String)> {
            let paths = (cert.to_owned(), key.to_owned());
            if let Some(identity) = self.identities.get(&paths) {
                return Ok(Arc::clone(identity));
            }
            let chain = certificates(cert).map_err(|m| (TlsKey::ClientCert, m))?;
            let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                let why = match e {
                    pem::Error::NoItemsFound => {
                        "holds no PEM private key (`-----BEGIN PRIVATE KEY-----`, or an RSA or EC key)".to_owned()
                    }
                    other => problem(other),
                };
                (TlsKey::ClientKey, format!("`{}` {why}", key.display()))
            })?;
            let provider = rustls::crypto::ring::default_provider();
            let identity = CertifiedKey::from_der(chain, der, &provider).map_err(|e| {
                let message = match e {
                    rustls::Error::InconsistentKeys(_) => {
                        format!(
                            "the key in `{}` is not the key of the certificate in `{}`",
                            key.display(),
                            cert.display()
                        )
                    }
                    other => format!("the key in `{}` cannot sign: {other}", key.display()),
                };
                (TlsKey::ClientKey, message)
            })?;
            let identity = Arc::new(identity);
            self.identities.insert(paths, Arc::clone(&identity));
            Ok(identity)
        }
    }

    /// Every certificate in a PEM file; none is an error.
    fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("`{}` {}", path.display(), problem(e)))?;
        match certs.is_empty() {
            true => Err(format!("`{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)", path.display())),
            false => Ok(certs),
        }
    }

    /// Why a PEM file could not be read, after its path.
    fn problem(error: pem::Error) -> String {
        match error {
            pem::Error::Io(e) => format!("cannot be read: {e}"),
            other => format!("is not valid PEM: {other}"),
        }
    }
}

/// The HTTPS-or-HTTP connector for `settings`. With `http2`, ALPN offers h2 alone, as
/// hyper speaks only h2 then; else http/1.1 alone.
#[cfg(feature = "tls")]
pub(crate) fn connector<C>(
    settings: &TlsSettings,
    http2: bool,
    http: C,
) -> Result<hyper_rustls::HttpsConnector<C>, crate::Error> {
    use std::sync::Arc;

    let mut roots = platform_roots();
    if let Some(own) = &settings.loaded.roots {
        roots.roots.extend(own.roots.iter().cloned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let mut config = match &settings.loaded.identity {
        Some(identity) => {
            let resolver = rustls::sign::SingleCertAndKey::from(Arc::clone(identity));
            builder.with_client_cert_resolver(Arc::new(resolver))
        }
        None => builder.with_no_client_auth(),
    };
    // One protocol offered, the one hyper will speak (hyper-rustls's builder would
    // offer none for HTTP/1.1, and a server that requires ALPN would refuse that).
    config.alpn_protocols = vec![if http2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    // `https://` through TLS, `http://` in the clear.
    Ok(hyper_rustls::HttpsConnector::from((http, config)))
}

/// The platform's roots, or the webpki bundle when the platform has none and no
/// variable chose them (see the module's documentation).
#[cfg(feature = "tls")]
fn platform_roots() -> rustls::RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!("intercall: a platform root certificate could not be read: {error}");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(found.certs);
    if unusable > 0 {
        tracing::debug!("intercall: {unusable} platform root certificates were not usable and are ignored");
    }
    let chosen = ["SSL_CERT_FILE", "SSL_CERT_DIR"].iter().any(|name| std::env::var_os(name).is_some());
    if roots.is_empty() && !chosen {
        tracing::warn!(
            "intercall: the platform has no root certificates (install ca-certificates, or set SSL_CERT_FILE); trusting the webpki roots built into this binary"
        );
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

/// What a TLS failure in `error`'s chain means for the reader, if there is one: the
/// chain says `invalid peer certificate: UnknownIssuer`, which names the cause but not
/// the fix.
#[cfg(feature = "tls")]
pub(crate) fn hint(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use rustls::{AlertDescription, CertificateError, Error};
    let mut source = Some(error);
    while let Some(error) = source {
        // hyper-rustls wraps rustls's error in an `io::Error` inside another.
        let mut inner = Some(error);
        while let Some(error) = inner.filter(|e| !e.is::<Error>()) {
            inner = error.downcast_ref::<std::io::Error>().and_then(|e| e.get_ref()).map(|e| e as _);
        }
        let tls = inner.and_then(|e| e.downcast_ref::<Error>());
        match tls {
            Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                return Some(
                    "the server's certificate was not trusted: no trusted CA issued it (add its CA with `ca_file`)",
                );
            }
            Some(Error::InvalidCertificate(_)) => return Some("the server's certificate was not trusted"),
            Some(Error::AlertReceived(
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown,
            )) => {
                return Some(
                    "the server refused this client's certificate, or its absence (set `client_cert` and `client_key`)",
                );
            }
            _ => {}
        }
        source = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "tls"))]
    #[test]
    fn every_tls_key_needs_the_feature() {
        use crate::Invoker;
        const SERVICE: &str = "[services.Catalog]\nurl = \"http://127.0.0.1:1/\"\n";
        for key in ["ca_file = \"ca.pem\"", "client_cert = \"c.pem\"\nclient_key = \"k.pem\""] {
            let error = Invoker::from_toml(&format!("{SERVICE}{key}\n")).expect_err("no TLS in this build");
            let message = error.to_string();
            assert!(message.contains("line 3") && message.contains("`tls` feature"), "{message}");
            let error = Invoker::from_toml(&format!("[defaults]\n{key}\n")).expect_err("no TLS in this build");
            assert!(error.to_string().contains("`defaults."), "{error}");
        }
    }

    #[test]
    fn settings_are_equal_when_they_name_the_same_files() {
        let named = |ca: &str| super::TlsSettings { ca_file: Some(ca.into()), ..Default::default() };
        // What was read is not compared: the same files mean the same pool.
        assert_eq!(named("/etc/ssl/ca.pem"), named("/etc/ssl/ca.pem"));
        assert_ne!(named("/etc/ssl/ca.pem"), named("/etc/ssl/other.pem"));
        assert_ne!(named("/etc/ssl/ca.pem"), super::TlsSettings::default());
    }
}
