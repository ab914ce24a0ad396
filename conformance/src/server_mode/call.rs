//! One request of server mode, built byte by byte: a well-formed, signed call by
//! default, and every way a case needs to bend it.

use std::sync::Arc;

use crate::http::{self, Base, Response};
use crate::signing::{self, Canonical};
use crate::spec::{self, SERVICE};

/// The server under test, as every case sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where it lives.
    pub base: Base,
    /// The shared secret, when the suite was given one (§6).
    pub secret: Option<Arc<Vec<u8>>>,
    /// The server's body limit (§3, default 2 MiB).
    pub max_body_bytes: usize,
    /// Unique per run, so counters of one run never meet another's.
    pub run_id: String,
}

impl Target {
    /// A `POST` of `{}` to `method` of the conformance service.
    pub fn call(&self, method: &str) -> Call {
        Call {
            target: self.clone(),
            verb: "POST".to_owned(),
            path: format!("{}/{SERVICE}/{method}", self.base.prefix),
            route: format!("{SERVICE}/{method}"),
            headers: vec![("accept".to_owned(), b"application/json".to_vec())],
            content_type: Some("application/json".to_owned()),
            body: b"{}".to_vec(),
            chunked: false,
            sign: true,
        }
    }

    /// A counter key of this run.
    pub fn key(&self, name: &str) -> String {
        format!("{name}-{}", self.run_id)
    }

    /// Reads counter `key` with a plain call.
    pub async fn counter(&self, key: &str) -> Result<u64, String> {
        let response = self.call("counter").json(serde_json::json!({ "key": key })).send().await?;
        let value = super::expect::ok(&response).map_err(|e| format!("counter: {e}"))?;
        value.as_u64().ok_or_else(|| format!("counter returned {value}, not a count"))
    }
}

/// A request being built; [`send`](Self::send) writes it on a new connection.
#[derive(Debug, Clone)]
pub struct Call {
    target: Target,
    verb: String,
    path: String,
    route: String,
    headers: Vec<(String, Vec<u8>)>,
    content_type: Option<String>,
    body: Vec<u8>,
    chunked: bool,
    sign: bool,
}

impl Call {
    /// Another HTTP verb.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = verb.to_owned();
        self
    }

    /// Another request target, prefixed with the base URL's path (sent as is).
    pub fn path(mut self, path: &str) -> Self {
        self.path = format!("{}{path}", self.target.base.prefix);
        self
    }

    /// Adds a header line; repeat it to repeat the header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Another `content-type`, or none.
    pub fn content_type(mut self, value: Option<&str>) -> Self {
        self.content_type = value.map(str::to_owned);
        self
    }

    /// The body, as JSON.
    pub fn json(self, value: serde_json::Value) -> Self {
        self.body(value.to_string())
    }

    /// The body, as bytes.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    /// Sends the body chunked instead of with `content-length`.
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    /// Sends no signature even when the suite has a secret.
    pub fn unsigned(mut self) -> Self {
        self.sign = false;
        self
    }

    /// The body as it will be sent.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The signature headers `(timestamp, signature)` for this call as it stands, under
    /// `secret`, timestamped `offset_ms` from now.
    pub fn signature(&self, secret: &[u8], offset_ms: i64) -> (String, String) {
        let timestamp = signing::timestamp(offset_ms);
        let signature = self.signature_at(secret, &timestamp);
        (timestamp, signature)
    }

    /// The `x-intercall-signature` for this call as it stands, under `secret`, with
    /// `timestamp` as the timestamp's text.
    pub fn signature_at(&self, secret: &[u8], timestamp: &str) -> String {
        // As the server sees them: HTTP strips whitespace around values.
        let first = |name: &str| {
            self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or(&[][..], |(_, v)| v.trim_ascii())
        };
        let canonical = Canonical {
            route: &self.route,
            timestamp,
            call_id: first("x-call-id"),
            user_type: first("x-user-type"),
            user_id: first("x-user-id"),
            activity: first("x-activity-id"),
            body: &self.body,
        };
        signing::signature(secret, &canonical)
    }

    /// The request's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head =
            format!("{} {} HTTP/1.1\r\nhost: {}\r\n", self.verb, self.path, self.target.base.authority).into_bytes();
        let mut line = |name: &str, value: &[u8]| {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        };
        if let Some(content_type) = &self.content_type {
            line("content-type", content_type.as_bytes());
        }
        for (name, value) in &self.headers {
            line(name, value);
        }
        if let (true, Some(secret)) = (self.sign, &self.target.secret) {
            let (timestamp, signature) = self.signature(secret, 0);
            line(spec::TIMESTAMP, timestamp.as_bytes());
            line(spec::SIGNATURE, signature.as_bytes());
        }
        line("connection", b"close");
        if self.chunked {
            line("transfer-encoding", b"chunked");
        } else {
            line("content-length", self.body.len().to_string().as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        if self.chunked {
            for chunk in self.body.chunks(64 * 1024) {
                head.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                head.extend_from_slice(chunk);
                head.extend_from_slice(b"\r\n");
            }
            head.extend_from_slice(b"0\r\n\r\n");
        } else {
            head.extend_from_slice(&self.body);
        }
        head
    }

    /// Sends the request on a new connection and reads the response.
    pub async fn send(&self) -> Result<Response, String> {
        http::exchange(&self.target.base, self.to_bytes(), self.verb.eq_ignore_ascii_case("HEAD")).await
    }
}
