//! keepalived.conf's syntax tree: statements (a keyword, its words up to the
//! end of the line, and an optional `{ }` block of statements), each with the
//! file and line it starts at.
//!
//! A block may open on the keyword's line or on the next one (a `{` on its
//! own line), and may close on the line of its last statement
//! (`track_script { chk }`). Unbalanced braces are errors naming the line
//! of the unclosed block or of the stray `}`: keepalived only warns and
//! carries on with a guess, which is no basis for a failover decision.

use super::lexer::{Location, Token};
use crate::error::ConfigError;

/// Blocks nest at most this deep (keepalived's deepest real block is 3).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub keyword: String,
    pub args: Vec<String>,
    /// `None` when no `{` followed; `Some(vec![])` for an empty block.
    pub block: Option<Vec<Statement>>,
    pub at: Location,
}

impl Statement {
    fn new(keyword: String, at: Location) -> Statement {
        Statement {
            keyword,
            args: Vec::new(),
            block: None,
            at,
        }
    }

    /// The statements of the block, or none.
    pub(crate) fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or_default()
    }
}

/// A statement still being read, and whether its line has ended (a `{` may
/// still follow on the next line; a word starts the next statement).
struct Pending {
    statement: Statement,
    line_ended: bool,
}

/// Builds the tree of the whole token stream.
pub(crate) fn parse(tokens: Vec<(Token, Location)>) -> Result<Vec<Statement>, ConfigError> {
    // Open blocks, innermost last; the first is the file's top level.
    let mut open: Vec<(Option<Statement>, Vec<Statement>)> = vec![(None, Vec::new())];
    let mut pending: Option<Pending> = None;
    let finish = |pending: &mut Option<Pending>,
                  open: &mut Vec<(Option<Statement>, Vec<Statement>)>| {
        if let Some(done) = pending.take()
            && let Some((_, children)) = open.last_mut()
        {
            children.push(done.statement);
        }
    };
    for (token, at) in tokens {
        match token {
            Token::Word(word) => match &mut pending {
                Some(current) if !current.line_ended => current.statement.args.push(word),
                _ => {
                    finish(&mut pending, &mut open);
                    pending = Some(Pending {
                        statement: Statement::new(word, at),
                        line_ended: false,
                    });
                }
            },
            Token::EndOfLine => {
                if let Some(current) = &mut pending {
                    current.line_ended = true;
                }
            }
            Token::Open => {
                let Some(current) = pending.take() else {
                    return Err(at.error(
                        "`{` with no keyword before it; write the block's keyword first \
                         (e.g. `virtual_ipaddress {`)",
                    ));
                };
                if open.len() > MAX_DEPTH {
                    return Err(at.error(format!(
                        "blocks are nested more than {MAX_DEPTH} deep; a `}}` is probably missing above"
                    )));
                }
                open.push((Some(current.statement), Vec::new()));
            }
            Token::Close => {
                finish(&mut pending, &mut open);
                if open.len() == 1 {
                    return Err(at.error("`}` closes no block; remove it or add the missing `{`"));
                }
                if let Some((Some(mut statement), children)) = open.pop() {
                    statement.block = Some(children);
                    if let Some((_, parent)) = open.last_mut() {
                        parent.push(statement);
                    }
                }
            }
        }
    }
    finish(&mut pending, &mut open);
    if let Some((Some(unclosed), _)) = open.last() {
        let name = std::iter::once(unclosed.keyword.as_str())
            .chain(unclosed.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(unclosed.at.error(format!(
            "`{name}` opens a block that is never closed; add the missing `}}`"
        )));
    }
    Ok(open.pop().map(|(_, top)| top).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Tokens of `lines`, one line each, split on spaces (braces spaced out).
    fn tokens(lines: &[&str]) -> Vec<(Token, Location)> {
        let mut out = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let at = Location {
                file: Arc::from("t.conf"),
                line: index as u32 + 1,
            };
            for word in line.split_whitespace() {
                let token = match word {
                    "{" => Token::Open,
                    "}" => Token::Close,
                    _ => Token::Word(word.to_owned()),
                };
                out.push((token, at.clone()));
            }
            out.push((Token::EndOfLine, at));
        }
        out
    }

    #[test]
    fn braces_on_their_own_lines_and_one_line_blocks() {
        let tree = parse(tokens(&[
            "vrrp_instance VI_1",
            "{",
            "  track_script { chk }",
            "  priority 5",
            "}",
        ]))
        .unwrap();
        assert_eq!(tree.len(), 1);
        let instance = &tree[0];
        assert_eq!(
            (instance.keyword.as_str(), instance.at.line),
            ("vrrp_instance", 1)
        );
        assert_eq!(instance.args, vec!["VI_1"]);
        let children = instance.children();
        assert_eq!(children[0].keyword, "track_script");
        assert_eq!(children[0].children()[0].keyword, "chk");
        assert_eq!(children[1].args, vec!["5"]);
        assert_eq!(children[1].at.line, 4);
    }

    #[test]
    fn unbalanced_braces_name_the_line() {
        let error = parse(tokens(&[
            "global_defs {",
            "  router_id a",
            "vrrp_instance X {",
            "}",
        ]))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.conf:1: `global_defs` opens a block that is never closed; add the missing `}`"
        );
        let error = parse(tokens(&["a {", "}", "}"])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("t.conf:3: `}` closes no block"),
            "{error}"
        );
        let error = parse(tokens(&["{"])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("t.conf:1: `{` with no keyword"),
            "{error}"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let line = "a { ".repeat(100);
        let error = parse(tokens(&[&line])).unwrap_err();
        assert!(error.to_string().contains("nested more than"), "{error}");
    }
}
