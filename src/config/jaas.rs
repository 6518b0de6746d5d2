//! The JAAS configuration text of a `sasl.jaas.config` property, as Kafka's JaasConfig reads it:
//! one login module, `<class> <flag> (<name>=<value>)* ;`, values bare words or quoted strings,
//! `/* */` and `//` comments. Pure text; says nothing of what a module's options mean.

use std::collections::BTreeMap;

/// One login module of a JAAS configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    /// The options, by name; values may be secrets (never printed: see the Debug impl).
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for LoginModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginModule").field("class", &self.class).field("options", &self.options.keys().collect::<Vec<_>>()).finish()
    }
}

/// Why a JAAS configuration was refused; never quotes an option's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JAAS configuration: {0}")]
pub struct JaasError(String);

#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A bare word (class names, flags, option names, unquoted values).
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

fn tokens(text: &str) -> Result<Vec<Token>, JaasError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => drop(chars.next()),
            '=' => {
                chars.next();
                out.push(Token::Equals);
            }
            ';' => {
                chars.next();
                out.push(Token::Semicolon);
            }
            '"' | '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err(JaasError("a quoted value is not closed".into())),
                        Some(q) if q == c => break,
                        // As Java's StreamTokenizer: backslash escapes.
                        Some('\\') => match chars.next() {
                            None => return Err(JaasError("a quoted value is not closed".into())),
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some('r') => value.push('\r'),
                            Some(e) => value.push(e),
                        },
                        Some(ch) => value.push(ch),
                    }
                }
                out.push(Token::Quoted(value));
            }
            '/' => {
                chars.next();
                match chars.next() {
                    Some('*') => {
                        let mut prev = ' ';
                        loop {
                            match chars.next() {
                                None => return Err(JaasError("a comment is not closed".into())),
                                Some('/') if prev == '*' => break,
                                Some(ch) => prev = ch,
                            }
                        }
                    }
                    Some('/') => {
                        while chars.next().is_some_and(|ch| ch != '\n') {}
                    }
                    _ => return Err(JaasError("unexpected '/'".into())),
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, '=' | ';' | '"' | '\'') {
                        break;
                    }
                    word.push(ch);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

/// Parses a `sasl.jaas.config` value: exactly one login module, as Kafka requires of the property.
pub fn parse(text: &str) -> Result<LoginModule, JaasError> {
    let toks = tokens(text)?;
    let mut it = toks.into_iter().peekable();
    let mut modules = Vec::new();
    while it.peek().is_some() {
        let Some(Token::Word(class)) = it.next() else {
            return Err(JaasError("expected a login module class name".into()));
        };
        match it.next() {
            Some(Token::Word(flag)) if ["required", "requisite", "sufficient", "optional"].contains(&flag.to_ascii_lowercase().as_str()) => {}
            Some(Token::Word(flag)) => return Err(JaasError(format!("invalid control flag {flag} (required, requisite, sufficient or optional)"))),
            _ => return Err(JaasError(format!("login module {class} has no control flag"))),
        }
        let mut options = BTreeMap::new();
        loop {
            match it.next() {
                Some(Token::Semicolon) => break,
                Some(Token::Word(name)) => {
                    if it.next() != Some(Token::Equals) {
                        return Err(JaasError(format!("option {name} has no '='")));
                    }
                    let value = match it.next() {
                        Some(Token::Word(v) | Token::Quoted(v)) => v,
                        _ => return Err(JaasError(format!("option {name} has no value"))),
                    };
                    options.insert(name, value);
                }
                None => return Err(JaasError(format!("login module {class} does not end with ';'"))),
                Some(_) => return Err(JaasError(format!("unexpected token in the options of {class}"))),
            }
        }
        modules.push(LoginModule { class, options });
    }
    match modules.len() {
        1 => Ok(modules.remove(0)),
        n => Err(JaasError(format!("JAAS config property contains {n} login modules, should be 1 module"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_module_gives_its_class_and_options_with_quoted_and_bare_values() {
        let m = parse(r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin secret" user_admin="admin secret" user_alice=alice-secret user_q="a\"b;c";"#).expect("parses");
        assert_eq!(m.class, "org.apache.kafka.common.security.plain.PlainLoginModule");
        assert_eq!(m.options["username"], "admin");
        assert_eq!(m.options["user_admin"], "admin secret");
        assert_eq!(m.options["user_alice"], "alice-secret");
        assert_eq!(m.options["user_q"], "a\"b;c");
        assert!(!format!("{m:?}").contains("secret"), "option values never reach Debug output");
    }

    #[test]
    fn comments_newlines_and_flags_in_any_case_are_accepted() {
        let m = parse("/* users */ org.apache.kafka.common.security.scram.ScramLoginModule\n  REQUIRED // flag\n  ;").expect("parses");
        assert_eq!(m.class, "org.apache.kafka.common.security.scram.ScramLoginModule");
        assert!(m.options.is_empty());
    }

    #[test]
    fn malformed_configurations_are_refused_with_a_reason() {
        for (text, why) in [
            ("", "0 login modules"),
            ("a.B required", "does not end"),
            ("a.B mandatory;", "invalid control flag"),
            ("a.B required user_x;", "has no '='"),
            ("a.B required user_x=;", "has no value"),
            ("a.B required user_x=\"open;", "not closed"),
            ("a.B required; c.D required;", "2 login modules"),
            ("a.B required /* open", "comment is not closed"),
            ("= required;", "class name"),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
