//! Everything the worker has registered, replayed after every connect in the order of
//! docs/protocol.md 9.2: trigger types, services, functions, triggers.
//!
//! Each registration keeps its sequence number, so a replay also keeps the order in which
//! the worker registered things of one kind.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    TriggerType = 0,
    Service = 1,
    Function = 2,
    Trigger = 3,
}

#[derive(Default)]
pub struct Ledger {
    entries: HashMap<(Kind, String), (u64, String)>,
    seq: u64,
}

impl Ledger {
    /// Records (or replaces) a registration.
    pub fn put(&mut self, kind: Kind, id: &str, frame: String) {
        self.seq += 1;
        self.entries.insert((kind, id.to_owned()), (self.seq, frame));
    }

    /// Forgets a registration.
    pub fn remove(&mut self, kind: Kind, id: &str) {
        self.entries.remove(&(kind, id.to_owned()));
    }

    /// The frames to replay, in protocol order (by kind, then by registration order).
    pub fn snapshot(&self) -> Vec<String> {
        let mut all: Vec<(Kind, u64, &String)> =
            self.entries.iter().map(|((k, _), (s, f))| (*k, *s, f)).collect();
        all.sort_by_key(|(k, s, _)| (*k, *s));
        all.into_iter().map(|(_, _, f)| f.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_by_kind_then_registration_order() {
        let mut l = Ledger::default();
        l.put(Kind::Trigger, "t1", "T1".into());
        l.put(Kind::Function, "f2", "F2".into());
        l.put(Kind::Function, "f1", "F1".into());
        l.put(Kind::TriggerType, "tt", "TT".into());
        l.put(Kind::Service, "s", "S".into());
        assert_eq!(l.snapshot(), vec!["TT", "S", "F2", "F1", "T1"]);
    }

    #[test]
    fn replacing_and_removing() {
        let mut l = Ledger::default();
        l.put(Kind::Function, "f", "old".into());
        l.put(Kind::Function, "f", "new".into());
        assert_eq!(l.snapshot(), vec!["new"]);
        l.remove(Kind::Function, "f");
        assert!(l.snapshot().is_empty());
    }
}
