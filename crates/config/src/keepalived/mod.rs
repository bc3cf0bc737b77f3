//! Reading keepalived.conf as it is: keepalived's syntax and keywords mapped
//! onto hapair's VRRP model, so `vrrpd -f /etc/keepalived/keepalived.conf`
//! runs an existing setup, and [`load`]'s `yaml` is the equivalent hapair
//! YAML (what `haadm import keepalived FILE` prints).
//!
//! The path is: `lexer` (words, includes, `@ID` lines, `$NAME`
//! parameters) → `tree` (statements and blocks with file and line) →
//! `map` (keepalived's keywords and defaults onto hapair's YAML schema) →
//! [`VrrpConfig::parse`], so a keepalived.conf is checked by exactly the
//! rules a hapair YAML file is, and its YAML form reads back to the same
//! [`VrrpConfig`]. Errors from those rules are reported at the keepalived
//! line the offending value came from.
//!
//! What hapair does not implement is reported by name and line as a
//! [`Diagnostic`]; keywords whose absence would change failover behaviour
//! ([`Severity::Unsafe`], listed in docs/keepalived-config.md) refuse the
//! file unless [`ImportOptions::allow_unsupported`] is set.

mod lexer;
mod map;
mod tree;

use std::fmt;
use std::path::Path;

use crate::error::ConfigError;
use crate::vrrp::VrrpConfig;

pub use map::UNSAFE_KEYWORDS;

/// How a keepalived.conf is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// keepalived's config id (`keepalived -i ID`, by default the host
    /// name): lines starting `@ID` are read, lines starting `@^ID` skipped.
    /// vrrpd passes its node name.
    pub config_id: String,
    /// Start even though the file uses keywords whose absence changes
    /// failover behaviour (they are still reported).
    pub allow_unsupported: bool,
}

/// How much a keyword hapair does not implement matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Ignored: the pair fails over as keepalived would without it.
    Warning,
    /// Failover would behave differently from keepalived without it; the
    /// file is refused unless unsupported keywords are allowed.
    Unsafe,
}

/// Something in the file hapair reads differently from keepalived or not at
/// all, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    /// The keyword as written, e.g. `use_vmac`.
    pub keyword: String,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(
        at: &lexer::Location,
        keyword: &str,
        severity: Severity,
        message: &str,
    ) -> Diagnostic {
        Diagnostic {
            file: at.file.to_string(),
            line: at.line,
            keyword: keyword.to_owned(),
            severity,
            message: message.to_owned(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Warning => "warning",
            Severity::Unsafe => "unsupported",
        };
        write!(
            f,
            "{}:{}: {kind}: `{}` {}",
            crate::error::printable(&self.file),
            self.line,
            crate::error::printable(&self.keyword),
            crate::error::printable(&self.message)
        )
    }
}

/// A keepalived.conf read into hapair's model.
#[derive(Debug, Clone)]
pub struct Imported {
    pub config: VrrpConfig,
    /// The equivalent hapair YAML, with the diagnostics as comments on top;
    /// `config` is what the rules made of the YAML without them, and
    /// [`VrrpConfig::parse`] reads this text back to the same.
    pub yaml: String,
    /// Everything hapair ignores or does differently, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads the keepalived.conf at `path` (and what it includes).
///
/// Fails on syntax errors, values hapair's rules refuse, and, unless
/// `options.allow_unsupported`, on [`Severity::Unsafe`] keywords; every
/// error names the file and line.
pub fn load(path: &Path, options: &ImportOptions) -> Result<Imported, ConfigError> {
    let lexed = lexer::lex_file(path, &options.config_id)?;
    let statements = tree::parse(lexed.tokens)?;
    let mut mapped = map::map(&statements, lexed.diagnostics)?;
    mapped
        .diagnostics
        .sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
    let origin = path.display().to_string();
    if mapped.has_no_instance() {
        return Err(ConfigError::invalid(
            &origin,
            "vrrp_instance",
            "the configuration defines no vrrp_instance, so vrrpd has nothing to run \
             (keepalived would run only its other parts); add one",
        ));
    }
    let document = mapped.document_yaml(&origin)?;
    let config =
        VrrpConfig::parse(&document, &origin, None).map_err(|error| mapped.locate(error))?;
    let yaml = mapped.with_header(&origin, &document);
    let unsafe_ones: Vec<&Diagnostic> = mapped
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Unsafe)
        .collect();
    if let Some(first) = unsafe_ones.first()
        && !options.allow_unsupported
    {
        let others = match unsafe_ones.len() {
            1 => String::new(),
            n => format!(
                " ({} more unsupported keywords follow in the warnings)",
                n - 1
            ),
        };
        return Err(ConfigError::at_line(
            &first.file,
            first.line,
            &format!(
                "`{}` {}{others}; hapair refuses to run a failover that would behave \
                 differently from keepalived: remove it, or pass --allow-unsupported to start anyway",
                first.keyword, first.message
            ),
        ));
    }
    Ok(Imported {
        config,
        yaml,
        diagnostics: mapped.diagnostics,
    })
}

/// Whether the file at `path` is in keepalived's syntax, judged by
/// [`looks_like_keepalived`] on its beginning; false when it cannot be read
/// (the YAML reader then says why).
pub fn is_keepalived_file(path: &Path) -> bool {
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|file| {
        std::io::Read::read_to_end(&mut std::io::Read::take(file, 64 * 1024), &mut head)
    });
    read.is_ok() && looks_like_keepalived(&String::from_utf8_lossy(&head))
}

/// Whether config text is keepalived's syntax rather than hapair YAML: its
/// first statement (after blank and comment lines) is a keepalived block or
/// directive rather than a YAML key. vrrpd uses this to choose the reader
/// for `-f FILE`.
pub fn looks_like_keepalived(text: &str) -> bool {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with(['#', '!']))
    else {
        return false;
    };
    let word = first
        .split(|c: char| c.is_whitespace() || c == '{')
        .next()
        .unwrap_or_default();
    first.starts_with(['@', '$'])
        || map::TOP_LEVEL_KEYWORDS.contains(&word)
        || (!word.ends_with(':') && first.contains('{') && !first.starts_with(['{', '[', '-']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_text_is_told_from_yaml() {
        assert!(looks_like_keepalived("! Configuration\nglobal_defs {\n}\n"));
        assert!(looks_like_keepalived("# x\n\nvrrp_instance VI_1 {\n"));
        assert!(looks_like_keepalived(
            "include /etc/keepalived/conf.d/*.conf\n"
        ));
        assert!(looks_like_keepalived("@ha1 $IF=eth0\n"));
        assert!(!looks_like_keepalived(
            "# vrrpd\ninstances:\n  - name: VI_1\n"
        ));
        assert!(!looks_like_keepalived("instances: [{name: VI_1}]\n"));
        assert!(!looks_like_keepalived(""));
    }
}
