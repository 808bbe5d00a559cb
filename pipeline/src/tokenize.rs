//! A simple, deterministic tokenizer: not a trained subword vocabulary, but
//! enough to give the models realistic, length-dependent work.
//!
//! Text is split into runs of alphanumeric characters (lowercased) and single
//! punctuation characters; each piece becomes the FNV-1a hash of its bytes,
//! folded into `1..VOCAB`. Token 0 is the `[CLS]` token every input starts with.

use crate::error::Error;
use crate::model::PreparedInput;
use crate::reference::math::{fnv1a, fnv1a_step, FNV_OFFSET};

const VOCAB: u32 = Tokenizer::VOCAB;
const CLS: u32 = Tokenizer::CLS;
const DEFAULT_MAX_TOKENS: usize = Tokenizer::DEFAULT_MAX_TOKENS;

/// Splits text into token ids: what the pipeline gives every model as its
/// [`PreparedInput`].
///
/// ```
/// use hdrtrace_pipeline::Tokenizer;
///
/// let input = Tokenizer::default().prepare("Hello, world!").unwrap();
/// assert_eq!(input.token_count(), 5); // [CLS] hello , world !
/// assert_eq!(input.tokens()[0], Tokenizer::CLS);
/// assert!(Tokenizer::default().prepare("  ").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokenizer {
    max_tokens: usize,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

impl Tokenizer {
    /// Token ids lie in `0..VOCAB`.
    pub const VOCAB: u32 = 1 << 20;
    /// The token every input starts with.
    pub const CLS: u32 = 0;
    /// The default cap on tokens per input (longer text is truncated).
    pub const DEFAULT_MAX_TOKENS: usize = 8192;

    /// A tokenizer that keeps at most `max_tokens` tokens (including `[CLS]`);
    /// `None` when `max_tokens` is below 2.
    pub fn new(max_tokens: usize) -> Option<Self> {
        (max_tokens >= 2).then_some(Self { max_tokens })
    }

    /// The cap on tokens per input.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token ids of `content`, starting with [`Tokenizer::CLS`]. Content with no token
    /// (empty or only whitespace) is an error.
    pub fn tokenize(&self, content: &str) -> Result<Vec<u32>, Error> {
        let mut tokens = Vec::with_capacity((content.len() / 5 + 2).min(self.max_tokens));
        tokens.push(CLS);
        let mut word: Option<u64> = None;
        for c in content.chars() {
            if tokens.len() >= self.max_tokens {
                word = None;
                break;
            }
            if c.is_alphanumeric() {
                let mut buf = [0u8; 4];
                for lc in c.to_lowercase() {
                    let h = word.get_or_insert(FNV_OFFSET);
                    for &b in lc.encode_utf8(&mut buf).as_bytes() {
                        *h = fnv1a_step(*h, b);
                    }
                }
                continue;
            }
            if let Some(h) = word.take() {
                tokens.push(fold(h));
            }
            if !c.is_whitespace() && tokens.len() < self.max_tokens {
                let mut buf = [0u8; 4];
                tokens.push(fold(fnv1a(c.encode_utf8(&mut buf).as_bytes())));
            }
        }
        if let Some(h) = word {
            tokens.push(fold(h));
        }
        if tokens.len() == 1 {
            return Err(Error::Pipeline(
                "content has no tokens (it is empty or only whitespace)".into(),
            ));
        }
        Ok(tokens)
    }

    /// Tokenizes `content` into the input every model shares.
    pub fn prepare(&self, content: &str) -> Result<PreparedInput, Error> {
        Ok(PreparedInput::new(self.tokenize(content)?, content.len()))
    }
}

/// Folds a hash into `1..VOCAB` (0 is `CLS`).
#[inline]
fn fold(h: u64) -> u32 {
    1 + ((h ^ (h >> 32)) % (VOCAB as u64 - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_punctuation_become_tokens() {
        let t = Tokenizer::default();
        let a = t.tokenize("Hello, world!").unwrap();
        assert_eq!(a.len(), 5); // CLS hello , world !
        assert_eq!(a[0], CLS);
        assert_eq!(a, t.tokenize("hello ,   WORLD!").unwrap());
        assert_ne!(a, t.tokenize("hello, word!").unwrap());
        assert!(a.iter().all(|&x| x < VOCAB));
    }

    #[test]
    fn tokens_are_the_fnv1a_hashes_of_the_lowercased_pieces() {
        let t = Tokenizer::default();
        let hello = [CLS, 194_682, 413_514, 701_303, 461_246];
        assert_eq!(t.tokenize("Hello, World!").unwrap(), hello);
        assert_eq!(t.tokenize("ΑΒΓ δ").unwrap(), [CLS, 315_680, 486_649]);
    }

    #[test]
    fn truncates_and_rejects_empty() {
        let t = Tokenizer::new(4).unwrap();
        assert_eq!(t.tokenize("a b c d e f").unwrap().len(), 4);
        assert!(Tokenizer::new(1).is_none());
        for empty in ["", "  \n\t"] {
            let err = t.tokenize(empty).unwrap_err().to_string();
            assert!(err.contains("no tokens"), "{err}");
        }
        let p = Tokenizer::default().prepare("αβγ δ").unwrap();
        assert_eq!(p.token_count(), 3);
        assert_eq!(p.content_len(), "αβγ δ".len());
    }
}
