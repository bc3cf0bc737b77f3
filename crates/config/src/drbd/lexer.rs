//! drbd.conf's tokens: words, double-quoted strings, `{`, `}` and `;`, each
//! with its line. `#` starts a comment that runs to the end of the line.

use crate::error::ConfigError;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A bare word: a keyword, a name or a value (`resource`, `10M`, `/dev/sdb`).
    Word,
    /// A double-quoted string, its quotes removed and `\"`, `\\` resolved.
    Quoted,
    Open,
    Close,
    Semicolon,
}

/// One token and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub text: String,
    pub line: u32,
}

/// Whether `c` ends a bare word.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"' | '#')
}

/// Splits `text` into tokens; `origin` names the file in errors. A string
/// may not span lines, as in drbdadm.
pub(crate) fn tokenize(text: &str, origin: &str) -> Result<Vec<Token>, ConfigError> {
    let mut tokens = Vec::new();
    let mut line: u32 = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let single = |kind| Token {
            kind,
            text: c.to_string(),
            line,
        };
        match c {
            '\n' => line = line.saturating_add(1),
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|&next| next != '\n').is_some() {},
            '{' => tokens.push(single(TokenKind::Open)),
            '}' => tokens.push(single(TokenKind::Close)),
            ';' => tokens.push(single(TokenKind::Semicolon)),
            '"' => {
                let mut string = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') | None => return Err(unterminated(origin, line)),
                            Some(escaped) => string.push(escaped),
                        },
                        Some('\n') | None => return Err(unterminated(origin, line)),
                        Some(other) => string.push(other),
                    }
                }
                tokens.push(Token {
                    kind: TokenKind::Quoted,
                    text: string,
                    line,
                });
            }
            c => {
                let mut word = c.to_string();
                while let Some(next) = chars.next_if(|&next| !ends_word(next)) {
                    word.push(next);
                }
                tokens.push(Token {
                    kind: TokenKind::Word,
                    text: word,
                    line,
                });
            }
        }
    }
    Ok(tokens)
}

fn unterminated(origin: &str, line: u32) -> ConfigError {
    ConfigError::at_line(
        origin,
        line,
        "the string is not closed on this line; add the closing `\"`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_and_texts(text: &str) -> Vec<(TokenKind, String, u32)> {
        tokenize(text, "t.res")
            .unwrap()
            .into_iter()
            .map(|token| (token.kind, token.text, token.line))
            .collect()
    }

    #[test]
    fn words_strings_punctuation_and_comments() {
        use TokenKind::*;
        let tokens = kinds_and_texts(
            "resource r0{ # comment ; {\n  net { shared-secret \"a \\\"b\\\" ;#\"; }\n}",
        );
        let expected = [
            (Word, "resource", 1),
            (Word, "r0", 1),
            (Open, "{", 1),
            (Word, "net", 2),
            (Open, "{", 2),
            (Word, "shared-secret", 2),
            (Quoted, "a \"b\" ;#", 2),
            (Semicolon, ";", 2),
            (Close, "}", 2),
            (Close, "}", 3),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(kind, text, line)| (kind, text.to_string(), line))
            .collect();
        assert_eq!(tokens, expected);
    }

    #[test]
    fn unterminated_string_names_its_line() {
        let error = tokenize("a;\nb \"open\n", "t.res").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.res:2: the string is not closed on this line; add the closing `\"`"
        );
    }
}
