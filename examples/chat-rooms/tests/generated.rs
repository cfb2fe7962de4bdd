//! The page's generated client is current: `static/chat.description.json` is what [`app`] describes, and the
//! files in `static/client/` are what pikku-codegen makes of that description. Both fail while
//! `bash scripts/regenerate-clients.sh` has not been run after a change to the app or the generator. (That the
//! committed `channels.gen.js` is `channels.gen.ts` compiled is checked by `tests/browser.rs`, which has Node.)

use std::path::{Path, PathBuf};

use example_chat_rooms::app;

/// The AsyncAPI title `scripts/regenerate-clients.sh` passes to pikku-codegen.
const TITLE: &str = "pikku chat rooms";

fn static_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
}

#[test]
fn the_committed_description_is_what_the_app_describes() {
    let path = static_dir().join("chat.description.json");
    let json = std::fs::read_to_string(&path).expect("read static/chat.description.json");
    let committed: pikku_codegen::Description =
        serde_json::from_str(&json).expect("the committed description parses");
    assert!(
        committed == app().describe(),
        "{} is stale: run `bash scripts/regenerate-clients.sh`",
        path.display()
    );
}

#[test]
fn the_committed_client_is_what_the_generator_makes_of_the_app() {
    let options = pikku_codegen::Options {
        title: TITLE.to_owned(),
    };
    let files = pikku_codegen::generate_with(&app().describe(), &options)
        .expect("the chat's description generates");
    let dir = static_dir().join("client");
    let stale = files.stale(&dir).expect("read static/client");
    assert!(
        stale.is_empty(),
        "{stale:?} in {} are stale: run `bash scripts/regenerate-clients.sh`",
        dir.display()
    );
    assert!(files
        .typescript
        .contains("export class ChatClient extends ChannelClient"));
}
