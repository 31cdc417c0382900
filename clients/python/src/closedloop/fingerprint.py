"""Privacy-preserving query fingerprints (the ``mh64v3`` scheme of closedloop-tracing).

The text is lowercased and stripped of punctuation; common phrasal verbs and help-desk
synonyms become one canonical word; words are lightly stemmed and cleared of stopwords. 32
one-byte slots are MinHash minima over the canonical words and 96 over their character
trigrams; two leading bytes carry how many distinct words and trigrams there were (capped at
255). Then one byte per contrast mark: each side of a pair of opposite actions or settings
("enable" / "disable") that the query's words include, ascending. The value, as carried in
``closedloop.query.fingerprint``, is ``mh64v3:`` followed by 260 lowercase hex digits and two
per mark, or ``mh64v3:`` alone for a query with no words left.

Only generation lives here: the receiver compares fingerprints. The fingerprint does not
contain the text, but it is unkeyed: someone who can guess a query can test it against one,
and the marks say which words of the public list of opposite actions the query uses.
"""

from __future__ import annotations

import bisect
from typing import Callable, Dict, List, Optional, Set, Tuple

__all__ = ["fingerprint"]

_MASK = (1 << 64) - 1
_WORD_SLOTS = 32
_CHAR_SLOTS = 96
_SLOTS = _WORD_SLOTS + _CHAR_SLOTS
_SCHEME = "mh64v3"

_STOPWORDS = frozenset(
    (
        "a",
        "about",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "doe",
        "does",
        "for",
        "from",
        "get",
        "got",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "let",
        "me",
        "my",
        "need",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "please",
        "she",
        "should",
        "so",
        "some",
        "tell",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "u",
        "up",
        "us",
        "wa",
        "want",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    )
)

# Opposite actions and settings: side ``s`` of pair ``i`` is contrast mark ``2 i + s``,
# matched on the words as written (lowercased) or a phrase's canonical word.
_CONTRASTS: Tuple[Tuple[Tuple[str, ...], Tuple[str, ...]], ...] = (
    (("enable", "enables", "activate", "activates"), ("disable", "disables", "deactivate", "deactivates")),
    (("add", "adds"), ("remove", "removes")),
    (("import", "imports"), ("export", "exports")),
    (("upload", "uploads"), ("download", "downloads")),
    (("lock", "locks"), ("unlock", "unlocks")),
    (("freeze", "freezes"), ("unfreeze", "unfreezes")),
    (("block", "blocks"), ("unblock", "unblocks")),
    (("mute", "mutes"), ("unmute", "unmutes")),
    (("pin", "pins"), ("unpin", "unpins")),
    (("archive", "archives"), ("unarchive", "unarchives")),
    (("hide", "hides"), ("unhide", "unhides")),
    (("hide", "hides"), ("show", "shows")),
    (("follow", "follows"), ("unfollow", "unfollows")),
    (("subscribe", "subscribes"), ("unsubscribe", "unsubscribes")),
    (("install", "installs"), ("uninstall", "uninstalls")),
    (("connect", "connects"), ("disconnect", "disconnects")),
    (("link", "links"), ("unlink", "unlinks")),
    (("pair", "pairs"), ("unpair", "unpairs")),
    (("assign", "assigns"), ("unassign", "unassigns")),
    (("share", "shares"), ("unshare", "unshares")),
    (("publish", "publishes"), ("unpublish", "unpublishes")),
    (("approve", "approves"), ("reject", "rejects")),
    (("accept", "accepts"), ("reject", "rejects")),
    (("accept", "accepts"), ("decline", "declines")),
    (("allow", "allows"), ("block", "blocks")),
    (("upgrade", "upgrades"), ("downgrade", "downgrades")),
    (("increase", "increases"), ("decrease", "decreases")),
    (("start", "starts"), ("stop", "stops")),
    (("pause", "pauses"), ("resume", "resumes")),
    (("send", "sends"), ("receive", "receives")),
    (("login",), ("logout",)),
    (("encrypt", "encrypts"), ("decrypt", "decrypts")),
    (("join", "joins"), ("leave", "leaves")),
    (("include", "includes"), ("exclude", "excludes")),
    (("undo",), ("redo",)),
    (("public",), ("private",)),
    (("incoming",), ("outgoing",)),
    (("inbound",), ("outbound",)),
    (("maximum",), ("minimum",)),
    (("expand", "expands"), ("collapse", "collapses")),
)

_PHRASES: Tuple[Tuple[Tuple[str, ...], str], ...] = (
    (("turn", "on"), "enable"),
    (("switch", "on"), "enable"),
    (("turn", "off"), "disable"),
    (("switch", "off"), "disable"),
    (("set", "up"), "configure"),
    (("log", "in"), "login"),
    (("sign", "in"), "login"),
    (("log", "on"), "login"),
    (("log", "out"), "logout"),
    (("sign", "out"), "logout"),
    (("sign", "up"), "signup"),
    (("get", "back"), "restore"),
    (("send", "back"), "return"),
    (("money", "back"), "refund"),
    (("two", "factor"), "2fa"),
    (("two", "step"), "2fa"),
    (("multi", "factor"), "2fa"),
    (("single", "sign", "on"), "sso"),
    (("time", "off"), "vacation"),
    (("annual", "leave"), "vacation"),
    (("customer", "support"), "support"),
    (("customer", "service"), "support"),
    (("help", "desk"), "support"),
    (("not", "working"), "broken"),
    (("doesnt", "work"), "broken"),
    (("isnt", "working"), "broken"),
    (("wont", "work"), "broken"),
    (("stopped", "working"), "broken"),
    (("wi", "fi"), "wifi"),
    (("e", "mail"), "email"),
)

_SYNONYMS: Dict[str, str] = {
    "update": "change",
    "modify": "change",
    "edit": "change",
    "alter": "change",
    "reset": "change",
    "terminate": "cancel",
    "discontinue": "cancel",
    "end": "cancel",
    "remove": "delete",
    "erase": "delete",
    "invite": "add",
    "generate": "create",
    "make": "create",
    "member": "user",
    "teammate": "user",
    "colleague": "user",
    "person": "user",
    "someone": "user",
    "people": "user",
    "reject": "decline",
    "refuse": "decline",
    "deny": "decline",
    "shipping": "ship",
    "shipment": "ship",
    "delivery": "ship",
    "deliver": "ship",
    "dispatch": "ship",
    "package": "order",
    "parcel": "order",
    "purchase": "order",
    "bought": "order",
    "buy": "order",
    "receive": "arrive",
    "setup": "configure",
    "download": "export",
    "recover": "restore",
    "undelete": "restore",
    "retrieve": "restore",
    "reserve": "book",
    "wireless": "wifi",
    "computer": "laptop",
    "pc": "laptop",
    "notebook": "laptop",
    "sluggish": "slow",
    "laggy": "slow",
    "pto": "vacation",
    "holiday": "vacation",
    "mobile": "phone",
    "smartphone": "phone",
    "cellphone": "phone",
    "contest": "dispute",
    "product": "item",
    "article": "item",
    "payment": "pay",
    "paid": "pay",
    "price": "cost",
    "pricing": "cost",
    "fee": "cost",
    "signin": "login",
    "logon": "login",
    "issue": "problem",
    "trouble": "problem",
    "confirmation": "verification",
    "confirm": "verification",
    "verify": "verification",
    "activation": "verification",
    "lose": "lost",
    "missing": "lost",
    "misplace": "lost",
    "activate": "enable",
    "deactivate": "disable",
    "mfa": "2fa",
    "2sv": "2fa",
    "helpdesk": "support",
    "reimburse": "refund",
    "locate": "find",
    "quota": "limit",
    "token": "key",
    "mail": "email",
    "passcode": "password",
    "organisation": "organization",
    "org": "organization",
}


def _mix(z: int) -> int:
    """The splitmix64 finaliser."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _seeds() -> Tuple[int, ...]:
    seeds = []
    state = 0x6D68363476320000  # "mh64v2"
    for _ in range(_SLOTS):
        state = (state + 0x9E3779B97F4A7C15) & _MASK
        seeds.append(_mix(state))
    return tuple(seeds)


_SEEDS = _seeds()


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x00000100000001B3) & _MASK
    return h


# The characters Rust's char::is_alphanumeric accepts and Python's str.isalnum does not: the
# Other_Alphabetic marks and symbols (Devanagari vowel signs, circled letters...), as ranges
# (Unicode 14, generated from Perl's \p{Alphabetic}).
_OTHER_ALPHABETIC: Tuple[Tuple[int, int], ...] = (
    (0x0345, 0x0345),
    (0x05B0, 0x05BD),
    (0x05BF, 0x05BF),
    (0x05C1, 0x05C2),
    (0x05C4, 0x05C5),
    (0x05C7, 0x05C7),
    (0x0610, 0x061A),
    (0x064B, 0x0657),
    (0x0659, 0x065F),
    (0x0670, 0x0670),
    (0x06D6, 0x06DC),
    (0x06E1, 0x06E4),
    (0x06E7, 0x06E8),
    (0x06ED, 0x06ED),
    (0x0711, 0x0711),
    (0x0730, 0x073F),
    (0x07A6, 0x07B0),
    (0x0816, 0x0817),
    (0x081B, 0x0823),
    (0x0825, 0x0827),
    (0x0829, 0x082C),
    (0x08D4, 0x08DF),
    (0x08E3, 0x08E9),
    (0x08F0, 0x0903),
    (0x093A, 0x093B),
    (0x093E, 0x094C),
    (0x094E, 0x094F),
    (0x0955, 0x0957),
    (0x0962, 0x0963),
    (0x0981, 0x0983),
    (0x09BE, 0x09C4),
    (0x09C7, 0x09C8),
    (0x09CB, 0x09CC),
    (0x09D7, 0x09D7),
    (0x09E2, 0x09E3),
    (0x0A01, 0x0A03),
    (0x0A3E, 0x0A42),
    (0x0A47, 0x0A48),
    (0x0A4B, 0x0A4C),
    (0x0A51, 0x0A51),
    (0x0A70, 0x0A71),
    (0x0A75, 0x0A75),
    (0x0A81, 0x0A83),
    (0x0ABE, 0x0AC5),
    (0x0AC7, 0x0AC9),
    (0x0ACB, 0x0ACC),
    (0x0AE2, 0x0AE3),
    (0x0AFA, 0x0AFC),
    (0x0B01, 0x0B03),
    (0x0B3E, 0x0B44),
    (0x0B47, 0x0B48),
    (0x0B4B, 0x0B4C),
    (0x0B56, 0x0B57),
    (0x0B62, 0x0B63),
    (0x0B82, 0x0B82),
    (0x0BBE, 0x0BC2),
    (0x0BC6, 0x0BC8),
    (0x0BCA, 0x0BCC),
    (0x0BD7, 0x0BD7),
    (0x0C00, 0x0C03),
    (0x0C3E, 0x0C44),
    (0x0C46, 0x0C48),
    (0x0C4A, 0x0C4C),
    (0x0C55, 0x0C56),
    (0x0C62, 0x0C63),
    (0x0C81, 0x0C83),
    (0x0CBE, 0x0CC4),
    (0x0CC6, 0x0CC8),
    (0x0CCA, 0x0CCC),
    (0x0CD5, 0x0CD6),
    (0x0CE2, 0x0CE3),
    (0x0D00, 0x0D03),
    (0x0D3E, 0x0D44),
    (0x0D46, 0x0D48),
    (0x0D4A, 0x0D4C),
    (0x0D57, 0x0D57),
    (0x0D62, 0x0D63),
    (0x0D81, 0x0D83),
    (0x0DCF, 0x0DD4),
    (0x0DD6, 0x0DD6),
    (0x0DD8, 0x0DDF),
    (0x0DF2, 0x0DF3),
    (0x0E31, 0x0E31),
    (0x0E34, 0x0E3A),
    (0x0E4D, 0x0E4D),
    (0x0EB1, 0x0EB1),
    (0x0EB4, 0x0EB9),
    (0x0EBB, 0x0EBC),
    (0x0ECD, 0x0ECD),
    (0x0F71, 0x0F81),
    (0x0F8D, 0x0F97),
    (0x0F99, 0x0FBC),
    (0x102B, 0x1036),
    (0x1038, 0x1038),
    (0x103B, 0x103E),
    (0x1056, 0x1059),
    (0x105E, 0x1060),
    (0x1062, 0x1064),
    (0x1067, 0x106D),
    (0x1071, 0x1074),
    (0x1082, 0x108D),
    (0x108F, 0x108F),
    (0x109A, 0x109D),
    (0x1712, 0x1713),
    (0x1732, 0x1733),
    (0x1752, 0x1753),
    (0x1772, 0x1773),
    (0x17B6, 0x17C8),
    (0x1885, 0x1886),
    (0x18A9, 0x18A9),
    (0x1920, 0x192B),
    (0x1930, 0x1938),
    (0x1A17, 0x1A1B),
    (0x1A55, 0x1A5E),
    (0x1A61, 0x1A74),
    (0x1ABF, 0x1AC0),
    (0x1ACC, 0x1ACE),
    (0x1B00, 0x1B04),
    (0x1B35, 0x1B43),
    (0x1B80, 0x1B82),
    (0x1BA1, 0x1BA9),
    (0x1BAC, 0x1BAD),
    (0x1BE7, 0x1BF1),
    (0x1C24, 0x1C36),
    (0x1DE7, 0x1DF4),
    (0x24B6, 0x24E9),
    (0x2DE0, 0x2DFF),
    (0xA674, 0xA67B),
    (0xA69E, 0xA69F),
    (0xA802, 0xA802),
    (0xA80B, 0xA80B),
    (0xA823, 0xA827),
    (0xA880, 0xA881),
    (0xA8B4, 0xA8C3),
    (0xA8C5, 0xA8C5),
    (0xA8FF, 0xA8FF),
    (0xA926, 0xA92A),
    (0xA947, 0xA952),
    (0xA980, 0xA983),
    (0xA9B4, 0xA9BF),
    (0xA9E5, 0xA9E5),
    (0xAA29, 0xAA36),
    (0xAA43, 0xAA43),
    (0xAA4C, 0xAA4D),
    (0xAA7B, 0xAA7D),
    (0xAAB0, 0xAAB0),
    (0xAAB2, 0xAAB4),
    (0xAAB7, 0xAAB8),
    (0xAABE, 0xAABE),
    (0xAAEB, 0xAAEF),
    (0xAAF5, 0xAAF5),
    (0xABE3, 0xABEA),
    (0xFB1E, 0xFB1E),
    (0x10376, 0x1037A),
    (0x10A01, 0x10A03),
    (0x10A05, 0x10A06),
    (0x10A0C, 0x10A0F),
    (0x10D24, 0x10D27),
    (0x10EAB, 0x10EAC),
    (0x11000, 0x11002),
    (0x11038, 0x11045),
    (0x11073, 0x11074),
    (0x11082, 0x11082),
    (0x110B0, 0x110B8),
    (0x110C2, 0x110C2),
    (0x11100, 0x11102),
    (0x11127, 0x11132),
    (0x11145, 0x11146),
    (0x11180, 0x11182),
    (0x111B3, 0x111BF),
    (0x111CE, 0x111CF),
    (0x1122C, 0x11234),
    (0x11237, 0x11237),
    (0x1123E, 0x1123E),
    (0x112DF, 0x112E8),
    (0x11300, 0x11303),
    (0x1133E, 0x11344),
    (0x11347, 0x11348),
    (0x1134B, 0x1134C),
    (0x11357, 0x11357),
    (0x11362, 0x11363),
    (0x11435, 0x11441),
    (0x11443, 0x11445),
    (0x114B0, 0x114C1),
    (0x115AF, 0x115B5),
    (0x115B8, 0x115BE),
    (0x115DC, 0x115DD),
    (0x11630, 0x1163E),
    (0x11640, 0x11640),
    (0x116AB, 0x116B5),
    (0x1171D, 0x1172A),
    (0x1182C, 0x11838),
    (0x11930, 0x11935),
    (0x11937, 0x11938),
    (0x1193B, 0x1193C),
    (0x11940, 0x11940),
    (0x11942, 0x11942),
    (0x119D1, 0x119D7),
    (0x119DA, 0x119DF),
    (0x119E4, 0x119E4),
    (0x11A01, 0x11A0A),
    (0x11A35, 0x11A39),
    (0x11A3B, 0x11A3E),
    (0x11A51, 0x11A5B),
    (0x11A8A, 0x11A97),
    (0x11C2F, 0x11C36),
    (0x11C38, 0x11C3E),
    (0x11C92, 0x11CA7),
    (0x11CA9, 0x11CB6),
    (0x11D31, 0x11D36),
    (0x11D3A, 0x11D3A),
    (0x11D3C, 0x11D3D),
    (0x11D3F, 0x11D41),
    (0x11D43, 0x11D43),
    (0x11D47, 0x11D47),
    (0x11D8A, 0x11D8E),
    (0x11D90, 0x11D91),
    (0x11D93, 0x11D96),
    (0x11EF3, 0x11EF6),
    (0x16F4F, 0x16F4F),
    (0x16F51, 0x16F87),
    (0x16F8F, 0x16F92),
    (0x16FF0, 0x16FF1),
    (0x1BC9E, 0x1BC9E),
    (0x1E000, 0x1E006),
    (0x1E008, 0x1E018),
    (0x1E01B, 0x1E021),
    (0x1E023, 0x1E024),
    (0x1E026, 0x1E02A),
    (0x1E947, 0x1E947),
    (0x1F130, 0x1F149),
    (0x1F150, 0x1F169),
    (0x1F170, 0x1F189),
)
_OTHER_ALPHABETIC_STARTS = [start for start, _ in _OTHER_ALPHABETIC]


def _is_word_char(c: str) -> bool:
    """Rust's ``char::is_alphanumeric`` (Alphabetic or Numeric), or an apostrophe."""
    if c.isalnum() or c == "'":
        return True
    code = ord(c)
    i = bisect.bisect_right(_OTHER_ALPHABETIC_STARTS, code) - 1
    return i >= 0 and code <= _OTHER_ALPHABETIC[i][1]


def _stem(word: str) -> str:
    n = len(word)

    def strip(suffix: str, min_len: int, replacement: str) -> Optional[str]:
        if n >= min_len and word.endswith(suffix):
            return word[: len(word) - len(suffix)] + replacement
        return None

    for suffix, min_len, replacement in (("ies", 5, "y"), ("ing", 6, ""), ("ed", 5, "")):
        stemmed = strip(suffix, min_len, replacement)
        if stemmed is not None:
            return stemmed
    stemmed = strip("es", 5, "")
    if stemmed is not None and stemmed.endswith(("s", "x", "z", "ch", "sh")):
        return stemmed
    stemmed = strip("s", 4, "")
    if stemmed is not None and not stemmed.endswith(("s", "u", "i")):
        return stemmed
    return word


def _raw_words(query: str) -> List[str]:
    words: List[str] = []
    current: List[str] = []
    for c in query.lower():
        if _is_word_char(c):
            current.append(c)
        else:
            words.append("".join(current))
            current = []
    words.append("".join(current))
    return [w for w in (w.replace("'", "") for w in words) if w]


def _phrase_words(query: str) -> List[Tuple[bool, str]]:
    """The words after phrases are read: (True, a phrase's canonical word) or (False, a word)."""
    raw = _raw_words(query)
    words: List[Tuple[bool, str]] = []
    i = 0
    while i < len(raw):
        for phrase, canonical in _PHRASES:
            n = len(phrase)
            if len(raw) - i >= n and tuple(raw[i : i + n]) == phrase:
                words.append((True, canonical))
                i += n
                break
        else:
            words.append((False, raw[i]))
            i += 1
    return words


def _canonical_words(query: str) -> List[str]:
    words: List[str] = []
    for phrase, word in _phrase_words(query):
        if phrase:
            words.append(word)
            continue
        synonym = _SYNONYMS.get(word)
        if synonym is None:
            stemmed = _stem(word)
            synonym = _SYNONYMS.get(stemmed, stemmed)
        if synonym not in _STOPWORDS:
            words.append(synonym)
    return words


def _contrast_marks(query: str) -> List[int]:
    marks: Set[int] = set()
    for _, word in _phrase_words(query):
        for pair, (first, second) in enumerate(_CONTRASTS):
            if word in first:
                marks.add(2 * pair)
            if word in second:
                marks.add(2 * pair + 1)
    return sorted(marks)


def _trigrams(word: str, f: Callable[[bytes], None]) -> None:
    padded = "^" + word + "$"
    for i in range(len(padded) - 2):
        f(padded[i : i + 3].encode("utf-8"))


def fingerprint(query: str) -> str:
    """The ``mh64v3`` fingerprint of a query, as the ``closedloop.query.fingerprint`` value.

    >>> fingerprint("")
    'mh64v3:'
    >>> len(fingerprint("How do I reset my password?"))
    267
    >>> len(fingerprint("How do I turn off 2FA?"))
    269
    """
    words = _canonical_words(query)
    if not words:
        return _SCHEME + ":"
    minima = [_MASK] * _SLOTS
    word_hashes = sorted({_fnv1a(b"w" + w.encode("utf-8")) for w in words})
    trigram_set: Set[int] = set()
    for w in words:
        _trigrams(w, lambda t: trigram_set.add(_fnv1a(b"c" + t)))
    trigram_hashes = sorted(trigram_set)
    for base in word_hashes:
        for slot in range(_WORD_SLOTS):
            h = _mix(base ^ _SEEDS[slot])
            if h < minima[slot]:
                minima[slot] = h
    for base in trigram_hashes:
        for slot in range(_WORD_SLOTS, _SLOTS):
            h = _mix(base ^ _SEEDS[slot])
            if h < minima[slot]:
                minima[slot] = h
    head = bytes([min(len(word_hashes), 255), min(len(trigram_hashes), 255)])
    marks = bytes(_contrast_marks(query))
    return _SCHEME + ":" + head.hex() + bytes(m >> 56 for m in minima).hex() + marks.hex()
