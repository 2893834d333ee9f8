//! Kubernetes' CEL URL library (`isURL(string)`, `url(string)`, `<URL>.getScheme()`), added to
//! the `cel` crate's context because the CRD's `spec.url` rule calls them and no CEL crate has
//! them.
//!
//! Kubernetes defines them by Go's `net/url`: `isURL(s)` is `url.ParseRequestURI(s)` without
//! error, `url(s)` also parses with `url.Parse` and fails the evaluation when either does. So
//! the parsing is `go_url.rs`, a port of those two Go functions. The `url` crate follows the
//! WHATWG URL standard and answers differently on inputs the rule sees: it refuses an absolute
//! path without a base (`/opt/plugin.wasm`, which Go accepts) and accepts a bad escape in a path
//! (`http://h/%zz`, which Go refuses). Only `getScheme` is provided of the URL's accessors; a
//! rule calling another (`getHost`, `getPort`, ...) is reported as undeclared when compiled.

use crate::go_url;
use cel::extractors::This;
use cel::objects::Opaque;
use cel::{Context, DeclarationError, ExecutionError};
use std::sync::Arc;

/// The functions `register` adds, for the compile-time lookup of calls.
pub(crate) const FUNCTIONS: [&str; 3] = ["isURL", "url", "getScheme"];

/// A URL that `url()` accepted: what its accessors answer.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    /// Lower-cased, as Go stores it; empty for an absolute path.
    scheme: String,
}

impl Opaque for Url {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}

pub(crate) fn register(context: &mut Context) -> Result<(), DeclarationError> {
    context.add_function("isURL", |s: Arc<String>| go_url::is_url(&s))?;
    context.add_function(
        "url",
        |s: Arc<String>| -> Result<Arc<dyn Opaque>, ExecutionError> {
            let scheme =
                go_url::cel_url_scheme(&s).map_err(|e| ExecutionError::function_error("url", e))?;
            Ok(Arc::new(Url { scheme }))
        },
    )?;
    context.add_function(
        "getScheme",
        |This(url): This<Arc<dyn Opaque>>| -> Result<Arc<String>, ExecutionError> {
            url.downcast_ref::<Url>()
                .map(|u| Arc::new(u.scheme.clone()))
                .ok_or_else(|| {
                    ExecutionError::function_error("getScheme", "the receiver is not a URL")
                })
        },
    )?;
    Ok(())
}
