//! The ports a shipped bootstrap is written with, and their rewriting for a test.
//!
//! Why: a shipped file must stay a file a user runs as it is, so its ports are real ports, not
//! placeholders; a test replaces them with free ones. Most files use `9901` (admin), `10000`
//! (listener) and `8081` (upstream); a hop of the shipped chain is written with ports wired to
//! the next hop's, and says which with [`TemplatePorts`].

/// The admin, listener and upstream ports a file is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplatePorts {
    /// The admin interface's port in the file.
    pub admin: u16,
    /// The listener's port in the file.
    pub listener: u16,
    /// The upstream cluster's port in the file.
    pub upstream: u16,
}

/// The ports of `envoy-config/envoy.yaml` and most shipped files.
pub const DEFAULT_TEMPLATE_PORTS: TemplatePorts = TemplatePorts {
    admin: 9901,
    listener: 10000,
    upstream: 8081,
};

/// `template` with each `port_value: <port>` of `written` replaced by the one in `wanted`. With
/// `strict`, every written port must occur (a file that names its own ports and lacks one is a
/// mistake, not a file without an upstream).
pub fn rewrite(
    template: &str,
    written: TemplatePorts,
    wanted: TemplatePorts,
    strict: bool,
) -> Result<String, String> {
    let pairs = [
        (written.admin, wanted.admin),
        (written.listener, wanted.listener),
        (written.upstream, wanted.upstream),
    ];
    let mut text = template.to_string();
    for (from, to) in pairs {
        let from = format!("port_value: {from}");
        if strict && !text.contains(&from) {
            return Err(format!("no `{from}` in the config"));
        }
        text = text.replace(&from, &format!("port_value: {to}"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOP: TemplatePorts = TemplatePorts {
        admin: 9911,
        listener: 10001,
        upstream: 10002,
    };
    const FREE: TemplatePorts = TemplatePorts {
        admin: 21000,
        listener: 21001,
        upstream: 21002,
    };

    #[test]
    fn a_file_written_with_its_own_ports_has_those_replaced() {
        let text = "a: { port_value: 9911 }\nb: { port_value: 10001 }\nc: { port_value: 10002 }\n";
        assert_eq!(
            rewrite(text, HOP, FREE, true).unwrap(),
            "a: { port_value: 21000 }\nb: { port_value: 21001 }\nc: { port_value: 21002 }\n"
        );
        let missing = rewrite("a: { port_value: 9911 }\n", HOP, FREE, true);
        assert!(missing.unwrap_err().contains("port_value: 10001"));
        let lenient = rewrite(
            "a: { port_value: 9901 }\n",
            DEFAULT_TEMPLATE_PORTS,
            FREE,
            false,
        );
        assert_eq!(lenient.unwrap(), "a: { port_value: 21000 }\n");
    }
}
