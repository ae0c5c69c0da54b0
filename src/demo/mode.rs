//! What a simulated upstream does with a connection and a request: one plain enum, switchable
//! while the upstream runs.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

/// What a simulated upstream does. Health probes obey it too, unless the upstream was built
/// to let them always pass ([`Builder::probes_pass`](super::Builder::probes_pass)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Answers 200 "ok from NAME".
    Ok,
    /// Not listening: the listener and every open connection are closed, so connecting is
    /// refused. The port stays bound (not listening), so nothing else takes it and healing
    /// listens on the same port again.
    Refuse,
    /// Listening with a full accept queue that is never drained: a connect neither succeeds nor
    /// is refused (the SYN is dropped), so only a connect timeout ends it.
    Blackhole,
    /// Reads requests, never answers them.
    Hang,
    /// Reads each request, then closes its connection without an answer.
    Drop,
    /// Answers with this status and body "NAME says CODE".
    Status(u16),
    /// Waits this long, then answers 200 "slow from NAME".
    Slow(Duration),
    /// Answers 200 with the request's head as text, a blank line, then the request body.
    Echo,
    /// Answers 200 with exactly these bytes.
    Body(Bytes),
    /// Answers 200 with this many chunks "chunk I\n": the first at once, then one per delay.
    Drip(usize, Duration),
    /// Traffic gets 200; health probes alternate 200 and 503 (a 50 % failure rate).
    FlapProbes,
    /// The inner mode for requests to this path; 200 "ok from NAME" for every other path.
    OnPath(String, Box<Mode>),
    /// Answers with exactly this response (a CDN's branded error page, say).
    Page(Page),
    /// Every `period`-th request (counted from 0) gets `fail`; the others, 200.
    EveryNth(u32, Box<Mode>),
}

/// A canned response: status, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// Header fields, in order.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl Page {
    /// A page from raw HTTP/1.1 response text (status line, header lines, a blank line, the
    /// body), as the CDN error-page fixtures are written; None if it does not parse. Its
    /// `Content-Length` and `Transfer-Encoding` are dropped: the server frames the body.
    pub fn parse(text: &str) -> Option<Page> {
        let (head, body) = text.split_once("\n\n")?;
        let mut lines = head.lines();
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        for line in lines {
            let (k, v) = line.split_once(':')?;
            // The server frames the body it sends: a captured length or coding would lie.
            let k = k.trim();
            if k.eq_ignore_ascii_case("content-length")
                || k.eq_ignore_ascii_case("transfer-encoding")
            {
                continue;
            }
            headers.push((
                http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
                http::HeaderValue::from_str(v.trim()).ok()?,
            ));
        }
        Some(Page {
            status,
            headers,
            body: Bytes::copy_from_slice(body.as_bytes()),
        })
    }
}

impl Mode {
    /// The mode for a request to `path`: the inner mode of a matching [`Mode::OnPath`], `Ok`
    /// for a path it does not name, else the mode itself.
    pub fn for_path(&self, path: &str) -> &Mode {
        let mut mode = self;
        while let Mode::OnPath(p, inner) = mode {
            if p != path {
                return &Mode::Ok;
            }
            mode = inner;
        }
        mode
    }

    /// How the listener should be while in this mode.
    pub(super) fn socket(&self) -> SocketState {
        match self {
            Mode::Refuse => SocketState::Refusing,
            Mode::Blackhole => SocketState::Blackhole,
            _ => SocketState::Listening,
        }
    }
}

/// What the listening socket of a simulated upstream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SocketState {
    /// Accepting and serving connections.
    Listening,
    /// Bound, not listening: connects are refused.
    Refusing,
    /// Listening with a full accept queue, never accepting.
    Blackhole,
}

/// Short names, as the demo's admin API shows them: `ok`, `refuse`, `hang`, `503`, ….
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Ok => f.write_str("ok"),
            Mode::Refuse => f.write_str("refuse"),
            Mode::Blackhole => f.write_str("blackhole"),
            Mode::Hang => f.write_str("hang"),
            Mode::Drop => f.write_str("drop"),
            Mode::Status(code) => write!(f, "{code}"),
            Mode::Slow(d) => write!(f, "slow {d:?}"),
            Mode::Echo => f.write_str("echo"),
            Mode::Body(b) => write!(f, "body of {} bytes", b.len()),
            Mode::Drip(n, d) => write!(f, "drip {n} chunks every {d:?}"),
            Mode::FlapProbes => f.write_str("flap probes"),
            Mode::OnPath(p, inner) => write!(f, "{inner} on {p}"),
            Mode::Page(p) => write!(f, "page {}", p.status),
            Mode::EveryNth(n, inner) => write!(f, "{inner} every {n}th request"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_mode_applies_only_to_its_path() {
        let m = Mode::OnPath("/bad".into(), Box::new(Mode::Status(500)));
        assert_eq!(m.for_path("/bad"), &Mode::Status(500));
        assert_eq!(m.for_path("/good"), &Mode::Ok);
        assert_eq!(Mode::Hang.for_path("/any"), &Mode::Hang);
    }

    #[test]
    fn the_demo_names_read_as_the_admin_api_shows_them() {
        let names: Vec<String> = [Mode::Ok, Mode::Refuse, Mode::Hang, Mode::Status(503)]
            .iter()
            .map(Mode::to_string)
            .collect();
        assert_eq!(names, ["ok", "refuse", "hang", "503"]);
    }
}
