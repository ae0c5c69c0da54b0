//! The dashboard (`GET /`): one self-contained page (no external assets) that reads the admin
//! API of its own origin, served under a strict CSP, and that no other page may frame
//! (clickjacking its buttons). Its parts live in `dashboard/` — the markup, the style, and the
//! script in five sections — and are put together here at compile time.

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;

/// The page, assembled from `dashboard/` at compile time.
pub const PAGE: &str = concat!(
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    "<title>bascule</title>\n",
    "<!-- The admin dashboard (DESIGN §5): one static page, no external assets, served under a\n",
    "     strict CSP. It polls GET /status and GET /history of its own origin every 2 s and asks\n",
    "     for the admin token when the API answers 401. -->\n<style>\n",
    include_str!("dashboard/style.css"),
    "</style>\n</head>\n<body>\n",
    include_str!("dashboard/body.html"),
    "<script>\n'use strict';\n",
    include_str!("dashboard/util.js"),
    include_str!("dashboard/history.js"),
    include_str!("dashboard/charts.js"),
    include_str!("dashboard/render.js"),
    include_str!("dashboard/main.js"),
    "</script>\n</body>\n</html>\n",
);

/// The page with its headers: HTML, not cached, not framable, scripts only inline.
pub fn answer() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
