//! The pure header rewrites: the one scan's presence bits, hop-by-hop stripping (with the
//! names Connection lists), forwarding headers for trusted and untrusted peers, cookie
//! joining, and responses' Via.

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn peer() -> Peer {
    Peer::new("192.0.2.7:50000".parse().unwrap(), false)
}

#[test]
fn one_scan_finds_each_name_a_rewrite_cares_about_and_no_other() {
    let table: [(&str, u32); 17] = [
        ("connection", 1),
        ("te", 1 << 1),
        ("trailer", 1 << 2),
        ("transfer-encoding", 1 << 3),
        ("upgrade", 1 << 4),
        ("proxy-authorization", 1 << 5),
        ("proxy-authenticate", 1 << 6),
        ("keep-alive", 1 << 7),
        ("proxy-connection", 1 << 8),
        ("forwarded", FORWARDED_BIT),
        ("via", VIA_BIT),
        ("cookie", COOKIE_BIT),
        ("x-forwarded-for", XFF_BIT),
        ("x-forwarded-proto", XFP_BIT),
        ("x-forwarded-host", XFH_BIT),
        ("x-real-ip", XRI_BIT),
        ("user-agent", 0),
    ];
    for (name, bit) in table {
        assert_eq!(Present::scan(&map(&[(name, "v")])), Present(bit), "{name}");
    }
    for (k, i) in HOP_BY_HOP.iter().zip(0..) {
        assert_eq!(
            Present::scan(&map(&[(k.as_str(), "v")])),
            Present(1 << i),
            "{k}"
        );
    }
    let common = map(&[
        ("host", "a"),
        ("accept", "*/*"),
        ("content-length", "3"),
        ("x-forwarded-server", "n"),
    ]);
    assert_eq!(Present::scan(&common), Present(0));
}

#[test]
fn connection_and_the_headers_it_names_are_removed() {
    let mut h = map(&[
        ("connection", "keep-alive, X-Secret"),
        ("x-secret", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "x"),
        ("x-kept", "yes"),
    ]);
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h["x-kept"], "yes");
}

#[test]
fn a_connection_value_with_obs_text_still_removes_the_headers_it_names() {
    // Found by fuzz/fuzz_targets/headers.rs: the whole value was skipped when not ASCII.
    let mut h = HeaderMap::new();
    h.append(
        header::CONNECTION,
        HeaderValue::from_bytes(b"X-Secret, caf\xe9").unwrap(),
    );
    h.append("x-secret", HeaderValue::from_static("1"));
    h.append("x-kept", HeaderValue::from_static("yes"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h["x-kept"], "yes");
}

#[test]
fn an_untrusted_peer_gets_its_forwarded_headers_replaced() {
    let host = HeaderValue::from_static("www.example.com");
    let mut h = map(&[
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.com"),
        ("forwarded", "for=1.2.3.4;proto=https"),
        ("x-real-ip", "1.2.3.4"),
    ]);
    rewrite_request(&mut h, &peer(), false, Some(&host));
    assert_eq!(h["x-forwarded-for"], "192.0.2.7");
    assert_eq!(h.get("forwarded"), None);
    assert_eq!(h["x-real-ip"], "192.0.2.7");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "www.example.com");
    assert_eq!(h["via"], "1.1 bascule");
}

#[test]
fn a_trusted_peer_has_its_forwarded_for_appended_to() {
    let host = HeaderValue::from_static("www.example.com");
    let mut h = map(&[
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-proto", "https"),
        ("via", "1.1 edge"),
        ("forwarded", "for=1.2.3.4"),
        ("x-real-ip", "1.2.3.4"),
    ]);
    rewrite_request(&mut h, &peer(), true, Some(&host));
    assert_eq!(h["x-forwarded-for"], "1.2.3.4, 192.0.2.7");
    assert_eq!(h["forwarded"], "for=1.2.3.4");
    assert_eq!(h["x-real-ip"], "1.2.3.4");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "www.example.com");
    assert_eq!(h["via"], "1.1 edge, 1.1 bascule");
}

#[test]
fn every_forwarded_for_and_via_field_is_kept_when_bascule_appends_to_them() {
    // Found by fuzz/fuzz_targets/headers.rs: only the first field of each was kept.
    let mut h = map(&[
        ("x-forwarded-for", "203.0.113.1"),
        ("x-forwarded-for", "10.0.0.1, 10.0.0.2"),
        ("via", "1.1 edge"),
        ("via", "1.1 lb"),
    ]);
    rewrite_request(&mut h, &peer(), true, None);
    let xff: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
    assert_eq!(xff, ["203.0.113.1, 10.0.0.1, 10.0.0.2, 192.0.2.7"]);
    let via: Vec<_> = h.get_all("via").iter().collect();
    assert_eq!(via, ["1.1 edge, 1.1 lb, 1.1 bascule"]);

    let mut h = map(&[("via", "1.1 origin"), ("via", "1.1 shield")]);
    rewrite_response(&mut h);
    let via: Vec<_> = h.get_all("via").iter().collect();
    assert_eq!(via, ["1.1 origin, 1.1 shield, 1.1 bascule"]);
}

#[test]
fn the_clients_host_is_forwarded_as_x_forwarded_host() {
    let host = HeaderValue::from_static("example.com:8080");
    let mut h = map(&[("host", "example.com:8080")]);
    rewrite_request(&mut h, &peer(), false, Some(&host));
    assert_eq!(h["x-forwarded-host"], "example.com:8080");
}

#[test]
fn a_trusted_peer_without_x_real_ip_gets_its_own_address() {
    let mut h = map(&[]);
    rewrite_request(&mut h, &peer(), true, None);
    assert_eq!(h["x-real-ip"], "192.0.2.7");
    assert_eq!(h.get("forwarded"), None);
}

#[test]
fn cookie_crumbs_are_joined_into_one_field() {
    let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
    rewrite_request(&mut h, &peer(), false, None);
    let cookies: Vec<_> = h.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2; c=3"]);
}

#[test]
fn zero_or_one_cookie_is_left_alone() {
    let mut h = map(&[("cookie", "a=1; b=2")]);
    join_cookies(&mut h);
    assert_eq!(h.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1; b=2"]);
    let mut h = map(&[("accept", "*/*")]);
    join_cookies(&mut h);
    assert_eq!(h.len(), 1);
    let mut h = map(&[("cookie", "a=1"), ("cookie", ""), ("cookie", "b=2")]);
    join_cookies(&mut h);
    assert_eq!(h.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1; b=2"]);
}

#[test]
fn responses_lose_hop_by_hop_headers_and_gain_via() {
    let mut h = map(&[
        ("connection", "close"),
        ("keep-alive", "1"),
        ("content-type", "text/plain"),
    ]);
    rewrite_response(&mut h);
    assert_eq!(h.len(), 2);
    assert_eq!(h["via"], "1.1 bascule");
}
