//! Random patterns of the supported grammar, values to try them on, and exhaustive small
//! languages, for the differential tests.
//!
//! Why a syntax tree and not random text: random text is almost never a valid pattern, and the
//! tree can also make values that (nearly) match it, so that both answers get compared often.

/// xorshift64*: deterministic, so a failure names its seed and pattern.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() >> 33).unwrap() % n.max(1)
    }

    pub(super) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Characters values are made of, and literals of patterns.
const ALPHABET: &[char] = &[
    'a', 'b', 'c', 'k', 's', 'z', 'A', 'B', 'K', 'S', 'Z', '0', '9', '_', '-', '/', '.', ' ', '\n',
    '\t', 'é', 'É', 'ß', 'ſ', '\u{212A}', '😀', '[', ']', '^', '&', '~', ':', '\\',
];

/// Escapes and other atoms outside classes, with a value each matches ("" for assertions).
const ATOMS: &[(&str, &str)] = &[
    (r"\.", "."),
    (r"\/", "/"),
    (r"\\", "\\"),
    (r"\t", "\t"),
    (r"\n", "\n"),
    (r"\x41", "A"),
    (r"\x{e9}", "é"),
    (r"\u0062", "b"),
    (r"\U0001F600", "😀"),
    (r"\-", "-"),
    (r"\ ", " "),
    (r"\#", "#"),
    (r"\d", "7"),
    (r"\D", "x"),
    (r"\w", "_"),
    (r"\W", "é"),
    (r"\s", " "),
    (r"\S", "ß"),
    (".", "a"),
    ("^", ""),
    ("$", ""),
    (r"\A", ""),
    (r"\z", ""),
    (r"\b", ""),
    (r"\B", ""),
    (r"\<", ""),
    (r"\>", ""),
    (r"\b{start}", ""),
    (r"\b{end}", ""),
    (r"\b{start-half}", ""),
    (r"\b{end-half}", ""),
];

/// Items of a bracketed class, with a character each contains.
const CLASS_ITEMS: &[(&str, char)] = &[
    ("a", 'a'),
    ("z", 'z'),
    ("K", 'K'),
    ("0", '0'),
    ("_", '_'),
    ("é", 'é'),
    ("😀", '😀'),
    ("a-c", 'b'),
    ("A-Z", 'Q'),
    ("0-9", '5'),
    ("M-c", '_'),
    ("Z-a", '^'),
    ("y-~", '{'),
    ("é-ü", 'ö'),
    (r"\x00-\x7F", 'q'),
    (r"\-", '-'),
    (r"\]", ']'),
    (r"\[", '['),
    (r"\\", '\\'),
    (r"\^", '^'),
    (r"\n", '\n'),
    (r"\d", '3'),
    (r"\W", '-'),
    (r"\s", ' '),
    (r"\S", 'é'),
    ("[:alpha:]", 'x'),
    ("[:^digit:]", 'y'),
    ("[:upper:]", 'U'),
    ("[:punct:]", '!'),
    ("[:xdigit:]", 'f'),
    ("[:space:]", '\t'),
    ("&", '&'),
    ("~", '~'),
    (".", '.'),
];

const GROUPS: &[&str] = &[
    "(", "(?:", "(?i:", "(?-i:", "(?s:", "(?m:", "(?U:", "(?is:", "(?i-s:",
];
const FLAG_DIRECTIVES: &[&str] = &["(?i)", "(?-i)", "(?s)", "(?m)", "(?U)", "(?i-m)", "(?u)"];
const REPEATS: &[(&str, usize, usize)] = &[
    ("*", 0, 3),
    ("+", 1, 3),
    ("?", 0, 1),
    ("{2}", 2, 2),
    ("{0}", 0, 0),
    ("{1,}", 1, 3),
    ("{0,2}", 0, 2),
    ("{1,3}", 1, 3),
    ("{ 2 , 3 }", 2, 3),
];

/// A random pattern: printed as text, and able to make a value it (probably) matches.
pub(super) enum Gen {
    Literal(char),
    Atom(&'static str, &'static str),
    Class(String, Vec<char>),
    Group(String, Box<Gen>),
    Flags(&'static str),
    Concat(Vec<Gen>),
    Alt(Vec<Gen>),
    Repeat(Box<Gen>, String, usize, usize),
}

pub(super) fn generate(rng: &mut Rng, depth: usize, names: &mut usize) -> Gen {
    let leaf = depth == 0 || rng.chance(35);
    match rng.below(if leaf { 4 } else { 8 }) {
        0 | 1 => Gen::Literal(rng.pick(ALPHABET)),
        2 => {
            let (text, sample) = rng.pick(ATOMS);
            Gen::Atom(text, sample)
        }
        3 => class(rng),
        4 => {
            let opener = if rng.chance(15) {
                *names += 1;
                format!("(?{}<g{names}>", if rng.chance(50) { "P" } else { "" })
            } else {
                rng.pick(GROUPS).to_string()
            };
            Gen::Group(opener, Box::new(generate(rng, depth - 1, names)))
        }
        5 => Gen::Concat(
            (0..1 + rng.below(4))
                .map(|_| {
                    if rng.chance(8) {
                        Gen::Flags(rng.pick(FLAG_DIRECTIVES))
                    } else {
                        generate(rng, depth - 1, names)
                    }
                })
                .collect(),
        ),
        6 => Gen::Alt(
            (0..2 + rng.below(3))
                .map(|_| generate(rng, depth - 1, names))
                .collect(),
        ),
        _ => {
            let (op, min, max) = rng.pick(REPEATS);
            let lazy = if rng.chance(20) { "?" } else { "" };
            let inner = generate(rng, depth - 1, names);
            // A repetition needs an expression before it: group what could be several atoms.
            let inner = match inner {
                Gen::Concat(_) | Gen::Alt(_) | Gen::Flags(_) => {
                    Gen::Group("(?:".into(), Box::new(inner))
                }
                other => other,
            };
            Gen::Repeat(Box::new(inner), format!("{op}{lazy}"), min, max)
        }
    }
}

fn class(rng: &mut Rng) -> Gen {
    let negated = rng.chance(25);
    let mut text = String::from(if negated { "[^" } else { "[" });
    let mut samples = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let (item, sample) = rng.pick(CLASS_ITEMS);
        text.push_str(item);
        samples.push(sample);
    }
    text.push(']');
    if negated {
        samples = vec![rng.pick(ALPHABET)];
    }
    Gen::Class(text, samples)
}

impl Gen {
    pub(super) fn print(&self, out: &mut String) {
        match self {
            Gen::Literal(c) => {
                if "\\.+*?()|[]{}^$".contains(*c) {
                    out.push('\\');
                }
                out.push(*c);
            }
            Gen::Atom(text, _) | Gen::Flags(text) => out.push_str(text),
            Gen::Class(text, _) => out.push_str(text),
            Gen::Group(opener, inner) => {
                out.push_str(opener);
                inner.print(out);
                out.push(')');
            }
            Gen::Concat(items) => items.iter().for_each(|item| item.print(out)),
            Gen::Alt(branches) => {
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    branch.print(out);
                }
            }
            Gen::Repeat(inner, op, _, _) => {
                inner.print(out);
                out.push_str(op);
            }
        }
    }

    fn sample(&self, rng: &mut Rng, out: &mut String) {
        match self {
            Gen::Literal(c) if rng.chance(20) => {
                out.extend(c.to_uppercase().chain(c.to_lowercase()).take(1))
            }
            Gen::Literal(c) => out.push(*c),
            Gen::Atom(_, sample) => out.push_str(sample),
            Gen::Class(_, samples) => out.push(rng.pick(samples)),
            Gen::Group(_, inner) => inner.sample(rng, out),
            Gen::Flags(_) => {}
            Gen::Concat(items) => items.iter().for_each(|item| item.sample(rng, out)),
            Gen::Alt(branches) => branches[rng.below(branches.len())].sample(rng, out),
            Gen::Repeat(inner, _, min, max) => {
                for _ in 0..min + rng.below(max - min + 1) {
                    inner.sample(rng, out);
                }
            }
        }
    }
}

/// Values to try a pattern on: samples it should match, near misses, and random strings.
pub(super) fn values(rng: &mut Rng, gen: &Gen) -> Vec<String> {
    let mut values = vec![String::new()];
    for _ in 0..8 {
        let mut sample = String::new();
        gen.sample(rng, &mut sample);
        let mut chars: Vec<char> = sample.chars().collect();
        values.push(sample);
        if !chars.is_empty() {
            let at = rng.below(chars.len());
            match rng.below(3) {
                0 => {
                    chars.remove(at);
                }
                1 => chars.insert(at, rng.pick(ALPHABET)),
                _ => chars[at] = rng.pick(ALPHABET),
            }
            values.push(chars.into_iter().collect());
        }
    }
    for _ in 0..8 {
        let len = rng.below(7);
        values.push((0..len).map(|_| rng.pick(ALPHABET)).collect());
    }
    values
}

/// Every string of up to `len` pieces from `alphabet`, between `before` and `after`.
pub(super) fn enumerate(alphabet: &[&str], len: usize, before: &str, after: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..len {
        layer = layer
            .iter()
            .flat_map(|s| alphabet.iter().map(move |piece| format!("{s}{piece}")))
            .collect();
        out.extend(layer.iter().cloned());
    }
    out.into_iter()
        .map(|s| format!("{before}{s}{after}"))
        .collect()
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
