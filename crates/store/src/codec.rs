//! Compact encodings of values stored in BLOB columns.

/// Encodes a list of strings as a sequence of (LEB128 length, UTF-8 bytes): two bytes less
/// per item than JSON, and any string round-trips.
pub(crate) fn encode_strings(items: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|item| item.len() + 1).sum());
    for item in items {
        let mut len = item.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(item.as_bytes());
    }
    out
}

/// Decodes [`encode_strings`]; a malformed tail (never written by this receiver) ends the list.
pub(crate) fn decode_strings(mut bytes: &[u8]) -> Vec<String> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let Some((&byte, rest)) = bytes.split_first() else {
                return items;
            };
            bytes = rest;
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 || shift > 56 {
                break;
            }
        }
        let Some((item, rest)) = bytes.split_at_checked(len) else {
            return items;
        };
        items.push(String::from_utf8_lossy(item).into_owned());
        bytes = rest;
    }
    items
}

/// A 64-bit key for a text value (FNV-1a), indexed in place of the text itself: an integer
/// index entry is a third the size of a typical `gen_ai.response.id`, so the index has fewer
/// pages and a group commit dirties fewer of them. Stable across versions and platforms
/// (stored keys must keep matching); equal keys are confirmed by comparing the text.
pub(crate) fn text_key(text: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = text.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    hash as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let items: Vec<String> = vec![
            "kb-reset-password#2".into(),
            String::new(),
            "x".repeat(300),
            "ünïcode".into(),
        ];
        let encoded = encode_strings(&items);
        assert_eq!(encoded.len(), 19 + 1 + 1 + 300 + 2 + 1 + "ünïcode".len());
        assert_eq!(decode_strings(&encoded), items);
        assert!(decode_strings(&[]).is_empty());
        assert_eq!(decode_strings(&[5, b'a']), Vec::<String>::new());
    }

    /// Stored keys must keep matching: the FNV-1a 64 reference values.
    #[test]
    fn text_key_is_fnv1a_64() {
        assert_eq!(text_key("") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(text_key("a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(text_key("foobar") as u64, 0x8594_4171_f739_67e8);
    }
}
