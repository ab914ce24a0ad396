//! A real `redis-server` for tests: on a free loopback port, with a temporary
//! directory, persisting nothing (or, started durable, everything, through its
//! append-only file), stopped when dropped.
//!
//! Without the binary, [`RedisServer::start`] returns `None` and prints a notice, so a
//! developer machine without Redis skips those tests; when `CI` is set it panics
//! instead, because CI (`.ci/run`) installs `redis-server` and a skip there would hide
//! a broken setup.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// AOF on, every write fsynced before it is acknowledged.
    durable: bool,
}

impl RedisServer {
    /// Starts a server on a free port, or says why not (see the module docs).
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, false)
    }

    /// Like [`start`](Self::start), with the append-only file on and
    /// `appendfsync always` (in the server's own temporary directory): every write is
    /// on disk before Redis acknowledges it, so a [`restart`](Self::restart) after a
    /// SIGKILL loses nothing.
    pub fn start_durable(test: &str) -> Option<Self> {
        Self::start_with(test, true)
    }

    fn start_with(test: &str, durable: bool) -> Option<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("intercall-redis-{}-{test}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the Redis directory");
        let mut server = Self { port, dir, child: None, durable };
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
