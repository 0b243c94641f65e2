#!/usr/bin/env python3
"""scikit-learn baseline for kefud's intent benchmark (benches/intent.rs runs it in the same
session and prints both side by side).

Same task as the Rust side: the train split's texts are the knowledge base's example
questions, every test text is routed to the intent of its nearest example by cosine
(TfidfVectorizer(sublinear_tf=True) + 1-nearest-neighbour), one query at a time as a service
would. The analyzer is kefud's tokenizer written again in Python (words of 2+ characters
lower-cased, CJK character unigrams + bigrams), so the two differ only in implementation; for
English it equals scikit-learn's default analyzer, which is also reported.

It also trains the classical classifiers over the same features (scikit-learn defaults:
nearest intent centroid by cosine, LinearSVC, LogisticRegression) and reports their accuracy,
the bar kefud's trained model is held to. With --oos OOS.jsonl, it prints how
LogisticRegression's top probability trades in-scope answers against out-of-scope refusals.

Usage: intent_sklearn.py DATA.jsonl [--oos OOS.jsonl] [SIZE...]   prints one JSON object.
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


def classifiers(train, test, oos_test):
    """Accuracy of the classical classifiers over kefud's features; LogisticRegression's
    threshold table on in-scope test + out-of-scope test when `oos_test` is given."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize
    from sklearn.svm import LinearSVC

    vec = TfidfVectorizer(sublinear_tf=True, analyzer=kefud_analyzer)
    x = vec.fit_transform([t for t, _ in train])
    y = np.array([i for _, i in train])
    xt = vec.transform([t for t, _ in test])
    yt = np.array([i for _, i in test])
    out = {}
    classes = sorted(set(y))
    centroids = normalize(np.vstack([np.asarray(x[y == c].mean(axis=0)) for c in classes]))
    pred = np.array(classes)[np.asarray(xt @ centroids.T).argmax(axis=1)]
    out["centroid"] = {"accuracy": float((pred == yt).mean())}
    for name, model in [("linear_svc", LinearSVC()),
                        ("logistic_regression", LogisticRegression(max_iter=1000))]:
        t0 = time.perf_counter()
        model.fit(x, y)
        train_s = time.perf_counter() - t0
        out[name] = {"accuracy": float((model.predict(xt) == yt).mean()), "train_s": train_s}
        if name == "logistic_regression" and oos_test:
            proba = model.predict_proba(xt)
            top = proba.max(axis=1)
            right = model.classes_[proba.argmax(axis=1)] == yt
            oos_top = model.predict_proba(vec.transform(oos_test)).max(axis=1)
            table = []
            for t in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]:
                table.append({
                    "threshold": t,
                    "right": float(((top >= t) & right).mean()),
                    "wrong": float(((top >= t) & ~right).mean()),
                    "refused": float((oos_top < t).mean()),
                })
            out["logistic_regression"]["oos"] = table
    return out


def main():
    args = sys.argv[1:]
    path = args.pop(0)
    oos_test = None
    if args and args[0] == "--oos":
        args.pop(0)
        oos_rows = [json.loads(line) for line in open(args.pop(0), encoding="utf-8")]
        oos_test = [r["text"] for r in oos_rows if r["split"] == "test"]
    sizes = [int(s) for s in args]
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    train = [(r["text"], r["intent"]) for r in rows if r["split"] == "train"]
    test = [(r["text"], r["intent"]) for r in rows if r["split"] == "test"]
    out = {"kefud_analyzer": run(train, test, kefud_analyzer)}
    out.update(classifiers(train, test, oos_test))
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
