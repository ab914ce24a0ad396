//! The soak's load: calls with faults mixed in, each checked against what the protocol
//! promises (docs/PROTOCOL.md), and counted by kind and outcome.
//!
//! | share | kind | what it does | what must come back |
//! |---|---|---|---|
//! | 55% | `plain` | the generated proxy, a reply of 0-2 KiB | that reply |
//! | 3% | `retry` | the proxy with a 200 ms timeout, a 300 ms run: the first attempt times out, a retry with the same call id waits for the run | the reply |
//! | 10% | `duplicate` | two identical raw requests with one call id, at once | `200` twice, the same bytes |
//! | 4% | `mismatch` | a call id reused with another body | `422 call_id_mismatch` |
//! | 8% | `disconnect` | a raw request dropped 10 ms into a 100 ms run; with a call id (half) it is sent again | with an id: `200` (the run went on) |
//! | 4% | `slow_client` | half a request head, then silence | the server closes the connection |
//! | 16% | `bad_input` | malformed JSON, a wrong type, an unknown method, a bad call id, a wrong content type, now and then an oversized body | its `4xx` |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall::Invoker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::service::{HEADER_READ_TIMEOUT, Soak, SoakProxy};

/// How long a slow client waits for the server to close its connection before it
/// counts the connection as held (a failure).
const SLOW_CLIENT_BOUND: Duration = Duration::from_secs(15);
/// Slow clients open at once, at most: each holds a connection for a few seconds.
const SLOW_CLIENTS: usize = 32;

/// One server under load, and the clients that call it.
pub struct Target {
    pub name: &'static str,
    url: String,
    proxy: SoakProxy,
    /// A proxy with a short timeout, whose calls are retried.
    hasty: SoakProxy,
    http: reqwest::Client,
    port: u16,
    slow_clients: Arc<tokio::sync::Semaphore>,
    pub tally: Tally,
}

impl Target {
    pub fn new(name: &'static str, port: u16) -> Result<Self, String> {
        let url = format!("http://127.0.0.1:{port}");
        let proxy = |timeout: Duration| {
            // A budget that lets every hasty call retry: each one needs it.
            let builder = Invoker::builder().service("Soak", url.clone()).timeout(timeout).tries(3);
            SoakProxy::new(builder.retry_budget(3.0, 100).build().map_err(text)?).map_err(text)
        };
        Ok(Self {
            name,
            proxy: proxy(Duration::from_secs(5))?,
            hasty: proxy(Duration::from_millis(200))?,
            url,
            // Idle connections are dropped before the server's header-read timeout closes
            // them, so that a request never races the server's close of its connection.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_idle_timeout(HEADER_READ_TIMEOUT / 2)
                .build()
                .map_err(text)?,
            port,
            slow_clients: Arc::new(tokio::sync::Semaphore::new(SLOW_CLIENTS)),
            tally: Tally::default(),
        })
    }

    /// Makes one call of a kind drawn at random, and counts its outcome.
    pub async fn one(self: &Arc<Self>) {
        let draw = fastrand::u32(0..100);
        let (kind, outcome) = match draw {
            0..55 => ("plain", self.plain().await),
            55..58 => ("retry", self.retry().await),
            58..68 => ("duplicate", self.duplicate().await),
            68..72 => ("mismatch", self.mismatch().await),
            72..80 => ("disconnect", self.disconnect(draw % 2 == 0).await),
            80..84 => ("slow_client", self.slow_client()),
            _ => ("bad_input", self.bad_input(draw).await),
        };
        self.tally.record(kind, outcome);
    }

    async fn plain(&self) -> Result<(), String> {
        let size = fastrand::u32(0..2048);
        let reply = self.proxy.work(0, size).await.map_err(|e| format!("{e:?}"))?;
        check(reply.len() == size as usize, "a reply of the wrong size")
    }

    async fn retry(&self) -> Result<(), String> {
        let reply = self.hasty.work(300, 16).await.map_err(|e| format!("{e:?}"))?;
        check(reply.len() == 16, "a reply of the wrong size")
    }

    async fn duplicate(&self) -> Result<(), String> {
        let id = uuid::Uuid::new_v4();
        let body = work_body(20, fastrand::u32(0..2048));
        let (first, second) = tokio::join!(self.post("work", Some(id), &body), self.post("work", Some(id), &body));
        let (first, second) = (expect(first?, 200)?, expect(second?, 200)?);
        check(first == second, "two replies of one call differ")
    }

    async fn mismatch(&self) -> Result<(), String> {
        let id = uuid::Uuid::new_v4();
        expect(self.post("work", Some(id), &work_body(0, 8)).await?, 200)?;
        let refused = expect(self.post("work", Some(id), &work_body(0, 9)).await?, 422)?;
        check(contains(&refused, r#""kind":"call_id_mismatch""#), "not a call_id_mismatch")
    }

    async fn disconnect(&self, with_id: bool) -> Result<(), String> {
        let id = with_id.then(uuid::Uuid::new_v4);
        let body = work_body(100, 32);
        match tokio::time::timeout(Duration::from_millis(10), self.post("work", id, &body)).await {
            Err(_dropped) => {}
            Ok(Err(failed)) => return Err(failed),
            // Not a server fault: the client's task was not polled for the run's 100 ms (a
            // starved machine), and `timeout` polls the reply before its own timer.
            Ok(Ok((status, _))) => return Err(format!("HTTP {status} before the 10 ms timer was polled")),
        }
        match id {
            // The run went on without its client: the same call id gets its reply.
            Some(_) => expect(self.post("work", id, &body).await?, 200).map(drop),
            None => Ok(()),
        }
    }

    /// Starts a slow client in the background (bounded: at most [`SLOW_CLIENTS`] at
    /// once; past that, it is skipped and counted as such).
    fn slow_client(self: &Arc<Self>) -> Result<(), String> {
        let Ok(permit) = Arc::clone(&self.slow_clients).try_acquire_owned() else {
            return Err("skipped: slow clients at their bound".to_owned());
        };
        let target = Arc::clone(self);
        tokio::spawn(async move {
            let outcome = target.hold_half_a_request().await;
            target.tally.record("slow_client_closed", outcome);
            drop(permit);
        });
        Ok(())
    }

    async fn hold_half_a_request(&self) -> Result<(), String> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.map_err(text)?;
        stream.write_all(b"POST /Soak/work HTTP/1.1\r\nhost: soak\r\ncontent-ty").await.map_err(text)?;
        let mut buffer = [0u8; 1024];
        let closed = tokio::time::timeout(SLOW_CLIENT_BOUND, async {
            // Whatever the server sends (nothing, or a 408), then its close.
            while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
        });
        closed
            .await
            .map_err(|_| format!("held open past {SLOW_CLIENT_BOUND:?} (header timeout {HEADER_READ_TIMEOUT:?})"))
    }

    async fn bad_input(&self, draw: u32) -> Result<(), String> {
        let id = Some(uuid::Uuid::new_v4());
        let (sent, status, kind) = match draw % 6 {
            0 => (self.post("work", id, b"{\"pause_ms\": 0, \"size\": ").await?, 400, "bad_request"),
            1 => (self.post("work", id, br#"{"pause_ms": "soon", "size": 1}"#).await?, 400, "bad_request"),
            2 => (self.post("rest", id, &work_body(0, 1)).await?, 404, "unknown_method"),
            3 => {
                let request = self.http.post(format!("{}/Soak/work", self.url)).header("x-call-id", "not-a-uuid");
                let response = request.header("content-type", "application/json").body(work_body(0, 1)).send();
                (read(response.await).await?, 400, "bad_request")
            }
            4 => {
                let request = self.http.post(format!("{}/Soak/work", self.url)).header("content-type", "text/plain");
                (read(request.body(work_body(0, 1)).send().await).await?, 415, "unsupported_media_type")
            }
            // An oversized body (over the 2 MiB default) is rare: it costs a copy of 2 MiB.
            _ if fastrand::u32(0..20) == 0 => {
                (self.post("work", id, &vec![b' '; 2 * 1024 * 1024 + 1]).await?, 413, "payload_too_large")
            }
            _ => (self.post("work", id, b"[1, 2]").await?, 400, "bad_request"),
        };
        let refused = expect(sent, status)?;
        check(contains(&refused, &format!(r#""kind":"{kind}""#)), "a refusal of another kind")
    }

    async fn post(
        &self,
        method: &str,
        call_id: Option<uuid::Uuid>,
        body: &[u8],
    ) -> Result<(u16, bytes::Bytes), String> {
        let mut request =
            self.http.post(format!("{}/Soak/{method}", self.url)).header("content-type", "application/json");
        if let Some(id) = call_id {
            request = request.header("x-call-id", id.to_string());
        }
        read(request.body(body.to_vec()).send().await).await
    }
}

/// Outcomes by kind: `ok`, or what went wrong.
#[derive(Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<(String, String), u64>>,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn record(&self, kind: &str, outcome: Result<(), String>) {
        let outcome = match outcome {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                "ok".to_owned()
            }
            Err(why) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                // One line per kind of failure, not per call id or size.
                why.chars().take(120).collect()
            }
        };
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry((kind.to_owned(), outcome)).or_default() += 1;
    }

    /// Calls that got what they should, and calls that did not, so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }

    /// Every (kind, outcome) with its count.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn work_body(pause_ms: u64, size: u32) -> Vec<u8> {
    format!(r#"{{"pause_ms":{pause_ms},"size":{size}}}"#).into_bytes()
}

async fn read(response: Result<reqwest::Response, reqwest::Error>) -> Result<(u16, bytes::Bytes), String> {
    let response = response.map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await.map_err(|e| format!("reply body: {e}"))?))
}

fn expect((status, body): (u16, bytes::Bytes), wanted: u16) -> Result<bytes::Bytes, String> {
    match status == wanted {
        true => Ok(body),
        false => {
            Err(format!("HTTP {status}, expected {wanted}: {}", String::from_utf8_lossy(&body[..body.len().min(60)])))
        }
    }
}

fn contains(body: &[u8], needle: &str) -> bool {
    body.windows(needle.len()).any(|window| window == needle.as_bytes())
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}
