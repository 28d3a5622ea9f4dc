//! `push`, `pull` and `declare`: publishing a component (to and from OCI registries, in the Wasm
//! OCI artifact layout) and writing what it needs into it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::compile_cache::CompileCache;
use crate::compiler::CompileLimits;
use crate::declaration::{self, Declaration};
use crate::oci::registry::Registry;
use crate::oci::{OciReference, Resolver, sha256_digest};

/// The first 8 bytes of a WebAssembly component (a module's version field is `1 0 0 0`).
const COMPONENT_HEADER: [u8; 8] = *b"\0asm\x0d\x00\x01\x00";

/// `sentinela push FILE REF`: publishes the component FILE at REF.
pub(super) fn push(file: &Path, reference: &str) -> Result<ExitCode> {
    let reference = OciReference::parse(reference)?;
    let max = CompileLimits::default().max_plugin_bytes;
    let component = read_component(file, max)?;
    let layer_digest = sha256_digest(&component);
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let declaration = Declaration::read(file)?;
    // The Wasm OCI artifact config (CNCF TAG Runtime's layout, as wkg writes it), with the
    // declaration beside its fields, for tools that read it without the layer.
    let mut config = serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
    });
    if let Some(declaration) = &declaration {
        config[declaration::ANNOTATION] = serde_json::to_value(declaration)?;
    }
    let config = serde_json::to_vec(&config)?;
    let mut annotations = BTreeMap::new();
    if let Some(declaration) = &declaration {
        annotations.insert(declaration::ANNOTATION.to_owned(), declaration.to_json());
    }
    annotations.insert("org.opencontainers.image.created".to_owned(), created);
    if let Some(name) = file.file_name().and_then(|n| n.to_str()) {
        annotations.insert("org.opencontainers.image.title".to_owned(), name.to_owned());
    }
    if let Some(tag) = reference.tag() {
        annotations.insert(
            "org.opencontainers.image.version".to_owned(),
            tag.to_owned(),
        );
    }
    let registry = Registry::for_reference(&reference)?;
    let digest =
        current_thread()?.block_on(registry.push(&reference, component, config, annotations))?;
    println!("pushed {reference}");
    println!("  manifest: {digest}");
    println!("  layer:    {layer_digest}");
    println!("  pinned:   {}", reference.with_digest(&digest));
    Ok(ExitCode::SUCCESS)
}

/// `sentinela pull REF`: fetches REF into the local store, resolving a tag again.
pub(super) fn pull(reference: &str) -> Result<ExitCode> {
    let reference = OciReference::parse(reference)?;
    let cache = CompileCache::locate(None);
    let resolver = Resolver::new(cache.dir(), CompileLimits::default().max_plugin_bytes);
    let (result, _) = resolver
        .resolve_all(std::slice::from_ref(&reference), true)
        .pop()
        .context("nothing pulled")?;
    let resolved = result?;
    println!("pulled {reference}");
    println!("  manifest: {}", resolved.manifest_digest);
    println!("  layer:    {}", resolved.layer_digest);
    println!("  file:     {}", resolved.file.display());
    Ok(ExitCode::SUCCESS)
}

/// The component at `path`, refused when it is not one or is larger than `max` bytes.
fn read_component(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(max + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{} is larger than {max} bytes", path.display());
    }
    if !bytes.starts_with(&COMPONENT_HEADER) {
        bail!(
            "{} is not a WebAssembly component (a core module or another file): build it for \
             wasm32-wasip2 or with componentize-py / componentize-js",
            path.display()
        );
    }
    Ok(bytes)
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the registry client's runtime")
}

/// `sentinela declare COMPONENT DECLARATION [-o OUT]`: writes the declaration into the
/// component as its first custom section.
pub(super) fn declare(component: &Path, source: &Path, output: Option<&Path>) -> Result<ExitCode> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(source)
        .and_then(|file| {
            file.take(declaration::MAX_BYTES as u64 + 1)
                .read_to_end(&mut text)
        })
        .with_context(|| format!("reading {}", source.display()))?;
    let declared = Declaration::parse(&text)
        .with_context(|| format!("{}: not a valid declaration", source.display()))?;
    let bytes = read_component(component, CompileLimits::default().max_plugin_bytes)?;
    let embedded = declaration::embed(&bytes, &declared)
        .with_context(|| format!("{}: cannot declare it", component.display()))?;
    let target = output.unwrap_or(component);
    let temporary = target.with_extension("wasm.declare-tmp");
    std::fs::write(&temporary, &embedded)
        .and_then(|()| std::fs::rename(&temporary, target))
        .with_context(|| format!("writing {}", target.display()))?;
    println!(
        "{}: declares {} setting(s), {} AWS operation(s), {} queue(s), {} secret(s)",
        target.display(),
        declared.settings.len(),
        declared.aws.len(),
        declared.queues.len(),
        declared.secrets.len()
    );
    Ok(ExitCode::SUCCESS)
}
