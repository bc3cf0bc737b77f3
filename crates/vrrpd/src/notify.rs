//! Which hook commands a state change runs, with keepalived's arguments:
//! `notify_master` / `notify_backup` / `notify_stop` get only their
//! configured arguments; the generic `notify` gets four more,
//! `INSTANCE <name> <STATE> <priority>`. Both see the same facts in the
//! environment, with the virtual addresses.

use hapair_config::{HookCommand, VrrpInstance};
use hookrun::Job;
use vrrp::State;

/// The state word hooks see: keepalived's, with STOP for a stopped instance.
pub fn state_word(state: State) -> &'static str {
    match state {
        State::Initialize => "STOP",
        other => other.name(),
    }
}

/// The jobs to run, in order, when `instance` entered `state`.
pub fn transition_jobs(instance: &VrrpInstance, state: State, priority: u8) -> Vec<Job> {
    let word = state_word(state);
    let (specific_name, specific) = match state {
        State::Master => ("notify_master", &instance.notify_master),
        State::Backup => ("notify_backup", &instance.notify_backup),
        State::Initialize => ("notify_stop", &instance.notify_stop),
    };
    let addresses = instance
        .virtual_ipaddress
        .iter()
        .map(|vip| format!("{}/{}", vip.address, vip.prefix_len))
        .collect::<Vec<_>>()
        .join(" ");
    let job = |hook_name: &str, command: &HookCommand, extra: &[String]| {
        let mut argv = command.argv.clone();
        argv.extend_from_slice(extra);
        Job::new(
            format!("{} {hook_name}", instance.name),
            argv,
            instance.notify_timeout,
        )
        .with_env("HAPAIR_INSTANCE", &instance.name)
        .with_env("HAPAIR_STATE", word)
        .with_env("HAPAIR_PRIORITY", priority.to_string())
        .with_env("HAPAIR_VIRTUAL_ADDRESSES", &addresses)
    };
    let mut jobs = Vec::new();
    if let Some(command) = specific {
        jobs.push(job(specific_name, command, &[]));
    }
    if let Some(command) = &instance.notify {
        let extra = [
            "INSTANCE".to_string(),
            instance.name.clone(),
            word.to_string(),
            priority.to_string(),
        ];
        jobs.push(job("notify", command, &extra));
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> VrrpInstance {
        let text = "instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    \
                    virtual_ipaddress: [10.0.0.100/24, 10.0.0.101/24]\n    \
                    notify_master: [/hooks/promote, r0]\n    notify: /hooks/log 'two words'\n";
        hapair_config::VrrpConfig::parse(text, "test.yaml", None)
            .unwrap()
            .instances
            .remove(0)
    }

    #[test]
    fn master_runs_its_hook_then_notify_with_keepalived_arguments() {
        let jobs = transition_jobs(&instance(), State::Master, 150);
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].argv, ["/hooks/promote", "r0"]);
        assert_eq!(jobs[0].name, "VI_1 notify_master");
        assert_eq!(
            jobs[1].argv,
            [
                "/hooks/log",
                "two words",
                "INSTANCE",
                "VI_1",
                "MASTER",
                "150"
            ]
        );
        assert!(jobs[1].env.contains(&(
            "HAPAIR_VIRTUAL_ADDRESSES".into(),
            "10.0.0.100/24 10.0.0.101/24".into()
        )));
        assert!(
            jobs[0]
                .env
                .contains(&("HAPAIR_STATE".into(), "MASTER".into()))
        );
    }

    #[test]
    fn unconfigured_hooks_run_nothing_and_stop_says_stop() {
        let jobs = transition_jobs(&instance(), State::Initialize, 150);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].argv[2..], ["INSTANCE", "VI_1", "STOP", "150"]);
    }
}
