//! BERT's uncased WordPiece tokenizer: clean the text, split on whitespace and punctuation
//! (and around CJK ideographs), lower-case and strip accents, then split each word into the
//! longest vocabulary pieces from the left (`##` marks a continuation).

use std::collections::HashMap;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Words longer than this many characters become `[UNK]`, as in BERT.
const MAX_WORD_CHARS: usize = 100;

#[derive(Debug)]
pub(crate) struct WordPiece {
    vocab: HashMap<String, u32>,
    lower_case: bool,
    unknown: u32,
    pub(crate) cls: u32,
    pub(crate) sep: u32,
}

impl WordPiece {
    /// A tokenizer over `vocab_txt` (one token per line, its line number its id).
    pub(crate) fn new(vocab_txt: &str, lower_case: bool) -> Result<Self, String> {
        let vocab: HashMap<String, u32> = vocab_txt
            .lines()
            .enumerate()
            .map(|(id, token)| (token.to_owned(), id as u32))
            .collect();
        let id = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| format!("vocab.txt has no {token}"))
        };
        Ok(Self {
            unknown: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            vocab,
            lower_case,
        })
    }

    /// The token ids of `text`, without `[CLS]` and `[SEP]`.
    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for word in self.words(text) {
            self.word_pieces(&word, &mut ids);
        }
        ids
    }

    /// BERT's basic tokenizer.
    fn words(&self, text: &str) -> Vec<String> {
        let mut spaced = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if c == '\0' || c == '\u{fffd}' || (is_control(c) && !c.is_whitespace()) {
                continue;
            }
            if is_cjk(c) {
                spaced.push(' ');
                spaced.push(c);
                spaced.push(' ');
            } else if c.is_whitespace() {
                spaced.push(' ');
            } else {
                spaced.push(c);
            }
        }
        let mut words = Vec::new();
        for token in spaced.split_whitespace() {
            let token: String = if self.lower_case {
                token
                    .to_lowercase()
                    .nfd()
                    .filter(|c| !is_combining_mark(*c))
                    .collect()
            } else {
                token.to_owned()
            };
            let mut current = String::new();
            for c in token.chars() {
                if is_punctuation(c) {
                    if !current.is_empty() {
                        words.push(std::mem::take(&mut current));
                    }
                    words.push(c.to_string());
                } else {
                    current.push(c);
                }
            }
            if !current.is_empty() {
                words.push(current);
            }
        }
        words
    }

    /// Greedy longest-match-first WordPiece of one word.
    fn word_pieces(&self, word: &str, ids: &mut Vec<u32>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > MAX_WORD_CHARS {
            ids.push(self.unknown);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let mut piece: String = chars[start..end].iter().collect();
                if start > 0 {
                    piece.insert_str(0, "##");
                }
                if let Some(&id) = self.vocab.get(&piece) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => pieces.push(id),
                None => {
                    ids.push(self.unknown);
                    return;
                }
            }
            start = end;
        }
        ids.extend(pieces);
    }
}

fn is_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// ASCII punctuation and symbols (as BERT treats them), and Unicode punctuation.
fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    matches!(
        c,
        '\u{00a1}'..='\u{00bf}'
            | '\u{2010}'..='\u{2027}'
            | '\u{2030}'..='\u{205e}'
            | '\u{3001}'..='\u{3003}'
            | '\u{3008}'..='\u{3011}'
            | '\u{ff01}'..='\u{ff0f}'
            | '\u{ff1a}'..='\u{ff20}'
    ) && !matches!(
        c,
        '\u{00aa}' | '\u{00b2}' | '\u{00b3}' | '\u{00b5}' | '\u{00b9}' | '\u{00ba}' | '\u{00bc}'
            ..='\u{00be}'
    )
}

/// The CJK ideograph blocks BERT splits character by character.
fn is_cjk(c: char) -> bool {
    matches!(
        c,
        '\u{4e00}'..='\u{9fff}'
            | '\u{3400}'..='\u{4dbf}'
            | '\u{20000}'..='\u{2a6df}'
            | '\u{2a700}'..='\u{2b73f}'
            | '\u{2b740}'..='\u{2b81f}'
            | '\u{2b820}'..='\u{2ceaf}'
            | '\u{f900}'..='\u{faff}'
            | '\u{2f800}'..='\u{2fa1f}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> WordPiece {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhow\ndo\ni\nreset\nmy\npass\n##word\n?\ncafe\n,\n";
        WordPiece::new(vocab, true).unwrap()
    }

    #[test]
    fn splits_words_punctuation_and_word_pieces() {
        let t = tokenizer();
        assert_eq!(
            t.encode("How do I reset my Password?"),
            [4, 5, 6, 7, 8, 9, 10, 11]
        );
        assert_eq!(t.encode("  Café,\tpassword "), [12, 13, 9, 10]);
    }

    #[test]
    fn unknown_words_become_unk() {
        let t = tokenizer();
        assert_eq!(t.encode("passxyz reset"), [1, 7]);
        assert_eq!(t.encode(&"a".repeat(101)), [1]);
    }
}
