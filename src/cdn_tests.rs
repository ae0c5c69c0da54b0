use http::{HeaderName, HeaderValue};

use super::*;

/// A fixture of `tests/fixtures/cdn/`: a raw HTTP/1.1 response (status line, headers, blank
/// line, body), shaped like the page that CDN serves.
fn page(text: &str) -> (u16, HeaderMap, Vec<u8>) {
    let (head, body) = text
        .split_once("\n\n")
        .expect("a blank line after the head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').expect("name: value");
        headers.append(
            HeaderName::from_bytes(k.trim().as_bytes()).expect("name"),
            HeaderValue::from_str(v.trim()).expect("value"),
        );
    }
    (status, headers, body.as_bytes().to_vec())
}

macro_rules! fixture {
    ($name:literal) => {
        page(include_str!(concat!("../tests/fixtures/cdn/", $name)))
    };
}

fn judge(p: &(u16, HeaderMap, Vec<u8>)) -> Option<&'static str> {
    let prefix = &p.2[..p.2.len().min(BODY_PREFIX)];
    generated_by(p.0, &p.1, prefix, None)
}

#[test]
fn each_cdns_own_error_page_is_recognised() {
    let table = [
        (fixture!("cloudflare-500.http"), "cloudflare"),
        (fixture!("cloudflare-522.http"), "cloudflare"),
        (fixture!("fastly-503.http"), "fastly"),
        (fixture!("cloudfront-502.http"), "cloudfront"),
        (fixture!("akamai-503.http"), "akamai"),
    ];
    for (page, cdn) in &table {
        assert_eq!(judge(page), Some(*cdn), "status {}", page.0);
    }
}

#[test]
fn an_origins_error_passed_through_a_cdn_is_not_the_cdns() {
    for page in [
        fixture!("cloudflare-origin-500.http"),
        fixture!("fastly-origin-503.http"),
        fixture!("akamai-origin-500.http"),
    ] {
        assert_eq!(judge(&page), None, "status {}", page.0);
    }
}

#[test]
fn only_server_errors_are_judged() {
    let (_, headers, body) = fixture!("cloudflare-500.http");
    for status in [200, 404, 429, 499] {
        assert_eq!(
            generated_by(status, &headers, &body, None),
            None,
            "{status}"
        );
    }
}

#[test]
fn the_origin_marker_settles_it_without_signatures() {
    let marker = HeaderName::from_static("x-origin");
    let (status, mut headers, body) = fixture!("cloudflare-origin-500.http");
    assert!(
        generated_by(status, &headers, &body, Some(&marker)).is_some(),
        "no marker: the CDN's"
    );
    headers.insert(marker.clone(), HeaderValue::from_static("1"));
    assert_eq!(generated_by(status, &headers, &body, Some(&marker)), None);
    // Even a page that looks like the CDN's is the origin's when it carries the marker.
    let (status, mut headers, body) = fixture!("cloudflare-500.http");
    headers.insert(marker.clone(), HeaderValue::from_static("1"));
    assert_eq!(generated_by(status, &headers, &body, Some(&marker)), None);
}

#[test]
fn a_body_is_read_only_when_a_signature_needs_one() {
    let (status, headers, _) = fixture!("cloudflare-500.http");
    assert!(
        needs_body(status, &headers),
        "server: cloudflare 500: look for the Ray ID"
    );
    let (status, headers, _) = fixture!("cloudfront-502.http");
    assert_eq!(
        generated_by(status, &headers, b"", None),
        Some("cloudfront"),
        "CloudFront's header decides before any body is read"
    );
    let plain = HeaderMap::new();
    assert!(
        needs_body(503, &plain),
        "Fastly's page is known by its body alone"
    );
}

#[test]
fn header_tests_ignore_case_and_look_at_every_field() {
    let mut h = HeaderMap::new();
    h.append("x-cache", HeaderValue::from_static("Miss from edge"));
    h.append("x-cache", HeaderValue::from_static("error FROM CloudFront"));
    assert_eq!(generated_by(504, &h, b"", None), Some("cloudfront"));
}
