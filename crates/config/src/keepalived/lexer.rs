//! keepalived.conf's lexical layer: reads the file and everything it
//! `include`s into one stream of words and braces, each with its file and
//! line, the way keepalived 2.2 reads them.
//!
//! keepalived's rules, as checked against `keepalived -t` 2.2.7:
//! - `#` and `!` start a comment anywhere outside double quotes, even inside
//!   a word (`priority 77#x` is `priority 77`).
//! - Words are separated by whitespace; `{` and `}` are words of their own
//!   even when written against another word (`80{`, `10.0.0.1/24}`).
//! - `"..."` is one word, spaces and comment characters included.
//! - There is no line continuation: a trailing `\` is part of the word.
//! - `include PATTERN` is a glob; a relative pattern is resolved against the
//!   directory of the file that contains the `include` line. A pattern that
//!   matches nothing is a warning, not an error.
//! - A line starting `@ID` is read only when ID is the config id (keepalived's
//!   `-i`, which defaults to the host name); `@^ID` only when it is not.
//! - `$NAME=value` defines a parameter; `$NAME` and `${NAME}` in later lines
//!   are replaced by its value.
//!
//! Beyond keepalived, include loops, deep include chains, oversized files and
//! too many files are refused with the file and line of the offending
//! `include`, so no input can make the reader loop or exhaust memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Diagnostic, Severity};
use crate::error::{ConfigError, printable};
use crate::glob;

/// One file may hold at most this many bytes (keepalived.conf files are a
/// few kilobytes; the biggest real ones, with hundreds of VIPs, far below).
pub(crate) const MAX_FILE_BYTES: usize = 1024 * 1024;
/// All files read for one configuration, includes together.
const MAX_TOTAL_BYTES: usize = 8 * MAX_FILE_BYTES;
/// Files read for one configuration, includes together.
const MAX_FILES: usize = 512;
/// Nested includes deeper than this are surely a mistake.
const MAX_INCLUDE_DEPTH: usize = 16;
/// Parameters (`$NAME=`) may not grow a line beyond this.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// A place in the configuration: the file as the operator named it (or as
/// the include pattern named it) and the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub file: Arc<str>,
    pub line: u32,
}

impl Location {
    /// A one-line error at this place.
    pub(crate) fn error(&self, message: impl AsRef<str>) -> ConfigError {
        ConfigError::at_line(&self.file, self.line, message.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Word(String),
    Open,
    Close,
    EndOfLine,
}

/// The words of the configuration, includes expanded, and what the reader
/// had to warn about on the way.
pub(crate) struct Lexed {
    pub tokens: Vec<(Token, Location)>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads `path` and its includes. `config_id` selects the `@ID` lines.
pub(crate) fn lex_file(path: &Path, config_id: &str) -> Result<Lexed, ConfigError> {
    let mut reader = Reader {
        config_id,
        parameters: BTreeMap::new(),
        open_files: Vec::new(),
        files_read: 0,
        bytes_read: 0,
        lexed: Lexed {
            tokens: Vec::new(),
            diagnostics: Vec::new(),
        },
    };
    reader.read_file(path, &path.display().to_string(), None)?;
    Ok(reader.lexed)
}

struct Reader<'a> {
    config_id: &'a str,
    parameters: BTreeMap<String, String>,
    /// The include chain being read: canonical path and display name.
    open_files: Vec<(PathBuf, String)>,
    files_read: usize,
    bytes_read: usize,
    lexed: Lexed,
}

impl Reader<'_> {
    /// Reads one file; `included_at` is the `include` line that named it.
    fn read_file(
        &mut self,
        path: &Path,
        name: &str,
        included_at: Option<&Location>,
    ) -> Result<(), ConfigError> {
        let refuse = |message: String| match included_at {
            Some(at) => at.error(message),
            None => ConfigError::Read {
                origin: printable(name),
                reason: message,
            },
        };
        let canonical = path
            .canonicalize()
            .map_err(|error| refuse(format!("cannot read `{name}`: {error}")))?;
        if let Some(start) = self.open_files.iter().position(|(p, _)| *p == canonical) {
            let chain: Vec<&str> = self.open_files[start..]
                .iter()
                .map(|(_, name)| name.as_str())
                .chain([name])
                .collect();
            return Err(refuse(format!(
                "include loop: {}; remove one of these includes",
                chain.join(" includes ")
            )));
        }
        if self.open_files.len() >= MAX_INCLUDE_DEPTH {
            return Err(refuse(format!(
                "includes are nested more than {MAX_INCLUDE_DEPTH} deep; flatten them"
            )));
        }
        self.files_read += 1;
        if self.files_read > MAX_FILES {
            return Err(refuse(format!(
                "more than {MAX_FILES} files are included; include fewer"
            )));
        }
        let bytes =
            read_bounded(path).map_err(|error| refuse(format!("cannot read `{name}`: {error}")))?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(refuse(format!(
                "`{name}` is larger than the {MAX_FILE_BYTES} bytes a config file may have"
            )));
        }
        self.bytes_read += bytes.len();
        if self.bytes_read > MAX_TOTAL_BYTES {
            return Err(refuse(format!(
                "the configuration with its includes is larger than {MAX_TOTAL_BYTES} bytes"
            )));
        }
        let file: Arc<str> = Arc::from(name);
        let text = std::str::from_utf8(&bytes).map_err(|error| {
            let line = bytes[..error.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            Location {
                file: file.clone(),
                line: line_number(line),
            }
            .error("the file is not UTF-8 text; save it as UTF-8")
        })?;
        // Relative includes are resolved against the directory of the file
        // as it was named, so that names in messages stay as the operator
        // wrote them.
        let dir = path.parent().unwrap_or(Path::new(""));
        self.open_files.push((canonical, name.to_owned()));
        let result = self.read_text(text, &file, dir);
        self.open_files.pop();
        result
    }

    fn read_text(&mut self, text: &str, file: &Arc<str>, dir: &Path) -> Result<(), ConfigError> {
        for (index, raw_line) in text.split('\n').enumerate() {
            let at = Location {
                file: file.clone(),
                line: line_number(index + 1),
            };
            let line = strip_comment(raw_line.strip_suffix('\r').unwrap_or(raw_line)).trim();
            let Some(line) = self.conditional(line) else {
                continue;
            };
            if line.is_empty() || self.define_parameter(line, &at) {
                continue;
            }
            let line = self.substitute(line, &at)?;
            let words = split_words(&line, &at)?;
            match words.first() {
                Some(Token::Word(first)) if first == "include" => {
                    self.include(&words[1..], dir, &at)?;
                }
                _ => {
                    let at_end = at.clone();
                    self.lexed
                        .tokens
                        .extend(words.into_iter().map(|token| (token, at.clone())));
                    self.lexed.tokens.push((Token::EndOfLine, at_end));
                }
            }
        }
        Ok(())
    }

    /// The line without its `@ID` / `@^ID` prefix, or `None` when the prefix
    /// says this host skips it.
    fn conditional<'l>(&self, line: &'l str) -> Option<&'l str> {
        let Some(tagged) = line.strip_prefix('@') else {
            return Some(line);
        };
        let (tag, rest) = tagged
            .split_once(char::is_whitespace)
            .unwrap_or((tagged, ""));
        let keep = match tag.strip_prefix('^') {
            Some(excluded) => excluded != self.config_id,
            None => tag == self.config_id,
        };
        keep.then(|| rest.trim_start())
    }

    /// Records `$NAME=value`; false when the line is no such definition.
    fn define_parameter(&mut self, line: &str, at: &Location) -> bool {
        let Some(definition) = line.strip_prefix('$') else {
            return false;
        };
        let Some((name, value)) = definition.split_once('=') else {
            return false;
        };
        let name = name.trim_end();
        if !is_parameter_name(name) {
            return false;
        }
        if self.parameters.contains_key(name) {
            self.lexed.diagnostics.push(Diagnostic::new(
                at,
                &format!("${name}"),
                Severity::Warning,
                "is defined again; the new value replaces the old one from here on",
            ));
        }
        self.parameters
            .insert(name.to_owned(), value.trim().to_owned());
        true
    }

    /// Replaces `$NAME` and `${NAME}` by defined parameters; unknown names
    /// stay as written, as keepalived leaves them.
    fn substitute(&self, line: &str, at: &Location) -> Result<String, ConfigError> {
        if !line.contains('$') || self.parameters.is_empty() {
            return Ok(line.to_owned());
        }
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            let (name, consumed) = match after.strip_prefix('{') {
                Some(braced) => match braced.find('}') {
                    Some(end) => (&braced[..end], end + 2),
                    None => ("", 0),
                },
                None => {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    (&after[..end], end)
                }
            };
            match self.parameters.get(name) {
                Some(value) if consumed > 0 => {
                    out.push_str(value);
                    rest = &after[consumed..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
            if out.len() > MAX_LINE_BYTES {
                return Err(at.error(format!(
                    "the line grows beyond {MAX_LINE_BYTES} bytes once $parameters are replaced"
                )));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn include(&mut self, words: &[Token], dir: &Path, at: &Location) -> Result<(), ConfigError> {
        let Some(Token::Word(pattern)) = words.first() else {
            return Err(at.error("`include` needs a file name or a glob pattern after it"));
        };
        let mut matches = glob::expand(pattern, dir, MAX_FILES);
        matches.retain(|path| path.is_file());
        if matches.is_empty() {
            self.lexed.diagnostics.push(Diagnostic::new(
                at,
                "include",
                Severity::Warning,
                &format!(
                    "`{pattern}` matches no file; nothing is included (keepalived says the same)"
                ),
            ));
        }
        for path in matches {
            let name = path.display().to_string();
            self.read_file(&path, &name, Some(at))?;
        }
        Ok(())
    }
}

fn line_number(line: usize) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

fn is_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads at most one byte more than a file may hold.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The line up to its first `#` or `!` outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (index, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' | '!' if !quoted => return &line[..index],
            _ => {}
        }
    }
    line
}

/// Splits a line into words and braces; `"..."` is one word.
fn split_words(line: &str, at: &Location) -> Result<Vec<Token>, ConfigError> {
    let mut tokens = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' | '}' => {
                tokens.extend(word.take().map(Token::Word));
                tokens.push(if c == '{' { Token::Open } else { Token::Close });
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(inner) => current.push(inner),
                        None => {
                            return Err(at.error(
                                "a double quote is not closed on this line; add the closing `\"`",
                            ));
                        }
                    }
                }
            }
            c if c.is_whitespace() => tokens.extend(word.take().map(Token::Word)),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    tokens.extend(word.map(Token::Word));
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Token> {
        let at = Location {
            file: Arc::from("t.conf"),
            line: 1,
        };
        split_words(strip_comment(line), &at).unwrap()
    }

    fn w(text: &str) -> Token {
        Token::Word(text.to_owned())
    }

    #[test]
    fn comments_start_anywhere_outside_quotes() {
        assert_eq!(words("priority 77#x"), vec![w("priority"), w("77")]);
        assert_eq!(words("priority 77 ! old"), vec![w("priority"), w("77")]);
        assert_eq!(
            words(r#"notify "/bin/echo a#b" # c"#),
            vec![w("notify"), w("/bin/echo a#b")]
        );
    }

    #[test]
    fn braces_are_words_of_their_own() {
        assert_eq!(
            words("virtual_server 10.0.0.1 80{"),
            vec![w("virtual_server"), w("10.0.0.1"), w("80"), Token::Open]
        );
        assert_eq!(
            words("virtual_ipaddress {10.0.0.1/24}"),
            vec![
                w("virtual_ipaddress"),
                Token::Open,
                w("10.0.0.1/24"),
                Token::Close
            ]
        );
    }

    #[test]
    fn unclosed_quote_is_an_error_at_the_line() {
        let at = Location {
            file: Arc::from("t.conf"),
            line: 9,
        };
        let error = split_words(r#"notify "/bin/x"#, &at).unwrap_err();
        assert!(
            error.to_string().starts_with("t.conf:9: a double quote"),
            "{error}"
        );
    }
}
