//! Headless Chromium for the console tests: Debian's `chromium`, driven from Node with
//! `playwright-core` (`tests/console/driver.mjs`, one JSON command per line). What the tests
//! need is installed when missing: `chromium` with apt-get (we run as root), and the driver's
//! npm packages with `npm ci` from the committed lock into `target/console-node/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::common::repo_root;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Where the driver and its packages live, and where screenshots go.
pub fn node_dir() -> PathBuf {
    repo_root().join("target/console-node")
}

pub fn screenshots() -> PathBuf {
    repo_root().join("target/console-screenshots")
}

fn run(command: &mut std::process::Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Installs what the browser tests need, once per test run.
fn prepare() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        if !Path::new(CHROMIUM).exists() {
            run(
                std::process::Command::new("apt-get").args(["update", "-qq"]),
                "apt-get update",
            );
            run(
                std::process::Command::new("apt-get")
                    .args(["install", "-y", "-qq", "chromium"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
                "apt-get install chromium",
            );
        }
        let dir = node_dir();
        std::fs::create_dir_all(&dir).expect("target/console-node");
        let source = repo_root().join("tests/console");
        let lock = std::fs::read(source.join("package-lock.json")).expect("the committed lock");
        let installed = std::fs::read(dir.join("node_modules/.capgate-lock")).ok();
        for file in ["package.json", "package-lock.json", "driver.mjs"] {
            std::fs::copy(source.join(file), dir.join(file)).expect("copy the driver");
        }
        if installed.as_deref() != Some(lock.as_slice()) {
            run(
                std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir),
                "npm ci (tests/console)",
            );
            std::fs::write(dir.join("node_modules/.capgate-lock"), &lock).expect("stamp");
        }
        std::fs::create_dir_all(screenshots()).expect("target/console-screenshots");
        dir
    })
}

/// One headless Chromium; each person in it has their own cookies.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// The admin listener's base URL.
    pub base: String,
}

impl Browser {
    pub async fn start(base: &str) -> Self {
        let dir = prepare();
        let log = std::fs::File::create(dir.join(format!("driver-{}.log", std::process::id())))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::inherit());
        let mut child = Command::new("node")
            .arg("driver.mjs")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the browser driver");
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = child.stdout.take().expect("driver stdout");
        Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            base: base.to_string(),
        }
    }

    /// Runs one command; its result, or the driver's error.
    pub async fn try_cmd(&mut self, command: Value) -> Result<Value, String> {
        let line = format!("{command}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("driver gone: {e}"))?;
        let answer = self
            .lines
            .next_line()
            .await
            .map_err(|e| format!("driver gone: {e}"))?
            .ok_or("the driver stopped")?;
        let answer: Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
        if answer["ok"] == true {
            Ok(answer["result"].clone())
        } else {
            Err(answer["error"].as_str().unwrap_or("?").to_string())
        }
    }

    /// Runs one command; panics, naming it, when it fails.
    pub async fn cmd(&mut self, command: Value) -> Value {
        match self.try_cmd(command.clone()).await {
            Ok(result) => result,
            Err(error) => panic!("browser command {command} failed: {error}"),
        }
    }

    pub async fn sign_in(&mut self, who: &str, token: &str) {
        let base = self.base.clone();
        self.cmd(json!({"cmd": "sign_in", "who": who, "base": base, "token": token}))
            .await;
    }

    pub async fn goto(&mut self, who: &str, path: &str) {
        let url = format!("{}{path}", self.base);
        self.cmd(json!({"cmd": "goto", "who": who, "url": url}))
            .await;
    }

    pub async fn wait(&mut self, who: &str, selector: &str, text: &str) {
        self.cmd(json!({"cmd": "wait", "who": who, "selector": selector, "text": text}))
            .await;
    }

    pub async fn text(&mut self, who: &str, selector: &str) -> String {
        self.cmd(json!({"cmd": "text", "who": who, "selector": selector}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn count(&mut self, who: &str, selector: &str) -> u64 {
        self.cmd(json!({"cmd": "count", "who": who, "selector": selector}))
            .await
            .as_u64()
            .unwrap_or_default()
    }

    pub async fn click_button(&mut self, who: &str, name: &str) {
        self.cmd(json!({"cmd": "click", "who": who, "role": "button", "name": name}))
            .await;
    }

    pub async fn fill(&mut self, who: &str, selector: &str, value: &str) {
        self.cmd(json!({"cmd": "fill", "who": who, "selector": selector, "value": value}))
            .await;
    }

    /// `fetch` from the signed-in page (with its cookie): the status and the JSON answer.
    pub async fn fetch(
        &mut self,
        who: &str,
        method: &str,
        path: &str,
        headers: Value,
        body: Value,
    ) -> (u16, Value) {
        let answer = self
            .cmd(json!({"cmd": "fetch", "who": who, "method": method, "path": path, "headers": headers, "body": body}))
            .await;
        (
            answer["status"].as_u64().unwrap_or_default() as u16,
            answer["body"].clone(),
        )
    }

    /// A screenshot of `who`'s page at 1280x800 under `target/console-screenshots/<name>.png`;
    /// then the page must pass axe-core with no serious or critical violation, and must have
    /// logged no error (a Content-Security-Policy violation would be one).
    pub async fn check_page(&mut self, who: &str, name: &str) {
        let path = screenshots().join(format!("{name}.png"));
        self.cmd(json!({"cmd": "screenshot", "who": who, "path": path}))
            .await;
        let violations = self.cmd(json!({"cmd": "axe", "who": who})).await;
        let serious: Vec<&Value> = violations
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            serious.is_empty(),
            "{name}: accessibility violations: {serious:#?}"
        );
        let problems = self.cmd(json!({"cmd": "problems", "who": who})).await;
        assert_eq!(problems, json!([]), "{name}: the page logged errors");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
