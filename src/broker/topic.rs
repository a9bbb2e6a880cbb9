//! Topic names, interned: a [`Topic`] is a pointer to the one copy of its name in this
//! process.
//!
//! Owns: the interner. Partitions are the keys of the hottest maps (a broker's replicas,
//! its waiting produces and fetches, the clients' batches and positions), so comparing two
//! [`TopicPartition`](super::TopicPartition)s must be cheap: equal names are the same
//! pointer (one comparison), and different names still order by their text, so every map
//! iterates exactly as it would over strings (no run depends on where a name was stored).
//! Each copy carries its first eight bytes as a big-endian number, so two different names
//! that differ there (`events` and `__consumer_offsets`) order by one integer comparison,
//! not a call to `memcmp`.
//! Names are never freed; there are as many as distinct topic names a process meets
//! (a scenario's topics are bounded when it loads, and `__consumer_offsets`).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// The one copy of a name: its text, and its first eight bytes (zero-padded) read as a
/// big-endian number, which orders as the text does wherever it differs.
struct Name {
    prefix: u64,
    text: String,
}

impl Name {
    fn new(text: &str) -> Name {
        let mut head = [0u8; 8];
        let n = text.len().min(8);
        head[..n].copy_from_slice(&text.as_bytes()[..n]);
        Name {
            prefix: u64::from_be_bytes(head),
            text: text.to_owned(),
        }
    }
}

/// Every name interned so far, process-wide (keyed by its text, valued by the one copy).
static NAMES: Mutex<BTreeMap<&'static str, &'static Name>> = Mutex::new(BTreeMap::new());

/// Names this thread interned lately: a run sees a handful, and asks for them constantly
/// (every partition decoded from a frame), without touching the process-wide lock.
const RECENT: usize = 8;

thread_local! {
    static RECENT_NAMES: RefCell<Vec<&'static Name>> = const { RefCell::new(Vec::new()) };
}

/// A topic's name. Equality is identity of the interned copy; order is the text's. One
/// thin pointer (8 bytes), so a [`TopicPartition`](super::TopicPartition) is 16.
#[derive(Clone, Copy)]
pub struct Topic(&'static Name);

impl Topic {
    /// The interned topic `name`.
    pub fn new(name: &str) -> Topic {
        RECENT_NAMES.with(|recent| {
            let mut recent = recent.borrow_mut();
            if let Some(&found) = recent.iter().find(|s| s.text == name) {
                return Topic(found);
            }
            let interned = {
                let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
                match names.get(name) {
                    Some(&found) => found,
                    None => {
                        let leaked: &'static Name = Box::leak(Box::new(Name::new(name)));
                        names.insert(leaked.text.as_str(), leaked);
                        leaked
                    }
                }
            };
            if recent.len() == RECENT {
                recent.remove(0);
            }
            recent.push(interned);
            Topic(interned)
        })
    }

    /// The name.
    pub fn as_str(&self) -> &'static str {
        self.0.text.as_str()
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Topic) -> bool {
        // Interned: the same text is the same copy.
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Topic {}

impl PartialOrd for Topic {
    fn partial_cmp(&self, other: &Topic) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Topic {
    fn cmp(&self, other: &Topic) -> Ordering {
        if self == other {
            Ordering::Equal
        } else {
            // Different prefixes order as the texts do; equal ones need the whole text.
            match self.0.prefix.cmp(&other.0.prefix) {
                Ordering::Equal => self.as_str().cmp(other.as_str()),
                unequal => unequal,
            }
        }
    }
}

impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::ops::Deref for Topic {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Topic {
    fn from(name: &str) -> Topic {
        Topic::new(name)
    }
}

impl From<&String> for Topic {
    fn from(name: &String) -> Topic {
        Topic::new(name)
    }
}

impl From<String> for Topic {
    fn from(name: String) -> Topic {
        Topic::new(&name)
    }
}

impl From<&Topic> for Topic {
    fn from(topic: &Topic) -> Topic {
        *topic
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Topic {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Topic> for String {
    fn eq(&self, other: &Topic) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Topic> for str {
    fn eq(&self, other: &Topic) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Topic> for &str {
    fn eq(&self, other: &Topic) -> bool {
        *self == other.as_str()
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Topic, D::Error> {
        struct Name;
        impl de::Visitor<'_> for Name {
            type Value = Topic;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topic name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Topic, E> {
                Ok(Topic::new(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Topic, E> {
                std::str::from_utf8(v)
                    .map(Topic::new)
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partitions key the hottest maps and fill the history: a topic stays one pointer.
    #[test]
    fn a_topic_is_one_thin_pointer() {
        assert_eq!(std::mem::size_of::<Topic>(), 8);
        assert_eq!(std::mem::size_of::<crate::broker::TopicPartition>(), 16);
    }

    #[test]
    fn equal_names_are_one_copy_and_order_is_the_texts() {
        let a = Topic::new("orders");
        let b = Topic::new(&String::from("orders"));
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(a, b);
        let names = [
            "b",
            "__consumer_offsets",
            "__consumer_offsets2",
            "__consumer",
            "a",
            "orders",
            "ab",
            "a-b",
            "orders2",
            "orders-a",
            "orders\u{0}",
            "ordersxyz1",
            "ordersxyz",
            "ordersxy",
            "",
        ];
        let mut topics: Vec<Topic> = names.iter().map(|n| Topic::new(n)).collect();
        topics.sort();
        let mut texts = names.to_vec();
        texts.sort();
        assert_eq!(topics.iter().map(|t| t.as_str()).collect::<Vec<_>>(), texts);
        assert_ne!(Topic::new("a"), Topic::new("ab"));
    }

    #[test]
    fn interning_from_other_threads_gives_the_same_copy() {
        // More names than a thread's recent list holds, from several threads.
        let names: Vec<String> = (0..3 * RECENT).map(|i| format!("topic-{i}")).collect();
        let here: Vec<Topic> = names.iter().map(Topic::from).collect();
        let there: Vec<Vec<Topic>> = (0..2)
            .map(|_| {
                let names = names.clone();
                std::thread::spawn(move || names.iter().rev().map(Topic::from).collect())
            })
            .map(|h| h.join().expect("thread"))
            .collect();
        for other in there {
            let mut other = other;
            other.reverse();
            for (a, b) in here.iter().zip(&other) {
                assert!(std::ptr::eq(a.as_str(), b.as_str()), "{a} interned twice");
            }
        }
    }

    #[test]
    fn serde_writes_the_name_and_reads_it_back_interned() {
        let t = Topic::new("events");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"events\"");
        let back: Topic = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }
}
