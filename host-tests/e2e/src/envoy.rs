//! Starting, probing and stopping a real Envoy.
//!
//! Configs are the shipped files in `envoy-config/`, rendered for the test: the ports
//! (`9901` admin, `10000` listener, `8081` upstream) and the .wasm path are rewritten, and the
//! plugin's JSON configuration can be swapped. What a user copies is what the tests load.

use crate::client::{get, Response};
use crate::paths::{envoy_binary, plugin_wasm, repo_file};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod ports;
pub use ports::TemplatePorts;

const READY_TIMEOUT: Duration = Duration::from_secs(45);

/// What to start: a shipped config file plus the test's substitutions.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    template: String,
    upstream_port: u16,
    plugin_json: Option<String>,
    concurrency: usize,
    delay_before_plugin_ms: Option<u64>,
    without_plugin: bool,
    failure_policy: Option<String>,
    wasm: Option<PathBuf>,
    substitutions: Vec<(String, String)>,
    template_ports: Option<TemplatePorts>,
}

impl EnvoyConfig {
    /// A shipped config, by path relative to the repository root (e.g. `envoy-config/envoy.yaml`).
    pub fn from_file(relative: &str) -> Result<EnvoyConfig, String> {
        let path = repo_file(relative);
        let template = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(EnvoyConfig::from_template(template))
    }

    /// A config from its text, with the shipped defaults for everything else.
    fn from_template(template: String) -> EnvoyConfig {
        EnvoyConfig {
            template,
            upstream_port: 8081,
            plugin_json: None,
            concurrency: 1,
            delay_before_plugin_ms: None,
            without_plugin: false,
            failure_policy: None,
            wasm: None,
            substitutions: Vec::new(),
            template_ports: None,
        }
    }

    /// The file is written with these ports rather than `9901`, `10000` and `8081`; each must
    /// occur in it as `port_value: <port>`, or rendering fails.
    pub fn template_ports(mut self, ports: TemplatePorts) -> Self {
        self.template_ports = Some(ports);
        self
    }

    /// Point the upstream cluster at this port.
    pub fn upstream_port(mut self, port: u16) -> Self {
        self.upstream_port = port;
        self
    }

    /// Replace the plugin's JSON configuration.
    pub fn plugin_json(mut self, json: &str) -> Self {
        self.plugin_json = Some(json.to_string());
        self
    }

    /// Worker threads (`--concurrency`).
    pub fn concurrency(mut self, workers: usize) -> Self {
        self.concurrency = workers;
        self
    }

    /// Delay every request by `ms` in Envoy's fault filter, placed before ballast: time a
    /// request spends in this proxy before ballast sees it (another filter, a slow hop).
    pub fn delay_before_plugin(mut self, ms: u64) -> Self {
        self.delay_before_plugin_ms = Some(ms);
        self
    }

    /// Remove the ballast filter: the same Envoy without the plugin (for comparisons).
    pub fn without_plugin(mut self) -> Self {
        self.without_plugin = true;
        self
    }

    /// The plugin's `failure_policy` (`FAIL_CLOSED`, `FAIL_OPEN`, `FAIL_RELOAD`) instead of
    /// the shipped one.
    pub fn failure_policy(mut self, policy: &str) -> Self {
        self.failure_policy = Some(policy.to_string());
        self
    }

    /// Load this .wasm instead of ballast's (e.g. the fixture plugin, which can trap).
    pub fn wasm(mut self, path: PathBuf) -> Self {
        self.wasm = Some(path);
        self
    }

    /// Replace `from` (which must occur) with `to` in the rendered text, after the rest.
    pub fn substitute(mut self, from: &str, to: &str) -> Self {
        self.substitutions.push((from.to_string(), to.to_string()));
        self
    }

    /// The YAML text Envoy will load, with ports `admin` and `listener`.
    pub fn render(&self, admin: u16, listener: u16) -> Result<String, String> {
        let wasm = match &self.wasm {
            Some(path) => path.clone(),
            None => plugin_wasm()?,
        };
        let wanted = TemplatePorts {
            admin,
            listener,
            upstream: self.upstream_port,
        };
        let written = self.template_ports.unwrap_or(ports::DEFAULT_TEMPLATE_PORTS);
        let strict = self.template_ports.is_some();
        let mut text = ports::rewrite(&self.template, written, wanted, strict)?.replace(
            "filename: target/ballast.wasm",
            &format!("filename: {}", wasm.display()),
        );
        if let Some(json) = &self.plugin_json {
            text = replace_plugin_json(&text, json)?;
        }
        if let Some(policy) = &self.failure_policy {
            if !text.contains("failure_policy: FAIL_RELOAD") {
                return Err("no `failure_policy: FAIL_RELOAD` line in the config".into());
            }
            text = text.replace(
                "failure_policy: FAIL_RELOAD",
                &format!("failure_policy: {policy}"),
            );
        }
        // The delay goes in before the plugin is removed: it is placed by the plugin's entry.
        if let Some(ms) = self.delay_before_plugin_ms {
            text = insert_before_plugin(&text, &fault_delay_filter(ms))?;
        }
        if self.without_plugin {
            text = remove_plugin_filter(&text)?;
        }
        for (from, to) in &self.substitutions {
            if !text.contains(from.as_str()) {
                return Err(format!("`{from}` is not in the config"));
            }
            text = text.replace(from.as_str(), to);
        }
        Ok(text)
    }
}

/// Replaces the block scalar after the first `value: |` line with `json`.
fn replace_plugin_json(yaml: &str, json: &str) -> Result<String, String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end().ends_with("value: |"))
        .ok_or("no `value: |` block in the config")?;
    let indent = lines
        .get(start + 1)
        .map(|l| l.len() - l.trim_start().len())
        .ok_or("empty `value: |` block")?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && l.len() - l.trim_start().len() < indent)
        .map_or(lines.len(), |offset| start + 1 + offset);
    let mut out: Vec<String> = lines[..=start].iter().map(|l| l.to_string()).collect();
    out.extend(json.lines().map(|l| format!("{}{l}", " ".repeat(indent))));
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    Ok(out.join("\n") + "\n")
}

/// The line `- name: ballast` of the HTTP filter list, and its indent.
fn plugin_filter_line(lines: &[&str]) -> Result<(usize, usize), String> {
    let start = lines
        .iter()
        .position(|l| l.trim() == "- name: ballast")
        .ok_or("no `- name: ballast` filter in the config")?;
    let indent = lines
        .get(start)
        .map_or(0, |l| l.len() - l.trim_start().len());
    Ok((start, indent))
}

/// Removes the `- name: ballast` filter entry (up to the next entry of the same list).
fn remove_plugin_filter(yaml: &str) -> Result<String, String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let (start, indent) = plugin_filter_line(&lines)?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent)
        .map_or(lines.len(), |offset| start + 1 + offset);
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(&lines[end..]);
    Ok(out.join("\n") + "\n")
}

/// Inserts filter entries (written at indent 0) before the `- name: ballast` entry.
fn insert_before_plugin(yaml: &str, entries: &str) -> Result<String, String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let (start, indent) = plugin_filter_line(&lines)?;
    let mut out: Vec<String> = lines[..start].iter().map(|l| l.to_string()).collect();
    out.extend(
        entries
            .lines()
            .map(|l| format!("{}{l}", " ".repeat(indent))),
    );
    out.extend(lines[start..].iter().map(|l| l.to_string()));
    Ok(out.join("\n") + "\n")
}

/// Envoy's fault filter delaying every request by `ms`.
fn fault_delay_filter(ms: u64) -> String {
    format!(
        "- name: envoy.filters.http.fault\n  typed_config:\n    \"@type\": \
         type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n    delay:\n      \
         fixed_delay: {}.{:03}s\n      percentage: {{ numerator: 100, denominator: HUNDRED }}\n",
        ms / 1000,
        ms % 1000
    )
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    listener: SocketAddr,
    log_path: PathBuf,
}

static RUN: AtomicUsize = AtomicUsize::new(0);

fn scratch_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "ballast-e2e-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Start attempts when Envoy loses one of its ports to another process before binding it.
const START_ATTEMPTS: usize = 4;

/// A loopback port that was free a moment ago, chosen *below* the kernel's ephemeral range.
///
/// Why not `bind(0)`: that hands out an ephemeral port, and between our probe and Envoy's own bind
/// any outgoing connection on the machine (Envoy's to the upstream, the test client's, a parallel
/// test's) may take the same port as its source. CI lost a run to exactly that
/// (`cannot bind '127.0.0.1:32787'`). Ports in 20000..32000 are never handed out as sources, so
/// only another explicit listener can race us, and [`Envoy::start`] retries that case.
pub fn free_port() -> Result<u16, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    const LOW: usize = 20_000;
    const SPAN: usize = 12_000;
    let seed = std::process::id() as usize * 7919;
    for _ in 0..64 {
        let offset = (seed + NEXT.fetch_add(1, Ordering::SeqCst) * 104_729) % SPAN;
        let port = u16::try_from(LOW + offset).map_err(|e| e.to_string())?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free loopback port in 20000..32000 after 64 tries".into())
}

impl Envoy {
    /// Starts Envoy and waits until its admin `/ready` answers 200. A port taken by someone else
    /// between choosing it and Envoy binding it is retried with new ports; any other start-up
    /// failure is returned with Envoy's log.
    pub fn start(config: &EnvoyConfig) -> Result<Envoy, String> {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Envoy::start_once(config) {
                Err(e) if e.contains("Address already in use") => last_error = e,
                other => return other,
            }
        }
        Err(last_error)
    }

    fn start_once(config: &EnvoyConfig) -> Result<Envoy, String> {
        let (admin_port, listener_port) = (free_port()?, free_port()?);
        let dir = scratch_dir()?;
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config.render(admin_port, listener_port)?)
            .map_err(|e| e.to_string())?;
        let log_path = dir.join("envoy.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(envoy_binary()?)
            .arg("-c")
            .arg(&config_path)
            .args(["--disable-hot-restart", "--log-level", "info"])
            .args(["--concurrency", &config.concurrency.to_string()])
            .current_dir(crate::paths::workspace_root())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start Envoy: {e}"))?;
        let mut envoy = Envoy {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            listener: SocketAddr::from(([127, 0, 0, 1], listener_port)),
            log_path,
        };
        envoy.wait_ready()?;
        Ok(envoy)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "Envoy exited during start-up ({status}):\n{}",
                    self.log_tail(40)
                ));
            }
            if get(self.admin, "/ready").is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "Envoy not ready after {READY_TIMEOUT:?}:\n{}",
            self.log_tail(40)
        ))
    }

    /// Envoy's process id (for its CPU time and memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The listener (where ballast filters requests).
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// The admin interface.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// `/stats/prometheus` text.
    pub fn prometheus(&self) -> Result<String, String> {
        let response: Response = get(self.admin, "/stats/prometheus")?;
        Ok(response.text())
    }

    /// Everything Envoy logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `n` log lines, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Envoy {
    /// Stops Envoy and removes its scratch folder (config and log), unless a test is failing:
    /// then the folder stays for a look at the whole log.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            if let Some(dir) = self.log_path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Runs `envoy --mode validate` on a rendered config; returns the exit status and output.
pub fn validate(config: &EnvoyConfig) -> Result<(ExitStatus, String), String> {
    let dir = scratch_dir()?;
    let config_path = dir.join("envoy.yaml");
    std::fs::write(&config_path, config.render(free_port()?, free_port()?)?)
        .map_err(|e| e.to_string())?;
    let out_path = dir.join("validate.log");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let out_err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(envoy_binary()?)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&config_path)
        .arg("--disable-hot-restart")
        .current_dir(crate::paths::workspace_root())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(out_err)
        .spawn()
        .map_err(|e| format!("cannot start Envoy: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("envoy --mode validate did not finish in 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    Ok((status, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILTERS: &str = "x:\n  http_filters:\n  - name: ballast\n    typed_config: {}\n  - name: router\n    typed_config: {}\n";

    #[test]
    fn removes_the_plugin_filter() {
        assert_eq!(
            remove_plugin_filter(FILTERS).unwrap(),
            "x:\n  http_filters:\n  - name: router\n    typed_config: {}\n"
        );
    }

    #[test]
    fn inserts_a_delay_before_the_plugin() {
        let out = insert_before_plugin(FILTERS, &fault_delay_filter(30)).unwrap();
        let fault = out.find("- name: envoy.filters.http.fault").unwrap();
        assert!(fault < out.find("- name: ballast").unwrap(), "{out}");
        assert!(out.contains("      fixed_delay: 0.030s"), "{out}");
    }

    #[test]
    fn a_delay_stays_when_the_plugin_goes() {
        // A .wasm path of its own, so rendering does not depend on a built .wasm.
        let mut config = EnvoyConfig::from_template(FILTERS.to_string())
            .wasm(PathBuf::from("/plugins/ballast.wasm"))
            .without_plugin();
        config.delay_before_plugin_ms = Some(30);
        let out = config.render(1, 2).unwrap();
        assert!(out.contains("envoy.filters.http.fault") && !out.contains("- name: ballast"));
    }

    #[test]
    fn swaps_the_plugin_json_block() {
        let yaml = "a:\n  value: |\n    {\"x\": 1}\n    more\n  next: 2\n";
        let out = replace_plugin_json(yaml, "{\n  \"y\": 2\n}").unwrap();
        assert_eq!(
            out,
            "a:\n  value: |\n    {\n      \"y\": 2\n    }\n  next: 2\n"
        );
    }

    #[test]
    fn failure_policy_and_substitutions_apply_only_where_they_match() {
        let base =
            EnvoyConfig::from_template("failure_policy: FAIL_RELOAD\npath: a/b.yaml\n".into())
                .wasm(PathBuf::from("/plugins/ballast.wasm"));
        let out = base
            .clone()
            .failure_policy("FAIL_OPEN")
            .substitute("path: a/b.yaml", "path: /tmp/x.yaml")
            .render(1, 2)
            .unwrap();
        assert_eq!(out, "failure_policy: FAIL_OPEN\npath: /tmp/x.yaml\n");
        let missing = base.clone().substitute("nowhere", "x").render(1, 2);
        assert!(missing.unwrap_err().contains("nowhere"));
        let mut without = base;
        without.template = "name: x\n".into();
        assert!(without.failure_policy("FAIL_OPEN").render(1, 2).is_err());
    }
}
