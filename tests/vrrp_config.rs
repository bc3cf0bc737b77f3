//! One description of a VRRP instance, rendered both as a vrrpd YAML config
//! and as a keepalived.conf, so that interop tests run the two daemons with
//! the same settings.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

/// A virtual router as one node runs it. Build one with
/// [`VrrpInstance::new`] and change fields with struct update syntax:
///
/// ```
/// # use hapair_lab::VrrpInstance;
/// let backup = VrrpInstance { nopreempt: true, ..VrrpInstance::new(51, 100, "10.99.0.100/24") };
/// ```
#[derive(Clone, Debug)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    /// 2 or 3.
    pub version: u8,
    pub virtual_router_id: u8,
    pub priority: u8,
    /// Whole seconds for version 2; hundredths of a second for version 3.
    pub advert_int: Duration,
    pub nopreempt: bool,
    /// `address/prefix_len`, all of one family.
    pub virtual_ipaddress: Vec<String>,
    pub unicast_src_ip: Option<IpAddr>,
    /// Empty: multicast adverts.
    pub unicast_peer: Vec<IpAddr>,
    /// VRRPv2 `auth_type PASS` with this password.
    pub auth_pass: Option<String>,
    /// Gratuitous ARPs / unsolicited NAs per address in each announcement
    /// burst; `None`: the daemon's default (5).
    pub garp_master_repeat: Option<u32>,
    /// When the second burst follows the first; `None`: the default (5 s).
    pub garp_master_delay: Option<Duration>,
    /// How often a master announces again after that; `None`: never.
    pub garp_master_refresh: Option<Duration>,
    pub hooks: Hooks,
}

/// The notify hooks of an instance: each an argv, empty for none.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub notify_master: Vec<String>,
    pub notify_backup: Vec<String>,
    pub notify_fault: Vec<String>,
    pub notify_stop: Vec<String>,
    /// Run on every transition with `INSTANCE <name> <STATE> <priority>`
    /// appended.
    pub notify: Vec<String>,
    /// How long each hook may run (vrrpd only: keepalived has no such
    /// limit, and its config leaves it out).
    pub notify_timeout: Option<Duration>,
}

impl VrrpInstance {
    /// Instance VI_1 on eth0: VRRP version 2, 1 s adverts, multicast, no
    /// authentication, preemption on, default announcements, no hooks, one
    /// virtual address.
    pub fn new(virtual_router_id: u8, priority: u8, virtual_ip: &str) -> VrrpInstance {
        VrrpInstance {
            name: "VI_1".to_owned(),
            interface: "eth0".to_owned(),
            version: 2,
            virtual_router_id,
            priority,
            advert_int: Duration::from_secs(1),
            nopreempt: false,
            virtual_ipaddress: vec![virtual_ip.to_owned()],
            unicast_src_ip: None,
            unicast_peer: Vec::new(),
            auth_pass: None,
            garp_master_repeat: None,
            garp_master_delay: None,
            garp_master_refresh: None,
            hooks: Hooks::default(),
        }
    }

    /// Skew_Time of a backup of this priority: (256 − priority) / 256 s for
    /// version 2 (RFC 3768), that times Master_Adver_Interval for version 3
    /// (RFC 5798).
    pub fn skew_time(&self) -> Duration {
        let unit = if self.version == 2 {
            Duration::from_secs(1)
        } else {
            self.advert_int
        };
        unit * (256 - u32::from(self.priority)) / 256
    }

    /// The announcement settings that are set, with their config keys
    /// (the same in both configs) and values.
    fn announcement_settings(&self) -> Vec<(&'static str, String)> {
        [
            (
                "garp_master_repeat",
                self.garp_master_repeat.map(|repeat| repeat.to_string()),
            ),
            ("garp_master_delay", self.garp_master_delay.map(seconds)),
            ("garp_master_refresh", self.garp_master_refresh.map(seconds)),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .collect()
    }

    fn unicast_peer_texts(&self) -> Vec<String> {
        self.unicast_peer.iter().map(IpAddr::to_string).collect()
    }

    /// Master_Down_Interval: 3 × advert interval + Skew_Time — how long a
    /// backup of this priority waits without adverts before taking over.
    pub fn master_down_interval(&self) -> Duration {
        self.advert_int * 3 + self.skew_time()
    }
}

/// Renders a vrrpd config (YAML) holding `instances`.
pub fn vrrpd_config(instances: &[VrrpInstance]) -> String {
    let mut yaml = String::from("instances:\n");
    for instance in instances {
        let mut field = |key: &str, value: String| {
            let lead = if key == "name" { "  - " } else { "    " };
            writeln!(yaml, "{lead}{key}: {value}").expect("writing to a String");
        };
        field("name", quoted(&instance.name));
        field("interface", quoted(&instance.interface));
        field("virtual_router_id", instance.virtual_router_id.to_string());
        field("priority", instance.priority.to_string());
        field("version", instance.version.to_string());
        field("advert_int", seconds(instance.advert_int));
        if instance.nopreempt {
            field("nopreempt", "true".to_owned());
        }
        field(
            "virtual_ipaddress",
            quoted_list(&instance.virtual_ipaddress),
        );
        if let Some(source) = instance.unicast_src_ip {
            field("unicast_src_ip", quoted(&source.to_string()));
        }
        if !instance.unicast_peer.is_empty() {
            field("unicast_peer", quoted_list(&instance.unicast_peer_texts()));
        }
        if let Some(pass) = &instance.auth_pass {
            field(
                "authentication",
                format!("{{auth_type: PASS, auth_pass: {}}}", quoted(pass)),
            );
        }
        for (key, value) in instance.announcement_settings() {
            field(key, value);
        }
        let hooks = &instance.hooks;
        if let Some(timeout) = hooks.notify_timeout {
            field("notify_timeout", seconds(timeout));
        }
        for (key, argv) in hooks.by_name() {
            if !argv.is_empty() {
                field(key, quoted_list(argv));
            }
        }
    }
    yaml
}

/// Renders a keepalived.conf running `instances` (VRRP only), with
/// `router_id` naming the node in keepalived's logs. Hooks run as root,
/// with keepalived's script security on (their paths must not be writable
/// by anyone but root).
pub fn keepalived_config(router_id: &str, instances: &[VrrpInstance]) -> String {
    let mut conf = format!(
        "global_defs {{\n    router_id {router_id}\n    script_user root\n    enable_script_security\n}}\n"
    );
    for instance in instances {
        let mut body = vec![
            // keepalived's nopreempt needs state BACKUP; every instance
            // starts as backup anyway, as vrrpd's do.
            "state BACKUP".to_owned(),
            format!("interface {}", instance.interface),
            format!("version {}", instance.version),
            format!("virtual_router_id {}", instance.virtual_router_id),
            format!("priority {}", instance.priority),
            format!("advert_int {}", seconds(instance.advert_int)),
        ];
        if instance.nopreempt {
            body.push("nopreempt".to_owned());
        }
        if let Some(source) = instance.unicast_src_ip {
            body.push(format!("unicast_src_ip {source}"));
        }
        if !instance.unicast_peer.is_empty() {
            body.push(keepalived_block(
                "unicast_peer",
                &instance.unicast_peer_texts(),
            ));
        }
        if let Some(pass) = &instance.auth_pass {
            body.push(keepalived_block(
                "authentication",
                &["auth_type PASS".to_owned(), format!("auth_pass {pass}")],
            ));
        }
        for (key, value) in instance.announcement_settings() {
            body.push(format!("{key} {value}"));
        }
        body.push(keepalived_block(
            "virtual_ipaddress",
            &instance.virtual_ipaddress,
        ));
        for (key, argv) in instance.hooks.by_name() {
            if !argv.is_empty() {
                body.push(format!("{key} \"{}\"", keepalived_command(argv)));
            }
        }
        writeln!(
            conf,
            "vrrp_instance {} {{\n{}}}",
            instance.name,
            indent(&body.join("\n"))
        )
        .expect("writing to a String");
    }
    conf
}

impl Hooks {
    /// Each hook with its config key, in a fixed order.
    fn by_name(&self) -> [(&'static str, &Vec<String>); 5] {
        [
            ("notify_master", &self.notify_master),
            ("notify_backup", &self.notify_backup),
            ("notify_fault", &self.notify_fault),
            ("notify_stop", &self.notify_stop),
            ("notify", &self.notify),
        ]
    }
}

/// `key {`, one item a line, `}`.
fn keepalived_block(key: &str, items: &[String]) -> String {
    format!("{key} {{\n{}}}", indent(&items.join("\n")))
}

/// Indents every line by four spaces and ends each with a newline.
fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}

/// keepalived takes a hook as one quoted string that it splits at spaces,
/// so words must not hold spaces or quotes.
fn keepalived_command(argv: &[String]) -> String {
    for word in argv {
        assert!(
            !word.is_empty()
                && !word.contains(|c: char| c.is_whitespace() || c == '"' || c == '\''),
            "keepalived cannot pass the hook argument {word:?}: use words without spaces or quotes"
        );
    }
    argv.join(" ")
}

/// A YAML double-quoted scalar: JSON strings are valid YAML.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serialises")
}

/// A YAML flow sequence of double-quoted scalars.
fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| quoted(item)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A duration in seconds as both configs write it: `1`, `0.1`.
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        duration.as_secs().to_string()
    } else {
        duration.as_secs_f64().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_instance() -> VrrpInstance {
        VrrpInstance {
            version: 2,
            nopreempt: true,
            unicast_src_ip: Some("10.99.0.1".parse().unwrap()),
            unicast_peer: vec!["10.99.0.2".parse().unwrap()],
            auth_pass: Some("secret1".to_owned()),
            garp_master_repeat: Some(3),
            garp_master_delay: Some(Duration::from_secs(2)),
            garp_master_refresh: Some(Duration::from_secs(60)),
            hooks: Hooks {
                notify_master: vec!["/lab/hook".to_owned(), "master".to_owned()],
                notify: vec!["/lab/notify".to_owned()],
                notify_timeout: Some(Duration::from_secs(1)),
                ..Hooks::default()
            },
            ..VrrpInstance::new(51, 150, "10.99.0.100/24")
        }
    }

    #[test]
    fn renders_vrrpd_yaml() {
        assert_eq!(
            vrrpd_config(&[full_instance()]),
            r#"instances:
  - name: "VI_1"
    interface: "eth0"
    virtual_router_id: 51
    priority: 150
    version: 2
    advert_int: 1
    nopreempt: true
    virtual_ipaddress: ["10.99.0.100/24"]
    unicast_src_ip: "10.99.0.1"
    unicast_peer: ["10.99.0.2"]
    authentication: {auth_type: PASS, auth_pass: "secret1"}
    garp_master_repeat: 3
    garp_master_delay: 2
    garp_master_refresh: 60
    notify_timeout: 1
    notify_master: ["/lab/hook", "master"]
    notify: ["/lab/notify"]
"#
        );
    }

    #[test]
    fn renders_keepalived_conf() {
        assert_eq!(
            keepalived_config("h1", &[full_instance()]),
            r#"global_defs {
    router_id h1
    script_user root
    enable_script_security
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    version 2
    virtual_router_id 51
    priority 150
    advert_int 1
    nopreempt
    unicast_src_ip 10.99.0.1
    unicast_peer {
        10.99.0.2
    }
    authentication {
        auth_type PASS
        auth_pass secret1
    }
    garp_master_repeat 3
    garp_master_delay 2
    garp_master_refresh 60
    virtual_ipaddress {
        10.99.0.100/24
    }
    notify_master "/lab/hook master"
    notify "/lab/notify"
}
"#
        );
    }

    #[test]
    fn writes_fractional_advert_intervals() {
        let fast = VrrpInstance {
            version: 3,
            advert_int: Duration::from_millis(100),
            ..VrrpInstance::new(52, 100, "10.99.0.101/24")
        };
        assert!(vrrpd_config(std::slice::from_ref(&fast)).contains("    advert_int: 0.1\n"));
        assert!(keepalived_config("h2", &[fast]).contains("    advert_int 0.1\n"));
    }

    #[test]
    fn computes_rfc_timers() {
        let v2 = VrrpInstance::new(51, 100, "10.99.0.100/24");
        assert_eq!(v2.skew_time(), Duration::from_secs(156) / 256);
        assert_eq!(
            v2.master_down_interval(),
            Duration::from_secs(3) + Duration::from_secs(156) / 256
        );
        let v3 = VrrpInstance {
            version: 3,
            advert_int: Duration::from_millis(100),
            ..v2
        };
        assert_eq!(v3.skew_time(), Duration::from_millis(100) * 156 / 256);
        assert_eq!(
            v3.master_down_interval(),
            Duration::from_millis(300) + Duration::from_millis(100) * 156 / 256
        );
    }

    #[test]
    #[should_panic(expected = "without spaces or quotes")]
    fn refuses_hook_words_keepalived_would_split() {
        let instance = VrrpInstance {
            hooks: Hooks {
                notify: vec!["/lab/my hook".to_owned()],
                ..Hooks::default()
            },
            ..VrrpInstance::new(51, 100, "10.99.0.100/24")
        };
        keepalived_config("h1", &[instance]);
    }
}
