//! Criterion benches for the pure hot paths of a request: route lookup and header rewrite.
//! Run: cargo bench --bench hot_paths

use std::hint::black_box;

use bascule::config::HostPattern;
use bascule::proxy::headers::{self, Peer};
use bascule::routing::Matcher;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};

/// 200 routes: 100 exact hosts with two prefixes each, plus wildcards and a catch-all.
fn matcher() -> Matcher {
    let mut routes: Vec<(Vec<HostPattern>, String)> = Vec::new();
    for i in 0..100 {
        let host = format!("site{i}.example.com");
        routes.push((vec![HostPattern::Exact(host.clone())], "/".into()));
        routes.push((vec![HostPattern::Exact(host)], "/api/".into()));
    }
    routes.push((
        vec![HostPattern::Suffix(".cdn.example.net".into())],
        "/".into(),
    ));
    routes.push((vec![HostPattern::Any], "/".into()));
    Matcher::new(routes.iter().map(|(h, p)| (h.as_slice(), p.as_str())))
}

fn route_lookup(c: &mut Criterion) {
    let m = matcher();
    let mut g = c.benchmark_group("route_lookup");
    g.bench_function("exact_host_longest_prefix", |b| {
        b.iter(|| {
            m.find(
                black_box("site42.example.com"),
                black_box("/api/v1/articles/123"),
            )
        })
    });
    g.bench_function("exact_host_mixed_case_with_port", |b| {
        b.iter(|| {
            m.find(
                black_box("Site42.Example.com:8080"),
                black_box("/index.html"),
            )
        })
    });
    g.bench_function("wildcard_host", |b| {
        b.iter(|| m.find(black_box("img.eu.cdn.example.net"), black_box("/a.png")))
    });
    g.bench_function("catch_all", |b| {
        b.iter(|| m.find(black_box("unknown.org"), black_box("/")))
    });
    g.finish();
}

fn browser_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "www.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("accept-language", "fr-MA,fr;q=0.9,ar;q=0.8,en;q=0.7"),
        ("accept-encoding", "gzip, deflate, br"),
        ("connection", "keep-alive"),
        ("cookie", "session=abcdef0123456789; consent=1"),
        ("x-forwarded-for", "203.0.113.9"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn header_rewrite(c: &mut Criterion) {
    let template = browser_headers();
    let host = HeaderValue::from_static("www.example.com");
    let peer = Peer::new(
        std::net::SocketAddr::from(([198, 51, 100, 23], 50000)),
        true,
    );
    c.bench_function("header_rewrite_request", |b| {
        b.iter_batched(
            || template.clone(),
            |mut h| {
                headers::rewrite_request(&mut h, &peer, false, Some(&host));
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, route_lookup, header_rewrite);
criterion_main!(benches);
