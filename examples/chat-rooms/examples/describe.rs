//! Prints the chat app's description (`App::describe`) as JSON: the input of the page's generated client.
//!
//! ```text
//! cargo run -p example-chat-rooms --example describe > examples/chat-rooms/static/chat.description.json
//! ```
//!
//! `bash scripts/regenerate-clients.sh` runs it and regenerates the client from its output.

fn main() {
    let description = example_chat_rooms::app().describe();
    println!(
        "{}",
        serde_json::to_string_pretty(&description).expect("a description serializes")
    );
}
