//! Values in order of first mention, each once.

use std::collections::HashSet;
use std::hash::Hash;

/// Values in order of first mention, each once: a set beside the list, so
/// adding stays O(1) when a commit group touches thousands of conversations
/// (a linear `Vec::contains` made it quadratic).
#[derive(Debug, Clone)]
pub struct Distinct<T> {
    seen: HashSet<T>,
    order: Vec<T>,
}

impl<T> Default for Distinct<T> {
    fn default() -> Self {
        Distinct {
            seen: HashSet::new(),
            order: Vec::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> Distinct<T> {
    /// Adds `v` unless it was added before; whether it was new.
    pub fn add(&mut self, v: T) -> bool {
        if self.seen.contains(&v) {
            return false;
        }
        self.seen.insert(v.clone());
        self.order.push(v);
        true
    }

    /// Whether `v` was added.
    pub fn contains(&self, v: &T) -> bool {
        self.seen.contains(v)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The values, in order of first mention.
    pub fn into_vec(self) -> Vec<T> {
        self.order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_mention_order_once_each() {
        let mut d = Distinct::default();
        let new: Vec<bool> = ["b", "a", "b", "c", "a"].map(|v| d.add(v)).to_vec();
        assert_eq!(new, [true, true, false, true, false]);
        assert!(d.contains(&"c") && !d.contains(&"z"));
        assert_eq!(d.len(), 3);
        assert_eq!(d.into_vec(), ["b", "a", "c"]);
    }
}
