//! Tokenising, stopwords, light stemming and sentence splitting, shared by the index, the
//! reranker and the extractive answerer so documents and queries are normalised alike.

/// Words that carry no topic; dropped from documents and queries.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "before", "but", "by", "can", "could", "did", "do", "does", "doing", "each", "else",
    "for", "from", "get", "got", "had", "has", "have", "he", "her", "here", "his", "how", "i",
    "if", "in", "into", "is", "it", "its", "just", "let", "me", "more", "my", "need", "no", "not",
    "now", "of", "on", "one", "only", "or", "other", "our", "out", "over", "please", "same", "she",
    "should", "so", "some", "still", "such", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "us", "very", "want", "was", "way", "we", "were", "what", "when", "where", "which", "while",
    "who", "why", "will", "with", "would", "you", "your",
];

/// Whether `word` (lowercase) is a stopword.
pub(crate) fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

/// A light suffix-stripping stemmer: plural and common verb endings only, with length guards
/// so short words stay intact. Not Porter; good enough that "passwords", "resetting" and
/// "invoiced" meet "password", "reset" and "invoice".
pub(crate) fn stem(word: &str) -> String {
    let w = word;
    let n = w.len();
    let stripped: String = if n > 4 && w.ends_with("ies") {
        format!("{}y", &w[..n - 3])
    } else if n > 5 && w.ends_with("sses") {
        w[..n - 2].to_owned()
    } else if n > 3
        && w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("us")
        && !w.ends_with("is")
    {
        w[..n - 1].to_owned()
    } else if n > 5 && w.ends_with("ing") {
        undouble(&w[..n - 3])
    } else if n > 4 && w.ends_with("ed") {
        undouble(&w[..n - 2])
    } else {
        w.to_owned()
    };
    // "invoice" and "invoic(ed)" should meet: drop a final silent "e" everywhere.
    match stripped.strip_suffix('e') {
        Some(base) if base.len() > 3 => base.to_owned(),
        _ => stripped,
    }
}

/// "resett" -> "reset", "logg" -> "log"; keeps "ll", "ss", "ff" which are usually part of the word.
fn undouble(base: &str) -> String {
    let bytes = base.as_bytes();
    let n = bytes.len();
    if n >= 4
        && bytes[n - 1].is_ascii_alphabetic()
        && bytes[n - 1] == bytes[n - 2]
        && !matches!(bytes[n - 1], b'l' | b's' | b'f' | b'z')
    {
        base[..n - 1].to_owned()
    } else {
        base.to_owned()
    }
}

/// Lowercases, splits on anything that is not a letter or a digit, drops stopwords and
/// one-character tokens, and stems what is left.
pub(crate) fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() > 1 && !is_stopword(w))
        .map(|w| stem(&w))
        .collect()
}

/// Splits a paragraph into sentences at `.`, `!` or `?` followed by whitespace. Abbreviation
/// handling is deliberately absent: the bundled corpus does not need it.
pub(crate) fn sentences(paragraph: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = paragraph.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') {
            if let Some(&(_, next)) = chars.peek() {
                if next.is_whitespace() {
                    let end = i + c.len_utf8();
                    let s = paragraph[start..end].trim();
                    if !s.is_empty() {
                        out.push(s);
                    }
                    start = end;
                }
            }
        }
    }
    let rest = paragraph[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn tokenize_lowercases_drops_stopwords_and_stems() {
        assert_eq!(
            tokenize("How do I reset my Passwords?"),
            vec!["reset", "password"]
        );
        assert_eq!(tokenize("Resetting invoices"), tokenize("reset invoice"));
        assert_eq!(
            tokenize("billed billing bills"),
            vec!["bill", "bill", "bill"]
        );
        assert_eq!(tokenize("policies"), vec!["policy"]);
        assert!(tokenize("").is_empty());
        assert!(tokenize("?!... a I").is_empty());
    }

    #[test]
    fn sentences_split_on_terminal_punctuation() {
        assert_eq!(
            sentences("One. Two? Three! example.com stays"),
            vec!["One.", "Two?", "Three!", "example.com stays"]
        );
    }
}
