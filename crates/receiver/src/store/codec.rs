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
}
