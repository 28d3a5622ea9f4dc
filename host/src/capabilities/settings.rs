//! The `settings` capability: a monitor reads the `settings:` of its own config entry through
//! the standard `wasi:config/store` interface (served by the `wasmtime-wasi-config` crate), so
//! a component written for any host with `wasi:config` runs here unchanged.
//!
//! Settings are plain configuration, not secrets: they are listed by `check`, not audited,
//! and each instance sees only its own monitor's map. Values are strings: YAML scalars as
//! written (`10`, `true`, `eu-west-1`), lists and maps as compact JSON (`["a","b"]`).
//!
//! Owns the `settings:` key of a monitor ([`Settings`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use wasmtime::component::Linker;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

/// The interface this capability serves (WASI's, not `sentinela:plugin`'s).
pub const INTERFACE: &str = "wasi:config/store";

/// At most this many settings per monitor.
pub const MAX_SETTINGS: usize = 256;
/// A key is 1 to this many letters, digits, `_`, `-` and `.`.
pub const MAX_KEY_LEN: usize = 128;
/// A value (a list or map as JSON included) is at most this many bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// Links `wasi:config/store` for store data `T`; `get` finds the instance's settings in it.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> WasiConfig<'_>,
) -> wasmtime::Result<()> {
    wasmtime_wasi_config::add_to_linker(linker, get)
}

/// A monitor's `settings:`: key → value as the guest reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(BTreeMap<String, String>);

impl Settings {
    /// Each key and its value, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether the monitor has no settings.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` to `value` (`sentinela invoke --set KEY=VALUE`), with the config's rules.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        check_key(key)?;
        check_value(key, value)?;
        if !self.0.contains_key(key) && self.0.len() >= MAX_SETTINGS {
            return Err(format!("at most {MAX_SETTINGS} settings per monitor"));
        }
        self.0.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// What instances of the monitor read, built once when it is loaded.
    pub fn variables(&self) -> Arc<WasiConfigVariables> {
        Arc::new(self.0.iter().collect())
    }
}

fn check_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid setting name '{}': use 1 to {MAX_KEY_LEN} letters, digits, '_', '-' and '.'",
            crate::guest_text::shortened(key, MAX_KEY_LEN)
        ))
    }
}

fn check_value(key: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "setting '{key}' is {} bytes, over the limit of {MAX_VALUE_BYTES}",
            value.len()
        ));
    }
    Ok(())
}

/// The text a monitor reads for one YAML value: scalars as written, lists and maps as JSON.
fn value_text(key: &str, value: serde_yaml::Value) -> Result<String, String> {
    use serde_yaml::Value;
    match value {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Err(format!(
            "setting '{key}' has no value: give one (\"\" for an empty string) or remove the key"
        )),
        Value::Tagged(_) => Err(format!("setting '{key}': YAML tags are not supported")),
        list_or_map => serde_json::to_string(&list_or_map)
            .map_err(|e| format!("setting '{key}': cannot be passed as JSON: {e}")),
    }
}

impl<'de> Deserialize<'de> for Settings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, serde_yaml::Value>::deserialize(deserializer)?;
        if raw.len() > MAX_SETTINGS {
            return Err(de::Error::custom(format!(
                "{} settings, over the limit of {MAX_SETTINGS}",
                raw.len()
            )));
        }
        let mut settings = Settings::default();
        for (key, value) in raw {
            let text = value_text(&key, value).map_err(de::Error::custom)?;
            settings.set(&key, &text).map_err(de::Error::custom)?;
        }
        Ok(settings)
    }
}

impl fmt::Display for Settings {
    /// `key=value` pairs for `check`, each value escaped and shortened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={}", crate::guest_text::shortened(value, 80))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Settings, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn scalars_as_written_lists_and_maps_as_json() {
        let settings =
            parse("threshold: 10\nratio: 0.5\non: true\nqueue: orders\nqueues: [a, b]\nm: {k: 1}")
                .unwrap();
        let map: BTreeMap<_, _> = settings.iter().collect();
        assert_eq!(map["threshold"], "10");
        assert_eq!(map["ratio"], "0.5");
        assert_eq!(map["on"], "true");
        assert_eq!(map["queue"], "orders");
        assert_eq!(map["queues"], r#"["a","b"]"#);
        assert_eq!(map["m"], r#"{"k":1}"#);
    }

    #[test]
    fn refuses_bad_keys_empty_values_and_oversize() {
        assert!(
            parse("'bad key': 1")
                .unwrap_err()
                .contains("invalid setting name")
        );
        assert!(parse("x:").unwrap_err().contains("has no value"));
        let big = format!("x: '{}'", "a".repeat(MAX_VALUE_BYTES + 1));
        assert!(parse(&big).unwrap_err().contains("over the limit"));
        let many: String = (0..=MAX_SETTINGS).map(|i| format!("k{i}: 1\n")).collect();
        assert!(parse(&many).unwrap_err().contains("over the limit"));
        let mut settings = Settings::default();
        assert!(
            settings
                .set("a\u{1b}[31m", "1")
                .unwrap_err()
                .contains("\\u{1b}")
        );
    }
}
