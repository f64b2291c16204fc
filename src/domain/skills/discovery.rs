//! The skills of a pack repository (domain.md §A17): a shallow clone of the pack's branch
//! into a directory of its own, then its `skills_index.json` or else every `SKILL.md`.
//!
//! Unlike the reference, the pack's own branch is cloned (falling back to the repository's
//! default branch with a warning), symlinks are checked out as plain files so a repository
//! cannot make the server read files outside its clone, and what is read is bounded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::process::Command;
use uuid::Uuid;

/// How long one `git clone` may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most skills one sync takes from a repository.
const MAX_SKILLS: usize = 5_000;
/// Files and directories a `SKILL.md` search looks at before it stops.
const MAX_ENTRIES: usize = 200_000;
/// The largest `skills_index.json` read.
const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;
/// How much of a `SKILL.md` is read for its name and description.
const MAX_SKILL_FILE_BYTES: usize = 64 * 1024;

/// One skill found in a pack.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub risk: Option<String>,
    pub source: Option<String>,
    pub source_url: String,
    pub metadata: Value,
}

/// What a sync found, and what it could not take.
#[derive(Debug)]
pub struct Discovered {
    pub skills: Vec<Candidate>,
    pub warnings: Vec<String>,
}

/// The repository could not be cloned; answered as 502 with this detail.
#[derive(Debug)]
pub struct CloneFailed(pub String);

/// A directory under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let path = std::env::temp_dir().join(format!("mc-skill-pack-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path)?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Clones `repo_url` (a checked `https://github.com/<owner>/<repo>`) at `branch` and finds
/// its skills.
pub async fn discover(repo_url: &str, branch: &str) -> Result<Discovered, CloneFailed> {
    let scratch = Scratch::new()
        .map_err(|e| CloneFailed(format!("unable to create a clone directory: {e}")))?;
    let into = scratch.0.join("repo");
    let mut warnings = Vec::new();
    if let Err(first) = clone(repo_url, Some(branch), &into).await {
        let _ = std::fs::remove_dir_all(&into);
        clone(repo_url, None, &into).await.map_err(|_| first)?;
        warnings.push(format!(
            "branch {branch:?} could not be cloned; synced the repository's default branch"
        ));
    }
    let used = current_branch(&into)
        .await
        .unwrap_or_else(|| branch.to_string());
    let repo_url = repo_url.to_string();
    let found = tokio::task::spawn_blocking(move || {
        let _scratch = scratch;
        collect(&into, &repo_url, &used)
    })
    .await
    .map_err(|e| CloneFailed(format!("skill discovery failed: {e}")))?;
    warnings.extend(found.warnings);
    Ok(Discovered {
        skills: found.skills,
        warnings,
    })
}

fn git() -> Command {
    let mut cmd = Command::new("git");
    // Never wait for credentials; a private or missing repository fails at once.
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn clone(repo_url: &str, branch: Option<&str>, into: &Path) -> Result<(), CloneFailed> {
    let mut cmd = git();
    cmd.args([
        "-c",
        "core.symlinks=false",
        "clone",
        "--quiet",
        "--depth",
        "1",
    ]);
    if let Some(branch) = branch {
        cmd.args(["--single-branch", &format!("--branch={branch}")]);
    }
    cmd.arg("--").arg(repo_url).arg(into);
    let child = cmd.spawn().map_err(|e| {
        CloneFailed(if e.kind() == std::io::ErrorKind::NotFound {
            "git binary not available on the server".into()
        } else {
            format!("unable to run git: {e}")
        })
    })?;
    let output = tokio::time::timeout(CLONE_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| CloneFailed("timed out cloning pack repository".into()))?
        .map_err(|e| CloneFailed(format!("unable to run git: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    Err(CloneFailed(match first {
        Some(line) => format!(
            "unable to clone pack repository: {}",
            line.chars().take(200).collect::<String>()
        ),
        None => "unable to clone pack repository".into(),
    }))
}

async fn current_branch(repo: &Path) -> Option<String> {
    let mut cmd = git();
    cmd.stdout(Stdio::piped())
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--abbrev-ref", "HEAD"]);
    let output = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .ok()?
        .ok()?;
    let branch = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !branch.is_empty() && branch != "HEAD").then_some(branch)
}

/// `{repo}/tree/{branch}` and the path below it, if any.
fn tree_url(repo_url: &str, branch: &str, rel: &str) -> String {
    let rel = rel.trim().trim_start_matches('/');
    if rel.is_empty() {
        format!("{repo_url}/tree/{branch}")
    } else {
        format!("{repo_url}/tree/{branch}/{rel}")
    }
}

/// A repository path as the reference writes it: `/` separators, no leading `./` or `/`,
/// no trailing `/`, and a `…/SKILL.md` file named by its directory.
fn repo_path(raw: &str) -> String {
    let mut cleaned = raw.trim().replace('\\', "/");
    while let Some(rest) = cleaned.strip_prefix("./") {
        cleaned = rest.to_string();
    }
    let cleaned = cleaned.trim_start_matches('/').trim_end_matches('/');
    let lowered = cleaned.to_lowercase();
    if lowered == "skill.md" {
        String::new()
    } else if lowered.ends_with("/skill.md") {
        cleaned[..cleaned.len() - "/skill.md".len()].to_string()
    } else {
        cleaned.to_string()
    }
}

/// A name made of a path segment: `-` and `_` read as spaces.
fn name_of_segment(segment: &str) -> String {
    let name = segment
        .trim_end_matches(".git")
        .replace(['-', '_'], " ")
        .trim()
        .to_string();
    if name.is_empty() {
        "Skill".into()
    } else {
        name
    }
}

fn text_field(entry: &Map<String, Value>, key: &str) -> Option<String> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn collect(repo: &Path, repo_url: &str, branch: &str) -> Discovered {
    let mut warnings = Vec::new();
    let mut skills = match from_index(repo, repo_url, branch, &mut warnings) {
        Some(skills) => skills,
        None => from_skill_files(repo, repo_url, branch, &mut warnings),
    };
    if skills.len() > MAX_SKILLS {
        warnings.push(format!(
            "the repository lists {} skills; the first {MAX_SKILLS} were synced",
            skills.len()
        ));
        skills.truncate(MAX_SKILLS);
    }
    Discovered { skills, warnings }
}

/// The skills `skills_index.json` lists (an array, or `{"skills": [...]}`); `None` when
/// there is no readable index, so that the `SKILL.md` files are searched instead.
fn from_index(
    repo: &Path,
    repo_url: &str,
    branch: &str,
    warnings: &mut Vec<String>,
) -> Option<Vec<Candidate>> {
    let path = repo.join("skills_index.json");
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_INDEX_BYTES {
        warnings.push(format!(
            "skills_index.json is larger than {MAX_INDEX_BYTES} bytes; searched for SKILL.md files instead"
        ));
        return None;
    }
    let parsed = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string()));
    let index = match parsed {
        Ok(index) => index,
        Err(e) => {
            warnings.push(format!("Failed to parse skills_index.json: {e}"));
            return None;
        }
    };
    let entries = match &index {
        Value::Array(entries) => entries.as_slice(),
        Value::Object(o) => o
            .get("skills")
            .and_then(Value::as_array)
            .map_or(&[][..], |v| v),
        _ => &[],
    };
    let mut found: Vec<Candidate> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for entry in entries.iter().filter_map(Value::as_object) {
        let Some(candidate) = index_entry(entry, repo_url, branch) else {
            continue;
        };
        match at.get(&candidate.source_url) {
            Some(&i) => found[i] = candidate,
            None => {
                at.insert(candidate.source_url.clone(), found.len());
                found.push(candidate);
            }
        }
    }
    Some(found)
}

/// One index entry: `path` and/or `source_url` (absolute, or a path in the repository)
/// name the skill; `name`, `description`, `category` and `risk` describe it.
fn index_entry(entry: &Map<String, Value>, repo_url: &str, branch: &str) -> Option<Candidate> {
    let rel_path = text_field(entry, "path").map(|p| repo_path(&p));
    let mut skill_path = rel_path.clone().filter(|p| !p.is_empty());
    let mut metadata = json!({"discovery_mode": "skills_index", "pack_branch": branch});
    let source_url = if let Some(source) = text_field(entry, "source_url") {
        metadata["source_url"] = json!(source);
        if source.starts_with("https://") || source.starts_with("http://") {
            if let Some(path) = url::Url::parse(&source).ok().map(|u| u.path().to_string()) {
                if let Some(i) = path.find("/tree/").filter(|&i| i > 0) {
                    let suffix = &path[i + "/tree/".len()..];
                    let below = suffix.find('/').map_or("", |j| &suffix[j + 1..]);
                    skill_path = Some(repo_path(below));
                }
            }
            source
        } else {
            let rel = repo_path(&source);
            metadata["resolved_path"] = json!(rel);
            if skill_path.is_none() {
                skill_path = Some(rel.clone());
            }
            if rel.is_empty() {
                return None;
            }
            tree_url(repo_url, branch, &rel)
        }
    } else {
        let rel = rel_path.clone()?;
        metadata["resolved_path"] = json!(rel);
        tree_url(repo_url, branch, &rel)
    };
    let name = text_field(entry, "name").unwrap_or_else(|| {
        let rel = rel_path.unwrap_or_default();
        name_of_segment(rel.rsplit('/').next().unwrap_or(""))
    });
    Some(Candidate {
        name,
        description: text_field(entry, "description"),
        category: text_field(entry, "category"),
        risk: text_field(entry, "risk"),
        source: skill_path,
        source_url,
        metadata,
    })
}

/// Every `SKILL.md` outside dot-directories, in path order, named after its front matter's
/// `name:`, its first heading, or its directory.
fn from_skill_files(
    repo: &Path,
    repo_url: &str,
    branch: &str,
    warnings: &mut Vec<String>,
) -> Vec<Candidate> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    let mut seen = 0usize;
    while let Some(rel_dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(repo.join(&rel_dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                warnings.push(format!(
                    "the repository has more than {MAX_ENTRIES} files; the search for SKILL.md stopped there"
                ));
                pending.clear();
                break;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            // Checked out without symlinks, but a file type is still asked without following.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(rel_dir.join(&name));
            } else if kind.is_file() && name == "SKILL.md" {
                files.push(rel_dir.clone());
            }
        }
    }
    let mut dirs: Vec<String> = files
        .iter()
        .map(|d| d.to_string_lossy().replace('\\', "/"))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|rel_dir| {
            let text = read_prefix(&repo.join(&rel_dir).join("SKILL.md"));
            let fallback = if rel_dir.is_empty() {
                name_of_segment(repo_url.rsplit('/').next().unwrap_or(""))
            } else {
                name_of_segment(rel_dir.rsplit('/').next().unwrap_or(""))
            };
            let (name, description) = describe(&text);
            Candidate {
                name: name.unwrap_or(fallback),
                description,
                category: None,
                risk: None,
                source: None,
                source_url: tree_url(repo_url, branch, &rel_dir),
                metadata: json!({
                    "discovery_mode": "skills_md",
                    "pack_branch": branch,
                    "skill_dir": rel_dir,
                }),
            }
        })
        .collect()
}

fn read_prefix(path: &Path) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file
            .take(MAX_SKILL_FILE_BYTES as u64)
            .read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A `SKILL.md`'s name (front matter `name:`, else its first heading) and description
/// (front matter `description:`, else its first line of text).
fn describe(text: &str) -> (Option<String>, Option<String>) {
    let value = |line: &str, key: &str| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches(['"', '\'']).to_string())
            .filter(|v| !v.is_empty())
    };
    let (mut name, mut description, mut heading, mut first_line) = (None, None, None, None);
    let mut in_front_matter = false;
    for line in text.lines().map(str::trim) {
        if line == "---" {
            in_front_matter = !in_front_matter;
        } else if in_front_matter {
            name = name.or_else(|| value(line, "name"));
            description = description.or_else(|| value(line, "description"));
        } else if let Some(h) = line.strip_prefix('#') {
            let h = h.trim_start_matches('#').trim();
            if heading.is_none() && !h.is_empty() {
                heading = Some(h.to_string());
            }
        } else if first_line.is_none() && !line.is_empty() {
            first_line = Some(line.to_string());
        }
    }
    (name.or(heading), description.or(first_line))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "https://github.com/o/pack";

    #[test]
    fn repository_paths_are_normalized() {
        assert_eq!(repo_path("./skills/a/SKILL.md"), "skills/a");
        assert_eq!(repo_path("\\skills\\b\\"), "skills/b");
        assert_eq!(repo_path("skill.md"), "");
        assert_eq!(tree_url(REPO, "main", ""), format!("{REPO}/tree/main"));
        assert_eq!(
            tree_url(REPO, "dev", "/x/y"),
            format!("{REPO}/tree/dev/x/y")
        );
    }

    #[test]
    fn skill_files_are_described_by_front_matter_or_text() {
        let text = "---\nname: \"Web Search\"\ndescription: Finds pages\n---\n# Title\nBody";
        assert_eq!(
            describe(text),
            (Some("Web Search".into()), Some("Finds pages".into()))
        );
        assert_eq!(
            describe("# Heading\n\nFirst line.\nSecond."),
            (Some("Heading".into()), Some("First line.".into()))
        );
        assert_eq!(describe(""), (None, None));
    }

    #[test]
    fn index_entries_resolve_paths_and_urls() {
        let entry = |v: Value| v.as_object().unwrap().clone();
        let by_path = index_entry(
            &entry(json!({"path": "skills/web-search/SKILL.md", "category": " research "})),
            REPO,
            "main",
        )
        .unwrap();
        assert_eq!(
            by_path.source_url,
            format!("{REPO}/tree/main/skills/web-search")
        );
        assert_eq!(by_path.name, "web search");
        assert_eq!(by_path.source.as_deref(), Some("skills/web-search"));
        assert_eq!(by_path.category.as_deref(), Some("research"));

        let absolute = index_entry(
            &entry(
                json!({"source_url": "https://github.com/x/y/tree/dev/tools/grep", "name": "Grep"}),
            ),
            REPO,
            "main",
        )
        .unwrap();
        assert_eq!(
            absolute.source_url,
            "https://github.com/x/y/tree/dev/tools/grep"
        );
        assert_eq!(absolute.source.as_deref(), Some("tools/grep"));

        let relative = index_entry(&entry(json!({"source_url": "tools/fmt"})), REPO, "b").unwrap();
        assert_eq!(relative.source_url, format!("{REPO}/tree/b/tools/fmt"));
        assert!(index_entry(&entry(json!({"name": "no location"})), REPO, "main").is_none());
    }
}
