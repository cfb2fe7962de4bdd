//! Typed clients for pikku channels: from an app's description (the JSON `App::describe()` produces), this crate
//! generates
//!
//! - `channels.gen.ts`: TypeScript types for every input, reply, push and capability, one client class per
//!   channel, and the dependency-free runtime they run on (Pikku's `PikkuWebSocket` API plus awaited calls,
//!   queued sends, reconnection, reverse-RPC handlers, binary frames and the realtime events client);
//! - `channels.schema.json`: a JSON Schema 2020-12 document whose `$defs` hold the app's shared schemas and one
//!   entry per frame (`<channel>.route.<property>.<value>.replyFrame`, `<channel>.inbound`, …), to validate
//!   frames in tests or other languages;
//! - `asyncapi.json`: an AsyncAPI 3.0 document with one channel per pikku channel, its address and params, and
//!   one operation per route (message, reply, error), push and capability.
//!
//! Output is deterministic (sorted, stable), so CI can regenerate and compare:
//!
//! ```sh
//! cargo run -p pikku-codegen -- --description app.description.json --out web/src/generated
//! cargo run -p pikku-codegen -- --description app.description.json --out web/src/generated --check
//! ```
//!
//! From Rust:
//!
//! ```
//! use pikku::{typed, App, Channel, ChannelRoute, Ctx, Params};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! enum Greeting {
//!     #[serde(rename = "hi!")]
//!     Hi,
//!     #[serde(rename = "hey")]
//!     Hey,
//! }
//!
//! async fn greet(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _g: Greeting) -> &'static str { "hello" }
//!
//! let app = App::new(()).channel(ChannelRoute::new("greet", "/greet").auth(false).on_message(typed(greet)));
//! let files = pikku_codegen::generate(&app.describe()).unwrap();
//! assert!(files.typescript.contains("export type Greeting = \"hi!\" | \"hey\""));
//! assert!(files.typescript.contains("export class GreetClient"));
//! ```
//!
//! How to use the generated client, and how it reconnects, is in `docs/typed-clients.md`.

mod asyncapi;
mod description;
mod error;
mod frames;
mod ts;
mod typescript;

use std::path::Path;

pub use description::{
    BinaryDesc, CapabilityDesc, ChannelDesc, ConnectDesc, Description, MessageDesc, ReplyDesc,
    ReplyShape, RouteDesc, TypeDesc,
};
pub use error::CodegenError;

/// The TypeScript runtime the generated file starts with, as a source text.
///
/// ```
/// assert!(pikku_codegen::RUNTIME_TS.contains("export class PikkuConnection"));
/// ```
pub const RUNTIME_TS: &str = typescript::RUNTIME;

/// The description format version this generator reads.
pub const DESCRIPTION_VERSION: u32 = 1;

/// Settings of a generation.
///
/// ```
/// let options = pikku_codegen::Options { title: "chat".into() };
/// assert_eq!(pikku_codegen::Options::default().title, "pikku channels");
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The AsyncAPI document's `info.title` (default `pikku channels`).
    pub title: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            title: "pikku channels".into(),
        }
    }
}

/// The generated files' contents.
///
/// ```no_run
/// let files = pikku_codegen::generate_from_json(r#"{"version": 1, "channels": [], "$defs": {}}"#).unwrap();
/// files.write(std::path::Path::new("web/src/generated")).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFiles {
    /// `channels.gen.ts`.
    pub typescript: String,
    /// `channels.schema.json`.
    pub schema: String,
    /// `asyncapi.json`.
    pub asyncapi: String,
}

impl GeneratedFiles {
    /// File names and contents, in a fixed order.
    #[must_use]
    pub fn files(&self) -> [(&'static str, &str); 3] {
        [
            ("channels.gen.ts", &self.typescript),
            ("channels.schema.json", &self.schema),
            ("asyncapi.json", &self.asyncapi),
        ]
    }

    /// Writes the files into `dir` (created if missing).
    ///
    /// # Errors
    /// [`CodegenError::Io`] when a directory or file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), CodegenError> {
        std::fs::create_dir_all(dir).map_err(|source| CodegenError::Io {
            path: dir.to_owned(),
            source,
        })?;
        for (name, contents) in self.files() {
            let path = dir.join(name);
            std::fs::write(&path, contents).map_err(|source| CodegenError::Io { path, source })?;
        }
        Ok(())
    }

    /// The names of the files in `dir` that are missing or differ from these contents.
    ///
    /// # Errors
    /// [`CodegenError::Io`] when a file exists but cannot be read.
    pub fn stale(&self, dir: &Path) -> Result<Vec<&'static str>, CodegenError> {
        let mut stale = Vec::new();
        for (name, contents) in self.files() {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(on_disk) if on_disk == contents => {}
                Ok(_) => stale.push(name),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => stale.push(name),
                Err(source) => return Err(CodegenError::Io { path, source }),
            }
        }
        Ok(stale)
    }
}

/// Generates the three files from `description`.
///
/// ```
/// let description: pikku_codegen::Description =
///     serde_json::from_str(r#"{"version": 1, "channels": [], "$defs": {}}"#).unwrap();
/// let files = pikku_codegen::generate(&description).unwrap();
/// assert!(files.schema.contains("2020-12"));
/// ```
///
/// # Errors
/// [`CodegenError`] when the version is not [`DESCRIPTION_VERSION`], names collide, or a `$ref` names no entry.
pub fn generate(description: &Description) -> Result<GeneratedFiles, CodegenError> {
    generate_with(description, &Options::default())
}

/// [`generate`] with [`Options`].
///
/// ```
/// # let description: pikku_codegen::Description = serde_json::from_str(r#"{"version": 1, "channels": [], "$defs": {}}"#).unwrap();
/// let options = pikku_codegen::Options { title: "chat".into() };
/// let files = pikku_codegen::generate_with(&description, &options).unwrap();
/// assert!(files.asyncapi.contains("\"title\": \"chat\""));
/// ```
///
/// # Errors
/// As [`generate`].
pub fn generate_with(
    description: &Description,
    options: &Options,
) -> Result<GeneratedFiles, CodegenError> {
    if description.version != DESCRIPTION_VERSION {
        return Err(CodegenError::UnsupportedVersion(description.version));
    }
    let mut seen = std::collections::BTreeSet::new();
    for channel in &description.channels {
        if !seen.insert(channel.name.as_str()) {
            return Err(CodegenError::DuplicateName(format!(
                "channel '{}'",
                channel.name
            )));
        }
    }
    // Every JSON object with its members in sorted order, whatever order the description had and whether or not
    // serde_json keeps insertion order in this build: the output depends on the description's content only.
    let description: Description = serde_json::from_value(canonical(
        serde_json::to_value(description).map_err(CodegenError::Parse)?,
    ))
    .map_err(CodegenError::Parse)?;
    let description = &description;
    let schemas = frames::all_schemas(description)?;
    let typescript = typescript::render(description)?;
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:pikku:channels",
        "title": options.title,
        "description": "Every frame of the app's channels: `<channel>.route.<property>.<value>.message` (sent), `.replyFrame` and `.errorFrame` (its answers), `<channel>.push`, `<channel>.inbound` (any text frame the server sends), with the app's shared schemas beside them.",
        "$defs": schemas,
    });
    let asyncapi = asyncapi::render(description, &schemas, &options.title);
    Ok(GeneratedFiles {
        typescript,
        schema: pretty(&schema),
        asyncapi: pretty(&asyncapi),
    })
}

/// Parses a description and generates from it.
///
/// ```
/// let files = pikku_codegen::generate_from_json(r#"{"version": 1, "channels": [], "$defs": {}}"#).unwrap();
/// assert!(files.typescript.starts_with("// Generated by pikku-codegen"));
/// ```
///
/// # Errors
/// [`CodegenError::Parse`] for invalid JSON, then as [`generate`].
pub fn generate_from_json(json: &str) -> Result<GeneratedFiles, CodegenError> {
    let description: Description = serde_json::from_str(json).map_err(CodegenError::Parse)?;
    generate(&description)
}

/// Reads a description file and generates from it.
///
/// ```no_run
/// let files = pikku_codegen::generate_file(
///     std::path::Path::new("app.description.json"),
///     &pikku_codegen::Options::default(),
/// ).unwrap();
/// # let _ = files;
/// ```
///
/// # Errors
/// [`CodegenError::Io`] when the file cannot be read, then as [`generate_from_json`].
pub fn generate_file(path: &Path, options: &Options) -> Result<GeneratedFiles, CodegenError> {
    let json = std::fs::read_to_string(path).map_err(|source| CodegenError::Io {
        path: path.to_owned(),
        source,
    })?;
    let description: Description = serde_json::from_str(&json).map_err(CodegenError::Parse)?;
    generate_with(&description, options)
}

/// `value` with the members of every object in sorted order.
fn canonical(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(&canonical(value.clone())).unwrap_or_default();
    text.push('\n');
    text
}
