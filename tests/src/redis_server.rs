//! A real `redis-server` for tests: on a free loopback port, with a temporary
//! directory, persisting nothing (or, started durable, everything, through its
//! append-only file), stopped when dropped.
//!
//! Without the binary, [`RedisServer::start`] returns `None` and prints a notice, so a
//! developer machine without Redis skips those tests; when `CI` is set it panics
//! instead, because CI (`.ci/run`) installs `redis-server` and a skip there would hide
//! a broken setup.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    /// Extra `redis-server` arguments, kept across restarts.
    args: Vec<String>,
    child: Option<Child>,
    /// AOF on, every write fsynced before it is acknowledged.
    durable: bool,
}

impl RedisServer {
    /// Starts a server on a free port, or says why not (see the module docs).
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[])
    }

    /// Like [`start`](Self::start), with the append-only file on and
    /// `appendfsync always` (in the server's own temporary directory): every write is
    /// on disk before Redis acknowledges it, so a [`restart`](Self::restart) after a
    /// SIGKILL loses nothing.
    pub fn start_durable(test: &str) -> Option<Self> {
        Self::start_configured(test, &[], true)
    }

    /// [`start`](Self::start) with extra `redis-server` arguments, e.g.
    /// `["--maxclients", "8"]`.
    pub fn start_with(test: &str, args: &[&str]) -> Option<Self> {
        Self::start_configured(test, args, false)
    }

    fn start_configured(test: &str, args: &[&str], durable: bool) -> Option<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("intercall-redis-{}-{test}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the Redis directory");
        let args = args.iter().map(|arg| arg.to_string()).collect();
        let mut server = Self { port, dir, args, child: None, durable };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("{test}: cannot start redis-server, and CI is set ({why}); .ci/run installs it")
            }
            Err(why) => {
                eprintln!(
                    "NOTICE: {test} skipped: cannot start redis-server ({why}). Install it to run the Redis tests."
                );
                None
            }
        }
    }

    /// `redis://127.0.0.1:port/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Sends one command on a connection of its own and returns the raw reply (RESP),
    /// for what a test checks on Redis itself (`PUBSUB NUMSUB`, `CLIENT KILL`).
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a read timeout");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).expect("send the command");
        // The replies tests read are a few bytes: one read holds them.
        let mut reply = vec![0; 4096];
        let n = stream.read(&mut reply).expect("read the reply");
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    /// Stops the server, as a crash would (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port: empty, unless it was started durable (then
    /// with every acknowledged write, replayed from its append-only file).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().expect("redis-server restarts on its port");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let appendonly = if self.durable {
            ["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            ["--appendonly", "no", "--appendfsync", "everysec"]
        };
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(appendonly)
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        // Ready when it says so; bounded, and a dead process ends the read.
        let stdout = child.stdout.take().expect("piped");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Ready to accept connections")
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
        });
        let started = Instant::now();
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(_) => {
                let _ = child.kill();
                Err(format!("not ready after {:?} on port {}", started.elapsed(), self.port))
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}
