//! What a worker lets plugins run: which images, with or without a network.

/// The worker's container policy.
///
/// Images are matched by reference after normalisation (`busybox` is
/// `busybox:latest`, `docker.io/library/busybox` is `busybox`). A pattern
/// ending in `*` matches every reference that starts with the rest
/// (`ghcr.io/acme/*`, `busybox:*`); any other pattern matches one reference.
/// An empty allow-list allows nothing.
#[derive(Debug, Clone, Default)]
pub struct ImagePolicy {
    allowed: Vec<String>,
}

impl ImagePolicy {
    /// A policy allowing `patterns`.
    pub fn new(patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            allowed: patterns
                .into_iter()
                .map(|pattern| {
                    let pattern = pattern.into();
                    match pattern.strip_suffix('*') {
                        Some(prefix) => format!("{}*", strip_default_registry(prefix)),
                        None => normalize(&pattern),
                    }
                })
                .collect(),
        }
    }

    /// The patterns, normalised.
    pub fn patterns(&self) -> &[String] {
        &self.allowed
    }

    /// Whether `image` may run; the error says how to allow it.
    pub fn check(&self, image: &str) -> Result<(), String> {
        let reference = normalize(image);
        let allowed = self
            .allowed
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => reference.starts_with(prefix),
                None => *pattern == reference,
            });
        if allowed {
            Ok(())
        } else if self.allowed.is_empty() {
            Err(format!(
                "image {reference} is not allowed: this worker allows no images; start it with --allow-image {reference} (or a pattern such as {}*)",
                repository(&reference)
            ))
        } else {
            Err(format!(
                "image {reference} is not allowed on this worker (allowed: {}); add it with --allow-image",
                self.allowed.join(", ")
            ))
        }
    }
}

/// `busybox` ⇒ `busybox:latest`; `docker.io/library/x:1` ⇒ `x:1`; a digest
/// reference is kept as it is.
pub fn normalize(image: &str) -> String {
    let image = strip_default_registry(image.trim());
    if image.contains('@') {
        return image.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

fn strip_default_registry(image: &str) -> &str {
    let image = image.strip_prefix("docker.io/").unwrap_or(image);
    image.strip_prefix("library/").unwrap_or(image)
}

/// The reference without its tag or digest.
fn repository(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalised() {
        assert_eq!(normalize("busybox"), "busybox:latest");
        assert_eq!(normalize("docker.io/library/busybox:1.36"), "busybox:1.36");
        assert_eq!(
            normalize("localhost:5000/team/app"),
            "localhost:5000/team/app:latest"
        );
        assert_eq!(normalize("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn exact_and_prefix_patterns_match() {
        let policy = ImagePolicy::new(["busybox", "ghcr.io/acme/*"]);
        assert!(policy.check("busybox:latest").is_ok());
        assert!(policy.check("docker.io/library/busybox").is_ok());
        assert!(policy.check("ghcr.io/acme/train:3").is_ok());
        let error = policy.check("busybox:1.36").expect_err("other tag");
        assert!(
            error.contains("busybox:1.36 is not allowed") && error.contains("--allow-image"),
            "{error}"
        );
        assert!(policy.check("ghcr.io/other/x").is_err());
    }

    #[test]
    fn an_empty_allow_list_allows_nothing_and_says_how_to_allow() {
        let error = ImagePolicy::default()
            .check("localhost:5000/app:2")
            .expect_err("nothing allowed");
        assert!(
            error.contains("--allow-image localhost:5000/app:2")
                && error.contains("localhost:5000/app*"),
            "{error}"
        );
    }
}
