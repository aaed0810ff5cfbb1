//! MCP over stdio to a child process (a gateway's stdio front, or the example server itself):
//! one session, newline-delimited JSON-RPC, requests of all clients pipelined on the child's
//! stdin and matched to their answers by id.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

use crate::load::Caller;
use crate::mcp::{self, CallTemplate};

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// The child and the two tasks that write its stdin and read its stdout.
pub struct StdioChild {
    child: Child,
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
}

impl StdioChild {
    /// Starts `command` (its stderr to `stderr_log`) and initializes the session.
    pub async fn start(command: &[String], stderr_log: &Path) -> anyhow::Result<Arc<Self>> {
        let (program, args) = command.split_first().context("no command to run")?;
        let stderr = std::fs::File::create(stderr_log)
            .with_context(|| format!("cannot create {}", stderr_log.display()))?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (outgoing, queue) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        tokio::spawn(write_lines(stdin, queue));
        tokio::spawn(read_answers(stdout, pending.clone(), outgoing.downgrade()));
        let child = Arc::new(Self {
            child,
            outgoing,
            pending,
            next_id: AtomicU64::new(1),
        });
        let result = child
            .request_with(mcp::initialize_request)
            .await
            .context("initialize")?;
        if result.get("protocolVersion").is_none() {
            bail!("initialize result without protocolVersion: {result}");
        }
        child.send(mcp::initialized_notification())?;
        Ok(child)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn send(&self, mut line: Vec<u8>) -> anyhow::Result<()> {
        line.push(b'\n');
        self.outgoing
            .send(line)
            .map_err(|_| anyhow::anyhow!("the child's stdin is closed"))
    }

    /// Sends the request `build(id)` makes and waits for the result of that id.
    async fn request_with(&self, build: impl FnOnce(u64) -> Vec<u8>) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        lock(&self.pending).insert(id, answer);
        self.send(build(id))?;
        let message = answered
            .await
            .context("the child closed its stdout before answering")?;
        mcp::result_of(message, id)
    }

    /// Closes the child's stdin (a stdio MCP server stops on end of input) and waits for it,
    /// killing it after `grace`.
    pub async fn stop(self: Arc<Self>, grace: Duration) {
        let Ok(mut this) = Arc::try_unwrap(self) else {
            eprintln!("stdio child still in use at the end; it is killed on exit");
            return;
        };
        drop(this.outgoing);
        if tokio::time::timeout(grace, this.child.wait())
            .await
            .is_err()
        {
            eprintln!("the stdio child did not stop within {grace:?}; killing it");
            let _ = this.child.kill().await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes queued lines, as many as are waiting in one write.
async fn write_lines(mut stdin: ChildStdin, mut queue: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut buffer = Vec::new();
    while let Some(line) = queue.recv().await {
        buffer.extend_from_slice(&line);
        while let Ok(line) = queue.try_recv() {
            buffer.extend_from_slice(&line);
        }
        if stdin.write_all(&buffer).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
        buffer.clear();
    }
}

/// Hands each answer to the request waiting for it; a request from the server (none is
/// expected for `read_case`) is refused so that the server does not wait on it.
async fn read_answers(
    stdout: ChildStdout,
    pending: Pending,
    // Weak: the writer (and so the child's stdin) closes when the session is stopped.
    outgoing: mpsc::WeakUnboundedSender<Vec<u8>>,
) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            eprintln!("stdio child wrote a line that is not JSON: {line}");
            continue;
        };
        let id = message.get("id").cloned();
        match (id, message.get("method").is_some()) {
            (Some(id), false) => {
                let waiting = id.as_u64().and_then(|id| lock(&pending).remove(&id));
                match waiting {
                    Some(waiting) => {
                        let _ = waiting.send(message);
                    }
                    None => eprintln!("stdio child answered an unknown id: {line}"),
                }
            }
            (Some(id), true) => {
                let refusal = json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "error": {"code": -32601, "message": "the load generator answers no requests"},
                });
                let mut line = refusal.to_string().into_bytes();
                line.push(b'\n');
                if let Some(outgoing) = outgoing.upgrade() {
                    let _ = outgoing.send(line);
                }
            }
            (None, _) => {}
        }
    }
    // End of output: every request still waiting fails (its sender is dropped).
    lock(&pending).clear();
}

/// One of the concurrent clients sharing the child's session.
pub struct StdioCaller(pub Arc<StdioChild>);

impl Caller for StdioCaller {
    async fn call(&mut self, template: &CallTemplate) -> anyhow::Result<()> {
        let result = self.0.request_with(|id| template.request(id)).await?;
        mcp::check_call_result(&result)
    }
}
