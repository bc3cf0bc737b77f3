//! Which node of a shared configuration this host is: `--node NAME`, or
//! else the hostname, as every hapair program picks it.

/// The node named on the command line, or this host's name (empty if the
/// kernel does not say, which no configuration matches, so the caller's
/// "not defined for node" error names the problem).
pub fn this_node(explicit: Option<String>) -> String {
    explicit.unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}
