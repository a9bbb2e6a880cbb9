//! Rules as data: tables of cases in text files, run by one small runner (after the
//! `datadriven` format of etcd-io/raft's `testdata/`). A newcomer changing a pure rule edits
//! its table; the table is the one place the rule's cases are written down.
//!
//! A table file holds cases; between them, blank lines and `#` comments (say why the case
//! matters, right above it):
//!
//! ```text
//! # The leader dies: the first live ISR replica in assignment order leads.
//! next-state replicas=(1,2,3) leader=1 isr=(1,2,3) live=(2,3) min-isr=2
//! ----
//! leader=2 epoch=6 isr=(2,3) elr=()
//! ```
//!
//! The first line of a case is its command and arguments: `key=value`, `key=(a,b,c)` (a
//! list, `()` empty) or a bare `key` (a flag). Input lines may follow, then `----`, then the
//! expected output up to the next blank line or the end of the file (so an output has no
//! blank lines). The test turns each case into its output ([`run_file`]'s closure); every
//! argument a case gives must be read, so a misspelt one fails instead of being ignored.
//!
//! A mismatch fails the test with the case's `file:line`, the expected and the actual
//! output; every case runs, so one failure shows all. `KSIM_REWRITE=1 cargo test <test>`
//! writes the actual outputs into the file instead: review the diff before committing it.
//!
//! Input lines are the test's to read; [`words`], [`fields`] and [`json`] read the compact
//! `key=value` form the checker tables use for records (`a k=(1, 2) m={x=1} p=0:a`).
//!
//! Tables today: `src/broker/testdata/` (the controller's partition states),
//! `src/zk/testdata/` (the leader's sync mode, the election's vote order) and
//! `src/check/testdata/` (the checkers' cases: replication, control, client history, writer,
//! group, liveness; the record and scenario lines are `check::tables`').

use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

/// The environment variable that makes [`run_file`] rewrite expected outputs.
pub const REWRITE_ENV: &str = "KSIM_REWRITE";

/// The line between a case's command (and input) and its expected output.
const SEPARATOR: &str = "----";

/// One case of a table.
#[derive(Debug)]
pub struct Case {
    /// The table's name in messages (its path from the crate root).
    pub source: String,
    /// The 1-based line of the command.
    pub line: usize,
    /// The command: the first word of the case.
    pub command: String,
    /// The input lines between the command and `----`.
    pub input: Vec<String>,
    /// The expected output, lines joined by `\n`.
    pub expected: String,
    args: Vec<Arg>,
    /// The command line as written.
    text: String,
    /// 0-based range of the expected output's lines in the file.
    expected_lines: std::ops::Range<usize>,
    used: RefCell<BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Arg {
    key: String,
    values: Vec<String>,
    /// A bare `key`, not `key=..`.
    flag: bool,
}

impl Case {
    /// Fails the test at this case.
    pub fn fail(&self, message: impl Display) -> ! {
        panic!("{}:{}: {}: {message}", self.source, self.line, self.text)
    }

    /// Whether the flag (or argument) `key` is given.
    pub fn has(&self, key: &str) -> bool {
        self.used.borrow_mut().insert(key.to_string());
        self.args.iter().any(|a| a.key == key)
    }

    /// The values of `key`, `None` if it is not given.
    pub fn values(&self, key: &str) -> Option<&[String]> {
        self.used.borrow_mut().insert(key.to_string());
        self.args
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.values.as_slice())
    }

    /// The one value of `key`, parsed; `None` if it is not given.
    pub fn optional<T: FromStr>(&self, key: &str) -> Option<T>
    where
        T::Err: Display,
    {
        let values = self.values(key)?;
        match values {
            [one] => Some(self.parse(key, one)),
            _ => self.fail(format!("`{key}` takes one value, got {values:?}")),
        }
    }

    /// The one value of `key`, parsed; the case fails without it.
    pub fn value<T: FromStr>(&self, key: &str) -> T
    where
        T::Err: Display,
    {
        self.optional(key)
            .unwrap_or_else(|| self.fail(format!("missing `{key}=`")))
    }

    /// The list `key=(a,b,c)` (or a single `key=a`), parsed; the case fails without it.
    pub fn list<T: FromStr>(&self, key: &str) -> Vec<T>
    where
        T::Err: Display,
    {
        let values = self
            .values(key)
            .unwrap_or_else(|| self.fail(format!("missing `{key}=(..)`")));
        values.iter().map(|v| self.parse(key, v)).collect()
    }

    fn parse<T: FromStr>(&self, key: &str, value: &str) -> T
    where
        T::Err: Display,
    {
        value
            .parse()
            .unwrap_or_else(|e| self.fail(format!("`{key}={value}`: {e}")))
    }

    /// The bare words (flags) of the command line, in order: `check a b` → `[a, b]`.
    pub fn flags(&self) -> Vec<&str> {
        let flags: Vec<&str> = self
            .args
            .iter()
            .filter(|a| a.flag)
            .map(|a| a.key.as_str())
            .collect();
        self.used
            .borrow_mut()
            .extend(flags.iter().map(|f| f.to_string()));
        flags
    }

    fn unused(&self) -> Vec<&str> {
        let used = self.used.borrow();
        self.args
            .iter()
            .map(|a| a.key.as_str())
            .filter(|k| !used.contains(*k))
            .collect()
    }
}

/// What running a table found.
#[derive(Debug)]
pub struct Run {
    /// How many cases the table has.
    pub cases: usize,
    /// One message per failed case: `file:line`, the expected and the actual output.
    pub failures: Vec<String>,
    /// The table with every expected output replaced by the actual one.
    pub rewritten: String,
}

/// Parses `text` (named `source` in messages) into its cases.
pub fn parse(source: &str, text: &str) -> Result<Vec<Case>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cases = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            i += 1;
            continue;
        }
        let at = i + 1;
        let fail = |message: String| format!("{source}:{at}: {message}");
        let (command, args) = parse_command(line).map_err(fail)?;
        i += 1;
        let mut input = Vec::new();
        while i < lines.len() && lines[i].trim_end() != SEPARATOR {
            input.push(lines[i].trim_end().to_string());
            i += 1;
        }
        if i == lines.len() {
            return Err(fail(format!("the case has no `{SEPARATOR}` line")));
        }
        i += 1;
        let start = i;
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
        let expected = lines[start..i]
            .iter()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n");
        cases.push(Case {
            source: source.to_string(),
            line: at,
            command,
            input,
            expected,
            args,
            text: line.to_string(),
            expected_lines: start..i,
            used: RefCell::new(BTreeSet::new()),
        });
    }
    Ok(cases)
}

/// Runs every case of `text` through `output`, comparing with the expected outputs.
pub fn run(
    source: &str,
    text: &str,
    mut output: impl FnMut(&Case) -> String,
) -> Result<Run, String> {
    let cases = parse(source, text)?;
    let mut failures = Vec::new();
    let mut actuals = Vec::new();
    for case in &cases {
        let actual = normalize(&output(case));
        let unused = case.unused();
        if !unused.is_empty() {
            failures.push(format!(
                "{source}:{}: {}\nunknown argument(s) {unused:?} for `{}`",
                case.line, case.text, case.command
            ));
        }
        if actual.lines().any(|l| l.is_empty()) {
            failures.push(format!(
                "{source}:{}: {}\nthe actual output has a blank line, which ends a case:\n{actual}",
                case.line, case.text
            ));
            // The rewrite keeps what the table says rather than break the file.
            actuals.push(case.expected.clone());
            continue;
        }
        if actual != case.expected {
            failures.push(format!(
                "{source}:{}: {}\nexpected:\n{}\nactual:\n{actual}",
                case.line, case.text, case.expected
            ));
        }
        actuals.push(actual);
    }
    Ok(Run {
        cases: cases.len(),
        failures,
        rewritten: rewrite(text, &cases, &actuals),
    })
}

/// Runs the table at `path` (from the crate root) through `output`; fails the test on any
/// mismatch, or with `KSIM_REWRITE=1` writes the actual outputs into the file.
pub fn run_file(path: &str, output: impl FnMut(&Case) -> String) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    let run = run(path, &text, output).unwrap_or_else(|e| panic!("{e}"));
    assert!(run.cases > 0, "{path}: a table without cases cannot fail");
    let rewriting = std::env::var(REWRITE_ENV).is_ok_and(|v| v == "1");
    let mismatched = |f: &String| f.contains("\nexpected:\n");
    if rewriting && run.rewritten != text {
        std::fs::write(&full, &run.rewritten).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    }
    let failures: Vec<&String> = run
        .failures
        .iter()
        .filter(|f| !rewriting || !mismatched(f))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases of {path} failed (`{REWRITE_ENV}=1` rewrites expected outputs):\n\n{}",
        failures.len(),
        run.cases,
        failures
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// Lines without trailing whitespace, and no trailing empty lines.
fn normalize(output: &str) -> String {
    let lines: Vec<&str> = output.lines().map(str::trim_end).collect();
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    lines[..end].join("\n")
}

/// `command key=v key=(a, b) flag` → the command and its arguments.
fn parse_command(line: &str) -> Result<(String, Vec<Arg>), String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut depth = 0usize;
    for c in line.trim().chars() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Err("unbalanced `)`".into()),
            ')' => depth -= 1,
            _ => {}
        }
        if c.is_whitespace() && depth == 0 {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        } else {
            word.push(c);
        }
    }
    if depth > 0 {
        return Err("unbalanced `(`".into());
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut words = words.into_iter();
    let command = words.next().ok_or("empty command")?;
    let mut args: Vec<Arg> = Vec::new();
    for word in words {
        let arg = parse_arg(&word)?;
        if args.iter().any(|a| a.key == arg.key) {
            return Err(format!("`{}` given twice", arg.key));
        }
        args.push(arg);
    }
    Ok((command, args))
}

fn parse_arg(word: &str) -> Result<Arg, String> {
    let Some((key, value)) = word.split_once('=') else {
        return Ok(Arg {
            key: word.to_string(),
            values: Vec::new(),
            flag: true,
        });
    };
    if key.is_empty() {
        return Err(format!("`{word}`: an argument needs a name"));
    }
    let values = match value.strip_prefix('(') {
        Some(list) => {
            let list = list
                .strip_suffix(')')
                .ok_or_else(|| format!("`{word}`: a list ends with `)`"))?;
            if list.trim().is_empty() {
                Vec::new()
            } else {
                list.split(',').map(|v| v.trim().to_string()).collect()
            }
        }
        None => vec![value.to_string()],
    };
    Ok(Arg {
        key: key.to_string(),
        values,
        flag: false,
    })
}

/// Splits an input line into words at whitespace outside quotes, `(..)` and `{..}`:
/// `a k=(1, 2) m={x=1 y=2} s="two words"` → four words.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in line.trim().chars() {
        if quoted {
            quoted = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else {
            match c {
                '"' => quoted = true,
                '(' | '{' => depth += 1,
                ')' | '}' if depth == 0 => return Err(format!("`{line}`: unbalanced `{c}`")),
                ')' | '}' => depth -= 1,
                _ => {}
            }
            if c.is_whitespace() && depth == 0 {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
        }
        word.push(c);
    }
    if depth > 0 || quoted {
        return Err(format!("`{line}`: unclosed bracket or quote"));
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

/// `key=value` words as a JSON object, each value read by [`json`].
pub fn fields<S: AsRef<str>>(words: &[S]) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for word in words {
        let word = word.as_ref();
        let (key, value) = word
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| format!("`{word}`: expected `key=value`"))?;
        if map.insert(key.to_string(), json(value)?).is_some() {
            return Err(format!("`{key}` given twice"));
        }
    }
    Ok(map)
}

/// A value written compactly, as JSON: `(a, b)` a list (`()` empty), `{k=v k=v}` an
/// object, `a:b` the pair `[a, b]`, `"..."` a string (a JSON string literal: the way to
/// write a string holding spaces or any of `(){},:="`, or one that looks like a number),
/// an integer a number, `true`, `false`, `null`; any other word a string.
pub fn json(text: &str) -> Result<Value, String> {
    let mut reader = Reader { text, at: 0 };
    let value = reader.value()?;
    reader.skip_space();
    match reader.peek() {
        None => Ok(value),
        Some(c) => Err(reader.error(&format!("unexpected `{c}`"))),
    }
}

/// A cursor over the text of a [`json`] value.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn error(&self, message: &str) -> String {
        format!("`{}`: {message} at column {}", self.text, self.at + 1)
    }

    /// An atom, or a pair `atom:value`.
    fn value(&mut self) -> Result<Value, String> {
        let first = self.atom()?;
        if self.peek() != Some(':') {
            return Ok(first);
        }
        self.bump();
        Ok(Value::Array(vec![first, self.value()?]))
    }

    fn atom(&mut self) -> Result<Value, String> {
        self.skip_space();
        match self.peek() {
            Some('(') => {
                self.bump();
                let mut items = Vec::new();
                self.skip_space();
                if self.peek() == Some(')') {
                    self.bump();
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.skip_space();
                    match self.bump() {
                        Some(',') => continue,
                        Some(')') => return Ok(Value::Array(items)),
                        _ => return Err(self.error("expected `,` or `)` in a list")),
                    }
                }
            }
            Some('{') => {
                self.bump();
                let mut map = Map::new();
                loop {
                    self.skip_space();
                    if self.peek() == Some('}') {
                        self.bump();
                        return Ok(Value::Object(map));
                    }
                    let key = self.bare();
                    if key.is_empty() || self.bump() != Some('=') {
                        return Err(self.error("expected `key=value` in an object"));
                    }
                    let value = self.value()?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(self.error(&format!("`{key}` given twice")));
                    }
                }
            }
            Some('"') => {
                let start = self.at;
                self.bump();
                let mut escaped = false;
                loop {
                    match self.bump() {
                        None => return Err(self.error("unclosed `\"`")),
                        Some('"') if !escaped => break,
                        Some(c) => escaped = !escaped && c == '\\',
                    }
                }
                serde_json::from_str(&self.text[start..self.at])
                    .map_err(|e| self.error(&e.to_string()))
            }
            _ => {
                let word = self.bare();
                if word.is_empty() {
                    return Err(self.error("expected a value"));
                }
                Ok(scalar(&word))
            }
        }
    }

    /// Characters up to whitespace or one of `(){},:="`.
    fn bare(&mut self) -> String {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !"(){},:=\"".contains(c))
        {
            self.bump();
        }
        self.text[start..self.at].to_string()
    }
}

/// A bare word: a number, `true`, `false`, `null`, or else a string.
fn scalar(word: &str) -> Value {
    match word {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => {
            if let Ok(n) = word.parse::<i64>() {
                Value::from(n)
            } else if let Ok(n) = word.parse::<u64>() {
                Value::from(n)
            } else {
                Value::String(word.to_string())
            }
        }
    }
}

/// `text` with each case's expected lines replaced by its actual output.
fn rewrite(text: &str, cases: &[Case], actuals: &[String]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    let mut next = 0;
    for (case, actual) in cases.iter().zip(actuals) {
        out.extend(&lines[next..case.expected_lines.start]);
        out.extend(actual.lines());
        next = case.expected_lines.end;
    }
    out.extend(&lines[next..]);
    let mut rewritten = out.join("\n");
    if text.ends_with('\n') || text.is_empty() {
        rewritten.push('\n');
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
# Addition.
add a=2 b=(3, 4)
----
9

# Negation, with an input line.
neg
5
----
-5
";

    fn eval(case: &Case) -> String {
        match case.command.as_str() {
            "add" => {
                let a: i64 = case.value("a");
                let b: Vec<i64> = case.list("b");
                (a + b.iter().sum::<i64>()).to_string()
            }
            "neg" => {
                let n: i64 = case.input[0].parse().unwrap();
                (-n).to_string()
            }
            other => case.fail(format!("unknown command {other}")),
        }
    }

    #[test]
    fn a_table_whose_outputs_match_passes_and_rewrites_to_itself() {
        let run = run("table.txt", TABLE, eval).unwrap();
        assert_eq!(run.cases, 2);
        assert!(run.failures.is_empty(), "{:?}", run.failures);
        assert_eq!(run.rewritten, TABLE);
    }

    #[test]
    fn a_wrong_expectation_fails_at_its_case_with_expected_and_actual() {
        let wrong = TABLE.replace("-5", "5");
        let run = run("table.txt", &wrong, eval).unwrap();
        assert_eq!(run.failures.len(), 1, "{:?}", run.failures);
        assert_eq!(
            run.failures[0],
            "table.txt:7: neg\nexpected:\n5\nactual:\n-5"
        );
        assert_eq!(
            run.rewritten, TABLE,
            "the rewrite restores the right output"
        );
    }

    #[test]
    fn a_missing_or_longer_output_is_a_mismatch_and_the_rewrite_fills_it_in() {
        let empty = "neg\n1\n----\n\nneg\n2\n----\n-2\n-3\n";
        let run = run("t", empty, eval).unwrap();
        assert_eq!(run.failures.len(), 2, "{:?}", run.failures);
        assert!(run.failures[0].starts_with("t:1: neg\nexpected:\n\nactual:\n-1"));
        assert!(run.failures[1].starts_with("t:5: neg\nexpected:\n-2\n-3\nactual:\n-2"));
        assert_eq!(run.rewritten, "neg\n1\n----\n-1\n\nneg\n2\n----\n-2\n");
    }

    #[test]
    fn an_unread_argument_fails_the_case() {
        let typo = "add a=1 b=() c=3\n----\n1\n";
        let run = run("t", typo, eval).unwrap();
        assert_eq!(run.failures.len(), 1);
        assert!(run.failures[0].contains("unknown argument(s) [\"c\"]"));
    }

    #[test]
    fn malformed_tables_are_refused_at_their_line() {
        let cases = [
            ("add a=1\n", "t:1: the case has no `----` line"),
            ("# c\n\nadd a=(1\n----\n", "t:3: unbalanced `(`"),
            ("add a=1 a=2\n----\n", "t:1: `a` given twice"),
            ("add =1\n----\n", "t:1: `=1`: an argument needs a name"),
        ];
        for (text, error) in cases {
            assert_eq!(parse("t", text).unwrap_err(), error, "{text:?}");
        }
    }

    #[test]
    fn arguments_are_flags_values_and_lists() {
        let cases = parse("t", "cmd flag k=v l=(a, b ,c) e=()\n----\n").unwrap();
        let case = &cases[0];
        assert!(case.has("flag") && !case.has("other"));
        assert_eq!(case.value::<String>("k"), "v");
        assert_eq!(case.list::<String>("l"), ["a", "b", "c"]);
        assert!(case.list::<String>("e").is_empty());
        assert_eq!(case.optional::<String>("missing"), None);
    }

    #[test]
    fn flags_are_the_bare_words_in_order() {
        let cases = parse("t", "check b a k=() c\n----\n").unwrap();
        assert_eq!(cases[0].flags(), ["b", "a", "c"]);
        assert_eq!(cases[0].unused(), ["k"]);
    }

    #[test]
    fn input_words_keep_brackets_and_quotes_whole() {
        let line = r#"  10ms a k=(1, 2) m={x=1 y=(a b)} s="two words" "#;
        assert_eq!(
            words(line).unwrap(),
            [
                "10ms",
                "a",
                "k=(1, 2)",
                "m={x=1 y=(a b)}",
                r#"s="two words""#
            ]
        );
        assert!(words("a (b").is_err());
        assert!(words("a b)").is_err());
        assert!(words(r#"a "b"#).is_err());
    }

    #[test]
    fn compact_values_read_as_json() {
        let cases = [
            ("3", "3"),
            ("-3", "-3"),
            ("18446744073709551615", "18446744073709551615"),
            ("orders/0", r#""orders/0""#),
            (r#""7""#, r#""7""#),
            (r#""a, b:(c)""#, r#""a, b:(c)""#),
            ("true", "true"),
            ("null", "null"),
            ("()", "[]"),
            ("(1, b,(c))", r#"[1,"b",["c"]]"#),
            ("0:a", r#"[0,"a"]"#),
            ("(0:a, 1:b)", r#"[[0,"a"],[1,"b"]]"#),
            (
                "{node=b-1 effect=killed}",
                r#"{"effect":"killed","node":"b-1"}"#,
            ),
            ("({x=(1,2)})", r#"[{"x":[1,2]}]"#),
            ("{}", "{}"),
        ];
        for (text, expected) in cases {
            assert_eq!(json(text).unwrap().to_string(), expected, "{text}");
        }
        for bad in ["", "(1", "(1 2)", "{x}", "{x=1 x=2}", "a)", r#""a"#] {
            assert!(json(bad).is_err(), "{bad}");
        }
        let object = fields(&["a=1", "b=(x)"]).unwrap();
        assert_eq!(Value::Object(object).to_string(), r#"{"a":1,"b":["x"]}"#);
        assert!(fields(&["a"]).is_err());
        assert!(fields(&["a=1", "a=2"]).is_err());
    }

    #[test]
    #[should_panic(expected = "t:1: cmd k=x: `k=x`: invalid digit")]
    fn a_bad_value_panics_at_its_case() {
        let cases = parse("t", "cmd k=x\n----\n").unwrap();
        cases[0].value::<u32>("k");
    }
}
