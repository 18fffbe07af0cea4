//! The gateway members the agent last learned, kept in `DIR/gateways` (one
//! URL a line) so a restarted agent can reach the cluster even when its
//! `--gateway` entry is gone. At start they follow the `--gateway` entries
//! (which are tried first); the first member list the cluster sends
//! replaces both.

use std::path::{Path, PathBuf};

use crate::forward::endpoints::normalise;

/// File name in the agent's state directory.
pub const FILE: &str = "gateways";

/// At most this many remembered members are read back (a cluster has a
/// handful; a damaged file must not make the agent dial thousands).
const MAX_REMEMBERED: usize = 64;

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The usable URLs of a members file.
pub fn parse(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(MAX_REMEMBERED)
        .collect();
    normalise(&lines)
}

/// What `DIR/gateways` holds; nothing when it is missing or unreadable
/// (logged: the agent still has `--gateway`).
pub fn load(dir: &Path) -> Vec<String> {
    let p = path(dir);
    match std::fs::read_to_string(&p) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => {
            tracing::warn!(%error, path = %p.display(), "cannot read the remembered gateway members");
            Vec::new()
        }
    }
}

/// `seeds` (`--gateway`, first) then the remembered members not among them.
pub fn startup_list(seeds: &[String], remembered: &[String]) -> Vec<String> {
    let mut out = seeds.to_vec();
    for r in remembered {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

/// Replaces `DIR/gateways` with `urls` (written aside, then renamed, so a
/// crash leaves the old or the new list).
pub async fn store(dir: &Path, urls: &[String]) -> std::io::Result<()> {
    let mut text =
        String::from("# gateway members last sent by the cluster (rewritten by the agent)\n");
    for u in urls {
        text.push_str(u);
        text.push('\n');
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    tokio::fs::write(&tmp, text).await?;
    tokio::fs::rename(&tmp, path(dir)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_skips_comments_and_unusable_lines() {
        let text = "# members\nhttps://a:1\n\n  https://b:1  \nhttp://c:1\nhttps://a:1\n";
        assert_eq!(parse(text), vec!["https://a:1", "https://b:1"]);
    }

    #[test]
    fn seeds_come_first_and_are_not_repeated() {
        let seeds = vec!["https://a:1".to_owned()];
        let remembered = vec!["https://b:1".to_owned(), "https://a:1".to_owned()];
        assert_eq!(
            startup_list(&seeds, &remembered),
            vec!["https://a:1", "https://b:1"]
        );
    }

    #[tokio::test]
    async fn a_stored_list_loads_back() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(load(dir.path()).is_empty());
        let urls = vec!["https://a:1".to_owned(), "https://b:1".to_owned()];
        store(dir.path(), &urls).await?;
        assert_eq!(load(dir.path()), urls);
        store(dir.path(), &urls[1..]).await?;
        assert_eq!(load(dir.path()), vec!["https://b:1"]);
        Ok(())
    }
}
