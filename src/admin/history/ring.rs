//! A fixed ring of numbered slots: value number `n` lives in slot `n % capacity` until number
//! `n + capacity` overwrites it, so the ring always holds the last `capacity` values, and a
//! reader asks for the ones after the last number it has.

/// The last `capacity` values pushed, numbered from 1.
#[derive(Debug)]
pub struct Ring<T> {
    /// `(number, value)`; a slot's number tells whether it is still current.
    slots: Box<[Option<(u64, T)>]>,
    /// The number of the last value pushed; 0 before the first.
    last: u64,
}

impl<T> Ring<T> {
    /// An empty ring of `capacity` slots (at least one).
    pub fn new(capacity: usize) -> Ring<T> {
        Ring {
            slots: (0..capacity.max(1)).map(|_| None).collect(),
            last: 0,
        }
    }

    /// How many values it holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The number of the last value pushed; 0 while empty.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Stores `value`, overwriting the oldest when full; returns its number.
    pub fn push(&mut self, value: T) -> u64 {
        self.last += 1;
        let i = self.index(self.last);
        self.slots[i] = Some((self.last, value));
        self.last
    }

    /// Value number `n`, if still held.
    pub fn get(&self, n: u64) -> Option<&T> {
        match &self.slots[self.index(n)] {
            Some((m, v)) if *m == n => Some(v),
            _ => None,
        }
    }

    /// The values numbered after `n` that are still held, oldest first, with their numbers.
    pub fn after(&self, n: u64) -> impl Iterator<Item = (u64, &T)> + '_ {
        let oldest = self.last.saturating_sub(self.capacity() as u64) + 1;
        (oldest.max(n.saturating_add(1))..=self.last).filter_map(|m| self.get(m).map(|v| (m, v)))
    }

    fn index(&self, n: u64) -> usize {
        // The remainder is below the capacity, a usize.
        (n % self.capacity() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers<T>(ring: &Ring<T>, after: u64) -> Vec<u64> {
        ring.after(after).map(|(n, _)| n).collect()
    }

    #[test]
    fn an_empty_ring_holds_nothing() {
        let ring: Ring<&str> = Ring::new(4);
        assert_eq!(ring.last(), 0);
        assert_eq!(numbers(&ring, 0), Vec::<u64>::new());
        assert_eq!(ring.get(0), None);
    }

    #[test]
    fn a_full_ring_wraps_around_and_keeps_the_last_values_in_order() {
        let mut ring = Ring::new(4);
        for v in 1..=10 {
            assert_eq!(ring.push(v * 10), v);
        }
        assert_eq!(numbers(&ring, 0), vec![7, 8, 9, 10]);
        let values: Vec<_> = ring.after(0).map(|(_, v)| *v).collect();
        assert_eq!(values, vec![70, 80, 90, 100]);
        assert_eq!(ring.get(6), None, "overwritten by 10");
        assert_eq!(ring.get(10), Some(&100));
        assert_eq!(ring.get(11), None, "not pushed yet");
    }

    #[test]
    fn a_reader_gets_only_what_came_after_its_last_number() {
        let mut ring = Ring::new(600);
        for v in 0..700 {
            ring.push(v);
        }
        assert_eq!(numbers(&ring, 698), vec![699, 700]);
        assert_eq!(numbers(&ring, 700), Vec::<u64>::new());
        assert_eq!(
            numbers(&ring, 9_999),
            Vec::<u64>::new(),
            "a number from elsewhere"
        );
        // A reader that fell behind by more than the ring gets what is left.
        assert_eq!(numbers(&ring, 3).first(), Some(&101));
        assert_eq!(numbers(&ring, 3).len(), 600);
    }
}
