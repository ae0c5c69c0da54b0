//! TLS at both ends (DESIGN §3 `[listen] https`, `[[tls.certificates]]`, `sni`, `ca_file`; §4 TLS
//! details), with certificates generated as the tests run: certificates chosen by SNI, the
//! default for no or unknown SNI, h2 over TLS with curl, TLS 1.2 and 1.3 only, an HTTPS
//! upstream with its own CA reached with the configured SNI and Host over h2, untrusted and
//! expired upstream certificates that fail over (or 502) and never succeed silently, and
//! certificate rotation certbot-style under concurrent HTTPS load with no failed handshake.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::tls::{client_config, https_get, HttpsUpstream, Issued, TestCa};
use support::{bounded, get, split_echo, tools, FakeUpstream, ProxyConfig, TempDir};

const LIMIT: Duration = Duration::from_secs(40);

#[tokio::test]
async fn certificates_are_chosen_by_sni_and_no_or_unknown_sni_gets_the_first() {
    bounded(LIMIT, async {
        let dir = TempDir::new();
        let ca = TestCa::new("test ca");
        let www = ca.issue(&["www.example.test"]);
        let api = ca.issue(&["*.api.example.test", "api.example.test"]);
        let (c1, k1) = www.write(dir.path(), "www");
        let (c2, k2) = api.write(dir.path(), "api");
        let site = FakeUpstream::echo("site").await;
        let proxy = ProxyConfig::new()
            .certificate(&c1, &k1)
            .certificate(&c2, &k2)
            .one_route("all", &[&site], "")
            .start()
            .await;
        let config = client_config(&ca.pem, &[b"http/1.1"]);
        let served = |sni: Option<&'static str>| {
            let config = config.clone();
            let addr = proxy.https;
            async move {
                https_get(addr, sni, config, sni.unwrap_or("www.example.test"))
                    .await
                    .unwrap_or_else(|e| panic!("SNI {sni:?}: {e}"))
            }
        };
        assert_eq!(served(Some("www.example.test")).await.cert, www.der);
        assert_eq!(served(Some("v1.api.example.test")).await.cert, api.der);
        assert_eq!(served(Some("api.example.test")).await.cert, api.der);
        // No SNI: the first certificate, which does not name 127.0.0.1, so a verifying client
        // refuses it (openssl below shows which certificate that was).
        let r = https_get(proxy.https, None, client_config(&ca.pem, &[]), "x").await;
        assert!(r.is_err(), "an IP name is not in the certificate: {r:?}");
        let reply = served(Some("www.example.test")).await;
        assert_eq!(reply.status, 200);
        let (head, _) = split_echo(reply.body.as_bytes());
        assert!(head.contains("x-forwarded-proto: https"), "{head}");
        // What the server presents without SNI, seen with openssl.
        if !tools::require("openssl", "openssl") {
            return;
        }
        let presented = openssl_subject(proxy.https, None);
        assert!(presented.contains("www.example.test"), "{presented}");
        let presented = openssl_subject(proxy.https, Some("unknown.example.net"));
        assert!(presented.contains("www.example.test"), "{presented}");
    })
    .await;
}

/// The SANs of the certificate served at `addr` for `sni`, through `openssl s_client`.
fn openssl_subject(addr: std::net::SocketAddr, sni: Option<&str>) -> String {
    let mut c = Command::new("sh");
    let servername = sni.map_or("-noservername".to_owned(), |n| format!("-servername {n}"));
    c.arg("-c").arg(format!(
        "openssl s_client -connect {addr} {servername} </dev/null 2>/dev/null \
         | openssl x509 -noout -ext subjectAltName"
    ));
    let out = c.output().expect("run openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs curl off the test's runtime (whose thread also serves the fake upstream).
async fn curl(args: Vec<String>) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || Command::new("curl").args(&args).output())
        .await
        .expect("curl task")
        .expect("run curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn curl_negotiates_h2_over_tls_and_only_tls_1_2_and_1_3_are_offered() {
    if !tools::require("curl", "curl") {
        return;
    }
    bounded(LIMIT, async {
        let dir = TempDir::new();
        let ca = TestCa::new("test ca");
        let (cert, key) = ca.issue(&["www.example.test"]).write(dir.path(), "www");
        let ca_file = ca.write(dir.path(), "ca.pem");
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .certificate(&cert, &key)
            .one_route("all", &[&site], "")
            .start()
            .await;
        let port = proxy.https.port();
        let resolve = format!("www.example.test:{port}:127.0.0.1");
        let url = format!("https://www.example.test:{port}/");
        let ca_arg = ca_file.display().to_string();
        let run = |extra: &[&str]| {
            let mut args: Vec<String> = ["-sS", "--cacert", &ca_arg, "--resolve", &resolve]
                .iter()
                .chain(extra)
                .map(|a| (*a).to_owned())
                .collect();
            args.push(url.clone());
            curl(args)
        };
        let fmt = ["-o", "/dev/null", "-w", "%{http_version} %{http_code}"];
        let (ok, out) = run(&[&["--http2"][..], &fmt].concat()).await;
        assert!(ok, "{out}");
        assert_eq!(out, "2 200");
        let (ok, out) = run(&[&["--http1.1"][..], &fmt].concat()).await;
        assert!(ok, "{out}");
        assert_eq!(out, "1.1 200");
        let (ok, out) = run(&[&["--tls-max", "1.2"][..], &fmt].concat()).await;
        assert!(ok, "TLS 1.2 works: {out}");
        let (ok, _) = run(&["--tls-max", "1.1", "-o", "/dev/null"]).await;
        assert!(!ok, "TLS 1.1 must be refused");
        let (ok, body) = run(&[]).await;
        assert!(ok);
        assert_eq!(body, "ok from site");
    })
    .await;
}

#[tokio::test]
async fn an_https_upstream_with_its_own_ca_gets_the_configured_sni_and_host_over_h2() {
    bounded(LIMIT, async {
        let dir = TempDir::new();
        let ca = TestCa::new("origin ca");
        let ca_file = ca.write(dir.path(), "origin-ca.pem");
        let cdn = HttpsUpstream::start("cdn", &ca.issue(&["cdn-edge.example.test"])).await;
        let named = HttpsUpstream::start("named", &ca.issue(&["www.example.test"])).await;
        let ca = ca_file.display().to_string();
        let proxy = ProxyConfig::new()
            .defaults("[defaults.health]\ninterval = \"200ms\"\n")
            .upstream_at(
                "cdn",
                &cdn.address(),
                &format!(
                    "host = \"www.example.test\"\nsni = \"cdn-edge.example.test\"\nca_file = {ca:?}"
                ),
            )
            .upstream_at(
                "named",
                &named.address(),
                &format!("host = \"www.example.test\"\nca_file = {ca:?}"),
            )
            .route("cdn", &["cdn.example.test"], "/", r#"["cdn"]"#)
            .route("named", &["named.example.test"], "/", r#"["named"]"#)
            .start()
            .await;
        let r = get(proxy.addr, "cdn.example.test", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "ok from cdn");
        let seen = cdn.traffic();
        let s = seen.last().expect("the cdn saw the request");
        assert_eq!(s.sni.as_deref(), Some("cdn-edge.example.test"));
        assert_eq!(s.alpn.as_deref(), Some("h2"));
        assert_eq!(s.version, http::Version::HTTP_2);
        assert_eq!(s.authority.as_deref(), Some("www.example.test"), "{s:?}");
        // Without `sni`, the SNI is the upstream's `host`.
        let r = get(proxy.addr, "named.example.test", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let s = named.traffic().last().cloned().expect("seen");
        assert_eq!(s.sni.as_deref(), Some("www.example.test"));
        // Health probes use the same TLS identity.
        let t = Instant::now();
        while cdn.probes().is_empty() && t.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let p = cdn.probes().last().cloned().expect("probed");
        assert_eq!(p.sni.as_deref(), Some("cdn-edge.example.test"));
        assert_eq!(p.authority.as_deref(), Some("www.example.test"));
    })
    .await;
}

async fn bad_certificate_fails_over(cert: Issued) {
    let dir = TempDir::new();
    let trusted = TestCa::new("trusted ca");
    let ca_file = trusted.write(dir.path(), "ca.pem").display().to_string();
    let bad = HttpsUpstream::start("bad", &cert).await;
    let good = FakeUpstream::ok("good").await;
    let bad_keys = format!("sni = \"cdn.example.test\"\nca_file = {ca_file:?}");
    let proxy = ProxyConfig::new()
        .upstream_at("bad", &bad.address(), &bad_keys)
        .upstream("good", &good)
        .route("both", &["both.test"], "/", r#"["bad", "good"]"#)
        .route("alone", &["alone.test"], "/", r#"["bad"]"#)
        .start()
        .await;
    let r = get(proxy.addr, "both.test", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-bascule-upstream"), "good");
    assert_eq!(r.header("x-bascule-attempts"), "2");
    let r = get(proxy.addr, "alone.test", "/").await;
    assert_eq!(r.status, 502, "never served silently: {}", r.text());
    assert!(
        !r.text().contains("127.0.0.1"),
        "no internal host in {}",
        r.text()
    );
    assert!(bad.traffic().is_empty(), "no request reached it");
    assert!(proxy.logs().contains("certificate"), "{}", proxy.logs());
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_fails_over_or_is_a_502() {
    let other = TestCa::new("someone else's ca");
    bounded(
        LIMIT,
        bad_certificate_fails_over(other.issue(&["cdn.example.test"])),
    )
    .await;
}

#[tokio::test]
async fn an_expired_upstream_certificate_fails_over_or_is_a_502() {
    bounded(LIMIT, async {
        // Issued by the trusted CA itself, but expired.
        let dir = TempDir::new();
        let ca = TestCa::new("trusted ca");
        let ca_file = ca.write(dir.path(), "ca.pem").display().to_string();
        let bad = HttpsUpstream::start("bad", &ca.issue_expired(&["cdn.example.test"])).await;
        let good = FakeUpstream::ok("good").await;
        let proxy = ProxyConfig::new()
            .upstream_at(
                "bad",
                &bad.address(),
                &format!("sni = \"cdn.example.test\"\nca_file = {ca_file:?}"),
            )
            .upstream("good", &good)
            .route("both", &["both.test"], "/", r#"["bad", "good"]"#)
            .route("alone", &["alone.test"], "/", r#"["bad"]"#)
            .start()
            .await;
        let r = get(proxy.addr, "both.test", "/").await;
        assert_eq!(r.header("x-bascule-upstream"), "good");
        let r = get(proxy.addr, "alone.test", "/").await;
        assert_eq!(r.status, 502);
        assert!(bad.traffic().is_empty());
        assert!(
            proxy.logs().to_lowercase().contains("expired"),
            "{}",
            proxy.logs()
        );
    })
    .await;
}

/// When a handshake completed, and the certificate (DER) it got.
type Handshake = (Instant, Vec<u8>);

/// certbot's layout: `live/NAME.pem` symlinks into `archive/`, swapped one by one.
fn point(live: &Path, link: &str, target: &Path) {
    let tmp = live.join(format!("{link}.tmp"));
    let _stale = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).expect("symlink");
    std::fs::rename(&tmp, live.join(link)).expect("swap symlink");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_within_a_second_with_no_failed_handshake() {
    bounded(Duration::from_secs(60), async {
        let dir = TempDir::new();
        let (live, archive) = (dir.path().join("live"), dir.path().join("archive"));
        std::fs::create_dir_all(&live).expect("live");
        std::fs::create_dir_all(&archive).expect("archive");
        let ca = TestCa::new("test ca");
        let v1 = ca.issue(&["www.example.test"]);
        let (c, k) = v1.write(&archive, "v1");
        point(&live, "fullchain.pem", &c);
        point(&live, "privkey.pem", &k);
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .certificate(&live.join("fullchain.pem"), &live.join("privkey.pem"))
            .one_route("all", &[&site], "")
            .start()
            .await;
        // Concurrent HTTPS load, a new handshake per request.
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let served: Arc<Mutex<Vec<Handshake>>> = Arc::default();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let (stop, failed, served) = (stop.clone(), failed.clone(), served.clone());
            let (addr, config) = (proxy.https, client_config(&ca.pem, &[b"h2", b"http/1.1"]));
            clients.push(tokio::spawn(async move {
                let start = Instant::now();
                while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(40) {
                    match https_get(
                        addr,
                        Some("www.example.test"),
                        config.clone(),
                        "www.example.test",
                    )
                    .await
                    {
                        Ok(r) if r.status == 200 => {
                            served
                                .lock()
                                .expect("log")
                                .push((Instant::now(), r.cert.to_vec()));
                        }
                        Ok(r) => panic!("status {}", r.status),
                        Err(e) => {
                            eprintln!("failed: {e}");
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Renewal as certbot does it: new files in archive/, the key's link first, the
        // certificate's a moment later (in between, the pair does not match).
        let v2 = ca.issue(&["www.example.test"]);
        let (c2, k2) = v2.write(&archive, "v2");
        point(&live, "privkey.pem", &k2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        point(&live, "fullchain.pem", &c2);
        let renewed = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // A broken pair (a truncated certificate) keeps the renewed one serving.
        std::fs::write(
            archive.join("v3.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
        )
        .expect("write");
        point(&live, "fullchain.pem", &archive.join("v3.pem"));
        proxy
            .wait_status(Duration::from_secs(3), "broken pair reported", |s| {
                !s["config"]["last_error"].is_null()
            })
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.await.expect("client");
        }
        assert_eq!(
            failed.load(Ordering::SeqCst),
            0,
            "no failed handshake or request"
        );
        let served = served.lock().expect("log").clone();
        let first_v2 = served
            .iter()
            .find(|(_, der)| der.as_slice() == v2.der.as_ref())
            .map(|(t, _)| *t)
            .expect("the renewed certificate was served");
        assert!(
            first_v2.saturating_duration_since(renewed) < Duration::from_secs(1),
            "served {:?} after the renewal",
            first_v2.saturating_duration_since(renewed)
        );
        let after: Vec<_> = served
            .iter()
            .filter(|(t, _)| *t > first_v2 + Duration::from_millis(200))
            .collect();
        assert!(!after.is_empty());
        assert!(
            after
                .iter()
                .all(|(_, der)| der.as_slice() == v2.der.as_ref()),
            "after the renewal every handshake gets the new certificate, the broken one never"
        );
        let st = proxy.status().await;
        let err = st["config"]["last_error"].as_str().unwrap_or("");
        assert!(err.contains("tls.certificates[0]"), "{err}");
        assert_eq!(
            st["config"]["generation"], 2,
            "one good reload: the renewal"
        );
    })
    .await;
}
