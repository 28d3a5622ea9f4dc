//! Which toolchain built a component, from the `producers` custom section its tools write
//! at its top level ("processed-by" and "language" fields; see the tool-conventions
//! ProducersSection). It informs `check`'s wording, nothing else: it grants nothing.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A toolchain that makes a component import every interface of the `sentinela` world,
/// whatever the code calls: its imports say nothing about what the monitor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// componentize-py (its pre-initializer marks the component `component-init-transform`).
    Python,
    /// ComponentizeJS (`sentinela build` for a JavaScript monitor).
    JavaScript,
}

impl Sdk {
    /// The name a user knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Sdk::Python => "componentize-py",
            Sdk::JavaScript => "ComponentizeJS",
        }
    }
}

/// The most top-level sections walked, and the largest `producers` section read: both far
/// above what a real toolchain writes, so a crafted file costs a bounded amount of reading.
const MAX_SECTIONS: usize = 4096;
const MAX_PRODUCERS_BYTES: u32 = 64 << 10;

/// The SDK that built the component at `path`, if it is one of [`Sdk`]'s; `None` for any
/// other toolchain and for a file this cannot read (loading reports those). Walks the
/// top-level section headers, seeking over each section but custom ones.
pub fn sdk_of(path: &Path) -> Option<Sdk> {
    let mut file = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut header = [0u8; 8];
    file.read_exact(&mut header).ok()?;
    if &header[..4] != b"\0asm" {
        return None;
    }
    let mut sdk = None;
    for _ in 0..MAX_SECTIONS {
        // A section opens with its id and its size (LEB128, at most 5 bytes).
        let start = file.stream_position().ok()?;
        let mut head = [0u8; 6];
        let read = read_up_to(&mut file, &mut head)?;
        if read == 0 {
            break;
        }
        let mut reader = wasmparser::BinaryReader::new(&head[..read], 0);
        let id = reader.read_u8().ok()?;
        let size = reader.read_var_u32().ok()?;
        let head = &head[..reader.current_position()];
        file.seek(SeekFrom::Start(start + head.len() as u64)).ok()?;
        if id != 0 || size > MAX_PRODUCERS_BYTES {
            file.seek(SeekFrom::Current(i64::from(size))).ok()?;
            continue;
        }
        // A custom section, parsed by wasmparser inside the file's own header.
        let mut binary = header.to_vec();
        binary.extend_from_slice(head);
        let body = binary.len();
        binary.resize(body + size as usize, 0);
        file.read_exact(&mut binary[body..]).ok()?;
        if let Some(found) = sdk_in(&binary) {
            sdk = Some(found);
        }
    }
    sdk
}

/// The SDK a binary of one custom section names in its `producers`, if that is the section.
fn sdk_in(binary: &[u8]) -> Option<Sdk> {
    for payload in wasmparser::Parser::new(0).parse_all(binary) {
        let wasmparser::Payload::CustomSection(custom) = payload.ok()? else {
            continue;
        };
        let wasmparser::KnownCustom::Producers(producers) = custom.as_known() else {
            return None;
        };
        for field in producers.into_iter().flatten() {
            for value in field.values.into_iter().flatten() {
                match (field.name, value.name) {
                    ("processed-by", "ComponentizeJS") | ("language", "JavaScript") => {
                        return Some(Sdk::JavaScript);
                    }
                    ("processed-by", "componentize-py" | "component-init-transform") => {
                        return Some(Sdk::Python);
                    }
                    _ => {}
                }
            }
        }
    }
    None
}

/// Reads until `buffer` is full or the input ends; how many bytes were read.
fn read_up_to(input: &mut impl Read, buffer: &mut [u8]) -> Option<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]).ok()? {
            0 => break,
            n => filled += n,
        }
    }
    Some(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component of one producers section naming `tool` as processed-by.
    fn component_processed_by(tool: &str) -> Vec<u8> {
        let mut producers = wasm_encoder::ProducersSection::new();
        let mut field = wasm_encoder::ProducersField::new();
        field.value(tool, "1.0");
        producers.field("processed-by", &field);
        let mut component = wasm_encoder::Component::new();
        component.section(&producers);
        component.finish()
    }

    #[test]
    fn names_the_sdk_from_the_producers_section() {
        let dir = std::env::temp_dir().join(format!("sentinela-producers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (tool, sdk) in [
            ("ComponentizeJS", Some(Sdk::JavaScript)),
            ("component-init-transform", Some(Sdk::Python)),
            ("rustc", None),
        ] {
            let path = dir.join("c.wasm");
            std::fs::write(&path, component_processed_by(tool)).unwrap();
            assert_eq!(sdk_of(&path), sdk, "{tool}");
        }
        // Not a binary, a truncated one: no SDK, no panic.
        let path = dir.join("bad.wasm");
        std::fs::write(&path, b"\0asm\x0d\0\x01\0\0\xff\xff").unwrap();
        assert_eq!(sdk_of(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
