//! A reproducible random generator.

/// xorshift64* (Vigna): enough for test inputs, fully reproducible, and without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose state is `seed` with the lowest bit set (the state must never be zero).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A generator whose state is `seed` multiplied by the 64-bit golden ratio, so that neighbouring seeds
    /// start far apart.
    #[must_use]
    pub fn scrambled(seed: u64) -> Self {
        Self::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A generator with exactly this state, which must not be zero.
    #[must_use]
    pub fn from_state(state: u64) -> Self {
        Self(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`; `n` must not be zero.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with a probability of `percent` in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One random byte (the high bits of one draw).
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// `len` random bytes, eight per draw (little-endian).
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// `len` random bytes, one draw each (as [`Rng::byte`]): slower than [`Rng::bytes`] and a different
    /// sequence.
    pub fn drawn_bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    /// One of `items`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A WebSocket masking key; one in ten is all zeros.
    pub fn mask(&mut self) -> [u8; 4] {
        if self.chance(10) {
            return [0; 4];
        }
        let b = self.next_u64().to_le_bytes();
        [b[0], b[1], b[2], b[3]]
    }

    /// `len` characters of printable ASCII, quotes and backslashes included.
    pub fn ascii(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b' ' + self.below(95) as u8))
            .collect()
    }

    /// Valid UTF-8 of `chars` one- to four-byte characters.
    pub fn unicode(&mut self, chars: usize) -> String {
        (0..chars)
            .map(|_| self.pick(&['a', 'Z', ' ', '"', '{', 'é', 'ß', '✓', '€', '𝄞', '😀']))
            .collect()
    }
}
