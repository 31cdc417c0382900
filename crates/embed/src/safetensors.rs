//! Reading the `F32` tensors of a `.safetensors` file: an 8-byte little-endian header length,
//! a JSON header naming each tensor's dtype, shape and byte range, then the raw data.

use std::collections::HashMap;

use serde::Deserialize;

/// One tensor: its shape and its values in row-major order.
#[derive(Debug)]
pub(crate) struct Tensor {
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<f32>,
}

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// The `F32` tensors of `bytes`, by name; tensors of other dtypes are skipped.
pub(crate) fn read(bytes: &[u8]) -> Result<HashMap<String, Tensor>, String> {
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")))
        .ok_or("shorter than its header length")?;
    let header_len = usize::try_from(header_len).map_err(|_| "header length overflows")?;
    let header = bytes
        .get(8..8usize.saturating_add(header_len))
        .ok_or("shorter than its header")?;
    let data = &bytes[8 + header_len..];
    let entries: HashMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|error| format!("header: {error}"))?;
    let mut tensors = HashMap::new();
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let entry: Entry =
            serde_json::from_value(value).map_err(|error| format!("tensor {name}: {error}"))?;
        if entry.dtype != "F32" {
            continue;
        }
        let [start, end] = entry.data_offsets;
        let raw = data
            .get(start..end)
            .ok_or_else(|| format!("tensor {name}: data out of range"))?;
        let count: usize = entry.shape.iter().product();
        if raw.len() != count * 4 {
            return Err(format!(
                "tensor {name}: {} bytes for shape {:?}",
                raw.len(),
                entry.shape
            ));
        }
        let values = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("four bytes")))
            .collect();
        tensors.insert(
            name,
            Tensor {
                shape: entry.shape,
                data: values,
            },
        );
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn reads_f32_tensors_and_skips_others() {
        let mut data = Vec::new();
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        data.extend_from_slice(&7i64.to_le_bytes());
        let header = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"ids":{"dtype":"I64","shape":[1],"data_offsets":[24,32]}}"#;
        let tensors = read(&file(header, &data)).unwrap();
        assert_eq!(tensors.len(), 1);
        assert_eq!(tensors["w"].shape, [2, 3]);
        assert_eq!(tensors["w"].data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn rejects_truncated_files() {
        assert!(read(&[1, 0]).is_err());
        let header = r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
        assert!(read(&file(header, &[0; 8]))
            .unwrap_err()
            .contains("out of range"));
        assert!(read(&file("{", &[])).unwrap_err().starts_with("header"));
    }
}
