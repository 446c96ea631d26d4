//! Directories that hold tenant data (the database, task scratch space,
//! compiled plugins, keys) are created readable by their owner only.

use std::path::Path;

/// Creates `path` and its missing parents, each one this creates with mode
/// 0700 on Unix. A directory that already exists is left as it is: it is
/// the operator's, and its mode their choice.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn new_directories_and_their_parents_are_owner_only() {
        let root = std::env::temp_dir().join(format!("flowmesh-private-{}", std::process::id()));
        let leaf = root.join("a/b");
        super::create_private_dir(&leaf).expect("create");
        for dir in [&root, &root.join("a"), &leaf] {
            let mode = std::fs::metadata(dir).expect("stat").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", dir.display());
        }
        super::create_private_dir(&leaf).expect("an existing directory is fine");
        std::fs::remove_dir_all(&root).expect("clean up");
    }
}
