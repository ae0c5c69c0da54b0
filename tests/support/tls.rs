//! TLS for the tests, with certificates generated when the test runs (rcgen; nothing is
//! committed): a test CA that issues (and back-dates) certificates, an HTTPS fake upstream
//! that records the SNI, ALPN and Host it was reached with, and an HTTPS client that reports
//! which certificate and protocol it got.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A certificate authority that exists for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate and its key, as issued.
#[derive(Clone)]
pub struct Issued {
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM private key.
    pub key_pem: String,
    /// The certificate, DER (to tell which one a server presented).
    pub der: CertificateDer<'static>,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("self-signed ca");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses), valid now.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_with(names, |_| {})
    }

    /// A certificate for `names` that expired a year ago.
    pub fn issue_expired(&self, names: &[&str]) -> Issued {
        self.issue_with(names, |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    fn issue_with(&self, names: &[&str], adjust: impl Fn(&mut CertificateParams)) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        adjust(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// Writes the CA certificate to `dir/NAME`; returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.pem).expect("write ca");
        p
    }
}

impl Issued {
    /// Writes `dir/STEM.pem` and `dir/STEM.key`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, &self.cert_pem).expect("write cert");
        std::fs::write(&k, &self.key_pem).expect("write key");
        (c, k)
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let chain = vec![self.der.clone()];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key pem");
        let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server cert");
        c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        c
    }
}

/// What an HTTPS fake upstream saw of one request.
#[derive(Debug, Clone)]
pub struct TlsSeen {
    /// The SNI of the connection (None: none sent).
    pub sni: Option<String>,
    /// The ALPN protocol negotiated.
    pub alpn: Option<String>,
    /// The HTTP version of the request.
    pub version: Version,
    /// The Host header, if any.
    pub host: Option<String>,
    /// The request target's authority (HTTP/2 `:authority`), if any.
    pub authority: Option<String>,
    /// The path.
    pub path: String,
}

/// An HTTPS upstream presenting one certificate, answering 200 "ok from NAME" to everything.
pub struct HttpsUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<TlsSeen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsUpstream {
    /// Starts on 127.0.0.1:0 with `cert`.
    pub async fn start(name: &str, cert: &Issued) -> HttpsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = TlsAcceptor::from(Arc::new(cert.server_config()));
        let seen: Arc<Mutex<Vec<TlsSeen>>> = Arc::default();
        let (name, log) = (name.to_owned(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, name, log) = (acceptor.clone(), name.clone(), log.clone());
                tokio::spawn(async move {
                    // A client that rejects our certificate ends the handshake: nothing to do.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let conn = tls.get_ref().1;
                    let sni = conn.server_name().map(str::to_owned);
                    let alpn = conn
                        .alpn_protocol()
                        .map(|a| String::from_utf8_lossy(a).into_owned());
                    let svc = service_fn(move |req: Request<Incoming>| {
                        log.lock().expect("log").push(TlsSeen {
                            sni: sni.clone(),
                            alpn: alpn.clone(),
                            version: req.version(),
                            host: req
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .map(str::to_owned),
                            authority: req.uri().authority().map(|a| a.to_string()),
                            path: req.uri().path().to_owned(),
                        });
                        let body = format!("ok from {name}");
                        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                    });
                    let _closed = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        HttpsUpstream { addr, seen, task }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Traffic requests seen (health probes excluded).
    pub fn traffic(&self) -> Vec<TlsSeen> {
        let seen = self.seen.lock().expect("log");
        seen.iter()
            .filter(|s| s.path != "/healthz")
            .cloned()
            .collect()
    }

    /// Health probes seen.
    pub fn probes(&self) -> Vec<TlsSeen> {
        let seen = self.seen.lock().expect("log");
        seen.iter()
            .filter(|s| s.path == "/healthz")
            .cloned()
            .collect()
    }
}

impl Drop for HttpsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What an HTTPS request to the proxy got.
#[derive(Debug)]
pub struct TlsReply {
    /// Status code.
    pub status: u16,
    /// HTTP version spoken.
    pub version: Version,
    /// ALPN protocol negotiated.
    pub alpn: Option<String>,
    /// The certificate the server presented.
    pub cert: CertificateDer<'static>,
    /// `x-bascule-upstream`.
    pub upstream: String,
    /// Body text.
    pub body: String,
}

/// Trust `ca_pem` only.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    // Every connection a full handshake: a resumed session presents no certificate, so the
    // client would keep reporting the one from the first handshake.
    c.resumption = rustls::client::Resumption::disabled();
    Arc::new(c)
}

/// One GET over a new TLS connection to `addr`, with SNI `sni` (None: no SNI, as an IP name
/// sends none) and Host `host`, offering `alpn`. Err when the handshake or request failed.
pub async fn https_get(
    addr: SocketAddr,
    sni: Option<&str>,
    config: Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<TlsReply, String> {
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_owned()).map_err(|e| e.to_string())?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tls.get_ref().1;
    let alpn = conn
        .alpn_protocol()
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or("no server certificate")?
        .into_owned();
    let io = TokioIo::new(tls);
    let req = Request::get(format!("https://{host}/"))
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = if alpn.as_deref() == Some("h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2: {e}"))?;
        tokio::spawn(conn);
        let mut req = req;
        req.headers_mut().remove("host");
        send.send_request(req)
            .await
            .map_err(|e| format!("h2 request: {e}"))?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("h1: {e}"))?;
        tokio::spawn(conn);
        let mut req = req;
        *req.uri_mut() = "/".parse().map_err(|e| format!("{e}"))?;
        send.send_request(req)
            .await
            .map_err(|e| format!("h1 request: {e}"))?
    };
    let status = resp.status().as_u16();
    let version = resp.version();
    let upstream = resp
        .headers()
        .get("x-bascule-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(TlsReply {
        status,
        version,
        alpn,
        cert,
        upstream,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
