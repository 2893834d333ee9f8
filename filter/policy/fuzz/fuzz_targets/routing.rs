//! Route matching against a table that uses every kind of condition: any request attributes
//! give a rule, the default or unmatched, never a panic.
//!
//! And the regex engine against `regex-lite`, which it replaced: the seventh part of the input
//! (or, without one, the path) is compiled as a pattern, case-insensitively when an eighth part
//! exists. A pattern `regex-lite` refuses must be refused; one it accepts must compile unless
//! it is a documented exception; and then every part must get the same anchored answer.
#![no_main]

use ballast_policy::config::Config;
use ballast_policy::routing::regex::Regex;
use ballast_policy::routing::{host_of, path_without_query, RequestView};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const CONFIG: &str = r#"{"policy_sets": {"a": {}, "b": {}},
  "routes": [
    {"match": {"authority": {"suffix": ".example.com"}, "path": {"prefix": "/api/"}}, "policy_set": "a"},
    {"match": {"path": {"regex": "/v[0-9]+/(items|orders)/[a-z0-9-]{1,40}"}, "method": ["GET", "HEAD"]}, "policy_set": "b"},
    {"match": {"headers": [{"name": "x-tenant", "regex": "t-[0-9]+", "invert": true},
                           {"name": "x-canary", "present": true}]}, "policy_set": "a"},
    {"match": {"route_name": {"exact": "checkout", "ignore_case": true}}, "policy_set": "b"},
    {"match": {"path": {"contains": "admin", "ignore_case": true}}, "policy_set": "a"}
  ],
  "default_policy_set": "b"}"#;

fn config() -> &'static Config {
    static CONFIG_ONCE: OnceLock<Config> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| Config::from_json(CONFIG.as_bytes()).unwrap())
}

/// A request whose attributes come from the input, split at 0xFF bytes.
struct Fuzzed {
    parts: Vec<String>,
    authority: Option<String>,
    path: Option<String>,
}

impl Fuzzed {
    fn part(&self, i: usize) -> Option<&str> {
        self.parts.get(i).map(String::as_str).filter(|p| !p.is_empty())
    }
}

impl RequestView for Fuzzed {
    fn authority(&mut self) -> Option<&str> {
        self.authority.as_deref()
    }
    fn path(&mut self) -> Option<&str> {
        self.path.as_deref()
    }
    fn method(&mut self) -> Option<&str> {
        self.part(2)
    }
    fn header(&mut self, name: &str) -> Option<&str> {
        match name {
            "x-tenant" => self.part(3),
            "x-canary" => self.part(4),
            _ => None,
        }
    }
    fn route_name(&mut self) -> Option<&str> {
        self.part(5)
    }
}


fn regex_agrees(pattern: &str, ignore_case: bool, values: &[String]) {
    let theirs = regex_lite::Regex::new(pattern).and_then(|_| {
        regex_lite::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .case_insensitive(ignore_case)
            .build()
    });
    match (theirs, Regex::new(pattern, ignore_case)) {
        (Err(_), Err(_)) => {}
        (Err(theirs), Ok(_)) => panic!("{pattern:?}: regex-lite refuses ({theirs}), ours accepts"),
        (Ok(_), Err(ours)) => assert!(
            ballast_policy::routing::regex::REFUSALS_BEYOND_REGEX_LITE.iter().any(|e| ours.contains(e)),
            "{pattern:?}: regex-lite accepts, ours refuses: {ours}"
        ),
        (Ok(theirs), Ok(ours)) => {
            for value in values {
                assert_eq!(
                    ours.is_match(value),
                    theirs.is_match(value),
                    "{pattern:?} (ignore_case {ignore_case}) on {value:?}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let all: Vec<String> = data
        .split(|b| *b == 0xFF)
        .take(8)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if let Some(pattern) = all.get(6).or(all.get(1)) {
        regex_agrees(pattern, all.len() > 7, &all);
    }
    let parts: Vec<String> = all.into_iter().take(6).collect();
    let authority = parts.first().map(|a| host_of(a).to_string());
    let path = parts.get(1).map(|p| path_without_query(p).to_string());
    let mut request = Fuzzed {
        parts,
        authority,
        path,
    };
    let routed = config().routes.route(&mut request);
    // There is a default set: every request gets one.
    assert!(routed.policy_set().is_some());
});
