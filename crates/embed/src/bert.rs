//! The BERT encoder with mean pooling and L2 normalisation (sentence-transformers'
//! `Transformer` -> `Pooling(mean)` -> `Normalize`), in plain Rust on the CPU.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::safetensors::{self, Tensor};
use crate::tokenizer::WordPiece;

/// Why a model directory could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file of the model could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file of the model is not what a BERT sentence-transformers model holds.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Deserialize)]
struct BertConfig {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f32,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    model_type: Option<String>,
}

const fn default_layer_norm_eps() -> f32 {
    1e-12
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[derive(Deserialize)]
struct TokenizerConfig {
    #[serde(default = "default_true")]
    do_lower_case: bool,
}

const fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

/// `y = x Wᵀ + b` for a weight of shape `[out, in]`.
#[derive(Debug)]
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

#[derive(Debug)]
struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// A loaded sentence-embedding model. Cheap to share behind an `Arc`; [`Embedder::embed`]
/// takes `&self`.
#[derive(Debug)]
pub struct Embedder {
    name: String,
    tokenizer: WordPiece,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    eps: f32,
    max_tokens: usize,
}

impl Embedder {
    /// Loads the model in `dir`. Its name ([`Embedder::model_name`]) is the directory's name
    /// unless the README's front matter or the caller says otherwise.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let config: BertConfig = read_json(&dir.join("config.json"))?;
        let config_path = dir.join("config.json");
        let invalid = |path: &Path, reason: String| LoadError::Invalid {
            path: path.to_owned(),
            reason,
        };
        if config.model_type.as_deref().is_some_and(|t| t != "bert") {
            return Err(invalid(&config_path, "not a BERT model".into()));
        }
        if config.hidden_act.as_deref().is_some_and(|a| a != "gelu") {
            return Err(invalid(
                &config_path,
                "only the gelu activation is supported".into(),
            ));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(invalid(
                &config_path,
                "heads do not divide the hidden size".into(),
            ));
        }
        let max_tokens =
            optional_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))?
                .map_or(512, |c| c.max_seq_length);
        let lower_case = optional_json::<TokenizerConfig>(&dir.join("tokenizer_config.json"))?
            .is_none_or(|c| c.do_lower_case);
        let pooling_path = dir.join("1_Pooling").join("config.json");
        if let Some(pooling) = optional_json::<PoolingConfig>(&pooling_path)? {
            if !pooling.pooling_mode_mean_tokens {
                return Err(invalid(
                    &pooling_path,
                    "only mean pooling is supported".into(),
                ));
            }
        }
        let vocab_path = dir.join("vocab.txt");
        let vocab = read_string(&vocab_path)?;
        let tokenizer = WordPiece::new(&vocab, lower_case).map_err(|r| invalid(&vocab_path, r))?;

        let weights_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights_path).map_err(|source| LoadError::Read {
            path: weights_path.clone(),
            source,
        })?;
        let mut tensors = safetensors::read(&bytes).map_err(|r| invalid(&weights_path, r))?;
        drop(bytes);
        let hidden = config.hidden_size;
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, LoadError> {
            let tensor: Tensor = tensors
                .remove(name)
                .or_else(|| tensors.remove(&format!("bert.{name}")))
                .ok_or_else(|| invalid(&weights_path, format!("no tensor {name}")))?;
            if tensor.shape != shape {
                return Err(invalid(
                    &weights_path,
                    format!("tensor {name} has shape {:?}, not {shape:?}", tensor.shape),
                ));
            }
            Ok(tensor.data)
        };
        let vocab_size = vocab.lines().count();
        let word = take("embeddings.word_embeddings.weight", &[vocab_size, hidden])?;
        let positions = max_tokens.min(512);
        let mut position = take("embeddings.position_embeddings.weight", &[512, hidden])?;
        position.truncate(positions * hidden);
        let token_type = take("embeddings.token_type_embeddings.weight", &[2, hidden])?;
        let embedding_norm = LayerNorm {
            weight: take("embeddings.LayerNorm.weight", &[hidden])?,
            bias: take("embeddings.LayerNorm.bias", &[hidden])?,
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut linear =
                |name: &str, inputs: usize, outputs: usize| -> Result<Linear, LoadError> {
                    Ok(Linear {
                        weight: take(&format!("{p}.{name}.weight"), &[outputs, inputs])?,
                        bias: take(&format!("{p}.{name}.bias"), &[outputs])?,
                        inputs,
                        outputs,
                    })
                };
            let query = linear("attention.self.query", hidden, hidden)?;
            let key = linear("attention.self.key", hidden, hidden)?;
            let value = linear("attention.self.value", hidden, hidden)?;
            let attention_out = linear("attention.output.dense", hidden, hidden)?;
            let intermediate = linear("intermediate.dense", hidden, config.intermediate_size)?;
            let output = linear("output.dense", config.intermediate_size, hidden)?;
            let mut norm = |name: &str| -> Result<LayerNorm, LoadError> {
                Ok(LayerNorm {
                    weight: take(&format!("{p}.{name}.weight"), &[hidden])?,
                    bias: take(&format!("{p}.{name}.bias"), &[hidden])?,
                })
            };
            layers.push(Layer {
                query,
                key,
                value,
                attention_out,
                attention_norm: norm("attention.output.LayerNorm")?,
                intermediate,
                output,
                output_norm: norm("output.LayerNorm")?,
            });
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            name,
            tokenizer,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            hidden,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps,
            max_tokens: positions,
        })
    }

    /// Names the model, for fingerprints that must never be compared across models.
    pub fn with_model_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The model's name: the directory name unless set with [`Embedder::with_model_name`].
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// The length of the vectors [`Embedder::embed`] returns.
    pub fn dimensions(&self) -> usize {
        self.hidden
    }

    /// The token ids the model reads for `text`: `[CLS]`, the WordPiece ids truncated to the
    /// model's maximum sequence length, `[SEP]`.
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.tokenizer.cls];
        let mut body = self.tokenizer.encode(text);
        body.truncate(self.max_tokens - 2);
        ids.extend(body);
        ids.push(self.tokenizer.sep);
        ids
    }

    /// The unit-length embedding of `text` (truncated to the model's maximum sequence length).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let ids = self.token_ids(text);
        let h = self.hidden;
        let n = ids.len();

        let mut x = vec![0f32; n * h];
        for (t, &id) in ids.iter().enumerate() {
            let row = &mut x[t * h..(t + 1) * h];
            let word = &self.word[id as usize * h..(id as usize + 1) * h];
            let position = &self.position[t * h..(t + 1) * h];
            for i in 0..h {
                row[i] = word[i] + position[i] + self.token_type[i];
            }
        }
        layer_norm(&mut x, &self.embedding_norm, h, self.eps);

        for layer in &self.layers {
            let attention = self.attention(layer, &x, n);
            let mut attended = layer.attention_out.apply(&attention, n);
            add(&mut attended, &x);
            layer_norm(&mut attended, &layer.attention_norm, h, self.eps);
            let mut inner = layer.intermediate.apply(&attended, n);
            for v in &mut inner {
                *v = gelu(*v);
            }
            let mut out = layer.output.apply(&inner, n);
            add(&mut out, &attended);
            layer_norm(&mut out, &layer.output_norm, h, self.eps);
            x = out;
        }

        let mut pooled = vec![0f32; h];
        for row in x.chunks_exact(h) {
            add(&mut pooled, row);
        }
        // The mean over the tokens, scaled to unit length (the mean's 1/n cancels out).
        let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        for v in &mut pooled {
            *v /= norm;
        }
        pooled
    }

    /// Multi-head self-attention over the `n` token rows of `x` (no padding, so no mask).
    fn attention(&self, layer: &Layer, x: &[f32], n: usize) -> Vec<f32> {
        let h = self.hidden;
        let d = h / self.heads;
        let q = layer.query.apply(x, n);
        let k = layer.key.apply(x, n);
        let v = layer.value.apply(x, n);
        let scale = 1.0 / (d as f32).sqrt();
        let mut context = vec![0f32; n * h];
        let mut scores = vec![0f32; n];
        for head in 0..self.heads {
            let offset = head * d;
            for i in 0..n {
                let qi = &q[i * h + offset..i * h + offset + d];
                let mut max = f32::NEG_INFINITY;
                for (j, score) in scores.iter_mut().enumerate() {
                    *score = dot(qi, &k[j * h + offset..j * h + offset + d]) * scale;
                    max = max.max(*score);
                }
                let mut total = 0.0;
                for score in &mut scores {
                    *score = (*score - max).exp();
                    total += *score;
                }
                let out = &mut context[i * h + offset..i * h + offset + d];
                for (j, score) in scores.iter().enumerate() {
                    let weight = score / total;
                    let vj = &v[j * h + offset..j * h + offset + d];
                    for (o, value) in out.iter_mut().zip(vj) {
                        *o += weight * value;
                    }
                }
            }
        }
        context
    }
}

impl Linear {
    /// `n` rows of `inputs` values in, `n` rows of `outputs` values out. Weight rows outside,
    /// tokens inside: each weight row is read from memory once per text, not once per token.
    fn apply(&self, x: &[f32], n: usize) -> Vec<f32> {
        let mut y = vec![0f32; n * self.outputs];
        let rows: Vec<&[f32]> = x.chunks_exact(self.inputs).take(n).collect();
        for (o, (w, b)) in self
            .weight
            .chunks_exact(self.inputs)
            .zip(&self.bias)
            .enumerate()
        {
            for (t, row) in rows.iter().enumerate() {
                y[t * self.outputs + o] = dot(row, w) + b;
            }
        }
        y
    }
}

/// A dot product in eight lanes, which the compiler vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut total: f32 = lanes.iter().sum();
    for i in chunks * 8..a.len() {
        total += a[i] * b[i];
    }
    total
}

fn add(into: &mut [f32], other: &[f32]) {
    for (a, b) in into.iter_mut().zip(other) {
        *a += b;
    }
}

fn layer_norm(x: &mut [f32], norm: &LayerNorm, h: usize, eps: f32) {
    for row in x.chunks_exact_mut(h) {
        let mean = row.iter().sum::<f32>() / h as f32;
        let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inverse = 1.0 / (variance + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
            *v = (*v - mean) * inverse * w + b;
        }
    }
}

/// The exact (erf) GELU that BERT's `gelu` names.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2))
}

fn read_string(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, LoadError> {
    serde_json::from_str(&read_string(path)?).map_err(|error| LoadError::Invalid {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

fn optional_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, LoadError> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}
