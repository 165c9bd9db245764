"""The strict C JSON parser (csrc/io/json.c) through _C._json_loads, checked against Python's json."""
import json
import random

import pytest

from io_testutil import _C

VALID = [
    b'{}', b'[]', b'0', b'-0', b'1.5', b'-2.5e-3', b'1E+2', b'"x"', b'true', b'false', b'null',
    b' \t\r\n{"a" : [1, 2, {"b": null}], "c": "d"} \n',
    b'"\\"\\\\\\/\\b\\f\\n\\r\\t"',
    b'"\\u0041\\u00e9\\u20ac\\ud83d\\ude00"',            # BMP escapes and a surrogate pair
    '"\u00e9\u20ac\U0001F600 raw utf-8"'.encode(),      # raw multi-byte UTF-8
    b'"nul\\u0000inside"',
    b'{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}',
    b'[9223372036854775807, -9223372036854775808, 123456789012]',
    b'[1e308, 2.2250738585072014e-308, 0.1, 5e-324]',
    b'{"": 1, "a\\u0000b": 2}',
]

INVALID = [
    b'', b' ', b'{', b'}', b'[1,]', b'{"a":1,}', b'[1 2]', b'{"a" 1}', b'{a:1}', b"{'a':1}",
    b'01', b'-', b'1.', b'.5', b'1e', b'+1', b'0x10', b'NaN', b'Infinity', b'1e400',
    b'tru', b'nul', b'True', b'"abc', b'"\\x"', b'"\\u12"', b'"\\u12G4"', b'"\\ud800"', b'"\\udc00"',
    b'"\\ud800\\u0041"', b'"a\nb"', b'"\x01"', b'"\xff"', b'"\xc0\x80"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"',
    b'[1] x', b'{"a":1}{}', b'\xef\xbb\xbf{}', b'{"a":1,"a":2}', b'//c\n{}', b'"\\',
]


@pytest.mark.parametrize("doc", VALID)
def test_valid_documents_match_python_json(doc):
    assert _C._json_loads(doc) == json.loads(doc)


@pytest.mark.parametrize("doc", INVALID)
def test_invalid_documents_raise_with_position(doc):
    with pytest.raises(ValueError, match="JSON"):
        _C._json_loads(doc)


def test_surrogate_pair_becomes_4_byte_utf8():
    s = _C._json_loads(b'"\\ud83d\\ude00"')
    assert s == "\U0001F600" and s.encode() == b"\xf0\x9f\x98\x80"


def test_integers_are_exact_int64_and_others_float():
    big = _C._json_loads(b"[9007199254740993, 9223372036854775808, 2.0, 1e3]")
    assert big[0] == 9007199254740993 and type(big[0]) is int        # not representable as a double
    assert type(big[1]) is float and type(big[2]) is float and type(big[3]) is float


def test_depth_limit():
    ok = b"[" * 64 + b"]" * 64
    assert _C._json_loads(ok) is not None
    with pytest.raises(ValueError, match="nesting too deep"):
        _C._json_loads(b"[" * 65 + b"]" * 65)
    with pytest.raises(ValueError, match="nesting too deep"):
        _C._json_loads(b'{"a":{"b":{}}}', 2)
    # Deep input far beyond the hard cap is refused without recursing into it.
    with pytest.raises(ValueError):
        _C._json_loads(b"[" * 100000, 100000)


def test_duplicate_keys_refused_by_name():
    with pytest.raises(ValueError, match='duplicate key "w"'):
        _C._json_loads(b'{"w": 1, "v": 2, "w": 3}')


def test_mutations_never_accept_what_python_rejects():
    """Random byte edits of a header-like document: whenever the C parser accepts the result,
    Python's json accepts it too and yields the same value (the C parser is strictly stricter)."""
    rng = random.Random(1234)
    base = bytearray(b'{"__metadata__":{"format":"pt"},"a.b":{"dtype":"F32","shape":[2,3],'
                     b'"data_offsets":[0,24]},"c":[true,false,null,-1.5e2,"\\u00e9"]}')
    alphabet = b'{}[]",:.-+eE0123456789\\u tfn\x00\xff'
    accepted = 0
    for _ in range(3000):
        doc = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(doc))
            op = rng.random()
            if op < 0.4:
                doc[pos] = rng.choice(alphabet)
            elif op < 0.7:
                del doc[pos]
            else:
                doc.insert(pos, rng.choice(alphabet))
        try:
            ours = _C._json_loads(bytes(doc))
        except ValueError:
            continue
        accepted += 1
        assert ours == json.loads(bytes(doc))
    assert accepted > 50  # the mutations did produce valid documents to compare
