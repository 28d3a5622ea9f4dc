//! What a plugin declares it needs: its settings (name, type, default, description) and the
//! capabilities it will use (AWS operations, queues, secrets by name).
//!
//! The declaration travels inside the component, as JSON in a custom section named
//! [`SECTION`] placed first after the header (`sentinela declare` writes it there, replacing
//! an older one), so reading it costs the first few kilobytes of the file, not a parse of the
//! component; `sentinela push` copies it into the OCI manifest's annotations. It is the
//! plugin author's word, not a grant: the config's `grants:` alone decide what a monitor may
//! do. `check` and `run` hold the config to it — a `settings:` key the plugin does not declare,
//! or a value of the wrong type, keeps the monitor from running — and warn for each grant the
//! plugin never declared (least privilege) and each declared need that nothing grants.
//! Plugins without a declaration are checked as before.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::aws::services::Service;
use crate::capabilities::secrets::SecretSource;
use crate::capabilities::settings::Settings;
use crate::grants::{AwsOperationGrant, Grants};
use crate::guest_text::shortened;

/// The custom section that holds a component's declaration.
pub const SECTION: &str = "sentinela-declaration";
/// The OCI manifest annotation `sentinela push` copies it to.
pub const ANNOTATION: &str = "dev.sentinela.declaration";
/// The largest declaration read: it is the plugin author's text.
pub const MAX_BYTES: usize = 64 << 10;
/// At most this many entries in each list, and settings.
const MAX_ENTRIES: usize = 256;
/// The most leading custom sections looked through for it.
const MAX_LEADING_SECTIONS: usize = 16;

/// A plugin's declaration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// The settings it reads, by name.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingDeclaration>,
    /// The AWS operations it calls, `service:Operation`.
    #[serde(default)]
    pub aws: Vec<String>,
    /// The queues of the config's `queues:` section it uses, by name.
    #[serde(default)]
    pub queues: Vec<String>,
    /// The secrets it reads with `secrets.get`, by name.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// One declared setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingDeclaration {
    /// The type its value must have.
    #[serde(rename = "type")]
    pub kind: SettingType,
    /// The value the plugin uses when the config gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The type of a setting's value, as the config writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingType {
    /// Any text.
    String,
    /// A whole number (`5`, `-3`).
    Integer,
    /// A number (`0.5`, `10`).
    Number,
    /// `true` or `false`.
    Boolean,
    /// A YAML list (the monitor reads it as a JSON array).
    List,
    /// A YAML map (the monitor reads it as a JSON object).
    Map,
}

impl fmt::Display for SettingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            SettingType::String => "string",
            SettingType::Integer => "integer",
            SettingType::Number => "number",
            SettingType::Boolean => "boolean",
            SettingType::List => "list",
            SettingType::Map => "map",
        };
        f.write_str(name)
    }
}

impl SettingType {
    /// Whether `value` (the text a monitor reads: scalars as written, lists and maps as JSON)
    /// is of this type.
    pub fn accepts(self, value: &str) -> bool {
        match self {
            SettingType::String => true,
            SettingType::Integer => value.parse::<i64>().is_ok(),
            SettingType::Number => value.parse::<f64>().is_ok_and(f64::is_finite),
            SettingType::Boolean => matches!(value, "true" | "false"),
            SettingType::List => value.starts_with('[') && value.ends_with(']'),
            SettingType::Map => value.starts_with('{') && value.ends_with('}'),
        }
    }
}

impl Declaration {
    /// Parses and checks a declaration's JSON (or YAML, for `sentinela declare`).
    pub fn parse(text: &[u8]) -> Result<Declaration> {
        if text.len() > MAX_BYTES {
            bail!("the declaration is {} bytes, over {MAX_BYTES}", text.len());
        }
        let declaration: Declaration = serde_yaml::from_slice(text)
            .map_err(|e| anyhow::anyhow!("{}", shortened(&e.to_string(), 300)))?;
        declaration.validate()?;
        Ok(declaration)
    }

    fn validate(&self) -> Result<()> {
        for (what, count) in [
            ("settings", self.settings.len()),
            ("aws", self.aws.len()),
            ("queues", self.queues.len()),
            ("secrets", self.secrets.len()),
        ] {
            if count > MAX_ENTRIES {
                bail!("{what}: {count} entries, over {MAX_ENTRIES}");
            }
        }
        let mut probe = Settings::default();
        for (name, setting) in &self.settings {
            if let Err(e) = probe.set(name, "") {
                bail!("settings: {e}");
            }
            if let Some(default) = &setting.default {
                let text = match default {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if !setting.kind.accepts(&text) {
                    bail!(
                        "settings.{name}: its default {} is not of type {}",
                        shortened(&text, 80),
                        setting.kind
                    );
                }
            }
        }
        for operation in &self.aws {
            AwsOperationGrant::parse(operation).map_err(|e| anyhow::anyhow!("aws: {e}"))?;
        }
        Ok(())
    }

    /// The declaration of the component at `path`, if it has one: the [`SECTION`] among the
    /// custom sections that open the file (only those are read).
    pub fn read(path: &Path) -> Result<Option<Declaration>> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = std::io::BufReader::new(file);
        let section = leading_section(&mut reader, SECTION)
            .with_context(|| format!("reading {}", path.display()))?;
        section
            .map(|bytes| {
                Declaration::parse(&bytes).with_context(|| {
                    format!("{}: its {SECTION} section is not valid", path.display())
                })
            })
            .transpose()
    }

    /// The declaration as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Errors in `settings` against the declared ones: a key the plugin does not declare
    /// (with the closest declared name) and a value of the wrong type.
    pub fn settings_errors(&self, settings: &Settings) -> Vec<String> {
        let mut errors = Vec::new();
        for (key, value) in settings.iter() {
            match self.settings.get(key) {
                None => {
                    let closest = self
                        .settings
                        .keys()
                        .map(|name| (strsim::levenshtein(name, key), name))
                        .filter(|(distance, _)| *distance <= 3)
                        .min();
                    let hint = match closest {
                        Some((_, name)) => format!("; did you mean '{name}'?"),
                        None if self.settings.is_empty() => "; it declares no settings".to_owned(),
                        None => format!(
                            "; it declares {}",
                            self.settings
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    errors.push(format!(
                        "settings.{key}: the plugin declares no setting '{key}'{hint}"
                    ));
                }
                Some(declared) if !declared.kind.accepts(value) => errors.push(format!(
                    "settings.{key}: {} is not of type {}, as the plugin declares it",
                    shortened(value, 80),
                    declared.kind
                )),
                Some(_) => {}
            }
        }
        errors
    }

    /// Warnings about the monitor's grants against the declaration: each grant the plugin never
    /// declared it uses, and each declared need nothing grants.
    pub fn grant_warnings(
        &self,
        grants: &Grants,
        secrets: &BTreeMap<String, SecretSource>,
    ) -> Vec<String> {
        let declared: Vec<(&'static Service, &str)> = self
            .aws
            .iter()
            .filter_map(|entry| {
                let (service, operation) = entry.split_once(':')?;
                Some((Service::find(&service.to_ascii_lowercase())?, operation))
            })
            .collect();
        let mut warnings = Vec::new();
        for grant in &grants.aws {
            if !declared.iter().any(|(s, op)| grant.covers(s, op)) {
                warnings.push(format!(
                    "grants.aws: '{grant}' covers nothing the plugin declares it calls: unused, \
                     remove it"
                ));
            }
        }
        for (service, operation) in &declared {
            if !grants.aws.iter().any(|g| g.covers(service, operation)) {
                warnings.push(format!(
                    "the plugin declares it calls {}:{operation}, which no grants.aws entry \
                     covers: those calls will be denied",
                    service.name
                ));
            }
        }
        for queue in &grants.queues {
            if !self.queues.contains(queue) {
                warnings.push(format!(
                    "grants.queues: '{queue}' is not a queue the plugin declares: unused, remove it"
                ));
            }
        }
        for queue in &self.queues {
            if !grants.queues.contains(queue) {
                warnings.push(format!(
                    "the plugin declares it uses queue '{}', which is not granted",
                    shortened(queue, 100)
                ));
            }
        }
        for name in secrets.keys() {
            if !self.secrets.contains(name) {
                warnings.push(format!(
                    "secrets: '{name}' is not a secret the plugin declares: unused, remove it"
                ));
            }
        }
        for name in &self.secrets {
            if !secrets.contains_key(name) {
                warnings.push(format!(
                    "the plugin declares it reads secret '{}', which the config does not give it",
                    shortened(name, 100)
                ));
            }
        }
        warnings
    }
}

/// The payload of the custom section `name` among the custom sections that open the
/// component read from `input`, if there.
fn leading_section(input: &mut impl Read, name: &str) -> Result<Option<Vec<u8>>> {
    let mut parser = wasmparser::Parser::new(0);
    let mut buffer = Vec::new();
    let mut eof = false;
    let mut sections = 0;
    loop {
        let (consumed, payload) = match parser.parse(&buffer, eof)? {
            wasmparser::Chunk::NeedMoreData(hint) => {
                // A section larger than a declaration may be is not read to find out.
                if buffer.len() > MAX_BYTES + 64 {
                    return Ok(None);
                }
                let want = usize::try_from(hint)
                    .unwrap_or(usize::MAX)
                    .clamp(1, 64 << 10);
                let start = buffer.len();
                buffer.resize(start + want, 0);
                let read = input.read(&mut buffer[start..])?;
                buffer.truncate(start + read);
                eof = read == 0;
                continue;
            }
            wasmparser::Chunk::Parsed { consumed, payload } => (consumed, payload),
        };
        match payload {
            wasmparser::Payload::Version { .. } => {}
            wasmparser::Payload::CustomSection(section) if section.name() == name => {
                return Ok(Some(section.data().to_vec()));
            }
            wasmparser::Payload::CustomSection(_) if sections < MAX_LEADING_SECTIONS => {
                sections += 1;
            }
            _ => return Ok(None),
        }
        buffer.drain(..consumed);
    }
}

/// `component` with `declaration` as its first section (any declaration section that opened
/// it is replaced).
pub fn embed(component: &[u8], declaration: &Declaration) -> Result<Vec<u8>> {
    let mut parser = wasmparser::Parser::new(0);
    let mut offset = 0;
    let mut header = None;
    loop {
        let wasmparser::Chunk::Parsed { consumed, payload } =
            parser.parse(&component[offset..], true)?
        else {
            bail!("not a complete WebAssembly binary");
        };
        match payload {
            wasmparser::Payload::Version { encoding, .. } => {
                if encoding != wasmparser::Encoding::Component {
                    bail!("a core module, not a component");
                }
                header = Some(offset + consumed);
            }
            wasmparser::Payload::CustomSection(section) if section.name() == SECTION => {}
            _ => break,
        }
        offset += consumed;
    }
    let header = header.context("no WebAssembly header")?;
    let mut out = component[..header].to_vec();
    let data = declaration.to_json();
    wasm_encoder::Section::append_to(
        &wasm_encoder::CustomSection {
            name: SECTION.into(),
            data: data.as_bytes().into(),
        },
        &mut out,
    );
    out.extend_from_slice(&component[offset..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaration() -> Declaration {
        Declaration::parse(
            br#"
settings:
  threshold: {type: integer, default: 5, description: messages before an issue}
  queue_url: {type: string}
aws: ["sqs:GetQueueAttributes"]
queues: [alerts]
secrets: [api-token]
"#,
        )
        .unwrap()
    }

    #[test]
    fn settings_are_held_to_the_declaration() {
        let declaration = declaration();
        let settings: Settings =
            serde_yaml::from_str("treshold: 5\nqueue_url: https://x\n").unwrap();
        let errors = declaration.settings_errors(&settings);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("did you mean 'threshold'"), "{errors:?}");
        let settings: Settings = serde_yaml::from_str("threshold: five\n").unwrap();
        let errors = declaration.settings_errors(&settings);
        assert!(errors[0].contains("not of type integer"), "{errors:?}");
        let settings: Settings = serde_yaml::from_str("threshold: 7\n").unwrap();
        assert!(declaration.settings_errors(&settings).is_empty());
    }

    #[test]
    fn bad_declarations_are_refused() {
        for bad in [
            &b"settings: {x: {type: float}}"[..],
            b"settings: {x: {type: integer, default: abc}}",
            b"aws: [\"sqs:NoSuchOperation\"]",
            b"surprise: 1",
        ] {
            assert!(
                Declaration::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_declaration_is_embedded_first_and_read_back() {
        let component = wasm_encoder::Component::new().finish();
        let declared = embed(&component, &declaration()).unwrap();
        let read = leading_section(&mut &declared[..], SECTION)
            .unwrap()
            .unwrap();
        assert_eq!(Declaration::parse(&read).unwrap(), declaration());
        // Embedding again replaces it.
        let other = Declaration::default();
        let again = embed(&declared, &other).unwrap();
        let read = leading_section(&mut &again[..], SECTION).unwrap().unwrap();
        assert_eq!(Declaration::parse(&read).unwrap(), other);
        assert!(
            leading_section(&mut &component[..], SECTION)
                .unwrap()
                .is_none()
        );
        assert!(embed(&wasm_encoder::Module::new().finish(), &other).is_err());
    }
}
