//! drbd.conf's syntax tree: statements `keyword arg... ;` and sections
//! `keyword arg... { statement... }`, each with the file and line it was
//! written at. `include` statements are replaced by the statements of the
//! files they match, and `skip` sections are dropped, so the tree is what
//! drbdadm reads. Nothing here knows which keywords exist; see `model`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lexer::{Token, TokenKind, tokenize};
use crate::error::ConfigError;
use crate::glob;
use crate::yaml::{MAX_FILE_BYTES, read_file};

/// How deep sections may nest; drbd.conf needs 4 (resource, connection,
/// volume, disk).
pub(crate) const MAX_DEPTH: usize = 16;
/// How many files one configuration may read, includes counted.
pub(crate) const MAX_FILES: usize = 256;
/// How many bytes all those files may hold together.
pub(crate) const MAX_TOTAL_BYTES: usize = 16 * MAX_FILE_BYTES;

/// Where a statement was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as it was named (relative includes joined to the including
    /// file's directory).
    pub file: Arc<str>,
    /// 1-based.
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

impl Location {
    /// An error at this place.
    pub(crate) fn error(&self, message: impl AsRef<str>) -> ConfigError {
        ConfigError::at_line(&self.file, self.line, message.as_ref())
    }
}

/// One statement or section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub keyword: String,
    /// The words and strings after the keyword, quotes removed.
    pub args: Vec<String>,
    /// The statements between braces, for a section; `None` for a statement
    /// ended by `;`.
    pub block: Option<Vec<Statement>>,
    pub location: Location,
}

/// Reads drbd.conf files within the budgets, following includes.
#[derive(Default)]
pub(crate) struct Reader {
    files_read: usize,
    bytes_read: usize,
    /// The files being read, outermost first, to detect include loops.
    open: Vec<PathBuf>,
}

impl Reader {
    /// The statements of the file at `path`, includes expanded.
    pub(crate) fn read(&mut self, path: &Path) -> Result<Vec<Statement>, ConfigError> {
        let origin = path.display().to_string();
        self.files_read += 1;
        if self.files_read > MAX_FILES {
            return Err(ConfigError::at_line(
                &origin,
                1,
                &format!(
                    "more than {MAX_FILES} files are included; check the include patterns for \
                     one that matches too much"
                ),
            ));
        }
        let text = read_file(path, &origin)?;
        if text.len() > MAX_FILE_BYTES {
            return Err(ConfigError::at_line(
                &origin,
                1,
                &format!(
                    "the file is larger than the {MAX_FILE_BYTES} bytes a config file may have"
                ),
            ));
        }
        self.bytes_read += text.len();
        if self.bytes_read > MAX_TOTAL_BYTES {
            return Err(ConfigError::at_line(
                &origin,
                1,
                &format!(
                    "the configuration with its includes is larger than {MAX_TOTAL_BYTES} bytes"
                ),
            ));
        }
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.open.push(canonical);
        let result = self.parse(&text, &origin, path.parent().unwrap_or(Path::new(".")));
        self.open.pop();
        result
    }

    /// The statements of `text`, read from `origin`; includes are relative
    /// to `dir`.
    pub(crate) fn parse(
        &mut self,
        text: &str,
        origin: &str,
        dir: &Path,
    ) -> Result<Vec<Statement>, ConfigError> {
        let tokens = tokenize(text, origin)?;
        let mut cursor = Cursor {
            tokens: &tokens,
            position: 0,
            file: Arc::from(origin),
            dir,
        };
        let statements = self.statements(&mut cursor, None, 0, false)?;
        Ok(statements)
    }

    /// Statements up to the `}` closing the section `opened` (consumed), or
    /// to the end of the file at the top level.
    fn statements(
        &mut self,
        cursor: &mut Cursor,
        opened: Option<&Statement>,
        depth: usize,
        skipping: bool,
    ) -> Result<Vec<Statement>, ConfigError> {
        let mut statements = Vec::new();
        loop {
            let Some(token) = cursor.next() else {
                return match opened {
                    None => Ok(statements),
                    Some(section) => Err(section.location.error(format!(
                        "`{}` opens a section that is never closed; add the `}}` that ends it",
                        section.head()
                    ))),
                };
            };
            let here = cursor.location(token);
            match token.kind {
                TokenKind::Word => {}
                TokenKind::Close => match opened {
                    Some(_) => return Ok(statements),
                    None => {
                        return Err(here.error("`}` closes no section; remove it or the extra `}`"));
                    }
                },
                TokenKind::Semicolon => {
                    return Err(here.error("`;` ends no statement; remove it"));
                }
                TokenKind::Open => {
                    return Err(here.error("`{` opens a section without a keyword before it"));
                }
                TokenKind::Quoted => {
                    return Err(here.error(format!(
                        "expected a keyword, found the string \"{}\"",
                        token.text
                    )));
                }
            }
            let mut statement = Statement {
                keyword: token.text.clone(),
                args: Vec::new(),
                block: None,
                location: here,
            };
            loop {
                let Some(token) = cursor.next() else {
                    return Err(statement.location.error(format!(
                        "the file ends inside `{}`; end it with `;` or a section in braces",
                        statement.head()
                    )));
                };
                match token.kind {
                    TokenKind::Word | TokenKind::Quoted => statement.args.push(token.text.clone()),
                    TokenKind::Semicolon => break,
                    TokenKind::Open => {
                        if depth + 1 > MAX_DEPTH {
                            return Err(cursor
                                .location(token)
                                .error(format!("sections nest deeper than {MAX_DEPTH} levels")));
                        }
                        let skip = skipping || statement.keyword == "skip";
                        let inner = self.statements(cursor, Some(&statement), depth + 1, skip)?;
                        statement.block = Some(inner);
                        break;
                    }
                    TokenKind::Close => {
                        return Err(statement.location.error(format!(
                            "`{}` is not ended by `;` before the `}}` on line {}",
                            statement.head(),
                            token.line
                        )));
                    }
                }
            }
            if skipping || statement.keyword == "skip" {
                continue;
            }
            if statement.keyword == "include" {
                statements.extend(self.include(&statement, cursor.dir)?);
            } else {
                statements.push(statement);
            }
        }
    }

    /// The statements of the files an `include` statement matches.
    fn include(
        &mut self,
        statement: &Statement,
        dir: &Path,
    ) -> Result<Vec<Statement>, ConfigError> {
        let [pattern] = statement.args.as_slice() else {
            return Err(statement
                .location
                .error("`include` takes one file pattern, e.g. include \"drbd.d/*.res\";"));
        };
        if statement.block.is_some() {
            return Err(statement
                .location
                .error("`include` is a statement, not a section; write include \"PATTERN\";"));
        }
        let paths = glob::expand(pattern, dir, MAX_FILES);
        if paths.is_empty() && !glob::has_wildcard(pattern) {
            return Err(statement.location.error(format!(
                "cannot open the include file {}: it does not exist",
                dir.join(pattern).display()
            )));
        }
        let mut statements = Vec::new();
        for path in paths {
            let canonical = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if self.open.contains(&canonical) {
                return Err(statement.location.error(format!(
                    "include loop: {} is already being read (it includes, directly or through \
                     other files, this include)",
                    path.display()
                )));
            }
            if canonical.is_dir() {
                return Err(statement.location.error(format!(
                    "{} is a directory; include files, e.g. \"{}/*.res\"",
                    path.display(),
                    pattern.trim_end_matches('/')
                )));
            }
            statements.extend(self.read(&path).map_err(|error| {
                match error {
                    ConfigError::Read { origin, reason } => statement
                        .location
                        .error(format!("cannot read the include file {origin}: {reason}")),
                    other => other,
                }
            })?);
        }
        Ok(statements)
    }
}

impl Statement {
    /// The keyword and its arguments, as written, for messages.
    pub(crate) fn head(&self) -> String {
        let mut head = self.keyword.clone();
        for arg in &self.args {
            head.push(' ');
            head.push_str(arg);
        }
        head
    }
}

/// The tokens of one file and the position in them.
struct Cursor<'a> {
    tokens: &'a [Token],
    position: usize,
    file: Arc<str>,
    dir: &'a Path,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<&'a Token> {
        let token = self.tokens.get(self.position)?;
        self.position += 1;
        Some(token)
    }

    fn location(&self, token: &Token) -> Location {
        Location {
            file: self.file.clone(),
            line: token.line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Statement>, String> {
        Reader::default()
            .parse(text, "t.res", Path::new("/nonexistent"))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn builds_the_tree_with_lines() {
        let tree = parse(
            "global { usage-count no; }\nresource r0 {\n  on ha1 { address 10.0.0.1:7789; }\n}\n",
        )
        .unwrap();
        assert_eq!(tree.len(), 2);
        assert_eq!(tree[1].keyword, "resource");
        assert_eq!(tree[1].args, ["r0"]);
        assert_eq!(tree[1].location.line, 2);
        let on = &tree[1].block.as_ref().unwrap()[0];
        assert_eq!(on.head(), "on ha1");
        assert_eq!(on.location.to_string(), "t.res:3");
        let address = &on.block.as_ref().unwrap()[0];
        assert_eq!(address.args, ["10.0.0.1:7789"]);
        assert_eq!(address.block, None);
    }

    #[test]
    fn skip_sections_are_dropped() {
        let tree = parse("skip { include \"/nowhere\"; anything { } }\ncommon { }").unwrap();
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].keyword, "common");
    }

    #[test]
    fn brace_errors_name_the_line() {
        assert_eq!(
            parse("common {\n net {\n }\n").unwrap_err(),
            "t.res:1: `common` opens a section that is never closed; add the `}` that ends it"
        );
        assert_eq!(
            parse("common { }\n}\n").unwrap_err(),
            "t.res:2: `}` closes no section; remove it or the extra `}`"
        );
        assert_eq!(
            parse("common { net { protocol C }\n}").unwrap_err(),
            "t.res:1: `protocol C` is not ended by `;` before the `}` on line 1"
        );
        assert_eq!(
            parse("resource r0 {\n  device /dev/drbd0").unwrap_err(),
            "t.res:2: the file ends inside `device /dev/drbd0`; end it with `;` or a section in \
             braces"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            "{}{}",
            "a {".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        let error = parse(&deep).unwrap_err();
        assert!(error.contains("nest deeper than 16"), "{error}");
        let fine = format!("{}{}", "a {".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        parse(&fine).unwrap();
    }
}
