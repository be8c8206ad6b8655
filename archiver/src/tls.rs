//! HTTPS for the appliance: the TLS handshake (rustls, the certificate and key from the
//! configuration) as the accept loop's [`Handshake`]. Each runs in its connection's own
//! task under the header deadline, so a slow or silent client holds up no other.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use offsite::remote::listen::Handshake;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Reads the PEM certificate chain and private key into a TLS acceptor.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("TLS certificate {}: no certificate in it", cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("TLS key {}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not go together")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// HTTPS: the handshake with the configured certificate, run by the accept loop
/// (`offsite::remote::listen`) inside each connection's task and deadline. The
/// certificate can be replaced while serving (SIGHUP); connections open keep theirs.
#[derive(Clone)]
pub struct Tls(Arc<RwLock<TlsAcceptor>>);

impl Tls {
    pub fn new(acceptor: TlsAcceptor) -> Tls {
        Tls(Arc::new(RwLock::new(acceptor)))
    }

    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
    }
}

impl Handshake for Tls {
    type Io = TlsStream<TcpStream>;
    async fn handshake(&self, tcp: TcpStream) -> std::io::Result<Self::Io> {
        let acceptor = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        acceptor.accept(tcp).await
    }
}
