//! A raw-frame HTTP/2 client for abuse tests: prior-knowledge h2c over TCP, frames written
//! byte by byte (RFC 9113 §4.1: a 9-byte header of length, type, flags and stream id), header
//! blocks hand-encoded as HPACK "literal header field without indexing — new name" (RFC 7541
//! §6.2.2), which needs no table and no Huffman coding. It does what a well-behaved client
//! would not, and reads what the server answers only to see whether it said GOAWAY and closed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame type DATA.
pub const DATA: u8 = 0x0;
/// Frame type HEADERS.
pub const HEADERS: u8 = 0x1;
/// Frame type RST_STREAM.
pub const RST_STREAM: u8 = 0x3;
/// Frame type SETTINGS.
pub const SETTINGS: u8 = 0x4;
/// Frame type GOAWAY.
pub const GOAWAY: u8 = 0x7;
/// Frame type CONTINUATION.
pub const CONTINUATION: u8 = 0x9;

/// Flag END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// Flag ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// Flag END_HEADERS (HEADERS, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;

/// Setting SETTINGS_INITIAL_WINDOW_SIZE.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// Error code CANCEL.
pub const CANCEL: u32 = 0x8;
/// Error code ENHANCE_YOUR_CALM.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Appends one frame to `out`.
pub fn push(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("frame length");
    assert!(len < 1 << 24, "a frame payload is at most 2^24 - 1 bytes");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends `name: value` as a literal header field without indexing, new name (0x00, then
/// each string as a 7-bit-prefix length and its octets, not Huffman-coded).
pub fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    for s in [name, value] {
        string(out, s.as_bytes());
    }
}

/// An HPACK string literal: H = 0, the length as a 7-bit-prefix integer (RFC 7541 §5.1).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

/// The header block of `GET path` for authority `a`.
pub fn get_block(path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    literal(&mut block, ":method", "GET");
    literal(&mut block, ":scheme", "http");
    literal(&mut block, ":authority", "a");
    literal(&mut block, ":path", path);
    block
}

/// Appends a complete `GET path` on `stream` (HEADERS with END_STREAM and END_HEADERS).
pub fn request(out: &mut Vec<u8>, stream: u32, path: &str) {
    push(
        out,
        HEADERS,
        END_STREAM | END_HEADERS,
        stream,
        &get_block(path),
    );
}

/// An open connection, split so that one task can write while another reads.
pub struct Raw {
    /// What the server sends.
    pub read: OwnedReadHalf,
    /// What the client sends.
    pub write: OwnedWriteHalf,
}

/// Connects to `addr`, sends the preface and a SETTINGS frame with `settings`, waits for the
/// server's SETTINGS (at most 5 s) and acknowledges them.
pub async fn open(addr: SocketAddr, settings: &[(u16, u32)]) -> Raw {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (mut read, mut write) = tcp.into_split();
    let mut payload = Vec::new();
    for (id, value) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    let mut out = PREFACE.to_vec();
    push(&mut out, SETTINGS, 0, 0, &payload);
    write.write_all(&out).await.expect("preface");
    let server_settings = async {
        loop {
            let (kind, flags, _, _) = read_frame(&mut read).await.expect("a frame");
            if kind == SETTINGS && flags & ACK == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), server_settings)
        .await
        .expect("the server's SETTINGS within 5 s");
    let mut ack = Vec::new();
    push(&mut ack, SETTINGS, ACK, 0, &[]);
    write.write_all(&ack).await.expect("SETTINGS ACK");
    Raw { read, write }
}

/// Writes `bytes`, at most 5 s; an error once the server has closed the connection.
pub async fn send(write: &mut OwnedWriteHalf, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(Duration::from_secs(5), write.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Reads one frame: its type, flags, stream id and payload.
pub async fn read_frame(read: &mut OwnedReadHalf) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    read.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    read.read_exact(&mut payload).await?;
    Ok((head[3], head[4], stream, payload))
}

/// What the server sent on a connection.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Frames received.
    pub frames: usize,
    /// HEADERS frames received (responses).
    pub headers: usize,
    /// RST_STREAM frames received.
    pub resets: usize,
    /// DATA payload bytes received.
    pub data_bytes: usize,
    /// The error code of the GOAWAY, if one came.
    pub goaway: Option<u32>,
    /// The server closed the connection (end of stream or a reset).
    pub closed: bool,
}

/// Reads and tallies frames until the server closes the connection or `limit` passes.
pub async fn drain(mut read: OwnedReadHalf, limit: Duration) -> Seen {
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, read_frame(&mut read)).await {
            Err(_) => return seen,
            Ok(Err(_)) => {
                seen.closed = true;
                return seen;
            }
            Ok(Ok((kind, _, _, payload))) => {
                seen.frames += 1;
                match kind {
                    DATA => seen.data_bytes += payload.len(),
                    HEADERS => seen.headers += 1,
                    RST_STREAM => seen.resets += 1,
                    GOAWAY if payload.len() >= 8 => {
                        let code = [payload[4], payload[5], payload[6], payload[7]];
                        seen.goaway = Some(u32::from_be_bytes(code));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One connection that opens a request's header block and never ends it: HEADERS without
/// END_HEADERS, then up to `frames` CONTINUATION frames, each one header field with a value
/// of `value_len` bytes, in batches of 16. Returns the frames sent before the write failed,
/// what the server sent, and how long until it closed the connection.
pub async fn continuation_flood(
    addr: SocketAddr,
    value_len: usize,
    frames: usize,
) -> (usize, Seen, Duration) {
    let Raw { read, mut write } = open(addr, &[]).await;
    let start = Instant::now();
    let reader = tokio::spawn(drain(read, Duration::from_secs(10)));
    let mut first = Vec::new();
    push(&mut first, HEADERS, END_STREAM, 1, &get_block("/"));
    let mut field = Vec::new();
    literal(&mut field, "x-flood", &"f".repeat(value_len));
    let mut sent = 0;
    if send(&mut write, &first).await.is_ok() {
        while sent < frames && start.elapsed() < Duration::from_secs(10) {
            let mut batch = Vec::new();
            for _ in 0..16 {
                push(&mut batch, CONTINUATION, 0, 1, &field);
            }
            if send(&mut write, &batch).await.is_err() {
                break;
            }
            sent += 16;
            if reader.is_finished() {
                break;
            }
            // Let the server read between batches, as a flood over a real network would.
            tokio::task::yield_now().await;
        }
    }
    let seen = reader.await.expect("reader");
    (sent, seen, start.elapsed())
}
