//! `sentinela new NAME`: a monitor project that builds with one command, with a config that
//! `check` accepts and `invoke` runs, and a README that says what to do next.
//!
//! A project stands alone: the SDK of its language (the Rust crate, the Python or JavaScript
//! module) and the WIT it binds are compiled into this binary and written into the project,
//! and the build line fetches only the language's published tools (crates.io, PyPI's
//! componentize-py, npm's componentize-js, at the versions this host is tested with). Nothing
//! points into the checkout the binary was built from.

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

/// The WIT every SDK binds: the host's own (`wit/`), by path under `wit/`.
const WIT: &[(&str, &str)] = &[
    ("sentinela.wit", include_str!("../../wit/sentinela.wit")),
    (
        "deps/config/world.wit",
        include_str!("../../wit/deps/config/world.wit"),
    ),
    (
        "deps/config/store.wit",
        include_str!("../../wit/deps/config/store.wit"),
    ),
];

/// The Rust SDK crate's files, and the guest workspace its manifest inherits from.
const RUST_SDK_LIB: &str = include_str!("../../guests/sdk/src/lib.rs");
const RUST_SDK_README: &str = include_str!("../../guests/sdk/README.md");
const RUST_SDK_MANIFEST: &str = include_str!("../../guests/sdk/Cargo.toml");
const GUEST_WORKSPACE: &str = include_str!("../../guests/Cargo.toml");

/// The Python and JavaScript SDK modules.
const PYTHON_SDK: &str = include_str!("../../guests/python/sdk/sentinela_monitor.py");
const JS_SDK: &str = include_str!("../../guests/js/sdk/sentinela_monitor.js");

/// Where the test script pins the guest toolchains: componentize-py's version, and
/// componentize-js with what it needs at run time.
const TOOL_VERSIONS: &str = include_str!("../../scripts/lib.sh");
const JS_TOOLCHAIN: &str = include_str!("../../guests/js/package.json");

/// The SDK crate's manifest with what it inherits from the guest workspace written out
/// (`version.workspace = true` → `version = "0.1.0"`), so it builds on its own.
fn standalone_manifest(manifest: &str, workspace: &str) -> String {
    let mut section = "";
    let mut inherited: Vec<(String, String)> = Vec::new();
    for line in workspace.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if !matches!(section, "[workspace.package]" | "[workspace.dependencies]") {
            continue;
        }
        if let Some((key, value)) = line.split_once(" = ") {
            inherited.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    manifest
        .lines()
        .map(|line| {
            let key = line.strip_suffix(".workspace = true").map(str::trim);
            match key.and_then(|key| inherited.iter().find(|(k, _)| k == key)) {
                Some((key, value)) => format!("{key} = {value}"),
                None => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Adds the host's WIT to a project's files, under `{prefix}wit/`.
fn with_wit(files: &mut Vec<(String, String)>, prefix: &str) {
    for (path, text) in WIT {
        files.push((format!("{prefix}wit/{path}"), (*text).to_owned()));
    }
}

/// The componentize-py version the test script installs.
fn componentize_py_version() -> &'static str {
    TOOL_VERSIONS
        .lines()
        .find_map(|line| line.strip_prefix("COMPONENTIZE_PY_VERSION="))
        .map(|v| v.trim_matches('"'))
        .unwrap_or("0.25.1")
}

/// A JavaScript project's `package.json`: the toolchain the guests are built with.
fn js_package(name: &str) -> String {
    let pinned: serde_json::Value = serde_json::from_str(JS_TOOLCHAIN).unwrap_or_default();
    let package = serde_json::json!({
        "name": name,
        "private": true,
        "description": "A Sentinela monitor; `npm install` brings componentize-js, which builds it",
        "dependencies": pinned["dependencies"],
    });
    serde_json::to_string_pretty(&package).unwrap_or_default() + "\n"
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
    /// Run in `dir`: builds the component the config's `plugin:` names and writes its
    /// declaration into it.
    pub build: String,
}

/// What every sample monitor declares: the one setting it reads.
const DECLARATION: &str = "\
# What this monitor needs. `sentinela declare COMPONENT declaration.yaml` writes it into the
# built component; `sentinela check` then refuses a setting it does not declare (or of the
# wrong type) and names grants it never uses. Add `aws: [\"service:Operation\"]`,
# `queues: [name]` and `secrets: [name]` for what it calls.
settings:
  threshold:
    type: integer
    default: 90
    description: percent of the disk used above which the monitor raises an issue
";

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
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{type_name}}", &type_name(name))
    };
    let mut files: Vec<(String, String)> = Vec::new();
    let (plugin, compile) = match language {
        Language::Rust => {
            files.push((
                "Cargo.toml".into(),
                fill(include_str!("../templates/rust/Cargo.toml")),
            ));
            files.push((
                "src/lib.rs".into(),
                fill(include_str!("../templates/rust/src/lib.rs")),
            ));
            let sdk = "sentinela-monitor";
            files.push((
                format!("{sdk}/Cargo.toml"),
                standalone_manifest(RUST_SDK_MANIFEST, GUEST_WORKSPACE),
            ));
            files.push((format!("{sdk}/src/lib.rs"), RUST_SDK_LIB.to_owned()));
            files.push((format!("{sdk}/README.md"), RUST_SDK_README.to_owned()));
            with_wit(&mut files, &format!("{sdk}/"));
            files.push((".gitignore".into(), "/target\n".to_owned()));
            (
                format!(
                    "target/wasm32-wasip2/release/{}.wasm",
                    name.replace('-', "_")
                ),
                "rustup target add wasm32-wasip2 && cargo build --release --target wasm32-wasip2"
                    .to_owned(),
            )
        }
        Language::Python => {
            files.push((
                "app/app.py".into(),
                fill(include_str!("../templates/python/app.py")),
            ));
            files.push(("sdk/sentinela_monitor.py".into(), PYTHON_SDK.to_owned()));
            with_wit(&mut files, "");
            files.push((".gitignore".into(), "/.venv\n*.wasm\n".to_owned()));
            (
                format!("{name}.wasm"),
                format!(
                    "python3 -m venv .venv && .venv/bin/pip install --quiet \
                     componentize-py=={} && .venv/bin/componentize-py -d wit -w monitor \
                     componentize app -p app -p sdk -o {name}.wasm",
                    componentize_py_version()
                ),
            )
        }
        Language::Js => {
            files.push((
                "app/app.js".into(),
                fill(include_str!("../templates/js/app.js")),
            ));
            // Next to the app, where its `import … from './sentinela_monitor.js'` looks.
            files.push(("app/sentinela_monitor.js".into(), JS_SDK.to_owned()));
            with_wit(&mut files, "");
            files.push(("package.json".into(), js_package(name)));
            files.push((".gitignore".into(), "/node_modules\n*.wasm\n".to_owned()));
            (
                format!("{name}.wasm"),
                // wasi:http is never offered to monitors: the component must not import it.
                format!(
                    "npm install --no-audit --no-fund --loglevel=error && npx componentize-js \
                     app/app.js --wit wit --world-name monitor --disable http fetch-event -o \
                     {name}.wasm"
                ),
            )
        }
    };
    files.push((
        "sentinela.yaml".into(),
        format!(
            "# The monitor's entry; copy it into your host's config.\n\
             # Try it: sentinela check sentinela.yaml && sentinela invoke sentinela.yaml {name} search\n\
             monitors:\n  - name: {name}\n    plugin: {plugin}\n    search_cron: \"* * * * *\"\n    \
             update_cron: \"* * * * *\"\n    settings:\n      threshold: 90\n"
        ),
    ));
    // The build ends by writing the declaration into the component.
    let build = format!(
        "{compile} && {} declare {plugin} declaration.yaml",
        sentinela_command()
    );
    files.push(("declaration.yaml".into(), DECLARATION.to_owned()));
    files.push(("README.md".into(), readme(name, language, &build)));
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

/// How the build line runs this `sentinela`: by name when that is the binary PATH finds, else
/// by its path (quoted for the shell), so the line works from an installed binary that is not
/// on PATH.
fn sentinela_command() -> String {
    let Ok(exe) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "sentinela".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            dir.join("sentinela")
                .canonicalize()
                .is_ok_and(|found| found == exe)
        })
    });
    let text = exe.to_string_lossy();
    if on_path {
        "sentinela".into()
    } else if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
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
         # build the component, then write what it needs (declaration.yaml) into it\n\
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
    fn the_embedded_wit_is_all_of_the_host_s() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let relative = path.strip_prefix(&root).unwrap().to_str().unwrap();
                    on_disk.push(relative.to_owned());
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = WIT.iter().map(|(p, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "add the new WIT files to scaffold::WIT");
    }

    #[test]
    fn the_sdk_manifest_stands_alone() {
        let manifest = standalone_manifest(RUST_SDK_MANIFEST, GUEST_WORKSPACE);
        assert!(!manifest.contains(".workspace"), "{manifest}");
        assert!(manifest.contains("version = \"0.1.0\""), "{manifest}");
        assert!(manifest.contains("wit-bindgen = \"0.61\""), "{manifest}");
        assert!(componentize_py_version().starts_with("0."));
        assert!(js_package("m").contains("@bytecodealliance/componentize-js"));
    }

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
