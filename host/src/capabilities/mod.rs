//! The capabilities a monitor imports — `log`, `secrets`, `aws-call`, `queue` and `settings`
//! (`wasi:config/store`) — one module
//! each, owning its config section, grants, shared state, per-instance state, `add_to_linker`
//! and `impl Host`; and the table of which imports exist and who provides each. A
//! component's imports are checked against the table at load, so a monitor that needs a
//! capability the host does not offer fails before it ever runs, with an error that says how
//! to get it. The linker itself is assembled in [`crate::instance`].

pub mod aws_call;
pub mod guest_error;
pub mod log;
pub mod queue;
pub mod secrets;
pub mod settings;

use std::collections::BTreeMap;

use crate::grants::Grants;
use crate::producers::Sdk;
use crate::providers::{HostPlugin, HostPlugins};
use secrets::SecretSource;

/// The WIT package and version this host implements.
pub const PACKAGE: &str = "sentinela:plugin";
/// The version of [`PACKAGE`] this host implements; another version is refused at load.
pub const VERSION: &str = "0.1.0";

/// Where an import comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// WASI, inside the sandbox: no env, no files, no sockets, no stdin.
    Wasi,
    /// Always linked (`log`, shared types).
    Core,
    /// Linked only when the host plugin is enabled.
    HostPlugin(HostPlugin),
}

/// Each capability's interfaces and who provides them.
const CAPABILITIES: &[(&[&str], Provider)] = &[
    (log::INTERFACES, Provider::Core),
    (secrets::INTERFACES, Provider::Core),
    (aws_call::INTERFACES, Provider::HostPlugin(HostPlugin::Aws)),
    (queue::INTERFACES, Provider::HostPlugin(HostPlugin::Aws)),
];

/// What the host can do about one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportCheck {
    /// Linked, by this provider.
    Provided(Provider),
    /// Served by a host plugin that is not enabled: linked, and every call is denied with
    /// the variable to set.
    NeedsHostPlugin(HostPlugin),
    /// Never offered to monitors.
    Forbidden(&'static str),
    /// Another version of the `sentinela:plugin` package.
    WrongVersion,
    /// Neither WASI nor this host's package: nothing provides it.
    Unknown,
}

impl ImportCheck {
    /// Classifies the import `name` (e.g. `sentinela:plugin/log@0.1.0`).
    pub fn of(name: &str, enabled: &HostPlugins) -> ImportCheck {
        let (path, version) = name.split_once('@').unwrap_or((name, ""));
        let (package, interface) = path.split_once('/').unwrap_or((path, ""));
        if package == "wasi:http" {
            return ImportCheck::Forbidden(
                "monitors have no network access; AWS is reached through aws-call",
            );
        }
        if package.starts_with("wasi:") {
            return ImportCheck::Provided(Provider::Wasi);
        }
        if package != PACKAGE {
            return ImportCheck::Unknown;
        }
        if version != VERSION {
            return ImportCheck::WrongVersion;
        }
        let provider = CAPABILITIES
            .iter()
            .find(|(interfaces, _)| interfaces.contains(&interface))
            .map(|(_, provider)| provider.clone());
        match provider {
            Some(Provider::HostPlugin(plugin)) if !enabled.is_enabled(plugin) => {
                ImportCheck::NeedsHostPlugin(plugin)
            }
            Some(provider) => ImportCheck::Provided(provider),
            None => ImportCheck::Unknown,
        }
    }

    /// Why a monitor importing `name` cannot be loaded, if it cannot.
    pub fn problem(&self, name: &str) -> Option<String> {
        match self {
            ImportCheck::Provided(_) | ImportCheck::NeedsHostPlugin(_) => None,
            ImportCheck::Forbidden(why) => {
                Some(format!("imports {name}, which is never provided: {why}"))
            }
            ImportCheck::WrongVersion => Some(format!(
                "imports {name}, but this host implements {PACKAGE}@{VERSION}; rebuild the plugin \
                 against that version of the WIT package"
            )),
            ImportCheck::Unknown => Some(format!("imports {name}, which no host plugin provides")),
        }
    }

    /// What a monitor importing `name` loads with but cannot use, if anything: the calls of
    /// a disabled host plugin's interface (componentize-py and componentize-js components
    /// import every interface of the world, used or not, so this cannot refuse the load).
    pub fn warning(&self, name: &str) -> Option<String> {
        match self {
            ImportCheck::NeedsHostPlugin(plugin) => Some(format!(
                "imports {name}, which the '{plugin}' host plugin provides; it is not enabled, \
                 so every call is denied: set SENTINELA_PLUGINS={plugin} (or add it to the \
                 config's 'plugins:') if the monitor calls it"
            )),
            _ => None,
        }
    }
}

/// The denial a monitor gets for a call of a disabled host plugin's interface.
pub fn host_plugin_disabled(
    plugin: HostPlugin,
) -> crate::bindings::sentinela::plugin::types::Error {
    crate::bindings::sentinela::plugin::types::Error::Denied(format!(
        "the '{plugin}' host plugin is not enabled: set SENTINELA_PLUGINS={plugin} (or add it \
         to the config's 'plugins:')"
    ))
}

/// Grants a monitor can never use (it does not import the interface they serve) and imports
/// it can never use (nothing is granted for them), one sentence each, for `check`. The
/// imports of a component built by an [`Sdk`] that imports them all say nothing of what it
/// calls: no sentence about those.
pub fn unusable_grants_and_imports(
    sdk: Option<Sdk>,
    imports: &[String],
    grants: &Grants,
    secrets: &BTreeMap<String, SecretSource>,
    settings: &settings::Settings,
) -> Vec<String> {
    let imports_interface = |interface: &str| {
        imports
            .iter()
            .any(|i| i.starts_with(&format!("{PACKAGE}/{interface}@")))
    };
    let mut found = Vec::new();
    let mut unused = |what: &str, interface: &str| {
        found.push(format!(
            "{what} granted but the plugin does not import {interface}: never used"
        ))
    };
    if !imports_interface("aws-call") {
        if !grants.credentials.is_empty() {
            unused("credentials are", "aws-call");
        }
        if !grants.aws.is_empty() {
            unused("grants.aws entries are", "aws-call");
        }
    }
    if !imports_interface("queue") && !grants.queues.is_empty() {
        unused("queues are", "queue");
    }
    if !imports_interface("secrets") && !secrets.is_empty() {
        unused("secrets are declared and", "secrets");
    }
    let imports_settings = imports
        .iter()
        .any(|i| i.starts_with(&format!("{}@", settings::INTERFACE)));
    if !imports_settings && !settings.is_empty() {
        found.push(format!(
            "settings are given but the plugin does not import {}: never read",
            settings::INTERFACE
        ));
    }
    if sdk.is_some() {
        return found;
    }
    if imports_interface("aws-call") {
        if grants.credentials.is_empty() {
            found.push(
                "imports aws-call but is granted no credentials: every call will be denied".into(),
            );
        } else if grants.aws.is_empty() {
            found.push(
                "imports aws-call but has no grants.aws entries: every call will be denied \
                 (add 'service:Operation' entries)"
                    .into(),
            );
        }
    }
    if imports_interface("queue") && grants.queues.is_empty() {
        found.push("imports queue but is granted no queues: every call will be denied".into());
    }
    if imports_interface("secrets") && secrets.is_empty() {
        found.push("imports secrets but declares none: every secrets.get will be denied".into());
    }
    found
}

/// The monitor export every plugin must have.
pub fn monitor_export() -> String {
    format!("{PACKAGE}/checks@{VERSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_imports() {
        let none = HostPlugins::default();
        let aws = HostPlugins::from_list(&[HostPlugin::Aws]);
        assert_eq!(
            ImportCheck::of("wasi:cli/environment@0.2.6", &none),
            ImportCheck::Provided(Provider::Wasi)
        );
        assert!(matches!(
            ImportCheck::of("wasi:http/outgoing-handler@0.2.6", &none),
            ImportCheck::Forbidden(_)
        ));
        assert_eq!(
            ImportCheck::of("sentinela:plugin/log@0.1.0", &none),
            ImportCheck::Provided(Provider::Core)
        );
        assert_eq!(
            ImportCheck::of("sentinela:plugin/aws-call@0.1.0", &none),
            ImportCheck::NeedsHostPlugin(HostPlugin::Aws)
        );
        assert_eq!(
            ImportCheck::of("sentinela:plugin/aws-call@0.1.0", &aws),
            ImportCheck::Provided(Provider::HostPlugin(HostPlugin::Aws))
        );
        assert_eq!(
            ImportCheck::of("sentinela:plugin/queue@0.1.0", &aws),
            ImportCheck::Provided(Provider::HostPlugin(HostPlugin::Aws))
        );
        assert_eq!(
            ImportCheck::of("sentinela:plugin/secrets@0.1.0", &none),
            ImportCheck::Provided(Provider::Core)
        );
        assert_eq!(
            ImportCheck::of("sentinela:plugin/log@0.2.0", &none),
            ImportCheck::WrongVersion
        );
        assert_eq!(
            ImportCheck::of("acme:evil/thing", &none),
            ImportCheck::Unknown
        );
        let queue = ImportCheck::of("sentinela:plugin/queue@0.1.0", &none);
        assert_eq!(queue.problem("sentinela:plugin/queue@0.1.0"), None);
        assert!(
            queue
                .warning("sentinela:plugin/queue@0.1.0")
                .unwrap()
                .contains("SENTINELA_PLUGINS=aws")
        );
    }
}
