//! TLS for the HTTPS listeners: certificate pairs loaded and checked (PEM through rustls' own
//! pki-types; the key must match the certificate), the names each serves taken from its SANs,
//! a table that picks a certificate by SNI — exact name, then wildcard, else the first
//! certificate — and the rustls server settings. The listeners resolve certificates from the
//! serving routing table, so a reload (a renewed certificate included) rotates them for new
//! handshakes without touching the listeners. A leaf module: it knows nothing of the rest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// A certificate chain and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertFiles {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A certificate chain with its key, ready to serve.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// Where it was read from.
    pub files: CertFiles,
    /// The chain and the signing key.
    pub key: Arc<CertifiedKey>,
    /// The DNS names of its SANs, lower-case (`*.example.com` for a wildcard).
    pub names: Vec<String>,
}

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read, is not PEM, or holds nothing usable.
    #[error("{}: {what}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The key does not go with the certificate.
    #[error("{} and {}: {what} (does the key belong to the certificate?)", cert.display(), key.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        what: String,
    },
}

fn file_error(path: &Path, what: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// An upstream's extra trust roots (`ca_file`), read and checked when the config loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    /// Where they were read from.
    pub path: PathBuf,
    /// The certificates, in file order; their contents are part of the upstream's identity.
    pub certs: Vec<CertificateDer<'static>>,
}

/// Reads and checks a PEM file of trust roots: at least one certificate, each usable as a
/// trust anchor.
pub fn load_ca(path: &Path) -> Result<CaFile, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots
            .add(c.clone())
            .map_err(|e| file_error(path, format!("not a usable trust root: {e}")))?;
    }
    Ok(CaFile {
        path: path.to_path_buf(),
        certs,
    })
}

/// Reads and checks a certificate chain and its private key.
pub fn load_pair(files: &CertFiles) -> Result<ServerCert, TlsError> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(&files.cert, e))?;
    let Some(leaf) = chain.first() else {
        return Err(file_error(&files.cert, "no PEM certificate"));
    };
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let names = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| file_error(&files.cert, format!("not a usable certificate: {e}")))?
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>();
    let certified =
        CertifiedKey::from_der(chain, key, &aws_lc_rs::default_provider()).map_err(|e| {
            TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
                what: e.to_string(),
            }
        })?;
    if names.is_empty() {
        tracing::warn!(cert = %files.cert.display(), "certificate has no DNS name in its SANs; it can only serve as the default");
    }
    Ok(ServerCert {
        files: files.clone(),
        key: Arc::new(certified),
        names,
    })
}

/// Certificates by the names they serve; the first one is the default.
#[derive(Debug, Default)]
pub struct CertTable {
    certs: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, usize>,
    /// `*.example.com` kept as "example.com".
    wildcard: HashMap<String, usize>,
}

impl CertTable {
    /// Indexes `certs`; a name served by two certificates goes to the first.
    pub fn new(certs: &[ServerCert]) -> CertTable {
        let mut t = CertTable::default();
        for (i, c) in certs.iter().enumerate() {
            t.certs.push(Arc::clone(&c.key));
            for name in &c.names {
                match name.strip_prefix("*.") {
                    Some(parent) => t.wildcard.entry(parent.to_owned()).or_insert(i),
                    None => t.exact.entry(name.clone()).or_insert(i),
                };
            }
        }
        t
    }

    /// The certificate for `server_name` (as sent in SNI): exact name, then a wildcard for
    /// its parent (one label, as TLS wildcards go), else the first certificate.
    pub fn resolve(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let index = server_name
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|n| {
                self.exact.get(&n).copied().or_else(|| {
                    n.split_once('.')
                        .and_then(|(_, parent)| self.wildcard.get(parent).copied())
                })
            })
            .unwrap_or(0);
        self.certs.get(index).cloned()
    }
}

/// The rustls settings of the HTTPS listeners: TLS 1.3 and 1.2, ALPN h2 then http/1.1,
/// certificates from `resolver`, session resumption by cache and tickets.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(4096);
    config.ticketer = aws_lc_rs::Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(names: &[&[&str]]) -> (CertTable, Vec<Arc<CertifiedKey>>) {
        // Keys are never used for signing here: the table only indexes them.
        let provider = aws_lc_rs::default_provider();
        let mut certs = Vec::new();
        let mut keys = Vec::new();
        for n in names {
            let key_pair = rcgen::KeyPair::generate().expect("key");
            let params = rcgen::CertificateParams::new(
                n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            )
            .expect("params");
            let cert = params.self_signed(&key_pair).expect("cert");
            let key = PrivateKeyDer::try_from(key_pair.serialize_der()).expect("key der");
            let ck = Arc::new(
                CertifiedKey::from_der(vec![cert.der().clone()], key, &provider).expect("pair"),
            );
            keys.push(Arc::clone(&ck));
            certs.push(ServerCert {
                files: CertFiles {
                    cert: "c.pem".into(),
                    key: "k.pem".into(),
                },
                key: ck,
                names: n.iter().map(|s| s.to_ascii_lowercase()).collect(),
            });
        }
        (CertTable::new(&certs), keys)
    }

    #[test]
    fn certificates_are_chosen_by_exact_name_then_wildcard_else_the_first() {
        let (t, k) = table(&[&["www.example.com"], &["*.example.org", "example.org"]]);
        let is = |got: Option<Arc<CertifiedKey>>, want: &Arc<CertifiedKey>| {
            got.is_some_and(|g| Arc::ptr_eq(&g, want))
        };
        assert!(is(t.resolve(Some("www.example.com")), &k[0]));
        assert!(is(t.resolve(Some("WWW.Example.COM")), &k[0]));
        assert!(is(t.resolve(Some("img.example.org")), &k[1]));
        assert!(is(t.resolve(Some("example.org")), &k[1]));
        assert!(
            is(t.resolve(Some("a.b.example.org")), &k[0]),
            "one label only"
        );
        assert!(is(t.resolve(Some("unknown.net")), &k[0]));
        assert!(is(t.resolve(None), &k[0]));
    }
}
