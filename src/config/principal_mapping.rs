//! `ssl.principal.mapping.rules` (KIP-371): the rules that turn an mTLS client's certificate
//! subject (RFC 2253, as Java prints it) into the name of its `User:` principal, with Kafka's
//! syntax and matching semantics. Parsed at startup (a bad rule stops the broker, as in Kafka),
//! applied once per connection. Pure text: no I/O, no TLS.

use regex_automata::meta::Regex;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

/// The grammar of one rule, as Kafka reads a rule list: `DEFAULT`, `RULE:<pattern>/<replacement>/`
/// with an optional `L` or `U` (backslash escapes inside the pattern and the replacement, which
/// may therefore hold `/` and `,`), or anything else (which must then be empty).
const RULE_GRAMMAR: &str = r"(?P<default>DEFAULT)|RULE:(?P<pattern>(?:\\.|[^\\/])*)/(?P<replacement>(?:\\.|[^\\/])*)/(?P<case>[LU]?).*?|(?P<other>.*?)";

/// How a rule's result is cased.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    AsIs,
    Lower,
    Upper,
}

#[derive(Clone, Debug)]
enum Rule {
    /// The subject itself.
    Default,
    Replace {
        /// The pattern as written (printed in errors).
        source: String,
        /// Finds the matches the replacement replaces.
        pattern: Regex,
        /// The pattern anchored at both ends: the rule applies only when it matches the whole subject.
        whole: Regex,
        replacement: String,
        case: Case,
    },
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Default => write!(f, "DEFAULT"),
            Rule::Replace { source, replacement, case, .. } => {
                write!(f, "RULE:{source}/{replacement}")?;
                match case {
                    Case::AsIs => Ok(()),
                    Case::Lower => write!(f, "/L"),
                    Case::Upper => write!(f, "/U"),
                }
            }
        }
    }
}

/// The parsed `ssl.principal.mapping.rules` of a listener: tried in order, the first that
/// applies names the principal.
#[derive(Clone, Debug)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
    /// The property's text: two mappers are the same when their texts are.
    text: String,
}

impl PartialEq for PrincipalMapper {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PrincipalMapper {}

impl Default for PrincipalMapper {
    /// Kafka's default, `DEFAULT`: the principal's name is the subject.
    fn default() -> Self {
        PrincipalMapper { rules: vec![Rule::Default], text: "DEFAULT".into() }
    }
}

impl PrincipalMapper {
    /// Parses a rule list. Err: Kafka's reason (`Invalid rule: ...`), or the pattern's syntax error.
    pub fn parse(text: &str) -> Result<PrincipalMapper, String> {
        let rule_re = Regex::new(RULE_GRAMMAR).map_err(|e| e.to_string())?;
        let splitter = Regex::new(&format!(r"\s*(?P<rule>{RULE_GRAMMAR})\s*(?:,\s*|$)")).map_err(|e| e.to_string())?;
        let trimmed = text.trim();
        let mut pieces = Vec::new();
        find_all(&splitter, trimmed, |caps| {
            if let Some(span) = caps.get_group_by_name("rule") {
                pieces.push(&trimmed[span.range()]);
            }
        });
        let mut rules = Vec::new();
        for piece in pieces {
            let mut caps = rule_re.create_captures();
            rule_re.search_captures(&Input::new(piece).anchored(Anchored::Yes), &mut caps);
            let Some(m) = caps.get_match() else {
                return Err(format!("Invalid rule: {piece}"));
            };
            if m.end() != piece.len() {
                return Err(format!("Invalid rule: `{piece}`, unmatched substring: `{}`", &piece[m.end()..]));
            }
            let group = |name: &str| caps.get_group_by_name(name).map(|s| &piece[s.range()]);
            if group("default").is_some() {
                rules.push(Rule::Default);
            } else if let (Some(source), Some(replacement)) = (group("pattern"), group("replacement")) {
                let bad = |e: regex_automata::meta::BuildError| format!("Invalid rule: `{piece}`: the pattern {source} is not a regular expression: {e}");
                let pattern = Regex::new(source).map_err(bad)?;
                let whole = Regex::new(&format!(r"\A(?:{source})\z")).map_err(bad)?;
                let case = match group("case") {
                    Some("L") => Case::Lower,
                    Some("U") => Case::Upper,
                    _ => Case::AsIs,
                };
                rules.push(Rule::Replace { source: source.to_string(), pattern, whole, replacement: replacement.to_string(), case });
            }
            // An empty piece (`DEFAULT,,`) is no rule.
        }
        Ok(PrincipalMapper { rules, text: text.to_string() })
    }

    /// The principal's name for certificate subject `dn`: the first rule that applies. Err when
    /// none does (Kafka then fails the client's authentication) or a replacement cannot be made.
    pub fn name(&self, dn: &str) -> Result<String, String> {
        for rule in &self.rules {
            if let Some(name) = rule.apply(dn)? {
                return Ok(name);
            }
        }
        let rules: Vec<String> = self.rules.iter().map(Rule::to_string).collect();
        Err(format!("No rules apply to {dn}, rules [{}]", rules.join(", ")))
    }
}

impl Rule {
    fn apply(&self, dn: &str) -> Result<Option<String>, String> {
        let Rule::Replace { pattern, whole, replacement, case, .. } = self else {
            return Ok(Some(dn.to_string()));
        };
        if !whole.is_match(dn) {
            return Ok(None);
        }
        // Every match is replaced, as Java's String.replaceAll does (a pattern that can match
        // nothing matches once more at the end of the subject).
        let groups = pattern.group_info().group_len(regex_automata::PatternID::ZERO).saturating_sub(1);
        let mut out = String::new();
        let mut copied = 0;
        let mut failure = None;
        find_all(pattern, dn, |caps| {
            let Some(m) = caps.get_match() else { return };
            out.push_str(&dn[copied..m.start()]);
            copied = m.end();
            if failure.is_none()
                && let Err(e) = expand(replacement, caps, dn, groups, &mut out)
            {
                failure = Some(e);
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        out.push_str(&dn[copied..]);
        Ok(Some(match case {
            Case::AsIs => out,
            Case::Lower => out.to_lowercase(),
            Case::Upper => out.to_uppercase(),
        }))
    }
}

/// Calls `f` with each match of `re` in `hay`, left to right, as Java's Matcher.find finds them:
/// the next search starts where the last match ended, one character later after an empty match.
fn find_all(re: &Regex, hay: &str, mut f: impl FnMut(&Captures)) {
    let mut at = 0;
    while at <= hay.len() {
        let mut caps = re.create_captures();
        re.search_captures(&Input::new(hay).range(at..), &mut caps);
        let Some(m) = caps.get_match() else { return };
        f(&caps);
        at = if m.is_empty() { m.end() + hay[m.end()..].chars().next().map_or(1, char::len_utf8) } else { m.end() };
    }
}

/// Appends `replacement` for one match to `out`, read as a Java replacement string: `\x` is `x`,
/// `$n` and `${name}` are groups. As in Kafka, `$n` naming a group the pattern does not have is
/// kept as text when the pattern has groups (`$12` is group 1 then `2` when there are fewer than
/// 12); with no groups at all it is an error, as Java's replaceAll throws.
fn expand(replacement: &str, caps: &Captures, hay: &str, groups: usize, out: &mut String) -> Result<(), String> {
    let group_text = |i: usize| caps.get_group(i).map_or("", |s| &hay[s.range()]);
    let mut chars = replacement.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, escaped) = chars.next().ok_or("character to be escaped is missing in the replacement")?;
                out.push(escaped);
            }
            '$' => {
                let rest = &replacement[i + 1..];
                if let Some(name) = rest.strip_prefix('{') {
                    let end = name.find('}').ok_or("named group reference is missing its trailing '}'")?;
                    let span = caps.get_group_by_name(&name[..end]).ok_or_else(|| format!("No group with name {{{}}}", &name[..end]))?;
                    out.push_str(&hay[span.range()]);
                    for _ in 0..end + 2 {
                        chars.next();
                    }
                    continue;
                }
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if digits.is_empty() {
                    return Err("Illegal group reference in the replacement".into());
                }
                if groups > 0 && !digits.starts_with('0') {
                    let mut n: u64 = digits.parse().unwrap_or(u64::MAX);
                    while n > groups as u64 && n >= 10 {
                        n /= 10;
                    }
                    if n > groups as u64 {
                        // Not a group: the `$` and its digits are text.
                        out.push('$');
                        continue;
                    }
                }
                // Java's reading: the first digit, then more while the number stays a group.
                let mut n = (digits.as_bytes()[0] - b'0') as usize;
                if n > groups {
                    return Err(format!("No group {n}"));
                }
                let mut used = 1;
                for d in digits.bytes().skip(1) {
                    let next = n * 10 + (d - b'0') as usize;
                    if next > groups {
                        break;
                    }
                    n = next;
                    used += 1;
                }
                out.push_str(group_text(n));
                for _ in 0..used {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rules: &str, dn: &str) -> Result<String, String> {
        PrincipalMapper::parse(rules).expect("rules parse").name(dn)
    }

    #[test]
    fn default_names_the_subject_itself() {
        assert_eq!(map("DEFAULT", "CN=bob,OU=ops").as_deref(), Ok("CN=bob,OU=ops"));
        assert_eq!(PrincipalMapper::default().name("CN=x").as_deref(), Ok("CN=x"));
    }

    #[test]
    fn a_rule_replaces_with_its_groups_and_cases_the_result() {
        let rules = "RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$3/L, RULE:^CN=([a-z]+)$/svc-$1/U ,DEFAULT";
        assert_eq!(map(rules, "CN=Alice,OU=Eng,O=Example").as_deref(), Ok("alice@example"));
        assert_eq!(map(rules, "CN=kafka").as_deref(), Ok("SVC-KAFKA"));
        // Neither rule matches the whole subject: DEFAULT.
        assert_eq!(map(rules, "CN=Kafka,C=NO").as_deref(), Ok("CN=Kafka,C=NO"));
        // A partial match does not apply the rule.
        assert_eq!(map("RULE:CN=(.*)/$1/", "CN=x,OU=y").as_deref(), Ok("x,OU=y"));
        assert!(map("RULE:OU=(.*)/$1/", "CN=x,OU=y").is_err());
    }

    #[test]
    fn with_no_rule_that_applies_the_mapping_fails_naming_the_rules() {
        let e = map("RULE:^CN=(.*)$/$1/L", "OU=nobody").expect_err("no rule applies");
        assert_eq!(e, "No rules apply to OU=nobody, rules [RULE:^CN=(.*)$/$1/L]");
        assert!(map("", "CN=x").is_err(), "an empty list has no rules");
    }

    #[test]
    fn escapes_let_patterns_and_replacements_hold_slashes_and_commas() {
        assert_eq!(map(r"RULE:^CN=(.*?)\/(.*?),O=.*$/$2\/$1/", "CN=a/b,O=z").as_deref(), Ok("b/a"));
        assert_eq!(map(r"RULE:^CN=([^,]*),.*$/\$1 is $1/", "CN=u1,O=z").as_deref(), Ok("$1 is u1"));
        assert_eq!(map("RULE:^CN=(?<who>[^,]*),.*$/${who}/U", "CN=u1,O=z").as_deref(), Ok("U1"));
    }

    #[test]
    fn group_references_past_the_patterns_groups_are_text() {
        // One group: $12 is group 1 followed by 2; $9 is no group, kept as text.
        assert_eq!(map("RULE:^CN=(.*)$/$12-$9/", "CN=x").as_deref(), Ok("x2-$9"));
        // $0 is the whole match.
        assert_eq!(map("RULE:^CN=(.*)$/[$0]/", "CN=x").as_deref(), Ok("[CN=x]"));
        // No groups at all: Java's replaceAll refuses the reference.
        assert!(map("RULE:^CN=x$/$1/", "CN=x").is_err());
        assert!(map("RULE:^CN=x$/a$/", "CN=x").is_err());
    }

    #[test]
    fn replace_all_semantics_match_javas_for_patterns_that_match_nothing_too() {
        // Java: "CN=x".replaceAll(".*", "y") is "yy" (a second, empty match at the end).
        assert_eq!(map("RULE:.*/y/", "CN=x").as_deref(), Ok("yy"));
        assert_eq!(map("RULE:CN=x|/y/", "CN=x").as_deref(), Ok("yy"));
    }

    #[test]
    fn invalid_rules_are_refused_with_kafkas_reason() {
        assert_eq!(PrincipalMapper::parse("RULE:^CN=(.*)$/$1/Lx").expect_err("trailing text"), "Invalid rule: `RULE:^CN=(.*)$/$1/Lx`, unmatched substring: `x`");
        assert_eq!(PrincipalMapper::parse("DEFAULT, nonsense").expect_err("not a rule"), "Invalid rule: `nonsense`, unmatched substring: `nonsense`");
        assert!(PrincipalMapper::parse("RULE:^CN=(.*)$/$1").is_err(), "no closing slash");
        assert!(PrincipalMapper::parse("RULE:^CN=(.*$/$1/").expect_err("bad regex").contains("not a regular expression"));
        // Blank pieces are no rules; spaces around rules do not matter.
        let m = PrincipalMapper::parse("  DEFAULT ,, ").expect("blank pieces");
        assert_eq!(m.rules.len(), 1);
    }
}
