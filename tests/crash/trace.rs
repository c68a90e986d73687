//! Reads the output of `strace -f -xx -y -o FILE` into whole system calls.
//!
//! Each line is `PID NAME(ARGS) = RET`. With `-f` a call interrupted by
//! another thread's line is split into `PID NAME(ARGS <unfinished ...>`
//! and, later, `PID <... NAME resumed>REST`; the two halves are joined and
//! the call keeps both line numbers: where it started (`entry`) and where
//! it returned (`exit`). With `-xx` every string byte is `\xNN`, so strings
//! hold no quote, comma or parenthesis; `-y` adds `<PATH>` after each fd.

use std::collections::HashMap;

/// One system call that returned (or ended with the process).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub tid: u32,
    pub name: String,
    /// The top-level arguments, as strace printed them.
    pub args: Vec<String>,
    pub ret: Ret,
    /// 1-based line numbers where the call started and where it returned.
    pub entry: u32,
    pub exit: u32,
}

/// What a call returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Ret {
    /// A non-negative result, with its `-y` annotation if it is an fd.
    Ok(i64, Option<Vec<u8>>),
    /// `-1 ERRNO (...)`: the errno's name.
    Err(String),
    /// `?`: the call never returned (the process ended first).
    Unknown,
}

impl Ret {
    /// The result if the call succeeded.
    pub fn ok(&self) -> Option<i64> {
        match self {
            Ret::Ok(n, _) => Some(*n),
            _ => None,
        }
    }
}

/// Parses a whole trace; a line it cannot read is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Call>, String> {
    let mut calls = Vec::new();
    // tid -> (entry line, text up to `<unfinished ...>`)
    let mut pending: HashMap<u32, (u32, String)> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i as u32 + 1;
        let (tid, body) = split_tid(raw);
        let body = body.trim_end();
        if let Some(signal) = body.strip_prefix("--- ") {
            // A signal delivered: a pseudo call named `signal`.
            let name = signal.split_whitespace().next().unwrap_or("?").to_string();
            let (args, ret) = (vec![name], Ret::Ok(0, None));
            let (name, entry, exit) = ("signal".to_string(), line_no, line_no);
            calls.push(Call {
                tid,
                name,
                args,
                ret,
                entry,
                exit,
            });
            continue;
        }
        if body.is_empty() || body.starts_with("+++") {
            continue; // exits
        }
        let (entry, joined) = if let Some(rest) = body.strip_prefix("<... ") {
            let Some(at) = rest.find(" resumed>") else {
                return Err(format!("line {line_no}: unreadable resumption: {raw}"));
            };
            let Some((entry, head)) = pending.remove(&tid) else {
                return Err(format!(
                    "line {line_no}: resumed a call never started: {raw}"
                ));
            };
            (entry, format!("{head}{}", &rest[at + " resumed>".len()..]))
        } else {
            (line_no, body.to_string())
        };
        if let Some(head) = joined.strip_suffix("<unfinished ...>") {
            pending.insert(tid, (entry, head.trim_end().to_string()));
            continue;
        }
        let call = parse_call(&joined, tid, entry, line_no)
            .map_err(|e| format!("line {line_no}: {e}: {raw}"))?;
        calls.push(call);
    }
    Ok(calls)
}

/// `1234 rest` -> (1234, rest); a line without a pid has tid 0.
fn split_tid(line: &str) -> (u32, &str) {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && line.as_bytes().get(digits) == Some(&b' ') {
        let tid = line[..digits].parse().expect("digits");
        return (tid, line[digits..].trim_start());
    }
    (0, line)
}

/// Parses `NAME(ARGS) = RET`.
fn parse_call(text: &str, tid: u32, entry: u32, exit: u32) -> Result<Call, String> {
    let open = text.find('(').ok_or("no argument list")?;
    let name = text[..open].to_string();
    let close = matching_paren(text, open).ok_or("unbalanced argument list")?;
    let args = split_args(&text[open + 1..close]);
    let rest = text[close + 1..].trim_start();
    let ret = rest.strip_prefix('=').ok_or("no return value")?.trim();
    Ok(Call {
        tid,
        name,
        args,
        ret: parse_ret(ret)?,
        entry,
        exit,
    })
}

/// Calls `f(index, char)` for every character outside strings and `-y`
/// annotations (`<...>` right after an fd number), in order; stops when
/// `f` returns false.
fn structural(text: &str, mut f: impl FnMut(usize, char) -> bool) {
    let (mut in_str, mut escaped, mut in_annotation) = (false, false, false);
    let mut prev = ' ';
    for (i, c) in text.char_indices() {
        let before = std::mem::replace(&mut prev, c);
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
        } else if in_annotation {
            in_annotation = c != '>';
        } else if c == '"' {
            in_str = true;
        } else if c == '<' && (before.is_ascii_digit() || before == 'D') {
            in_annotation = true;
        } else if !f(i, c) {
            return;
        }
    }
}

/// The index of the `)` closing the `(` at `open`.
fn matching_paren(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0i32;
    let mut found = None;
    structural(&text[open..], |i, c| {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    found = (c == ')').then_some(open + i);
                    return false;
                }
            }
            _ => {}
        }
        true
    });
    found
}

/// Splits an argument list at top-level commas.
pub fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    structural(text, |i, c| {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                args.push(text[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
        true
    });
    let last = text[start..].trim();
    if !last.is_empty() || !args.is_empty() {
        args.push(last.to_string());
    }
    args
}

fn parse_ret(text: &str) -> Result<Ret, String> {
    if text.starts_with('?') {
        return Ok(Ret::Unknown);
    }
    if let Some(rest) = text.strip_prefix("-1 ") {
        let errno = rest.split_whitespace().next().unwrap_or("").to_string();
        return Ok(Ret::Err(errno));
    }
    let end = text
        .find(|c: char| !(c.is_ascii_hexdigit() || c == 'x' || c == '-'))
        .unwrap_or(text.len());
    let num = &text[..end];
    let value = match num.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).map_err(|e| format!("return {num:?}: {e}"))?,
        None => num.parse().map_err(|e| format!("return {num:?}: {e}"))?,
    };
    let annotation = text[end..]
        .strip_prefix('<')
        .and_then(|a| a.rfind('>').map(|close| decode_escaped(&a[..close])));
    Ok(Ret::Ok(value, annotation))
}

/// An fd argument (`11`, `11<PATH>`, `AT_FDCWD<PATH>`): number (`AT_FDCWD`
/// is -100) and the decoded annotation.
pub fn fd_arg(arg: &str) -> Option<(i32, Option<Vec<u8>>)> {
    let (num, annotation) = match arg.find('<') {
        Some(at) if arg.ends_with('>') => (
            &arg[..at],
            Some(decode_escaped(&arg[at + 1..arg.len() - 1])),
        ),
        _ => (arg, None),
    };
    let fd = if num == "AT_FDCWD" {
        -100
    } else {
        num.parse().ok()?
    };
    Some((fd, annotation))
}

/// Every quoted string in `arg`, decoded and concatenated (an iovec array
/// prints one per buffer).
pub fn strings_in(arg: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find('"') {
        let body = &rest[start + 1..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        out.extend(decode_escaped(&body[..end]));
        rest = &body[end + 1..];
    }
    out
}

/// The bytes of one quoted string argument, or `None` if it is not one.
pub fn string_arg(arg: &str) -> Option<Vec<u8>> {
    let body = arg.strip_prefix('"')?;
    let body = body.strip_suffix("...").unwrap_or(body);
    Some(decode_escaped(body.strip_suffix('"')?))
}

/// Decodes strace's C-style escapes (`\xNN`, `\NNN`, `\n`, `\"`, ...).
pub fn decode_escaped(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4 + 1);
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        let byte = match c {
            b'x' => {
                let hex = std::str::from_utf8(&b[i..(i + 2).min(b.len())]).unwrap_or("");
                i += hex.len();
                u8::from_str_radix(hex, 16).unwrap_or(0)
            }
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                let mut n = 1;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + (b[i] - b'0') as u32;
                    i += 1;
                    n += 1;
                }
                v as u8
            }
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'v' => 0x0b,
            b'f' => 0x0c,
            other => other,
        };
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests;
