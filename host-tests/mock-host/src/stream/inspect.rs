//! What a test can read back from a stream: headers and bodies as the plugin left them, the
//! local reply, pause and end state, and per-stream properties.
//!
//! Why apart from `mod.rs`: these are read-only views (plus `set_property`) that never run the
//! plugin; the parent drives the phases.

use super::Stream;
use crate::error::Result;
use crate::properties::PropertyValue;
use crate::state::StreamState;
use crate::types::{LocalResponse, StreamType};

impl Stream<'_> {
    /// Sets a property for this stream only (overrides the host's; wins over derived ones).
    pub fn set_property(&mut self, path: &str, value: impl Into<PropertyValue>) -> Result<()> {
        let value = value.into();
        self.live()?.properties.set(path, &value);
        Ok(())
    }

    /// Current request headers: as the plugin left them (what goes upstream).
    pub fn request_headers_now(&self) -> Vec<(String, String)> {
        self.state()
            .map(|s| s.request.headers.to_strings())
            .unwrap_or_default()
    }
    /// One current request header.
    pub fn request_header(&self, name: &str) -> Option<String> {
        let s = self.state().ok()?;
        s.request
            .headers
            .get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
    /// Current response headers (what goes downstream; the local reply's if one was sent).
    pub fn response_headers_now(&self) -> Vec<(String, String)> {
        self.state()
            .map(|s| s.response.headers.to_strings())
            .unwrap_or_default()
    }
    /// One current response header.
    pub fn response_header(&self, name: &str) -> Option<String> {
        let s = self.state().ok()?;
        s.response
            .headers
            .get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
    /// Request trailers as the plugin left them.
    pub fn request_trailers_now(&self) -> Vec<(String, String)> {
        self.state()
            .map(|s| s.request.trailers.to_strings())
            .unwrap_or_default()
    }
    /// Response trailers as the plugin left them.
    pub fn response_trailers_now(&self) -> Vec<(String, String)> {
        self.state()
            .map(|s| s.response.trailers.to_strings())
            .unwrap_or_default()
    }
    /// Request body bytes the plugin let through so far.
    pub fn request_body_forwarded(&self) -> Vec<u8> {
        self.state()
            .map(|s| s.request.forwarded.clone())
            .unwrap_or_default()
    }
    /// Request body bytes held by the plugin (buffered or queued behind a pause).
    pub fn request_body_held(&self) -> Vec<u8> {
        self.state()
            .map(|s| [s.request.body.as_slice(), s.request.queued_body.as_slice()].concat())
            .unwrap_or_default()
    }
    /// Response body bytes let through so far (the local reply body if one was sent).
    pub fn response_body_forwarded(&self) -> Vec<u8> {
        self.state()
            .map(|s| s.response.forwarded.clone())
            .unwrap_or_default()
    }
    /// The local response, if the plugin sent one.
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.state().ok()?.local_response.clone()
    }
    /// The plugin reset the stream (`proxy_close_stream`).
    pub fn reset_by_plugin(&self) -> Option<StreamType> {
        self.state().ok()?.reset
    }
    /// The request direction is held by the plugin.
    pub fn request_paused(&self) -> bool {
        self.state().is_ok_and(|s| !s.ended() && s.request.paused())
    }
    /// The response direction is held by the plugin.
    pub fn response_paused(&self) -> bool {
        self.state()
            .is_ok_and(|s| !s.ended() && s.response.paused())
    }
    /// Local reply or reset happened.
    pub fn ended(&self) -> bool {
        self.state().is_ok_and(StreamState::ended)
    }
    /// `finish` was called.
    pub fn finished(&self) -> bool {
        self.state().is_ok_and(|s| s.finished)
    }
}
