//! `publish`, the engine's pub/sub function (module `iii-pubsub`, docs/protocol.md 6.8):
//! `{topic, data}` calls, in the background, every function bound to a `subscribe` trigger on
//! exactly that topic with `data`, and answers with no result. As in the real engine, an empty
//! topic is refused (`topic_not_set`) and a binding without a topic never fires.

use std::sync::Arc;

use iii_protocol::ErrorBody;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::reply::{input as parse, Outcome};
use super::state::Engine;
use super::triggers::{bound_where, notify_in_background};

pub(crate) const PUBLISH: &str = "publish";

#[derive(Deserialize)]
struct PublishInput {
    topic: String,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
struct Subscription {
    #[serde(default)]
    topic: String,
}

pub(crate) fn publish(engine: &Arc<Engine>, text: &str) -> Outcome {
    let input: PublishInput = parse(PUBLISH, text)?;
    if input.topic.is_empty() {
        return Err(ErrorBody::new("topic_not_set", "Topic is not set"));
    }
    let on_topic = |config: Option<&RawValue>| {
        config
            .and_then(|c| serde_json::from_str::<Subscription>(c.get()).ok())
            .is_some_and(|s| s.topic == input.topic)
    };
    let functions = bound_where(engine, "subscribe", on_topic);
    notify_in_background(engine, functions, input.data.get().to_owned());
    Ok(None)
}
