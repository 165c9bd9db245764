"""Shared by the tokenizer tests: where the GPT-2 vocabulary is, and the text corpus."""
import os
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
try:
    import visionc  # noqa: F401
except ImportError:  # a source checkout with an in-place build
    sys.path.insert(0, str(ROOT / "python"))


def gpt2_dir():
    """The real GPT-2 tokenizer files (shared/weights/gpt2-tokenizer), or skip."""
    candidates = [os.environ.get("VISIONC_SHARED", ""), ROOT / "shared", ROOT.parent / "shared",
                  ROOT.parent.parent / "shared"]
    for c in candidates:
        d = Path(c) / "weights" / "gpt2-tokenizer" if c else None
        if d and (d / "vocab.json").is_file() and (d / "merges.txt").is_file():
            return d
    pytest.skip("shared/weights/gpt2-tokenizer not found (set VISIONC_SHARED)")


# Hand-written cases, one family per line group: every rule of the pre-tokenizer pattern,
# the scripts the captioner may meet, and the awkward corners.
CORPUS = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "a", "A", "Hello world", " Hello world",
    "Hello world ", "  Hello   world  ", "a dog sitting on a couch next to a cat",
    "A man riding a wave on top of a surfboard.", "two giraffes standing in a grassy field",
    # contractions, and the cases that are not contractions
    "it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "They'Re", "I'M",
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'x", "'", "''", "'''s", " 's", "rock 'n' roll",
    "o'clock", "'sup", "'llama", "'dd", "ma'am", "Jones' car", "the '90s", "l'homme", "‘quoted’", "it’s",
    # whitespace runs: \s+(?!\S) leaves the last space for the next word
    "a  b", "a   b", "a \tb", "a\t\tb", "a\n\nb", "a \n b", "a\u00a0b", "a\u00a0\u00a0b", "a \u00a0b",
    "a\u3000b", "a\u2028b", "a\u2029b", "a\x85b", "a\u1680b", "a\u2003\u2009b", "a\u202f\u205fb",
    "a\x1cb\x1dc\x1ed\x1fe", "a\x0bb\x0cc", "trailing   ", "   leading", "\n\n\nparagraph\n\n", " \t \n ",
    "line1\nline2\r\nline3\rline4", "    indented code", "\t\tdef f():\n\t\t\treturn 1\n",
    # numbers
    "0", "12", "123", "1234567890", "3.14159", "1,000,000", "-42", "+1", "1e10", "0x1F", "2023-01-01",
    "٣٤٥", "१२३", "४५६ रुपये", "½ cup", "x² + y³", "①②③", "Ⅻ", "१०००", "10km", "a1b2c3", " 42", "  42",
    # punctuation runs
    "Hello, world!", "Wait... what?!", "!!!", "???", "...", "--", "---", "(a)", "[b]", "{c}", "a.b.c",
    "#hashtag", "@mention", "$100", "100%", "a&b", "a*b", "a/b", "a\\b", "~~~", "`code`", "```", "<html>",
    " !", " ...", "«Bonjour»", "¿Qué?", "¡Hola!", "“quotes”", "—dash—", "•bullet", "§1", "©2024", "™",
    "e.g.", "i.e.,", "U.S.A.", "Mr. Smith", "etc...", "a,b;c:d", "?!?!", "<>", "</s>", "<unk>", "[CLS]",
    # code
    "def f(x):\n    return x ** 2\n", "int main() { return 0; }", "for (i = 0; i < n; i++) {}",
    "x = {'a': 1, \"b\": [2, 3]}", "if a != b and c >= d:", "std::vector<int> v;", "SELECT * FROM t;",
    "https://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Users\\me\\file.txt", "$ ls -la | grep x",
    "λx.x", "a->b", "a=>b", "a::b", "a__b", "__init__", "camelCaseWord", "snake_case_word", "UPPER_CASE",
    # accented Latin, combining marks
    "café", "naïve", "résumé", "Ångström", "Müller", "straße", "Œuvre", "façade", "jalapeño", "Dvořák",
    "e\u0301", "cafe\u0301", "n\u0303", "a\u0308\u0301", "\u0301", " \u0301", "\u0301a", "Z\u0351\u0352\u0353",
    "Ǆ ǅ ǆ", "ﬁ ﬂ", "Ⓐ", "ℌ𝔢𝔩𝔩𝔬", "𝐁𝐨𝐥𝐝", "ｆｕｌｌｗｉｄｔｈ", "ｱｲｳ",
    # Greek, Cyrillic, Armenian, Georgian, Hebrew, Arabic, Indic, Thai
    "Καλημέρα κόσμε", "ΑΒΓ αβγ", "Привет, мир!", "Съешь же ещё этих мягких французских булок",
    "Բարեւ", "გამარჯობა", "שלום עולם", "مرحبا بالعالم", "السلام عليكم ورحمة الله", "سلام دنیا",
    "नमस्ते दुनिया", "வணக்கம்", "สวัสดีชาวโลก", "ສະບາຍດີ", "བོད་ཡིག", "ᚠᚢᚦᚨᚱᚲ",
    # CJK and friends
    "日本語のテキスト", "東京は日本の首都です。", "你好，世界！", "中文字符和English混合", "한국어 텍스트", "안녕하세요",
    "カタカナとひらがな", "漢字", "「引用」", "〜", "𠀀𠀁", "龍", "一二三",
    # emoji: modifiers, ZWJ sequences, flags, keycaps, variation selectors
    "😀", "😀😀😀", "👍🏽", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🇫🇷", "🇺🇸🇬🇧🇯🇵", "🇺", "1️⃣", "#️⃣", "❤️", "❤", "☺︎",
    "I ❤️ NY", "smile 😀 now", " 😀", "😀 ", "a😀b", "🧑‍🤝‍🧑", "🐈‍⬛", "🫠", "🫶🏻",
    # special token inside text, and near-misses
    "<|endoftext|>", "a<|endoftext|>b", "Hello <|endoftext|> world", "<|endoftext|><|endoftext|>",
    " <|endoftext|> ", "<|endoftext|", "|endoftext|>", "<|ENDOFTEXT|>", "<|endoftext|>\n<|endoftext|>x",
    "<<|endoftext|>>", "<|endof<|endoftext|>text|>",
    # controls, odd code points
    "\x00", "a\x00b", "\x07\x08", "\x7f", "\u200b", "a\u200bb", "\u200e\u200f", "\ufeff", "\ufffd", "\uffff",
    "\U0010ffff", "\ue000", "\U000f0000", "\u2060", "\u00ad", "soft\u00adhyphen",
    # Unicode 15/16 code points (the reference's regex engine uses Unicode 16.0 tables)
    "a\U0001e030b", "\u1c89\u1c8a", "x\U000105c0y", "\U00031350", "\U0001e4d0\U0001e4d1", "\U00011f00",
    # long inputs
    "a" * 1000, "ab" * 500, " " * 300, "\n" * 200, "word " * 200, "😀" * 100, "1" * 300, "!" * 300,
    "The quick brown fox jumps over the lazy dog. " * 40,
]

SHORT = [s for s in CORPUS if len(s) < 60]

# Character pools for random strings, weighted towards what interacts with the pattern.
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n\r",
    "\x0b\x0c\x85\xa0\u1680\u2000\u2007\u2028\u2029\u202f\u205f\u3000\x1c\x1d\x1e\x1f\u200b",
    "'sStTmMdDrRvVlLeE", "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~", "éèêàçñöüßøåÆŒŁłŞ", "αβγδεζηθΑΒΓΩ",
    "абвгдеёжзАБВЯ", "日本語中文字漢東京", "한국어텍스트", "ひらがなカタカナ", "مرحبابالعالم", "नमस्तेदुनिया",
    "\u0301\u0308\u0327\u20dd\u0903\u093f", "\u200d\u200c\ufe0f\ufe0e", "😀👍🏽👨👩👧🐈⬛", "🇫🇷🇺🇸🇯🇵",
    "½²³¼①Ⅻ٣৩१", "\x00\x01\x7f\u00ad\ufeff\ufffd", "\U0001e030\u1c89\U000105c0\U0001d518\U00020000",
]


def random_strings(count, seed, max_len=40):
    """Seeded random strings mixing the pools, whole <|endoftext|> tokens and arbitrary code points."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, max_len)):
            r = rng.random()
            if r < 0.04:
                c = rng.randrange(0x110000)
                parts.append(chr(c) if not 0xD800 <= c < 0xE000 else "?")
            elif r < 0.07:
                parts.append("<|endoftext|>")
            elif r < 0.10:
                parts.append(rng.choice(SHORT))
            else:
                parts.append(rng.choice(rng.choice(POOLS)))
        out.append("".join(parts))
    return out
