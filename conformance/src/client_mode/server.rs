//! The conformance service of client mode, by hand on raw HTTP: it records every
//! request exactly as it arrived and answers as each scenario's script says, so that
//! it checks the client's wire rather than trusting intercall's server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::scenarios::{Reply, Scenario};
use crate::http::{self, Action, Head, Request};
use crate::spec::{METHODS, SERVICE};

/// The base URL's path: clients must keep it (§2, §3).
pub const PREFIX: &str = "/base";

/// One request, as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The scenario its body names, if any.
    pub scenario: Option<String>,
    /// The HTTP verb.
    pub verb: String,
    /// The request target.
    pub target: String,
    /// Its head, every header line in order.
    pub head: Head,
    /// Its body bytes.
    pub body: Vec<u8>,
    /// When it was read.
    pub arrived: Instant,
    /// When its reply was handed to the socket (none when dropped or held).
    pub replied: Option<Instant>,
}

impl Arrival {
    /// `x-call-attempt` as a number.
    pub fn attempt(&self) -> Option<u64> {
        std::str::from_utf8(self.head.get("x-call-attempt")?).ok()?.parse().ok()
    }

    /// The method, when the path is `{PREFIX}/Conformance/{method}`.
    pub fn method(&self) -> Option<&str> {
        let method = self.target.strip_prefix(PREFIX)?.strip_prefix('/')?.strip_prefix(SERVICE)?.strip_prefix('/')?;
        METHODS.contains(&method).then_some(method)
    }
}

/// The server's record of what arrived.
pub struct Server {
    scripts: HashMap<&'static str, fn(usize) -> Reply>,
    arrivals: Mutex<Vec<Arrival>>,
}

impl Server {
    /// Binds 127.0.0.1:0 and serves until the process ends; returns the server and
    /// the base URL to give the client.
    pub async fn start(scenarios: &[Scenario]) -> std::io::Result<(Arc<Self>, String)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}{PREFIX}/", listener.local_addr()?);
        let scripts = scenarios.iter().map(|s| (s.name, s.script)).collect();
        let server = Arc::new(Self { scripts, arrivals: Mutex::new(Vec::new()) });
        let accepting = Arc::clone(&server);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = Arc::clone(&accepting);
                tokio::spawn(http::serve_connection(stream, move |request| {
                    let server = Arc::clone(&server);
                    async move { server.handle(request) }
                }));
            }
        });
        Ok((server, url))
    }

    /// Every request so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn handle(&self, request: Request) -> Action {
        let arrived = Instant::now();
        let args: Option<Value> = serde_json::from_slice(&request.body).ok();
        let name = args
            .as_ref()
            .and_then(|args| args.get("text").or_else(|| args.get("key")).or_else(|| args.get("end")))
            .and_then(Value::as_str);
        let scenario = name.filter(|name| self.scripts.contains_key(name)).map(str::to_owned);
        let mut arrival = Arrival {
            scenario: scenario.clone(),
            verb: request.method,
            target: request.target,
            head: request.head,
            body: request.body,
            arrived,
            replied: None,
        };
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        let nth = arrivals.iter().filter(|a| a.scenario.is_some() && a.scenario == scenario).count();
        let reply = match (&scenario, arrival.method()) {
            (_, None) => Reply::Respond {
                status: 404,
                headers: &[("content-type", "application/json")],
                body: r#"{"kind":"unknown_service","message":"not a method path of this server"}"#,
            },
            (Some(name), Some(_)) => (self.scripts[name.as_str()])(nth),
            (None, Some(_)) => Reply::Normal,
        };
        let action = match reply {
            Reply::Normal => Action::Respond(normal(arrival.method().unwrap_or(""), args.as_ref())),
            Reply::Respond { status, headers, body } => {
                Action::Respond(http::response(status, headers, body.replace("{case}", name.unwrap_or("")).as_bytes()))
            }
            Reply::Stream { chunks, cut } => {
                let reply = streamed(chunks, cut);
                if cut { Action::Cut(reply) } else { Action::Respond(reply) }
            }
            Reply::Drop => Action::Drop,
            Reply::Hold => Action::Hold(Duration::from_secs(10)),
        };
        if matches!(action, Action::Respond(_) | Action::Cut(_)) {
            arrival.replied = Some(Instant::now());
        }
        arrivals.push(arrival);
        action
    }
}

/// The conformance service's own answer (docs/CONFORMANCE.md), written out by hand.
fn normal(method: &str, args: Option<&Value>) -> Vec<u8> {
    let json = |status: u16, body: Value| {
        http::response(status, &[("content-type", "application/json")], body.to_string().as_bytes())
    };
    let Some(args) = args.filter(|a| a.is_object()) else {
        return json(400, json!({ "kind": "bad_request", "message": "the body must be a JSON object" }));
    };
    let text = |name: &str| args.get(name).and_then(Value::as_str);
    match method {
        "echo" => match text("text") {
            Some(value) => json(200, json!({ "text": value, "note": text("note") })),
            None => {
                json(400, json!({ "kind": "bad_request", "message": "missing argument `text`", "argument": "text" }))
            }
        },
        "fail" => {
            let key = text("key").unwrap_or("");
            let (variant, value) = match text("variant").unwrap_or("") {
                "Refused" => ("Refused", json!("Refused")),
                "NotFound" => ("NotFound", json!({ "NotFound": { "id": key } })),
                "Invalid" => ("Invalid", json!({ "Invalid": key })),
                _ => return json(200, Value::Null),
            };
            let message = format!("Conformance.fail returned ConformanceError::{variant}");
            let body = json!({ "kind": "service", "message": message, "type": "ConformanceError", "variant": variant, "value": value });
            json(422, body)
        }
        _ => json(500, json!({ "kind": "internal", "message": "client mode serves only echo and fail" })),
    }
}

/// A stream's `200` reply with a chunked body of `chunks`, one HTTP chunk each (so a
/// frame may be split across chunks); without the last, empty chunk when `cut`.
fn streamed(chunks: &[&str], cut: bool) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    if !cut {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}
