//! A small HTTP/1.1 of our own, for both modes: message heads and bodies read off a
//! socket, requests written byte for byte, and a connection loop for the server of
//! client mode.
//!
//! Not reqwest or hyper: the suite must send what a library would refuse or normalise
//! (repeated headers, odd paths, raw bytes in values, bodies larger than declared), and
//! see what arrived exactly as it arrived (every header line, in order).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The largest head (start line and headers) either side reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The largest body either side reads: above any limit a case provokes.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// How long one exchange may take, end to end.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// A message head: the start line and every header line, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// `POST /Svc/m HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start: String,
    /// Names as sent; values as raw bytes, without surrounding whitespace.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Every value of `name` (case-insensitive), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// The first value of `name`, as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// The first value of `name`, as text (lossy).
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn is_chunked(&self) -> bool {
        self.all("transfer-encoding").any(|v| String::from_utf8_lossy(v).to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> io::Result<Option<usize>> {
        self.text("content-length").map(|v| v.trim().parse().map_err(|_| invalid("bad content-length"))).transpose()
    }
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The start line and headers.
    pub head: Head,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, shortened for messages.
    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        match text.char_indices().nth(300) {
            Some((end, _)) => format!("{}...", &text[..end]),
            None => text.into_owned(),
        }
    }
}

/// A request as read off the wire by the server of client mode.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target, as sent.
    pub target: String,
    /// The start line and headers.
    pub head: Head,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// Reads one head; `None` on a clean end of stream before its first byte.
pub async fn read_head<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return if lines.is_empty() && total == 0 { Ok(None) } else { Err(invalid("end of stream inside a head")) };
        }
        total += n;
        if total > MAX_HEAD_BYTES {
            return Err(invalid("head too large"));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // a stray CRLF between messages
            }
            break;
        }
        lines.push(line);
    }
    let start = String::from_utf8_lossy(&lines[0]).into_owned();
    let mut headers = Vec::new();
    for line in &lines[1..] {
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| invalid("header line without a colon"))?;
        let name = String::from_utf8_lossy(&line[..colon]).into_owned();
        let value = line[colon + 1..].trim_ascii().to_vec();
        headers.push((name, value));
    }
    Ok(Some(Head { start, headers }))
}

/// Reads a body framed by `head`: `content-length`, chunked, or (`to_eof`, responses
/// only) everything until the peer closes.
pub async fn read_body<R: AsyncBufRead + Unpin>(reader: &mut R, head: &Head, to_eof: bool) -> io::Result<Vec<u8>> {
    if head.is_chunked() {
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).await?;
            let size = String::from_utf8_lossy(&line);
            let size = size.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if body.len() + size > MAX_BODY_BYTES {
                return Err(invalid("body too large"));
            }
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut trailer = Vec::new();
                    if reader.read_until(b'\n', &mut trailer).await? == 0 || trailer.trim_ascii().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await?;
            let mut crlf = Vec::new();
            reader.read_until(b'\n', &mut crlf).await?;
        }
    }
    match head.content_length()? {
        Some(n) if n > MAX_BODY_BYTES => Err(invalid("body too large")),
        Some(n) => {
            let mut body = vec![0; n];
            reader.read_exact(&mut body).await?;
            Ok(body)
        }
        None if to_eof => {
            let mut body = Vec::new();
            reader.take(MAX_BODY_BYTES as u64).read_to_end(&mut body).await?;
            Ok(body)
        }
        None => Ok(Vec::new()),
    }
}

/// Where a server lives: `host:port` and the path prefix of its base URL.
#[derive(Debug, Clone)]
pub struct Base {
    /// `host:port`, also the `host` header.
    pub authority: String,
    /// The base URL's path without its trailing `/`: `""` or `/gateway`.
    pub prefix: String,
}

impl Base {
    /// Parses `http://host[:port][/prefix][/]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("`{url}`: only http:// URLs are supported"))?;
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() || path.contains(['?', '#']) {
            return Err(format!("`{url}` is not a base URL (http://host:port/prefix)"));
        }
        let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        let prefix = path.trim_end_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        Ok(Self { authority, prefix })
    }
}

/// Sends `bytes` on a new connection and reads one response. The request is written
/// while the response is read, so a server that answers early (a `413` before the
/// body) and closes is seen answering, not failing a write. `head_only`: the response
/// to a `HEAD`, which has no body.
pub async fn exchange(base: &Base, bytes: Vec<u8>, head_only: bool) -> Result<Response, String> {
    let exchange = async {
        let stream =
            TcpStream::connect(&base.authority).await.map_err(|e| format!("connect {}: {e}", base.authority))?;
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        // Write errors are expected when the server answers and closes early.
        let writer = tokio::spawn(async move {
            let _ = write.write_all(&bytes).await;
            let _ = write.flush().await;
            write
        });
        let mut reader = BufReader::new(read);
        let response = read_response(&mut reader, head_only).await.map_err(|e| format!("reading the response: {e}"));
        writer.abort();
        response
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no complete response within {EXCHANGE_TIMEOUT:?}")))
}

async fn read_response<R: AsyncBufRead + Unpin>(reader: &mut R, head_only: bool) -> io::Result<Response> {
    loop {
        let head = read_head(reader).await?.ok_or_else(|| invalid("connection closed without a response"))?;
        let status = head
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        if (100..200).contains(&status) {
            continue; // 100 Continue and friends precede the real response
        }
        let body = if head_only || status == 204 || status == 304 {
            // Anything after a bodiless response's head is a framing error; with
            // `connection: close` the server's next act is closing.
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), reader.take(4096).read_to_end(&mut rest)).await;
            rest
        } else {
            read_body(reader, &head, true).await?
        };
        return Ok(Response { status, head, body });
    }
}

/// What the server of client mode does with one request.
pub enum Action {
    /// Write these bytes (a whole response).
    Respond(Vec<u8>),
    /// Write these bytes (a response cut short), then close the connection.
    Cut(Vec<u8>),
    /// Close the connection without a response.
    Drop,
    /// Answer nothing; close when the client gives up, or after `Duration`.
    Hold(Duration),
}

/// Serves one connection: reads requests and acts on each as `handle` says, until the
/// client closes, a request asks for `connection: close`, or an action drops it.
pub async fn serve_connection<F, Fut>(stream: TcpStream, handle: F)
where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Action>,
{
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    loop {
        let head = match read_head(&mut reader).await {
            Ok(Some(head)) => head,
            Ok(None) | Err(_) => return,
        };
        // Some clients (curl, for larger bodies) wait for this before sending the body.
        if head.all("expect").any(|v| v.eq_ignore_ascii_case(b"100-continue"))
            && reader.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
        {
            return;
        }
        let Ok(body) = read_body(&mut reader, &head, false).await else { return };
        let mut start = head.start.split(' ');
        let method = start.next().unwrap_or("").to_owned();
        let target = start.next().unwrap_or("").to_owned();
        let close = head.all("connection").any(|v| v.eq_ignore_ascii_case(b"close"));
        match handle(Request { method, target, head, body }).await {
            Action::Respond(bytes) => {
                if reader.get_mut().write_all(&bytes).await.is_err() || close {
                    return;
                }
            }
            Action::Cut(bytes) => {
                let _ = reader.get_mut().write_all(&bytes).await;
                return;
            }
            Action::Drop => return,
            Action::Hold(limit) => {
                // The client's timeout closes its end; reading sees that.
                let mut sink = [0u8; 1024];
                let _ = tokio::time::timeout(limit, async {
                    while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
                return;
            }
        }
    }
}

/// A whole response: the status line, `headers`, `content-length` and `body`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heads_keep_repeats_and_bodies_dechunk() {
        let raw = b"POST /a HTTP/1.1\r\nX-A: 1\r\nx-a:  2 \r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n";
        let mut reader = BufReader::new(&raw[..]);
        let head = read_head(&mut reader).await.unwrap().unwrap();
        assert_eq!(head.all("x-a").collect::<Vec<_>>(), [b"1".as_slice(), b"2"]);
        assert_eq!(read_body(&mut reader, &head, false).await.unwrap(), b"abcd");
    }

    #[test]
    fn base_urls_keep_their_prefix() {
        let base = Base::parse("http://127.0.0.1:7/gw/").unwrap();
        assert_eq!((base.authority.as_str(), base.prefix.as_str()), ("127.0.0.1:7", "/gw"));
        assert_eq!(Base::parse("http://h").unwrap().authority, "h:80");
        assert!(Base::parse("https://h/").is_err());
    }
}
