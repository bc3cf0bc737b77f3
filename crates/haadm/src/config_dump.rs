//! `haadm dump`: a resource's configuration with every default filled in,
//! written in drbd.conf's syntax and units, so an operator used to
//! `drbdadm dump` reads what will really be used. The output is itself a
//! drbd.conf file: `haadm -c` reads it back to the same resource, and its
//! values compare with `drbdadm dump`'s (handlers as shell command lines,
//! addresses with their family).

use std::fmt::Write;
use std::time::Duration;

use hapair_config::resource::MetaDisk;
use hapair_config::{HookCommand, ResourceConfig, SHELL};

fn tenths(duration: Duration) -> u128 {
    duration.as_millis() / 100
}

fn kib(bytes: u64) -> String {
    format!("{}k", bytes / 1024)
}

/// A hook as the shell command line DRBD runs a handler as: `/bin/sh -c
/// LINE` gives LINE, an argv its words quoted for the shell.
fn hook(command: &HookCommand) -> String {
    match command.argv.as_slice() {
        [shell, flag, line] if shell == SHELL && flag == "-c" => line.clone(),
        argv => argv
            .iter()
            .map(|word| shell_word(word))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `word` for a POSIX shell: as it is when nothing in it is special, else
/// in single quotes.
fn shell_word(word: &str) -> String {
    if is_plain(word, "/._-+=:,@%") {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Whether `text` is not empty and holds only ASCII letters, digits and
/// the characters of `punctuation`, so it needs no quotes.
fn is_plain(text: &str, punctuation: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || punctuation.contains(c))
}

/// `text` as one drbd.conf value: bare when it is a plain word, else a
/// double-quoted string with `\` and `"` escaped.
fn drbd_value(text: &str) -> String {
    if is_plain(text, "/._-+=:,@%[]") {
        text.to_owned()
    } else {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The resource as drbd.conf text.
pub fn render(resource: &ResourceConfig) -> String {
    let mut out = String::new();
    let net = &resource.net;
    let disk = &resource.disk;
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# {}", resource.origin.display());
    let _ = writeln!(out, "resource {} {{", resource.name);
    let _ = writeln!(out, "    net {{");
    let _ = writeln!(out, "        protocol           {};", resource.protocol);
    if let Some(auth) = &net.auth {
        let _ = writeln!(out, "        cram-hmac-alg      {};", auth.cram_hmac_alg);
        let _ = writeln!(
            out,
            "        shared-secret      {};",
            drbd_value(&auth.shared_secret)
        );
    }
    let _ = writeln!(
        out,
        "        ping-int           {};",
        net.ping_int.as_secs()
    );
    let _ = writeln!(
        out,
        "        ping-timeout       {};",
        tenths(net.ping_timeout)
    );
    let _ = writeln!(out, "        timeout            {};", tenths(net.timeout));
    let _ = writeln!(
        out,
        "        connect-int        {};",
        net.connect_int.as_secs()
    );
    if let Some(alg) = net.verify_alg {
        let _ = writeln!(out, "        verify-alg         {alg};");
    }
    if let Some(alg) = net.data_integrity_alg {
        let _ = writeln!(out, "        data-integrity-alg {alg};");
    }
    let _ = writeln!(out, "        fencing            {};", net.fencing);
    let _ = writeln!(out, "        after-sb-0pri      {};", net.after_sb_0pri);
    let _ = writeln!(out, "        after-sb-1pri      {};", net.after_sb_1pri);
    let _ = writeln!(out, "        after-sb-2pri      {};", net.after_sb_2pri);
    let _ = writeln!(out, "    }}");
    let _ = writeln!(out, "    disk {{");
    let _ = writeln!(out, "        on-io-error        {};", disk.on_io_error);
    let _ = writeln!(out, "        al-extents         {};", disk.al_extents);
    let _ = writeln!(out, "        resync-rate        {};", kib(disk.resync_rate));
    let _ = writeln!(
        out,
        "        c-max-rate         {};",
        disk.c_max_rate.map_or("0".to_string(), kib)
    );
    let _ = writeln!(
        out,
        "        disk-flushes       {};",
        yes_no(disk.disk_flushes)
    );
    let _ = writeln!(
        out,
        "        md-flushes         {};",
        yes_no(disk.md_flushes)
    );
    let _ = writeln!(
        out,
        "        disk-timeout       {};",
        disk.disk_timeout.map_or(0, |limit| limit.as_millis() / 100)
    );
    let _ = writeln!(out, "    }}");
    let handlers = &resource.handlers;
    let named = [
        ("initial-split-brain", &handlers.initial_split_brain),
        ("split-brain", &handlers.split_brain),
        ("pri-lost-after-sb", &handlers.pri_lost_after_sb),
        ("fence-peer", &handlers.fence_peer),
        ("unfence-peer", &handlers.unfence_peer),
        ("local-io-error", &handlers.local_io_error),
        ("before-resync-target", &handlers.before_resync_target),
        ("after-resync-target", &handlers.after_resync_target),
        ("before-resync-source", &handlers.before_resync_source),
        ("out-of-sync", &handlers.out_of_sync),
        ("disconnected", &handlers.disconnected),
    ];
    if named.iter().any(|(_, command)| command.is_some()) {
        let _ = writeln!(out, "    handlers {{");
        for (name, command) in named {
            if let Some(command) = command {
                let _ = writeln!(out, "        {name:<20} {};", drbd_value(&hook(command)));
            }
        }
        let _ = writeln!(out, "    }}");
    }
    for (name, node) in &resource.nodes {
        let _ = writeln!(out, "    on {name} {{");
        let family = if node.address.is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        };
        let _ = writeln!(out, "        address            {family} {};", node.address);
        let disk_path = drbd_value(&node.disk.display().to_string());
        let _ = writeln!(out, "        disk               {disk_path};");
        let meta = match &node.meta_disk {
            MetaDisk::Internal => "internal".to_string(),
            MetaDisk::External(path) => drbd_value(&path.display().to_string()),
        };
        let _ = writeln!(out, "        meta-disk          {meta};");
        let _ = writeln!(out, "    }}");
    }
    let _ = writeln!(out, "}}");
    out
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn defaults_are_spelled_out_in_drbd_units() {
        let text = "resource: r0\nnet: {shared-secret: s3cret}\nnodes:\n  \
                    ha1: {address: \"10.99.0.1:7789\", disk: /d/r0.img, meta-disk: internal}\n  \
                    ha2: {address: \"10.99.0.2:7789\", disk: /d/r0.img, meta-disk: /d/r0.md}\n";
        let resource = ResourceConfig::parse(text, Path::new("r0.yaml")).unwrap();
        let dump = render(&resource);
        for expected in [
            "resource r0 {",
            "protocol           C;",
            "cram-hmac-alg      sha256;",
            "ping-timeout       5;",
            "timeout            60;",
            "resync-rate        250k;",
            "c-max-rate         102400k;",
            "on-io-error        detach;",
            "on ha2 {",
            "meta-disk          /d/r0.md;",
        ] {
            assert!(dump.contains(expected), "missing {expected:?} in\n{dump}");
        }
    }
}
