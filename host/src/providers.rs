//! Host plugins: capability providers compiled into the host and switched on by name, the
//! way Sentinela enables its plugins (`SENTINELA_PLUGINS=aws`).

use std::fmt;

use anyhow::{Result, bail};
use serde::de::{self, Deserialize, Deserializer};

/// The environment variable that enables host plugins.
pub const PLUGINS_ENV: &str = "SENTINELA_PLUGINS";

/// A host plugin that can be enabled. `core` (log, internal queue) is always on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostPlugin {
    /// AWS: SQS queues, `aws-call`, Secrets Manager and SSM secrets, credential connectors.
    Aws,
}

impl HostPlugin {
    /// Every host plugin this build contains, for lookups by name and error messages.
    pub const ALL: &'static [HostPlugin] = &[HostPlugin::Aws];

    /// The plugin's name in `plugins:` and `SENTINELA_PLUGINS`.
    pub fn name(self) -> &'static str {
        match self {
            HostPlugin::Aws => "aws",
        }
    }

    /// The plugin called `name` (exact, lower case); the error lists the known names.
    pub fn from_name(name: &str) -> Result<HostPlugin, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown host plugin '{name}'; known host plugins: {}",
                    known.join(", ")
                )
            })
    }
}

impl fmt::Display for HostPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for HostPlugin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        HostPlugin::from_name(name.trim()).map_err(de::Error::custom)
    }
}

/// The set of enabled host plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPlugins {
    enabled: Vec<HostPlugin>,
}

impl HostPlugins {
    /// Parses `SENTINELA_PLUGINS`: comma-separated names, spaces trimmed, empty items ignored.
    pub fn from_env_value(value: &str) -> Result<HostPlugins> {
        let mut enabled = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match HostPlugin::from_name(name) {
                Ok(plugin) if !enabled.contains(&plugin) => enabled.push(plugin),
                Ok(_) => {}
                Err(e) => bail!("{e}"),
            }
        }
        Ok(HostPlugins { enabled })
    }

    /// The plugins of the config's `plugins:` list, duplicates dropped.
    pub fn from_list(list: &[HostPlugin]) -> HostPlugins {
        let mut enabled = Vec::new();
        for plugin in list {
            if !enabled.contains(plugin) {
                enabled.push(*plugin);
            }
        }
        HostPlugins { enabled }
    }

    /// Whether `plugin` is enabled, so the capabilities it provides can be granted.
    pub fn is_enabled(&self, plugin: HostPlugin) -> bool {
        self.enabled.contains(&plugin)
    }

    /// The enabled plugins' names, in the order they were first listed (for `check`).
    pub fn names(&self) -> Vec<&'static str> {
        self.enabled.iter().map(|p| p.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_value_is_trimmed_and_checked() {
        let plugins = HostPlugins::from_env_value(" aws , ").unwrap();
        assert!(plugins.is_enabled(HostPlugin::Aws));
        assert!(
            !HostPlugins::from_env_value("")
                .unwrap()
                .is_enabled(HostPlugin::Aws)
        );
        let err = HostPlugins::from_env_value("aws,slack")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown host plugin 'slack'") && err.contains("known host plugins: aws"),
            "{err}"
        );
    }
}
