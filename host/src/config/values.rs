//! Value types shared by every config section: sizes, durations, names, cron schedules and
//! paths resolved against the config file. Each checks itself in `Deserialize`, so serde_yaml
//! reports a bad value with its key path and line.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::oci::{OciReference, Resolved};
use serde::de::{self, Deserializer};

/// A SHA-256 digest written as 64 hex digits (any case), kept lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Hex(pub String);

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let hex = text.strip_prefix("sha256:").unwrap_or(&text);
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Sha256Hex(hex.to_ascii_lowercase()))
        } else {
            Err(de::Error::custom(format!(
                "invalid SHA-256 '{}': 64 hex digits (as `sha256sum` prints them)",
                crate::guest_text::shortened(&text, 80)
            )))
        }
    }
}

/// A monitor's name: lowercase letters, digits, `-` and `_`, starting with a letter; it tags
/// every log line and keys the monitor's issues.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MonitorName(String);

impl MonitorName {
    /// The name as written in the config (already validated).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MonitorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MonitorName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let valid = s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if valid {
            Ok(MonitorName(s.to_owned()))
        } else {
            Err(format!(
                "invalid monitor name '{s}': use 1 to 64 lowercase letters, digits, '-' or '_', \
                 starting with a letter"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for MonitorName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// A cron expression: 5 fields (minute precision, as Sentinela) or 6 with leading seconds.
/// Clones share the parsed expression.
#[derive(Clone)]
pub struct Schedule(Arc<ParsedSchedule>);

struct ParsedSchedule {
    expression: String,
    cron: croner::Cron,
}

impl Schedule {
    /// Makes this schedule share the parsed expression of an equal one in `seen`, or adds it
    /// there: monitors of one config that share an expression keep one parse of it (about
    /// 1.6 KiB: 10,000 monitors on two expressions hold two, not 20,000).
    pub fn share(&mut self, seen: &mut HashMap<String, Schedule>) {
        let shared = seen
            .entry(self.0.expression.clone())
            .or_insert_with(|| self.clone());
        *self = shared.clone();
    }

    /// The first time strictly after `after` that matches.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.cron.find_next_occurrence(&after, false).ok()
    }

    /// The cron expression as written in the config, for display.
    pub fn expression(&self) -> &str {
        &self.0.expression
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.0.expression)
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let cron = croner::Cron::new(s)
            .with_seconds_optional()
            .parse()
            .map_err(|e| format!("invalid cron expression '{s}': {e}"))?;
        // A field that matches no value (`L` or `,,,,` as minutes) never fires, and croner
        // finds that out only by searching up to the year 5000 (seconds of CPU): refused
        // here at once, field by field.
        let p = &cron.pattern;
        let fields = [
            (
                "second",
                (0..60).any(|v| p.second_match(v).unwrap_or(false)),
            ),
            (
                "minute",
                (0..60).any(|v| p.minute_match(v).unwrap_or(false)),
            ),
            ("hour", (0..24).any(|v| p.hour_match(v).unwrap_or(false))),
            ("month", (1..13).any(|v| p.month_match(v).unwrap_or(false))),
        ];
        if let Some((field, _)) = fields.iter().find(|(_, matches_one)| !matches_one) {
            return Err(format!(
                "cron expression '{s}' never fires: its {field} field matches no {field}"
            ));
        }
        // croner accepts expressions that never fire (e.g. February 31st); reject them here
        // rather than having a monitor silently never run.
        if cron
            .find_next_occurrence(&chrono::Utc::now(), false)
            .is_err()
        {
            return Err(format!("cron expression '{s}' never fires"));
        }
        Ok(Schedule(Arc::new(ParsedSchedule {
            expression: s.to_owned(),
            cron,
        })))
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// A byte count: an integer, or a number with a unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| format!("invalid size '{s}'"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "invalid size unit '{other}' in '{s}', use KiB, MiB or GiB"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size '{s}' is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(de::Error::custom),
        }
    }
}

/// A duration: a number of seconds, or a number with a unit (`ms`, `s`, `m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// The longest duration any setting takes (STS's longest role session).
    pub const MAX: Duration = Duration::from_secs(12 * 3600);
}

impl FromStr for ConfigDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration '{s}'"))?;
        let secs = match unit.trim() {
            "" | "s" => n,
            "ms" => n / 1000.0,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            other => {
                return Err(format!(
                    "invalid duration unit '{other}' in '{s}', use ms, s, m or h"
                ));
            }
        };
        Duration::try_from_secs_f64(secs)
            .map(ConfigDuration)
            .map_err(|_| format!("invalid duration '{s}'"))
    }
}

impl ConfigDuration {
    /// A duration as written (a number of seconds, or text with a unit), zero allowed: for
    /// the few settings where zero means "off".
    pub fn deserialize_unbounded<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let parsed = match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Duration::try_from_secs_f64(n)
                .map(ConfigDuration)
                .map_err(|_| format!("invalid duration {n}")),
            Raw::Text(s) => s.parse(),
        };
        parsed.map(|d| d.0).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match ConfigDuration::deserialize_unbounded(deserializer)? {
            d if d.is_zero() => Err(de::Error::custom("duration must be greater than zero")),
            d if d > ConfigDuration::MAX => Err(de::Error::custom(format!(
                "duration must be at most {} s",
                ConfigDuration::MAX.as_secs()
            ))),
            d => Ok(ConfigDuration(d)),
        }
    }
}

/// A credential name: `[A-Z0-9_]+` after upper-casing, as Sentinela normalises it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialName(String);

impl CredentialName {
    /// The application's own credential: it runs the application queue and is never granted
    /// to a monitor.
    pub const APPLICATION: &'static str = "APPLICATION";

    /// Normalises a name as Sentinela does (upper case) and checks its alphabet.
    pub fn parse(raw: &str) -> Result<CredentialName, String> {
        let name = raw.trim().to_ascii_uppercase();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "invalid credential name '{raw}': use letters, digits and '_'"
            ));
        }
        Ok(CredentialName(name))
    }

    /// The normalised (upper-case) name, as in the `AWS_{NAME}_...` variables.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Deserializes any valid name, `APPLICATION` included: for keys only the operator sets
    /// (a connector's `source`), never for grants.
    pub fn deserialize_any<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<CredentialName, D::Error> {
        CredentialName::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

impl fmt::Display for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CredentialName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = CredentialName::parse(&String::deserialize(deserializer)?)
            .map_err(de::Error::custom)?;
        if name.0 == Self::APPLICATION {
            return Err(de::Error::custom(
                "the APPLICATION credential belongs to the host and can never be granted to a monitor",
            ));
        }
        Ok(name)
    }
}

thread_local! {
    /// The directory relative paths resolve against while a config file is being parsed.
    static CONFIG_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// A path from the config, resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath(pub PathBuf);

/// Runs `parse` with relative [`ConfigPath`]s resolving against `dir` (the config file's).
pub fn resolving_paths_against<R>(dir: Option<&Path>, parse: impl FnOnce() -> R) -> R {
    CONFIG_DIR.with(|d| *d.borrow_mut() = dir.map(Path::to_path_buf));
    let parsed = parse();
    CONFIG_DIR.with(|d| *d.borrow_mut() = None);
    parsed
}

impl<'de> Deserialize<'de> for ConfigPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = PathBuf::from(String::deserialize(deserializer)?);
        if raw.as_os_str().is_empty() {
            return Err(de::Error::custom("path is empty"));
        }
        let resolved = CONFIG_DIR.with(|dir| match dir.borrow().as_deref() {
            Some(dir) if raw.is_relative() => dir.join(&raw),
            _ => raw,
        });
        Ok(ConfigPath(resolved))
    }
}

/// `plugin:`: a component file, relative to the config file's directory, or an OCI reference
/// (`oci://registry/repository:tag` or `...@sha256:<digest>`), which the host resolves to a
/// file in its local store before loading (see [`crate::oci`]).
#[derive(Debug, Clone)]
pub enum PluginLocation {
    /// A component file.
    File(PathBuf),
    /// A component in a registry.
    Oci {
        /// The reference as written.
        reference: OciReference,
        /// What the reference resolved to, once resolved; `Err` says why it could not be.
        resolved: Option<Result<Resolved, String>>,
    },
}

impl PluginLocation {
    /// The component file to load: the file, or the pulled component in the local store.
    pub fn file(&self) -> anyhow::Result<&Path> {
        match self {
            PluginLocation::File(path) => Ok(path),
            PluginLocation::Oci {
                resolved: Some(Ok(resolved)),
                ..
            } => Ok(&resolved.file),
            PluginLocation::Oci {
                resolved: Some(Err(e)),
                ..
            } => Err(anyhow::anyhow!("{e}")),
            PluginLocation::Oci { reference, .. } => {
                Err(anyhow::anyhow!("{reference} was not resolved"))
            }
        }
    }

    /// The OCI reference, for a plugin from a registry.
    pub fn reference(&self) -> Option<&OciReference> {
        match self {
            PluginLocation::Oci { reference, .. } => Some(reference),
            PluginLocation::File(_) => None,
        }
    }
}

impl fmt::Display for PluginLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginLocation::File(path) => write!(f, "{}", path.display()),
            PluginLocation::Oci { reference, .. } => write!(f, "{reference}"),
        }
    }
}

impl<'de> Deserialize<'de> for PluginLocation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.starts_with(crate::oci::SCHEME) {
            let reference =
                OciReference::parse(&text).map_err(|e| de::Error::custom(format!("{e:#}")))?;
            return Ok(PluginLocation::Oci {
                reference,
                resolved: None,
            });
        }
        let path = ConfigPath::deserialize(de::value::StringDeserializer::<D::Error>::new(text))?;
        Ok(PluginLocation::File(path.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap(), ByteSize(64 << 20));
        assert_eq!("512 KiB".parse::<ByteSize>().unwrap(), ByteSize(512 << 10));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert_eq!(
            "500ms".parse::<ConfigDuration>().unwrap(),
            ConfigDuration(Duration::from_millis(500))
        );
        assert_eq!(
            "2m".parse::<ConfigDuration>().unwrap(),
            ConfigDuration(Duration::from_secs(120))
        );
        assert!("-1s".parse::<ConfigDuration>().is_err());
    }

    #[test]
    fn credential_names_normalise() {
        assert_eq!(
            CredentialName::parse("monitoring_ro").unwrap().as_str(),
            "MONITORING_RO"
        );
        assert!(CredentialName::parse("../etc").is_err());
        assert!(CredentialName::parse("").is_err());
    }

    #[test]
    fn schedules() {
        assert!("*/5 * * * *".parse::<Schedule>().is_ok());
        assert!("*/10 * * * * *".parse::<Schedule>().is_ok());
        assert!("61 * * * *".parse::<Schedule>().is_err());
        assert!("every minute".parse::<Schedule>().is_err());
        // A field that matches nothing is refused by the field check, before any search for
        // the next time (which went on to the year 5000: 11 s of CPU each).
        for (never, field) in [
            ("L * * * *", "minute"),
            (",,,, * * * *", "minute"),
            ("0 L * * *", "hour"),
        ] {
            let e = never.parse::<Schedule>().unwrap_err();
            assert!(
                e.contains(&format!("its {field} field matches no {field}")),
                "{never}: {e}"
            );
        }
        assert!(
            "0 0 31 2 *"
                .parse::<Schedule>()
                .unwrap_err()
                .contains("never fires")
        );
    }

    #[test]
    fn equal_schedules_share_one_parse() {
        let mut seen = HashMap::new();
        let mut first: Schedule = "* * * * * *".parse().unwrap();
        let mut second: Schedule = "* * * * * *".parse().unwrap();
        let mut other: Schedule = "*/5 * * * *".parse().unwrap();
        assert!(!Arc::ptr_eq(&first.0, &second.0));
        for schedule in [&mut first, &mut second, &mut other] {
            schedule.share(&mut seen);
        }
        assert!(Arc::ptr_eq(&first.0, &second.0));
        assert!(!Arc::ptr_eq(&first.0, &other.0));
        assert_eq!(other.expression(), "*/5 * * * *");
        assert_eq!(seen.len(), 2);
    }
}
