//! [`CodegenError`]: why a description cannot be turned into files.

use std::fmt;
use std::path::PathBuf;

/// Why generation failed.
///
/// ```
/// let err = pikku_codegen::generate_from_json(r#"{"version": 9, "channels": [], "$defs": {}}"#).unwrap_err();
/// assert_eq!(err.to_string(), "unsupported description version 9 (this generator reads version 1)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CodegenError {
    /// The description is not valid JSON of the expected form.
    Parse(serde_json::Error),
    /// The description's `version` is not one this generator reads.
    UnsupportedVersion(u32),
    /// Two channels share a name, or two names give the same TypeScript identifier.
    DuplicateName(String),
    /// A channel declares the same routing key twice.
    DuplicateRoute {
        /// The channel.
        channel: String,
        /// `property:value`.
        key: String,
    },
    /// A schema refers to something other than an existing `#/$defs/<name>`.
    BadRef {
        /// Where the reference was found.
        at: String,
        /// The reference.
        reference: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodegenError::Parse(err) => write!(f, "invalid description: {err}"),
            CodegenError::UnsupportedVersion(v) => write!(
                f,
                "unsupported description version {v} (this generator reads version 1)"
            ),
            CodegenError::DuplicateName(name) => write!(f, "duplicate name: {name}"),
            CodegenError::DuplicateRoute { channel, key } => {
                write!(f, "channel '{channel}' declares route '{key}' twice")
            }
            CodegenError::BadRef { at, reference } => {
                write!(f, "{at}: reference '{reference}' names no entry of $defs")
            }
            CodegenError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for CodegenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodegenError::Parse(err) => Some(err),
            CodegenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
