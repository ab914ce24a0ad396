//! TLS for the built-in transport, over real TLS servers on loopback: a CA and
//! certificates made by each test (rcgen), the served router behind tokio-rustls and
//! hyper-util's server. A private CA is trusted through `ca_file`, refused without it
//! with an error that says so, client certificates (mTLS) are shown when configured,
//! `SSL_CERT_FILE` names the platform's roots (in a child process: the environment is
//! process-wide), and `http2 = true` speaks h2 through ALPN. Also every mistake in
//! `ca_file`, `client_cert` and `client_key`: a start-up error at its key.
#![cfg(feature = "tls")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use example_api::{Catalog, CatalogError, CatalogProxy, CatalogServer, Product};
use example_services::InMemoryCatalog;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use intercall::{CallError, Invoker};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

// ---- certificates ------------------------------------------------------------------------

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate signed by a [`Ca`], with its key.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key")).expect("a CA");
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for the server at 127.0.0.1, or for a client.
    fn leaf(&self, purpose: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, "intercall test");
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("a signed leaf");
        Leaf { cert, key }
    }

    fn server(&self) -> Leaf {
        self.leaf(ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self) -> Leaf {
        self.leaf(ExtendedKeyUsagePurpose::ClientAuth)
    }
}

impl Leaf {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.der().clone()]
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key.serialize_der()).into()
    }
}

/// A directory of one test's files, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("intercall-tls-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temp dir");
        Self { path }
    }

    /// Writes `name` and returns its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).expect("write a temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---- the TLS server ------------------------------------------------------------------------

/// The catalog served over TLS on a loopback port until dropped.
struct TlsServer {
    addr: SocketAddr,
    /// The protocol ALPN chose, per completed handshake.
    alpn: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsServer {
    /// Serves with `leaf`'s certificate; with `client_ca`, requires a client
    /// certificate issued by it.
    async fn start(leaf: &Leaf, client_ca: Option<&Ca>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.issuer.der().clone()).expect("a client CA");
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .expect("a client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(leaf.chain(), leaf.key_der()).expect("a server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let router = CatalogServer::new(InMemoryCatalog::default()).into_router();
        let alpn = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&alpn);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, router, seen) = (acceptor.clone(), router.clone(), Arc::clone(&seen));
                tokio::spawn(async move {
                    // A refused handshake (an untrusted client) ends this connection only.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    seen.lock().unwrap().push(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                    let service = TowerToHyperService::new(router);
                    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Self { addr, alpn, task }
    }

    fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    fn alpn(&self) -> Vec<Option<Vec<u8>>> {
        self.alpn.lock().unwrap().clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- calls ---------------------------------------------------------------------------------

/// One call that only the real server answers: it assigns the product an id.
async fn save(invoker: Invoker) -> Result<Product, CatalogError> {
    let catalog = CatalogProxy::new(invoker).expect("Catalog is configured");
    let lamp = Product { id: String::new(), name: "desk lamp".into(), price_cents: 2500, tags: vec![] };
    catalog.save(lamp).await
}

#[track_caller]
fn saved(result: Result<Product, CatalogError>) {
    match result {
        Ok(product) => assert!(!product.id.is_empty() && product.name == "desk lamp", "{product:?}"),
        Err(e) => panic!("the call failed: {e}"),
    }
}

/// The transport failure of a call that must fail.
#[track_caller]
fn failed(result: Result<Product, CatalogError>) -> CallError {
    match result {
        Err(CatalogError::Unavailable(error)) => error,
        other => panic!("expected a transport failure, got {other:?}"),
    }
}

#[track_caller]
fn assert_mentions(message: &str, needles: &[&str]) {
    let missing: Vec<_> = needles.iter().filter(|n| !message.contains(**n)).collect();
    assert!(missing.is_empty(), "the message lacks {missing:?}:\n{message}");
}

// ---- trust ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_file_relative_to_the_config_file() {
    let ca = Ca::new("private CA");
    let server = TlsServer::start(&ca.server(), None).await;
    let dir = TempDir::new("relative-ca-file");
    dir.file("private-ca.pem", &ca.pem());
    let text = format!("[services.Catalog]\nurl = \"{}\"\nca_file = \"private-ca.pem\"\n", server.url());
    let config = dir.file("services.toml", &text);

    // The relative path starts at the file's directory, not at the current one.
    assert_ne!(std::env::current_dir().unwrap(), dir.path);
    saved(save(Invoker::from_file(&config).expect("a valid config")).await);
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_the_builder_in_defaults_or_per_service() {
    let ca = Ca::new("private CA");
    let server = TlsServer::start(&ca.server(), None).await;
    let dir = TempDir::new("builder-ca-file");
    // Several certificates in one file: an unrelated CA first.
    let bundle = dir.file("bundle.pem", &format!("{}{}", Ca::new("another CA").pem(), ca.pem()));

    let all = Invoker::builder().service("Catalog", server.url()).ca_file(&bundle).build().expect("valid");
    saved(save(all).await);
    let one = Invoker::builder().service("Catalog", server.url()).service_ca_file("Catalog", &bundle).build();
    saved(save(one.expect("valid")).await);
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused_with_a_clear_connect_error() {
    let ca = Ca::new("unknown CA");
    let server = TlsServer::start(&ca.server(), None).await;
    let dir = TempDir::new("unknown-ca");
    let other = dir.file("other-ca.pem", &Ca::new("some other CA").pem());

    // The platform's roots alone, then with a private CA that did not issue it.
    let platform = Invoker::builder().service("Catalog", server.url()).retries(false).build().expect("valid");
    let with_other = Invoker::builder().service("Catalog", server.url()).retries(false).ca_file(&other).build();
    for invoker in [platform, with_other.expect("valid")] {
        let error = failed(save(invoker).await);
        assert!(error.is_connect(), "not a connection failure: {error:?}");
        assert_mentions(&error.to_string(), &["Catalog.save", "certificate was not trusted", "`ca_file`"]);
    }
    // With retries on: the same certificate would be met again, so no attempt follows.
    let retrying = Invoker::builder().service("Catalog", server.url()).tries(3).build().expect("valid");
    let error = failed(save(retrying).await);
    assert!(error.is_connect() && error.attempts() == 1, "{error:?}");
    assert!(server.alpn().is_empty(), "no handshake may complete: {:?}", server.alpn());
}

// ---- client certificates -------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_requires_a_client_certificate_gets_the_configured_one() {
    let ca = Ca::new("mesh CA");
    let server = TlsServer::start(&ca.server(), Some(&ca)).await;
    let dir = TempDir::new("mtls");
    dir.file("ca.pem", &ca.pem());
    let client = ca.client();
    dir.file("client.pem", &client.cert.pem());
    dir.file("client.key", &client.key.serialize_pem());
    let stranger = Ca::new("stranger CA").client();
    dir.file("stranger.pem", &stranger.cert.pem());
    dir.file("stranger.key", &stranger.key.serialize_pem());

    let config = |identity: &str| {
        let text = format!(
            "[defaults]\nca_file = \"ca.pem\"\nretries = false\n{identity}\n[services.Catalog]\nurl = \"{}\"\n",
            server.url()
        );
        Invoker::from_file(dir.file("services.toml", &text)).expect("a valid config")
    };
    // None, and one the server's CA did not issue: both refused, with a hint.
    for identity in ["", "client_cert = \"stranger.pem\"\nclient_key = \"stranger.key\""] {
        let error = failed(save(config(identity)).await);
        assert!(error.is_connect(), "not a connection failure: {error:?}");
        assert_mentions(&error.to_string(), &["refused this client's certificate", "`client_cert`"]);
    }
    saved(save(config("client_cert = \"client.pem\"\nclient_key = \"client.key\"")).await);

    // The builder's form, per service.
    let (cert, key) = (dir.path.join("client.pem"), dir.path.join("client.key"));
    let built = Invoker::builder()
        .service("Catalog", server.url())
        .ca_file(dir.path.join("ca.pem"))
        .service_client_identity("Catalog", cert, key)
        .build();
    saved(save(built.expect("valid")).await);
}

// ---- SSL_CERT_FILE, in a child process -----------------------------------------------------

const CHILD_URL: &str = "INTERCALL_TLS_TEST_URL";
const CHILD_EXPECT: &str = "INTERCALL_TLS_TEST_EXPECT";

/// Runs `ssl_cert_file_child` in a child process with `ssl_cert_file` (or no
/// `SSL_CERT_*` at all), expecting the call to be `expect`.
fn run_child(url: &str, ssl_cert_file: Option<&Path>, expect: &str) {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"));
    child.args(["ssl_cert_file_child", "--exact", "--ignored", "--nocapture"]);
    child.env(CHILD_URL, url).env(CHILD_EXPECT, expect).env_remove("SSL_CERT_DIR").env_remove("SSL_CERT_FILE");
    if let Some(file) = ssl_cert_file {
        child.env("SSL_CERT_FILE", file);
    }
    let output = child.output().expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child expecting `{expect}` failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn ssl_cert_file_names_the_platform_roots() {
    let ca = Ca::new("SSL_CERT_FILE CA");
    let server = TlsServer::start(&ca.server(), None).await;
    let dir = TempDir::new("ssl-cert-file");
    let roots = dir.file("roots.pem", &ca.pem());
    let url = server.url();
    // Blocking waits, off the runtime that serves the child's calls.
    tokio::task::spawn_blocking(move || {
        run_child(&url, Some(&roots), "trusted");
        run_child(&url, None, "refused");
    })
    .await
    .expect("the child runs");
}

/// Run by `ssl_cert_file_names_the_platform_roots` in a child process, whose
/// environment it sets; ignored otherwise.
#[tokio::test]
#[ignore = "run in a child process by ssl_cert_file_names_the_platform_roots"]
async fn ssl_cert_file_child() {
    let url = std::env::var(CHILD_URL).expect("run by ssl_cert_file_names_the_platform_roots");
    let invoker = Invoker::builder().service("Catalog", url).retries(false).build().expect("valid");
    match std::env::var(CHILD_EXPECT).as_deref() {
        Ok("trusted") => saved(save(invoker).await),
        Ok("refused") => assert!(failed(save(invoker).await).to_string().contains("not trusted")),
        other => panic!("unexpected {CHILD_EXPECT}: {other:?}"),
    }
}

// ---- HTTP/2 --------------------------------------------------------------------------------

#[tokio::test]
async fn http2_over_tls_is_chosen_by_alpn() {
    let ca = Ca::new("h2 CA");
    let server = TlsServer::start(&ca.server(), None).await;
    let dir = TempDir::new("h2");
    let ca_file = dir.file("ca.pem", &ca.pem());

    let h2 = Invoker::builder().service("Catalog", server.url()).ca_file(&ca_file).http2(true).build();
    saved(save(h2.expect("valid")).await);
    let h1 = Invoker::builder().service("Catalog", server.url()).ca_file(&ca_file).build();
    saved(save(h1.expect("valid")).await);
    assert_eq!(server.alpn(), vec![Some(b"h2".to_vec()), Some(b"http/1.1".to_vec())]);
}

// ---- mistakes: start-up errors at the key --------------------------------------------------

/// Loads `services.toml` holding `text` from `dir`, expects a config error, and
/// checks that its message names the config file and every one of `needles`.
#[track_caller]
fn rejected(dir: &TempDir, text: &str, needles: &[&str]) {
    let config = dir.file("services.toml", text);
    let error = Invoker::from_file(&config).expect_err("an invalid config");
    assert!(error.is_config(), "not a config error: {error:?}");
    assert_mentions(&error.to_string(), &[&config.display().to_string()]);
    assert_mentions(&error.to_string(), needles);
}

const URL: &str = "url = \"https://127.0.0.1:1/\"";

#[test]
fn a_missing_ca_file_is_an_error_at_its_line() {
    let dir = TempDir::new("missing-ca");
    let missing = dir.path.join("nowhere.pem").display().to_string();
    let text = format!("[services.Catalog]\n{URL}\n\nca_file = \"nowhere.pem\"\n");
    rejected(&dir, &text, &["line 4, column 11", "`services.Catalog.ca_file`", &missing, "cannot be read"]);
    // In `[defaults]`, even with no service.
    rejected(&dir, "[defaults]\nca_file = \"nowhere.pem\"\n", &["line 2", "`defaults.ca_file`", &missing]);
}

#[test]
fn a_ca_file_without_a_certificate_is_an_error() {
    let dir = TempDir::new("empty-ca");
    let key = KeyPair::generate().unwrap().serialize_pem();
    dir.file("key-only.pem", &key);
    dir.file("garbage.pem", "not a certificate\n");
    for file in ["key-only.pem", "garbage.pem", ""] {
        let text = format!("[services.Catalog]\n{URL}\nca_file = \"{file}\"\n");
        let shown = dir.path.join(file).display().to_string();
        let needles: &[&str] = match file {
            "" => &["line 3", "`services.Catalog.ca_file` is empty"],
            _ => &["line 3", "`services.Catalog.ca_file`", &shown, "holds no PEM certificate"],
        };
        rejected(&dir, &text, needles);
    }
}

#[test]
fn a_client_key_that_does_not_parse_or_does_not_match_is_an_error() {
    let dir = TempDir::new("bad-key");
    let ca = Ca::new("CA");
    let client = ca.client();
    dir.file("client.pem", &client.cert.pem());
    dir.file("garbage.key", "no key here\n");
    dir.file("broken.key", "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n");
    dir.file("other.key", &KeyPair::generate().unwrap().serialize_pem());
    for (file, problem) in [
        ("garbage.key", "holds no PEM private key"),
        ("broken.key", "is not valid PEM"),
        ("other.key", "is not the key of the certificate"),
    ] {
        let text = format!("[services.Catalog]\n{URL}\nclient_cert = \"client.pem\"\nclient_key = \"{file}\"\n");
        let shown = dir.path.join(file).display().to_string();
        rejected(&dir, &text, &["line 4", "`services.Catalog.client_key`", &shown, problem]);
    }
    // A certificate file that holds a key only.
    let text = format!("[services.Catalog]\n{URL}\nclient_cert = \"other.key\"\nclient_key = \"other.key\"\n");
    rejected(&dir, &text, &["line 3", "`services.Catalog.client_cert`", "holds no PEM certificate"]);
}

#[test]
fn a_client_cert_needs_its_key_and_the_reverse() {
    let dir = TempDir::new("half-identity");
    let text = format!("[services.Catalog]\n{URL}\nclient_cert = \"client.pem\"\n");
    rejected(&dir, &text, &["line 3", "`services.Catalog.client_cert` is set without `client_key`"]);
    let text = format!("[defaults]\nclient_key = \"client.key\"\n[services.Catalog]\n{URL}\n");
    rejected(&dir, &text, &["line 2", "`defaults.client_key` is set without `client_cert`"]);
}

#[test]
fn the_builder_names_the_key_and_the_path() {
    let error = Invoker::builder()
        .service("Catalog", "https://127.0.0.1:1/")
        .service_ca_file("Catalog", "no-such-ca.pem")
        .build()
        .expect_err("a missing file");
    assert_mentions(&error.to_string(), &["<builder>", "`services.Catalog.ca_file`", "`no-such-ca.pem`"]);
}

#[test]
fn tls_files_are_refused_beside_a_transport_of_ones_own() {
    let dir = TempDir::new("custom-transport");
    let ca_file = dir.file("ca.pem", &Ca::new("CA").pem());
    let transport = intercall::client::HyperTransport::new();
    let error = Invoker::builder()
        .service("Catalog", "https://127.0.0.1:1/")
        .ca_file(ca_file)
        .transport(transport)
        .build()
        .expect_err("TLS keys configure the built-in transport");
    assert_mentions(&error.to_string(), &["`defaults.ca_file`", "transport of its own"]);
}
