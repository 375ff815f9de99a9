//! Everything the worker has registered, replayed after every connect in the order of
//! protocol.md 9.2: trigger types, services, functions, triggers.
//!
//! Each change gets a sequence number. A replay snapshot records the last number it covers,
//! so a registration frame still queued for sending when the snapshot was taken is not sent
//! twice on the same connection.

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
    /// Records (or replaces) a registration; returns its sequence number.
    pub fn put(&mut self, kind: Kind, id: &str, frame: String) -> u64 {
        self.seq += 1;
        self.entries.insert((kind, id.to_owned()), (self.seq, frame));
        self.seq
    }

    /// Forgets a registration; returns the sequence number of the change.
    pub fn remove(&mut self, kind: Kind, id: &str) -> u64 {
        self.seq += 1;
        self.entries.remove(&(kind, id.to_owned()));
        self.seq
    }

    pub fn contains(&self, kind: Kind, id: &str) -> bool {
        self.entries.contains_key(&(kind, id.to_owned()))
    }

    pub fn ids(&self, kind: Kind) -> Vec<String> {
        let mut v: Vec<(u64, &String)> =
            self.entries.iter().filter(|((k, _), _)| *k == kind).map(|((_, id), (s, _))| (*s, id)).collect();
        v.sort();
        v.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// The frames to replay, in protocol order (by kind, then by registration order), and
    /// the last sequence number they cover.
    pub fn snapshot(&self) -> (Vec<String>, u64) {
        let mut all: Vec<(Kind, u64, &String)> =
            self.entries.iter().map(|((k, _), (s, f))| (*k, *s, f)).collect();
        all.sort_by_key(|(k, s, _)| (*k, *s));
        (all.into_iter().map(|(_, _, f)| f.clone()).collect(), self.seq)
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
        let (frames, upto) = l.snapshot();
        assert_eq!(frames, vec!["TT", "S", "F2", "F1", "T1"]);
        assert_eq!(upto, 5);
        assert_eq!(l.ids(Kind::Function), vec!["f2", "f1"]);
    }

    #[test]
    fn replacing_and_removing() {
        let mut l = Ledger::default();
        l.put(Kind::Function, "f", "old".into());
        l.put(Kind::Function, "f", "new".into());
        assert_eq!(l.snapshot().0, vec!["new"]);
        let seq = l.remove(Kind::Function, "f");
        assert_eq!(seq, 3);
        assert!(!l.contains(Kind::Function, "f"));
        assert_eq!(l.snapshot(), (vec![], 3));
    }
}
