//! Prints the conformance fixture's description (`App::describe`) as JSON, for client generators.
//!
//! ```text
//! cargo run -p pikku-conformance --example describe > conformance.description.json
//! ```

use pikku_conformance::{fixture_app, FixtureSettings, Recorder};

fn main() {
    let description = fixture_app(&FixtureSettings::defaults(), Recorder::default()).describe();
    println!(
        "{}",
        serde_json::to_string_pretty(&description).expect("a description serializes")
    );
}
