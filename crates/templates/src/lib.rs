//! Code templates for Weft's library: a set of files with placeholders and
//! conditionals, plus up to five questions whose answers fill them.
//!
//! ```
//! use std::collections::BTreeMap;
//! use weft_templates::{Template, to_zip};
//!
//! let manifest = r#"
//! title = "Greeter"
//! language = "rust"
//! [[questions]]
//! id = "name"
//! prompt = "Crate name"
//! kind = "text"
//! pattern = "kebab"
//! default = "hello-world"
//! "#;
//! let files = BTreeMap::from([(
//!     "src/{{ name | snake }}.rs".to_owned(),
//!     b"pub struct {{ name | pascal }};\n".to_vec(),
//! )]);
//! let template = Template::from_parts(manifest, files)?;
//!
//! let answers = serde_json::json!({ "name": "my-app" });
//! let answers = template.validate(answers.as_object().unwrap_or(&Default::default()))?;
//! let rendered = template.render(&answers)?;
//! assert_eq!(rendered[0].path, "src/my_app.rs");
//! assert_eq!(rendered[0].bytes, b"pub struct MyApp;\n");
//! let zip: Vec<u8> = to_zip(&rendered, "my-app")?;
//! # assert!(!zip.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The format (`template.toml` and a `files/` tree) is documented in
//! `library/templates/README.md`. A template is checked completely when it
//! is loaded (questions, defaults, every file's syntax and every variable it
//! reads), so a template that loads renders for every valid set of answers
//! unless a file itself fails (a filter given the wrong value, a path that
//! renders to `..`, a budget exceeded).
//!
//! Errors other than [`Error::Io`] and [`Error::Zip`] (code `internal`)
//! describe the template or its answers, never the host, so they may be
//! shown to whoever owns the template; [`AnswerErrors`] are for whoever
//! answered.

#![warn(missing_docs)]

mod answers;
mod archive;
mod case;
mod manifest;
mod paths;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde_json::{Map, Value};

pub use answers::{AnswerError, AnswerErrorCode, AnswerErrors, Answers};
pub use archive::to_zip;
pub use manifest::{
    DEFAULT_MAX_TEXT_CHARS, MAX_CHOICES, MAX_QUESTIONS, MAX_TEXT_CHARS, Manifest, NameShape,
    Question, QuestionKind,
};
pub use paths::MAX_PATH_BYTES;
pub use render::{FUEL_PER_FILE, FUEL_PER_RENDER, MAX_OUTPUT_BYTES, RenderedFile};

use render::Body;

/// The manifest's file name inside a template directory.
pub const MANIFEST_FILE: &str = "template.toml";
/// The directory of a template that holds its files.
pub const FILES_DIR: &str = "files";
/// The largest `template.toml`.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;
/// The most files one template may have.
pub const MAX_FILES: usize = 500;
/// The largest single file.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// The most bytes all of a template's files may have together.
pub const MAX_TEMPLATE_BYTES: usize = 8 << 20;

/// What can go wrong loading, rendering or packing a template.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a template directory failed. The only variant that may name
    /// a host path: do not send it to a client.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `template.toml` is not TOML, or has missing, mistyped or unknown
    /// fields.
    #[error("template.toml: {0}")]
    ManifestSyntax(String),
    /// `template.toml` parses but breaks a rule (title length, tags, more
    /// than five questions, ...).
    #[error("template.toml: {0}")]
    Manifest(String),
    /// A question breaks a rule (bad id, a default that is not a valid
    /// answer, a choice question without choices, ...).
    #[error("template.toml: question `{id}` {reason}")]
    Question {
        /// The question's id as written.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored file path is not a clean relative path.
    #[error("file {path:?} {reason}")]
    SourcePath {
        /// The path as stored.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A file's content or path is not a valid template, or reads a
    /// variable that is not a question.
    #[error("{path}: {message}")]
    FileTemplate {
        /// The file's stored path.
        path: String,
        /// The template engine's message, with the line.
        message: String,
    },
    /// The template or its output is too large, or a render ran out of its
    /// instruction budget.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// A file failed while rendering (a filter given a value it cannot
    /// take, an error raised by the template).
    #[error("rendering {path}: {message}")]
    Render {
        /// The file's stored path.
        path: String,
        /// The template engine's message, with the line.
        message: String,
    },
    /// A file's path rendered to something unsafe: absolute, with `..`, a
    /// backslash or a drive letter.
    #[error("file {source_path:?} renders to the path {rendered:?}, which {reason}")]
    RenderedPath {
        /// The stored path.
        source_path: String,
        /// What it rendered to.
        rendered: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files render to the same path.
    #[error("files {:?} and {:?} both render to {path:?}", sources[0], sources[1])]
    DuplicatePath {
        /// The rendered path.
        path: String,
        /// The two stored paths.
        sources: [String; 2],
    },
    /// One file renders to a path that another uses as a directory.
    #[error("{path:?} is rendered both as a file and as a directory")]
    PathClash {
        /// The path that is both.
        path: String,
    },
    /// [`to_zip`] was given a root directory name or file path that is not
    /// a safe relative name.
    #[error("{path:?} is not a safe name inside a zip")]
    ZipPath {
        /// The name refused.
        path: String,
    },
    /// Writing the zip failed (only on a bug or out of memory: the archive
    /// is built in memory).
    #[error("writing the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
}

impl Error {
    /// A stable `snake_case` word for an API's error body:
    /// `invalid_template` (the template is broken; fix the template),
    /// `render_failed` (these answers make a file fail), `limit_exceeded`,
    /// or `internal` (I/O and zip failures, whose detail belongs in logs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::ManifestSyntax(_)
            | Self::Manifest(_)
            | Self::Question { .. }
            | Self::SourcePath { .. }
            | Self::FileTemplate { .. } => "invalid_template",
            Self::Render { .. }
            | Self::RenderedPath { .. }
            | Self::DuplicatePath { .. }
            | Self::PathClash { .. }
            | Self::ZipPath { .. } => "render_failed",
            Self::Limit(_) => "limit_exceeded",
            Self::Io { .. } | Self::Zip(_) => "internal",
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A loaded, checked template, ready to render any number of times.
#[derive(Debug, Clone)]
pub struct Template {
    manifest: Manifest,
    /// Stored path → body; text files live compiled in `env`.
    files: BTreeMap<String, Body>,
    env: Environment<'static>,
}

impl Template {
    /// Loads the template in `dir`: `dir/template.toml` and every file under
    /// `dir/files/` (hidden files included; symbolic links refused, since
    /// they could reach outside the template).
    pub fn load(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = read_capped(&manifest_path, MAX_MANIFEST_BYTES)?;
        let manifest = String::from_utf8(manifest)
            .map_err(|_| Error::ManifestSyntax("is not UTF-8".into()))?;
        let mut files = BTreeMap::new();
        let mut total = 0;
        collect_files(&dir.join(FILES_DIR), "", &mut files, &mut total)?;
        Self::from_parts(&manifest, files)
    }

    /// Loads every template under `root`: each subdirectory is one template
    /// whose id is the directory's name (kebab-case). Other entries (a
    /// README) are ignored.
    pub fn load_all(root: &Path) -> Result<BTreeMap<String, Self>> {
        let mut out = BTreeMap::new();
        for entry in read_dir(root)? {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name();
            let id = name
                .to_str()
                .filter(|id| NameShape::Kebab.matches(id))
                .ok_or_else(|| Error::SourcePath {
                    path: name.to_string_lossy().into_owned(),
                    reason: "is not a kebab-case template id",
                })?;
            out.insert(id.to_owned(), Self::load(&path)?);
        }
        Ok(out)
    }

    /// Builds a template from a manifest and its files by path (relative,
    /// `/`-separated, as under `files/`); how the host loads templates it
    /// keeps in its database. Checks everything [`Template::load`] does.
    pub fn from_parts(manifest_toml: &str, files: BTreeMap<String, Vec<u8>>) -> Result<Self> {
        if manifest_toml.len() > MAX_MANIFEST_BYTES {
            return Err(Error::Limit(format!(
                "template.toml is over {} KiB",
                MAX_MANIFEST_BYTES >> 10
            )));
        }
        let manifest = Manifest::parse(manifest_toml)?;
        check_sizes(&files)?;
        let ids: BTreeSet<&str> = manifest.questions.iter().map(|q| q.id.as_str()).collect();
        let mut env = render::environment();
        if let Some(root_dir) = &manifest.root_dir {
            render::compile_root_dir(&mut env, root_dir, &ids)?;
        }
        let mut bodies = BTreeMap::new();
        for (path, bytes) in files {
            let body = render::compile(&mut env, &path, bytes, &ids)?;
            bodies.insert(path, body);
        }
        Ok(Self {
            manifest,
            files: bodies,
            env,
        })
    }

    /// The parsed manifest (title, description, language, tags, questions).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The questions, in order; `Serialize` for a REST answer.
    pub fn questions(&self) -> &[Question] {
        &self.manifest.questions
    }

    /// The stored paths of the template's files, in order.
    pub fn source_paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Checks `answers` (question id → value) and fills in defaults.
    ///
    /// # Errors
    ///
    /// Every bad field at once: missing required answers, wrong JSON types,
    /// answers not among the choices, names of the wrong shape, lengths and
    /// ranges, and ids that are not questions.
    pub fn validate(&self, answers: &Map<String, Value>) -> Result<Answers, AnswerErrors> {
        answers::validate(&self.manifest.questions, answers)
    }

    /// The answers every question gets by default.
    ///
    /// # Errors
    ///
    /// If a required question has no default.
    pub fn default_answers(&self) -> Result<Answers, AnswerErrors> {
        self.validate(&Map::new())
    }

    /// The name of the generated project's top directory, from the
    /// manifest's `root_dir` rendered over `answers` (for [`to_zip`]);
    /// `None` when the manifest has none, or it renders blank.
    ///
    /// # Errors
    ///
    /// If it renders to something other than one safe directory name.
    pub fn root_dir_name(&self, answers: &Answers) -> Result<Option<String>> {
        render::render_root_dir(&self.env, self.manifest.root_dir.is_some(), answers)
    }

    /// Renders every file, in path order. Text files are rendered; files
    /// that are not UTF-8 are copied as they are (their paths still
    /// render). A file whose path renders empty, or to a directory (ending
    /// in `/`), is left out.
    ///
    /// # Errors
    ///
    /// A path that renders unsafe ([`Error::RenderedPath`]), two files on
    /// one path, a file failing to render, or a budget exceeded.
    pub fn render(&self, answers: &Answers) -> Result<Vec<RenderedFile>> {
        render::render_all(&self.env, &self.files, answers)
    }
}

fn check_sizes(files: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    if files.is_empty() {
        return Err(Error::Manifest("the template has no files".into()));
    }
    if files.len() > MAX_FILES {
        return Err(Error::Limit(format!("more than {MAX_FILES} files")));
    }
    if let Some((path, _)) = files.iter().find(|(_, b)| b.len() > MAX_FILE_BYTES) {
        return Err(Error::Limit(format!(
            "{path} is over {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    let total: usize = files.values().map(Vec::len).sum();
    if total > MAX_TEMPLATE_BYTES {
        return Err(Error::Limit(format!(
            "the files are over {} MiB together",
            MAX_TEMPLATE_BYTES >> 20
        )));
    }
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Directory entries sorted by name, so loading is deterministic.
fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io_error(dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    Ok(entries)
}

/// Reads a file, refusing one over `max` bytes before reading it whole.
fn read_capped(path: &Path, max: usize) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(io_error(path))?.len();
    if len > max as u64 {
        return Err(Error::Limit(format!(
            "{} is over {max} bytes",
            path.file_name().unwrap_or_default().to_string_lossy()
        )));
    }
    std::fs::read(path).map_err(io_error(path))
}

/// Adds every file under `dir` to `files`, keyed by its `/`-separated path
/// below `files/` (`prefix` is the path of `dir` itself).
fn collect_files(
    dir: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut usize,
) -> Result<()> {
    for entry in read_dir(dir)? {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| Error::SourcePath {
            path: format!("{prefix}{}", name.to_string_lossy()),
            reason: "is not UTF-8",
        })?;
        let rel = format!("{prefix}{name}");
        let kind = entry.file_type().map_err(io_error(&path))?;
        if kind.is_symlink() {
            return Err(Error::SourcePath {
                path: rel,
                reason: "is a symbolic link; templates hold plain files only",
            });
        }
        if kind.is_dir() {
            collect_files(&path, &format!("{rel}/"), files, total)?;
            continue;
        }
        if files.len() >= MAX_FILES {
            return Err(Error::Limit(format!("more than {MAX_FILES} files")));
        }
        let bytes = read_capped(&path, MAX_FILE_BYTES)?;
        *total += bytes.len();
        if *total > MAX_TEMPLATE_BYTES {
            return Err(Error::Limit(format!(
                "the files are over {} MiB together",
                MAX_TEMPLATE_BYTES >> 20
            )));
        }
        files.insert(rel, bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
