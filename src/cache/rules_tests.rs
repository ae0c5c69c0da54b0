use super::*;

const NOW: u64 = 1_700_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

fn date(offset: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW.saturating_add_signed(offset));
    httpdate::fmt_http_date(t)
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in list {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

const DEFAULT_STALE: Duration = Duration::from_secs(3600);

/// (response headers, authorized request, want: Ok((fresh secs, stale secs)) or Err)
type Row = (
    Vec<(&'static str, String)>,
    bool,
    Result<(u64, u64), NotStored>,
);

#[test]
fn storing_and_freshness_one_row_per_directive_combination() {
    let s = |v: &str| v.to_owned();
    let rows: Vec<Row> = vec![
        (
            vec![("cache-control", s("max-age=60"))],
            false,
            Ok((60, 3600)),
        ),
        (
            vec![("cache-control", s("public, max-age=60"))],
            false,
            Ok((60, 3600)),
        ),
        // s-maxage beats max-age for a shared cache.
        (
            vec![("cache-control", s("max-age=60, s-maxage=10"))],
            false,
            Ok((10, 3600)),
        ),
        // CDN-Cache-Control beats both, and Cache-Control's no-store with them.
        (
            vec![
                ("cache-control", s("no-store")),
                ("cdn-cache-control", s("max-age=30")),
            ],
            false,
            Ok((30, 3600)),
        ),
        (
            vec![
                ("cache-control", s("max-age=600")),
                ("cdn-cache-control", s("no-store")),
            ],
            false,
            Err(NotStored::NoStore),
        ),
        // CDN-Cache-Control without a lifetime: Cache-Control and Expires are not consulted.
        (
            vec![
                ("cdn-cache-control", s("public")),
                ("cache-control", s("max-age=60")),
            ],
            false,
            Err(NotStored::NoLifetime),
        ),
        // Age is taken off the lifetime.
        (
            vec![("cache-control", s("max-age=60")), ("age", s("15"))],
            false,
            Ok((45, 3600)),
        ),
        (
            vec![("cache-control", s("max-age=60")), ("age", s("90"))],
            false,
            Ok((0, 3600)),
        ),
        // Expires minus Date.
        (
            vec![("expires", date(120)), ("date", date(0))],
            false,
            Ok((120, 3600)),
        ),
        (
            vec![("expires", date(-5)), ("date", date(0))],
            false,
            Ok((0, 3600)),
        ),
        (vec![("expires", s("0"))], false, Ok((0, 3600))),
        // max-age beats Expires.
        (
            vec![("expires", date(120)), ("cache-control", s("max-age=5"))],
            false,
            Ok((5, 3600)),
        ),
        (
            vec![("cache-control", s("no-store, max-age=60"))],
            false,
            Err(NotStored::NoStore),
        ),
        (
            vec![("cache-control", s("private, max-age=60"))],
            false,
            Err(NotStored::Private),
        ),
        (
            vec![("cache-control", s("private=\"x\", max-age=60"))],
            false,
            Err(NotStored::Private),
        ),
        (
            vec![("cache-control", s("max-age=60")), ("set-cookie", s("a=b"))],
            false,
            Err(NotStored::SetCookie),
        ),
        (
            vec![("cache-control", s("max-age=60")), ("vary", s("*"))],
            false,
            Err(NotStored::VaryAny),
        ),
        (
            vec![
                ("cache-control", s("max-age=60")),
                ("vary", s("accept-encoding")),
            ],
            false,
            Ok((60, 3600)),
        ),
        (vec![], false, Err(NotStored::NoLifetime)),
        (
            vec![("cache-control", s("public"))],
            false,
            Err(NotStored::NoLifetime),
        ),
        // no-cache: kept for stale-if-error, never fresh.
        (
            vec![("cache-control", s("no-cache, max-age=60"))],
            false,
            Ok((0, 3600)),
        ),
        // stale-if-error of its own; must-revalidate forbids stale.
        (
            vec![("cache-control", s("max-age=60, stale-if-error=30"))],
            false,
            Ok((60, 30)),
        ),
        (
            vec![("cache-control", s("max-age=60, must-revalidate"))],
            false,
            Ok((60, 0)),
        ),
        (
            vec![("cache-control", s("max-age=60, proxy-revalidate"))],
            false,
            Ok((60, 0)),
        ),
        // Authorization: only when the response allows sharing.
        (
            vec![("cache-control", s("max-age=60"))],
            true,
            Err(NotStored::Authorization),
        ),
        (
            vec![("cache-control", s("public, max-age=60"))],
            true,
            Ok((60, 3600)),
        ),
        (
            vec![("cache-control", s("s-maxage=60"))],
            true,
            Ok((60, 3600)),
        ),
        (
            vec![("cache-control", s("max-age=60, must-revalidate"))],
            true,
            Ok((60, 0)),
        ),
        // Directive names are case-insensitive; a malformed number is ignored.
        (
            vec![("cache-control", s("Max-Age=60"))],
            false,
            Ok((60, 3600)),
        ),
        (
            vec![("cache-control", s("max-age=soon"))],
            false,
            Err(NotStored::NoLifetime),
        ),
    ];
    for (list, authorized, want) in rows {
        let pairs: Vec<(&str, &str)> = list.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let h = headers(&pairs);
        let got = storable(
            &Method::GET,
            authorized,
            StatusCode::OK,
            &h,
            now(),
            DEFAULT_STALE,
        )
        .map(|f| (f.fresh_for.as_secs(), f.stale_for.as_secs()));
        assert_eq!(got, want, "{list:?} authorized={authorized}");
    }
}

#[test]
fn only_get_answers_with_a_cacheable_status_are_stored() {
    let h = headers(&[("cache-control", "max-age=60")]);
    let try_one = |m: &Method, s: u16| {
        storable(
            m,
            false,
            StatusCode::from_u16(s).expect("status"),
            &h,
            now(),
            DEFAULT_STALE,
        )
        .err()
    };
    for s in [200, 203, 204, 301, 404, 410] {
        assert_eq!(try_one(&Method::GET, s), None, "{s}");
    }
    for s in [206, 302, 500, 502, 503] {
        assert_eq!(try_one(&Method::GET, s), Some(NotStored::Status), "{s}");
    }
    assert_eq!(try_one(&Method::HEAD, 200), Some(NotStored::Method));
    assert_eq!(try_one(&Method::POST, 200), Some(NotStored::Method));
}

#[test]
fn requests_that_may_use_the_store() {
    type Row<'a> = (&'a Method, &'a [(&'a str, &'a str)], Lookup);
    let rows: [Row; 8] = [
        (&Method::GET, &[], Lookup::Use { authorized: false }),
        (&Method::HEAD, &[], Lookup::Use { authorized: false }),
        (
            &Method::GET,
            &[("authorization", "Bearer x")],
            Lookup::Use { authorized: true },
        ),
        (&Method::POST, &[], Lookup::Bypass),
        (&Method::GET, &[("range", "bytes=0-10")], Lookup::Bypass),
        (&Method::GET, &[("if-none-match", "\"x\"")], Lookup::Bypass),
        (
            &Method::GET,
            &[("cache-control", "no-store")],
            Lookup::Bypass,
        ),
        // A reader's no-cache does not reach the origin through the shield.
        (
            &Method::GET,
            &[("cache-control", "no-cache")],
            Lookup::Use { authorized: false },
        ),
    ];
    for (m, h, want) in rows {
        assert_eq!(lookup(m, &headers(h)), want, "{m} {h:?}");
    }
}

#[test]
fn vary_names_and_the_request_values_they_select() {
    let h = headers(&[
        ("vary", "Accept-Encoding, accept-language"),
        ("vary", "Accept-Encoding"),
    ]);
    let names = vary_names(&h).expect("not *");
    assert_eq!(names, ["accept-encoding", "accept-language"]);
    let req = headers(&[("accept-encoding", "gzip"), ("accept-encoding", "br")]);
    assert_eq!(
        vary_values(&names, &req),
        [Some(HeaderValue::from_static("gzip, br")), None]
    );
    assert_eq!(vary_names(&headers(&[("vary", "a, *")])), None);
}
