//! Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! it reads commands on fd 3 and writes replies and events on fd 4, JSON messages separated by
//! NUL). Console messages on stderr all log at INFO in new headless, so the protocol's events
//! are the reliable way to tell an error from a log line.

use base64::Engine as _;
use command_fds::{CommandFdExt, FdMapping};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/chromium";
/// Whole visit, launch to screenshot; Chromium is killed past it.
const LIMIT: Duration = Duration::from_secs(20);
const SIZE: (u32, u32) = (1200, 2000);

/// What one visit of a page saw.
pub struct Visit {
    /// Uncaught exceptions, `console.error`/`console.assert` calls and error log entries.
    pub errors: Vec<String>,
    /// Requests for anything but the page's own file (or data:/about:/blob:).
    pub requests_out: Vec<String>,
    /// A PNG screenshot of the first 1200×2000 CSS pixels.
    pub png: Vec<u8>,
}

struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    messages: Receiver<Value>,
    events: Vec<Value>,
    next_id: u64,
    deadline: Instant,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens `page` (a local file) in a fresh profile under `work`.
pub fn open(page: &Path, work: &Path) -> Result<Visit, String> {
    assert!(
        Path::new(BINARY).exists(),
        "{BINARY} missing: `make test` installs it (Debian's `chromium` package)"
    );
    let url = format!(
        "file://{}",
        page.canonicalize().map_err(|e| e.to_string())?.display()
    );
    let mut browser = Browser::launch(work)?;
    let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }), None)?;
    let target_id = target["targetId"].clone();
    let attached = browser.call(
        "Target.attachToTarget",
        json!({ "targetId": target_id, "flatten": true }),
        None,
    )?;
    let session = attached["sessionId"]
        .as_str()
        .ok_or("no sessionId")?
        .to_string();
    let s = Some(session.as_str());
    for domain in [
        "Runtime.enable",
        "Log.enable",
        "Page.enable",
        "Network.enable",
    ] {
        browser.call(domain, json!({}), s)?;
    }
    let (width, height) = SIZE;
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        s,
    )?;
    let navigated = browser.call("Page.navigate", json!({ "url": url }), s)?;
    if let Some(error) = navigated["errorText"].as_str() {
        return Err(format!("navigating to {url}: {error}"));
    }
    browser.wait_for_event("Page.loadEventFired", &session)?;
    let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }), s)?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().ok_or("screenshot without data")?)
        .map_err(|e| e.to_string())?;
    let _ = browser.send("Browser.close", json!({}), None);
    let (errors, requests_out) = browser.findings(&url);
    Ok(Visit {
        errors,
        requests_out,
        png,
    })
}

impl Browser {
    fn launch(work: &Path) -> Result<Browser, String> {
        let profile = work.join("chromium-profile");
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(work.join("chromium.log")).map_err(|e| e.to_string())?;
        let (their_commands, commands) = std::io::pipe().map_err(|e| e.to_string())?;
        let (mut replies, their_replies) = std::io::pipe().map_err(|e| e.to_string())?;
        let mut command = Command::new(BINARY);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-color-profile=srgb",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--window-size={},{}", SIZE.0, SIZE.1))
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .fd_mappings(vec![
                FdMapping {
                    parent_fd: their_commands.into(),
                    child_fd: 3,
                },
                FdMapping {
                    parent_fd: their_replies.into(),
                    child_fd: 4,
                },
            ])
            .map_err(|e| e.to_string())?;
        let child = command.spawn().map_err(|e| format!("{BINARY}: {e}"))?;
        // The command holds Chromium's ends of the pipes: closing them here lets a read see
        // the end of the stream when Chromium exits.
        drop(command);
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut pending, mut chunk) = (Vec::new(), vec![0u8; 1 << 16]);
            while let Ok(n @ 1..) = replies.read(&mut chunk) {
                pending.extend_from_slice(&chunk[..n]);
                while let Some(end) = pending.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    let Ok(value) = serde_json::from_slice(&message[..end]) else {
                        continue;
                    };
                    if tx.send(value).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Browser {
            child,
            commands,
            messages,
            events: Vec::new(),
            next_id: 0,
            deadline: Instant::now() + LIMIT,
        })
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Result<u64, String> {
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .map_err(|e| format!("{method}: Chromium's pipe: {e}"))?;
        Ok(self.next_id)
    }

    /// The next message, or an error once the visit's time is up.
    fn next(&mut self, waiting_for: &str) -> Result<Value, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.messages.recv_timeout(left).map_err(|_| {
            format!("Chromium gave no {waiting_for} within {LIMIT:?} (its log: chromium.log)")
        })
    }

    fn call(
        &mut self,
        method: &str,
        params: Value,
        session: Option<&str>,
    ) -> Result<Value, String> {
        let id = self.send(method, params, session)?;
        loop {
            let message = self.next(&format!("answer to {method}"))?;
            if message["id"].as_u64() != Some(id) {
                self.events.push(message);
            } else if let Some(error) = message.get("error") {
                return Err(format!("{method}: {error}"));
            } else {
                return Ok(message["result"].clone());
            }
        }
    }

    fn wait_for_event(&mut self, method: &str, session: &str) -> Result<(), String> {
        let is_it = |m: &Value| m["method"] == method && m["sessionId"] == session;
        if self.events.iter().any(is_it) {
            return Ok(());
        }
        loop {
            let message = self.next(method)?;
            let found = is_it(&message);
            self.events.push(message);
            if found {
                return Ok(());
            }
        }
    }

    /// Errors and outside requests among the events received so far.
    fn findings(&self, page_url: &str) -> (Vec<String>, Vec<String>) {
        let (mut errors, mut requests) = (Vec::new(), Vec::new());
        for event in &self.events {
            let p = &event["params"];
            match event["method"].as_str().unwrap_or("") {
                "Runtime.exceptionThrown" => {
                    let details = &p["exceptionDetails"];
                    let described = details["exception"]["description"].as_str();
                    errors.push(format!(
                        "exception: {}",
                        described.or(details["text"].as_str()).unwrap_or("?")
                    ));
                }
                "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "assert" => {
                    let args: Vec<String> = p["args"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| match a["value"].as_str() {
                            Some(text) => text.to_string(),
                            None => a["description"].as_str().unwrap_or("?").to_string(),
                        })
                        .collect();
                    errors.push(format!(
                        "console.{}: {}",
                        p["type"].as_str().unwrap_or("?"),
                        args.join(" ")
                    ));
                }
                "Log.entryAdded" if p["entry"]["level"] == "error" => {
                    errors.push(format!(
                        "log: {} ({})",
                        p["entry"]["text"], p["entry"]["url"]
                    ));
                }
                "Network.requestWillBeSent" => {
                    let url = p["request"]["url"].as_str().unwrap_or("?");
                    // The page itself (its URL as Chromium spells it, should that differ).
                    let the_page =
                        url == page_url || (p["type"] == "Document" && url.starts_with("file://"));
                    let local = the_page
                        || ["data:", "about:", "blob:"]
                            .iter()
                            .any(|s| url.starts_with(s));
                    if !local {
                        requests.push(url.to_string());
                    }
                }
                _ => {}
            }
        }
        (errors, requests)
    }
}
