//! `sentinela new NAME`: a monitor project that builds with one command, with a config that
//! `check` accepts and `invoke` runs, and a README that says what to do next.
//!
//! The templates live in `host/templates/` and are compiled into the binary. A Rust project
//! depends on the published `sentinela-monitor` crate; when this binary was built from a
//! checkout that still exists, a `[patch.crates-io]` entry points at the checkout's SDK, so the
//! project builds against the same WIT as the host.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::values::MonitorName;

/// A monitor's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// A Rust crate built with cargo for `wasm32-wasip2`.
    Rust,
    /// An `app.py` built with componentize-py.
    Python,
    /// An `app.js` built with componentize-js.
    Js,
}

/// The checkout this binary was built from, if it is still there.
fn checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("guests/sdk/Cargo.toml")
        .is_file()
        .then(|| root.to_path_buf())
}

/// `disk-check` → `DiskCheck`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// What was created, and the one command that builds it.
pub struct Created {
    /// The project's directory.
    pub dir: PathBuf,
    /// Run in `dir`: builds the component the config's `plugin:` names.
    pub build: String,
}

/// Creates the project `name` in `dir` (default `./NAME`), which must not exist or be empty.
pub fn create(name: &str, language: Language, dir: Option<&Path>) -> Result<Created> {
    let name: MonitorName = name.parse().map_err(|e| anyhow::anyhow!("NAME: {e}"))?;
    let name = name.as_str();
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("{} exists and is not a directory", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let checkout = checkout();
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{type_name}}", &type_name(name))
    };
    let mut files: Vec<(&str, String)> = Vec::new();
    let (plugin, build) = match language {
        Language::Rust => {
            let patch = match &checkout {
                Some(root) => format!(
                    "\n# This host was built from a checkout: build against its SDK (and so its WIT).\n\
                     # Remove these lines to use the published crate.\n\
                     [patch.crates-io]\n\
                     sentinela-monitor = {{ path = {:?} }}\n",
                    root.join("guests/sdk")
                ),
                None => String::new(),
            };
            files.push((
                "Cargo.toml",
                fill(include_str!("../templates/rust/Cargo.toml")).replace("{{patch}}", &patch),
            ));
            files.push((
                "src/lib.rs",
                fill(include_str!("../templates/rust/src/lib.rs")),
            ));
            files.push((".gitignore", "/target\n".to_owned()));
            (
                format!(
                    "target/wasm32-wasip2/release/{}.wasm",
                    name.replace('-', "_")
                ),
                "rustup target add wasm32-wasip2 && cargo build --release --target wasm32-wasip2"
                    .to_owned(),
            )
        }
        Language::Python | Language::Js => {
            let (file, template, script) = match language {
                Language::Python => (
                    "app/app.py",
                    include_str!("../templates/python/app.py"),
                    "guests/python/build.sh",
                ),
                _ => (
                    "app/app.js",
                    include_str!("../templates/js/app.js"),
                    "guests/js/build.sh",
                ),
            };
            files.push((file, fill(template)));
            let script = checkout.as_ref().map_or_else(
                || format!("SENTINELA_CHECKOUT/{script}"),
                |root| root.join(script).display().to_string(),
            );
            (
                format!("{name}.wasm"),
                format!("{script} app -o {name}.wasm"),
            )
        }
    };
    files.push((
        "sentinela.yaml",
        format!(
            "# The monitor's entry; copy it into your host's config.\n\
             # Try it: sentinela check sentinela.yaml && sentinela invoke sentinela.yaml {name} search\n\
             monitors:\n  - name: {name}\n    plugin: {plugin}\n    search_cron: \"* * * * *\"\n    \
             update_cron: \"* * * * *\"\n    settings:\n      threshold: 90\n"
        ),
    ));
    files.push(("README.md", readme(name, language, &build)));
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(Created { dir, build })
}

fn readme(name: &str, language: Language, build: &str) -> String {
    let (what, source) = match language {
        Language::Rust => ("Rust", "`src/lib.rs`"),
        Language::Python => ("Python", "`app/app.py`"),
        Language::Js => ("JavaScript", "`app/app.js`"),
    };
    format!(
        "# {name}\n\n\
         A Sentinela monitor in {what}: {source} holds its `search` and `is_solved`.\n\n\
         ```sh\n\
         # build the component\n\
         {build}\n\
         # check the config, the plugin, its imports and grants\n\
         sentinela check sentinela.yaml\n\
         # one call; its issues as JSON\n\
         sentinela invoke sentinela.yaml {name} search\n\
         # the same with a setting overridden\n\
         sentinela invoke sentinela.yaml {name} search --set threshold=99\n\
         ```\n\n\
         Then copy the entry of `sentinela.yaml` into the host's config, with `grants:` for\n\
         whatever it calls (AWS operations, queues) and `secrets:` for what it reads. The\n\
         Sentinela repository's docs/writing-plugins.md and docs/sdk-reference.md say how.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("disk-check"), "DiskCheck");
        assert_eq!(type_name("queue_age2"), "QueueAge2");
    }

    #[test]
    fn a_bad_name_or_a_full_directory_is_refused() {
        let err = create("Bad Name", Language::Rust, None).err().unwrap();
        assert!(err.to_string().starts_with("NAME: "), "{err}");
        let dir = std::env::temp_dir().join(format!("scaffold-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x"), "").unwrap();
        let err = create("ok", Language::Python, Some(&dir)).err().unwrap();
        assert!(err.to_string().contains("is not empty"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
