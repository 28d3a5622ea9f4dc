//! A config builder: tests say what they configure, and the YAML is written for them.
//!
//! ```ignore
//! let config = TestConfig::new()
//!     .set("executor.concurrency", 4)
//!     .monitor(Monitor::new("steady", "steady").search_every_second())
//!     .monitor(Monitor::new("spinner", "hostile_infinite_loop").set("limits.timeout", "2s"))
//!     .write(&dir);
//! ```
//! Tests about the config's own syntax (line numbers, quoting) keep their YAML as text.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::{guest, write_config};

/// A whole config file.
#[derive(Debug, Clone, Default)]
pub struct TestConfig {
    root: Mapping,
    monitors: Vec<Value>,
}

impl TestConfig {
    pub fn new() -> TestConfig {
        TestConfig::default()
    }

    /// Sets a key by its dotted path: `executor.concurrency`, `store.type`, `plugins`.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> TestConfig {
        set_path(&mut self.root, path, value.into());
        self
    }

    /// Sets a key to a value written as YAML, for the nested ones (`credentials:`, `queues:`).
    pub fn set_yaml(self, path: &str, yaml: &str) -> TestConfig {
        self.set(path, parse(yaml))
    }

    /// Adds a monitor after the ones already added.
    pub fn monitor(mut self, monitor: Monitor) -> TestConfig {
        self.monitors.push(Value::Mapping(monitor.0));
        self
    }

    /// The config as YAML text.
    pub fn yaml(&self) -> String {
        let mut root = self.root.clone();
        if !self.monitors.is_empty() {
            root.insert("monitors".into(), Value::Sequence(self.monitors.clone()));
        }
        serde_yaml::to_string(&root).unwrap()
    }

    /// Writes it as `sentinela.yaml` in `dir`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        write_config(dir, &self.yaml())
    }
}

/// One entry of `monitors:`.
#[derive(Debug, Clone)]
pub struct Monitor(Mapping);

impl Monitor {
    /// A monitor running the guest component `guests/dist/{component}.wasm`.
    pub fn new(name: &str, component: &str) -> Monitor {
        Monitor::with_plugin(name, &guest(component))
    }

    /// A monitor running the component at `plugin`.
    pub fn with_plugin(name: &str, plugin: &Path) -> Monitor {
        let mut entry = Mapping::new();
        entry.insert("name".into(), name.into());
        entry.insert("plugin".into(), plugin.display().to_string().into());
        Monitor(entry)
    }

    /// `search_cron` every second.
    pub fn search_every_second(self) -> Monitor {
        self.set("search_cron", "* * * * * *")
    }

    /// `update_cron` every second.
    pub fn update_every_second(self) -> Monitor {
        self.set("update_cron", "* * * * * *")
    }

    /// Sets a key by its dotted path: `limits.timeout`, `grants.credentials`.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Monitor {
        set_path(&mut self.0, path, value.into());
        self
    }

    /// Sets a key to a value written as YAML: `.set_yaml("grants.aws", "[sqs:ListQueues]")`.
    pub fn set_yaml(self, path: &str, yaml: &str) -> Monitor {
        self.set(path, parse(yaml))
    }
}

fn parse(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("test YAML {yaml:?}: {e}"))
}

fn set_path(map: &mut Mapping, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.into(), value);
        }
        Some((key, rest)) => {
            let child = map
                .entry(key.into())
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            let Value::Mapping(child) = child else {
                panic!("{key} is not a mapping");
            };
            set_path(child, rest, value);
        }
    }
}
