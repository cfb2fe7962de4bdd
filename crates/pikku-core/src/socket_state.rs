//! How a channel's socket state can leave the process: the JSON codec a stateless runner stores it with.
//!
//! In-process, socket state is a typed value behind the connection and never serialized. A stateless runner keeps
//! nothing between invocations, so it saves the state in the channel record after each one and loads it before
//! the next. Channels opt in with [`ChannelRoute::persist_socket_state`](crate::ChannelRoute::persist_socket_state),
//! which records the two functions below for the channel's state type; a stateless runner refuses to start an
//! app with a channel whose state type has none.

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The stored form of socket state as the connection holds it.
pub(crate) type StateBox = Box<dyn Any + Send>;

/// Encodes and decodes one channel's socket state as JSON.
#[derive(Clone, Copy)]
pub(crate) struct StateCodec {
    /// The state as JSON; `None` when the box holds another type (which no handler of the channel can set).
    pub(crate) encode: fn(&(dyn Any + Send)) -> Option<Result<Value, serde_json::Error>>,
    pub(crate) decode: fn(Value) -> Result<StateBox, serde_json::Error>,
}

impl StateCodec {
    pub(crate) fn of<SS: Serialize + DeserializeOwned + Send + 'static>() -> Self {
        Self {
            encode: |state| state.downcast_ref::<SS>().map(serde_json::to_value),
            decode: |value| serde_json::from_value::<SS>(value).map(|s| Box::new(s) as StateBox),
        }
    }
}

/// What a channel's socket state needs to survive between invocations.
#[derive(Clone, Copy)]
pub(crate) enum StatePersistence {
    /// The channel declares no socket state (`SS = ()`): nothing to keep.
    Stateless,
    /// A state type without a codec: usable in-process only. Holds the type's name for the startup error.
    InProcess(&'static str),
    /// A state type with its codec.
    Persisted(StateCodec),
}

impl StatePersistence {
    /// The persistence of a channel with state type `SS` that did not opt in.
    pub(crate) fn default_for<SS: 'static>() -> Self {
        if TypeId::of::<SS>() == TypeId::of::<()>() {
            Self::Stateless
        } else {
            Self::InProcess(std::any::type_name::<SS>())
        }
    }
}
