#!/usr/bin/env python3
"""scikit-learn baseline for kefud's intent benchmark (benches/intent.rs runs it in the same
session and prints both side by side).

Same task as the Rust side: the train split's texts are the knowledge base's example
questions, every test text is routed to the intent of its nearest example by cosine
(TfidfVectorizer(sublinear_tf=True) + 1-nearest-neighbour), one query at a time as a service
would. The analyzer is kefud's tokenizer written again in Python (words of 2+ characters
lower-cased, CJK character unigrams + bigrams), so the two differ only in implementation; for
English it equals scikit-learn's default analyzer, which is also reported.

Usage: intent_sklearn.py DATA.jsonl [SIZE...]   prints one JSON object.
"""
import json
import statistics
import sys
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


def is_cjk(c):
    o = ord(c)
    return (0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF
            or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F)


def is_word(c):
    return (c.isalnum() or c == "_") and not is_cjk(c)


def kefud_analyzer(text):
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if is_cjk(c):
            out.append(c)
            if i + 1 < n and is_cjk(text[i + 1]):
                out.append(c + text[i + 1])
            i += 1
        elif is_word(c):
            j = i
            while j < n and is_word(text[j]):
                j += 1
            if j - i >= 2:
                out.append(text[i:j].lower())
            i = j
        else:
            i += 1
    return out


def run(train, test, analyzer):
    vec = TfidfVectorizer(sublinear_tf=True, analyzer=analyzer) if analyzer else \
        TfidfVectorizer(sublinear_tf=True)
    matrix = vec.fit_transform([t for t, _ in train])
    matrix_t = matrix.T.tocsr()
    labels = [i for _, i in train]
    correct, lat = 0, []
    for text, intent in test:
        t0 = time.perf_counter()
        q = vec.transform([text])
        scores = (q @ matrix_t).toarray().ravel()
        best = int(np.argmax(scores))
        lat.append((time.perf_counter() - t0) * 1e6)
        if scores[best] > 0 and labels[best] == intent:
            correct += 1
    lat.sort()
    return {
        "accuracy": correct / len(test),
        "median_us": statistics.median(lat),
        "p99_us": lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))],
    }


def main():
    path, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    train = [(r["text"], r["intent"]) for r in rows if r["split"] == "train"]
    test = [(r["text"], r["intent"]) for r in rows if r["split"] == "test"]
    out = {"kefud_analyzer": run(train, test, kefud_analyzer)}
    if not any(is_cjk(c) for t, _ in train for c in t):
        out["default_analyzer"] = run(train, test, None)
    out["latency_at"] = {}
    for size in sizes:
        # The first SIZE train examples (cycled when there are fewer), each its own entry.
        kb = [(train[i % len(train)][0], i) for i in range(size)]
        r = run(kb, test, kefud_analyzer)
        out["latency_at"][str(size)] = {"median_us": r["median_us"], "p99_us": r["p99_us"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
