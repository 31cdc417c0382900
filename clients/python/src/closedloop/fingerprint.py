"""Privacy-preserving query fingerprints (the ``mh64v2`` scheme of closedloop-tracing).

The text is lowercased and stripped of punctuation; common phrasal verbs and help-desk
synonyms become one canonical word; words are lightly stemmed and cleared of stopwords. 32
one-byte slots are MinHash minima over the canonical words and 96 over their character
trigrams; two leading bytes carry how many distinct words and trigrams there were (capped at
255). The value, as carried in ``closedloop.query.fingerprint``, is ``mh64v2:`` followed by
260 lowercase hex digits, or ``mh64v2:`` alone for a query with no words left.

Only generation lives here: the receiver compares fingerprints. The fingerprint does not
contain the text, but it is unkeyed: someone who can guess a query can test it against one.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Set, Tuple

__all__ = ["fingerprint"]

_MASK = (1 << 64) - 1
_WORD_SLOTS = 32
_CHAR_SLOTS = 96
_SLOTS = _WORD_SLOTS + _CHAR_SLOTS
_SCHEME = "mh64v2"

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


def _is_word_char(c: str) -> bool:
    # Rust's char::is_alphanumeric (Alphabetic or Numeric) for everything but the combining
    # marks of Unicode's Other_Alphabetic list, which Python's unicodedata cannot name.
    return c.isalnum() or c == "'"


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


def _canonical_words(query: str) -> List[str]:
    raw = _raw_words(query)
    words: List[str] = []
    i = 0
    while i < len(raw):
        for phrase, canonical in _PHRASES:
            n = len(phrase)
            if len(raw) - i >= n and tuple(raw[i : i + n]) == phrase:
                words.append(canonical)
                i += n
                break
        else:
            word = raw[i]
            i += 1
            synonym = _SYNONYMS.get(word)
            if synonym is None:
                stemmed = _stem(word)
                synonym = _SYNONYMS.get(stemmed, stemmed)
            if synonym not in _STOPWORDS:
                words.append(synonym)
    return words


def _trigrams(word: str, f: Callable[[bytes], None]) -> None:
    padded = "^" + word + "$"
    for i in range(len(padded) - 2):
        f(padded[i : i + 3].encode("utf-8"))


def fingerprint(query: str) -> str:
    """The ``mh64v2`` fingerprint of a query, as the ``closedloop.query.fingerprint`` value.

    >>> fingerprint("")
    'mh64v2:'
    >>> len(fingerprint("How do I reset my password?"))
    267
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
    return _SCHEME + ":" + head.hex() + bytes(m >> 56 for m in minima).hex()
