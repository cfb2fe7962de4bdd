//! The app description the generator reads: [`App::describe`](pikku::App::describe) gives it, and its JSON form
//! (`serde_json::to_string(&description)`) is what the command line takes.

pub use pikku_core::describe::{
    AppDescription as Description, BinaryDescription as BinaryDesc,
    CapabilityDescription as CapabilityDesc, ChannelDescription as ChannelDesc,
    ConnectDescription as ConnectDesc, MessageDescription as MessageDesc,
    ReplyDescription as ReplyDesc, ReplyShape, RouteDescription as RouteDesc,
    TypeDescription as TypeDesc,
};

/// Whether a described type is `()`: a message that takes no input.
pub(crate) fn is_unit(ty: &TypeDesc) -> bool {
    ty.rust.trim() == "()"
}
